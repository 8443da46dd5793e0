//! The dormant-telemetry kernel: [`accumulate`](super::accumulate) in one pass over the host
//! output, for CubeCL backends. Two launches per sampled forward, whatever the number of seeds.
//!
//! Launch 1 (`partial_sums`): the grid is row groups x *spans*, a span being whole seeds that fill
//! one cube's threads (256 features; 512 when a chunk is wider), so a seed's chunk totals never
//! straddle two cubes. Each thread owns one feature and keeps its sum, sum of squares and
//! positive count in registers over all its group's rows (f32 whatever the input's float type).
//! Rows pass through a shared tile, 32 at a time (15 on 16 KB devices; 17 and 7 for 512-feature
//! spans): each thread loads its feature's rows (independent loads, coalesced along features),
//! storing them in the tile; after a barrier, each thread sums one seed's chunk in some of the
//! tile's rows, keeping that seed's sum and sum of squares of chunk totals in registers; a second
//! barrier frees the tile. At the end each cube combines its seed sums once and writes one row of
//! partial sums.
//! Launch 2 (`finish`): adds the row groups' partial sums to the window (32 columns a cube, the
//! groups split over 8 thread rows), writing the new window.
//! Outputs are allocated contiguous (Burn's default allocation may pitch rows on CUDA, which
//! flat indexing would misread: the CUDA tests caught exactly that); inputs are read through
//! their strides.

use super::Sums;
use crate::chunks::ChunkMap;
use crate::cube::{with_cube, CubePrimitive};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Shape, Tensor as BurnTensor, TensorPrimitive};
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

/// Span widths, i.e. threads per cube (one per feature): the first that takes the widest chunk.
const SPANS: [usize; 2] = [256, 512];
/// The most rows a tile stages between barriers.
const MAX_TILE_ROWS: usize = 32;
/// The most shared memory a tile takes: 32 x 256 features is 34 KB, so six cubes fit an H100 SM.
const TILE_BYTES: usize = 36 * 1024;
/// Cubes per SM worth launching (six fit, by shared memory).
const CUBES_PER_SM: usize = 4;
/// SMs assumed where the runtime gives no count (an H100/H200's).
const DEFAULT_SMS: usize = 132;
/// The finishing launch's cube: this many columns of partial sums ...
const FINISH_COLUMNS: usize = 32;
/// ... by this many slices of the row groups.
const FINISH_SLICES: usize = 8;

/// Floats per tile row for `span` features: one pad word every 32 (see `padded`).
const fn tile_stride(span: usize) -> usize {
    span + span / 32
}

/// The tile a cube stages in shared memory: `rows` x `span` features, one thread per feature.
#[derive(Clone, Copy, Debug)]
struct Tile {
    rows: usize,
    span: usize,
}

impl Tile {
    /// The tile for chunks up to `widest` features on this device; `None` when none fits (at
    /// least two rows, so the tile also holds each thread's two seed sums when they combine).
    fn for_device(widest: usize, max_units_per_cube: usize, max_shared_bytes: usize) -> Option<Self> {
        let span = SPANS.into_iter().find(|&s| widest <= s && s <= max_units_per_cube)?;
        let rows = (max_shared_bytes.min(TILE_BYTES) / (tile_stride(span) * 4)).min(MAX_TILE_ROWS);
        (rows >= 2).then_some(Tile { rows, span })
    }
}

/// The first feature of `seed`: the first `big` chunks hold `base + 1` features.
#[cube]
fn seed_start(seed: usize, base: usize, big: usize) -> usize {
    seed * base + min(seed, big)
}

