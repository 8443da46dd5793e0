//! The dormant-telemetry kernel: [`accumulate`](super::sums::accumulate) in one pass over the host
//! output, for CubeCL backends. One launch per sampled forward, whatever the number of seeds.
//!
//! Two forms. A Linear's output whose chunks are at most eight features wide (1,000 seeds on 4,096
//! features, say) takes the *narrow* kernel (`narrow`): a thread a seed, its chunk summed in
//! registers. Every other output takes the *tiled* kernel (`device`), described here.
//!
//! The grid is row groups x *spans*, a span being whole seeds that fill one cube's threads (256
//! features; 512 when a chunk is wider), so a seed's chunk totals never straddle two cubes. Each
//! thread owns one feature and keeps its sum, sum of squares and positive count in registers over
//! all its group's rows (f32 whatever the input's float type). Rows come 16 at a time (fewer on
//! devices with little shared memory): each thread loads its feature's rows into registers
//! (independent loads, coalesced along features, all in flight together), then stores them in a
//! shared tile; after a barrier the next tile's loads are issued and, while they are in flight,
//! each thread sums one seed's chunk in some of the tile's rows, keeping that seed's sum and sum
//! of squares of chunk totals in registers; a second barrier frees the tile. At the end each cube
//! combines its seed sums once and adds them to its row of the window's *partial sums*.
//!
//! The partial sums (`[groups, 3 * features + 2 * seeds]`, f32, see [`Sums::partial`]) stay
//! per row group across passes: the groups are summed only when the window is read or checked
//! ([`Sums::settled`]), so a pass is one launch, with no second launch to add the groups and no
//! new window tensors. The first pass of a window fixes the number of groups: about one wave of
//! resident cubes (fewer for a batch with fewer rows), as the loads in flight, not the number of
//! cubes, keep the memory busy. Each pass reads the previous partial sums through their strides
//! and writes new ones, allocated contiguous (Burn's default allocation may pitch rows on CUDA,
//! which flat indexing would misread: the CUDA tests caught exactly that).

mod device;
mod narrow;

use super::sums::Sums;
use crate::chunks::ChunkMap;
use crate::cube::{streaming_multiprocessors, with_cube, CubePrimitive};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Shape, Tensor as BurnTensor, TensorPrimitive};
use burn_cubecl::ops::numeric::{empty_device_contiguous_dtype, zeros_client};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::CubeDim;
use device::{partial_sums, tile_stride, GridLaunch};
use narrow::{combine_floats, narrow_partial_sums, NarrowGridLaunch, LANES, MAX_NARROW, SEEDS_PER_CUBE};

/// Span widths, i.e. threads per cube (one per feature): the first that takes the widest chunk.
const SPANS: [usize; 2] = [256, 512];
/// The most rows a tile stages between barriers (each thread keeps as many loads in flight).
const MAX_TILE_ROWS: usize = 16;
/// The most shared memory a tile takes: 16 x 256 features is 17 KB.
const TILE_BYTES: usize = 18 * 1024;
/// Cubes per SM the grid holds at most: fewer than an H100/H200 SM keeps resident (five, by
/// registers: 256 threads of 48), so the grid is one wave with no partial second one (Nsight
/// Compute measured 1.11 waves at six, the tail costing about a third of the kernel). Four
/// cubes of 16 loads a thread in flight still keep the memory busy.
const CUBES_PER_SM: usize = 4;
/// The narrow kernel's cubes per SM: about as many as an H200 SM keeps resident (six of 256
/// threads at 40 registers), so one wave. Measured there at 1,000 seeds: 1,330 GB/s a pass
/// with two, 1,680 with four, 1,870 with six, 1,660 with eight. The partial sums grow with the
/// groups (1.4 MB at 4,096 features, 1,000 seeds, six an SM), against 67 MB read at batch 4096.
const NARROW_CUBES_PER_SM: usize = 6;

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

