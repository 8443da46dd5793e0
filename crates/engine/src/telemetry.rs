//! Seed health telemetry, accumulated on device during the forward pass.
//!
//! Each forward adds, from the detached host output, per feature: sum, sum of squares and the
//! count of positive activations; per seed: sum and sum of squares of the chunk total (the sum of
//! the chunk's features for one sample), and of the blueprint's contribution. Nothing is read
//! back until [`LayerHealthReport`] is asked for, in one transfer.
//!
//! Correlation is the *variance-weighted mean correlation* of the chunk's features:
//! `(Var(total) - sum_i Var(h_i)) / ((n - 1) * sum_i Var(h_i))`. It needs no `n x n` matrix,
//! equals the mean pairwise correlation when the features have equal variances, and otherwise
//! weights pairs by their standard deviations.

mod sums;

#[cfg(feature = "kernels")]
mod kernel;

/// Without the `kernels` feature no backend has the kernel.
#[cfg(not(feature = "kernels"))]
mod kernel {
    use super::sums::Sums;
    use crate::chunks::ChunkMap;
    use burn::tensor::backend::Backend;
    use burn::tensor::Tensor;

    /// Always `None`: the caller takes the tensor path.
    pub(crate) fn accumulate<B: Backend>(_: &Sums<B>, _: &Tensor<B, 3>, _: &ChunkMap) -> Option<Sums<B>> {
        None
    }
}

pub(crate) use sums::{chunk_totals, narrow_for_reshape};

use crate::chunks::ChunkMap;
use crate::config::LifecycleConfig;
use crate::guard::{first_difference, Kernel, KernelGuard};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use morphogen_contracts::{LayerHealthReport, SeedHealth};
use sums::{accumulate, Sums};

/// The running sums of one telemetry window.
#[derive(Clone, Debug)]
pub(crate) struct TelemetryWindow<B: Backend> {
    sums: Sums<B>,
    /// `[seeds]`: sum of squared blueprint contributions.
    blueprint: Tensor<B, 1>,
    samples: u64,
    /// Forward passes seen (observed or skipped).
    passes: u64,
    /// Observed passes whose sums the kernel computed.
    kernel_passes: u64,
}

impl<B: Backend> TelemetryWindow<B> {
    pub fn new(chunks: &ChunkMap, device: &B::Device) -> Self {
        let (f, s) = (chunks.features(), chunks.seeds());
        Self {
            sums: Sums::zeros(f, s, device),
            blueprint: Tensor::zeros([s], device),
            samples: 0,
            passes: 0,
            kernel_passes: 0,
        }
    }

    pub fn moved_to(self, device: &B::Device) -> Self {
        let sums = self.sums.settled();
        Self {
            sums: Sums {
                features: sums.features.to_device(device),
                totals: sums.totals.to_device(device),
                partial: None,
            },
            blueprint: self.blueprint.to_device(device),
            samples: self.samples,
            passes: self.passes,
            kernel_passes: self.kernel_passes,
        }
    }

    /// Counts a forward pass; true when it is one of the sampled ones (the first of every `every`).
    pub fn sample_pass(&mut self, every: usize) -> bool {
        let due = self.passes.is_multiple_of(every as u64);
        self.passes += 1;
        due
    }

    /// A fresh window on `device`.
    pub fn reset(&mut self, chunks: &ChunkMap, device: &B::Device) {
        *self = Self::new(chunks, device);
    }

    /// Adds the host output `h`: `[a, features, p]`, every `(a, p)` one sample; through the
    /// kernel when the backend has it and `guard` trusts it (checked by the guard).
    pub fn observe(
        &mut self,
        h: Tensor<B, 3>,
        chunks: &ChunkMap,
        lifecycle: &LifecycleConfig,
        guard: &mut KernelGuard,
    ) {
        let [a, _, p] = h.dims();
        let h = h.detach();
        let dtype = h.dtype();
        let fast = |h: &Tensor<B, 3>| kernel::accumulate(&self.sums, h, chunks);
        let slow = |h: Tensor<B, 3>| accumulate(&self.sums, &h, chunks);
        let (sums, kept) = guard.guarded(Kernel::Telemetry, lifecycle, h, fast, slow, disagreement, dtype);
        self.sums = sums;
        self.kernel_passes += u64::from(kept);
        self.samples += (a * p) as u64;
    }

