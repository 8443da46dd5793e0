//! One `morphogen train` run on a backend: the data (its shape or vocabulary sizes the model),
//! the preset model, the run folder, training and the results.

use super::data::{image_data, text_data};
use super::once::{train_once, Lifetime};
use super::progress::{Progress, RunMode};
use super::resume::agree_with_checkpoint;
use super::run_folder::RunFolder;
use super::summary::results;
use crate::backend::OnBackend;
use crate::error::CliError;
use crate::stop::StopSignal;
use morphogen::burn::data::dataset::Dataset;
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::trainer::RunConfig;
use morphogen::trainer::{ErrorKind, ModelKind, Observer, Stopped, Task, TaskData, TaskModel};
use morphogen::SeededModel;
use morphogen_metrics::{Borrowed, Both, MetricsObserver};

/// Trains `config`'s preset, reporting as `mode` says and feeding `metrics` beside the progress
/// output.
pub struct Training<'a> {
    /// The resolved configuration.
    pub config: &'a RunConfig,
    /// Quiet or not, fresh or resumed.
    pub mode: RunMode,
    /// The Prometheus registry (served or not).
    pub metrics: MetricsObserver,
    /// Set by SIGINT or SIGTERM.
    pub stop: &'a StopSignal,
}

impl OnBackend for Training<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<(), CliError> {
        let config = self.config;
        B::seed(device, config.trainer.seed);
        let model = &config.model;
        match model.kind {
            ModelKind::Mlp => {
                let data = image_data(config)?;
                self.train_model::<B, _, _>(model.mlp(&data.task, device)?, &data)
            }
            ModelKind::Cnn => {
                let data = image_data(config)?;
                self.train_model::<B, _, _>(model.cnn(&data.task, device)?, &data)
            }
            ModelKind::Resnet => {
                let data = image_data(config)?;
                self.train_model::<B, _, _>(model.resnet(&data.task, device)?, &data)
            }
            ModelKind::Transformer => {
                let data = text_data(config)?;
                self.train_model::<B, _, _>(model.transformer(&data.task, device)?, &data)
            }
        }
    }
}

impl Training<'_> {
    /// Creates the run folder, trains `model` on `data`, saves it and prints the results.
    fn train_model<B, M, T>(self, model: M, data: &TaskData<T>) -> Result<(), CliError>
    where
        B: AutodiffBackend,
        T: Task,
        M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T>,
        M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
    {
        let Training { config, mode, metrics, stop } = self;
        let folder = RunFolder::create(config)?;
        let quarantined = match (&config.trainer.checkpoint_dir, mode.resume) {
            (Some(checkpoints), true) => agree_with_checkpoint(&folder, checkpoints)?,
            _ => Vec::new(),
        };
        let events = folder.events(mode.resume)?;
        let mut progress = Progress::new(&folder, mode)?;
        eprintln!(
            "training {:?} ({:?}) on {} examples ({} for validation), {} epochs, growth {}",
            config.model.kind,
            config.task(),
            data.train.len(),
            data.valid.len(),
            config.trainer.epochs,
            if config.run.growth { "on" } else { "off" }
        );
        let mut observer = Both(Borrowed(&mut progress), metrics);
        for q in &quarantined {
            observer.error(ErrorKind::CheckpointCorrupt, &q.to_string());
        }
        let lifetime = Lifetime { resume: mode.resume, stop: Some(stop.flag.clone()) };
        let result = train_once(model, config, data, events, lifetime, &mut observer)?;
        if let Some(stopped) = &result.stopped {
            return Err(CliError::Stopped { signal: stop.signal(), message: stopped_message(stopped, config) });
        }
        folder.save_model(&result.model)?;
        print!("{}", results(&result));
        println!("{}", progress.timing().line());
        println!("run folder: {}", folder.path().display());
        Ok(())
    }
}

/// What `morphogen train` says when a signal stopped it: where, and how to go on.
fn stopped_message(stopped: &Stopped, config: &RunConfig) -> String {
    let resume = format!(
        "resume with: morphogen train --name {} --runs-dir {} --resume (and the same options as this run)",
        config.run.name,
        config.run.runs_dir.display()
    );
    match &stopped.checkpoint {
        Some((path, epoch)) => format!(
            "stopped by a signal in epoch {} (step {}); the newest checkpoint, verified, is {} (epoch {epoch}): \
             epoch {} will be trained again; {resume}",
            stopped.epoch,
            stopped.step,
            path.display(),
            epoch + 1
        ),
        None => format!(
            "stopped by a signal in epoch {} (step {}); no checkpoint to resume from",
            stopped.epoch, stopped.step
        ),
    }
}
