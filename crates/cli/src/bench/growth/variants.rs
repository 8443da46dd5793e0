//! The runs of `morphogen bench growth`: static, growing, and static but enlarged to the
//! parameter count growing ended with, each trained once per seed, for any preset and task.

use super::enlarged::{enlarged, size, size_name};
use super::meter::RunMeter;
use crate::error::CliError;
use crate::train::data::{image_data, text_data};
use crate::train::once::trainable_params;
use crate::train::once::{train_once, Lifetime};
use morphogen::burn::data::dataset::Dataset;
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::trainer::RunConfig;
use morphogen::trainer::{CountFlops, EventLog, ModelConfig, ModelKind, Task, TaskData, TaskModel};
use morphogen::{MorphogenError, Score, SeededModel, Stage};
use serde::Serialize;

/// Every run of a comparison, and what its numbers mean.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The preset.
    pub model: ModelKind,
    /// The preset's size parameter (`hidden`, `channels`, `width`, `d_model`).
    pub size_name: &'static str,
    /// The task's score: accuracy (higher is better) or negative perplexity, which the runs
    /// report as perplexity (lower is better).
    pub score: Score,
    /// Every run.
    pub runs: Vec<RunRow>,
}

/// One finished run, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// `static`, `growing` or `enlarged`.
    pub variant: &'static str,
    /// Shuffling and initialisation seed.
    pub seed: u64,
    /// The preset's size parameter (the CNN's first conv channels).
    pub size: usize,
    /// After the last epoch: validation (test-set) accuracy, or validation perplexity.
    pub result: f32,
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
    /// Training FLOPs (see the `meter` module).
    pub train_flops: u64,
    /// Seed-state bytes of every seeded layer at the last epoch end.
    pub state_bytes: usize,
    /// Blueprint bank bytes of every seeded layer at the last epoch end.
    pub bank_bytes: usize,
    /// The seeded layers' share of a forward pass at the last epoch end (telemetry and
    /// blueprint blending, `SeedCore::apply`).
    pub seeded_share: f64,
}

/// Runs the three variants of the run `base` describes `repeats` times on backend `B`.
pub fn run<B: AutodiffBackend>(device: &B::Device, base: &RunConfig, repeats: u64) -> Result<Comparison, CliError> {
    match base.model.kind {
        ModelKind::Mlp => Bench::<B, _, _>::new(base, image_data(base)?, ModelConfig::mlp, device).compare(repeats),
        ModelKind::Cnn => Bench::<B, _, _>::new(base, image_data(base)?, ModelConfig::cnn, device).compare(repeats),
        ModelKind::Resnet => {
            Bench::<B, _, _>::new(base, image_data(base)?, ModelConfig::resnet, device).compare(repeats)
        }
        ModelKind::Transformer => {
            Bench::<B, _, _>::new(base, text_data(base)?, ModelConfig::transformer, device).compare(repeats)
        }
    }
}

/// One preset on one task's data: builds its models and trains them.
struct Bench<'a, B: AutodiffBackend, T: Task, F> {
    base: &'a RunConfig,
    data: TaskData<T>,
    build: F,
    device: &'a B::Device,
}

impl<'a, B, T, F, M> Bench<'a, B, T, F>
where
    B: AutodiffBackend,
    T: Task,
    F: Fn(&ModelConfig, &T, &B::Device) -> Result<M, MorphogenError>,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + CountFlops<T>,
    M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
{
    fn new(base: &'a RunConfig, data: TaskData<T>, build: F, device: &'a B::Device) -> Self {
        Self { base, data, build, device }
    }

    /// Growing and static `repeats` times, then enlarged to the mean grown parameter count.
    fn compare(&self, repeats: u64) -> Result<Comparison, CliError> {
        let mut rows = Vec::new();
        for seed in 1..=repeats {
            rows.push(self.one(self.base, "growing", true, seed)?);
            rows.push(self.one(self.base, "static", false, seed)?);
        }
        let grown: Vec<usize> = rows.iter().filter(|r| r.variant == "growing").map(|r| r.params_added).collect();
        let added = grown.iter().sum::<usize>() / grown.len().max(1);
        let target = self.params(&self.base.model)? + added;
        let enlarged =
            RunConfig { model: enlarged(&self.base.model, target, |m| self.params(m))?, ..self.base.clone() };
        for seed in 1..=repeats {
            rows.push(self.one(&enlarged, "enlarged", false, seed)?);
        }
        let kind = self.base.model.kind;
        Ok(Comparison { model: kind, size_name: size_name(kind), score: self.data.task.score(), runs: rows })
    }

    /// Trainable parameters of the preset `model` describes.
    fn params(&self, model: &ModelConfig) -> Result<usize, CliError> {
        Ok(trainable_params(&(self.build)(model, &self.data.task, self.device)?))
    }

    /// One run of `variant`: `config` with growth on or off, from seed `seed`.
    fn one(&self, config: &RunConfig, variant: &'static str, growth: bool, seed: u64) -> Result<RunRow, CliError> {
        let mut config = config.clone();
        config.set_growth(growth);
        config.trainer.seed = seed;
        config.trainer.checkpoint_dir = None; // nothing to resume: compare training alone
        B::seed(self.device, seed);
        let model = (self.build)(&config.model, &self.data.task, self.device)?;
        let profile = model.flop_profile(&self.data.task);
        let mut meter = RunMeter::new(profile, &config.trainer, self.data.train.len(), self.data.valid.len());
        eprintln!("{variant} seed {seed}: {} {}", size_name(config.model.kind), size(&config.model));
        let run = train_once(model, &config, &self.data, EventLog::in_memory(), Lifetime::default(), &mut meter)?;
        let resources = meter.resources().cloned().unwrap_or_default();
        let seeded: f64 = resources.layers.iter().map(|l| l.seeded_seconds).sum();
        Ok(RunRow {
            variant,
            seed,
            size: size(&config.model),
            result: match self.data.task.score() {
                Score::Accuracy => run.final_score(),
                Score::NegativePerplexity => -run.final_score(),
            },
            host_params: run.host_params,
            params_added: run.params_added,
            germinated: run.reached(Stage::Germinated),
            fossilized: run.reached(Stage::Fossilized),
            culled: run.reached(Stage::Culled),
            seconds: run.seconds,
            train_flops: meter.flops(),
            state_bytes: resources.layers.iter().map(|l| l.state_bytes).sum(),
            bank_bytes: resources.layers.iter().map(|l| l.bank_bytes).sum(),
            seeded_share: if resources.forward_seconds > 0.0 { seeded / resources.forward_seconds } else { 0.0 },
        })
    }
}