    /// Adds each seed's sum of squared blueprint contributions, `[num_seeds]`.
    pub fn observe_blueprints(&mut self, sumsq_per_seed: Tensor<B, 1>) {
        self.blueprint = self.blueprint.clone() + sumsq_per_seed.detach();
    }

    /// Observed passes of this window whose sums the kernel computed.
    pub fn kernel_passes(&self) -> u64 {
        self.kernel_passes
    }

    /// Bytes of device memory the window holds.
    pub fn bytes(&self) -> usize {
        let elems = self.sums.features.shape().num_elements() + 3 * self.blueprint.dims()[0];
        let partial = self.sums.partial.as_ref().map_or(0, |p| p.shape().num_elements() * DType::F32.size());
        elems * self.blueprint.dtype().size() + partial
    }

    /// The window's sums as one flat tensor, every entry a sum over samples, so that windows of
    /// several data-parallel replicas add up entry by entry: per-feature sums (`3 * features`),
    /// chunk totals (`2 * seeds`), blueprint contributions (`seeds`), then the sample count in
    /// four 16-bit pieces (exact in f32 for a sum over up to 256 windows).
    pub fn flat_sums(&self) -> Tensor<B, 1> {
        let Sums { features, totals, .. } = self.sums.settled();
        let device = self.blueprint.device();
        let pieces: Vec<f32> = (0..4).map(|i| ((self.samples >> (16 * i)) & 0xffff) as f32).collect();
        let samples = Tensor::<B, 1>::from_data(TensorData::new(pieces, [4]), &device).cast(self.blueprint.dtype());
        Tensor::cat(vec![features.reshape([-1]), totals.reshape([-1]), self.blueprint.clone(), samples], 0)
    }

    /// Replaces the window's sums with `flat`, laid out as [`Self::flat_sums`] lays them out
    /// (for example their total over replicas); reads the four sample-count pieces back. Returns
    /// the length it expected when `flat` has another.
    pub fn set_flat_sums(&mut self, flat: Tensor<B, 1>, chunks: &ChunkMap) -> Result<(), usize> {
        let (f, s) = (chunks.features(), chunks.seeds());
        let expected = 3 * f + 3 * s + 4;
        if flat.dims()[0] != expected {
            return Err(expected);
        }
        let pieces = flat.clone().narrow(0, expected - 4, 4).into_data().convert::<f32>();
        let pieces = pieces.to_vec::<f32>().expect("converted to f32");
        self.samples = pieces.iter().enumerate().map(|(i, &p)| (p.round() as u64) << (16 * i)).sum();
        self.sums = Sums {
            features: flat.clone().narrow(0, 0, 3 * f).reshape([3, f]),
            totals: flat.clone().narrow(0, 3 * f, 2 * s).reshape([2, s]),
            partial: None,
        };
        self.blueprint = flat.narrow(0, 3 * f + 2 * s, s);
        Ok(())
    }

    /// Reads the window (with `alpha`, `[num_seeds]`) in one transfer.
    pub fn read(&self, alpha: Tensor<B, 1>) -> WindowSums {
        let Sums { features: f, totals, .. } = &self.sums.settled();
        let features = f.dims()[1];
        let data =
            Tensor::cat(vec![f.clone().reshape([-1]), totals.clone().reshape([-1]), self.blueprint.clone(), alpha], 0)
                .into_data();
        WindowSums::split(data, features, self.samples)
    }
}

/// Where the kernel's sums and the tensor path's differ by more than `tolerance` (see
/// [`first_difference`]), as a message; `None` when they agree.
fn disagreement<B: Backend>(kernel: &Sums<B>, tensor: &Sums<B>, tolerance: f32) -> Option<String> {
    let flat = |s: &Sums<B>| {
        let s = s.settled();
        Tensor::cat(vec![s.features.reshape([-1]), s.totals.reshape([-1])], 0)
    };
    first_difference(flat(kernel), flat(tensor), tolerance).map(|d| format!("sum {d}"))
}

