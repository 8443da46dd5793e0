//! What the CubeCL kernels share: dispatch to whichever CubeCL runtime the backend is
//! ([`with_cube`], [`with_cube_differentiable`]), the chunk layout as device code, and the
//! device's size. Each kernel sits beside the tensor op it accelerates (`telemetry::kernel`,
//! `blend::kernel`); this module holds only what both need.

mod dispatch;

pub(crate) use dispatch::{
    max_bindings, with_cube, with_cube_differentiable, Constant, CubeDifferentiable, CubePrimitive,
};

use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

/// SMs assumed where the runtime gives no count (an H100/H200's; wgpu gives none).
const DEFAULT_SMS: usize = 132;

/// The device's streaming multiprocessors (compute units), which launches size their grids by.
pub(crate) fn streaming_multiprocessors<R: CubeRuntime>(client: &ComputeClient<R>) -> usize {
    client.properties().hardware.num_streaming_multiprocessors.map_or(DEFAULT_SMS, |n| n as usize)
}

/// The first feature of `seed`'s chunk: the first `big` chunks hold `base + 1` features, the rest
/// `base` (`features = seeds * base + big`). Device form of [`ChunkMap::range`](crate::ChunkMap::range).
#[cube]
pub(crate) fn chunk_start(seed: usize, base: usize, big: usize) -> usize {
    seed * base + min(seed, big)
}
