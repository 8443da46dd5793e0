//! FLOPs of a forward pass, counted from a model's own operations: what the growth benchmark
//! reports as a run's compute.
//!
//! Only multiply-adds are counted, two FLOPs each: Linear maps (`2 in out` a row), Conv2d
//! (`2 k_h k_w (in / groups) out` an output pixel), the two matmuls of attention (`2 seq^2 d`
//! each a sequence; the causal mask does not skip any), and the blueprints seeds hold
//! ([`blueprint_flops`] a sample of their chunk). Activations, norms, pooling, softmax,
//! embedding lookups, biases, residual adds and the loss are left out: they are a few FLOPs a
//! value, not a few per weight.
//!
//! A preset's [`CountFlops::flop_profile`] walks its layers once and gives a [`FlopProfile`]:
//! the host's FLOPs per example, and what one seed holding each blueprint adds in each seeded
//! layer. [`FlopProfile::forward`] prices a forward pass for any seed states.

use crate::{Cnn, ImageClassification, Mlp, NextCharacter, ResNet, Task, Transformer, TransformerBlock};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::backend::Backend;
use morphogen_contracts::LayerState;
use morphogen_engine::{
    BlueprintOp, BlueprintSpec, ChunkMap, HostKind, SeedCore, SeededBranch, SeededConv2d, SeededLinear,
};
use std::collections::BTreeMap;

/// FLOPs of one multiply-add.
const MULTIPLY_ADD: u64 = 2;

/// FLOPs of a Linear map `d_in -> d_out` over one row: `2 d_in d_out`.
pub fn linear_flops(d_in: usize, d_out: usize) -> u64 {
    MULTIPLY_ADD * (d_in * d_out) as u64
}

/// FLOPs of a Conv2d of `kernel` (`[k_h, k_w]`), `channels` (`[in, out]`) and `groups` over
/// one image whose output is `out_size` (`[height, width]`): `2 k_h k_w (in / groups) out H W`.
pub fn conv2d_flops(kernel: [usize; 2], channels: [usize; 2], groups: usize, out_size: [usize; 2]) -> u64 {
    let per_pixel = kernel[0] * kernel[1] * (channels[0] / groups.max(1)) * channels[1];
    MULTIPLY_ADD * (per_pixel * out_size[0] * out_size[1]) as u64
}

/// FLOPs of self-attention's two matmuls over one sequence of `seq` positions `d` wide (all
/// heads together): scores `q k^T` and the weighted sum of values, `2 seq^2 d` each.
pub fn attention_flops(seq: usize, d: usize) -> u64 {
    2 * MULTIPLY_ADD * (seq * seq * d) as u64
}

/// FLOPs of `spec` on one sample of a layer of `chunks` (its padded chunk width; blueprints
/// reading the whole layer read every feature): a row of a Linear layer, a pixel of a Conv2d
/// layer (a conv op's kernel taps are counted per pixel; the edge pixels' padding is counted as
/// work, as the grouped convolution does it). Each op's weight holds one multiply-add a sample.
pub fn blueprint_flops(spec: &BlueprintSpec, chunks: &ChunkMap) -> u64 {
    let mut shapes = spec.param_shapes(chunks).into_iter();
    let mut flops = 0;
    for op in &spec.ops {
        let has_bias = match *op {
            BlueprintOp::Dense { bias, .. } => bias,
            BlueprintOp::Conv { .. } => true,
            BlueprintOp::Act(_) => continue,
        };
        let [a, b] = shapes.next().expect("a weight per parametric op").dims;
        if has_bias {
            shapes.next();
        }
        flops += MULTIPLY_ADD * (a * b) as u64;
    }
    flops
}

/// A model's forward FLOPs per example: the host's, and what each seed holding a blueprint adds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlopProfile {
    /// Host layers and attention matmuls, per example, with every seed dormant.
    pub host: u64,
    /// By seeded layer path, then blueprint name: FLOPs per example one seed holding that
    /// blueprint adds (its blueprint run on its chunk of every sample the layer sees).
    pub seeds: BTreeMap<String, BTreeMap<String, u64>>,
}

