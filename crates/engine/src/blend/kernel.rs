//! The active-seed kernels: [`apply_bank`](super::apply_bank) fused, for CubeCL backends.
//!
//! For blueprints of the form `Dense -> [ReLU | Tanh] -> Dense` (biases optional: the built-in
//! `residual_mlp` and `low_rank`), each bank page is one differentiable op. A cube takes one bank
//! row and a group of its samples (groups are sized so a page fills about four cubes per SM):
//! - forward, one launch after a copy of the host output: each cube streams its samples of the
//!   row's chunk through shared memory in tiles, runs both dense maps from the row's
//!   parameters, and adds the weighed result onto the chunk in place (the SGMV pattern: every
//!   row its own small GEMM, all rows in one launch). It also writes its sum of squared outputs
//!   for telemetry;
//! - backward, two launches (after a copy of the output gradient unless it can be written in
//!   place): each cube recomputes the hidden activations, accumulates its samples' parameter
//!   gradients in shared memory (f32) and adds the input gradient onto the chunk's gradient;
//!   then the groups' parameter gradients are summed.
//!
//! Per layer and step that is `1 + P` launches forward and `2P` (or `2P + 1`) backward for a
//! bank of `P` pages, whatever the number of active seeds. Other blueprints (convolutions,
//! longer chains, GELU) and chunks too wide for shared memory take the tensor path.

use super::{per_seed, BankPass, BankResult};
use crate::blueprint::{Activation, BlueprintOp, BlueprintSpec};
use crate::cube::{with_cube_differentiable, Constant, CubeDifferentiable};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Shape, Tensor as BurnTensor, TensorPrimitive};
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

/// Threads per cube (one cube per bank row and sample group).
const THREADS: u32 = 256;
/// Most samples a cube stages per tile.
const MAX_TILE: usize = 64;
/// Cubes worth filling the GPU with: four per SM of an H100/H200 (132 SMs). Rows split their
/// samples into groups, a cube each, until there are about this many.
const TARGET_CUBES: usize = 4 * 132;

/// The first feature of `seed`: the first `big` chunks hold `base + 1` features.
#[cube]
fn chunk_start(seed: usize, base: usize, big: usize) -> usize {
    let mut extra = seed;
    if big < seed {
        extra = big;
    }
    seed * base + extra
}

/// Address of feature `feature` of sample `sample` in a `[a, features, p]` tensor.
#[cube]
fn at<F: Float>(t: &Tensor<F>, sample: usize, feature: usize, spatial: usize) -> usize {
    (sample / spatial) * t.stride(0) + feature * t.stride(1) + (sample % spatial) * t.stride(2)
}

/// Element `[row, i, j]` of a stacked `[rows, a, b]` parameter.
#[cube]
fn param<F: Float>(t: &Tensor<F>, row: usize, i: usize, j: usize) -> f32 {
    f32::cast_from(t[row * t.stride(0) + i * t.stride(1) + j * t.stride(2)])
}

/// Where a row's parameters (and their gradients) sit in one flat run: `W1 [width, hidden] | b1
/// [hidden] | W2 [hidden, width] | b2 [width]`, `params` in all.
#[derive(CubeType)]
struct Layout {
    b1: usize,
    w2: usize,
    b2: usize,
    params: usize,
}

#[cube]
fn layout(width: usize, hidden: usize) -> Layout {
    let wk = width * hidden;
    Layout { b1: wk, w2: wk + hidden, b2: 2 * wk + hidden, params: 2 * wk + hidden + width }
}

