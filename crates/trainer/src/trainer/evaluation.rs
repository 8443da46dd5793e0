//! Measuring a model on validation data: its loss, accuracy and score, each EVALUATING seed's
//! contribution, and the controller's input. Public, so a user's own loop can do what the
//! trainer does at each epoch end.

use crate::{Ablation, Batching, DeviceData, Shard, Task, TaskModel};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
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

/// How much validation data a measurement reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalBudget {
    /// Examples read from the start of the validation set (fewer if it is shorter).
    pub samples: usize,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Most measurements in one call (each costs a pass: a seed, or a layer's seeds); the rest
    /// wait.
    pub max_seeds: usize,
    /// Which EVALUATING seeds one measurement removes together.
    pub ablation: Ablation,
}

/// A model's mean loss and accuracy over some validation examples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per prediction.
    pub loss: f32,
    /// Share of predictions right.
    pub accuracy: f32,
}

/// Slices the samples of a seed measurement fall into: the contribution's standard error is
/// its spread over them.
const CONTRIBUTION_SLICES: usize = 8;

/// Mean loss and accuracy of `model` on the first `budget.samples` examples of `data`. The sums
/// stay on the device until one read at the end.
pub fn evaluate<B, T, M>(model: &M, task: &T, data: &DeviceData<B, T>, budget: EvalBudget) -> Evaluation
where
    B: Backend,
    T: Task,
    M: TaskModel<B, T>,
{
    evaluate_part(model, task, data, budget, None).0
}

/// [`evaluate`] on `shard`'s part of every batch (all of it with `None`), with the number of
/// predictions measured.
pub(super) fn evaluate_part<B, T, M>(
    model: &M,
    task: &T,
    data: &DeviceData<B, T>,
    budget: EvalBudget,
    shard: Option<Shard>,
) -> (Evaluation, usize)
where
    B: Backend,
    T: Task,
    M: TaskModel<B, T>,
{
    let batching = Batching::in_order(budget.batch_size).first(budget.samples);
    let batches = batch_sums(model, task, data, shard.map_or(batching, |shard| batching.sharded(shard)));
    (totals(&batches), predictions(&batches))
}

/// The loss and correct-prediction totals of one batch.
#[derive(Clone, Copy, Debug)]
struct BatchSums {
    loss: f64,
    correct: f64,
    predictions: usize,
}

/// Each batch's totals of `model` on the batches `batching` gives, read back at once.
fn batch_sums<B, T, M>(model: &M, task: &T, data: &DeviceData<B, T>, batching: Batching) -> Vec<BatchSums>
where
    B: Backend,
    T: Task,
    M: TaskModel<B, T>,
{
    let _span = tracing::debug_span!("evaluate", samples = batching.limit.min(data.len()) as i64).entered();
    let (mut losses, mut corrects, mut predictions) = (Vec::new(), Vec::new(), Vec::new());
    for batch in data.batches(task, batching) {
        let out = model.step(batch);
        losses.push(out.loss * out.predictions as f32);
        corrects.push(out.correct);
        predictions.push(out.predictions);
    }
    if predictions.is_empty() {
        return Vec::new();
    }
    let totals = Tensor::cat([losses, corrects].concat(), 0).into_data().convert::<f64>().to_vec::<f64>();
    let totals = totals.expect("f64 sums");
    let (loss, correct) = totals.split_at(predictions.len());
    (0..predictions.len())
        .map(|i| BatchSums { loss: loss[i], correct: correct[i], predictions: predictions[i] })
        .collect()
}

/// Measures every EVALUATING seed of `model` (up to `budget.max_seeds` measurements): validation
/// loss and accuracy with the seed, and with its alpha (and, with [`Ablation::Layer`], its
/// layer's other EVALUATING seeds' alphas) forced to 0, and the standard error of the
/// difference over eight slices of the samples. One pass for the baseline, one per measurement. The controller's evaluation gate reads the result (pass it to
/// [`measure_system`]).
pub fn evaluate_seeds<B, T, M>(model: &M, task: &T, valid: &DeviceData<B, T>, budget: EvalBudget) -> Vec<SeedEvaluation>
where
    B: Backend,
    T: Task,
    M: SeededModel<B> + TaskModel<B, T> + Clone,
{
    evaluate_seeds_part(model, task, valid, budget, None).0
}

