//! Blueprints: the small modules grown at a seed, described as data.
//!
//! A blueprint is a short chain of [`BlueprintOp`]s from what it reads ([`BlueprintInput`]: the
//! seed's chunk, or the layer's whole output) back to the seed's chunk. Describing it as
//! data rather than code means one description runs batched for every seed of a layer (each op
//! is one batched matmul or one grouped convolution over all bank rows), travels over the bus
//! and is stored in checkpoints. Users register their own with [`BlueprintRegistry::register`].

use crate::chunks::ChunkMap;
use crate::registry::{Registry, Spec};
use burn::tensor::activation::{gelu, relu, tanh};
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Width of an op's output, relative to the layer's padded chunk width.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Width {
    /// Exactly the chunk width (required for the last op).
    Chunk,
    /// `ceil(ratio * chunk)`, at least 1.
    Ratio(f32),
    /// A fixed number of units.
    Fixed(usize),
}

impl Width {
    fn resolve(self, chunk: usize) -> usize {
        match self {
            Width::Chunk => chunk,
            Width::Ratio(r) => ((r as f64 * chunk as f64).ceil() as usize).max(1),
            Width::Fixed(n) => n,
        }
    }
}

/// Element-wise activation between parametric ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// Gaussian error linear unit.
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
}

/// One step of a blueprint.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum BlueprintOp {
    /// Dense map over the chunk's features (per pixel on Conv2d layers).
    Dense {
        /// Output width.
        out: Width,
        /// Whether to add a bias.
        bias: bool,
    },
    /// `kernel x kernel` convolution over the chunk's channels, "same" padding; Conv2d layers only.
    Conv {
        /// Output channels.
        out: Width,
        /// Odd kernel size.
        kernel: usize,
    },
    /// Activation.
    Act(Activation),
}

/// What a blueprint's first op reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlueprintInput {
    /// The seed's own chunk of the host output: one block of a block-diagonal side network.
    #[default]
    Chunk,
    /// Every feature of the host output (before any seed's contribution): the blueprint mixes
    /// the whole layer into its chunk, like new units of a wider layer.
    Layer,
}

/// A named blueprint: a chain of ops from its input back to the chunk. The last op is parametric
/// with [`Width::Chunk`] output and starts at zero, so a new blueprint adds exactly nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlueprintSpec {
    /// Name used in germination requests.
    pub name: String,
    /// What the first op reads (the seed's chunk unless set).
    #[serde(default)]
    pub input: BlueprintInput,
    /// The ops, applied in order.
    pub ops: Vec<BlueprintOp>,
}

/// Shape of one per-row parameter tensor of a blueprint (the bank stacks `rows` of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamShape {
    /// `[a, b]` of each row's slice.
    pub dims: [usize; 2],
    /// Fan-in for the uniform init; `None` means the tensor starts at zero.
    pub fan_in: Option<usize>,
}

impl BlueprintSpec {
    /// `chunk -> ratio * chunk -> ReLU -> chunk`.
    pub fn residual_mlp(hidden_ratio: f32) -> Self {
        Self {
            name: "residual_mlp".into(),
            input: BlueprintInput::Chunk,
            ops: vec![
                BlueprintOp::Dense { out: Width::Ratio(hidden_ratio), bias: true },
                BlueprintOp::Act(Activation::Relu),
                BlueprintOp::Dense { out: Width::Chunk, bias: true },
            ],
        }
    }

    /// `chunk -> rank -> chunk`, linear, no bias (mergeable into the host weights).
    pub fn low_rank(rank_ratio: f32) -> Self {
        Self {
            name: "low_rank".into(),
            input: BlueprintInput::Chunk,
            ops: vec![
                BlueprintOp::Dense { out: Width::Ratio(rank_ratio), bias: false },
                BlueprintOp::Dense { out: Width::Chunk, bias: false },
            ],
        }
    }

