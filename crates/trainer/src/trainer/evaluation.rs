//! Measuring a model on validation data: its loss and accuracy, each EVALUATING seed's
//! contribution, and the controller's input.

use super::config::TrainerConfig;
use super::tensors::{batch, scalar};
use super::types::Classifier;
use crate::Dataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::Backend;
use morphogen_contracts::{GlobalMetrics, SeedAddress, SeedEvaluation, Stage, SystemState};
use morphogen_engine::SeededModel;

/// Builds the controller's input from a model: every layer's seeds and health (this resets the
/// telemetry windows), the epoch's metrics, the measured evaluations and the parameters grown.
pub fn measure_system<B: Backend, M: SeededModel<B>>(
    model: &M,
    metrics: GlobalMetrics,
    evaluations: Vec<SeedEvaluation>,
) -> SystemState {
    SystemState { metrics, layers: model.layer_states(), evaluations, params_added: model.params_added() }
}

/// Mean loss and accuracy of `model` on the first `limit` images of `data`.
pub(super) fn evaluate<B: Backend, M: Classifier<B>>(
    model: &M,
    data: &Dataset,
    limit: usize,
    batch_size: usize,
    device: &B::Device,
) -> (f32, f32) {
    let n = limit.min(data.len());
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut loss, mut correct) = (0.0f64, 0.0f64);
    for start in (0..n).step_by(batch_size) {
        let indices: Vec<usize> = (start..(start + batch_size).min(n)).collect();
        let (x, y) = batch::<B>(data, &indices, device);
        let logits = model.logits(x);
        loss += scalar(loss_fn.forward(logits.clone(), y.clone())) as f64 * indices.len() as f64;
        correct += scalar(logits.argmax(1).reshape([indices.len()]).equal(y).int().sum().float()) as f64;
    }
    ((loss / n.max(1) as f64) as f32, (correct / n.max(1) as f64) as f32)
}

/// Measures every EVALUATING seed of `model` (up to `config`'s per-epoch cap): validation loss
/// on the first `eval_samples` images with the seed, and with its alpha forced to 0. One pass
/// for the baseline, one per measured seed.
pub(super) fn evaluate_seeds<B, N>(
    model: &N,
    valid: &Dataset,
    config: &TrainerConfig,
    device: &B::Device,
) -> Vec<SeedEvaluation>
where
    B: Backend,
    N: SeededModel<B> + Classifier<B> + Clone,
{
    let mut targets = evaluating_seeds(model);
    targets.truncate(config.max_evaluations_per_epoch);
    if targets.is_empty() {
        return Vec::new();
    }
    let (n, bs) = (config.eval_samples, config.batch_size);
    let (loss_with, accuracy_with) = evaluate(model, valid, n, bs, device);
    targets
        .into_iter()
        .map(|seed| {
            let (loss_without, accuracy_without) = evaluate(&without(model, &seed), valid, n, bs, device);
            SeedEvaluation { seed, loss_with, loss_without, accuracy_with, accuracy_without }
        })
        .collect()
}

/// The seeds of `model` in EVALUATING, layer by layer.
fn evaluating_seeds<B: Backend, N: SeededModel<B>>(model: &N) -> Vec<SeedAddress> {
    let mut targets = Vec::new();
    model.visit_seeded(&mut |name, layer| {
        for (seed, row) in layer.seed_core().table().iter().enumerate() {
            if row.stage == Stage::Evaluating {
                targets.push(SeedAddress { layer: name.to_string(), seed });
            }
        }
    });
    targets
}

/// A copy of `model` with the EVALUATING seed at `seed` ablated (its alpha forced to 0).
fn without<B: Backend, N: SeededModel<B> + Clone>(model: &N, seed: &SeedAddress) -> N {
    let mut ablated = model.clone();
    ablated.visit_seeded_mut(&mut |name, layer| {
        if name == seed.layer {
            layer.seed_core_mut().set_ablation(&[seed.seed]).expect("seed is EVALUATING");
        }
    });
    ablated
}
