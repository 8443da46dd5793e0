//! The results table `morphogen train` prints when a run ends.

use super::once::RunResult;
use morphogen::{GlobalMetrics, Score, Stage};

/// One epoch's numbers for the per-epoch line: loss and accuracy of training and validation, and
/// the validation perplexity when the task is scored by it.
pub fn epoch_numbers(m: &GlobalMetrics) -> String {
    let perplexity = match m.score {
        Score::NegativePerplexity => format!(" ppl {:.3}", -m.val_score()),
        Score::Accuracy => String::new(),
    };
    format!(
        "train loss {:.4} acc {:.4} | val loss {:.4}{perplexity} acc {:.4}",
        m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy
    )
}

/// The results table: one row per epoch (with validation perplexity for language modelling),
/// then the growth summary.
pub fn results<M>(run: &RunResult<M>) -> String {
    let perplexity = run.history.first().is_some_and(|m| m.score == Score::NegativePerplexity);
    let (extra_head, extra_rule) = if perplexity { (" val ppl |", "---|") } else { ("", "") };
    let mut out = format!(
        "\n| epoch | train loss | train acc | val loss | val acc |{extra_head}\n|---|---|---|---|---|{extra_rule}\n"
    );
    for m in &run.history {
        let extra = if perplexity { format!(" {:.3} |", -m.val_score()) } else { String::new() };
        out += &format!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} |{extra}\n",
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
