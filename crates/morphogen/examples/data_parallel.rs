//! Your own loop, data-parallel: replicas (one thread each; one per GPU on a GPU backend) grow
//! the MLP preset on Fashion-MNIST in lockstep through Burn's collective operations, and report
//! what the lockstep costs: gradient averaging every step, and at each epoch end adding up
//! telemetry, combining evaluations, sharing rank 0's decisions, giving new blueprint
//! parameters rank 0's values and checking the seed states.
//!
//! Run: `cargo run --release --example data_parallel [REPLICAS]` (2 by default; Debian's
//! `dataset-fashion-mnist`). It exits with an error if the replicas fall out of lockstep or
//! nothing grew.

use morphogen::burn::backend::{Autodiff, NdArray};
use morphogen::burn::data::dataset::{Dataset, InMemDataset};
use morphogen::burn::optim::{AdamConfig, GradientsParams, Optimizer};
use morphogen::controller::{Controller, ControllerConfig};
use morphogen::trainer::{
    evaluate, evaluate_seeds, fashion_mnist, measure_system, Ablation, DeviceData, EvalBudget, ImageClassification,
    ImageItem, ModelConfig, Replica, ReplicaConfig, Task, TaskModel, TrainError, FASHION_MNIST_DIR,
};
use morphogen::{GlobalMetrics, GraftSignals, SeededModel};
use std::time::{Duration, Instant};

type B = Autodiff<NdArray>;

/// Examples per optimizer step, over all replicas.
const GLOBAL_BATCH: usize = 128;
/// Epochs, each one pass over the training subset.
const EPOCHS: u32 = 6;

/// Where one replica's time went.
#[derive(Debug, Default)]
struct Costs {
    total: Duration,
    averaging: Duration,
    evaluating: Duration,
    lockstep: Duration,
    grown: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let replicas: usize = std::env::args().nth(1).map_or(Ok(2), |n| n.parse())?;
    let (train, valid) = fashion_mnist(FASHION_MNIST_DIR.as_ref())?;
    let data = train.take(6000).with_validation(valid.take(1000));
    let items = |set: &dyn Dataset<ImageItem>| (0..set.len()).filter_map(|i| set.get(i)).collect::<Vec<_>>();
    let (train, valid) = (items(&*data.train), items(&*data.valid));
    let model = ModelConfig { num_seeds: 8, ..Default::default() }.mlp::<B>(&data.task, &Default::default())?;
    let costs: Vec<Result<Costs, TrainError>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..replicas)
            .map(|rank| {
                let (model, task, train, valid) = (model.clone(), &data.task, &train, &valid);
                scope.spawn(move || {
                    let replica = Replica::<B>::join(ReplicaConfig::new(rank, replicas), &Default::default())?;
                    run(&replica, model, task, train, valid)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("replica thread")).collect()
    });
    let costs = costs.into_iter().collect::<Result<Vec<_>, _>>()?;
    let share = |part: Duration, total: Duration| 100.0 * part.as_secs_f64() / total.as_secs_f64();
    for (rank, c) in costs.iter().enumerate() {
        println!(
            "replica {rank}: {:.1} s; gradient averaging {:.1}%; evaluating its shard {:.1}%; \
             lockstep at epoch ends (telemetry, evaluations, decisions, new parameters, check) {:.1}%",
            c.total.as_secs_f64(),
            share(c.averaging, c.total),
            share(c.evaluating, c.total),
            share(c.lockstep, c.total)
        );
    }
    if costs[0].grown == 0 {
        return Err("no seed grew; train longer".into());
    }
    Ok(())
}

/// One replica's run: `EPOCHS` passes over `train` in global batches, growing at each epoch end.
fn run<M>(
    replica: &Replica<B>,
    model: M,
    task: &ImageClassification,
    train: &[ImageItem],
    valid: &[ImageItem],
) -> Result<Costs, TrainError>
where
    M: SeededModel<B> + TaskModel<B, ImageClassification> + morphogen::burn::module::AutodiffModule<B>,
{
    let (group, device, started) = (replica.config(), Default::default(), Instant::now());
    let mut model = replica.synchronize(model)?;
    let mut optim = AdamConfig::new().init();
    let mut controller = Controller::new(ControllerConfig::default())?;
    let mut costs = Costs::default();
    let shard = valid[group.shard(valid.len())].to_vec();
    let (samples, valid_shard) = (shard.len(), DeviceData::<B, _>::upload(task, &InMemDataset::new(shard), &device));
    let budget = EvalBudget { samples, batch_size: GLOBAL_BATCH, max_seeds: 16, ablation: Ablation::Seed };
    for epoch in 1..=EPOCHS {
        let mut train_loss = 0.0;
        for (step, global) in train.chunks(GLOBAL_BATCH).enumerate() {
            let batch = task.batch::<B>(global[group.shard(global.len())].to_vec(), &device);
            let loss = model.step(batch).loss * group.loss_weight(global.len());
            if step % 16 == 0 {
                train_loss = loss.clone().into_scalar();
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let averaging = Instant::now();
            let grads = replica.average_gradients(&model, grads)?;
            costs.averaging += averaging.elapsed();
            model = optim.step(2e-3, model, grads);
            model.graft_step(&GraftSignals::new())?;
        }
        let evaluating = Instant::now();
        let measured =
            (evaluate(&model, task, &valid_shard, budget), evaluate_seeds(&model, task, &valid_shard, budget));
        costs.evaluating += evaluating.elapsed();
        let lockstep = Instant::now();
        replica.sum_telemetry(&mut model)?;
        let (evaluation, seeds) = replica.combine_evaluations(measured.0, measured.1, samples)?;
        let metrics = GlobalMetrics {
            epoch,
            train_loss,
            val_loss: evaluation.loss,
            val_accuracy: evaluation.accuracy,
            ..Default::default()
        };
        let system = measure_system(&model, metrics, seeds);
        let decisions = replica.decide_once(|| controller.step(&system))?;
        // Applies them and gives new blueprint parameters rank 0's values.
        model = replica.apply_decisions(model, &decisions)?;
        model.end_epoch();
        replica.check_lockstep(&model)?;
        costs.lockstep += lockstep.elapsed();
        costs.grown += decisions.commands.len();
        if group.rank == 0 {
            println!(
                "epoch {epoch}: val accuracy {:.4}, {} decision(s)",
                evaluation.accuracy,
                decisions.commands.len()
            );
        }
    }
    costs.total = started.elapsed();
    Ok(costs)
}
