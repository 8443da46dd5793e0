//! How the trainer runs: [`TrainerConfig`] and its validation.

use crate::{Ablation, LrSchedule, RollbackRule, Widening};
use morphogen_contracts::MorphogenError;
use serde::{Deserialize, Serialize};

/// How the trainer runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    /// Epochs to train.
    pub epochs: u32,
    /// Examples (images, text windows) per optimizer step.
    pub batch_size: usize,
    /// Optimizer steps an epoch takes, walking the training set pass after pass; unset (the
    /// default), an epoch is one pass. Every epoch ends with validation, the controller's
    /// decisions and a checkpoint, and the controller counts its stages in epochs: set this to
    /// time growth in steps, whatever the data set's size (see [`crate::EpochPlan`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_epoch: Option<usize>,
    /// Learning rate.
    pub learning_rate: f64,
    /// How the learning rate moves over the run: constant, or cosine decay from
    /// `learning_rate` to `min_learning_rate` over every step of every epoch.
    pub lr_schedule: LrSchedule,
    /// Where a decaying schedule ends.
    pub min_learning_rate: f64,
    /// Seed of the shuffling order.
    pub seed: u64,
    /// A step loss above this many times its moving average is a spike and triggers a rollback.
    pub spike_factor: f32,
    /// Rollbacks allowed before the run stops with an error.
    pub max_rollbacks: u32,
    /// Validation examples used to measure each EVALUATING seed's contribution.
    pub eval_samples: usize,
    /// Most measurements of EVALUATING seeds per epoch, each one validation pass (a seed, or a
    /// layer's seeds with `ablation = "layer"`); the rest wait for the next epoch.
    pub max_evaluations_per_epoch: usize,
    /// Whether an EVALUATING seed's contribution is measured by removing it alone or with the
    /// other EVALUATING seeds of its layer.
    pub ablation: Ablation,
    /// Where to save a checkpoint (model, optimizer, controller state) after every epoch; a
    /// rollback then restores the newest checkpoint that verifies. Without it, rollbacks use an
    /// in-memory copy of the last good epoch.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Examples per forward pass when validating and measuring EVALUATING seeds: no gradients
    /// are kept, so a batch larger than training's fills a GPU better (results do not depend on
    /// it).
    pub eval_batch_size: usize,
    /// Steps between reads of the step losses back from the device for the NaN/Inf and spike
    /// checks (and the progress display): a diverging loss is caught within this many steps. 1
    /// reads after every step, which stalls a GPU's queue each time.
    pub loss_check_every: usize,
    /// Check every seeded layer's invariants after every step (legal states, alpha in range,
    /// finite blueprints): slow, for debugging; a violation stops the run with the layer named.
    pub debug: bool,
    /// Conditions checked at every epoch end that roll the run back to its last good state
    /// (and may switch a feature flag off for the rest of the run); none by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback_rules: Vec<RollbackRule>,
    /// Widen the host after an epoch, once or several times (`[trainer.widen]`, the transformer
    /// and the ResNet; ADR 0025).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub widen: Option<Widening>,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 128,
            steps_per_epoch: None,
            learning_rate: 1e-3,
            lr_schedule: LrSchedule::Constant,
            min_learning_rate: 0.0,
            seed: 42,
            spike_factor: 5.0,
            max_rollbacks: 3,
            eval_samples: 2000,
            max_evaluations_per_epoch: 16,
            ablation: Ablation::Seed,
            checkpoint_dir: None,
            eval_batch_size: 1024,
            loss_check_every: 32,
            debug: false,
            rollback_rules: Vec::new(),
            widen: None,
        }
    }
}

impl TrainerConfig {
    /// Checks every value is usable; the error names the field.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let counts = [self.batch_size, self.eval_samples, self.eval_batch_size, self.loss_check_every];
        let problem = if self.epochs == 0 || counts.contains(&0) || self.steps_per_epoch == Some(0) {
            Some(
                "epochs, batch_size, steps_per_epoch, eval_samples, eval_batch_size and loss_check_every must be at \
                 least 1",
            )
        } else if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            Some("learning_rate must be a finite value > 0")
        } else if !(self.min_learning_rate >= 0.0 && self.min_learning_rate <= self.learning_rate) {
            Some("min_learning_rate must be between 0 and learning_rate")
        } else if self.spike_factor.is_nan() || self.spike_factor <= 1.0 {
            Some("spike_factor must be > 1")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(MorphogenError::InvalidConfig {
                component: "trainer".into(),
                problem: problem.into(),
                hint: "fix the value in the config file or on the command line".into(),
            });
        }
        self.widen.map_or(Ok(()), |widen| widen.validate(self.epochs))?;
        self.rollback_rules.iter().enumerate().try_for_each(|(i, rule)| rule.validate(i))
    }
}
