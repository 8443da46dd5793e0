//! The runs of `morphogen bench growth`: the [`Variant`]s asked for, each trained once per seed,
//! for any preset and task.

use super::enlarged::{enlarged, size, size_name};
use super::meter::RunMeter;
use crate::error::CliError;
use crate::train::data::{image_data, text_data};
use crate::train::once::trainable_params;
use crate::train::once::{controller_for, train_once, Lifetime};
use morphogen::burn::data::dataset::Dataset;
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::controller::{NeuralPolicy, SiteSelection};
use morphogen::trainer::RunConfig;
use morphogen::trainer::{ControllerKind, CountFlops, EventLog, ModelConfig, ModelKind, Task, TaskData, TaskModel};
use morphogen::{MorphogenError, Score, SeededModel, Stage};
use serde::Serialize;
use std::path::PathBuf;

/// One way to train the preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Variant {
    /// The host alone: the controller never germinates.
    Static,
    /// The host, grown by the controller as configured.
    Growing,
    /// Growing, with seeds germinated at random sites instead of the unhealthiest (the
    /// ablation of the controller's choice of sites).
    RandomSites,
    /// Growing, its growth decided by the neural policy `--policy` (the same budgets and gates).
    Neural,
    /// Static, the host enlarged to the parameter count `growing` ended with (its mean).
    Enlarged,
    /// Static, the host enlarged to `--full-ratio` times its parameters.
    Full,
}

impl Variant {
    /// The name the tables print.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Static => "static",
            Variant::Growing => "growing",
            Variant::RandomSites => "random sites",
            Variant::Neural => "neural",
            Variant::Enlarged => "enlarged",
            Variant::Full => "full",
        }
    }
}

/// What to run: the variants (sorted, once each), seeds per variant, the full host's size, the
/// policy of the `neural` variant.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The variants, in [`Variant`] order.
    pub variants: Vec<Variant>,
    /// Seeds (repeats) per variant.
    pub repeats: u64,
    /// The first of them: each variant runs seeds `first_seed .. first_seed + repeats`.
    pub first_seed: u64,
    /// The full host's parameters, as a multiple of the host's.
    pub full_ratio: f64,
    /// The policy folder the `neural` variant loads.
    pub policy: Option<PathBuf>,
}

impl Plan {
    /// Checks the plan can run: `enlarged` needs `growing`'s parameter count, `full` a ratio
    /// of at least 1, and there is at least one run.
    pub fn validate(&self) -> Result<(), CliError> {
        let bad = |problem: &str, hint: &str| {
            Err(CliError::Engine(MorphogenError::InvalidConfig {
                component: "bench growth".into(),
                problem: problem.into(),
                hint: hint.into(),
            }))
        };
        if self.repeats == 0 || self.variants.is_empty() {
            return bad("nothing to run", "pass --repeats 1 or more and at least one --variants entry");
        }
        if self.variants.contains(&Variant::Enlarged) && !self.variants.contains(&Variant::Growing) {
            return bad("the enlarged variant is sized by the growing runs", "add growing to --variants");
        }
        if self.variants.contains(&Variant::Full) && !(self.full_ratio.is_finite() && self.full_ratio >= 1.0) {
            return bad("--full-ratio must be a finite number >= 1", "4 makes the full host about 4x the host");
        }
        if self.variants.contains(&Variant::Neural) {
            let Some(policy) = &self.policy else {
                return bad("the neural variant needs a policy", "pass --policy <folder>");
            };
            // Loaded here so that a bad policy stops the benchmark instead of measuring the
            // heuristic under the neural variant's name.
            NeuralPolicy::load(policy)?;
        }
        Ok(())
    }
}

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
    /// The variants run, in table order.
    pub variants: Vec<&'static str>,
    /// Every run.
    pub runs: Vec<RunRow>,
}

/// One finished run, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// The variant's name ([`Variant::name`]).
    pub variant: &'static str,
    /// Shuffling and initialisation seed.
    pub seed: u64,
    /// The preset's size parameter (the CNN's first conv channels).
    pub size: usize,
    /// After the last epoch: validation (test-set) accuracy, or validation perplexity.
    pub result: f32,
    /// Trainable parameters before training.
    pub host_params: usize,
    /// Parameters blueprints and a widening added.
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

impl RunRow {
    /// The run as a row of the table of every run (with its line end).
    pub fn markdown_row(&self) -> String {
        let r = self;
        format!(
            "| {} | {} | {} | {:.4} | {} | {} | {} | {} | {:.1} | {:.3e} |\n",
            r.variant,
            r.seed,
            r.size,
            r.result,
            r.params_added,
            r.germinated,
            r.fossilized,
            r.culled,
            r.seconds,
            r.train_flops as f64
        )
    }
}

