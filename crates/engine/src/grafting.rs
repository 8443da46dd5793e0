//! Grafting strategies: how fast alpha moves from 0 to 1 while a seed is GRAFTING.
//!
//! Every strategy ramps alpha by `1 / ramp_steps` a step, times a gate factor in `[0, 1]` computed
//! on device from a training signal, so all grafting seeds advance in one vectorized update with
//! no read back to the host. Strategies are data ([`GraftingSpec`]); register your own with
//! [`StrategyRegistry::register`].

use crate::registry::{Registry, Spec};
use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;
use serde::{Deserialize, Serialize};

/// What slows or pauses a ramp.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Gate {
    /// Never: a fixed ramp.
    Always,
    /// Full speed while the loss is below its moving average, `stall_factor` of it otherwise.
    LossImproving {
        /// Speed factor while the loss is not improving, in `[0, 1]`.
        stall_factor: f32,
        /// Decay of the loss moving average, in `[0, 1)`.
        ema_decay: f32,
    },
    /// Pause while the relative drift of the host weights feeding the chunk, since the last
    /// step, exceeds `threshold`.
    DriftBelow {
        /// Largest relative drift `|W - W_prev| / |W_prev|` at which the ramp moves.
        threshold: f32,
    },
    /// Pause while the seed's blueprint gradient norm is outside `[lower, upper]`.
    GradNormWithin {
        /// Smallest gradient norm at which the ramp moves.
        lower: f32,
        /// Largest gradient norm at which the ramp moves.
        upper: f32,
    },
}

/// A named grafting strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraftingSpec {
    /// Name used in germination requests.
    pub name: String,
    /// Steps a full ramp takes when the gate is fully open.
    pub ramp_steps: u32,
    /// The gate.
    pub gate: Gate,
}

/// Thresholds of the four built-in strategies.
#[derive(Config, Debug, PartialEq)]
pub struct GraftingConfig {
    /// Steps for alpha to go from 0 to 1 at full speed.
    #[config(default = 100)]
    pub ramp_steps: u32,
    /// `performance_linked`: speed factor while the loss is not improving.
    #[config(default = 0.25)]
    pub stall_factor: f32,
    /// `performance_linked`: decay of the loss moving average.
    #[config(default = 0.9)]
    pub loss_ema_decay: f32,
    /// `drift_controlled`: largest per-step relative host weight drift at which alpha moves.
    #[config(default = 0.05)]
    pub drift_threshold: f32,
    /// `grad_norm_gated`: smallest blueprint gradient norm at which alpha moves.
    #[config(default = 1e-6)]
    pub grad_norm_lower: f32,
    /// `grad_norm_gated`: largest blueprint gradient norm at which alpha moves.
    #[config(default = 10.0)]
    pub grad_norm_upper: f32,
}

impl GraftingSpec {
    /// Checks the numbers are in range.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let problem = match self.gate {
            _ if self.ramp_steps == 0 => Some("ramp_steps is 0".to_string()),
            Gate::LossImproving { stall_factor, ema_decay }
                if !(0.0..=1.0).contains(&stall_factor) || !(0.0..1.0).contains(&ema_decay) =>
            {
                Some(format!("stall_factor {stall_factor} or ema_decay {ema_decay} out of range"))
            }
            Gate::DriftBelow { threshold } if threshold.is_nan() || threshold <= 0.0 => {
                Some(format!("drift threshold {threshold} is not positive"))
            }
            Gate::GradNormWithin { lower, upper } if !(lower >= 0.0 && lower < upper) => {
                Some(format!("grad-norm range [{lower}, {upper}] is empty or negative"))
            }
            _ => None,
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(MorphogenError::InvalidConfig {
                component: format!("grafting strategy '{}'", self.name),
                problem,
                hint: "ramp_steps >= 1, stall_factor in [0,1], ema_decay in [0,1), threshold > 0, 0 <= lower < upper"
                    .into(),
            }),
        }
    }
}

/// The grafting strategies a layer knows, by name.
pub type StrategyRegistry = Registry<GraftingSpec>;

impl Default for StrategyRegistry {
    fn default() -> Self {
        Self::from_config(&GraftingConfig::new()).expect("defaults are valid")
    }
}

impl StrategyRegistry {
    /// `fixed_ramp`, `performance_linked`, `drift_controlled` and `grad_norm_gated` with the
    /// config's thresholds.
    pub fn from_config(config: &GraftingConfig) -> Result<Self, MorphogenError> {
        let spec = |name: &str, gate| GraftingSpec { name: name.into(), ramp_steps: config.ramp_steps, gate };
        Self::from_specs(vec![
            spec("fixed_ramp", Gate::Always),
            spec(
                "performance_linked",
                Gate::LossImproving { stall_factor: config.stall_factor, ema_decay: config.loss_ema_decay },
            ),
            spec("drift_controlled", Gate::DriftBelow { threshold: config.drift_threshold }),
            spec(
                "grad_norm_gated",
                Gate::GradNormWithin { lower: config.grad_norm_lower, upper: config.grad_norm_upper },
            ),
        ])
    }
}

