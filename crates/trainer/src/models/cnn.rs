//! The CNN preset: two seeded 3x3 conv layers with 2x2 max pooling, then a linear head.

use super::config::named;
use super::ModelConfig;
use crate::{ImageBatch, ImageClassification, StepOutput, TaskModel};
use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{MorphogenError, SeededConv2d, SeededConv2dConfig, SeededModel};

/// The CNN preset.
#[derive(Module, Debug, SeededModel)]
pub struct Cnn<B: Backend> {
    /// Seeded `channels -> channels[0]`, 3x3.
    pub conv1: SeededConv2d<B>,
    /// Seeded `channels[0] -> channels[1]`, 3x3.
    pub conv2: SeededConv2d<B>,
    /// 2x2 max pooling after each conv.
    pub pool: MaxPool2d,
    /// `channels[1] * (height / 4) * (width / 4) -> classes`.
    pub head: Linear<B>,
}

impl ModelConfig {
    /// Builds the CNN preset for `task`'s images.
    pub fn cnn<B: Backend>(&self, task: &ImageClassification, device: &B::Device) -> Result<Cnn<B>, MorphogenError> {
        let [c1, c2] = self.channels;
        let [channels, height, width] = task.shape;
        let seeded = |io: [usize; 2]| {
            SeededConv2dConfig::new(io, [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_num_seeds(self.seeds_for(io[1]))
                .with_options(self.options()?)
                .try_init(device)
        };
        Ok(named(Cnn {
            conv1: seeded([channels, c1])?,
            conv2: seeded([c1, c2])?,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            head: LinearConfig::new(c2 * (height / 4) * (width / 4), task.classes).init(device),
        }))
    }
}

impl<B: Backend> Cnn<B> {
    /// `[batch, channels, height, width] -> [batch, classes]`.
    pub fn logits(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.pool.forward(relu(self.conv1.forward(images)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        self.head.forward(x.flatten(1, 3))
    }
}

impl<B: Backend> TaskModel<B, ImageClassification> for Cnn<B> {
    fn step(&self, batch: ImageBatch<B>) -> StepOutput<B> {
        StepOutput::classification(self.logits(batch.images), batch.labels)
    }
}
