//! The results table `morphogen train` prints when a run ends.

use super::once::RunResult;
use morphogen::Stage;

/// The results table: one row per epoch, then the growth summary.
pub fn results<M>(run: &RunResult<M>) -> String {
    let mut out = String::from("\n| epoch | train loss | train acc | val loss | val acc |\n|---|---|---|---|---|\n");
    for m in &run.history {
        out += &format!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
            m.epoch, m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy
        );
    }
    out += &format!(
        "\nseeds germinated {}, fossilized {}, culled {}, rolled back {}; rollbacks {}\nparameters: host {}, added by blueprints {}; {:.1} s\n",
        run.reached(Stage::Germinated),
        run.reached(Stage::Fossilized),
        run.reached(Stage::Culled),
        run.reached(Stage::RolledBack),
        run.rollbacks,
        run.host_params,
        run.params_added,
        run.seconds,
    );
    out
}
