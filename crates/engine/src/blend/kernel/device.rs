//! Device code of the active-seed kernels (launched from the parent module): one cube per bank
//! row and sample group, the row's parameters staged in shared memory from whichever of the op's
//! pages holds it.

use crate::blend::{ROLE_FIXED_ONE, ROLE_GRAFTING, ROLE_TRAINABLE, ROLE_TRAINING};
use crate::cube::chunk_start;
use cubecl::prelude::*;

/// Threads per cube (one cube per bank row and sample group).
pub(super) const THREADS: u32 = 256;
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
/// the inner loops read shared memory, not global. `params` holds the op's pages in row order,
/// four tensors each (`w1, b1, w2, b2`); the row is found in its page.
#[cube]
fn stage_params<F: Float>(ws: &mut SharedMemory<f32>, params: &Sequence<Tensor<F>>, row: usize, d: &Dims) {
    stage_from_page::<F>(ws, params, row, 0usize, d, 0usize);
}

/// [`stage_params`] from page `page` on (unrolled at compile time), whose first row is `first`.
#[cube]
fn stage_from_page<F: Float>(
    ws: &mut SharedMemory<f32>,
    params: &Sequence<Tensor<F>>,
    row: usize,
    first: usize,
    d: &Dims,
    #[comptime] page: usize,
) {
    if comptime![4 * page < params.len()] {
        let w1 = params.index(4 * page);
        let rows = w1.shape(0);
        if row >= first && row < first + rows {
            let b1 = params.index(4 * page + 1);
            let w2 = params.index(4 * page + 2);
            let b2 = params.index(4 * page + 3);
            stage_row::<F>(ws, w1, b1, w2, b2, row - first, d);
        }
        stage_from_page::<F>(ws, params, row, first + rows, d, comptime![page + 1]);
    }
}

/// Stages row `row` of one page's parameters.
#[cube]
#[allow(clippy::too_many_arguments)]
fn stage_row<F: Float>(
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

/// The activation between a chain's two maps, fixed per kernel at compile time.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) enum HiddenActivation {
    /// None: two linear maps.
    Identity,
    /// `max(z, 0)`.
    Relu,
    /// `tanh(z)`.
    Tanh,
}

/// The activation `act` at pre-activation `z`.
#[cube]
fn activate(z: f32, #[comptime] act: HiddenActivation) -> f32 {
    match act {
        HiddenActivation::Identity => z,
        HiddenActivation::Relu => f32::max(z, f32::new(0.0)),
        HiddenActivation::Tanh => f32::tanh(z),
    }
}

/// The activation's derivative at pre-activation `z`.
#[cube]
fn activate_slope(z: f32, #[comptime] act: HiddenActivation) -> f32 {
    match act {
        HiddenActivation::Identity => f32::new(1.0),
        HiddenActivation::Relu => select(z > f32::new(0.0), f32::new(1.0), f32::new(0.0)),
        HiddenActivation::Tanh => {
            let y = f32::tanh(z);
            f32::new(1.0) - y * y
        }
    }
}

/// A row's output weight: 1 when its stage fixes it so, alpha while GRAFTING, else 0.
#[cube]
fn row_weight<F: Float>(flags: i32, alpha: &Tensor<F>, seed: usize) -> f32 {
    let mut weight = f32::new(0.0);
    if (flags & ROLE_FIXED_ONE) != 0 {
        weight = f32::new(1.0);
    } else if (flags & ROLE_GRAFTING) != 0 {
        weight = f32::cast_from(alpha[seed * alpha.stride(0)]);
    }
    weight
}

/// The shapes and launch constants shared by both kernels.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub(super) struct Dims {
    first_row: usize,
    samples: usize,
    spatial: usize,
    base: usize,
    big: usize,
    width: usize,
    hidden: usize,
    tile: usize,
    group_samples: usize,
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

