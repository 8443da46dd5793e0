//! What the neural policy sees at one decision point: every growth it could order (a free
//! dormant seed with a blueprint its layer can grow) as a row of numbers, the run as another, and
//! the limits no order may break. The same numbers feed the policy in a run, its training and the
//! explanation of each decision, so they are computed in one place.
//!
//! Every number is scaled to roughly `[-1, 1]` from quantities any preset has (shares, ratios,
//! logarithms of sizes), never raw widths or counts: a policy trained on small models must read
//! a ResNet or a transformer on the same scale.

use crate::{ControllerConfig, ControllerState};
use morphogen_contracts::{SeedAddress, Stage, SystemState};

/// Bumped whenever a feature is added, removed, reordered or computed differently: a policy
/// file trained on another version is refused (the run falls back to the heuristic).
pub const FEATURE_SCHEMA_VERSION: u32 = 1;

/// The features of one possible growth (a seed and a blueprint), in column order.
pub const CANDIDATE_FEATURES: [&str; 14] = [
    "dead_ratio",
    "correlation",
    "relative_variance",
    "log_variance",
    "failures",
    "conv_layer",
    "depth",
    "log_layer_width",
    "log_layer_seeds",
    "layer_active",
    "layer_failed",
    "blueprint_cost",
    "log_blueprint_cost_per_feature",
    "default_blueprint",
];

/// The features of the run at the decision point, in column order.
pub const RUN_FEATURES: [&str; 10] = [
    "log_epoch",
    "val_loss_change",
    "epochs_without_progress",
    "generalization_gap",
    "train_accuracy",
    "val_accuracy",
    "budget_used",
    "active_total",
    "queue_used",
    "log_layers",
];

/// One growth the policy may order.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The seed.
    pub address: SeedAddress,
    /// The blueprint it would grow.
    pub blueprint: String,
    /// Parameters the blueprint adds.
    pub cost: usize,
    /// Index of the seed's layer in [`SystemState::layers`].
    pub layer: usize,
}

/// Limits that hold whatever the policy scores: the controller's budgets, left at this point.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Most germinations this decision may order.
    pub picks: usize,
    /// Parameters blueprints may still add.
    pub params: usize,
    /// Seeds that may still take a blueprint in the model.
    pub active: usize,
    /// Seeds that may still take a blueprint, per layer (indexed like [`SystemState::layers`]).
    pub per_layer: Vec<usize>,
}

/// The numbers the policy decides from.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Possible growths, one row of [`CANDIDATE_FEATURES`] each in `candidate_features`.
    pub candidates: Vec<Candidate>,
    /// Row-major `[candidates, CANDIDATE_FEATURES.len()]`.
    pub candidate_features: Vec<f32>,
    /// One row of [`RUN_FEATURES`].
    pub run_features: Vec<f32>,
    /// What no set of orders may exceed.
    pub limits: Limits,
}

impl Observation {
    /// What the policy sees in `system`, for a controller with `config` and `memory`.
    pub fn of(system: &SystemState, config: &ControllerConfig, memory: &ControllerState) -> Self {
        let mut candidates = Vec::new();
        let mut candidate_features = Vec::new();
        let depth_span = system.layers.len().saturating_sub(1).max(1) as f32;
        for (index, layer) in system.layers.iter().enumerate() {
            let max_variance = layer.health.seeds.iter().map(|h| h.variance).fold(f32::MIN_POSITIVE, f32::max);
            let width = layer.seeds.last().map_or(1, |s| s.chunk.end.max(1));
            let active = layer.seeds.iter().filter(|s| s.stage.holds_blueprint()).count();
            let failed = layer.seeds.iter().filter(|s| s.failures > 0).count();
            let default = if layer.host == "Conv2d" { &config.conv_blueprint } else { &config.linear_blueprint };
            let layer_columns = [
                f32::from(u8::from(layer.host == "Conv2d")),
                index as f32 / depth_span,
                ln_scaled(width as f32),
                ln_scaled(layer.seeds.len() as f32),
                active as f32 / config.max_active_per_layer as f32,
                failed as f32 / layer.seeds.len().max(1) as f32,
            ];
            for seed in config.germinable_seeds(layer) {
                let Some(health) = layer.health.seeds.get(seed.seed) else { continue };
                let chunk = seed.chunk.len().max(1) as f32;
                for (blueprint, &cost) in &layer.blueprint_params {
                    candidate_features.extend([
                        health.dead_ratio,
                        health.correlation.clamp(-1.0, 1.0),
                        health.variance / max_variance,
                        (health.variance.max(0.0) + 1e-8).ln() / 10.0,
                        seed.failures as f32 / config.quarantine_after as f32,
                    ]);
                    candidate_features.extend(layer_columns);
                    candidate_features.extend([
                        cost as f32 / config.param_budget.max(1) as f32,
                        ln_scaled(cost as f32 / chunk),
                        f32::from(u8::from(blueprint == default)),
                    ]);
                    let address = SeedAddress { layer: layer.layer.clone(), seed: seed.seed };
                    candidates.push(Candidate { address, blueprint: blueprint.clone(), cost, layer: index });
                }
            }
        }
        Self {
            candidates,
            candidate_features,
            run_features: run_features(system, config, memory),
            limits: limits(system, config),
        }
    }

