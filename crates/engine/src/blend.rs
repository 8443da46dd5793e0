//! The active-seed pass of one blueprint bank: gather every row's input (its chunk of the host
//! output, or the whole host output for blueprints reading the layer), run the blueprint on all
//! rows at once, weigh each row's result by its seed's stage (and alpha
//! while GRAFTING), and add it back onto the chunk.
//!
//! Stage rules, fixed between transitions and so precomputed in [`BankIndex`]:
//! - TRAINING rows learn on a detached input and add exactly zero to the output, while their
//!   blueprint gets the gradient it would get at weight 1 (the host gets none through them);
//! - GRAFTING rows are weighed by alpha; STABILIZATION, EVALUATING (unless ablated), FINE_TUNING
//!   and FOSSILIZED rows by 1; the rest by 0;
//! - only TRAINING, GRAFTING and FINE_TUNING rows train their blueprint parameters (and
//!   FOSSILIZED rows with `LifecycleConfig::train_fossilized`).
//!
//! [`apply_bank`] is the tensor path, on any backend; `kernel::apply_bank` does the same in one
//! fused launch per bank page on CubeCL backends.

use crate::bank::BlueprintBank;
use crate::blueprint::{BlueprintInput, BlueprintSpec};
use crate::chunks::ChunkMap;
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

#[cfg(feature = "kernels")]
pub(crate) mod kernel;

/// Without the `kernels` feature no backend has the kernel.
#[cfg(not(feature = "kernels"))]
pub(crate) mod kernel {
    use super::{BankPass, BankResult};
    use burn::tensor::backend::Backend;
    use burn::tensor::Tensor;

    /// Always `None`: the caller takes the tensor path.
    pub(crate) fn apply_bank<B: Backend>(_: &Tensor<B, 3>, _: &BankPass<'_, B>) -> Option<BankResult<B>> {
        None
    }
}

/// How one bank row takes part in the pass, from its seed's stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RowRole {
    /// The seed holding the row; `None` for a free row.
    pub seed: Option<usize>,
    /// Output weight when the stage fixes it (1 or 0).
    pub fixed: f32,
    /// Weighed by the seed's alpha.
    pub grafting: bool,
    /// Detached input, zero output, blueprint trained as at weight 1.
    pub training: bool,
    /// Blueprint parameters get gradients.
    pub trainable: bool,
}

/// Bits of a row's role as the kernels read it from the bank's row table ([`RowRole::flags`]).
/// Weight fixed at 1 by the stage.
pub(crate) const ROLE_FIXED_ONE: i32 = 1;
/// Weighed by alpha.
pub(crate) const ROLE_GRAFTING: i32 = 2;
/// Detached input, zero output, blueprint trained as at weight 1.
pub(crate) const ROLE_TRAINING: i32 = 4;
/// Blueprint parameters get gradients.
pub(crate) const ROLE_TRAINABLE: i32 = 8;

impl RowRole {
    /// The role as the kernels read it: the `ROLE_*` bits.
    fn flags(&self) -> i64 {
        let bit = |on: bool, flag: i32| if on { i64::from(flag) } else { 0 };
        bit(self.fixed == 1.0, ROLE_FIXED_ONE)
            | bit(self.grafting, ROLE_GRAFTING)
            | bit(self.training, ROLE_TRAINING)
            | bit(self.trainable, ROLE_TRAINABLE)
    }
}

/// Device tensors one bank's pass needs, derived from the host table at each transition so the
/// pass itself reads only `alpha` from the seed state. Every `[rows, 1, width]` factor is zero
/// on padding and on free rows.
#[derive(Clone, Debug)]
pub(crate) struct BankIndex<B: Backend> {
    /// Blueprint id.
    pub blueprint: usize,
    /// Each row's role (host copy; read by the kernels).
    #[cfg_attr(not(feature = "kernels"), allow(dead_code))]
    pub roles: Vec<RowRole>,
    /// Seed of each row (free rows point at seed 0 and are masked).
    pub row_seeds: Tensor<B, 1, Int>,
    /// `[rows, 2]`: seed (-1 when free) and [`RowRole::flags`], for the kernels.
    #[cfg_attr(not(feature = "kernels"), allow(dead_code))]
    pub table: Tensor<B, 2, Int>,
    /// Feature of each padded position of each row, `[rows * width]`.
    features: Tensor<B, 1, Int>,
    /// 1 on real positions of occupied rows.
    mask: Tensor<B, 3>,
    /// Output weight of rows whose weight is fixed by their stage (1 or 0).
    fixed: Tensor<B, 3>,
    /// 1 on GRAFTING rows, whose weight is their alpha; `None` if there are none.
    grafting: Option<Tensor<B, 3>>,
    /// 1 on TRAINING rows (detached input, straight-through output); `None` if there are none.
    training: Option<Tensor<B, 3>>,
    /// `[rows, 1, 1]`, 1 on TRAINING rows; `None` if there are none.
    training_rows: Option<Tensor<B, 3>>,
    /// `[rows, 1, 1]`, 1 on rows whose blueprint trains; `None` if none does.
    trainable: Option<Tensor<B, 3>>,
}