/// Row `row` of the op, row `d.first_row + row` of the bank.
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
pub(super) fn blend_forward<F: Float>(
    out: &mut Tensor<F>,
    params: &Sequence<Tensor<F>>,
    alpha: &Tensor<F>,
    table: &Tensor<i32>,
    sumsq: &mut Tensor<F>,
    d: Dims,
    #[comptime] tile_x: usize,
    #[comptime] tile_h: usize,
    #[comptime] row_params: usize,
    #[comptime] act: HiddenActivation,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let mut xs = SharedMemory::<f32>::new(tile_x);
    let mut hs = SharedMemory::<f32>::new(tile_h);
    let mut partial = SharedMemory::<f32>::new(THREADS as usize);
    let mut ws = SharedMemory::<f32>::new(row_params);
    stage_params::<F>(&mut ws, params, row, &d);
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
            hs[e] = activate(z, act);
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

/// Adds the column sums of `rows x columns` tile values to `acc[at..at + columns]`, a column per
/// thread: a bias's gradient over the tile's samples.
#[cube]
fn add_column_sums(values: &SharedMemory<f32>, acc: &mut SharedMemory<f32>, at: usize, columns: usize, rows: usize) {
    let mut e = UNIT_POS_X as usize;
    while e < columns {
        let mut sum = f32::new(0.0);
        for s in 0..rows {
            sum += values[s * columns + e];
        }
        acc[at + e] += sum;
        e += CUBE_DIM_X as usize;
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn blend_backward<F: Float>(
    h: &Tensor<F>,
    grad: &mut Tensor<F>,
    params: &Sequence<Tensor<F>>,
    alpha: &Tensor<F>,
    table: &Tensor<i32>,
    partial: &mut Tensor<f32>,
    d: Dims,
    #[comptime] tile_x: usize,
    #[comptime] tile_h: usize,
    #[comptime] row_params: usize,
    #[comptime] act: HiddenActivation,
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
    let mut acc = SharedMemory::<f32>::new(row_params);
    let mut ws = SharedMemory::<f32>::new(row_params);
    stage_params::<F>(&mut ws, params, row, &d);
    let slot = layout(d.width, d.hidden);
    let wk = slot.b1;

    let r = row_of(table, row, &d);
    // Gradient weights: the input's is the output weight (zero while TRAINING: detached input);
    // the parameters' is the output weight, or 1 while TRAINING, on rows that train.
    let input_weight = row_weight::<F>(r.flags, alpha, r.seed);
    let mut param_weight = f32::new(0.0);
    if (r.flags & ROLE_TRAINABLE) != 0 {
        param_weight = input_weight;
        if (r.flags & ROLE_TRAINING) != 0 {
            param_weight = f32::new(1.0);
        }
    }
    let active = r.seed_id >= 0 && (input_weight != f32::new(0.0) || param_weight != f32::new(0.0));

    let mut e = t;
    while e < row_params {
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
            gz[e] = g * activate_slope(zs[e], act);
            e += threads;
        }
        let mut e = t;
        while e < wk {
            let (j, c) = (e / d.width, e % d.width);
            let mut sum = f32::new(0.0);
            for s in 0..d.tile {
                sum += activate(zs[s * d.hidden + j], act) * gs[s * d.width + c];
            }
            acc[slot.w2 + e] += sum;
            e += threads;
        }
        add_column_sums(&gs, &mut acc, slot.b2, d.width, d.tile);
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
        add_column_sums(&gz, &mut acc, slot.b1, d.hidden, d.tile);
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

    let out = (CUBE_POS_Y as usize * CUBE_COUNT_X as usize + row) * row_params;
    let mut e = t;
    while e < row_params {
        partial[out + e] = param_weight * acc[e];
        e += threads;
    }
}

/// Adds the sample groups' parameter gradients (`partial`, `[groups, rows, params]`) into the
/// gradient tensors: `grads` holds, per page in row order, those of `w1, b1, w2, b2`.
#[cube(launch)]
pub(super) fn sum_groups<F: Float>(
    partial: &Tensor<f32>,
    grads: &mut Sequence<Tensor<F>>,
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
    write_grad::<F>(grads, i / slot.params, i % slot.params, F::cast_from(sum), 0usize, &slot, 0usize);
}

/// Writes gradient `g` of parameter `e` (in the [`Layout`]) of row `row` into its page's tensor,
/// searching from page `page` on (unrolled at compile time), whose first row is `first`.
#[cube]
fn write_grad<F: Float>(
    grads: &mut Sequence<Tensor<F>>,
    row: usize,
    e: usize,
    g: F,
    first: usize,
    slot: &Layout,
    #[comptime] page: usize,
) {
    if comptime![4 * page < grads.len()] {
        let rows = grads.index(4 * page).shape(0);
        if row >= first && row < first + rows {
            let local = row - first;
            let wk = slot.b1;
            if e < slot.b1 {
                let gw1 = grads.index_mut(4 * page);
                gw1[local * wk + e] = g;
            } else if e < slot.w2 {
                let gb1 = grads.index_mut(4 * page + 1);
                gb1[local * (slot.w2 - slot.b1) + e - slot.b1] = g;
            } else if e < slot.b2 {
                let gw2 = grads.index_mut(4 * page + 2);
                gw2[local * wk + e - slot.w2] = g;
            } else {
                let gb2 = grads.index_mut(4 * page + 3);
                gb2[local * (slot.params - slot.b2) + e - slot.b2] = g;
            }
        }
        write_grad::<F>(grads, row, e, g, first + rows, slot, comptime![page + 1]);
    }
}
