//! Your own training loop with the controller, for any architecture: train, measure (the
//! validation metrics and every EVALUATING seed's contribution), decide, apply, count the epoch.
//!
//! Run: `cargo run --release --example own_loop` grows the MLP preset on a Fashion-MNIST subset
//! (Debian's `dataset-fashion-mnist`) until seeds fossilize; `cargo run --release --example
//! own_loop -- transformer` grows a small transformer on Shakespeare (`scripts/get-shakespeare.sh`).

use morphogen::burn::backend::{Autodiff, NdArray};
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::optim::{AdamConfig, GradientsParams, Optimizer};
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::controller::{Controller, ControllerConfig};
use morphogen::trainer::{
    evaluate, evaluate_seeds, fashion_mnist, measure_system, Ablation, Batching, DeviceData, EvalBudget, ModelConfig,
    Task, TaskData, TaskModel, TextCorpus, FASHION_MNIST_DIR, SHAKESPEARE_DIR,
};
use morphogen::{CommandKind, GlobalMetrics, GraftSignals, SeededModel, Stage};

type B = Autodiff<NdArray>;

/// Examples per step and per evaluation pass.
const BATCH: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let model = ModelConfig { hidden: 16, num_seeds: 4, d_model: 32, layers: 1, context: 32, ..Default::default() };
    let fossilized = if std::env::args().nth(1).as_deref() == Some("transformer") {
        let corpus = TextCorpus::read(SHAKESPEARE_DIR.as_ref())?;
        let (train, valid) = corpus.split(model.context, 0.1)?;
        let task = morphogen::trainer::NextCharacter { vocab: corpus.vocabulary.len(), context: model.context };
        let data = TaskData::new(task, train.take(2000), valid.take(300));
        // 32 steps an epoch: a shorter ramp lets grafting seeds finish within the run.
        let model = ModelConfig { graft_ramp_steps: 32, ..model };
        grow(model.transformer::<B>(&data.task, &device)?, &data, 12)?
    } else {
        let (train, valid) = fashion_mnist(FASHION_MNIST_DIR.as_ref())?;
        let data = train.take(3000).with_validation(valid.take(1000));
        grow(model.mlp::<B>(&data.task, &device)?, &data, 12)?
    };
    if fossilized == 0 {
        return Err("no seed fossilized; train longer or on more data".into());
    }
    println!("{fossilized} seed(s) fossilized");
    Ok(())
}

/// Trains `model` on `data` for `epochs`, letting the controller grow it; returns how many seeds
/// fossilized.
fn grow<M, T>(mut model: M, data: &TaskData<T>, epochs: u32) -> Result<usize, Box<dyn std::error::Error>>
where
    T: Task,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + 'static,
    M::InnerModule:
        SeededModel<<B as AutodiffBackend>::InnerBackend> + TaskModel<<B as AutodiffBackend>::InnerBackend, T>,
{
    let device = Default::default();
    let mut optim = AdamConfig::new().init();
    let mut controller = Controller::new(ControllerConfig {
        patience: 0,
        max_germinations_per_epoch: 3,
        max_active_per_layer: 3,
        max_active_total: 6,
        min_contribution: 0.005,
        ..Default::default()
    })?;
    // Both sets live on the device; batches are gathered there.
    let train = DeviceData::<B, T>::upload(&data.task, &*data.train, &device);
    let valid_set = DeviceData::upload(&data.task, &*data.valid, &device);
    let budget = EvalBudget { samples: valid_set.len(), batch_size: BATCH, max_seeds: 16, ablation: Ablation::Seed };
    let mut fossilized = 0;
    for epoch in 1..=epochs {
        let (mut train_loss, mut steps) = (0.0, 0);
        for batch in train.batches(&data.task, Batching::in_order(BATCH)) {
            let out = model.step(batch);
            train_loss += out.loss.clone().into_scalar();
            steps += 1;
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = optim.step(2e-3, model, grads);
            model.graft_step(&GraftSignals::new())?;
        }
        // Measure, decide, apply: the controller never touches the model itself.
        let inner = model.valid();
        let valid = evaluate(&inner, &data.task, &valid_set, budget);
        let evaluations = evaluate_seeds(&inner, &data.task, &valid_set, budget);
        let metrics = GlobalMetrics {
            epoch,
            train_loss: train_loss / steps as f32,
            val_loss: valid.loss,
            val_accuracy: valid.accuracy,
            score: data.task.score(),
            ..Default::default()
        };
        let decisions = controller.step(&measure_system(&model, metrics, evaluations));
        for command in &decisions.commands {
            model.apply_command(command)?;
            fossilized += usize::from(matches!(command.kind, CommandKind::Advance { to: Stage::Fossilized }));
            println!(
                "epoch {epoch}: {} {} -> {:?} ({})",
                command.target.layer, command.target.seed, command.kind, command.reason
            );
        }
        model.end_epoch();
        println!("epoch {epoch}: val loss {:.4}, val {} {:.4}", valid.loss, metrics.score.name(), metrics.val_score());
    }
    Ok(fossilized)
}
