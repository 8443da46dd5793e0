//! One `morphogen train` run on a backend: the preset model built first (so a bad model config
//! fails before any data is read), then the data, the run folder, training and the results.

use super::config::RunConfig;
use super::data::load_data;
use super::once::train_once;
use super::progress::{Progress, RunMode};
use super::run_folder::RunFolder;
use super::summary::results;
use crate::backend::OnBackend;
use crate::error::CliError;
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::trainer::{Classifier, ModelKind};
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
}

impl OnBackend for Training<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<(), CliError> {
        let config = self.config;
        B::seed(device, config.trainer.seed);
        match config.model.kind {
            ModelKind::Mlp => self.train_model::<B, _>(config.model.mlp(device)?),
            ModelKind::Cnn => self.train_model::<B, _>(config.model.cnn(device)?),
        }
    }
}

impl Training<'_> {
    /// Reads the data, creates the run folder, trains `model`, saves it and prints the results.
    fn train_model<B, M>(self, model: M) -> Result<(), CliError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B> + Classifier<B>,
        M::InnerModule: SeededModel<B::InnerBackend> + Classifier<B::InnerBackend>,
    {
        let Training { config, mode, metrics } = self;
        let data = load_data(config)?;
        let folder = RunFolder::create(config)?;
        let events = folder.events(mode.resume)?;
        let mut progress = Progress::new(&folder, mode)?;
        eprintln!(
            "training {:?} on {} images ({} for validation), {} epochs, growth {}",
            config.model.kind,
            data.0.len(),
            data.1.len(),
            config.trainer.epochs,
            if config.run.growth { "on" } else { "off" }
        );
        let mut observer = Both(Borrowed(&mut progress), metrics);
        let result = train_once(model, config, &data, events, mode.resume, &mut observer)?;
        folder.save_model(&result.model)?;
        print!("{}", results(&result));
        println!("run folder: {}", folder.path().display());
        Ok(())
    }
}
