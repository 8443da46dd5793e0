//! Device code of the telemetry kernel for narrow chunks (at most [`MAX_NARROW`] features) of a
//! Linear's output, rows contiguous: no shared tile. Each thread owns one seed and sums its
//! whole chunk of a row in registers, so a value costs a load and a few additions, where the
//! tiled kernel (`device`) stages it through shared memory and sums it twice.
//!
//! A cube is [`SEEDS_PER_CUBE`] seeds (one warp across them, its loads covering the seeds'
//! neighbouring chunks of a row) by [`LANES`] rows; lanes take every `LANES`-th row of the cube's
//! row group and combine through shared memory once, at the end.

use super::device::add_to;
use crate::cube::chunk_start;
use cubecl::prelude::*;

/// The widest chunk this kernel takes: each thread keeps three sums a feature in registers.
pub(super) const MAX_NARROW: usize = 8;
/// Seeds a cube takes along x, a thread each: one warp.
pub(super) const SEEDS_PER_CUBE: usize = 32;
/// Rows a cube takes at once along y, a warp each.
pub(super) const LANES: usize = 8;

/// The shape of a `narrow_partial_sums` launch.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub(super) struct NarrowGrid {
    rows: usize,
    features: usize,
    seeds: usize,
    /// The chunk layout ([`chunk_start`]): the first `big` chunks are one wider than `base`.
    base: usize,
    big: usize,
    /// Rows each cube of the grid's first axis takes.
    rows_per_group: usize,
}

/// Floats of shared memory a cube uses to combine its lanes, for chunks up to `width` wide.
pub(super) const fn combine_floats(width: usize) -> usize {
    quantities(width) * LANES * SEEDS_PER_CUBE
}

/// The sums a thread keeps: three a feature of a `width`-wide chunk, two of its chunk totals.
const fn quantities(width: usize) -> usize {
    3 * width + 2
}

/// One seed's running sums over the rows a thread takes: per feature of its chunk (sum, sum of
/// squares, positive count; `width` each) and of the chunk's row totals.
#[derive(CubeType)]
struct ChunkSums {
    sum: Array<f32>,
    sumsq: Array<f32>,
    positive: Array<f32>,
    total_sum: f32,
    total_sumsq: f32,
}

#[cube]
impl ChunkSums {
    fn add_feature(&mut self, j: usize, v: f32) {
        self.sum[j] += v;
        self.sumsq[j] += v * v;
        self.positive[j] += select(v > f32::new(0.0), f32::new(1.0), f32::new(0.0));
    }

    fn new(#[comptime] width: usize) -> Self {
        let mut sum = Array::<f32>::new(width);
        let mut sumsq = Array::<f32>::new(width);
        let mut positive = Array::<f32>::new(width);
        #[unroll]
        for j in 0..width {
            sum[j] = f32::new(0.0);
            sumsq[j] = f32::new(0.0);
            positive[j] = f32::new(0.0);
        }
        ChunkSums { sum, sumsq, positive, total_sum: f32::new(0.0), total_sumsq: f32::new(0.0) }
    }

    /// Adds row `row` of the chunk: `base` features from `start`, and with `wide` one more from
    /// `extra`, counted as zero unless `has_extra` (a narrow chunk next to wide ones).
    #[allow(clippy::too_many_arguments)]
    fn add_row<F: Float>(
        &mut self,
        h: &Tensor<F>,
        row: usize,
        start: usize,
        extra: usize,
        has_extra: bool,
        #[comptime] base: usize,
        #[comptime] wide: bool,
    ) {
        let offset = row * h.stride(0);
        let mut total = f32::new(0.0);
        #[unroll]
        for j in 0..base {
            let v = f32::cast_from(h[offset + start + j]);
            self.add_feature(j, v);
            total += v;
        }
        if wide {
            let v = select(has_extra, f32::cast_from(h[offset + extra]), f32::new(0.0));
            self.add_feature(base, v);
            total += v;
        }
        self.total_sum += total;
        self.total_sumsq += total * total;
    }
}

