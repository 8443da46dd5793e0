//! The dormant-telemetry kernel: [`accumulate`](super::accumulate) in one pass over the host
//! output, for CubeCL backends.
//!
//! Launch 1 (`partial_sums`): the grid is row groups x *spans*, a span being whole seeds whose
//! features fit a shared-memory tile, so a seed's chunk totals never straddle two cubes. Each
//! cube streams its rows through the tile (coalesced loads, f32 accumulation whatever the
//! input's float type), sums per feature (sum, sum of squares, positive count) and per seed (sum
//! and sum of squares of the chunk total), and writes one row of partial sums.
//! Launch 2 (`finish`): adds the row groups' partial sums to the window, writing the new window.
//! Outputs are allocated contiguous (Burn's default allocation may pitch rows on CUDA, which
//! flat indexing would misread: the CUDA tests caught exactly that); inputs are read through
//! their strides.
//! Two launches per sampled forward, whatever the number of seeds.

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

/// Threads per cube of the partial-sums launch.
const THREADS: u32 = 256;
/// Cubes worth filling the GPU with: four per SM of an H100/H200 (132 SMs).
const TARGET_CUBES: usize = 4 * 132;

/// The tile a cube stages in shared memory: `rows` x `span_max` features.
#[derive(Clone, Copy, Debug)]
struct Tile {
    rows: u32,
    span_max: u32,
}

impl Tile {
    /// The largest tile this device's shared memory holds (H100: 8 x 512, 43 KB; WebGPU-class
    /// devices, 16 KB: 4 x 256).
    fn for_device(max_shared_bytes: usize) -> Self {
        let fits = |t: Tile| (2 * t.rows as usize + 5) * t.span_max as usize * 4 <= max_shared_bytes;
        [Tile { rows: 8, span_max: 512 }, Tile { rows: 4, span_max: 256 }, Tile { rows: 2, span_max: 128 }]
            .into_iter()
            .find(|t| fits(*t))
            .unwrap_or(Tile { rows: 1, span_max: 64 })
    }
}

