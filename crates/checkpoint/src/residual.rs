//! One seed's blueprint as plain PyTorch-layout tensors: either merged into its host Linear layer
//! (chains of dense ops only, which are affine) or as a residual `nn.Sequential`.
//!
//! Blueprints run on a seed's chunk padded to the layer's chunk width; the padding positions
//! are masked on input and dropped on output, so the first parametric op keeps only its first
//! `c` input rows and the last keeps only its first `c` outputs, `c` being the seed's chunk size.
//! Hidden widths are kept whole. The seed's output weight (1, or alpha while grafting) is folded
//! into the last parametric op.

use morphogen_engine::{Activation, BlueprintOp, BlueprintSpec, HostKind};
use serde_json::{json, Value};

/// One parametric op of one seed's blueprint, in the bank's layout.
#[derive(Clone, Debug)]
pub struct OpParams {
    /// Weight values: dense `[in, out]`; conv `[out, in * k * k]`.
    pub weight: Vec<f32>,
    /// Bias values `[out]`, if the op has a bias.
    pub bias: Option<Vec<f32>>,
    /// `(in, out)` widths before slicing.
    pub widths: (usize, usize),
}

/// A tensor for the exported state dict: PyTorch layout, `f32`.
pub struct Exported {
    /// Name suffix within the residual module (`0.weight`).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub values: Vec<f32>,
}

/// Splits a row's parameters (in `param_shapes` order) into per-op weights and biases, paired
/// with their index among `spec.ops` (activations count, as in `nn.Sequential`). `input`: the
/// first op's input width ([`BlueprintSpec::input_width`]).
pub fn split_ops(spec: &BlueprintSpec, input: usize, row: Vec<Vec<f32>>) -> Vec<(usize, BlueprintOp, OpParams)> {
    let mut params = row.into_iter();
    let mut current = input;
    let mut ops = Vec::new();
    for (index, op) in spec.ops.iter().enumerate() {
        let (has_bias, kernel_area) = match *op {
            BlueprintOp::Dense { bias, .. } => (bias, 1),
            BlueprintOp::Conv { kernel, .. } => (true, kernel * kernel),
            BlueprintOp::Act(_) => continue,
        };
        let weight = params.next().expect("a weight per parametric op");
        let bias = has_bias.then(|| params.next().expect("a bias where the op has one"));
        let out = weight.len() / (current * kernel_area);
        ops.push((index, *op, OpParams { weight, bias, widths: (current, out) }));
        current = out;
    }
    ops
}

/// Whether every op is dense (the chain is affine and can merge into a Linear host).
pub fn is_affine(spec: &BlueprintSpec) -> bool {
    spec.ops.iter().all(|op| matches!(op, BlueprintOp::Dense { .. }))
}

/// The affine map `z = h T + t` of a dense chain on a chunk of `c` real features:
/// `T` is `[c, c]` row-major, `t` is `[c]` (in f64).
pub fn affine_map(ops: &[(usize, BlueprintOp, OpParams)], c: usize) -> (Vec<f64>, Vec<f64>) {
    let last = ops.len() - 1;
    // `map` is [c, n] (n = current width), `shift` is [n].
    let mut map: Vec<f64> = (0..c * c).map(|i| if i / c == i % c { 1.0 } else { 0.0 }).collect();
    let mut shift = vec![0.0f64; c];
    let mut n = c;
    for (k, (_, _, p)) in ops.iter().enumerate() {
        let (w_in, w_out) = p.widths;
        let out = if k == last { c } else { w_out };
        let weight = |i: usize, o: usize| p.weight[i * w_out + o] as f64;
        let mut next = vec![0.0f64; c * out];
        let mut next_shift = vec![0.0f64; out];
        for o in 0..out {
            for i in 0..n.min(w_in) {
                let w = weight(i, o);
                (0..c).for_each(|r| next[r * out + o] += map[r * n + i] * w);
                next_shift[o] += shift[i] * w;
            }
            next_shift[o] += p.bias.as_ref().map_or(0.0, |b| b[o] as f64);
        }
        (map, shift, n) = (next, next_shift, out);
    }
    (map, shift)
}

