//! `morphogen train`: the main job. Trains a preset model (MLP, CNN or ResNet on Fashion-MNIST, a
//! transformer on a folder of text) and lets it grow, with progress bars, a live seed summary, a results table and a run folder.
//!
//! The flags ([`args`]) resolve into a [`config`]; [`run`] builds the model, reads the [`data`],
//! trains it [`once`] while [`progress`] reports and [`exporters`] serve metrics and traces,
//! and leaves everything in the [`run_folder`] and the [`summary`] table.

pub mod args;
pub mod config;
pub mod data;
mod exporters;
mod incidents;
pub mod once;
mod progress;
mod replicas;
mod resume;
mod run;
mod run_folder;
mod summary;

use crate::backend;
use crate::error::CliError;
use args::TrainArgs;

use progress::RunMode;
use run::Training;

/// `morphogen train`.
pub fn train(args: &TrainArgs) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let config = config::resolve(args)?;
    let metrics = exporters::serve_metrics(args)?;
    // Flushed when dropped, after training.
    let _tracing = exporters::install_tracing(args)?;
    let mode = RunMode { quiet: args.quiet, resume: args.resume, started };
    let stop = crate::stop::StopSignal::install()?;
    backend::run_on(args.backend, &kernel_set(&config), Training { config: &config, mode, metrics, stop: &stop })
}

/// The kernel cache folder of a run: its preset's (`transformer`), or the preset's and precision's
/// when products run in half precision (`transformer-bf16`), whose kernels an f32 run never reads.
pub(crate) fn kernel_set(config: &morphogen::trainer::RunConfig) -> String {
    let (kind, precision) = (config.model.kind.name(), config.model.precision);
    match precision {
        morphogen::Precision::F32 => kind.to_string(),
        half => format!("{kind}-{half}"),
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_set;
    use morphogen::trainer::{ModelKind, RunConfig};
    use morphogen::Precision;

    #[test]
    fn half_precision_runs_keep_their_own_kernel_cache() {
        let mut config = RunConfig::default();
        config.model.kind = ModelKind::Transformer;
        assert_eq!(kernel_set(&config), "transformer");
        config.model.precision = Precision::Bf16;
        assert_eq!(kernel_set(&config), "transformer-bf16");
    }
}
