//! `morphogen bench growth`: does growing help? The same small host trained for the same epochs
//! (1) static, (2) growing with morphogen, (3) static but enlarged to the parameter count (2)
//! ended with; several seeds each; accuracy mean and spread, growth counts and wall time.

use crate::error::CliError;
use crate::train::{load_data, train_once, RunConfig, RunResult, TrainArgs};
use clap::Args;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::trainer::{EventLog, ModelKind};
use morphogen::Stage;
use serde::Serialize;

/// Flags of `morphogen bench growth`: the training flags of `morphogen train`, plus repeats.
#[derive(Args, Debug)]
pub struct GrowthArgs {
    /// The run to compare (same flags and config file as `morphogen train`; MLP preset only).
    #[command(flatten)]
    pub run: TrainArgs,
    /// Seeds (repeats) per variant.
    #[arg(long, default_value_t = 3)]
    pub repeats: u64,
    /// Also write every run as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<std::path::PathBuf>,
}

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

/// Runs the three variants `repeats` times on backend `B` and returns every run.
pub fn run<B: AutodiffBackend>(args: &GrowthArgs) -> Result<Vec<RunRow>, CliError> {
    let base = RunConfig::resolve(&args.run)?;
    if base.model.kind != ModelKind::Mlp {
        return Err(CliError::Config {
            path: "--model".into(),
            problem: "the growth benchmark compares MLP widths; use --model mlp".into(),
        });
    }
    let data = load_data(&base)?;
    let device = B::Device::default();
    let mut rows = Vec::new();
    for seed in 1..=args.repeats {
        let mut config = base.clone();
        config.trainer.seed = seed;
        rows.push(one::<B>(&config, "growing", true, &data, seed, &device)?);
        rows.push(one::<B>(&config, "static", false, &data, seed, &device)?);
    }
    let grown = rows.iter().filter(|r| r.variant == "growing");
    let added = grown.map(|r| r.params_added).sum::<usize>() / args.repeats.max(1) as usize;
    let enlarged = enlarged_hidden(base.model.hidden, added);
    for seed in 1..=args.repeats {
        let mut config = base.clone();
        config.trainer.seed = seed;
        config.model.hidden = enlarged;
        rows.push(one::<B>(&config, "enlarged", false, &data, seed, &device)?);
    }
    Ok(rows)
}

fn one<B: AutodiffBackend>(
    config: &RunConfig,
    variant: &'static str,
    growth: bool,
    data: &(morphogen::trainer::Dataset, morphogen::trainer::Dataset),
    seed: u64,
    device: &B::Device,
) -> Result<RunRow, CliError> {
    let mut config = config.clone();
    config.set_growth(growth);
    config.trainer.checkpoint_dir = None; // nothing to resume: compare training alone
    B::seed(device, seed);
    let model = config.model.mlp::<B>(device)?;
    eprintln!("{variant} seed {seed}: hidden {}", config.model.hidden);
    let run: RunResult<_> = train_once(model, &config, data, EventLog::in_memory(), false, &mut ())?;
    Ok(RunRow {
        variant,
        seed,
        hidden: config.model.hidden,
        accuracy: run.final_accuracy(),
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

/// Mean and population standard deviation.
fn mean_std(values: &[f32]) -> (f32, f32) {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    (mean, (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt())
}

/// The summary table (one row per variant) and every run.
pub fn table(rows: &[RunRow]) -> String {
    let mut out = String::from(
        "| variant | hidden | runs | test accuracy mean | spread (std) | trainable params | params added | germinated | fossilized | culled | wall s (mean) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for variant in ["static", "growing", "enlarged"] {
        let runs: Vec<&RunRow> = rows.iter().filter(|r| r.variant == variant).collect();
        let Some(first) = runs.first() else { continue };
        let n = runs.len();
        let (mean, std) = mean_std(&runs.iter().map(|r| r.accuracy).collect::<Vec<_>>());
        let avg = |f: fn(&RunRow) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n as f64;
        out += &format!(
            "| {variant} | {} | {n} | {:.4} | {:.4} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            first.hidden,
            mean,
            std,
            avg(|r| (r.host_params + r.params_added) as f64),
            avg(|r| r.params_added as f64),
            avg(|r| r.germinated as f64),
            avg(|r| r.fossilized as f64),
            avg(|r| r.culled as f64),
            avg(|r| r.seconds),
        );
    }
    out += "\n| variant | seed | hidden | accuracy | params added | germinated | fossilized | culled | wall s |\n|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {:.4} | {} | {} | {} | {} | {:.1} |\n",
            r.variant, r.seed, r.hidden, r.accuracy, r.params_added, r.germinated, r.fossilized, r.culled, r.seconds
        );
    }
    out
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

    #[test]
    fn spread_is_the_standard_deviation() {
        let (m, s) = mean_std(&[0.8, 0.9]);
        assert!((m - 0.85).abs() < 1e-6 && (s - 0.05).abs() < 1e-6);
    }
}
