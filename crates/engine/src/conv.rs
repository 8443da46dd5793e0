//! [`SeededConv2d`]: a Conv2d layer whose output channels are split into seeds.

use crate::grafting::GraftSignals;
use crate::seeded_layer::seeded_layer;
use crate::seeds::{HostKind, SeedCore, SeedOptions};
use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;

/// Configuration of a [`SeededConv2d`]; reads like Burn's `Conv2dConfig`, plus seeds.
#[derive(Config, Debug)]
pub struct SeededConv2dConfig {
    /// `[in, out]` channels; the `out` channels are split into seeds.
    pub channels: [usize; 2],
    /// Kernel size.
    pub kernel_size: [usize; 2],
    /// Stride.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Dilation.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Groups.
    #[config(default = 1)]
    pub groups: usize,
    /// Padding.
    #[config(default = "PaddingConfig2d::Valid")]
    pub padding: PaddingConfig2d,
    /// Whether the host layer has a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Host weight initializer (Burn's Conv2d default).
    #[config(default = "Initializer::KaimingUniform{gain: 1.0 / 3.0f64.sqrt(), fan_out_only: false}")]
    pub initializer: Initializer,
    /// Number of seeds (groups of output channels); `1 <= num_seeds <= channels[1]`.
    #[config(default = 1)]
    pub num_seeds: usize,
    /// Name of the layer used on its own, in errors and reports; inside a model, the layer is
    /// named by its path instead (see [`SeededModel`](trait@crate::SeededModel)).
    #[config(default = "String::from(\"seeded_conv2d\")")]
    pub name: String,
    /// Lifecycle rules, blueprints and grafting strategies.
    #[config(default = "SeedOptions::new()")]
    pub options: SeedOptions,
}

/// A Conv2d host layer whose output channels are split into seeds. Dense blueprints act per
/// pixel on a seed's channels; conv blueprints see its channels as an image. The lifecycle API
/// is the layer's own, as on [`SeededLinear`](crate::SeededLinear); `core` holds the rest.
#[derive(Module, Debug)]
pub struct SeededConv2d<B: Backend> {
    /// The host layer.
    pub host: Conv2d<B>,
    /// Seed state, banks, telemetry and kernel guard.
    pub core: SeedCore<B>,
}

impl SeededConv2dConfig {
    /// Builds the layer, or says what is wrong with the config.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<SeededConv2d<B>, MorphogenError> {
        let [c_in, c_out] = self.channels;
        if self.groups == 0 || c_in % self.groups != 0 || c_out % self.groups != 0 {
            return Err(MorphogenError::InvalidConfig {
                component: format!("seeded layer '{}'", self.name),
                problem: format!("channels {:?} are not divisible by groups = {}", self.channels, self.groups),
                hint: "use groups >= 1 dividing both channel counts".into(),
            });
        }
        let host = Conv2dConfig::new(self.channels, self.kernel_size)
            .with_stride(self.stride)
            .with_dilation(self.dilation)
            .with_groups(self.groups)
            .with_padding(self.padding.clone())
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone());
        let core = SeedCore::new(&self.name, HostKind::Conv2d, [c_out, self.num_seeds], &self.options, device)?;
        Ok(SeededConv2d { host: host.init(device), core })
    }

    /// Builds the layer; panics with [`try_init`](Self::try_init)'s error (Burn's convention).
    pub fn init<B: Backend>(&self, device: &B::Device) -> SeededConv2d<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Wraps an existing Conv2d layer (its weights, stride, padding, dilation and groups kept as
    /// they are) with this config's seeds; its channels and kernel size must be the config's.
    pub fn try_wrap<B: Backend>(&self, host: Conv2d<B>) -> Result<SeededConv2d<B>, MorphogenError> {
        let [c_out, c_in_per_group, kernel_h, kernel_w] = host.weight.dims();
        let (channels, kernel) = ([c_in_per_group * host.groups, c_out], [kernel_h, kernel_w]);
        if channels != self.channels || kernel != self.kernel_size {
            return Err(MorphogenError::ShapeMismatch {
                layer: self.name.clone(),
                expected: format!(
                    "a Conv2d host with channels {:?} and kernel {:?} (got [c_in, c_out, kernel_h, kernel_w])",
                    self.channels, self.kernel_size
                ),
                got: vec![channels[0], channels[1], kernel_h, kernel_w],
            });
        }
        let device = host.weight.device();
        let core = SeedCore::new(&self.name, HostKind::Conv2d, [c_out, self.num_seeds], &self.options, &device)?;
        Ok(SeededConv2d { host, core })
    }
}

impl<B: Backend> SeededConv2d<B> {
    /// This layer over another host (a widened one): the same seeds' setup, every seed dormant.
    /// Refused while a seed holds a blueprint.
    pub fn with_host(&self, host: Conv2d<B>) -> Result<Self, MorphogenError> {
        let core = self.core.over_features(host.weight.dims()[0])?;
        Ok(SeededConv2d { host, core })
    }

    /// `[batch, c_in, h, w] -> [batch, c_out, h', w']`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = self.host.forward(x);
        let [n, c, height, width] = h.dims();
        self.core.apply(h.reshape([n, c, height * width]), Some([n, height, width])).reshape([n, c, height, width])
    }

    /// [`forward`](Self::forward) with the input's channels checked first.
    pub fn try_forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, MorphogenError> {
        let c_in = self.host.weight.dims()[1] * self.host.groups;
        if x.dims()[1] != c_in {
            return Err(MorphogenError::ShapeMismatch {
                layer: self.core.name().to_string(),
                expected: format!("[batch, {c_in}, height, width]"),
                got: x.dims().to_vec(),
            });
        }
        Ok(self.forward(x))
    }

    /// Moves every GRAFTING seed's alpha one step by its strategy (on device).
    pub fn graft_step(&mut self, signals: &GraftSignals<B>) -> Result<(), MorphogenError> {
        let weight = self.host.weight.val();
        let c_out = weight.dims()[0];
        self.core.graft_step_with(signals, || weight.reshape([c_out as i32, -1]))
    }
}

seeded_layer!(SeededConv2d);