    /// 3x3 conv over the chunk's channels, ReLU, 1x1 conv back: for Conv2d layers.
    pub fn small_conv() -> Self {
        Self {
            name: "small_conv".into(),
            input: BlueprintInput::Chunk,
            ops: vec![
                BlueprintOp::Conv { out: Width::Chunk, kernel: 3 },
                BlueprintOp::Act(Activation::Relu),
                BlueprintOp::Conv { out: Width::Chunk, kernel: 1 },
            ],
        }
    }

    /// `layer -> ratio * chunk -> ReLU -> chunk`: a residual MLP reading every feature of the
    /// layer's output, so what a seed grows is new hidden units of the whole layer.
    pub fn wide_mlp(hidden_ratio: f32) -> Self {
        Self { name: "wide_mlp".into(), input: BlueprintInput::Layer, ..Self::residual_mlp(hidden_ratio) }
    }

    /// 3x3 conv over every channel of the layer's output to `ratio * chunk` channels, ReLU, 1x1
    /// conv back to the chunk: for Conv2d layers.
    pub fn wide_conv(hidden_ratio: f32) -> Self {
        Self {
            name: "wide_conv".into(),
            input: BlueprintInput::Layer,
            ops: vec![
                BlueprintOp::Conv { out: Width::Ratio(hidden_ratio), kernel: 3 },
                BlueprintOp::Act(Activation::Relu),
                BlueprintOp::Conv { out: Width::Chunk, kernel: 1 },
            ],
        }
    }

    /// 3x3 conv over every channel of the layer's output to `ratio * chunk` channels, ReLU, 3x3
    /// conv back to the chunk: what widening a residual block's inner layer adds (new channels
    /// reading every channel through a 3x3 conv, read back through another), for Conv2d layers
    /// and branches.
    pub fn inner_conv(hidden_ratio: f32) -> Self {
        let mut spec = Self::wide_conv(hidden_ratio);
        spec.name = "inner_conv".into();
        spec.ops[2] = BlueprintOp::Conv { out: Width::Chunk, kernel: 3 };
        spec
    }

    /// Features the first op reads on a layer of `chunks`: the padded chunk width or every
    /// feature of the layer.
    pub fn input_width(&self, chunks: &ChunkMap) -> usize {
        match self.input {
            BlueprintInput::Chunk => chunks.width(),
            BlueprintInput::Layer => chunks.features(),
        }
    }

    /// The features of the host output that `seed`'s blueprint reads on a layer of `chunks`
    /// (unpadded): its chunk, or every feature of the layer.
    pub fn reads(&self, chunks: &ChunkMap, seed: usize) -> Range<usize> {
        match self.input {
            BlueprintInput::Chunk => chunks.range(seed),
            BlueprintInput::Layer => 0..chunks.features(),
        }
    }