impl Spec for GraftingSpec {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), MorphogenError> {
        GraftingSpec::validate(self)
    }
}

/// Training signals for one grafting step, all on device.
#[derive(Clone, Debug)]
pub struct GraftSignals<B: Backend> {
    /// The step's training loss, shape `[1]` (for `LossImproving` gates).
    pub loss: Option<Tensor<B, 1>>,
    /// Per-seed blueprint gradient norms, shape `[num_seeds]` (for `GradNormWithin` gates);
    /// see `seed_grad_norms` on the seeded layers.
    pub seed_grad_norms: Option<Tensor<B, 1>>,
}

impl<B: Backend> Default for GraftSignals<B> {
    fn default() -> Self {
        Self { loss: None, seed_grad_norms: None }
    }
}

impl<B: Backend> GraftSignals<B> {
    /// No signals: enough for `fixed_ramp` and `drift_controlled` (the layer measures drift).
    pub fn new() -> Self {
        Self::default()
    }

    /// With the step's loss.
    pub fn with_loss(mut self, loss: Tensor<B, 1>) -> Self {
        self.loss = Some(loss);
        self
    }

    /// With per-seed blueprint gradient norms.
    pub fn with_seed_grad_norms(mut self, norms: Tensor<B, 1>) -> Self {
        self.seed_grad_norms = Some(norms);
        self
    }
}

/// The grafting gates' memory between steps: not part of the module record (it is not a
/// parameter), so checkpoints save and restore it through [`SeedCore::graft_memory`](crate::SeedCore::graft_memory) and
/// [`SeedCore::restore_graft_memory`](crate::SeedCore::restore_graft_memory).
#[derive(Clone, Debug)]
pub struct GraftMemory<B: Backend> {
    /// Each `LossImproving` strategy's loss moving average, shape `[1]`, by strategy id.
    pub loss_ema: Vec<(usize, Tensor<B, 1>)>,
    /// The host weight rows, `[features, fan_in]`, a drift gate measured last, if any.
    pub drift_reference: Option<Tensor<B, 2>>,
}

/// Per-layer device state the gates keep between steps.
#[derive(Clone, Debug, Default)]
pub(crate) struct GateMemory<B: Backend> {
    /// Moving average of the loss, per `LossImproving` strategy id.
    pub loss_ema: Vec<(usize, Tensor<B, 1>)>,
}

/// The gate factor of one strategy: a scalar `[1]` or per-seed `[num_seeds]` tensor in `[0, 1]`.
pub(crate) fn gate_factor<B: Backend>(
    id: usize,
    spec: &GraftingSpec,
    signals: &GraftSignals<B>,
    drift: Option<&Tensor<B, 1>>,
    alpha: &Tensor<B, 1>,
    memory: &mut GateMemory<B>,
    missing: impl Fn(&str, &str) -> MorphogenError,
) -> Result<Tensor<B, 1>, MorphogenError> {
    match spec.gate {
        Gate::Always => Ok(Tensor::ones([1], &alpha.device())),
        Gate::LossImproving { stall_factor, ema_decay } => {
            let loss = signals
                .loss
                .clone()
                .ok_or_else(|| missing("loss", "pass GraftSignals::new().with_loss(loss.clone().detach())"))?;
            let loss = loss.detach();
            let slot = memory.loss_ema.iter().position(|(k, _)| *k == id);
            let ema = slot.map_or_else(|| loss.clone(), |i| memory.loss_ema[i].1.clone());
            let improving = loss.clone().lower_equal(ema.clone()).float();
            let factor = improving.clone() + (improving.neg() + 1.0) * stall_factor;
            let next = ema * ema_decay + loss * (1.0 - ema_decay);
            match slot {
                Some(i) => memory.loss_ema[i].1 = next,
                None => memory.loss_ema.push((id, next)),
            }
            Ok(factor)
        }
        Gate::DriftBelow { threshold } => {
            let drift = drift.expect("the layer measures drift when a drift gate is in use");
            Ok(drift.clone().lower_equal_elem(threshold).float())
        }
        Gate::GradNormWithin { lower, upper } => {
            let norms = signals.seed_grad_norms.clone().ok_or_else(|| {
                missing(
                    "per-seed gradient norm",
                    "pass GraftSignals::new().with_seed_grad_norms(layer.seed_grad_norms(&grads))",
                )
            })?;
            // A GRAFTING blueprint's gradient is weighed by its alpha (blend.rs): judge it at
            // weight 1. At alpha 0 it is 0 whatever the blueprint learned, so an unstarted seed
            // takes its first step.
            let alpha = alpha.clone().detach();
            let at_weight_one = norms.detach() / alpha.clone().clamp_min(f32::MIN_POSITIVE);
            let inside =
                at_weight_one.clone().greater_equal_elem(lower).float() * at_weight_one.lower_equal_elem(upper).float();
            Ok(inside.max_pair(alpha.lower_equal_elem(0.0).float()))
        }
    }
}