    /// The feature row of candidate `index`.
    pub fn row(&self, index: usize) -> &[f32] {
        let width = CANDIDATE_FEATURES.len();
        &self.candidate_features[index * width..(index + 1) * width]
    }

    /// Which candidates may still be ordered after `picks` (in order): within every limit, and
    /// not a seed already picked with another blueprint. Empty when no more picks are allowed.
    pub fn feasible_after(&self, picks: &[usize]) -> Vec<bool> {
        let l = &self.limits;
        if picks.len() >= l.picks || picks.len() >= l.active {
            return vec![false; self.candidates.len()];
        }
        let spent: usize = picks.iter().map(|&i| self.candidates[i].cost).sum();
        let mut per_layer = l.per_layer.clone();
        for &i in picks {
            let slot = &mut per_layer[self.candidates[i].layer];
            *slot = slot.saturating_sub(1);
        }
        self.candidates
            .iter()
            .map(|c| {
                spent + c.cost <= l.params
                    && per_layer[c.layer] > 0
                    && !picks.iter().any(|&i| self.candidates[i].address == c.address)
            })
            .collect()
    }
}

/// `ln(1 + x) / 10`: sizes from 1 to tens of thousands land in `[0, 1]`.
fn ln_scaled(x: f32) -> f32 {
    x.max(0.0).ln_1p() / 10.0
}

fn run_features(system: &SystemState, config: &ControllerConfig, memory: &ControllerState) -> Vec<f32> {
    let m = &system.metrics;
    let seeds = || system.layers.iter().flat_map(|l| &l.seeds);
    let active = seeds().filter(|s| s.stage.holds_blueprint()).count();
    let queued = seeds().filter(|s| matches!(s.stage, Stage::Germinated | Stage::Training)).count();
    let loss_change = memory.last_val_loss.map_or(0.0, |last| (m.val_loss - last) / last.abs().max(1e-6));
    vec![
        (m.epoch as f32).ln_1p() / 3.0,
        loss_change.clamp(-1.0, 1.0),
        memory.epochs_without_progress.min(5) as f32 / 5.0,
        ((m.val_loss - m.train_loss) / m.val_loss.abs().max(1e-6)).clamp(-1.0, 1.0),
        m.train_accuracy,
        m.val_accuracy,
        system.params_added as f32 / config.param_budget.max(1) as f32,
        active as f32 / config.max_active_total as f32,
        queued as f32 / config.max_training as f32,
        (system.layers.len() as f32).ln_1p() / 3.0,
    ]
}

fn limits(system: &SystemState, config: &ControllerConfig) -> Limits {
    let holding = |l: &morphogen_contracts::LayerState| l.seeds.iter().filter(|s| s.stage.holds_blueprint()).count();
    let active: usize = system.layers.iter().map(holding).sum();
    let growing = system.metrics.val_accuracy < config.accuracy_target;
    Limits {
        picks: if growing { config.max_germinations_per_epoch } else { 0 },
        params: config.param_budget.saturating_sub(system.params_added),
        active: config.max_active_total.saturating_sub(active),
        per_layer: system.layers.iter().map(|l| config.max_active_per_layer.saturating_sub(holding(l))).collect(),
    }
}
