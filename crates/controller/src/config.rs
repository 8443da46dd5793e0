use morphogen_contracts::{LayerState, MorphogenError, SeedInfo, Stage};
use serde::{Deserialize, Serialize};

/// Every knob of the heuristic controller, with the defaults `morphogen train` uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    /// A gain of the validation score (accuracy, or negative perplexity for language
    /// modelling) below this counts as no progress.
    pub plateau_delta: f32,
    /// Epochs without progress before growing (with the `plateau` trigger).
    pub patience: u32,
    /// When to grow: on a validation plateau, or at every epoch end from the first.
    pub trigger: GrowthTrigger,
    /// Which dormant seeds germinate: the unhealthiest, or random ones (an ablation).
    pub sites: SiteSelection,
    /// No growth once validation accuracy reaches this.
    pub accuracy_target: f32,
    /// Most seeds holding a blueprint in one layer at once.
    pub max_active_per_layer: usize,
    /// Most seeds holding a blueprint in the model at once.
    pub max_active_total: usize,
    /// Most germinations ordered at one epoch boundary.
    pub max_germinations_per_epoch: usize,
    /// Most seeds in TRAINING at once (the rest wait in GERMINATED).
    pub max_training: usize,
    /// A seed germinated while fewer than `max_training` seeds train starts TRAINING in the same
    /// decision instead of waiting in GERMINATED until the next epoch end: one epoch sooner
    /// through the lifecycle (off, the default: the design's queue step).
    pub train_at_once: bool,
    /// Most parameters blueprints may add to the model.
    pub param_budget: usize,
    /// Epochs a seed trains in isolation before its training gate.
    pub training_epochs: u32,
    /// The training gate's bound on the blueprint's output RMS, relative to the host chunk's
    /// standard deviation.
    pub max_output_ratio: f32,
    /// The training gate's floor on the blueprint's output RMS (it must have learned something).
    pub min_output_rms: f32,
    /// Epochs in STABILIZATION before evaluation.
    pub stabilization_epochs: u32,
    /// Validation-loss reduction a seed must bring in EVALUATING to be kept.
    pub min_contribution: f32,
    /// The evaluation gate also asks the reduction to be at least this many of its standard
    /// errors (measured over slices of the samples): above the noise floor. 0 turns it off; 2
    /// (the default) kept the default run's accuracy with a fifth fewer parameters grown
    /// (`docs/results.md`).
    pub min_contribution_z: f32,
    /// Epochs in FINE_TUNING before the final gate.
    pub fine_tuning_epochs: u32,
    /// Failures after which a layer quarantines a seed (mirror of the layers' setting).
    pub quarantine_after: u32,
    /// Blueprint for seeds of Linear layers.
    pub linear_blueprint: String,
    /// Blueprint for seeds of Conv2d layers.
    pub conv_blueprint: String,
    /// Grafting strategy for every germination.
    pub strategy: String,
    /// Germinate only in layers whose path contains one of these (`["mlp.branch"]`: the
    /// transformer's branches); empty, the default: in every layer.
    pub grow_in: Vec<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            plateau_delta: 0.002,
            patience: 1,
            trigger: GrowthTrigger::EveryEpoch,
            sites: SiteSelection::Health,
            accuracy_target: 0.99,
            max_active_per_layer: 8,
            max_active_total: 16,
            max_germinations_per_epoch: 4,
            max_training: 4,
            train_at_once: false,
            param_budget: 200_000,
            training_epochs: 1,
            max_output_ratio: 10.0,
            min_output_rms: 1e-6,
            stabilization_epochs: 1,
            min_contribution: 0.0,
            min_contribution_z: 2.0,
            fine_tuning_epochs: 1,
            quarantine_after: 3,
            linear_blueprint: "residual_mlp".into(),
            conv_blueprint: "small_conv".into(),
            strategy: "fixed_ramp".into(),
            grow_in: Vec::new(),
        }
    }
}

/// When the controller grows (`[controller] trigger`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthTrigger {
    /// After `patience` epochs whose validation score gained at most `plateau_delta`.
    Plateau,
    /// At every epoch end, from the first, while any budget allows (the default: on the
    /// default run it ends 0.5 points above growth off, where the plateau trigger starts too
    /// late for any seed to finish; `docs/results.md`).
    #[default]
    EveryEpoch,
}

/// Which dormant seeds germinate (`[controller] sites`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteSelection {
    /// The unhealthiest first: dead features, correlated features, low variance.
    #[default]
    Health,
    /// In a random order drawn from the epoch, layer and seed alone: the ablation that shows
    /// what choosing by health is worth.
    Random,
}

impl ControllerConfig {
    /// Checks every value is in range; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let bad = |field: &str, hint: &str| {
            Err(MorphogenError::InvalidConfig {
                component: "controller".into(),
                problem: format!("{field} is out of range"),
                hint: hint.into(),
            })
        };
        if !(self.plateau_delta.is_finite() && self.plateau_delta >= 0.0) {
            return bad("plateau_delta", "use a finite value >= 0");
        }
        if !(0.0..=1.0).contains(&self.accuracy_target) {
            return bad("accuracy_target", "use a value in [0, 1]");
        }
        if self.max_active_per_layer == 0 || self.max_active_total == 0 || self.max_training == 0 {
            return bad("max_active_per_layer / max_active_total / max_training", "use at least 1");
        }
        if !(self.max_output_ratio > 0.0 && self.min_output_rms >= 0.0) {
            return bad("max_output_ratio / min_output_rms", "use max_output_ratio > 0 and min_output_rms >= 0");
        }
        if !self.min_contribution.is_finite() {
            return bad("min_contribution", "use a finite value");
        }
        if !(self.min_contribution_z.is_finite() && self.min_contribution_z >= 0.0) {
            return bad("min_contribution_z", "use a finite value >= 0 (0 turns the noise test off)");
        }
        if self.quarantine_after == 0 {
            return bad("quarantine_after", "use at least 1");
        }
        if [&self.linear_blueprint, &self.conv_blueprint, &self.strategy].iter().any(|s| s.is_empty()) {
            return bad("linear_blueprint / conv_blueprint / strategy", "name a registered blueprint and strategy");
        }
        if self.grow_in.iter().any(|part| part.is_empty()) {
            return bad(
                "grow_in",
                "name parts of layer paths (\"mlp.branch\"), or leave the list empty for every layer",
            );
        }
        Ok(())
    }

    /// Whether seeds of the layer at `path` may germinate (`grow_in`).
    pub fn may_grow_in(&self, path: &str) -> bool {
        self.grow_in.is_empty() || self.grow_in.iter().any(|part| path.contains(part.as_str()))
    }

    /// The seeds of `layer` that may germinate now: dormant, out of embargo, not quarantined,
    /// in a layer `grow_in` allows.
    pub fn germinable_seeds<'a>(&self, layer: &'a LayerState) -> impl Iterator<Item = &'a SeedInfo> {
        let allowed = self.may_grow_in(&layer.layer);
        let quarantine_after = self.quarantine_after;
        layer.seeds.iter().filter(move |seed| {
            allowed && seed.stage == Stage::Dormant && seed.embargo_epochs_left == 0 && seed.failures < quarantine_after
        })
    }
}
