//! Device code of the dormant-telemetry kernel (launched from the parent module).

use crate::cube::chunk_start;
use cubecl::prelude::*;

/// Floats per tile row for `span` features: one pad word every 32 (see `padded`).
pub(super) const fn tile_stride(span: usize) -> usize {
    span + span / 32
}

/// The shape of a `partial_sums` launch: the host output's rows (samples) and features, the
/// chunk layout, and how the grid splits them into row groups and spans.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub(super) struct Grid {
    /// Samples: `a * p` rows of `[a, features, p]`.
    rows: usize,
    features: usize,
    /// `p`: positions per sample index `a`.
    spatial: usize,
    seeds: usize,
    /// The chunk layout ([`chunk_start`]).
    base: usize,
    big: usize,
    /// Spans over the wide chunks, and seeds per wide and per narrow span.
    wide_spans: usize,
    per_wide: usize,
    per_narrow: usize,
    /// Rows each cube of the grid's first axis takes.
    rows_per_group: usize,
}

/// The first seed of span `y` (`seeds` for the last span's end): spans of `per_wide` seeds
/// through the `big` wider chunks, then of `per_narrow`, so narrow spans fill the cube too.
#[cube]
fn span_start(y: usize, g: &Grid) -> usize {
    let narrow = max(y, g.wide_spans) - g.wide_spans;
    select(y <= g.wide_spans, min(y * g.per_wide, g.big), min(g.big + narrow * g.per_narrow, g.seeds))
}

/// Where span column `col` lies in a tile row: a pad word every 32 columns puts the threads of a
/// warp summing neighbouring chunks (columns a chunk width apart) on distinct banks.
#[cube]
fn padded(col: usize) -> usize {
    col + col / 32
}

/// One feature's running sums.
#[derive(CubeType)]
struct FeatureSums {
    sum: f32,
    sumsq: f32,
    positive: f32,
}

#[cube]
impl FeatureSums {
    fn new() -> Self {
        FeatureSums { sum: f32::new(0.0), sumsq: f32::new(0.0), positive: f32::new(0.0) }
    }

    fn add(&mut self, v: f32) {
        self.sum += v;
        self.sumsq += v * v;
        self.positive += select(v > f32::new(0.0), f32::new(1.0), f32::new(0.0));
    }
}

/// One seed's running sums of chunk totals.
#[derive(CubeType)]
struct SeedSums {
    sum: f32,
    sumsq: f32,
}

#[cube]
impl SeedSums {
    fn new() -> Self {
        SeedSums { sum: f32::new(0.0), sumsq: f32::new(0.0) }
    }

    fn add(&mut self, total: f32) {
        self.sum += total;
        self.sumsq += total * total;
    }
}

/// Where row `r` (sample `r / spatial`, position `r % spatial`) starts in `h`; a Linear's output
/// (`flat`: one position per sample) needs no division.
#[cube]
fn row_offset<F: Float>(h: &Tensor<F>, r: usize, spatial: usize, #[comptime] flat: bool) -> usize {
    if flat {
        r * h.stride(0)
    } else {
        (r / spatial) * h.stride(0) + (r % spatial) * h.stride(2)
    }
}

/// Reads rows `r0..r0 + tile_rows` of the thread's feature (column offset `column` in `h`) into
/// registers, all loads independent so they are in flight together; rows past `last` re-read it
/// (they are never counted).
#[cube]
#[allow(clippy::too_many_arguments)]
fn load_rows<F: Float>(
    h: &Tensor<F>,
    staged: &mut Array<f32>,
    r0: usize,
    last: usize,
    column: usize,
    spatial: usize,
    #[comptime] tile_rows: usize,
    #[comptime] flat: bool,
) {
    #[unroll]
    for row in 0..tile_rows {
        staged[row] = f32::cast_from(h[row_offset::<F>(h, min(r0 + row, last), spatial, flat) + column]);
    }
}

/// Adds the first `nr` staged rows to `acc` and stores them (zeros past `nr`) in tile column `col`.
#[cube]
fn stage_rows(
    staged: &Array<f32>,
    tile: &mut SharedMemory<f32>,
    acc: &mut FeatureSums,
    nr: usize,
    col: usize,
    #[comptime] tile_rows: usize,
    #[comptime] stride: usize,
) {
    #[unroll]
    for row in 0..tile_rows {
        let v = select(row < nr, staged[row], f32::new(0.0));
        acc.add(v);
        tile[row * stride + col] = v;
    }
}

