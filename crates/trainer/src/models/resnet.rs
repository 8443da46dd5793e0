//! The ResNet preset: a 3x3 stem, three stages of two residual blocks with batch norm (every
//! block conv seeded; the first block of the second and third stage halves the resolution and
//! doubles the channels, its shortcut a 1x1 projection), global average pooling, a linear head.
//! With `[model] block_branch`, a seeded branch beside each block that keeps its shape.

use super::config::{named, plus_branch};
use super::ModelConfig;
use crate::{ImageBatch, ImageClassification, ParamGrowth, StepOutput, TaskModel};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{HostKind, MorphogenError, SeededBranch, SeededConv2d, SeededConv2dConfig, SeededModel};

/// Residual blocks per stage.
const BLOCKS_PER_STAGE: usize = 2;

/// The ResNet preset.
#[derive(Module, Debug, SeededModel)]
pub struct ResNet<B: Backend> {
    /// `channels -> width`, 3x3, with batch norm (not seeded: its input is the raw image).
    pub stem: Conv2d<B>,
    /// The stem's batch norm.
    pub stem_norm: BatchNorm<B>,
    /// Three stages of two blocks, in order.
    pub blocks: Vec<ResidualBlock<B>>,
    /// Global average pooling.
    pub pool: AdaptiveAvgPool2d,
    /// `4 width -> classes`.
    pub head: Linear<B>,
    /// Channels between a block's two convs per channel of its stage (configuration, not
    /// saved): a widened model keeps it.
    #[module(skip)]
    pub inner_ratio: f32,
}

/// `relu(norm2(conv2(relu(norm1(conv1(x))))) + branch(x) + shortcut(x))`, both convs seeded.
#[derive(Module, Debug, SeededModel)]
pub struct ResidualBlock<B: Backend> {
    /// Seeded 3x3, stride 1 or 2.
    pub conv1: SeededConv2d<B>,
    /// Batch norm after `conv1`.
    pub norm1: BatchNorm<B>,
    /// Seeded 3x3.
    pub conv2: SeededConv2d<B>,
    /// Batch norm after `conv2`.
    pub norm2: BatchNorm<B>,
    /// 1x1 projection with batch norm where the block changes shape; identity otherwise.
    pub projection: Option<Projection<B>>,
    /// Seeds beside the two convs, reading the block's input (`[model] block_branch`, blocks
    /// that keep their shape). After `norm2`, so that removing them leaves its statistics alone.
    pub branch: Option<SeededBranch<B>>,
}

/// A 1x1 strided conv and batch norm: the shortcut of a block that changes shape.
#[derive(Module, Debug)]
pub struct Projection<B: Backend> {
    /// 1x1 conv.
    pub conv: Conv2d<B>,
    /// Its batch norm.
    pub norm: BatchNorm<B>,
}

impl ModelConfig {
    /// Builds the ResNet preset for `task`'s images.
    pub fn resnet<B: Backend>(
        &self,
        task: &ImageClassification,
        device: &B::Device,
    ) -> Result<ResNet<B>, MorphogenError> {
        let w = self.width;
        let mut blocks = Vec::new();
        let mut channels = w;
        for stage_width in [w, 2 * w, 4 * w] {
            for block in 0..BLOCKS_PER_STAGE {
                let stride = if block == 0 && stage_width != channels { 2 } else { 1 };
                blocks.push(self.residual_block([channels, stage_width], stride, device)?);
                channels = stage_width;
            }
        }
        Ok(named(ResNet {
            stem: conv3x3([task.shape[0], w], 1).init(device),
            stem_norm: BatchNormConfig::new(w).init(device),
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            head: LinearConfig::new(channels, task.classes).init(device),
            inner_ratio: self.inner_ratio,
        }))
    }

    /// One block from `io[0]` to `io[1]` channels (`inner_ratio io[1]` between its convs), its
    /// first conv strided by `stride`.
    fn residual_block<B: Backend>(
        &self,
        io: [usize; 2],
        stride: usize,
        device: &B::Device,
    ) -> Result<ResidualBlock<B>, MorphogenError> {
        let seeded = |io: [usize; 2], stride: usize| {
            SeededConv2dConfig::new(io, [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .with_num_seeds(self.seeds_for(io[1]))
                .with_options(self.options()?)
                .try_init(device)
        };
        let projection = (stride != 1 || io[0] != io[1]).then(|| Projection {
            conv: Conv2dConfig::new(io, [1, 1]).with_stride([stride, stride]).with_bias(false).init(device),
            norm: BatchNormConfig::new(io[1]).init(device),
        });
        let inner = Self::inner_width(self.inner_ratio, io[1]);
        let branch = self.branch(self.block_branch && projection.is_none(), HostKind::Conv2d, io[1], device)?;
        Ok(ResidualBlock {
            conv1: seeded([io[0], inner], stride)?,
            norm1: BatchNormConfig::new(inner).init(device),
            conv2: seeded([inner, io[1]], 1)?,
            norm2: BatchNormConfig::new(io[1]).init(device),
            projection,
            branch,
        })
    }
}

/// A 3x3 conv config with padding 1 and no bias (batch norm follows).
fn conv3x3(io: [usize; 2], stride: usize) -> Conv2dConfig {
    Conv2dConfig::new(io, [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
}

impl<B: Backend> ResidualBlock<B> {
    /// `[batch, in, h, w] -> [batch, out, h / stride, w / stride]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = relu(self.norm1.forward(self.conv1.forward(x.clone())));
        let y = self.norm2.forward(self.conv2.forward(y));
        let y = plus_branch(y, &self.branch, x.clone());
        let shortcut = match &self.projection {
            Some(p) => p.norm.forward(p.conv.forward(x)),
            None => x,
        };
        relu(y + shortcut)
    }
}

impl<B: Backend> ResNet<B> {
    /// `[batch, channels, height, width] -> [batch, classes]`.
    pub fn logits(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = relu(self.stem_norm.forward(self.stem.forward(images)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.head.forward(self.pool.forward(x).flatten(1, 3))
    }
}

impl<B: Backend> TaskModel<B, ImageClassification> for ResNet<B> {
    fn step(&self, batch: ImageBatch<B>) -> StepOutput<B> {
        StepOutput::classification(self.logits(batch.images), batch.labels)
    }

    fn widen(self, features: usize) -> Result<(Self, Vec<ParamGrowth>), MorphogenError> {
        self.widen_channels(features)
    }
}
