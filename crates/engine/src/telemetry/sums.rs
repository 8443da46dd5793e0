//! The tensor path of a telemetry pass: the host output's per-feature and per-seed sums,
//! stacked so a pass costs two reductions (the `kernel` module does it in one pass).

use crate::chunks::ChunkMap;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Sums a per-feature quantity `[a, features, p]` to per-seed chunk totals `[a, seeds, p]`
/// with one reshape and reduction per uniform group.
pub(crate) fn chunk_totals<B: Backend>(x: Tensor<B, 3>, chunks: &ChunkMap) -> Tensor<B, 3> {
    let [a, _, p] = x.dims();
    let parts = chunks
        .groups()
        .into_iter()
        .map(|g| {
            let part = narrow_for_reshape(x.clone(), 1, g.first_feature, g.seeds * g.chunk);
            // Linear outputs (p = 1) avoid a trailing unit dim: Burn 0.21's CUDA backend reshapes
            // a matmul output into [a, seeds, chunk, 1] wrongly (the CUDA kernel tests caught it).
            if p == 1 {
                part.reshape([a, g.seeds, g.chunk]).sum_dim(2)
            } else {
                part.reshape([a, g.seeds, g.chunk, p]).sum_dim(2).reshape([a, g.seeds, p])
            }
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// `x.narrow(dim, start, len)`, copied when it is a strict part of `x` so it can be reshaped:
/// Burn 0.21's CubeCL backends can reshape such a view into the wrong elements (seen on wgpu
/// with `[8, 40 of 48, 1] -> [8, 8, 5, 1]`; the kernel tests caught it).
pub(crate) fn narrow_for_reshape<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dim: usize,
    start: usize,
    len: usize,
) -> Tensor<B, D> {
    let whole = x.dims()[dim] == len;
    let part = x.narrow(dim, start, len);
    if whole {
        part
    } else {
        part.mul_scalar(1.0)
    }
}

/// Sums `[k, a, n, p]` over its samples (`a` and `p`) to `[k, n]`, skipping the reduction of a
/// unit `p`.
fn sum_samples<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [k, _, n, p] = x.dims();
    let x = x.sum_dim(1);
    let x = if p == 1 { x } else { x.sum_dim(3) };
    x.reshape([k, n])
}

/// The host-output sums of a telemetry window.
#[derive(Clone, Debug)]
pub(crate) struct Sums<B: Backend> {
    /// `[3, features]`: sum, sum of squares, count of positive values.
    pub features: Tensor<B, 2>,
    /// `[2, seeds]`: sum and sum of squares of the chunk totals.
    pub totals: Tensor<B, 2>,
    /// The kernel's passes not yet added to `features` and `totals`: f32 sums per row group of
    /// the kernel's grid, `[groups, 3 * features + 2 * seeds]`, each row laid out as `features`
    /// then `totals`, flattened. Summed over the groups only when read ([`Sums::settled`]).
    pub partial: Option<Tensor<B, 2>>,
}

impl<B: Backend> Sums<B> {
    /// Empty sums for a layer of `features` and `seeds` on `device`.
    pub fn zeros(features: usize, seeds: usize, device: &B::Device) -> Self {
        Self {
            features: Tensor::zeros([3, features], device),
            totals: Tensor::zeros([2, seeds], device),
            partial: None,
        }
    }

    /// These sums with the partial sums added in (one reduction over the groups and two
    /// additions; free when there are none).
    pub fn settled(&self) -> Self {
        let Some(partial) = &self.partial else {
            return self.clone();
        };
        let ([_, features], [_, seeds]) = (self.features.dims(), self.totals.dims());
        let columns = partial.clone().sum_dim(0).reshape([-1]).cast(self.features.dtype());
        let part = |start, rows, len| narrow_for_reshape(columns.clone(), 0, start, rows * len).reshape([rows, len]);
        Self {
            features: self.features.clone() + part(0, 3, features),
            totals: self.totals.clone() + part(3 * features, 2, seeds),
            partial: None,
        }
    }
}

/// Adds the host output `h` (`[a, features, p]`, every `(a, p)` one sample, detached) to `sums`.
/// Quantities are stacked so a pass costs two reductions, not one per statistic: on a GPU the
/// dormant path's cost is launches, not bytes. The `kernel` module does it in one pass.
pub(crate) fn accumulate<B: Backend>(sums: &Sums<B>, h: &Tensor<B, 3>, chunks: &ChunkMap) -> Sums<B> {
    let sums = sums.settled();
    let positive = h.clone().greater_elem(0.0).float();
    let per_feature = Tensor::stack(vec![h.clone(), h.clone().square(), positive], 0);
    let totals = chunk_totals(h.clone(), chunks);
    let per_seed = Tensor::stack(vec![totals.clone(), totals.square()], 0);
    Sums {
        features: sums.features + sum_samples(per_feature),
        totals: sums.totals + sum_samples(per_seed),
        partial: None,
    }
}
