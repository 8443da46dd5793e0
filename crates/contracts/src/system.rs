use crate::{LayerHealthReport, SeedAddress, SeedInfo, Stage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Global training metrics at an epoch boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalMetrics {
    /// Epochs completed (1 after the first).
    pub epoch: u32,
    /// Optimizer steps completed.
    pub step: u64,
    /// Mean training loss over the epoch.
    pub train_loss: f32,
    /// Training accuracy over the epoch, in `[0, 1]`.
    pub train_accuracy: f32,
    /// Validation loss.
    pub val_loss: f32,
    /// Validation accuracy, in `[0, 1]` (for language modelling: of the next token).
    pub val_accuracy: f32,
    /// Which number the task scores itself by ([`val_score`](Self::val_score)); accuracy in
    /// records written before tasks had scores.
    #[serde(default)]
    pub score: Score,
}

/// The "higher is better" number a task names for the controller's plateau and final gates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    /// Share of predictions right, in `[0, 1]` (classification).
    #[default]
    Accuracy,
    /// Minus the perplexity, `-exp(loss)` with the loss in nats per token (language modelling).
    NegativePerplexity,
}

impl Score {
    /// The score of a mean `loss` and an `accuracy`.
    pub fn of(self, loss: f32, accuracy: f32) -> f32 {
        match self {
            Score::Accuracy => accuracy,
            Score::NegativePerplexity => -loss.exp(),
        }
    }

    /// How logs and reasons name it.
    pub fn name(self) -> &'static str {
        match self {
            Score::Accuracy => "accuracy",
            Score::NegativePerplexity => "negative perplexity",
        }
    }
}

impl GlobalMetrics {
    /// The validation score the task names (higher is better).
    pub fn val_score(&self) -> f32 {
        self.score.of(self.val_loss, self.val_accuracy)
    }

    /// Whether every number is finite.
    pub fn is_finite(&self) -> bool {
        [self.train_loss, self.train_accuracy, self.val_loss, self.val_accuracy].iter().all(|v| v.is_finite())
    }
}

/// One seeded layer as the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    /// Layer path in the model (e.g. `blocks.3.mlp.fc1`).
    pub layer: String,
    /// `Linear` or `Conv2d`.
    pub host: String,
    /// Every seed's lifecycle state.
    pub seeds: Vec<SeedInfo>,
    /// Health over the epoch.
    pub health: LayerHealthReport,
    /// Parameters one seed's blueprint adds, by blueprint name (blueprints this layer can grow).
    pub blueprint_params: BTreeMap<String, usize>,
}

/// A measured contribution of one EVALUATING seed: validation with it and with its alpha
/// forced to 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedEvaluation {
    /// The seed.
    pub seed: SeedAddress,
    /// Validation loss with the seed.
    pub loss_with: f32,
    /// Validation loss with the seed's contribution removed.
    pub loss_without: f32,
    /// Validation accuracy with the seed.
    pub accuracy_with: f32,
    /// Validation accuracy without it.
    pub accuracy_without: f32,
    /// Standard error of [`SeedEvaluation::contribution`]: the spread of the contribution over
    /// equal slices of the samples, divided by the root of their number (0 when not measured).
    /// A contribution within a few of these of 0 is noise.
    #[serde(default)]
    pub contribution_stderr: f32,
    /// Seeds whose contributions were removed together to measure this one: 1 for the seed
    /// alone; with the trainer's layer ablation, every EVALUATING seed of its layer, each of
    /// which then carries the group's numbers (and is kept or culled with it).
    #[serde(default = "one_seed")]
    pub ablated_together: u32,
}

/// Records written before group ablation measured every seed alone.
fn one_seed() -> u32 {
    1
}

impl SeedEvaluation {
    /// How much the seed lowers validation loss (positive: it helps).
    pub fn contribution(&self) -> f32 {
        self.loss_without - self.loss_with
    }
}

/// Everything the controller reads at an epoch boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemState {
    /// Global metrics.
    pub metrics: GlobalMetrics,
    /// Every seeded layer.
    pub layers: Vec<LayerState>,
    /// Contributions measured this epoch for EVALUATING seeds.
    pub evaluations: Vec<SeedEvaluation>,
    /// Parameters added by blueprints so far (seeds holding one).
    pub params_added: usize,
}

/// One lifecycle transition, as written to the event log (one JSON object a line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransitionEvent {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Epoch at which it happened.
    pub epoch: u32,
    /// Optimizer step at which it happened.
    pub step: u64,
    /// Layer name.
    pub layer: String,
    /// Seed id.
    pub seed: usize,
    /// Stage before.
    pub from: Stage,
    /// Stage after.
    pub to: Stage,
    /// Why.
    pub reason: String,
    /// Global metrics at the time.
    pub metrics: GlobalMetrics,
    /// The controller service that ordered it over the message bus (its consumer name); none
    /// for the controller inside the run's process and for the trainer's own moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}