impl FlopProfile {
    /// Forward FLOPs per example with the seeds as `layers` say: the host's, plus every seed
    /// that holds a blueprint, whatever its stage (a GERMINATED or ablated seed's blueprint runs
    /// and is weighed by 0; a culled seed holds none). Layers or blueprints the profile does not
    /// know add nothing.
    pub fn forward(&self, layers: &[LayerState]) -> u64 {
        let seeds = layers.iter().flat_map(|layer| {
            let costs = self.seeds.get(&layer.layer);
            layer.seeds.iter().filter_map(move |seed| costs?.get(seed.blueprint.as_deref()?))
        });
        self.host + seeds.sum::<u64>()
    }

    /// Adds a Linear map over `rows` rows per example.
    pub fn add_linear<B: Backend>(&mut self, layer: &Linear<B>, rows: usize) {
        let [d_in, d_out] = layer.weight.shape().dims();
        self.host += rows as u64 * linear_flops(d_in, d_out);
    }

    /// Adds a seeded Linear map over `rows` rows per example: its host and its seeds.
    pub fn add_seeded_linear<B: Backend>(&mut self, layer: &SeededLinear<B>, rows: usize) {
        self.add_linear(&layer.host, rows);
        self.add_seeds(&layer.core, rows);
    }

    /// Adds a seeded branch over `rows` rows (pixels, on an image) per example: only its seeds
    /// (its host is the identity).
    pub fn add_seeded_branch<B: Backend>(&mut self, branch: &SeededBranch<B>, rows: usize) {
        self.add_seeds(&branch.core, rows);
    }

    /// Adds a Conv2d on a `size` (`[height, width]`) input; returns its output size.
    pub fn add_conv2d<B: Backend>(&mut self, layer: &Conv2d<B>, size: [usize; 2]) -> [usize; 2] {
        let [c_out, c_in_per_group, k_h, k_w] = layer.weight.shape().dims();
        let out = window_output(size, [k_h, k_w], layer.stride, layer.dilation, &layer.padding, false);
        self.host += conv2d_flops([k_h, k_w], [c_in_per_group * layer.groups, c_out], layer.groups, out);
        out
    }

    /// Adds a seeded Conv2d on a `size` input, host and seeds; returns its output size.
    pub fn add_seeded_conv2d<B: Backend>(&mut self, layer: &SeededConv2d<B>, size: [usize; 2]) -> [usize; 2] {
        let out = self.add_conv2d(&layer.host, size);
        self.add_seeds(&layer.core, out[0] * out[1]);
        out
    }

    /// Adds the attention matmuls over one sequence of `seq` positions `d` wide.
    pub fn add_attention(&mut self, seq: usize, d: usize) {
        self.host += attention_flops(seq, d);
    }

    /// Records what one seed of `core` holding each blueprint it can grow adds, over `samples`
    /// samples (rows, or output pixels) per example.
    fn add_seeds<B: Backend>(&mut self, core: &SeedCore<B>, samples: usize) {
        let costs = core
            .blueprints()
            .specs()
            .iter()
            .filter(|spec| !spec.needs_spatial() || core.host_kind() == HostKind::Conv2d)
            .map(|spec| (spec.name.clone(), samples as u64 * blueprint_flops(spec, core.chunks())))
            .collect();
        self.seeds.insert(core.name().to_string(), costs);
    }
}

/// Output `[height, width]` of a sliding window (conv or pooling) over a `size` input, as Burn
/// computes it (`Same` padding keeps `ceil(size / stride)`).
fn window_output(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: &PaddingConfig2d,
    ceil: bool,
) -> [usize; 2] {
    let pads = match *padding {
        PaddingConfig2d::Same => return [0, 1].map(|i| size[i].div_ceil(stride[i])),
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top + bottom, left + right],
    };
    [0, 1].map(|i| {
        let span = (size[i] + pads[i]).saturating_sub(dilation[i] * (kernel[i] - 1) + 1);
        let steps = if ceil { span.div_ceil(stride[i]) } else { span / stride[i] };
        steps + 1
    })
}

