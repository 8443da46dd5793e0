//! The runs of `morphogen bench growth`: static, growing, and static but enlarged to the
//! parameter count growing ended with, each trained once per seed.

use crate::error::CliError;
use crate::train::args::TrainArgs;
use crate::train::config::RunConfig;
use crate::train::data::image_data;
use crate::train::once::{train_once, RunResult};
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::trainer::{EventLog, ImageClassification, ModelKind, TaskData};
use morphogen::Stage;
use serde::Serialize;

/// One finished run, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// `static`, `growing` or `enlarged`.
    pub variant: &'static str,
    /// Shuffling and initialisation seed.
    pub seed: u64,
    /// MLP hidden width.
    pub hidden: usize,
    /// Final validation (test-set) accuracy.
    pub accuracy: f32,
    /// Trainable parameters before training.
    pub host_params: usize,
    /// Parameters blueprints added.
    pub params_added: usize,
    /// Germinations.
    pub germinated: usize,
    /// Fossilizations.
    pub fossilized: usize,
    /// Culls.
    pub culled: usize,
    /// Training wall time, seconds.
    pub seconds: f64,
}

/// Runs the three variants of the run `args` describe `repeats` times on backend `B` and
/// returns every run.
pub fn run<B: AutodiffBackend>(device: &B::Device, args: &TrainArgs, repeats: u64) -> Result<Vec<RunRow>, CliError> {
    let base = RunConfig::resolve(args)?;
    if base.model.kind != ModelKind::Mlp {
        return Err(CliError::Config {
            path: "--model".into(),
            problem: "the growth benchmark compares MLP widths; use --model mlp".into(),
        });
    }
    let data = image_data(&base)?;
    let mut rows = Vec::new();
    for seed in 1..=repeats {
        let mut config = base.clone();
        config.trainer.seed = seed;
        rows.push(one::<B>(&config, "growing", true, &data, seed, device)?);
        rows.push(one::<B>(&config, "static", false, &data, seed, device)?);
    }
    let grown = rows.iter().filter(|r| r.variant == "growing");
    let added = grown.map(|r| r.params_added).sum::<usize>() / repeats.max(1) as usize;
    let enlarged = enlarged_hidden(base.model.hidden, added);
    for seed in 1..=repeats {
        let mut config = base.clone();
        config.trainer.seed = seed;
        config.model.hidden = enlarged;
        rows.push(one::<B>(&config, "enlarged", false, &data, seed, device)?);
    }
    Ok(rows)
}

/// One run of `variant`: `config` with growth on or off, from seed `seed`.
fn one<B: AutodiffBackend>(
    config: &RunConfig,
    variant: &'static str,
    growth: bool,
    data: &TaskData<ImageClassification>,
    seed: u64,
    device: &B::Device,
) -> Result<RunRow, CliError> {
    let mut config = config.clone();
    config.set_growth(growth);
    config.trainer.checkpoint_dir = None; // nothing to resume: compare training alone
    B::seed(device, seed);
    let model = config.model.mlp::<B>(&data.task, device)?;
    eprintln!("{variant} seed {seed}: hidden {}", config.model.hidden);
    let run: RunResult<_> = train_once(model, &config, data, EventLog::in_memory(), false, &mut ())?;
    Ok(RunRow {
        variant,
        seed,
        hidden: config.model.hidden,
        accuracy: run.final_score(),
        host_params: run.host_params,
        params_added: run.params_added,
        germinated: run.reached(Stage::Germinated),
        fossilized: run.reached(Stage::Fossilized),
        culled: run.reached(Stage::Culled),
        seconds: run.seconds,
    })
}

/// The MLP hidden width whose parameter count (`h^2 + 796 h + 10` for 784 -> h -> h -> 10) is
/// closest to the host's plus `added`.
fn enlarged_hidden(hidden: usize, added: usize) -> usize {
    let params = |h: usize| h * h + 796 * h + 10;
    let target = params(hidden) + added;
    (hidden..hidden * 4 + 8).min_by_key(|&h| params(h).abs_diff(target)).unwrap_or(hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enlarged_width_matches_the_parameter_target() {
        assert_eq!(enlarged_hidden(32, 0), 32);
        let h = enlarged_hidden(32, 5_000);
        let params = |h: usize| h * h + 796 * h + 10;
        assert!(params(h).abs_diff(params(32) + 5_000) <= 800, "{h}");
    }
}
