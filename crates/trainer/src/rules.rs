//! Automatic rollback rules: conditions checked at every epoch end that roll the run back to
//! its last good state and, where a rule names a feature flag, switch that flag off for the
//! rest of the run.

use crate::resources::Resources;
use morphogen_contracts::{GlobalMetrics, MorphogenError};
use morphogen_flags::Feature;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a rule watches. In TOML, one `[[trainer.rollback_rules]]` table each, with `rule` naming
/// the condition: `{ rule = "memory_growth", factor = 1.5, flag = "kernels" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum RollbackRule {
    /// Validation loss above `factor` times the last good epoch's.
    LossSpike {
        /// How many times the last good validation loss counts as a spike (> 1).
        factor: f32,
        /// Feature flag to switch off for the rest of the run when this fires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flag: Option<String>,
    },
    /// A NaN or infinite training loss, validation loss or validation accuracy for the epoch.
    NonFinite {
        /// Feature flag to switch off for the rest of the run when this fires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flag: Option<String>,
    },
    /// Errors and fast-path fallbacks reported during the epoch, per optimizer step, above `max`.
    ErrorRate {
        /// Most errors and fallbacks per step (>= 0).
        max: f64,
        /// Feature flag to switch off for the rest of the run when this fires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flag: Option<String>,
    },
    /// Seeded-layer forward work above `max_ratio` times the rest of the forward pass (the
    /// epoch-end measurement of [`Resources::overhead_ratio`]).
    Overhead {
        /// Largest seeded share allowed, as a ratio to the host's forward time (> 0).
        max_ratio: f64,
        /// Feature flag to switch off for the rest of the run when this fires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flag: Option<String>,
    },
    /// Resident memory above `factor` times its value at the run's first epoch end.
    MemoryGrowth {
        /// Growth allowed over the first measurement (> 1).
        factor: f64,
        /// Feature flag to switch off for the rest of the run when this fires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flag: Option<String>,
    },
}

/// What the rules look at after one epoch.
#[derive(Clone, Debug)]
pub(crate) struct EpochFacts<'a> {
    pub metrics: &'a GlobalMetrics,
    /// Validation loss of the last good epoch, if any.
    pub last_good_val_loss: Option<f32>,
    /// Errors and fallbacks reported during the epoch.
    pub errors: u64,
    /// Optimizer steps of the epoch.
    pub steps: usize,
    pub resources: &'a Resources,
    /// Resident memory at the run's first measurement.
    pub baseline_rss: Option<u64>,
}

/// A rule that fired: why, and the flag to switch off.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Firing {
    pub rule: &'static str,
    pub reason: String,
    pub flag: Option<Feature>,
}

impl RollbackRule {
    /// The rule's name, as written in the `rule` key.
    pub fn name(&self) -> &'static str {
        match self {
            RollbackRule::LossSpike { .. } => "loss_spike",
            RollbackRule::NonFinite { .. } => "non_finite",
            RollbackRule::ErrorRate { .. } => "error_rate",
            RollbackRule::Overhead { .. } => "overhead",
            RollbackRule::MemoryGrowth { .. } => "memory_growth",
        }
    }

    fn flag_name(&self) -> Option<&str> {
        match self {
            RollbackRule::LossSpike { flag, .. }
            | RollbackRule::NonFinite { flag }
            | RollbackRule::ErrorRate { flag, .. }
            | RollbackRule::Overhead { flag, .. }
            | RollbackRule::MemoryGrowth { flag, .. } => flag.as_deref(),
        }
    }

    /// The feature flag this rule switches off when it fires.
    pub fn flag(&self) -> Option<Feature> {
        self.flag_name().and_then(|name| Feature::from_str(name).ok())
    }

    /// Checks the thresholds and the flag name; `index` is the rule's place in the list, for
    /// the error's field name (`trainer.rollback_rules[2].factor`).
    pub fn validate(&self, index: usize) -> Result<(), MorphogenError> {
        let field = |name: &str| format!("trainer.rollback_rules[{index}].{name}");
        let bad = |name: &str, problem: String| MorphogenError::InvalidConfig {
            component: field(name),
            problem,
            hint: "fix the rule in the [trainer] table of the config file".into(),
        };
        match *self {
            RollbackRule::LossSpike { factor, .. } if !(factor.is_finite() && factor > 1.0) => {
                return Err(bad("factor", format!("{factor} is not a finite factor > 1")))
            }
            RollbackRule::ErrorRate { max, .. } if !(max.is_finite() && max >= 0.0) => {
                return Err(bad("max", format!("{max} is not a finite rate >= 0")))
            }
            RollbackRule::Overhead { max_ratio, .. } if !(max_ratio.is_finite() && max_ratio > 0.0) => {
                return Err(bad("max_ratio", format!("{max_ratio} is not a finite ratio > 0")))
            }
            RollbackRule::MemoryGrowth { factor, .. } if !(factor.is_finite() && factor > 1.0) => {
                return Err(bad("factor", format!("{factor} is not a finite factor > 1")))
            }
            _ => {}
        }
        match self.flag_name().map(Feature::from_str) {
            Some(Err(error)) => Err(bad("flag", error.to_string())),
            _ => Ok(()),
        }
    }

    /// Why this rule fires on `facts`, if it does.
    pub(crate) fn check(&self, facts: &EpochFacts) -> Option<Firing> {
        let m = facts.metrics;
        let reason = match *self {
            RollbackRule::LossSpike { factor, .. } => {
                let last = facts.last_good_val_loss?;
                (m.val_loss > factor * last)
                    .then(|| format!("validation loss {:.4} > {factor} x last good {last:.4}", m.val_loss))
            }
            RollbackRule::NonFinite { .. } => {
                let values = [m.train_loss, m.val_loss, m.val_accuracy];
                values.iter().any(|v| !v.is_finite()).then(|| {
                    format!(
                        "non-finite epoch metrics: train loss {}, val loss {}, val accuracy {}",
                        m.train_loss, m.val_loss, m.val_accuracy
                    )
                })
            }
            RollbackRule::ErrorRate { max, .. } => {
                let rate = facts.errors as f64 / facts.steps.max(1) as f64;
                (rate > max).then(|| {
                    format!("{} errors and fallbacks in {} steps: {rate:.3} a step > {max}", facts.errors, facts.steps)
                })
            }
            RollbackRule::Overhead { max_ratio, .. } => {
                let ratio = facts.resources.overhead_ratio();
                (ratio > max_ratio).then(|| format!("seeded-layer overhead {ratio:.4} x the host > {max_ratio}"))
            }
            RollbackRule::MemoryGrowth { factor, .. } => {
                let (now, base) = (facts.resources.rss_bytes?, facts.baseline_rss?);
                (now as f64 > factor * base as f64)
                    .then(|| format!("resident memory {now} bytes > {factor} x {base} bytes at the first epoch"))
            }
        }?;
        Some(Firing {
            rule: self.name(),
            reason: format!("rollback rule {}: {reason}", self.name()),
            flag: self.flag(),
        })
    }
}