    /// Whether any op needs the spatial layout of a Conv2d layer.
    pub fn needs_spatial(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, BlueprintOp::Conv { .. }))
    }

    /// Checks the chain is well formed.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let invalid = |problem: String, hint: &str| MorphogenError::InvalidConfig {
            component: format!("blueprint '{}'", self.name),
            problem,
            hint: hint.into(),
        };
        if self.name.is_empty() {
            return Err(invalid("empty name".into(), "give the blueprint a name"));
        }
        match self.ops.last() {
            Some(BlueprintOp::Dense { out: Width::Chunk, .. }) | Some(BlueprintOp::Conv { out: Width::Chunk, .. }) => {}
            _ => {
                return Err(invalid(
                    "the last op is not a Dense or Conv op with Width::Chunk output".into(),
                    "end the chain with a parametric op back to the chunk width, so it can start at zero",
                ))
            }
        }
        for op in &self.ops {
            match *op {
                BlueprintOp::Dense { out, .. } | BlueprintOp::Conv { out, .. }
                    if matches!(out, Width::Fixed(0))
                        || matches!(out, Width::Ratio(r) if !(r.is_finite() && r > 0.0)) =>
                {
                    return Err(invalid(format!("op {op:?} has an empty or invalid width"), "use a positive width"));
                }
                BlueprintOp::Conv { kernel, .. } if kernel % 2 == 0 => {
                    return Err(invalid(
                        format!("conv kernel {kernel} is even"),
                        "use an odd kernel size (1, 3, 5...)",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Per-row parameter shapes on a layer of `chunks` (sized for its padded chunk width), in op
    /// order (weight then bias).
    pub fn param_shapes(&self, chunks: &ChunkMap) -> Vec<ParamShape> {
        let chunk = chunks.width();
        let mut shapes = Vec::new();
        let mut width = self.input_width(chunks);
        let last = self.ops.len() - 1;
        for (i, op) in self.ops.iter().enumerate() {
            let zero = i == last;
            let (out, fan_in, weight) = match *op {
                BlueprintOp::Dense { out, .. } => {
                    let out = out.resolve(chunk);
                    (out, width, [width, out])
                }
                BlueprintOp::Conv { out, kernel } => {
                    let out = out.resolve(chunk);
                    (out, width * kernel * kernel, [out, width * kernel * kernel])
                }
                BlueprintOp::Act(_) => continue,
            };
            shapes.push(ParamShape { dims: weight, fan_in: (!zero).then_some(fan_in) });
            let has_bias = !matches!(op, BlueprintOp::Dense { bias: false, .. });
            if has_bias {
                shapes.push(ParamShape { dims: [1, out], fan_in: None });
            }
            width = out;
        }
        shapes
    }

    /// Parameters one row holds on a layer of `chunks`.
    pub fn param_count(&self, chunks: &ChunkMap) -> usize {
        self.param_shapes(chunks).iter().map(|s| s.dims[0] * s.dims[1]).sum()
    }

    /// Applies the blueprint to every bank row at once.
    ///
    /// `x`: `[rows, samples, input width]`; `params`: the stacked `[rows, a, b]` tensors of
    /// [`param_shapes`](Self::param_shapes); `spatial`: `[batch, height, width]` on Conv2d layers,
    /// with `samples = batch * height * width`. Returns `[rows, samples, chunk]`.
    pub fn forward<B: Backend>(
        &self,
        params: &[Tensor<B, 3>],
        mut x: Tensor<B, 3>,
        spatial: Option<[usize; 3]>,
    ) -> Tensor<B, 3> {
        let mut params = params.iter();
        for op in &self.ops {
            x = match *op {
                BlueprintOp::Act(Activation::Relu) => relu(x),
                BlueprintOp::Act(Activation::Gelu) => gelu(x),
                BlueprintOp::Act(Activation::Tanh) => tanh(x),
                BlueprintOp::Dense { bias, .. } => {
                    let y = x.matmul(params.next().expect("shapes from param_shapes").clone());
                    match bias {
                        true => y + params.next().expect("bias").clone(),
                        false => y,
                    }
                }
                BlueprintOp::Conv { kernel, .. } => {
                    let weight = params.next().expect("conv weight").clone();
                    let bias = params.next().expect("conv bias").clone();
                    let geometry = spatial.expect("validated at germination: conv needs a Conv2d layer");
                    grouped_conv(x, weight, bias, kernel, geometry)
                }
            };
        }
        x
    }
}

/// One grouped convolution for all rows: rows become groups of a `[batch, rows*c, h, w]` image.
fn grouped_conv<B: Backend>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 3>,
    kernel: usize,
    [n, h, w]: [usize; 3],
) -> Tensor<B, 3> {
    let [rows, _, c_in] = x.dims();
    let c_out = weight.dims()[1];
    if h == 1 && w == 1 {
        // On 1x1 images only the centre tap meets data: a dense map per row. Burn 0.21's CubeCL
        // backends get the image reshapes and grouped convolution below wrong at 1x1 (wgpu and
        // CUDA; the kernel tests caught it), so this case avoids them.
        let centre = kernel / 2;
        let taps = weight.reshape([rows, c_out, c_in, kernel * kernel]);
        let centre_tap = taps.narrow(3, centre * kernel + centre, 1).reshape([rows, c_out, c_in]);
        return x.matmul(centre_tap.swap_dims(1, 2)) + bias.reshape([rows, 1, c_out]);
    }
    let image = x.reshape([rows, n, h, w, c_in]).permute([1, 0, 4, 2, 3]).reshape([n, rows * c_in, h, w]);
    let weight = weight.reshape([rows * c_out, c_in, kernel, kernel]);
    let bias = bias.reshape([rows * c_out]);
    let options = ConvOptions::new([1, 1], [kernel / 2, kernel / 2], [1, 1], rows);
    conv2d(image, weight, Some(bias), options).reshape([n, rows, c_out, h, w]).permute([1, 0, 3, 4, 2]).reshape([
        rows,
        n * h * w,
        c_out,
    ])
}

/// The blueprints a layer can grow, looked up by name.
pub type BlueprintRegistry = Registry<BlueprintSpec>;

impl Default for BlueprintRegistry {
    /// `residual_mlp` (hidden 2x chunk), `low_rank` (rank a quarter of the chunk), `small_conv`,
    /// `wide_mlp`, `wide_conv` and `inner_conv` (hidden 2x chunk, reading the whole layer).
    fn default() -> Self {
        let specs = vec![
            BlueprintSpec::residual_mlp(2.0),
            BlueprintSpec::low_rank(0.25),
            BlueprintSpec::small_conv(),
            BlueprintSpec::wide_mlp(2.0),
            BlueprintSpec::wide_conv(2.0),
            BlueprintSpec::inner_conv(2.0),
        ];
        Self::from_specs(specs).expect("built-in blueprints are valid")
    }
}

impl Spec for BlueprintSpec {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), MorphogenError> {
        BlueprintSpec::validate(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_end_at_zero() {
        let chunks = ChunkMap::new("layer", 9, 2).unwrap();
        for spec in BlueprintRegistry::default().specs() {
            spec.validate().unwrap();
            let shapes = spec.param_shapes(&chunks);
            let last_weight = shapes.iter().rev().find(|s| s.dims[0] != 1 || s.fan_in.is_some()).unwrap();
            assert_eq!(last_weight.fan_in, None, "{} must start at zero", spec.name);
        }
    }

    #[test]
    fn malformed_specs_are_rejected() {
        let open_end = BlueprintSpec {
            name: "bad".into(),
            input: BlueprintInput::Chunk,
            ops: vec![BlueprintOp::Dense { out: Width::Chunk, bias: true }, BlueprintOp::Act(Activation::Relu)],
        };
        assert!(open_end.validate().is_err());
        let even = BlueprintSpec {
            name: "even".into(),
            input: BlueprintInput::Chunk,
            ops: vec![BlueprintOp::Conv { out: Width::Chunk, kernel: 2 }],
        };
        assert!(even.validate().unwrap_err().to_string().contains("odd"));
        assert!(BlueprintRegistry::default().register(even).is_err());
    }

    #[test]
    fn a_blueprint_reading_the_layer_sizes_its_first_op_by_the_layer() {
        // 10 features over 3 seeds: chunks of 4, 3, 3 (padded width 4).
        let chunks = ChunkMap::new("layer", 10, 3).unwrap();
        let dims = |spec: &BlueprintSpec| spec.param_shapes(&chunks).iter().map(|s| s.dims).collect::<Vec<_>>();
        assert_eq!(dims(&BlueprintSpec::residual_mlp(2.0)), [[4, 8], [1, 8], [8, 4], [1, 4]]);
        assert_eq!(dims(&BlueprintSpec::wide_mlp(2.0)), [[10, 8], [1, 8], [8, 4], [1, 4]]);
        assert_eq!(dims(&BlueprintSpec::wide_conv(2.0)), [[8, 90], [1, 8], [4, 8], [1, 4]]);
        assert_eq!(dims(&BlueprintSpec::inner_conv(2.0)), [[8, 90], [1, 8], [4, 72], [1, 4]]);
        assert_eq!(BlueprintSpec::wide_mlp(2.0).param_count(&chunks), 80 + 8 + 32 + 4);
    }
}