/// The kernel form of [`accumulate`](super::sums::accumulate): `None` when `B` is not a CubeCL backend
/// this build knows, or no tile this device holds takes the widest chunk (over 512 features, or
/// too little shared memory; the caller then takes the tensor path). The result's features and
/// totals are `sums`' own; this pass is in its partial sums.
pub(crate) fn accumulate<B: Backend>(sums: &Sums<B>, h: &BurnTensor<B, 3>, chunks: &ChunkMap) -> Option<Sums<B>> {
    let float = |t: TensorPrimitive<B>| t.tensor();
    let h = float(h.clone().into_primitive());
    let op = Launch(chunks);
    let [partial] = match &sums.partial {
        Some(previous) => with_cube::<B, _, 2, 1>([h, float(previous.clone().into_primitive())], &op)?,
        None => with_cube::<B, _, 1, 1>([h], &op)?,
    };
    let partial = Some(BurnTensor::from_primitive(TensorPrimitive::Float(partial)));
    Some(Sums { features: sums.features.clone(), totals: sums.totals.clone(), partial })
}

/// The launch, for whichever CubeCL runtime `with_cube` found: on the host output alone (a
/// window's first pass) or with the previous partial sums.
struct Launch<'a>(&'a ChunkMap);

impl CubePrimitive<1, 1> for Launch<'_> {
    fn run<R: CubeRuntime>(&self, [h]: [CubeTensor<R>; 1]) -> Option<[CubeTensor<R>; 1]> {
        self.launch(h, None).map(|partial| [partial])
    }
}

impl CubePrimitive<2, 1> for Launch<'_> {
    fn run<R: CubeRuntime>(&self, [h, previous]: [CubeTensor<R>; 2]) -> Option<[CubeTensor<R>; 1]> {
        self.launch(h, Some(previous)).map(|partial| [partial])
    }
}

