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

use crate::chunks::ChunkMap;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use morphogen_contracts::{LayerHealthReport, SeedHealth};

/// Sums a per-feature quantity `[a, features, p]` to per-seed chunk totals `[a, seeds, p]`
/// with one reshape and reduction per uniform group.
pub(crate) fn chunk_totals<B: Backend>(x: Tensor<B, 3>, chunks: &ChunkMap) -> Tensor<B, 3> {
    let [a, _, p] = x.dims();
    let parts = chunks
        .groups()
        .into_iter()
        .map(|g| {
            x.clone()
                .narrow(1, g.first_feature, g.seeds * g.chunk)
                .reshape([a, g.seeds, g.chunk, p])
                .sum_dim(2)
                .reshape([a, g.seeds, p])
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// Sums `[a, n, p]` over its samples (`a` and `p`), skipping the reduction of a unit `p`.
fn sum_samples<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    match x.dims()[2] {
        1 => x.sum_dim(0),
        _ => x.sum_dim(0).sum_dim(2),
    }
}

/// The running sums of one telemetry window.
#[derive(Clone, Debug)]
pub(crate) struct TelemetryWindow<B: Backend> {
    feature_sum: Tensor<B, 1>,
    feature_sumsq: Tensor<B, 1>,
    feature_active: Tensor<B, 1>,
    total_sum: Tensor<B, 1>,
    total_sumsq: Tensor<B, 1>,
    blueprint_sumsq: Tensor<B, 1>,
    samples: u64,
}

impl<B: Backend> TelemetryWindow<B> {
    pub fn new(chunks: &ChunkMap, device: &B::Device) -> Self {
        let (f, s) = (chunks.features(), chunks.seeds());
        Self {
            feature_sum: Tensor::zeros([f], device),
            feature_sumsq: Tensor::zeros([f], device),
            feature_active: Tensor::zeros([f], device),
            total_sum: Tensor::zeros([s], device),
            total_sumsq: Tensor::zeros([s], device),
            blueprint_sumsq: Tensor::zeros([s], device),
            samples: 0,
        }
    }

    pub fn moved_to(self, device: &B::Device) -> Self {
        Self {
            feature_sum: self.feature_sum.to_device(device),
            feature_sumsq: self.feature_sumsq.to_device(device),
            feature_active: self.feature_active.to_device(device),
            total_sum: self.total_sum.to_device(device),
            total_sumsq: self.total_sumsq.to_device(device),
            blueprint_sumsq: self.blueprint_sumsq.to_device(device),
            samples: self.samples,
        }
    }

    /// Adds the host output `h`: `[a, features, p]`, every `(a, p)` one sample.
    pub fn observe(&mut self, h: Tensor<B, 3>, chunks: &ChunkMap) {
        let [a, f, p] = h.dims();
        let h = h.detach();
        let per_feature = |x: Tensor<B, 3>| sum_samples(x).reshape([f]);
        self.feature_sum = self.feature_sum.clone() + per_feature(h.clone());
        self.feature_sumsq = self.feature_sumsq.clone() + per_feature(h.clone().square());
        self.feature_active = self.feature_active.clone() + per_feature(h.clone().greater_elem(0.0).float());
        let totals = chunk_totals(h, chunks);
        let s = chunks.seeds();
        let per_seed = |x: Tensor<B, 3>| sum_samples(x).reshape([s]);
        self.total_sum = self.total_sum.clone() + per_seed(totals.clone());
        self.total_sumsq = self.total_sumsq.clone() + per_seed(totals.square());
        self.samples += (a * p) as u64;
    }

    /// Adds each seed's sum of squared blueprint contributions, `[num_seeds]`.
    pub fn observe_blueprints(&mut self, sumsq_per_seed: Tensor<B, 1>) {
        self.blueprint_sumsq = self.blueprint_sumsq.clone() + sumsq_per_seed.detach();
    }

    /// Bytes of device memory the window holds.
    pub fn bytes(&self) -> usize {
        let elems = 3 * self.feature_sum.dims()[0] + 3 * self.total_sum.dims()[0];
        elems * self.feature_sum.dtype().size()
    }

    /// Reads the window (with `alpha`, `[num_seeds]`) in one transfer.
    pub fn read(&self, alpha: Tensor<B, 1>) -> WindowSums {
        let data = Tensor::cat(
            vec![
                self.feature_sum.clone(),
                self.feature_sumsq.clone(),
                self.feature_active.clone(),
                self.total_sum.clone(),
                self.total_sumsq.clone(),
                self.blueprint_sumsq.clone(),
                alpha,
            ],
            0,
        )
        .into_data();
        WindowSums::split(data, self.feature_sum.dims()[0], self.samples)
    }
}

/// A telemetry window read back to the host.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSums {
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
                let feature_vars: f64 = range
                    .clone()
                    .map(|i| (self.feature_sumsq[i] / n - (self.feature_sum[i] / n).powi(2)).max(0.0))
                    .sum();
                let total_var = self.total_sumsq[s] / n - (self.total_sum[s] / n).powi(2);
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