/// Output size of `pool` on a `size` input.
fn pooled(pool: &MaxPool2d, size: [usize; 2]) -> [usize; 2] {
    window_output(size, pool.kernel_size, pool.stride, pool.dilation, &pool.padding, pool.ceil_mode)
}

/// A model whose forward FLOPs on `T`'s examples can be counted.
pub trait CountFlops<T: Task> {
    /// The model's forward FLOPs per example of `task`, walking its layers.
    fn flop_profile(&self, task: &T) -> FlopProfile;
}

impl<B: Backend> CountFlops<ImageClassification> for Mlp<B> {
    fn flop_profile(&self, _task: &ImageClassification) -> FlopProfile {
        let mut profile = FlopProfile::default();
        profile.add_seeded_linear(&self.fc1, 1);
        profile.add_seeded_linear(&self.fc2, 1);
        profile.add_linear(&self.head, 1);
        profile
    }
}

impl<B: Backend> CountFlops<ImageClassification> for Cnn<B> {
    fn flop_profile(&self, task: &ImageClassification) -> FlopProfile {
        let mut profile = FlopProfile::default();
        let size = profile.add_seeded_conv2d(&self.conv1, [task.shape[1], task.shape[2]]);
        profile.add_seeded_conv2d(&self.conv2, pooled(&self.pool, size));
        profile.add_linear(&self.head, 1); // its input, the pooled conv2 output, is in its weight
        profile
    }
}

impl<B: Backend> CountFlops<ImageClassification> for ResNet<B> {
    fn flop_profile(&self, task: &ImageClassification) -> FlopProfile {
        let mut profile = FlopProfile::default();
        let mut size = profile.add_conv2d(&self.stem, [task.shape[1], task.shape[2]]);
        for block in &self.blocks {
            let out = profile.add_seeded_conv2d(&block.conv1, size);
            profile.add_seeded_conv2d(&block.conv2, out);
            if let Some(branch) = &block.branch {
                profile.add_seeded_branch(branch, out[0] * out[1]);
            }
            if let Some(projection) = &block.projection {
                profile.add_conv2d(&projection.conv, size);
            }
            size = out;
        }
        profile.add_linear(&self.head, 1);
        profile
    }
}