/// Stages row `row`'s parameters in shared memory in the [`Layout`] (absent biases as zeros), so
/// the inner loops read shared memory, not global.
#[cube]
#[allow(clippy::too_many_arguments)]
fn stage_params<F: Float>(
    ws: &mut SharedMemory<f32>,
    w1: &Tensor<F>,
    b1: &Tensor<F>,
    w2: &Tensor<F>,
    b2: &Tensor<F>,
    row: usize,
    d: &Dims,
) {
    let slot = layout(d.width, d.hidden);
    let mut e = UNIT_POS_X as usize;
    while e < slot.params {
        let mut v = f32::new(0.0);
        if e < slot.b1 {
            v = param::<F>(w1, row, e / d.hidden, e % d.hidden);
        } else if e < slot.w2 {
            if d.bias1 != 0 {
                v = param::<F>(b1, row, 0, e - slot.b1);
            }
        } else if e < slot.b2 {
            let f = e - slot.w2;
            v = param::<F>(w2, row, f / d.width, f % d.width);
        } else if d.bias2 != 0 {
            v = param::<F>(b2, row, 0, e - slot.b2);
        }
        ws[e] = v;
        e += CUBE_DIM_X as usize;
    }
}

/// Hidden unit `j`'s pre-activation for tile sample `s`: `b1[j] + sum_i xs[s, i] W1[i, j]`, from
/// the staged parameters `ws`.
#[cube]
fn first_map(xs: &SharedMemory<f32>, ws: &SharedMemory<f32>, s: usize, j: usize, d: &Dims) -> f32 {
    let mut z = ws[layout(d.width, d.hidden).b1 + j];
    for i in 0..d.width {
        z += xs[s * d.width + i] * ws[i * d.hidden + j];
    }
    z
}

/// The activation (0: none, 1: ReLU, 2: tanh).
#[cube]
fn activate(z: f32, act: u32) -> f32 {
    let mut y = z;
    if act == 1 {
        y = f32::max(z, f32::new(0.0));
    } else if act == 2 {
        y = f32::tanh(z);
    }
    y
}

/// The activation's derivative at pre-activation `z`.
#[cube]
fn activate_slope(z: f32, act: u32) -> f32 {
    let mut d = f32::new(1.0);
    if act == 1 {
        d = select(z > f32::new(0.0), f32::new(1.0), f32::new(0.0));
    } else if act == 2 {
        let y = f32::tanh(z);
        d = f32::new(1.0) - y * y;
    }
    d
}

/// A row's output weight: 1 when its stage fixes it so, alpha while GRAFTING, else 0.
#[cube]
fn row_weight<F: Float>(flags: i32, alpha: &Tensor<F>, seed: usize) -> f32 {
    let mut weight = f32::new(0.0);
    if (flags & 1) != 0 {
        weight = f32::new(1.0);
    } else if (flags & 2) != 0 {
        weight = f32::cast_from(alpha[seed * alpha.stride(0)]);
    }
    weight
}

/// The shapes and launch constants shared by both kernels.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
struct Dims {
    first_row: usize,
    samples: usize,
    spatial: usize,
    base: usize,
    big: usize,
    width: usize,
    hidden: usize,
    tile: usize,
    group_samples: usize,
    act: u32,
    bias1: u32,
    bias2: u32,
    sampled: u32,
}

/// A bank row as the table gives it: its seed (`seed_id` -1 when free, `seed` then 0), its stage
/// flags, and its chunk's first feature and real width.
#[derive(CubeType)]
struct Row {
    seed_id: i32,
    seed: usize,
    flags: i32,
    start: usize,
    real: usize,
}

/// Row `row` of the page starting at `d.first_row`.
#[cube]
fn row_of(table: &Tensor<i32>, row: usize, d: &Dims) -> Row {
    let entry = (d.first_row + row) * table.stride(0);
    let seed_id = table[entry];
    let mut seed = 0;
    if seed_id > 0 {
        seed = usize::cast_from(seed_id);
    }
    let start = chunk_start(seed, d.base, d.big);
    let real = chunk_start(seed + 1, d.base, d.big) - start;
    Row { seed_id, seed, flags: table[entry + table.stride(1)], start, real }
}

