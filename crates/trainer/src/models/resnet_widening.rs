//! Widening the ResNet from width `w` to `w + k` mid-run (each stage's channels with it: `w`,
//! `2w`, `4w`), keeping what it computes (ADR 0025).
//!
//! Batch norm works per channel, so new channels can be live from the start, as long as nothing
//! reads them yet:
//! - Every layer that writes the residual stream (the stem, each block's second conv, a
//!   projection) gets new output channels with random weights, normalized as usual (gain 1, bias
//!   0): the new stream channels carry features at once.
//! - Every layer that reads the stream (a block's first conv, a projection, the head) reads them
//!   through zero weights, which their gradients (the new channels times what comes back) grow.
//!   (Starting the new channels at zero instead would leave them dead: the ReLU after each block
//!   passes no gradient at zero.)
//! - Inside a block, the new channels between the two convs (`inner_ratio` kept, so the widened
//!   model has the shape of the host built that wide) are random too; the second conv reads them
//!   through zero weights.
//!
//! New running means are 0 and variances 1, so evaluation mode keeps the output too.

use super::resnet::{Projection, ResNet, ResidualBlock};
use super::ModelConfig;
use crate::widening::{grow_param, AxisGrowth, Fill, ParamGrowth};
use burn::module::{Param, ParamId, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;

/// The growths recorded while the wider model is built.
struct Widen {
    /// Channels between a block's convs per channel of its stage.
    inner_ratio: f32,
    growths: Vec<ParamGrowth>,
}

impl<B: Backend> ResNet<B> {
    /// This ResNet with `features` more channels in its first stage (`2 features` and
    /// `4 features` in the next), and how each parameter grew (for the optimizer's state). It
    /// computes the same logits, in training and evaluation mode; refused while a seed holds a
    /// blueprint or with block branches.
    pub fn widen_channels(self, features: usize) -> Result<(Self, Vec<ParamGrowth>), MorphogenError> {
        if features == 0 || self.blocks.iter().any(|block| block.branch.is_some()) {
            return Err(MorphogenError::InvalidConfig {
                component: "trainer.widen".into(),
                problem: format!("a ResNet widens by 1 or more channels and without block branches, not by {features}"),
                hint: "set trainer.widen.features >= 1 and model.block_branch = false".into(),
            });
        }
        let [width, image_channels, ..] = self.stem.weight.dims();
        let wider = |channels: usize| channels / width * (width + features);
        let mut widen = Widen { inner_ratio: self.inner_ratio, growths: Vec::new() };
        let stem_out = [width, wider(width)];
        let stem_fill = conv_uniform(image_channels, self.stem.kernel_size);
        let stem = widen.conv(self.stem, vec![grow(0, stem_out, stem_fill)]);
        let stem_norm = widen.norm(self.stem_norm, stem_out[1]);
        let blocks = self.blocks.into_iter().map(|block| widen.block(block, wider)).collect::<Result<Vec<_>, _>>()?;
        let channels = self.head.weight.dims()[0];
        let head_in = grow(0, [channels, wider(channels)], Fill::Constant(0.0));
        let head = Linear { weight: widen.param(self.head.weight, vec![head_in]), bias: self.head.bias };
        let model = ResNet { stem, stem_norm, blocks, pool: self.pool, head, inner_ratio: self.inner_ratio };
        Ok((super::config::named(model), widen.growths))
    }
}

/// `axis` growing from `sizes[0]` to `sizes[1]`, new entries as `fill` says.
fn grow(axis: usize, sizes: [usize; 2], fill: Fill) -> AxisGrowth {
    AxisGrowth { axis, groups: 1, old: sizes[0], new: sizes[1], fill }
}

/// Random weights as Burn's conv initializes them, for `inputs` channels times the kernel taps.
fn conv_uniform(inputs: usize, kernel: [usize; 2]) -> Fill {
    Fill::Uniform(1.0 / ((inputs * kernel[0] * kernel[1]) as f64).sqrt())
}

impl Widen {
    /// A block: both convs, both norms and the projection widened.
    fn block<B: Backend>(
        &mut self,
        block: ResidualBlock<B>,
        wider: impl Fn(usize) -> usize,
    ) -> Result<ResidualBlock<B>, MorphogenError> {
        let [inner, inputs, ..] = block.conv1.host.weight.dims();
        let outputs = block.conv2.host.weight.dims()[0];
        let (inputs_to, outputs_to) = (wider(inputs), wider(outputs));
        let inner_to = ModelConfig::inner_width(self.inner_ratio, outputs_to);
        let kernel = block.conv1.host.kernel_size;
        let conv1 = self.conv(
            block.conv1.host.clone(),
            vec![
                grow(1, [inputs, inputs_to], Fill::Constant(0.0)),
                grow(0, [inner, inner_to], conv_uniform(inputs_to, kernel)),
            ],
        );
        let conv2 = self.conv(
            block.conv2.host.clone(),
            vec![
                grow(1, [inner, inner_to], Fill::Constant(0.0)),
                grow(0, [outputs, outputs_to], conv_uniform(inner_to, kernel)),
            ],
        );
        let projection = block.projection.map(|projection| {
            let fill = conv_uniform(inputs_to, projection.conv.kernel_size);
            Projection {
                conv: self.conv(
                    projection.conv,
                    vec![grow(1, [inputs, inputs_to], Fill::Constant(0.0)), grow(0, [outputs, outputs_to], fill)],
                ),
                norm: self.norm(projection.norm, outputs_to),
            }
        });
        Ok(ResidualBlock {
            conv1: block.conv1.with_host(conv1)?,
            norm1: self.norm(block.norm1, inner_to),
            conv2: block.conv2.with_host(conv2)?,
            norm2: self.norm(block.norm2, outputs_to),
            projection,
            branch: None,
        })
    }

    /// A conv's kernel grown along `axes`, in order (the presets' convs have no bias).
    fn conv<B: Backend>(&mut self, conv: Conv2d<B>, axes: Vec<AxisGrowth>) -> Conv2d<B> {
        Conv2d { weight: self.param(conv.weight, axes), ..conv }
    }

    /// A batch norm over `channels`: new gains 1, new biases and running means 0, new running
    /// variances 1 (a new norm's values).
    fn norm<B: Backend>(&mut self, norm: BatchNorm<B>, channels: usize) -> BatchNorm<B> {
        let old = norm.gamma.dims()[0];
        let axis = |fill| grow(0, [old, channels], fill);
        let config = BatchNormConfig::new(channels).with_momentum(norm.momentum).with_epsilon(norm.epsilon);
        let mut wider = config.init(&norm.gamma.device());
        wider.gamma = self.param(norm.gamma, vec![axis(Fill::Constant(1.0))]);
        wider.beta = self.param(norm.beta, vec![axis(Fill::Constant(0.0))]);
        let running = |state: RunningState<Tensor<B, 1>>, fill| {
            let growth = ParamGrowth { id: ParamId::new(), rank: 1, scale: 1.0, axes: vec![axis(fill)] };
            RunningState::new(growth.apply(state.value_sync()))
        };
        wider.running_mean = running(norm.running_mean, Fill::Constant(0.0));
        wider.running_var = running(norm.running_var, Fill::Constant(1.0));
        wider
    }

    /// `param` grown along `axes`, its id kept, and its growth recorded.
    fn param<B: Backend, const D: usize>(
        &mut self,
        param: Param<Tensor<B, D>>,
        axes: Vec<AxisGrowth>,
    ) -> Param<Tensor<B, D>> {
        grow_param(param, 1.0, axes, &mut self.growths)
    }
}