impl Launch<'_> {
    /// The new partial sums: `previous` (zeros when `None`) plus the sums of `h`, by the narrow
    /// kernel where it applies, else the tiled one.
    fn launch<R: CubeRuntime>(&self, h: CubeTensor<R>, previous: Option<CubeTensor<R>>) -> Option<CubeTensor<R>> {
        let [a, f, p] = h.meta.shape().dims::<3>();
        let width = 3 * f + 2 * self.0.seeds();
        if a * p == 0 || previous.as_ref().is_some_and(|t| t.meta.shape().dims::<2>()[1] != width) {
            return None;
        }
        if self.narrow_fits(&h) {
            Some(self.launch_narrow(h, previous))
        } else {
            self.launch_tiled(h, previous)
        }
    }

    /// Whether the narrow kernel takes `h`: a Linear's output (one position a sample) with
    /// contiguous rows, chunks at most [`MAX_NARROW`] wide, and room to combine its lanes.
    fn narrow_fits<R: CubeRuntime>(&self, h: &CubeTensor<R>) -> bool {
        let widest = self.0.width();
        let shared = h.client.properties().hardware.max_shared_memory_size;
        h.meta.shape().dims::<3>()[2] == 1
            && h.meta.strides()[1] == 1
            && widest <= MAX_NARROW
            && combine_floats(widest) * 4 <= shared
    }

    /// The narrow kernel's pass ([`narrow_partial_sums`]).
    fn launch_narrow<R: CubeRuntime>(&self, h: CubeTensor<R>, previous: Option<CubeTensor<R>>) -> CubeTensor<R> {
        let chunks = self.0;
        let [rows, f, _] = h.meta.shape().dims::<3>();
        let seeds = chunks.seeds();
        let blocks = seeds.div_ceil(SEEDS_PER_CUBE);
        let groups = row_groups(&h, previous.as_ref(), NARROW_CUBES_PER_SM, blocks, rows.div_ceil(LANES));
        let (client, dtype) = (h.client.clone(), h.dtype);
        let (previous, partial) = partial_buffers(&h, previous, [groups, 3 * f + 2 * seeds]);
        let (base, big) = (chunks.base(), chunks.big_chunks());
        // SAFETY: every index stays in bounds by construction (see `narrow_partial_sums`: threads
        // past the last seed read its chunk, rows past the group are never read, the one extra
        // feature of a chunk is clamped to the last feature; `previous` and `partial` are
        // `[groups, width]`, the shared memory holds every lane's sums), so the launch may skip
        // CubeCL's per-access bounds checks. The guard, the parity tests and compute-sanitizer's
        // memcheck on CUDA check it.
        unsafe {
            narrow_partial_sums::launch_unchecked::<R>(
                &client,
                CubeCount::Static(groups as u32, blocks as u32, 1),
                CubeDim::new_2d(SEEDS_PER_CUBE as u32, LANES as u32),
                h.into_tensor_arg(),
                previous.into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                NarrowGridLaunch::new(rows, f, seeds, base, big, rows.div_ceil(groups)),
                base,
                big > 0,
                dtype.into(),
            );
        }
        partial
    }

    /// The tiled kernel's pass ([`partial_sums`]); `None` when no tile this device holds takes
    /// the widest chunk.
    fn launch_tiled<R: CubeRuntime>(&self, h: CubeTensor<R>, previous: Option<CubeTensor<R>>) -> Option<CubeTensor<R>> {
        let chunks = self.0;
        let hardware = &h.client.properties().hardware;
        let widest = chunks.width();
        let tile = Tile::for_device(widest, hardware.max_units_per_cube as usize, hardware.max_shared_memory_size)?;
        let [a, f, p] = h.meta.shape().dims::<3>();
        let (rows, seeds) = (a * p, chunks.seeds());
        let (base, big) = (chunks.base(), chunks.big_chunks());
        // Unused (no wide spans) when every chunk is `base` wide, which may fill the span.
        let per_wide = (tile.span / (base + 1)).max(1);
        let per_narrow = tile.span / base;
        let wide_spans = big.div_ceil(per_wide);
        let spans = wide_spans + (seeds - big).div_ceil(per_narrow);
        let groups = row_groups(&h, previous.as_ref(), CUBES_PER_SM, spans, rows.div_ceil(tile.rows));
        let rows_per_group = rows.div_ceil(groups).next_multiple_of(tile.rows);
        let (client, dtype) = (h.client.clone(), h.dtype);
        let (previous, partial) = partial_buffers(&h, previous, [groups, 3 * f + 2 * seeds]);
        // SAFETY: every index stays in bounds by construction (see `partial_sums`: threads past the
        // span and rows past the group re-read the last valid ones; the tile holds at least two
        // rows of `threads`; `previous` and `partial` are `[groups, width]`), so the launch may
        // skip CubeCL's per-access bounds checks. The guard, the parity tests and
        // compute-sanitizer's memcheck on CUDA check it.
        unsafe {
            partial_sums::launch_unchecked::<R>(
                &client,
                CubeCount::Static(groups as u32, spans as u32, 1),
                CubeDim::new_1d(tile.span as u32),
                h.into_tensor_arg(),
                previous.into_tensor_arg(),
                partial.clone().into_tensor_arg(),
                GridLaunch::new(rows, f, p, seeds, base, big, wide_spans, per_wide, per_narrow, rows_per_group),
                tile.rows,
                tile.span,
                p == 1,
                dtype.into(),
            );
        }
        Some(partial)
    }
}

/// Row groups of a pass (the grid's first axis): the previous partial sums' where a window has
/// them, else, on its first pass, enough for about `cubes_per_sm` cubes an SM over `columns`
/// cubes a group, at least one and at most `most` (groups that would get no rows).
fn row_groups<R: CubeRuntime>(
    h: &CubeTensor<R>,
    previous: Option<&CubeTensor<R>>,
    cubes_per_sm: usize,
    columns: usize,
    most: usize,
) -> usize {
    previous.map_or_else(
        || (cubes_per_sm * streaming_multiprocessors(&h.client) / columns).clamp(1, most),
        |t| t.meta.shape().dims::<2>()[0],
    )
}

/// The previous partial sums (zeros on a window's first pass) and the new ones' buffer, both
/// `shape`, f32, on `h`'s device; the new ones contiguous (see the module's note on pitch).
fn partial_buffers<R: CubeRuntime>(
    h: &CubeTensor<R>,
    previous: Option<CubeTensor<R>>,
    shape: [usize; 2],
) -> (CubeTensor<R>, CubeTensor<R>) {
    let (client, device, shape) = (h.client.clone(), h.device.clone(), Shape::new(shape));
    let previous =
        previous.unwrap_or_else(|| zeros_client::<R>(client.clone(), device.clone(), shape.clone(), DType::F32));
    let partial = empty_device_contiguous_dtype::<R>(client, device, shape, DType::F32);
    (previous, partial)
}
