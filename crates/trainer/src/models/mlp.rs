//! The MLP preset: `pixels -> hidden -> hidden -> classes`, both hidden layers seeded.

use super::config::named;
use super::ModelConfig;
use crate::{ImageBatch, ImageClassification, StepOutput, TaskModel};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{MorphogenError, Precision, SeededLinear, SeededLinearConfig, SeededModel};

/// The MLP preset.
#[derive(Module, Debug, SeededModel)]
pub struct Mlp<B: Backend> {
    /// Seeded `pixels -> hidden`.
    pub fc1: SeededLinear<B>,
    /// Seeded `hidden -> hidden`.
    pub fc2: SeededLinear<B>,
    /// `hidden -> classes`.
    pub head: Linear<B>,
    /// The float type the products compute in (configuration, not saved).
    #[module(skip)]
    pub precision: Precision,
}

impl ModelConfig {
    /// Builds the MLP preset for `task`'s images.
    pub fn mlp<B: Backend>(&self, task: &ImageClassification, device: &B::Device) -> Result<Mlp<B>, MorphogenError> {
        self.precision.check::<B>(device)?;
        let seeded = |d_in: usize| {
            SeededLinearConfig::new(d_in, self.hidden)
                .with_num_seeds(self.seeds_for(self.hidden))
                .with_options(self.options()?)
                .with_precision(self.precision)
                .try_init(device)
        };
        Ok(named(Mlp {
            fc1: seeded(task.shape.iter().product())?,
            fc2: seeded(self.hidden)?,
            head: LinearConfig::new(self.hidden, task.classes).init(device),
            precision: self.precision,
        }))
    }
}

impl<B: Backend> Mlp<B> {
    /// `[batch, channels, height, width] -> [batch, classes]`.
    pub fn logits(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = images.flatten(1, 3);
        self.precision.linear(&self.head, relu(self.fc2.forward(relu(self.fc1.forward(x)))))
    }
}

impl<B: Backend> TaskModel<B, ImageClassification> for Mlp<B> {
    fn step(&self, batch: ImageBatch<B>) -> StepOutput<B> {
        StepOutput::classification(self.logits(batch.images), batch.labels)
    }
}