/// Runs the variants of `plan` of the run `base` describes on backend `B`.
pub fn run<B: AutodiffBackend>(device: &B::Device, base: &RunConfig, plan: &Plan) -> Result<Comparison, CliError> {
    match base.model.kind {
        ModelKind::Mlp => Bench::<B, _, _>::new(base, image_data(base)?, ModelConfig::mlp, device).compare(plan),
        ModelKind::Cnn => Bench::<B, _, _>::new(base, image_data(base)?, ModelConfig::cnn, device).compare(plan),
        ModelKind::Resnet => Bench::<B, _, _>::new(base, image_data(base)?, ModelConfig::resnet, device).compare(plan),
        ModelKind::Transformer => {
            Bench::<B, _, _>::new(base, text_data(base)?, ModelConfig::transformer, device).compare(plan)
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
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + CountFlops<T> + 'static,
    M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
{
    fn new(base: &'a RunConfig, data: TaskData<T>, build: F, device: &'a B::Device) -> Self {
        Self { base, data, build, device }
    }

    /// The variants of `plan`, each `repeats` times, seed by seed; the enlarged host after the
    /// growing runs that size it.
    fn compare(&self, plan: &Plan) -> Result<Comparison, CliError> {
        let mut rows = Vec::new();
        let host = self.params(&self.base.model)?;
        for &variant in &plan.variants {
            let config = match variant {
                Variant::Static | Variant::Growing => self.base.clone(),
                Variant::Neural => {
                    let mut config = self.base.clone();
                    config.run.controller = ControllerKind::Neural;
                    config.run.policy = plan.policy.clone();
                    config
                }
                Variant::RandomSites => {
                    let mut config = self.base.clone();
                    config.controller.sites = SiteSelection::Random;
                    config
                }
                Variant::Enlarged => self.sized(host + mean_params_added(&rows))?,
                Variant::Full => self.sized((host as f64 * plan.full_ratio).round() as usize)?,
            };
            let growth = matches!(variant, Variant::Growing | Variant::RandomSites | Variant::Neural);
            for seed in plan.first_seed..plan.first_seed + plan.repeats {
                let row = self.one(&config, variant.name(), growth, seed)?;
                // Each run as it ends: a long benchmark cut short keeps what it measured.
                eprint!("{}", row.markdown_row());
                rows.push(row);
            }
        }
        let kind = self.base.model.kind;
        let variants = plan.variants.iter().map(|v| v.name()).collect();
        Ok(Comparison { model: kind, size_name: size_name(kind), score: self.data.task.score(), variants, runs: rows })
    }

    /// The base run with the host enlarged to about `target` trainable parameters.
    fn sized(&self, target: usize) -> Result<RunConfig, CliError> {
        Ok(RunConfig { model: enlarged(&self.base.model, target, |m| self.params(m))?, ..self.base.clone() })
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

        // The host after each widening, built before seeding so that the run draws the same
        // numbers with or without widening: their FLOP profiles price the epochs after each
        // widening, and the last one's size less the host's is what the widenings added.
        let widenings = config.trainer.widen.map_or(0, |widen| widen.times as usize);
        let wider = (1..=widenings)
            .map(|done| (self.build)(&config.widened_model(done), &self.data.task, self.device))
            .collect::<Result<Vec<_>, _>>()?;
        let widened = wider.iter().map(|model| model.flop_profile(&self.data.task)).collect();
        let widened_params = wider.last().map(trainable_params);
        B::seed(self.device, seed);
        let model = (self.build)(&config.model, &self.data.task, self.device)?;
        let profile = model.flop_profile(&self.data.task);
        let mut meter =
            RunMeter::new(profile, &config.trainer, self.data.train.len(), self.data.valid.len()).with_widened(widened);
        let controller = controller_for(&config, &mut meter)?;
        let (events, lifetime) = (EventLog::in_memory(), Lifetime::default());
        let run = train_once(controller, model, &config, &self.data, events, lifetime, &mut meter)?;
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
            params_added: run.params_added + widened_params.map_or(0, |wider| wider - run.host_params),
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

/// The parameters the growing runs among `rows` added, on average.
fn mean_params_added(rows: &[RunRow]) -> usize {
    let grown: Vec<usize> =
        rows.iter().filter(|r| r.variant == Variant::Growing.name()).map(|r| r.params_added).collect();
    grown.iter().sum::<usize>() / grown.len().max(1)
}
