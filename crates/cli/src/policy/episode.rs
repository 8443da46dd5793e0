//! One growth episode: a short training run of a preset whose growth a given controller
//! decides, with the decisions it recorded and the reward it earned.

use crate::error::CliError;
use crate::train::data::{image_data, text_data};
use crate::train::once::{train_once, Lifetime};
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::controller::{Controller, DecisionRecord};
use morphogen::trainer::{
    EventLog, ImageClassification, ModelKind, NextCharacter, RunConfig, Task, TaskData, TaskModel,
};
use morphogen::{SeededModel, Stage};

/// What one episode produced.
pub struct Episode {
    /// The preset trained.
    pub preset: ModelKind,
    /// Its training seed.
    pub seed: u64,
    /// The validation score after the last epoch (accuracy, or negative perplexity).
    pub score: f32,
    /// Trainable parameters of the host.
    pub host_params: usize,
    /// Parameters the blueprints held at the end add.
    pub params_added: usize,
    /// Germinations.
    pub germinated: usize,
    /// Culls.
    pub culled: usize,
    /// The controller's growth decisions.
    pub trace: Vec<DecisionRecord>,
}

impl Episode {
    /// The score, less `param_cost` for each host's worth of parameters added.
    pub fn reward(&self, param_cost: f32) -> f32 {
        self.score - param_cost * self.params_added as f32 / self.host_params.max(1) as f32
    }
}

/// Every preset's data, loaded once, and the device episodes train on.
pub struct Arena<B: AutodiffBackend> {
    base: RunConfig,
    images: Option<TaskData<ImageClassification>>,
    text: Option<TaskData<NextCharacter>>,
    device: B::Device,
}

impl<B: AutodiffBackend> Arena<B> {
    /// Loads the data `presets` need, as `base` describes it.
    pub fn new(base: RunConfig, presets: &[ModelKind], device: B::Device) -> Result<Self, CliError> {
        let needs = |task| presets.iter().any(|p| p.task() == task);
        let with = |kind: ModelKind| RunConfig {
            model: morphogen::trainer::ModelConfig { kind, ..base.model.clone() },
            ..base.clone()
        };
        let images =
            needs(morphogen::trainer::TaskKind::Classify).then(|| image_data(&with(ModelKind::Mlp))).transpose()?;
        let text =
            needs(morphogen::trainer::TaskKind::Lm).then(|| text_data(&with(ModelKind::Transformer))).transpose()?;
        Ok(Self { base, images, text, device })
    }

    /// A heuristic controller with the base run's settings.
    pub fn controller(&self) -> Result<Controller, CliError> {
        Ok(Controller::new(self.base.controller.clone())?)
    }

    /// Trains `preset` from `seed` for the base run's epochs, `controller` deciding growth.
    pub fn run(&self, preset: ModelKind, seed: u64, controller: Controller) -> Result<Episode, CliError> {
        let mut config = self.base.clone();
        config.model.kind = preset;
        config.trainer.seed = seed;
        config.trainer.checkpoint_dir = None;
        B::seed(&self.device, seed);
        let (model, d) = (&config.model, &self.device);
        let images = || self.images.as_ref().expect("image data is loaded for image presets");
        let text = || self.text.as_ref().expect("text data is loaded for the transformer");
        let episode = match preset {
            ModelKind::Mlp => train::<B, _, _>(controller, model.mlp(&images().task, d)?, &config, images()),
            ModelKind::Cnn => train::<B, _, _>(controller, model.cnn(&images().task, d)?, &config, images()),
            ModelKind::Resnet => train::<B, _, _>(controller, model.resnet(&images().task, d)?, &config, images()),
            ModelKind::Transformer => {
                train::<B, _, _>(controller, model.transformer(&text().task, d)?, &config, text())
            }
        }?;
        Ok(Episode { preset, seed, ..episode })
    }
}

/// One training run of `model`, recorded as an episode (preset and seed filled in by the caller).
fn train<B, M, T>(controller: Controller, model: M, config: &RunConfig, data: &TaskData<T>) -> Result<Episode, CliError>
where
    B: AutodiffBackend,
    T: Task,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + 'static,
    M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
{
    let run = train_once(controller, model, config, data, EventLog::in_memory(), Lifetime::default(), &mut ())?;
    Ok(Episode {
        preset: config.model.kind,
        seed: config.trainer.seed,
        score: run.final_score(),
        host_params: run.host_params,
        params_added: run.params_added,
        germinated: run.reached(Stage::Germinated),
        culled: run.reached(Stage::Culled),
        trace: run.trace,
    })
}