impl<B: Backend> CountFlops<NextCharacter> for Transformer<B> {
    fn flop_profile(&self, task: &NextCharacter) -> FlopProfile {
        let seq = task.context;
        let mut profile = FlopProfile::default();
        for TransformerBlock { attn, mlp, .. } in &self.blocks {
            for projection in [&attn.query, &attn.key, &attn.value] {
                profile.add_seeded_linear(projection, seq);
            }
            profile.add_attention(seq, attn.query.host.weight.shape().dims::<2>()[1]);
            profile.add_seeded_linear(&attn.output, seq);
            profile.add_seeded_linear(&mlp.fc1, seq);
            profile.add_seeded_linear(&mlp.fc2, seq);
            if let Some(branch) = &mlp.branch {
                profile.add_seeded_branch(branch, seq);
            }
        }
        profile.add_linear(&self.head, seq);
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelConfig;
    use burn::backend::NdArray;
    use morphogen_contracts::Stage;
    use morphogen_engine::SeededModel;

    type B = NdArray<f32>;

    #[test]
    fn op_formulas_match_hand_counts() {
        assert_eq!(linear_flops(3, 4), 24);
        // 3x3, 2 -> 4 channels, 5x6 output: 9 taps * 2 * 4 per pixel, 30 pixels, 2 FLOPs each.
        assert_eq!(conv2d_flops([3, 3], [2, 4], 1, [5, 6]), 2 * 9 * 2 * 4 * 30);
        assert_eq!(conv2d_flops([3, 3], [4, 4], 2, [1, 1]), 2 * 9 * 2 * 4);
        assert_eq!(attention_flops(5, 8), 2 * 2 * 25 * 8);
        // residual_mlp(2.0) on a chunk of 3: 3 -> 6 -> 3.
        let chunks = |features| ChunkMap::new("layer", features, 1).unwrap();
        assert_eq!(blueprint_flops(&BlueprintSpec::residual_mlp(2.0), &chunks(3)), 2 * (3 * 6 + 6 * 3));
        // small_conv on 4 channels: 3x3 4 -> 4, then 1x1 4 -> 4, per pixel.
        assert_eq!(blueprint_flops(&BlueprintSpec::small_conv(), &chunks(4)), 2 * (9 * 16 + 16));
        // 10 features over 5 seeds: chunks of 2, read whole: 3x3 conv 10 -> 4, 1x1 conv 4 -> 2.
        let five = ChunkMap::new("layer", 10, 5).unwrap();
        assert_eq!(blueprint_flops(&BlueprintSpec::wide_conv(2.0), &five), 2 * (9 * 10 * 4 + 4 * 2));
    }

    #[test]
    fn window_output_follows_burn() {
        let valid = PaddingConfig2d::Valid;
        assert_eq!(window_output([28, 28], [3, 3], [1, 1], [1, 1], &PaddingConfig2d::Same, false), [28, 28]);
        assert_eq!(
            window_output([28, 28], [3, 3], [2, 2], [1, 1], &PaddingConfig2d::Explicit(1, 1, 1, 1), false),
            [14, 14]
        );
        assert_eq!(window_output([7, 7], [2, 2], [2, 2], [1, 1], &valid, false), [3, 3]);
        assert_eq!(window_output([7, 7], [2, 2], [2, 2], [1, 1], &valid, true), [4, 4]);
    }

    /// The MLP preset on 1x2x2 images, hidden 3, 2 classes: `4 -> 3 -> 3 -> 2`.
    fn tiny_mlp() -> Mlp<B> {
        let config = ModelConfig { hidden: 3, num_seeds: 3, blueprint_hidden_ratio: 2.0, ..ModelConfig::default() };
        config.mlp(&ImageClassification { shape: [1, 2, 2], classes: 2 }, &Default::default()).unwrap()
    }

    #[test]
    fn a_tiny_mlp_counts_its_layers_and_seeds() {
        let mut mlp = tiny_mlp();
        let task = ImageClassification { shape: [1, 2, 2], classes: 2 };
        let profile = mlp.flop_profile(&task);
        assert_eq!(profile.host, 2 * (4 * 3 + 3 * 3 + 3 * 2));
        assert_eq!(profile.forward(&mlp.layer_states()), profile.host, "dormant seeds cost nothing");
        // One seed of fc2 (chunk 1) holds residual_mlp(2.0): 1 -> 2 -> 1 per row.
        mlp.fc2.request_germination(0, "residual_mlp", "fixed_ramp").unwrap();
        assert_eq!(mlp.fc2.seed(0).unwrap().stage, Stage::Germinated);
        assert_eq!(profile.forward(&mlp.layer_states()), profile.host + 2 * (2 + 2));
    }

    #[test]
    fn a_tiny_cnn_counts_convs_at_their_resolution() {
        let config = ModelConfig { channels: [2, 4], num_seeds: 2, ..ModelConfig::default() };
        let task = ImageClassification { shape: [1, 8, 8], classes: 3 };
        let cnn = config.cnn::<B>(&task, &Default::default()).unwrap();
        let profile = cnn.flop_profile(&task);
        let conv1 = 2 * 9 * 2 * 64; // 1 -> 2 channels on 8x8
        let conv2 = 2 * 9 * 2 * 4 * 16; // 2 -> 4 channels on 4x4 after pooling
        let head = 2 * (4 * 2 * 2) * 3; // 4 channels of 2x2 -> 3 classes
        assert_eq!(profile.host, conv1 + conv2 + head);
        // small_conv on conv2's chunk of 2 channels, every one of its 16 output pixels.
        assert_eq!(profile.seeds["conv2"]["small_conv"], 16 * 2 * (9 * 4 + 4));
    }

    #[test]
    fn a_tiny_resnet_counts_strides_projections_inner_widths_and_branches() {
        for inner_ratio in [1.0, 2.0] {
            let config = ModelConfig { width: 1, inner_ratio, num_seeds: 1, ..ModelConfig::default() };
            let task = ImageClassification { shape: [1, 8, 8], classes: 2 };
            let resnet = config.resnet::<B>(&task, &Default::default()).unwrap();
            let conv = |c_in: u64, c_out: u64, taps: u64, pixels: u64| 2 * taps * c_in * c_out * pixels;
            // Two blocks a stage, each `c -> inner -> c_out` with `inner = ratio c_out`.
            let stage = |c_in, c_out, pixels| {
                let inner = inner_ratio as u64 * c_out;
                let projection = if c_in != c_out { conv(c_in, c_out, 1, pixels) } else { 0 };
                let convs = conv(c_in, inner, 9, pixels) + conv(c_out, inner, 9, pixels);
                convs + 2 * conv(inner, c_out, 9, pixels) + projection
            };
            let stem = conv(1, 1, 9, 64);
            let head = 2 * 4 * 2;
            let expected = stem + stage(1, 1, 64) + stage(1, 2, 16) + stage(2, 4, 4) + head;
            assert_eq!(resnet.flop_profile(&task).host, expected, "inner_ratio {inner_ratio}");
        }
        // Branches beside the blocks that keep their shape cost nothing until their seeds grow:
        // wide_conv(4.0) on blocks.5's one 4-channel seed, a 3x3 conv 4 -> 16 and a 1x1 16 -> 4
        // on each of its 2x2 pixels.
        let config = ModelConfig { width: 1, num_seeds: 1, block_branch: true, ..ModelConfig::default() };
        let task = ImageClassification { shape: [1, 8, 8], classes: 2 };
        let branched = config.resnet::<B>(&task, &Default::default()).unwrap();
        let plain = ModelConfig { block_branch: false, ..config }.resnet::<B>(&task, &Default::default()).unwrap();
        let profile = branched.flop_profile(&task);
        assert_eq!(profile.host, plain.flop_profile(&task).host);
        assert_eq!(profile.seeds["blocks.5.branch"]["wide_conv"], 4 * 2 * (9 * 4 * 16 + 16 * 4));
        assert!(!profile.seeds.contains_key("blocks.4.branch"), "a block that strides has no branch");
    }

    #[test]
    fn a_tiny_transformer_counts_projections_attention_and_head() {
        let config = ModelConfig { layers: 1, d_model: 4, heads: 2, num_seeds: 2, ..ModelConfig::default() };
        let task = NextCharacter { vocab: 5, context: 3 };
        let transformer = config.transformer::<B>(&task, &Default::default()).unwrap();
        let profile = transformer.flop_profile(&task);
        let (seq, d) = (3, 4);
        let projections = 4 * 2 * d * d;
        let mlp = |ratio| 2 * d * ratio * d * 2;
        let attention = 2 * 2 * seq * d;
        let head = 2 * d * 5;
        assert_eq!(profile.host, seq * (projections + mlp(4) + attention + head));
        // residual_mlp(4.0) on fc1's chunk of 8: 8 -> 32 -> 8 on each of the 3 positions.
        assert_eq!(profile.seeds["blocks.0.mlp.fc1"]["residual_mlp"], 3 * 2 * (8 * 32 * 2));
        // A narrower MLP: 4 -> 6 -> 4 (1.5 x 4).
        let narrow = ModelConfig { mlp_ratio: 1.5, ..config.clone() };
        let narrow = narrow.transformer::<B>(&task, &Default::default()).unwrap();
        assert_eq!(narrow.flop_profile(&task).host, seq * (projections + 2 * d * 6 * 2 + attention + head));
        // A branch beside the MLP costs nothing until its seeds grow: wide_mlp(4.0) on its chunk
        // of 2 reads all 4 features, 4 -> 8 -> 2 on each position.
        let branched = ModelConfig { mlp_branch: true, ..config }.transformer::<B>(&task, &Default::default()).unwrap();
        let profile = branched.flop_profile(&task);
        assert_eq!(profile.host, seq * (projections + mlp(4) + attention + head));
        assert_eq!(profile.seeds["blocks.0.mlp.branch"]["wide_mlp"], 3 * 2 * (4 * 8 + 8 * 2));
    }
}
