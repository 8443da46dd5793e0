//! The small host models `morphogen train` grows: an MLP and a CNN for 28x28 grey images.

use crate::Classifier;
use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{
    seeded_model, LifecycleConfig, MorphogenError, SeedOptions, SeededConv2d, SeededConv2dConfig, SeededLinear,
    SeededLinearConfig,
};
use serde::{Deserialize, Serialize};

/// Which preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// `784 -> hidden -> hidden -> 10`, both hidden layers seeded.
    Mlp,
    /// Two seeded 3x3 conv layers (`channels[0]`, `channels[1]`) with 2x2 pooling, then a linear head.
    Cnn,
}

/// A preset host model and its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Which preset.
    pub kind: ModelKind,
    /// MLP hidden width.
    pub hidden: usize,
    /// CNN channels of the two conv layers.
    pub channels: [usize; 2],
    /// Seeds per seeded layer (`seeds` in configs written before it was renamed).
    #[serde(alias = "seeds")]
    pub num_seeds: usize,
    /// Hidden width of `residual_mlp` blueprints, as a multiple of the chunk.
    pub blueprint_hidden_ratio: f32,
    /// Epochs a culled seed waits before it may grow again.
    pub embargo_epochs: u32,
    /// Use morphogen's CubeCL kernels where the backend has them (`LifecycleConfig::kernels`).
    pub kernels: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Mlp,
            hidden: 32,
            channels: [8, 16],
            num_seeds: 8,
            blueprint_hidden_ratio: 4.0,
            embargo_epochs: 2,
            kernels: true,
        }
    }
}

impl ModelConfig {
    fn options(&self) -> Result<SeedOptions, MorphogenError> {
        let blueprints = SeedOptions::new()
            .blueprints
            .register(morphogen_engine::BlueprintSpec::residual_mlp(self.blueprint_hidden_ratio))?;
        Ok(SeedOptions::new()
            .with_blueprints(blueprints)
            .with_lifecycle(LifecycleConfig::new().with_embargo_epochs(self.embargo_epochs).with_kernels(self.kernels)))
    }

    /// Builds the MLP preset.
    pub fn mlp<B: Backend>(&self, device: &B::Device) -> Result<Mlp<B>, MorphogenError> {
        let seeded = |name: &str, d_in: usize| {
            SeededLinearConfig::new(d_in, self.hidden)
                .with_num_seeds(self.num_seeds)
                .with_name(name.into())
                .with_options(self.options()?)
                .try_init(device)
        };
        Ok(Mlp {
            fc1: seeded("fc1", 28 * 28)?,
            fc2: seeded("fc2", self.hidden)?,
            head: LinearConfig::new(self.hidden, 10).init(device),
        })
    }

    /// Builds the CNN preset.
    pub fn cnn<B: Backend>(&self, device: &B::Device) -> Result<Cnn<B>, MorphogenError> {
        let [c1, c2] = self.channels;
        let seeded = |name: &str, channels: [usize; 2]| {
            SeededConv2dConfig::new(channels, [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_num_seeds(self.num_seeds.min(channels[1]))
                .with_name(name.into())
                .with_options(self.options()?)
                .try_init(device)
        };
        Ok(Cnn {
            conv1: seeded("conv1", [1, c1])?,
            conv2: seeded("conv2", [c1, c2])?,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            head: LinearConfig::new(c2 * 7 * 7, 10).init(device),
        })
    }
}

/// The MLP preset.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Seeded `784 -> hidden`.
    pub fc1: SeededLinear<B>,
    /// Seeded `hidden -> hidden`.
    pub fc2: SeededLinear<B>,
    /// `hidden -> 10`.
    pub head: Linear<B>,
}

seeded_model!(Mlp { fc1, fc2 });

impl<B: Backend> Classifier<B> for Mlp<B> {
    fn logits(&self, images: Tensor<B, 2>) -> Tensor<B, 2> {
        self.head.forward(relu(self.fc2.forward(relu(self.fc1.forward(images)))))
    }
}

/// The CNN preset.
#[derive(Module, Debug)]
pub struct Cnn<B: Backend> {
    /// Seeded `1 -> channels[0]`, 3x3.
    pub conv1: SeededConv2d<B>,
    /// Seeded `channels[0] -> channels[1]`, 3x3.
    pub conv2: SeededConv2d<B>,
    /// 2x2 max pooling after each conv.
    pub pool: MaxPool2d,
    /// `channels[1] * 7 * 7 -> 10`.
    pub head: Linear<B>,
}

seeded_model!(Cnn { conv1, conv2 });

impl<B: Backend> Classifier<B> for Cnn<B> {
    fn logits(&self, images: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, _] = images.dims();
        let x = images.reshape([n, 1, 28, 28]);
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        self.head.forward(x.flatten(1, 3))
    }
}
