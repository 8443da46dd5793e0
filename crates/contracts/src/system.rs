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
    /// Validation accuracy, in `[0, 1]`.
    pub val_accuracy: f32,
}

impl GlobalMetrics {
    /// Whether every number is finite.
    pub fn is_finite(&self) -> bool {
        [self.train_loss, self.train_accuracy, self.val_loss, self.val_accuracy].iter().all(|v| v.is_finite())
    }
}

/// One seeded layer as the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    /// Layer name (the model's field name).
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
}