/// The first seed of span `y` (`seeds` for the last span's end): spans of `per_wide` seeds
/// through the `big` wider chunks, then of `per_narrow`, so narrow spans fill the cube too.
#[cube]
fn span_start(y: usize, seeds: usize, big: usize, wide_spans: usize, per_wide: usize, per_narrow: usize) -> usize {
    let narrow = max(y, wide_spans) - wide_spans;
    select(y <= wide_spans, min(y * per_wide, big), min(big + narrow * per_narrow, seeds))
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

/// Loads rows `r0..r0 + nr` of the feature whose column offset in `h` is `column` into tile
/// column `col`, adding them to `acc`. Branch-free, so the loads can all be in flight at once:
/// rows past `nr` re-read the last one and count as zeros (the tile's rows past `nr` are never
/// read).
#[cube]
#[allow(clippy::too_many_arguments)]
fn load_tile<F: Float>(
    h: &Tensor<F>,
    tile: &mut SharedMemory<f32>,
    acc: &mut FeatureSums,
    r0: usize,
    nr: usize,
    column: usize,
    col: usize,
    spatial: usize,
    #[comptime] tile_rows: usize,
    #[comptime] stride: usize,
) {
    // Row r is sample (r / spatial, r % spatial): stepped along, one division per tile.
    let mut sample = r0 / spatial;
    let mut position = r0 % spatial;
    let (sample_stride, position_stride) = (h.stride(0), h.stride(2));
    #[unroll]
    for row in 0..tile_rows {
        let v = f32::cast_from(h[sample * sample_stride + position * position_stride + column]);
        let v = select(row < nr, v, f32::new(0.0));
        acc.add(v);
        tile[row * stride + col] = v;
        position += select(row + 1 < nr, 1, 0);
        let wrap = position == spatial;
        position = select(wrap, 0, position);
        sample += select(wrap, 1, 0);
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

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn partial_sums<F: Float>(
    h: &Tensor<F>,
    partial: &mut Tensor<f32>,
    rows: usize,
    features: usize,
    spatial: usize,
    seeds: usize,
    base: usize,
    big: usize,
    wide_spans: usize,
    per_wide: usize,
    per_narrow: usize,
    rows_per_group: usize,
    #[comptime] tile_rows: usize,
    #[comptime] span_max: usize,
    #[define(F)] _dtype: StorageType,
) {
    let stride = comptime!(tile_stride(span_max));
    let mut tile = SharedMemory::<f32>::new(tile_rows * stride);
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;

    // The span: seeds `seed_lo..seed_lo + ns`, features `f_lo..f_lo + span`.
    let y = CUBE_POS_Y as usize;
    let seed_lo = span_start(y, seeds, big, wide_spans, per_wide, per_narrow);
    let ns = span_start(y + 1, seeds, big, wide_spans, per_wide, per_narrow) - seed_lo;
    let f_lo = seed_start(seed_lo, base, big);
    let span = seed_start(seed_lo + ns, base, big) - f_lo;
    // Thread t owns feature t (threads past the span repeat the last one, never written out) and
    // sums the chunk of seed `t % ns` in tile rows `t / ns`, `+ lanes`, ...
    let feature = f_lo + min(t, span - 1);
    let lanes = threads / ns;
    let lane = t / ns;
    let own = seed_lo + t % ns;
    let first = seed_start(own, base, big) - f_lo;
    let end = seed_start(own + 1, base, big) - f_lo;

    let mut feature_acc = FeatureSums::new();
    let mut seed_acc = SeedSums::new();
    let r_begin = CUBE_POS_X as usize * rows_per_group;
    let r_end = min(r_begin + rows_per_group, rows);
    let mut r0 = r_begin;
    while r0 < r_end {
        let nr = min(r_end - r0, tile_rows);
        load_tile::<F>(
            h,
            &mut tile,
            &mut feature_acc,
            r0,
            nr,
            feature * h.stride(1),
            padded(t),
            spatial,
            tile_rows,
            stride,
        );
        sync_cube();
        if lane < lanes {
            sum_chunks(&tile, &mut seed_acc, lane, lanes, nr, first, end, stride);
        }
        sync_cube();
        r0 += tile_rows;
    }

    let out = CUBE_POS_X as usize * (3 * features + 2 * seeds);
    if t < span {
        partial[out + feature] = feature_acc.sum;
        partial[out + features + feature] = feature_acc.sumsq;
        partial[out + 2 * features + feature] = feature_acc.positive;
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
        let at = out + 3 * features + seed_lo + t;
        partial[at] = sum;
        partial[at + seeds] = sumsq;
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn finish<F: Float>(
    partial: &Tensor<f32>,
    old_features: &Tensor<F>,
    old_totals: &Tensor<F>,
    new_features: &mut Tensor<F>,
    new_totals: &mut Tensor<F>,
    groups: usize,
    width: usize,
    feature_len: usize,
    #[define(F)] _dtype: StorageType,
) {
    // A cube sums `FINISH_COLUMNS` columns, each thread row taking every `FINISH_SLICES`-th group,
    // so no thread waits on more than a few loads.
    let (x, slice) = (UNIT_POS_X as usize, UNIT_POS_Y as usize);
    let j = CUBE_POS * FINISH_COLUMNS + x;
    let mut slice_sums = SharedMemory::<f32>::new(comptime!(FINISH_COLUMNS * FINISH_SLICES));
    let mut sum = f32::new(0.0);
    if j < width {
        let mut g = slice;
        while g < groups {
            sum += partial[g * width + j];
            g += FINISH_SLICES;
        }
    }
    slice_sums[slice * FINISH_COLUMNS + x] = sum;
    sync_cube();
    if slice != 0 || j >= width {
        terminate!();
    }
    let mut total = f32::new(0.0);
    for s in 0..FINISH_SLICES {
        total += slice_sums[s * FINISH_COLUMNS + x];
    }
    // The old window is read through its strides (Burn may pitch a tensor's rows); the new one
    // was allocated contiguous.
    if j < feature_len {
        let features = feature_len / 3;
        let old = old_features[(j / features) * old_features.stride(0) + (j % features) * old_features.stride(1)];
        new_features[j] = F::cast_from(f32::cast_from(old) + total);
    } else {
        let i = j - feature_len;
        let seeds = (width - feature_len) / 2;
        let old = old_totals[(i / seeds) * old_totals.stride(0) + (i % seeds) * old_totals.stride(1)];
        new_totals[i] = F::cast_from(f32::cast_from(old) + total);
    }
}

/// The kernel form of [`accumulate`](super::accumulate): `None` when `B` is not a CubeCL backend
/// this build knows, or no tile this device holds takes the widest chunk (over 512 features, or
/// too little shared memory; the caller then takes the tensor path).
pub(crate) fn accumulate<B: Backend>(sums: &Sums<B>, h: &BurnTensor<B, 3>, chunks: &ChunkMap) -> Option<Sums<B>> {
    let float = |t: TensorPrimitive<B>| t.tensor();
    let inputs = [
        float(sums.features.clone().into_primitive()),
        float(sums.totals.clone().into_primitive()),
        float(h.clone().into_primitive()),
    ];
    let outputs = with_cube::<B, _, 3, 2>(inputs, &Launch(chunks))?;
    let [features, totals] = outputs.map(|p| BurnTensor::from_primitive(TensorPrimitive::Float(p)));
    Some(Sums { features, totals })
}

/// The two launches, for whichever CubeCL runtime `with_cube` found.
struct Launch<'a>(&'a ChunkMap);

impl CubePrimitive<3, 2> for Launch<'_> {
    fn run<R: CubeRuntime>(&self, [features, totals, h]: [CubeTensor<R>; 3]) -> Option<[CubeTensor<R>; 2]> {
        let chunks = self.0;
        let hardware = &h.client.properties().hardware;
        let widest = chunks.width();
        let tile = Tile::for_device(widest, hardware.max_units_per_cube as usize, hardware.max_shared_memory_size)?;
        let sms = hardware.num_streaming_multiprocessors.map_or(DEFAULT_SMS, |n| n as usize);
        let [a, f, p] = h.meta.shape().dims::<3>();
        let (rows, seeds) = (a * p, chunks.seeds());
        let (base, big) = (f / seeds, f % seeds);
        // Unused (no wide spans) when every chunk is `base` wide, which may fill the span.
        let per_wide = (tile.span / (base + 1)).max(1);
        let per_narrow = tile.span / base;
        let wide_spans = big.div_ceil(per_wide);
        let spans = wide_spans + (seeds - big).div_ceil(per_narrow);
        let wanted_groups = (CUBES_PER_SM * sms).div_ceil(spans).clamp(1, rows.div_ceil(tile.rows).max(1));
        let rows_per_group = rows.div_ceil(wanted_groups).next_multiple_of(tile.rows).max(1);
        let groups = rows.div_ceil(rows_per_group).max(1);
        let width = 3 * f + 2 * seeds;
        let (client, device, dtype) = (h.client.clone(), h.device.clone(), h.dtype);
        let partial =
            empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), Shape::new([groups, width]), DType::F32);
        partial_sums::launch::<R>(
            &client,
            CubeCount::Static(groups as u32, spans as u32, 1),
            CubeDim::new_1d(tile.span as u32),
            h.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            rows,
            f,
            p,
            seeds,
            base,
            big,
            wide_spans,
            per_wide,
            per_narrow,
            rows_per_group,
            tile.rows,
            tile.span,
            dtype.into(),
        );
        let new_features =
            empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), Shape::new([3, f]), dtype);
        let new_totals = empty_device_contiguous_dtype::<R>(client.clone(), device, Shape::new([2, seeds]), dtype);
        let cube_dim = CubeDim::new_2d(FINISH_COLUMNS as u32, FINISH_SLICES as u32);
        finish::launch::<R>(
            &client,
            // One cube per `FINISH_COLUMNS` columns.
            calculate_cube_count_elemwise(&client, width * FINISH_SLICES, cube_dim),
            cube_dim,
            partial.into_tensor_arg(),
            features.into_tensor_arg(),
            totals.into_tensor_arg(),
            new_features.clone().into_tensor_arg(),
            new_totals.clone().into_tensor_arg(),
            groups,
            width,
            3 * f,
            dtype.into(),
        );
        Some([new_features, new_totals])
    }
}
