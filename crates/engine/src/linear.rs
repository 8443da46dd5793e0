//! [`SeededLinear`]: a Linear layer carrying seeds, used wherever `burn::nn::Linear` would be.

use crate::grafting::GraftSignals;
use crate::precision::Precision;
use crate::seeded_layer::seeded_layer;
use crate::seeds::{HostKind, SeedCore, SeedOptions};
use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;

/// Configuration of a [`SeededLinear`]; reads like Burn's `LinearConfig`, plus seeds.
#[derive(Config, Debug)]
pub struct SeededLinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features, split into `num_seeds` chunks.
    pub d_output: usize,
    /// Number of seeds (chunks of the output features, sizes differing by at most one);
    /// `1 <= num_seeds <= d_output`.
    #[config(default = 1)]
    pub num_seeds: usize,
    /// Whether the host layer has a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Host weight initializer (Burn's Linear default).
    #[config(default = "Initializer::KaimingUniform{gain: 1.0 / 3.0f64.sqrt(), fan_out_only: false}")]
    pub initializer: Initializer,
    /// Name of the layer used on its own, in errors and reports; inside a model, the layer is
    /// named by its path instead (see [`SeededModel`](trait@crate::SeededModel)).
    #[config(default = "String::from(\"seeded_linear\")")]
    pub name: String,
    /// Lifecycle rules, blueprints and grafting strategies.
    #[config(default = "SeedOptions::new()")]
    pub options: SeedOptions,
    /// The float type the host's product computes in (the seeds' pass stays in the model's).
    #[config(default = "Precision::F32")]
    pub precision: Precision,
}

/// A Linear host layer whose output features are split into seeds.
///
/// Output: `host(x)` plus, for each seed holding a blueprint, its contribution on its chunk as
/// its stage dictates (see [`morphogen_contracts::Stage`]). With every seed dormant the output
/// and the host's gradients are exactly those of `host` alone. The lifecycle API
/// (`request_germination`, `advance`, `seed`, `health_report`, ...) is the layer's own; `core`
/// holds the rest.
#[derive(Module, Debug)]
pub struct SeededLinear<B: Backend> {
    /// The host layer: weight `[d_input, d_output]`, bias `[d_output]`.
    pub host: Linear<B>,
    /// Seed state, banks, telemetry and kernel guard.
    pub core: SeedCore<B>,
    /// The float type the host's product computes in (not saved: it is configuration).
    #[module(skip)]
    pub precision: Precision,
}

impl SeededLinearConfig {
    /// Builds the layer, or says what is wrong with the config.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<SeededLinear<B>, MorphogenError> {
        let host = LinearConfig::new(self.d_input, self.d_output)
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone());
        let core = SeedCore::new(&self.name, HostKind::Linear, [self.d_output, self.num_seeds], &self.options, device)?;
        Ok(SeededLinear { host: host.init(device), core, precision: self.precision })
    }

    /// Builds the layer; panics with [`try_init`](Self::try_init)'s error (Burn's convention).
    pub fn init<B: Backend>(&self, device: &B::Device) -> SeededLinear<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Wraps an existing Linear layer (its weights kept as they are) with this config's seeds.
    pub fn try_wrap<B: Backend>(&self, host: Linear<B>) -> Result<SeededLinear<B>, MorphogenError> {
        let [d_input, d_output] = host.weight.dims();
        if [d_input, d_output] != [self.d_input, self.d_output] {
            return Err(MorphogenError::ShapeMismatch {
                layer: self.name.clone(),
                expected: format!("a Linear host of {} -> {}", self.d_input, self.d_output),
                got: vec![d_input, d_output],
            });
        }
        let device = host.weight.device();
        let core = SeedCore::new(&self.name, HostKind::Linear, [d_output, self.num_seeds], &self.options, &device)?;
        Ok(SeededLinear { host, core, precision: self.precision })
    }
}

impl<B: Backend> SeededLinear<B> {
    /// `[..., d_input] -> [..., d_output]`, any number of leading dimensions.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let h = self.precision.linear(&self.host, x);
        let dims = h.dims();
        let features = dims[D - 1];
        let rows = dims[..D - 1].iter().product();
        self.core.apply(h.reshape([rows, features, 1]), None).reshape(dims)
    }

    /// [`forward`](Self::forward) with the input's shape checked first.
    pub fn try_forward<const D: usize>(&self, x: Tensor<B, D>) -> Result<Tensor<B, D>, MorphogenError> {
        let d_input = self.host.weight.dims()[0];
        if D == 0 || x.dims()[D - 1] != d_input {
            return Err(MorphogenError::ShapeMismatch {
                layer: self.core.name().to_string(),
                expected: format!("[..., {d_input}]"),
                got: x.dims().to_vec(),
            });
        }
        Ok(self.forward(x))
    }

    /// This layer over another host (a widened one): the same seeds' setup and precision,
    /// every seed dormant. Refused while a seed holds a blueprint.
    pub fn with_host(&self, host: Linear<B>) -> Result<Self, MorphogenError> {
        let core = self.core.over_features(host.weight.dims()[1])?;
        Ok(SeededLinear { host, core, precision: self.precision })
    }

    /// Moves every GRAFTING seed's alpha one step by its strategy (on device).
    pub fn graft_step(&mut self, signals: &GraftSignals<B>) -> Result<(), MorphogenError> {
        let weight = self.host.weight.val();
        self.core.graft_step_with(signals, || weight.transpose())
    }
}

seeded_layer!(SeededLinear);