/// Adds to `acc` the chunk totals (columns `first..end`) of tile rows `lane`, `lane + lanes`, ...
#[cube]
#[allow(clippy::too_many_arguments)]
fn sum_chunks(
    tile: &SharedMemory<f32>,
    acc: &mut SeedSums,
    lane: usize,
    lanes: usize,
    nr: usize,
    first: usize,
    end: usize,
    #[comptime] stride: usize,
) {
    let mut row = lane;
    while row < nr {
        let mut total = f32::new(0.0);
        for col in first..end {
            total += tile[row * stride + padded(col)];
        }
        acc.add(total);
        row += lanes;
    }
}

/// Writes column `j` of row group `group` (flat offset `out`) of the new partial sums: the
/// previous partial sums' value (read through its strides) plus `value`.
#[cube]
pub(super) fn add_to(
    previous: &Tensor<f32>,
    partial: &mut Tensor<f32>,
    group: usize,
    out: usize,
    j: usize,
    value: f32,
) {
    partial[out + j] = previous[group * previous.stride(0) + j * previous.stride(1)] + value;
}

#[cube(launch_unchecked)]
pub(super) fn partial_sums<F: Float>(
    h: &Tensor<F>,
    previous: &Tensor<f32>,
    partial: &mut Tensor<f32>,
    g: Grid,
    #[comptime] tile_rows: usize,
    #[comptime] span_max: usize,
    #[comptime] flat: bool,
    #[define(F)] _dtype: StorageType,
) {
    let stride = comptime!(tile_stride(span_max));
    let mut tile = SharedMemory::<f32>::new(tile_rows * stride);
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;

    // The span: seeds `seed_lo..seed_lo + ns`, features `f_lo..f_lo + span`.
    let y = CUBE_POS_Y as usize;
    let seed_lo = span_start(y, &g);
    let ns = span_start(y + 1, &g) - seed_lo;
    let f_lo = chunk_start(seed_lo, g.base, g.big);
    let span = chunk_start(seed_lo + ns, g.base, g.big) - f_lo;
    // Thread t owns feature t (threads past the span repeat the last one, never written out) and
    // sums the chunk of seed `t % ns` in tile rows `t / ns`, `+ lanes`, ...
    let feature = f_lo + min(t, span - 1);
    let lanes = threads / ns;
    let lane = t / ns;
    let own = seed_lo + t % ns;
    let first = chunk_start(own, g.base, g.big) - f_lo;
    let end = chunk_start(own + 1, g.base, g.big) - f_lo;

    let mut feature_acc = FeatureSums::new();
    let mut seed_acc = SeedSums::new();
    let r_begin = CUBE_POS_X as usize * g.rows_per_group;
    let r_end = min(r_begin + g.rows_per_group, g.rows);
    let column = feature * h.stride(1);
    // Double-buffered: the next tile's loads are in flight while the seeds sum this one. A group
    // past the last row (fewer rows than groups) loads nothing and carries its sums over.
    let mut staged = Array::<f32>::new(tile_rows);
    if r_begin < r_end {
        load_rows::<F>(h, &mut staged, r_begin, r_end - 1, column, g.spatial, tile_rows, flat);
    }
    let mut r0 = r_begin;
    while r0 < r_end {
        let nr = min(r_end - r0, tile_rows);
        stage_rows(&staged, &mut tile, &mut feature_acc, nr, padded(t), tile_rows, stride);
        sync_cube();
        let next = r0 + tile_rows;
        if next < r_end {
            load_rows::<F>(h, &mut staged, next, r_end - 1, column, g.spatial, tile_rows, flat);
        }
        if lane < lanes {
            sum_chunks(&tile, &mut seed_acc, lane, lanes, nr, first, end, stride);
        }
        sync_cube();
        r0 = next;
    }

    let (features, seeds) = (g.features, g.seeds);
    let group = CUBE_POS_X as usize;
    let out = group * (3 * features + 2 * seeds);
    if t < span {
        add_to(previous, partial, group, out, feature, feature_acc.sum);
        add_to(previous, partial, group, out, features + feature, feature_acc.sumsq);
        add_to(previous, partial, group, out, 2 * features + feature, feature_acc.positive);
    }
    // The lanes of a seed combine through the tile (free since the last barrier).
    if lane < lanes {
        tile[t] = seed_acc.sum;
        tile[threads + t] = seed_acc.sumsq;
    }
    sync_cube();
    if t < ns {
        let mut sum = f32::new(0.0);
        let mut sumsq = f32::new(0.0);
        for l in 0..lanes {
            sum += tile[l * ns + t];
            sumsq += tile[threads + l * ns + t];
        }
        let at = 3 * features + seed_lo + t;
        add_to(previous, partial, group, out, at, sum);
        add_to(previous, partial, group, out, at + seeds, sumsq);
    }
}