/// The first feature of `seed`: the first `big` chunks hold `base + 1` features.
#[cube]
fn seed_start(seed: usize, base: usize, big: usize) -> usize {
    let mut extra = seed;
    if big < seed {
        extra = big;
    }
    seed * base + extra
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
    seeds_per_span: usize,
    rows_per_group: usize,
    #[comptime] tile_rows: u32,
    #[comptime] span_max: u32,
    #[define(F)] _dtype: StorageType,
) {
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let tile_cap = tile_rows as usize;
    let acc_stride = span_max as usize;
    let mut tile = SharedMemory::<f32>::new(tile_rows as usize * span_max as usize);
    let mut row_totals = SharedMemory::<f32>::new(tile_rows as usize * span_max as usize);
    let mut feature_acc = SharedMemory::<f32>::new(3 * span_max as usize);
    let mut seed_acc = SharedMemory::<f32>::new(2 * span_max as usize);

    let seed_lo = CUBE_POS_Y as usize * seeds_per_span;
    let mut seed_hi = seed_lo + seeds_per_span;
    if seed_hi > seeds {
        seed_hi = seeds;
    }
    let ns = seed_hi - seed_lo;
    let f_lo = seed_start(seed_lo, base, big);
    let span = seed_start(seed_hi, base, big) - f_lo;

    // Each thread owns the accumulators it initialises, updates and writes: no sync needed.
    // (Names are never reused: every loop variable is distinct.)
    let mut init_col = t;
    while init_col < span {
        feature_acc[init_col] = f32::new(0.0);
        feature_acc[acc_stride + init_col] = f32::new(0.0);
        feature_acc[2 * acc_stride + init_col] = f32::new(0.0);
        init_col += threads;
    }
    let mut init_seed = t;
    while init_seed < ns {
        seed_acc[init_seed] = f32::new(0.0);
        seed_acc[acc_stride + init_seed] = f32::new(0.0);
        init_seed += threads;
    }

    let r_begin = CUBE_POS_X as usize * rows_per_group;
    let mut r_end = r_begin + rows_per_group;
    if r_end > rows {
        r_end = rows;
    }
    let mut r0 = r_begin;
    while r0 < r_end {
        let mut nr = r_end - r0;
        if nr > tile_cap {
            nr = tile_cap;
        }
        // Load in memory order: along features for [rows, features] outputs, along the
        // spatial positions for [batch, channels, positions] ones. Addresses use `h`'s strides:
        // Burn's CUDA matmul may hand back a strided output that still counts as contiguous.
        let mut load = t;
        while load < nr * span {
            let mut load_row = load / span;
            let mut load_col = load % span;
            if spatial > 1 {
                load_col = load / nr;
                load_row = load % nr;
            }
            let r = r0 + load_row;
            let at = (r / spatial) * h.stride(0) + (f_lo + load_col) * h.stride(1) + (r % spatial) * h.stride(2);
            tile[load_row * span + load_col] = f32::cast_from(h[at]);
            load += threads;
        }
        sync_cube();

        let mut col = t;
        while col < span {
            let mut sum = f32::new(0.0);
            let mut sumsq = f32::new(0.0);
            let mut positive = f32::new(0.0);
            for row in 0..nr {
                let v = tile[row * span + col];
                sum += v;
                sumsq += v * v;
                positive += select(v > f32::new(0.0), f32::new(1.0), f32::new(0.0));
            }
            feature_acc[col] += sum;
            feature_acc[acc_stride + col] += sumsq;
            feature_acc[2 * acc_stride + col] += positive;
            col += threads;
        }

        let mut pair = t;
        while pair < nr * ns {
            let pair_row = pair / ns;
            let pair_seed = pair % ns;
            let first = seed_start(seed_lo + pair_seed, base, big) - f_lo;
            let end = seed_start(seed_lo + pair_seed + 1, base, big) - f_lo;
            let mut total = f32::new(0.0);
            for feature in first..end {
                total += tile[pair_row * span + feature];
            }
            row_totals[pair_row * ns + pair_seed] = total;
            pair += threads;
        }
        sync_cube();

        let mut own_seed = t;
        while own_seed < ns {
            let mut seed_sum = f32::new(0.0);
            let mut seed_sumsq = f32::new(0.0);
            for total_row in 0..nr {
                let total = row_totals[total_row * ns + own_seed];
                seed_sum += total;
                seed_sumsq += total * total;
            }
            seed_acc[own_seed] += seed_sum;
            seed_acc[acc_stride + own_seed] += seed_sumsq;
            own_seed += threads;
        }
        sync_cube();
        r0 += tile_cap;
    }

    let out = CUBE_POS_X as usize * (3 * features + 2 * seeds);
    let mut out_col = t;
    while out_col < span {
        partial[out + f_lo + out_col] = feature_acc[out_col];
        partial[out + features + f_lo + out_col] = feature_acc[acc_stride + out_col];
        partial[out + 2 * features + f_lo + out_col] = feature_acc[2 * acc_stride + out_col];
        out_col += threads;
    }
    let stats = out + 3 * features;
    let mut out_seed = t;
    while out_seed < ns {
        partial[stats + seed_lo + out_seed] = seed_acc[out_seed];
        partial[stats + seeds + seed_lo + out_seed] = seed_acc[acc_stride + out_seed];
        out_seed += threads;
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
    let j = ABSOLUTE_POS;
    if j >= width {
        terminate!();
    }
    let mut sum = f32::new(0.0);
    for g in 0..groups {
        sum += partial[g * width + j];
    }
    // The old window is read through its strides (Burn may pitch a tensor's rows); the new one
    // was allocated contiguous.
    if j < feature_len {
        let features = feature_len / 3;
        let old = old_features[(j / features) * old_features.stride(0) + (j % features) * old_features.stride(1)];
        new_features[j] = F::cast_from(f32::cast_from(old) + sum);
    } else {
        let i = j - feature_len;
        let seeds = (width - feature_len) / 2;
        let old = old_totals[(i / seeds) * old_totals.stride(0) + (i % seeds) * old_totals.stride(1)];
        new_totals[i] = F::cast_from(f32::cast_from(old) + sum);
    }
}

/// The kernel form of [`accumulate`](super::accumulate): `None` when `B` is not a CubeCL backend
/// this build knows, or a chunk is wider than the device's tile (the caller then takes the
/// tensor path).
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
        let tile = Tile::for_device(h.client.properties().hardware.max_shared_memory_size);
        let widest = chunks.width();
        if widest > tile.span_max as usize {
            return None;
        }
        let [a, f, p] = h.meta.shape().dims::<3>();
        let (rows, seeds) = (a * p, chunks.seeds());
        let seeds_per_span = tile.span_max as usize / widest;
        let spans = seeds.div_ceil(seeds_per_span);
        let wanted_groups = TARGET_CUBES.div_ceil(spans).clamp(1, rows.div_ceil(tile.rows as usize).max(1));
        let rows_per_group = rows.div_ceil(wanted_groups).next_multiple_of(tile.rows as usize).max(1);
        let groups = rows.div_ceil(rows_per_group).max(1);
        let width = 3 * f + 2 * seeds;
        let (client, device, dtype) = (h.client.clone(), h.device.clone(), h.dtype);
        let partial =
            empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), Shape::new([groups, width]), DType::F32);
        partial_sums::launch::<R>(
            &client,
            CubeCount::Static(groups as u32, spans as u32, 1),
            CubeDim::new_1d(THREADS),
            h.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            rows,
            f,
            p,
            seeds,
            f / seeds,
            f % seeds,
            seeds_per_span,
            rows_per_group,
            tile.rows,
            tile.span_max,
            dtype.into(),
        );
        let new_features =
            empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), Shape::new([3, f]), dtype);
        let new_totals = empty_device_contiguous_dtype::<R>(client.clone(), device, Shape::new([2, seeds]), dtype);
        let cube_dim = CubeDim::new_1d(THREADS);
        finish::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, width, cube_dim),
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