impl<B: Backend> BankIndex<B> {
    /// The index of blueprint `blueprint`'s bank, one role per bank row.
    pub fn new(blueprint: usize, roles: Vec<RowRole>, chunks: &ChunkMap, device: &B::Device) -> Self {
        let (rows, width) = (roles.len(), chunks.width());
        let (mut features, mut mask) = (Vec::new(), Vec::new());
        for role in &roles {
            for (feature, real) in chunks.padded_positions(role.seed.unwrap_or(0)) {
                features.push(feature as i64);
                mask.push(if real && role.seed.is_some() { 1.0f32 } else { 0.0 });
            }
        }
        // A per-row factor spread over the row's real positions: [rows, 1, width].
        let spread = |factor: &dyn Fn(&RowRole) -> f32| -> Option<Tensor<B, 3>> {
            let values: Vec<f32> = (0..rows * width).map(|i| mask[i] * factor(&roles[i / width])).collect();
            values
                .iter()
                .any(|&v| v != 0.0)
                .then(|| Tensor::from_data(TensorData::new(values, [rows, 1, width]), device))
        };
        let zeros = || Tensor::zeros([rows, 1, width], device);
        let one_if = |on: bool| if on { 1.0 } else { 0.0 };
        // A per-row indicator: [rows, 1, 1].
        let per_row = |flag: &dyn Fn(&RowRole) -> bool| -> Option<Tensor<B, 3>> {
            let values: Vec<f32> = roles.iter().map(|r| one_if(flag(r))).collect();
            values.contains(&1.0).then(|| Tensor::from_data(TensorData::new(values, [rows, 1, 1]), device))
        };
        let table: Vec<i64> = roles.iter().flat_map(|r| [r.seed.map_or(-1, |s| s as i64), r.flags()]).collect();
        Self {
            blueprint,
            row_seeds: Tensor::from_data(
                TensorData::new(roles.iter().map(|r| r.seed.unwrap_or(0) as i64).collect::<Vec<_>>(), [rows]),
                device,
            ),
            table: Tensor::from_data(TensorData::new(table, [rows, 2]), device),
            features: Tensor::from_data(TensorData::new(features, [rows * width]), device),
            fixed: spread(&|r| r.fixed).unwrap_or_else(zeros),
            grafting: spread(&|r| one_if(r.grafting)),
            training: spread(&|r| one_if(r.training)),
            training_rows: per_row(&|r| r.training),
            trainable: per_row(&|r| r.trainable),
            mask: spread(&|_| 1.0).unwrap_or_else(zeros),
            roles,
        }
    }
}

/// Everything one bank's pass reads besides the output it adds to.
pub(crate) struct BankPass<'a, B: Backend> {
    /// The host output before any seed's contribution, `[a, features, p]`: what blueprints
    /// reading the whole layer read.
    pub host_output: Tensor<B, 3>,
    /// The bank's index and stage factors.
    pub index: &'a BankIndex<B>,
    /// The bank's parameters.
    pub bank: &'a BlueprintBank<B>,
    /// Its blueprint.
    pub spec: &'a BlueprintSpec,
    /// The layer's chunks.
    pub chunks: &'a ChunkMap,
    /// Every seed's alpha, `[seeds]`.
    pub alpha: Tensor<B, 1>,
    /// `[batch, height, width]` on Conv2d hosts.
    pub spatial: Option<[usize; 3]>,
    /// Whether to return the per-seed sums of squared contributions (for telemetry).
    pub sampled: bool,
}

/// A bank pass's new output and, when sampled, each seed's sum of squared (unweighted) blueprint
/// outputs, `[seeds]`.
pub(crate) type BankResult<B> = (Tensor<B, 3>, Option<Tensor<B, 1>>);