/// The variance from a sum and a sum of squares over `n` samples; zero when it is within f32
/// rounding of the mean square (a constant signal), so rounding noise never reads as structure.
fn variance(sum: f64, sumsq: f64, n: f64) -> f64 {
    let mean_square = sumsq / n;
    let var = mean_square - (sum / n).powi(2);
    if var <= 1e-5 * mean_square {
        0.0
    } else {
        var
    }
}

/// A telemetry window read back to the host.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WindowSums {
    /// Per-feature sum.
    pub feature_sum: Vec<f64>,
    /// Per-feature sum of squares.
    pub feature_sumsq: Vec<f64>,
    /// Per-feature count of positive values.
    pub feature_active: Vec<f64>,
    /// Per-seed sum of chunk totals.
    pub total_sum: Vec<f64>,
    /// Per-seed sum of squared chunk totals.
    pub total_sumsq: Vec<f64>,
    /// Per-seed sum of squared blueprint contributions.
    pub blueprint_sumsq: Vec<f64>,
    /// Per-seed alpha.
    pub alpha: Vec<f32>,
    /// Samples seen.
    pub samples: u64,
}

impl WindowSums {
    fn split(data: TensorData, features: usize, samples: u64) -> Self {
        let v: Vec<f32> = data.convert::<f32>().to_vec().expect("f32 telemetry");
        let seeds = (v.len() - 3 * features) / 4;
        let mut at = 0;
        let mut take = |n: usize| {
            let part: Vec<f64> = v[at..at + n].iter().map(|&x| x as f64).collect();
            at += n;
            part
        };
        let (feature_sum, feature_sumsq, feature_active) = (take(features), take(features), take(features));
        let (total_sum, total_sumsq, blueprint_sumsq) = (take(seeds), take(seeds), take(seeds));
        let alpha = take(seeds).into_iter().map(|a| a as f32).collect();
        Self { feature_sum, feature_sumsq, feature_active, total_sum, total_sumsq, blueprint_sumsq, alpha, samples }
    }

    /// Turns the sums into per-seed statistics (stages supplied by the caller).
    pub fn report(
        &self,
        layer: &str,
        chunks: &ChunkMap,
        stage: impl Fn(usize) -> morphogen_contracts::Stage,
    ) -> LayerHealthReport {
        let n = self.samples.max(1) as f64;
        let seeds = (0..chunks.seeds())
            .map(|s| {
                let range = chunks.range(s);
                let c = range.len() as f64;
                let sum: f64 = self.feature_sum[range.clone()].iter().sum();
                let sumsq: f64 = self.feature_sumsq[range.clone()].iter().sum();
                let mean = sum / (n * c);
                let feature_vars: f64 =
                    range.clone().map(|i| variance(self.feature_sum[i], self.feature_sumsq[i], n)).sum();
                let total_var = variance(self.total_sum[s], self.total_sumsq[s], n);
                let correlation = if range.len() > 1 && feature_vars > 1e-12 {
                    ((total_var - feature_vars) / ((c - 1.0) * feature_vars)).clamp(-1.0, 1.0)
                } else {
                    0.0
                };
                let dead = range.clone().filter(|&i| self.feature_active[i] == 0.0).count() as f64;
                SeedHealth {
                    seed: s,
                    stage: stage(s),
                    alpha: self.alpha[s],
                    mean: mean as f32,
                    variance: (sumsq / (n * c) - mean * mean).max(0.0) as f32,
                    dead_ratio: (dead / c) as f32,
                    correlation: correlation as f32,
                    blueprint_rms: (self.blueprint_sumsq[s] / (n * c)).sqrt() as f32,
                }
            })
            .collect();
        LayerHealthReport { layer: layer.to_string(), samples: self.samples, seeds }
    }
}