/// Adds each of a cube's seeds' sums over its group of rows to the previous partial sums (read
/// through their strides) and writes the new ones: `[groups, 3 * features + 2 * seeds]`, each row
/// per-feature sums, sums of squares and positive counts, then the chunk totals' sums and sums of
/// squares. Threads past the last seed re-read its chunk and write nothing; lanes past the
/// group's last row load nothing and add zeros.
#[cube(launch_unchecked)]
pub(super) fn narrow_partial_sums<F: Float>(
    h: &Tensor<F>,
    previous: &Tensor<f32>,
    partial: &mut Tensor<f32>,
    g: NarrowGrid,
    #[comptime] base: usize,
    #[comptime] wide: bool,
    #[define(F)] _dtype: StorageType,
) {
    let width = comptime!(base + if wide { 1 } else { 0 });
    let x = UNIT_POS_X as usize;
    let lane = UNIT_POS_Y as usize;
    let own = CUBE_POS_Y as usize * SEEDS_PER_CUBE + x;
    let seed = min(own, g.seeds - 1);
    let start = chunk_start(seed, g.base, g.big);
    let has_extra = seed < g.big;
    let extra = min(start + base, g.features - 1);

    let mut acc = ChunkSums::new(width);
    let r_end = min((CUBE_POS_X as usize + 1) * g.rows_per_group, g.rows);
    let mut row = CUBE_POS_X as usize * g.rows_per_group + lane;
    while row < r_end {
        acc.add_row::<F>(h, row, start, extra, has_extra, base, wide);
        row += LANES;
    }
    combine_lanes(&acc, previous, partial, &g, seed, own < g.seeds, start, width);
}

/// Sums the lanes' [`ChunkSums`] through shared memory and adds them to the partial sums: lane
/// `l` writes quantities `l`, `l + LANES`, ... of `seed` (nothing unless `writes`).
#[cube]
#[allow(clippy::too_many_arguments)]
fn combine_lanes(
    acc: &ChunkSums,
    previous: &Tensor<f32>,
    partial: &mut Tensor<f32>,
    g: &NarrowGrid,
    seed: usize,
    writes: bool,
    start: usize,
    #[comptime] width: usize,
) {
    let count = comptime!(quantities(width));
    let mut shared = SharedMemory::<f32>::new(comptime!(combine_floats(width)));
    let x = UNIT_POS_X as usize;
    let lane = UNIT_POS_Y as usize;
    // Quantity q of lane l at (q * LANES + l) * SEEDS_PER_CUBE + x: a warp stores to one row.
    let at = lane * SEEDS_PER_CUBE + x;
    let step = LANES * SEEDS_PER_CUBE;
    #[unroll]
    for j in 0..width {
        shared[j * step + at] = acc.sum[j];
        shared[(width + j) * step + at] = acc.sumsq[j];
        shared[(2 * width + j) * step + at] = acc.positive[j];
    }
    shared[3 * width * step + at] = acc.total_sum;
    shared[(3 * width + 1) * step + at] = acc.total_sumsq;
    sync_cube();
    let chunk = chunk_start(seed + 1, g.base, g.big) - start;
    let group = CUBE_POS_X as usize;
    let out = group * (3 * g.features + 2 * g.seeds);
    let mut q = lane;
    while q < count {
        let mut value = f32::new(0.0);
        #[unroll]
        for l in 0..LANES {
            value += shared[q * step + l * SEEDS_PER_CUBE + x];
        }
        let j = q % width;
        let column = select(
            q < 3 * width,
            (q / width) * g.features + start + j,
            3 * g.features + (q - 3 * width) * g.seeds + seed,
        );
        if writes && (q >= 3 * width || j < chunk) {
            add_to(previous, partial, group, out, column, value);
        }
        q += LANES;
    }
}