/// The end of this cube's samples: it takes group `CUBE_POS_Y` of `group_samples` (a whole
/// number of tiles), starting at `CUBE_POS_Y * group_samples`.
#[cube]
fn group_end(d: &Dims) -> usize {
    let mut end = (CUBE_POS_Y as usize + 1) * d.group_samples;
    if end > d.samples {
        end = d.samples;
    }
    end
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn blend_forward<F: Float>(
    out: &mut Tensor<F>,
    w1: &Tensor<F>,
    b1: &Tensor<F>,
    w2: &Tensor<F>,
    b2: &Tensor<F>,
    alpha: &Tensor<F>,
    table: &Tensor<i32>,
    sumsq: &mut Tensor<F>,
    d: Dims,
    #[comptime] tile_x: usize,
    #[comptime] tile_h: usize,
    #[comptime] params: usize,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let mut xs = SharedMemory::<f32>::new(tile_x);
    let mut hs = SharedMemory::<f32>::new(tile_h);
    let mut partial = SharedMemory::<f32>::new(THREADS as usize);
    let mut ws = SharedMemory::<f32>::new(params);
    stage_params::<F>(&mut ws, w1, b1, w2, b2, row, &d);
    let slot = layout(d.width, d.hidden);

    let r = row_of(table, row, &d);
    let weight = row_weight::<F>(r.flags, alpha, r.seed);
    // Barriers stay outside data-dependent branches (WGSL requires uniform control flow): a row
    // with nothing to do still walks the tiles, doing no work.
    let active = r.seed_id >= 0 && (weight != f32::new(0.0) || d.sampled != 0);
    let mut total = f32::new(0.0);

    let mut s0 = CUBE_POS_Y as usize * d.group_samples;
    let end = group_end(&d);
    while s0 < end {
        let mut e = t;
        while e < d.tile * d.width {
            let (s, c) = (s0 + e / d.width, e % d.width);
            let mut v = f32::new(0.0);
            if active && s < end && c < r.real {
                v = f32::cast_from(out[at::<F>(out, s, r.start + c, d.spatial)]);
            }
            xs[e] = v;
            e += threads;
        }
        sync_cube();
        let mut e = t;
        while e < d.tile * d.hidden {
            let (s, j) = (e / d.hidden, e % d.hidden);
            let mut z = f32::new(0.0);
            if active && s0 + s < end {
                z = first_map(&xs, &ws, s, j, &d);
            }
            hs[e] = activate(z, d.act);
            e += threads;
        }
        sync_cube();
        let mut e = t;
        while e < d.tile * d.width {
            let (s, c) = (e / d.width, e % d.width);
            if active && s0 + s < end && c < r.real {
                let mut y = ws[slot.b2 + c];
                for j in 0..d.hidden {
                    y += hs[s * d.hidden + j] * ws[slot.w2 + j * d.width + c];
                }
                total += y * y;
                if weight != f32::new(0.0) {
                    let o = at::<F>(out, s0 + s, r.start + c, d.spatial);
                    out[o] = F::cast_from(f32::cast_from(out[o]) + weight * y);
                }
            }
            e += threads;
        }
        sync_cube();
        s0 += d.tile;
    }

    partial[t] = total;
    sync_cube();
    if t == 0 {
        let mut sum = f32::new(0.0);
        for k in 0..threads {
            sum += partial[k];
        }
        sumsq[CUBE_POS_Y as usize * CUBE_COUNT_X as usize + row] = F::cast_from(sum);
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn blend_backward<F: Float>(
    h: &Tensor<F>,
    grad: &mut Tensor<F>,
    w1: &Tensor<F>,
    b1: &Tensor<F>,
    w2: &Tensor<F>,
    b2: &Tensor<F>,
    alpha: &Tensor<F>,
    table: &Tensor<i32>,
    partial: &mut Tensor<f32>,
    d: Dims,
    #[comptime] tile_x: usize,
    #[comptime] tile_h: usize,
    #[comptime] params: usize,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let mut xs = SharedMemory::<f32>::new(tile_x);
    let mut gs = SharedMemory::<f32>::new(tile_x);
    let mut zs = SharedMemory::<f32>::new(tile_h);
    let mut gz = SharedMemory::<f32>::new(tile_h);
    // The row's parameter gradients, in f32, in the parameters' `Layout`.
    let mut acc = SharedMemory::<f32>::new(params);
    let mut ws = SharedMemory::<f32>::new(params);
    stage_params::<F>(&mut ws, w1, b1, w2, b2, row, &d);
    let slot = layout(d.width, d.hidden);
    let wk = slot.b1;

    let r = row_of(table, row, &d);
    // Gradient weights: the input's is the output weight (zero while TRAINING: detached input);
    // the parameters' is the output weight, or 1 while TRAINING, on rows that train.
    let input_weight = row_weight::<F>(r.flags, alpha, r.seed);
    let mut param_weight = f32::new(0.0);
    if (r.flags & 8) != 0 {
        param_weight = input_weight;
        if (r.flags & 4) != 0 {
            param_weight = f32::new(1.0);
        }
    }
    let active = r.seed_id >= 0 && (input_weight != f32::new(0.0) || param_weight != f32::new(0.0));

    let mut e = t;
    while e < params {
        acc[e] = f32::new(0.0);
        e += threads;
    }
    sync_cube();

    let mut s0 = CUBE_POS_Y as usize * d.group_samples;
    let end = group_end(&d);
    while s0 < end {
        let mut e = t;
        while e < d.tile * d.width {
            let (s, c) = (s0 + e / d.width, e % d.width);
            let mut x = f32::new(0.0);
            let mut g = f32::new(0.0);
            if active && s < end && c < r.real {
                x = f32::cast_from(h[at::<F>(h, s, r.start + c, d.spatial)]);
                g = f32::cast_from(grad[at::<F>(grad, s, r.start + c, d.spatial)]);
            }
            xs[e] = x;
            gs[e] = g;
            e += threads;
        }
        sync_cube();
        let mut e = t;
        while e < d.tile * d.hidden {
            let (s, j) = (e / d.hidden, e % d.hidden);
            let mut z = f32::new(0.0);
            if active {
                z = first_map(&xs, &ws, s, j, &d);
            }
            zs[e] = z;
            e += threads;
        }
        sync_cube();
        // Gradient at the hidden pre-activations, and the second map's parameter gradients.
        let mut e = t;
        while e < d.tile * d.hidden {
            let (s, j) = (e / d.hidden, e % d.hidden);
            let mut g = f32::new(0.0);
            for c in 0..d.width {
                g += gs[s * d.width + c] * ws[slot.w2 + j * d.width + c];
            }
            gz[e] = g * activate_slope(zs[e], d.act);
            e += threads;
        }
        let mut e = t;
        while e < wk {
            let (j, c) = (e / d.width, e % d.width);
            let mut sum = f32::new(0.0);
            for s in 0..d.tile {
                sum += activate(zs[s * d.hidden + j], d.act) * gs[s * d.width + c];
            }
            acc[slot.w2 + e] += sum;
            e += threads;
        }
        let mut e = t;
        while e < d.width {
            let mut sum = f32::new(0.0);
            for s in 0..d.tile {
                sum += gs[s * d.width + e];
            }
            acc[slot.b2 + e] += sum;
            e += threads;
        }
        sync_cube();
        // The first map's parameter gradients, and the input's gradient added onto the chunk's.
        let mut e = t;
        while e < wk {
            let (i, j) = (e / d.hidden, e % d.hidden);
            let mut sum = f32::new(0.0);
            for s in 0..d.tile {
                sum += xs[s * d.width + i] * gz[s * d.hidden + j];
            }
            acc[e] += sum;
            e += threads;
        }
        let mut e = t;
        while e < d.hidden {
            let mut sum = f32::new(0.0);
            for s in 0..d.tile {
                sum += gz[s * d.hidden + e];
            }
            acc[slot.b1 + e] += sum;
            e += threads;
        }
        let mut e = t;
        while e < d.tile * d.width {
            let (s, i) = (e / d.width, e % d.width);
            if active && input_weight != f32::new(0.0) && s0 + s < end && i < r.real {
                let mut dx = f32::new(0.0);
                for j in 0..d.hidden {
                    dx += gz[s * d.hidden + j] * ws[i * d.hidden + j];
                }
                let o = at::<F>(grad, s0 + s, r.start + i, d.spatial);
                grad[o] = F::cast_from(f32::cast_from(grad[o]) + input_weight * dx);
            }
            e += threads;
        }
        sync_cube();
        s0 += d.tile;
    }

    let out = (CUBE_POS_Y as usize * CUBE_COUNT_X as usize + row) * params;
    let mut e = t;
    while e < params {
        partial[out + e] = param_weight * acc[e];
        e += threads;
    }
}

/// Adds the sample groups' parameter gradients (`partial`, `[groups, rows, params]`) into the
/// four gradient tensors.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn sum_groups<F: Float>(
    partial: &Tensor<f32>,
    gw1: &mut Tensor<F>,
    gb1: &mut Tensor<F>,
    gw2: &mut Tensor<F>,
    gb2: &mut Tensor<F>,
    groups: usize,
    rows: usize,
    width: usize,
    hidden: usize,
    #[define(F)] _dtype: StorageType,
) {
    let slot = layout(width, hidden);
    let i = ABSOLUTE_POS;
    if i >= rows * slot.params {
        terminate!();
    }
    let mut sum = f32::new(0.0);
    for g in 0..groups {
        sum += partial[g * rows * slot.params + i];
    }
    let (row, e) = (i / slot.params, i % slot.params);
    let wk = slot.b1;
    let g = F::cast_from(sum);
    if e < slot.b1 {
        gw1[row * wk + e] = g;
    } else if e < slot.w2 {
        gb1[row * hidden + e - slot.b1] = g;
    } else if e < slot.b2 {
        gw2[row * wk + e - slot.w2] = g;
    } else {
        gb2[row * width + e - slot.b2] = g;
    }
}

/// A blueprint the kernels run: `Dense -> [ReLU | Tanh] -> Dense`, biases optional.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Chain {
    width: usize,
    hidden: usize,
    act: u32,
    bias1: bool,
    bias2: bool,
}

impl Chain {
    /// The chain of `spec` at padded chunk width `width`; `None` for any other blueprint.
    fn of(spec: &BlueprintSpec, width: usize) -> Option<Self> {
        let (first, act, second) = match spec.ops.as_slice() {
            [first, BlueprintOp::Act(act), second] => (first, Some(*act), second),
            [first, second] => (first, None, second),
            _ => return None,
        };
        let act = match act {
            None => 0,
            Some(Activation::Relu) => 1,
            Some(Activation::Tanh) => 2,
            Some(Activation::Gelu) => return None,
        };
        let (BlueprintOp::Dense { bias: bias1, .. }, BlueprintOp::Dense { bias: bias2, .. }) = (first, second) else {
            return None;
        };
        let hidden = spec.param_shapes(width)[0].dims[1];
        Some(Self { width, hidden, act, bias1: *bias1, bias2: *bias2 })
    }

    /// Parameters of one row: `2 * width * hidden + hidden + width` (gradient layout, biases
    /// included whether or not the blueprint has them).
    fn row_params(&self) -> usize {
        2 * self.width * self.hidden + self.hidden + self.width
    }

    /// Samples per tile so the backward kernel's shared memory fits `max_shared_bytes`.
    fn tile(&self, max_shared_bytes: usize) -> Option<usize> {
        let floats = max_shared_bytes / 4;
        // Backward: staged parameters and their gradients; forward needs less.
        let fixed = 2 * self.row_params() + THREADS as usize;
        let per_sample = 2 * (self.width + self.hidden);
        let tile = floats.checked_sub(fixed)? / per_sample;
        (tile >= 1).then_some(tile.min(MAX_TILE))
    }
}

/// One bank page's pass: the [`CubeDifferentiable`] behind [`apply_bank`].
/// Inputs: the host output, then `w1, b1, w2, b2` (absent biases stand in as detached copies of
/// `w1`); constants: alpha `[seeds]` and the bank's row table `[rows, 2]`.
#[derive(Clone, Debug)]
struct PagePass {
    chain: Chain,
    first_row: usize,
    base: usize,
    big: usize,
    sampled: bool,
}

/// How a launch covers a page: `rows x groups` cubes, each taking `group_samples` samples (whole
/// tiles) of one row.
#[derive(Clone, Copy, Debug)]
struct Grid {
    rows: usize,
    groups: usize,
    group_samples: usize,
    tile: usize,
}

impl Grid {
    fn cubes(&self) -> CubeCount {
        CubeCount::Static(self.rows as u32, self.groups as u32, 1)
    }
}

impl PagePass {
    /// The grid for host output `h` and a page of `rows` rows; `None` when a row's tile does not
    /// fit shared memory.
    fn grid<R: CubeRuntime>(&self, h: &CubeTensor<R>, rows: usize) -> Option<Grid> {
        let tile = self.chain.tile(h.client.properties().hardware.max_shared_memory_size)?;
        let [a, _, p] = h.meta.shape().dims::<3>();
        let tiles = (a * p).div_ceil(tile).max(1);
        let wanted = TARGET_CUBES.div_ceil(rows.max(1)).clamp(1, tiles);
        let group_samples = tiles.div_ceil(wanted) * tile;
        Some(Grid { rows, groups: (a * p).div_ceil(group_samples).max(1), group_samples, tile })
    }

    fn dims<R: CubeRuntime>(&self, h: &CubeTensor<R>, grid: Grid) -> DimsLaunch<R> {
        let [a, _, p] = h.meta.shape().dims::<3>();
        let c = self.chain;
        DimsLaunch::new(
            self.first_row,
            a * p,
            p,
            self.base,
            self.big,
            c.width,
            c.hidden,
            grid.tile,
            grid.group_samples,
            c.act,
            c.bias1 as u32,
            c.bias2 as u32,
            self.sampled as u32,
        )
    }
}

/// Rows of a page: the first dimension of its first parameter.
fn page_rows<R: CubeRuntime>(w1: &CubeTensor<R>) -> usize {
    w1.meta.shape().dims::<3>()[0]
}

/// A tensor's own buffer to write into: itself when nothing else holds it, else a copy.
fn writable<R: CubeRuntime>(t: CubeTensor<R>) -> CubeTensor<R> {
    if t.can_mut() && t.is_nonoverlapping() {
        t
    } else {
        t.copy()
    }
}

impl CubeDifferentiable<5> for PagePass {
    fn accepts<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; 5], constants: &[CubeTensor<R>]) -> bool {
        constants[1].dtype == DType::I32 && self.grid(&inputs[0], page_rows(&inputs[1])).is_some()
    }

    fn forward<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; 5], constants: &[CubeTensor<R>]) -> [CubeTensor<R>; 2] {
        let [h, w1, b1, w2, b2] = inputs.clone();
        let [alpha, table] = [constants[0].clone(), constants[1].clone()];
        let grid = self.grid(&h, page_rows(&w1)).expect("accepted");
        let (client, device, dtype) = (h.client.clone(), h.device.clone(), h.dtype);
        let out = h.copy();
        let shape = Shape::new([grid.groups, grid.rows]);
        let sumsq = empty_device_contiguous_dtype::<R>(client.clone(), device, shape, dtype);
        let c = self.chain;
        blend_forward::launch::<R>(
            &client,
            grid.cubes(),
            CubeDim::new_1d(THREADS),
            out.clone().into_tensor_arg(),
            w1.into_tensor_arg(),
            b1.into_tensor_arg(),
            w2.into_tensor_arg(),
            b2.into_tensor_arg(),
            alpha.into_tensor_arg(),
            table.into_tensor_arg(),
            sumsq.clone().into_tensor_arg(),
            self.dims(&h, grid),
            grid.tile * c.width,
            grid.tile * c.hidden,
            c.row_params(),
            dtype.into(),
        );
        [out, sumsq]
    }

    fn backward<R: CubeRuntime>(
        &self,
        inputs: &[CubeTensor<R>; 5],
        constants: &[CubeTensor<R>],
        grad: CubeTensor<R>,
        wanted: [bool; 5],
    ) -> [Option<CubeTensor<R>>; 5] {
        let [h, w1, b1, w2, b2] = inputs.clone();
        let [alpha, table] = [constants[0].clone(), constants[1].clone()];
        let grid = self.grid(&h, page_rows(&w1)).expect("accepted");
        let (rows, c) = (grid.rows, self.chain);
        let (client, device, dtype) = (h.client.clone(), h.device.clone(), w1.dtype);
        let grad = writable(grad);
        let new =
            |shape: Shape, dtype| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let partial = new(Shape::new([grid.groups, rows, c.row_params()]), DType::F32);
        blend_backward::launch::<R>(
            &client,
            grid.cubes(),
            CubeDim::new_1d(THREADS),
            h.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            w1.into_tensor_arg(),
            b1.into_tensor_arg(),
            w2.into_tensor_arg(),
            b2.into_tensor_arg(),
            alpha.into_tensor_arg(),
            table.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            self.dims(&h, grid),
            grid.tile * c.width,
            grid.tile * c.hidden,
            c.row_params(),
            dtype.into(),
        );
        let shapes = [[rows, c.width, c.hidden], [rows, 1, c.hidden], [rows, c.hidden, c.width], [rows, 1, c.width]];
        let [gw1, gb1, gw2, gb2] = shapes.map(|shape| new(Shape::new(shape), dtype));
        let cube_dim = CubeDim::new_1d(THREADS);
        sum_groups::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, rows * c.row_params(), cube_dim),
            cube_dim,
            partial.into_tensor_arg(),
            gw1.clone().into_tensor_arg(),
            gb1.clone().into_tensor_arg(),
            gw2.clone().into_tensor_arg(),
            gb2.clone().into_tensor_arg(),
            grid.groups,
            rows,
            c.width,
            c.hidden,
            dtype.into(),
        );
        let out = [Some(grad), Some(gw1), c.bias1.then_some(gb1), Some(gw2), c.bias2.then_some(gb2)];
        let mut wanted = wanted.into_iter();
        out.map(|g| g.filter(|_| wanted.next().unwrap_or(false)))
    }
}