/// The ops as PyTorch modules' tensors (`<op index>.weight`, `<op index>.bias`), sliced to the
/// `reads` real features the first op reads and the chunk's `c` real features, the last op
/// scaled by `scale`, plus their JSON description.
pub fn residual_tensors(
    ops: &[(usize, BlueprintOp, OpParams)],
    spec: &BlueprintSpec,
    host: HostKind,
    [reads, c]: [usize; 2],
    scale: f32,
) -> (Vec<Exported>, Vec<Value>) {
    let last = ops.len() - 1;
    let mut tensors = Vec::new();
    for (k, (index, op, p)) in ops.iter().enumerate() {
        let keep_in = if k == 0 { reads } else { p.widths.0 };
        let keep_out = if k == last { c } else { p.widths.1 };
        let factor = if k == last { scale } else { 1.0 };
        let (weight, shape) = match *op {
            BlueprintOp::Conv { kernel, .. } => conv_weight(p, keep_in, keep_out, kernel),
            _ => dense_weight(p, keep_in, keep_out, host),
        };
        let weight = weight.into_iter().map(|v| v * factor).collect();
        tensors.push(Exported { name: format!("{index}.weight"), shape, values: weight });
        if let Some(bias) = &p.bias {
            let values = bias[..keep_out].iter().map(|v| v * factor).collect();
            tensors.push(Exported { name: format!("{index}.bias"), shape: vec![keep_out], values });
        }
    }
    (tensors, describe(spec, ops, host, [reads, c]))
}

/// A dense op as PyTorch `Linear` (`[out, in]`) or, on Conv2d hosts, a 1x1 `Conv2d`.
fn dense_weight(p: &OpParams, keep_in: usize, keep_out: usize, host: HostKind) -> (Vec<f32>, Vec<usize>) {
    let w_out = p.widths.1;
    let values = (0..keep_out).flat_map(|o| (0..keep_in).map(move |i| p.weight[i * w_out + o])).collect();
    let shape = match host {
        HostKind::Conv2d => vec![keep_out, keep_in, 1, 1],
        _ => vec![keep_out, keep_in],
    };
    (values, shape)
}

/// A conv op as PyTorch `Conv2d` (`[out, in, k, k]`).
fn conv_weight(p: &OpParams, keep_in: usize, keep_out: usize, kernel: usize) -> (Vec<f32>, Vec<usize>) {
    let kk = kernel * kernel;
    let row = p.widths.0 * kk;
    let values = (0..keep_out)
        .flat_map(|o| (0..keep_in * kk).map(move |j| p.weight[o * row + (j / kk) * kk + j % kk]))
        .collect();
    (values, vec![keep_out, keep_in, kernel, kernel])
}

/// JSON description of the residual module, one entry per op (as in `nn.Sequential`).
fn describe(
    spec: &BlueprintSpec,
    ops: &[(usize, BlueprintOp, OpParams)],
    host: HostKind,
    [reads, c]: [usize; 2],
) -> Vec<Value> {
    let last = ops.len() - 1;
    let widths = |index: usize| {
        let k = ops.iter().position(|(i, _, _)| *i == index).expect("every parametric op has parameters");
        let (w_in, w_out) = ops[k].2.widths;
        (if k == 0 { reads } else { w_in }, if k == last { c } else { w_out })
    };
    let describe_op = |(index, op): (usize, &BlueprintOp)| match *op {
        BlueprintOp::Act(a) => json!({ "type": activation_name(a) }),
        BlueprintOp::Dense { bias, .. } => {
            let (i, o) = widths(index);
            match host {
                HostKind::Conv2d => {
                    json!({"type": "conv2d", "in": i, "out": o, "kernel": 1, "padding": 0, "bias": bias})
                }
                _ => json!({"type": "linear", "in": i, "out": o, "bias": bias}),
            }
        }
        BlueprintOp::Conv { kernel, .. } => {
            let (i, o) = widths(index);
            json!({"type": "conv2d", "in": i, "out": o, "kernel": kernel, "padding": kernel / 2, "bias": true})
        }
    };
    spec.ops.iter().enumerate().map(describe_op).collect()
}

fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Relu => "relu",
        Activation::Gelu => "gelu",
        Activation::Tanh => "tanh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_map_of_a_low_rank_chain_is_the_product_sliced_to_the_chunk() {
        // width 3, c = 2, rank 1: A is [3, 1], B is [1, 3].
        let spec = BlueprintSpec::low_rank(0.3);
        let row = vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]];
        let ops = split_ops(&spec, 3, row);
        assert_eq!(ops[0].2.widths, (3, 1));
        let (t, shift) = affine_map(&ops, 2);
        assert_eq!(t, [4.0, 5.0, 8.0, 10.0]);
        assert_eq!(shift, [0.0, 0.0]);
    }

    #[test]
    fn conv_weights_slice_input_channels_of_the_first_op() {
        let p = OpParams { weight: (0..2 * 3 * 4).map(|v| v as f32).collect(), bias: None, widths: (3, 2) };
        let (values, shape) = conv_weight(&p, 2, 2, 2);
        assert_eq!(shape, [2, 2, 2, 2]);
        assert_eq!(&values[..8], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(&values[8..], &[12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0]);
    }
}