/// [`evaluate_seeds`] on `shard`'s part of every batch (all of it with `None`), with the number
/// of predictions measured.
pub(super) fn evaluate_seeds_part<B, T, M>(
    model: &M,
    task: &T,
    valid: &DeviceData<B, T>,
    budget: EvalBudget,
    shard: Option<Shard>,
) -> (Vec<SeedEvaluation>, usize)
where
    B: Backend,
    T: Task,
    M: SeededModel<B> + TaskModel<B, T> + Clone,
{
    let mut targets = budget.ablation.groups(evaluating_seeds(model));
    targets.truncate(budget.max_seeds);
    if targets.is_empty() {
        return (Vec::new(), 0);
    }
    let samples = budget.samples.min(valid.len());
    let slice = budget.batch_size.min(samples.div_ceil(CONTRIBUTION_SLICES)).max(1);
    let batching = Batching::in_order(slice).first(samples);
    let batching = shard.map_or(batching, |shard| batching.sharded(shard));
    let with = batch_sums(model, task, valid, batching);
    let w = totals(&with);
    let measured = predictions(&with);
    let seeds = targets
        .into_iter()
        .flat_map(|group| {
            let without = batch_sums(&without(model, &group), task, valid, batching);
            let wo = totals(&without);
            let stderr = contribution_stderr(&with, &without);
            let together = group.len() as u32;
            group.into_iter().map(move |seed| SeedEvaluation {
                seed,
                loss_with: w.loss,
                loss_without: wo.loss,
                accuracy_with: w.accuracy,
                accuracy_without: wo.accuracy,
                contribution_stderr: stderr,
                ablated_together: together,
            })
        })
        .collect();
    (seeds, measured)
}

/// Predictions over `batches`.
fn predictions(batches: &[BatchSums]) -> usize {
    batches.iter().map(|b| b.predictions).sum()
}

/// Mean loss and accuracy over `batches`.
fn totals(batches: &[BatchSums]) -> Evaluation {
    let n = predictions(batches).max(1) as f64;
    let (loss, correct) = batches.iter().fold((0.0, 0.0), |(l, c), b| (l + b.loss, c + b.correct));
    Evaluation { loss: (loss / n) as f32, accuracy: (correct / n) as f32 }
}

/// Standard error of the mean of the per-slice contributions (loss without minus loss with,
/// slice by slice): the sample standard deviation over the slices, divided by the root of
/// their number; 0 with fewer than two slices.
fn contribution_stderr(with: &[BatchSums], without: &[BatchSums]) -> f32 {
    let k = with.len().min(without.len());
    if k < 2 {
        return 0.0;
    }
    let gains: Vec<f64> =
        with.iter().zip(without).map(|(w, wo)| (wo.loss - w.loss) / w.predictions.max(1) as f64).collect();
    let mean = gains.iter().sum::<f64>() / k as f64;
    let variance = gains.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    (variance / k as f64).sqrt() as f32
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

/// A copy of `model` with the EVALUATING seeds of `group` (all of one layer) ablated (their
/// alphas forced to 0).
fn without<B: Backend, N: SeededModel<B> + Clone>(model: &N, group: &[SeedAddress]) -> N {
    let seeds: Vec<usize> = group.iter().map(|s| s.seed).collect();
    let mut ablated = model.clone();
    ablated.visit_seeded_mut(&mut |name, layer| {
        if name == group[0].layer {
            layer.seed_core_mut().set_ablation(&seeds).expect("seeds are EVALUATING");
        }
    });
    ablated
}