/// The kernel form of [`apply_bank`](super::apply_bank): `None` when `B` is not a CubeCL backend
/// this build knows, the blueprint is not a two-map chain, or a row does not fit shared memory.
pub(crate) fn apply_bank<B: Backend>(h: &BurnTensor<B, 3>, pass: &BankPass<'_, B>) -> Option<BankResult<B>> {
    let chain = Chain::of(pass.spec, pass.chunks.width())?;
    let (features, seeds) = (pass.chunks.features(), pass.chunks.seeds());
    let float = |t: BurnTensor<B, 3>| t.into_primitive().tensor();
    let mut out = h.clone();
    let mut sums = Vec::new();
    let mut first_row = 0;
    for page in &pass.bank.pages {
        let rows = page.params[0].dims()[0];
        // A page whose rows are all frozen passes detached parameters: no gradients at all.
        let trainable = pass.index.roles[first_row..first_row + rows].iter().any(|r| r.trainable);
        let mut params = page.params.iter().map(|p| if trainable { p.val() } else { p.val().detach() });
        let w1 = params.next()?;
        let stand_in = || w1.clone().detach();
        let b1 = if chain.bias1 { params.next()? } else { stand_in() };
        let w2 = params.next()?;
        let b2 = if chain.bias2 { params.next()? } else { stand_in() };
        let op = PagePass { chain, first_row, base: features / seeds, big: features % seeds, sampled: pass.sampled };
        let constants = vec![
            Constant::Float(pass.alpha.clone().into_primitive().tensor()),
            Constant::Int(pass.index.table.clone().into_primitive()),
        ];
        let inputs = [out, w1, b1, w2, b2].map(float);
        let [result, sumsq] = with_cube_differentiable::<B, _, 5>(inputs, constants, &op)?;
        out = BurnTensor::from_primitive(TensorPrimitive::Float(result));
        if pass.sampled {
            // [groups, rows]: one sum per sample group.
            let sumsq = BurnTensor::<B, 2>::from_primitive(TensorPrimitive::Float(sumsq));
            sums.push(sumsq.sum_dim(0).reshape([rows]));
        }
        first_row += rows;
    }
    let sumsq = pass.sampled.then(|| per_seed(BurnTensor::cat(sums, 0), pass.index, seeds));
    Some((out, sumsq))
}
