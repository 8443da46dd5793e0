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
    let kernels = config.model.kind.name();
    backend::run_on(args.backend, kernels, Training { config: &config, mode, metrics, stop: &stop })
}
