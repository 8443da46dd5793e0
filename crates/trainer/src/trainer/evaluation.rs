//! Measuring a model on validation data: its loss, accuracy and score, each EVALUATING seed's
//! contribution, and the controller's input. Public, so a user's own loop can do what the
//! trainer does at each epoch end.

use crate::{Batching, DeviceData, Task, TaskModel};
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
    /// Most EVALUATING seeds measured in one call (each costs a pass); the rest wait.
    pub max_seeds: usize,
}

/// A model's mean loss and accuracy over some validation examples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per prediction.
    pub loss: f32,
    /// Share of predictions right.
    pub accuracy: f32,
}

/// Mean loss and accuracy of `model` on the first `budget.samples` examples of `data`. The sums
/// stay on the device until one read at the end.
pub fn evaluate<B, T, M>(model: &M, task: &T, data: &DeviceData<B, T>, budget: EvalBudget) -> Evaluation
where
    B: Backend,
    T: Task,
    M: TaskModel<B, T>,
{
    let _span = tracing::debug_span!("evaluate", samples = budget.samples.min(data.len()) as i64).entered();
    let batching = Batching::in_order(budget.batch_size).first(budget.samples);
    let mut sums: Option<(Tensor<B, 1>, Tensor<B, 1>)> = None;
    let mut predictions = 0usize;
    for batch in data.batches(task, batching) {
        let out = model.step(batch);
        let loss = out.loss * out.predictions as f32;
        sums = Some(match sums {
            Some((l, c)) => (l + loss, c + out.correct),
            None => (loss, out.correct),
        });
        predictions += out.predictions;
    }
    let Some((loss, correct)) = sums else {
        return Evaluation { loss: 0.0, accuracy: 0.0 };
    };
    let totals = Tensor::cat(vec![loss, correct], 0).into_data().convert::<f64>().to_vec::<f64>().expect("f64 sums");
    let n = predictions.max(1) as f64;
    Evaluation { loss: (totals[0] / n) as f32, accuracy: (totals[1] / n) as f32 }
}

/// Measures every EVALUATING seed of `model` (up to `budget.max_seeds`): validation loss and
/// accuracy with the seed, and with its alpha forced to 0. One pass for the baseline, one per
/// measured seed. The controller's evaluation gate reads the result (pass it to
/// [`measure_system`]).
pub fn evaluate_seeds<B, T, M>(model: &M, task: &T, valid: &DeviceData<B, T>, budget: EvalBudget) -> Vec<SeedEvaluation>
where
    B: Backend,
    T: Task,
    M: SeededModel<B> + TaskModel<B, T> + Clone,
{
    let mut targets = evaluating_seeds(model);
    targets.truncate(budget.max_seeds);
    if targets.is_empty() {
        return Vec::new();
    }
    let with = evaluate(model, task, valid, budget);
    targets
        .into_iter()
        .map(|seed| {
            let without = evaluate(&without(model, &seed), task, valid, budget);
            SeedEvaluation {
                seed,
                loss_with: with.loss,
                loss_without: without.loss,
                accuracy_with: with.accuracy,
                accuracy_without: without.accuracy,
            }
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