/// Applies one bank to `h` (`[a, features, p]`: the host output, plus earlier banks' seeds).
pub(crate) fn apply_bank<B: Backend>(h: Tensor<B, 3>, pass: &BankPass<'_, B>) -> BankResult<B> {
    let index = pass.index;
    let [a, _, p] = h.dims();
    let width = pass.chunks.width();
    let rows = index.row_seeds.dims()[0];
    let x = match pass.spec.input {
        BlueprintInput::Chunk => chunk_input(h.clone(), index, width),
        BlueprintInput::Layer => layer_input(pass.host_output.clone(), index),
    };
    // Frozen rows see detached parameters: same values, no gradient.
    let params: Vec<_> = pass
        .bank
        .stacked()
        .into_iter()
        .map(|w| match &index.trainable {
            None => w.detach(),
            Some(t) => w.clone() * t.clone() + w.detach() * (t.clone().neg() + 1.0),
        })
        .collect();
    let b = pass.spec.forward(&params, x, pass.spatial);
    let sumsq = pass.sampled.then(|| {
        let per_row = (b.clone().detach() * index.mask.clone()).square().sum_dim(2).sum_dim(1).reshape([rows]);
        per_seed(per_row, index, pass.chunks.seeds())
    });
    let mut weight = index.fixed.clone();
    if let Some(grafting) = &index.grafting {
        let alpha = pass.alpha.clone().select(0, index.row_seeds.clone());
        weight = weight + alpha.reshape([rows, 1, 1]) * grafting.clone();
    }
    let mut contribution = b.clone() * weight;
    if let Some(training) = &index.training {
        // Adds exactly zero while passing the gradient of alpha = 1 to the blueprint.
        contribution = contribution + (b.clone() - b.detach()) * training.clone();
    }
    let back = contribution.reshape([rows, a, p, width]).permute([1, 0, 3, 2]).reshape([a, rows * width, p]);
    (h.select_assign(1, index.features.clone(), back, IndexingUpdateOp::Add), sumsq)
}

/// Every row's chunk of `h`, `[rows, a*p, width]`, zero on padding and free rows. TRAINING rows
/// read it detached, so the host gets no gradient through them.
fn chunk_input<B: Backend>(h: Tensor<B, 3>, index: &BankIndex<B>, width: usize) -> Tensor<B, 3> {
    let [a, _, p] = h.dims();
    let rows = index.row_seeds.dims()[0];
    let x = h.select(1, index.features.clone()).reshape([a, rows, width, p]).permute([1, 0, 3, 2]).reshape([
        rows,
        a * p,
        width,
    ]);
    match &index.training {
        None => x * index.mask.clone(),
        Some(training) => x.clone() * (index.mask.clone() - training.clone()) + x.detach() * training.clone(),
    }
}

/// The whole host output once per row, `[rows, a*p, features]`; TRAINING rows read it detached.
fn layer_input<B: Backend>(host: Tensor<B, 3>, index: &BankIndex<B>) -> Tensor<B, 3> {
    let [a, features, p] = host.dims();
    let rows = index.row_seeds.dims()[0];
    // At one position (1x1 images, Linear hosts) the permute is a reshape. Burn 0.21's wgpu
    // backend gets the host's input gradient wrong through permute-then-reshape of a 1x1 conv
    // output (the kernel tests caught it, wide_conv at 1x1), so that case skips the permute.
    let x = match p {
        1 => host.reshape([1, a, features]),
        _ => host.permute([0, 2, 1]).reshape([1, a * p, features]),
    };
    let per_row = |x: Tensor<B, 3>| x.expand([rows, a * p, features]);
    match &index.training_rows {
        None => per_row(x),
        Some(training) => per_row(x.clone()) * (training.clone().neg() + 1.0) + per_row(x.detach()) * training.clone(),
    }
}

/// A per-row quantity (`[rows]`, zero on free rows) summed per seed: `[seeds]`.
pub(crate) fn per_seed<B: Backend>(per_row: Tensor<B, 1>, index: &BankIndex<B>, seeds: usize) -> Tensor<B, 1> {
    let zeros = Tensor::zeros([seeds], &per_row.device());
    zeros.select_assign(0, index.row_seeds.clone(), per_row, IndexingUpdateOp::Add)
}
