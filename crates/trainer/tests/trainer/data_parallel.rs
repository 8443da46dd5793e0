//! Data-parallel replicas in one process: threads on ndarray joined through Burn's collective
//! operations (the code path a run on several GPUs takes) train a growing MLP on Fashion-MNIST
//! and measure its seeds' health exactly as one process on the whole global batch does, and a
//! replica whose seeds fall out of lockstep is named by every replica; growth decided on rank 0
//! reaches every replica; evaluations on shards combine into one over all the data (and a
//! layer's EVALUATING seeds ablated together measure as one); a replica
//! that hangs stops the others within their timeout; replicas started with other settings are
//! refused before the first step.

use crate::common::{pooled_data, seeded_mlp, seeded_through_inner, B};
use burn::data::dataset::{Dataset, InMemDataset};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use morphogen_contracts::{GlobalMetrics, SeedEvaluation, Stage};
use morphogen_controller::{Controller, ControllerConfig, GrowthTrigger};
use morphogen_engine::{SeedControl, SeededModel};
use morphogen_testkit::assert_close;
use morphogen_trainer::{
    evaluate, evaluate_seeds, measure_system, Ablation, DeviceData, EvalBudget, EventLog, ImageBatch,
    ImageClassification, ImageItem, Mlp, ModelConfig, NodeGroup, Replica, ReplicaConfig, StepOutput, Task, TaskData,
    TaskModel, TrainError, Trainer, TrainerConfig,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Optimizer steps each run takes.
const STEPS: usize = 5;
/// Examples per global batch: three replicas take 17, 17 and 16 of them.
const GLOBAL_BATCH: usize = 50;
/// Adam's learning rate: large, so that a wrong step shows.
const LR: f64 = 1e-2;

/// The task and the first training images (7x7).
fn images() -> (ImageClassification, Vec<ImageItem>) {
    let (task, train, _) = images_and_validation(1);
    (task, train)
}

/// The task, the first training images and the first `valid` validation images (7x7).
fn images_and_validation(valid: usize) -> (ImageClassification, Vec<ImageItem>, Vec<ImageItem>) {
    let data = pooled_data(STEPS * GLOBAL_BATCH, valid, 4);
    let items = |set: &dyn Dataset<ImageItem>| (0..set.len()).map(|i| set.get(i).unwrap()).collect();
    (data.task, items(&*data.train), items(&*data.valid))
}

/// A small MLP whose first layer has two seeds past GRAFTING (their blueprints both train and
/// count in the output) and one TRAINING seed. Its weights, and those of blueprints germinated
/// after it on this thread, come from one backend seed: on some draws a blueprint reads only dead
/// units, never learns, and a test that needs a contribution would fail by chance.
fn growing_mlp(task: &ImageClassification) -> Mlp<B> {
    grown(seeded_mlp(task, 7, ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() }))
}

/// `model` with the seeds of [`growing_mlp`] germinated and advanced.
fn grown<Bk: AutodiffBackend>(mut model: Mlp<Bk>) -> Mlp<Bk> {
    model.fc1.request_germinations(&[0, 1, 2], "residual_mlp", "fixed_ramp").unwrap();
    model.fc1.advance_many(&[0, 1, 2], Stage::Training).unwrap();
    for stage in [Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning] {
        model.fc1.advance_many(&[0, 1], stage).unwrap();
    }
    model
}

/// `model`'s logits on the first global batch: every host and blueprint weight shows in them.
fn logits<Bk: AutodiffBackend>(model: &Mlp<Bk>, task: &ImageClassification, items: &[ImageItem]) -> Vec<f32> {
    let batch = task.batch::<Bk>(items[..GLOBAL_BATCH].to_vec(), &Default::default());
    let logits: Tensor<Bk, 2> = model.logits(batch.images);
    logits.into_data().to_vec().unwrap()
}

/// Trains `model` for [`STEPS`] steps as replica `replica` of its group (or alone with `None`, on
/// whole global batches), averaging gradients when `average` is set.
fn train<Bk: AutodiffBackend>(
    mut model: Mlp<Bk>,
    task: &ImageClassification,
    items: &[ImageItem],
    replica: Option<&Replica<Bk>>,
    average: bool,
) -> Result<Mlp<Bk>, TrainError> {
    let mut optim = AdamConfig::new().init();
    let group = replica.map_or(ReplicaConfig::new(0, 1), |r| r.config());
    for step in 0..STEPS {
        let global = &items[step * GLOBAL_BATCH..(step + 1) * GLOBAL_BATCH];
        let batch = task.batch::<Bk>(global[group.shard(GLOBAL_BATCH)].to_vec(), &Default::default());
        let loss = model.step(batch).loss * group.loss_weight(GLOBAL_BATCH);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        if let (Some(replica), true) = (replica, average) {
            grads = replica.average_gradients(&model, grads)?;
        }
        model = optim.step(LR, model, grads);
    }
    Ok(model)
}

/// Runs `body` as every replica of a group of `replicas`, each on its own thread, and returns
/// what each returned, by rank. A replica waits at most a minute for the others, so a test whose
/// replicas fall out of step fails rather than hangs.
fn as_replicas<Bk: AutodiffBackend, T: Send>(replicas: usize, body: impl Fn(Replica<Bk>) -> T + Sync) -> Vec<T> {
    as_replicas_waiting(replicas, Duration::from_secs(60), body)
}

/// [`as_replicas`] with every replica waiting at most `timeout` for the others.
fn as_replicas_waiting<Bk: AutodiffBackend, T: Send>(
    replicas: usize,
    timeout: Duration,
    body: impl Fn(Replica<Bk>) -> T + Sync,
) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..replicas)
            .map(|rank| {
                let (body, config) = (&body, ReplicaConfig::new(rank, replicas).with_timeout(timeout));
                scope.spawn(move || body(Replica::join(config, &Default::default()).unwrap()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The first seeded layer's telemetry sums since its last report.
fn telemetry(model: &Mlp<B>) -> Vec<f32> {
    model.fc1.core.telemetry_sums().into_data().to_vec().unwrap()
}

/// Every seed's health statistics, layer after layer (reading them resets the windows).
fn health(model: &Mlp<B>) -> Vec<f32> {
    let reports = model.health_reports();
    reports.iter().flat_map(|r| &r.seeds).flat_map(|s| [s.mean, s.variance, s.dead_ratio, s.correlation]).collect()
}

/// Every blueprint parameter of `model`'s seeded layers, bank after bank.
fn bank_values(model: &Mlp<B>) -> Vec<f32> {
    let layers = [&model.fc1.core, &model.fc2.core];
    let banks = layers.into_iter().flat_map(|core| core.params().banks.iter().flatten());
    let params = banks.flat_map(|bank| bank.pages.iter().flat_map(|page| page.params.iter()));
    params.flat_map(|param| param.val().into_data().to_vec::<f32>().unwrap()).collect()
}

/// The largest difference between `a` and `b` relative to the larger magnitude (at least 1).
fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1.0)).fold(0.0, f32::max)
}

/// What one replica measured: its start, its logits trained with and without averaging, and its
/// first layer's telemetry sums before and after adding them up, and its health after.
struct ReplicaRun {
    start: Mlp<B>,
    averaged: Vec<f32>,
    apart: Vec<f32>,
    own_telemetry: Vec<f32>,
    summed_telemetry: Vec<f32>,
    health: Vec<f32>,
}

#[test]
fn replicas_train_and_measure_as_one_process_on_the_global_batch() {
    let (task, items) = images();
    // Clones of a model not yet run hold different weights (Burn initializes lazily), so the
    // replicas start from rank 0's through `synchronize`, and so does the single process.
    let model = growing_mlp(&task);
    let runs = as_replicas(3, |replica| {
        let start = replica.synchronize(model.clone()).unwrap();
        let mut averaged = train(start.clone(), &task, &items, Some(&replica), true).unwrap();
        replica.check_lockstep(&averaged).unwrap();
        let own_telemetry = telemetry(&averaged);
        replica.sum_telemetry(&mut averaged).unwrap();
        let (summed_telemetry, health) = (telemetry(&averaged), health(&averaged));
        let apart = train(start.clone(), &task, &items, Some(&replica), false).unwrap();
        let (averaged, apart) = (logits(&averaged, &task, &items), logits(&apart, &task, &items));
        ReplicaRun { start, averaged, apart, own_telemetry, summed_telemetry, health }
    });
    // A fork has telemetry windows of its own.
    let single = train(runs[0].start.clone().fork(&Default::default()), &task, &items, None, false).unwrap();
    let (single_telemetry, single_health) = (telemetry(&single), health(&single));
    let single = logits(&single, &task, &items);
    for (rank, run) in runs.iter().enumerate() {
        let difference = max_difference(&run.averaged, &single);
        assert!(difference < 1e-4, "replica {rank} differs from one process by {difference}");
        let telemetry = relative_difference(&run.summed_telemetry, &single_telemetry);
        assert!(telemetry < 1e-4, "replica {rank}'s summed telemetry differs from one process's by {telemetry}");
        let health = relative_difference(&run.health, &single_health);
        assert!(health < 1e-3, "replica {rank}'s health differs from one process's by {health}");
    }
    // Without averaging, each replica learns from its shard alone and ends elsewhere; before
    // adding up, each window holds its shard alone.
    let apart = max_difference(&runs[0].apart, &single);
    assert!(apart > 1e-2, "training on a shard alone came within {apart} of the whole batch");
    let own = relative_difference(&runs[0].own_telemetry, &single_telemetry);
    assert!(own > 0.1, "one replica's telemetry came within {own} of the whole batch's");
}

/// Replicas on threads of one CubeCL device: on CUDA they trained apart from one process until
/// every collective call went through host memory (docs/benchmarks.md, "Across processes");
/// Burn's wgpu backend (CubeCL on Mesa's software Vulkan) showed the same fault on the CPU.
#[cfg(feature = "wgpu")]
#[test]
fn replicas_on_one_cubecl_device_train_as_one_process() {
    type W = burn::backend::Autodiff<burn::backend::Wgpu>;
    let (task, items) = images();
    let device = Default::default();
    W::seed(&device, 7);
    let config = ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() };
    let model = grown(config.mlp::<W>(&task, &device).unwrap());
    let runs = as_replicas::<W, _>(2, |replica| {
        let start = replica.synchronize(model.clone()).unwrap();
        let averaged = train(start.clone(), &task, &items, Some(&replica), true).unwrap();
        (start, logits(&averaged, &task, &items))
    });
    let single = train(runs[0].0.clone().fork(&device), &task, &items, None, false).unwrap();
    let single = logits(&single, &task, &items);
    for (rank, (_, averaged)) in runs.iter().enumerate() {
        let difference = max_difference(averaged, &single);
        assert!(difference < 1e-4, "replica {rank} differs from one process by {difference}");
    }
}

#[test]
fn a_replica_out_of_lockstep_is_named_by_every_replica() {
    let (task, _) = images();
    let model = growing_mlp(&task);
    let answers = as_replicas(2, |replica| {
        let mut mine = model.clone();
        replica.check_lockstep(&mine).expect("identical replicas are in lockstep");
        if replica.config().rank == 1 {
            // A growth decision applied on one replica only.
            mine.fc2.request_germinations(&[0], "residual_mlp", "fixed_ramp").unwrap();
        }
        replica.check_lockstep(&mine).map_err(|e| e.to_string())
    });
    for answer in answers {
        let error = answer.expect_err("a replica out of lockstep is reported");
        assert!(error.contains("replica 1") && error.contains("fc2"), "{error}");
    }
}

#[test]
fn ranks_outside_the_group_are_refused() {
    let error = Replica::<B>::join(ReplicaConfig::new(2, 2), &Default::default()).unwrap_err();
    assert!(error.to_string().contains("rank 2 is outside a group of 2 replicas"), "{error}");
    let error = ReplicaConfig::new(0, 2).with_timeout(Duration::ZERO).validate().unwrap_err();
    assert!(error.to_string().contains("timeout"), "{error}");
    let shards: Vec<_> = (0..3).map(|rank| ReplicaConfig::new(rank, 3).shard(50)).collect();
    assert_eq!(shards, vec![0..17, 17..34, 34..50]);
}

#[test]
fn ranks_that_do_not_belong_to_their_node_are_refused() {
    let coordinator = "127.0.0.1:29500".parse().unwrap();
    let node = |rank| NodeGroup::new(2, rank, coordinator);
    assert_eq!(node(1).address.port(), 29502, "node 1 serves on coordinator + 2");
    assert!(ReplicaConfig::new(2, 4).with_nodes(node(1)).validate().is_ok());
    assert_eq!(ReplicaConfig::new(3, 4).with_nodes(node(1)).local_replicas(), 2);
    let refused = |config: ReplicaConfig| config.validate().unwrap_err().to_string();
    let error = refused(ReplicaConfig::new(1, 4).with_nodes(node(1)));
    assert!(error.contains("rank 1 belongs to node 0, not to node 1"), "{error}");
    let error = refused(ReplicaConfig::new(1, 3).with_nodes(node(1)));
    assert!(error.contains("3 replicas do not split evenly over 2 nodes"), "{error}");
    let error = refused(ReplicaConfig::new(0, 2).with_nodes(node(2)));
    assert!(error.contains("node rank 2 is outside a group of 2 nodes"), "{error}");
}

#[test]
fn growth_decided_on_rank_0_is_applied_by_every_replica() {
    let (task, items) = images();
    let model = growing_mlp(&task);
    let decided = AtomicUsize::new(0);
    let runs = as_replicas(2, |replica| {
        let mut mine = train(replica.synchronize(model.clone()).unwrap(), &task, &items, Some(&replica), true).unwrap();
        replica.sum_telemetry(&mut mine).unwrap();
        // Every replica reads its health (which starts a new window); only rank 0 decides.
        let metrics =
            GlobalMetrics { epoch: 1, step: STEPS as u64, train_loss: 1.0, val_loss: 1.0, ..Default::default() };
        let system = measure_system(&mine, metrics, Vec::new());
        let decisions = replica
            .decide_once(|| {
                decided.fetch_add(1, Ordering::SeqCst);
                Controller::new(ControllerConfig::default()).unwrap().step(&system)
            })
            .unwrap();
        let mut mine = replica.apply_decisions(mine, &decisions).unwrap();
        replica.check_lockstep(&mine).unwrap();
        // The germinated seeds train: their new bank pages must be the same everywhere.
        let germinated: Vec<usize> =
            decisions.commands.iter().filter(|c| c.target.layer == "fc1").map(|c| c.target.seed).collect();
        mine.fc1.advance_many(&germinated, Stage::Training).unwrap();
        let trained = train(mine, &task, &items, Some(&replica), true).unwrap();
        (decisions, bank_values(&trained))
    });
    let (decisions, banks_0) = &runs[0];
    assert_eq!(decided.load(Ordering::SeqCst), 1, "the controller ran on rank 0 only");
    assert!(!decisions.commands.is_empty(), "the controller grew seeds: {decisions:?}");
    assert_eq!(decisions, &runs[1].0, "every replica applied rank 0's decisions");
    assert_eq!(banks_0.len(), runs[1].1.len());
    let difference = max_difference(banks_0, &runs[1].1);
    assert!(difference < 1e-5, "the replicas' blueprint weights differ by {difference} after growing and training");
}

#[test]
fn a_replica_that_hangs_stops_the_others_within_their_timeout() {
    let (task, _) = images();
    let model = growing_mlp(&task);
    let timeout = Duration::from_secs(2);
    let answers = as_replicas_waiting(2, timeout, |replica| {
        let mine = replica.synchronize(model.clone()).unwrap();
        if replica.config().rank == 1 {
            // Hangs (longer than rank 0 waits) instead of comparing seed states.
            std::thread::sleep(3 * timeout);
            return None;
        }
        let started = Instant::now();
        let first = replica.check_lockstep(&mine).unwrap_err().to_string();
        let waited = started.elapsed();
        // The group is out of step for good: the next operation fails at once.
        let next = replica.decide_once(Default::default).unwrap_err().to_string();
        Some((first, waited, next, started.elapsed() - waited))
    });
    let (first, waited, next, next_waited) = answers[0].clone().expect("rank 0 answered");
    assert!(first.contains("replica 0 waited 2s") && first.contains("compare seed states"), "{first}");
    assert!(waited >= timeout && waited < 4 * timeout, "rank 0 gave up after {waited:?}");
    assert!(next.contains("waited") && next_waited < timeout, "{next} after {next_waited:?}");
}

#[test]
fn evaluations_on_shards_combine_into_one_over_the_whole_validation_set() {
    let (task, items, valid) = images_and_validation(60);
    let model = evaluating_pair(&task, &items);
    let measure = |model: &Mlp<B>, items: Vec<ImageItem>| {
        let budget = EvalBudget { samples: items.len(), batch_size: 16, max_seeds: 8, ablation: Ablation::Seed };
        let data = DeviceData::<B, _>::upload(&task, &InMemDataset::new(items), &Default::default());
        (evaluate(model, &task, &data, budget), evaluate_seeds(model, &task, &data, budget))
    };
    let (whole, whole_seeds) = measure(&model, valid.clone());
    let combined = as_replicas(2, |replica| {
        let mine = replica.synchronize(model.clone()).unwrap();
        let shard = valid[replica.config().shard(valid.len())].to_vec();
        let samples = shard.len();
        let (evaluation, seeds) = measure(&mine, shard);
        replica.combine_evaluations(evaluation, seeds, samples).unwrap()
    });
    assert_eq!(whole_seeds.len(), 2);
    for (evaluation, seeds) in &combined {
        assert_close(&[evaluation.loss, evaluation.accuracy], &[whole.loss, whole.accuracy], 1e-5, "model");
        for (seed, expected) in seeds.iter().zip(&whole_seeds) {
            assert_eq!(seed.seed, expected.seed);
            let measured = [seed.loss_with, seed.loss_without, seed.accuracy_with, seed.accuracy_without];
            let expected_values =
                [expected.loss_with, expected.loss_without, expected.accuracy_with, expected.accuracy_without];
            assert_close(&measured, &expected_values, 1e-5, &format!("seed {:?}", seed.seed));
            assert!(seed.contribution().abs() > 0.0, "the trained blueprint changes the loss");
            assert!(seed.contribution_stderr > 0.0 && seed.contribution_stderr.is_finite());
        }
    }
    assert_eq!(combined[0], combined[1], "every replica gets the same answer");
}

#[test]
fn a_layers_evaluating_seeds_ablated_together_are_measured_as_one() {
    let (task, items, valid) = images_and_validation(60);
    let model = evaluating_pair(&task, &items);
    let data = DeviceData::<B, _>::upload(&task, &InMemDataset::new(valid.clone()), &Default::default());
    let measure = |ablation| {
        let budget = EvalBudget { samples: valid.len(), batch_size: 16, max_seeds: 8, ablation };
        evaluate_seeds(&model, &task, &data, budget)
    };
    let (alone, together) = (measure(Ablation::Seed), measure(Ablation::Layer));
    let mut both_removed = model.clone();
    both_removed.fc2.seed_core_mut().set_ablation(&[0, 1]).unwrap();
    let budget = EvalBudget { samples: valid.len(), batch_size: 16, max_seeds: 0, ablation: Ablation::Layer };
    let without_both = evaluate(&both_removed, &task, &data, budget).loss;
    assert_eq!(together.len(), 2, "one measurement, reported for each seed");
    for (seed, measured) in [0, 1].into_iter().zip(&together) {
        assert_eq!((measured.seed.seed, measured.ablated_together), (seed, 2));
        assert_close(&[measured.loss_without], &[without_both], 1e-6, "loss without the layer's seeds");
        assert_eq!(measured.contribution_stderr, together[0].contribution_stderr);
    }
    for measured in &alone {
        assert_eq!(measured.ablated_together, 1);
        let apart = (measured.loss_without - without_both).abs();
        assert!(apart > 1e-5, "seed {} alone measures something else ({apart})", measured.seed.seed);
    }
    let one_pass = measure_with_cap(&model, &task, &data, 1);
    assert_eq!(one_pass.len(), 2, "a cap of one measurement still measures the whole layer");
}

/// [`evaluate_seeds`] with layer ablation and at most `max_seeds` measurements.
fn measure_with_cap(
    model: &Mlp<B>,
    task: &ImageClassification,
    data: &DeviceData<B, ImageClassification>,
    max_seeds: usize,
) -> Vec<SeedEvaluation> {
    let budget = EvalBudget { samples: 60, batch_size: 16, max_seeds, ablation: Ablation::Layer };
    evaluate_seeds(model, task, data, budget)
}

/// A growing MLP whose second layer's seeds 0 and 1 trained their blueprints on `items` and
/// wait in EVALUATING.
fn evaluating_pair(task: &ImageClassification, items: &[ImageItem]) -> Mlp<B> {
    let mut model = growing_mlp(task);
    model.fc2.request_germinations(&[0, 1], "residual_mlp", "fixed_ramp").unwrap();
    model.fc2.advance_many(&[0, 1], Stage::Training).unwrap();
    let mut model = train(model, task, items, None, false).unwrap();
    for stage in [Stage::Grafting, Stage::Stabilization, Stage::Evaluating] {
        model.fc2.advance_many(&[0, 1], stage).unwrap();
    }
    model
}

/// What one run of the trainer gave: its epochs' metrics, its seed transitions (epoch, layer,
/// seed, from, to), its final logits on the first validation images, and how many checkpoints it
/// wrote.
struct TrainerRun {
    history: Vec<GlobalMetrics>,
    transitions: Vec<(u32, String, usize, Stage, Stage)>,
    logits: Vec<f32>,
    checkpoints: usize,
}

/// Six epochs of eight steps of 50 images, growing every epoch, through [`Trainer::run`]: alone
/// (`replica` `None`) or as one replica of a group, starting from `model`.
fn trainer_run(model: Mlp<B>, data: &TaskData<ImageClassification>, replica: Option<ReplicaConfig>) -> TrainerRun {
    let folder = tempfile::tempdir().unwrap();
    let config = TrainerConfig {
        epochs: 6,
        batch_size: GLOBAL_BATCH,
        steps_per_epoch: Some(8),
        learning_rate: 2e-3,
        eval_samples: 200,
        eval_batch_size: 64,
        seed: 5,
        debug: true,
        checkpoint_dir: Some(folder.path().to_path_buf()),
        ..Default::default()
    };
    let controller = ControllerConfig {
        trigger: GrowthTrigger::EveryEpoch,
        max_active_per_layer: 4,
        max_germinations_per_epoch: 4,
        ..Default::default()
    };
    let mut trainer = Trainer::new(config, Controller::new(controller).unwrap(), EventLog::in_memory()).unwrap();
    if let Some(replica) = replica {
        trainer = trainer.with_replica(replica).unwrap();
    }
    let out = trainer.run(model, AdamConfig::new().init(), data, &mut ()).unwrap();
    let valid: Vec<ImageItem> = (0..GLOBAL_BATCH).map(|i| data.valid.get(i).unwrap()).collect();
    let events = trainer.events().events();
    TrainerRun {
        history: out.history,
        transitions: events.iter().map(|e| (e.epoch, e.layer.clone(), e.seed, e.from, e.to)).collect(),
        logits: logits(&out.model, &data.task, &valid),
        checkpoints: std::fs::read_dir(folder.path()).unwrap().count(),
    }
}

#[test]
fn the_trainer_on_two_replicas_trains_and_grows_as_one_process_on_the_global_batch() {
    let data = pooled_data(1600, 200, 2);
    let config = ModelConfig { hidden: 16, num_seeds: 4, graft_ramp_steps: 4, ..Default::default() };
    let model = seeded_mlp(&data.task, 5, config);
    // Every parameter drawn now, once: clones of a model that has not run draw their own.
    let model = model.clone().load_record(model.into_record());
    let alone = trainer_run(model.clone(), &data, None);
    let runs: Vec<TrainerRun> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|rank| {
                let (model, data) = (model.clone(), &data);
                let config = ReplicaConfig::new(rank, 2).with_timeout(Duration::from_secs(60));
                scope.spawn(move || trainer_run(model, data, Some(config)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let grown = alone.transitions.iter().filter(|t| t.4 == Stage::Germinated).count();
    assert!(grown > 0, "the run grew: {:?}", alone.transitions);
    for (rank, run) in runs.iter().enumerate() {
        assert_eq!(run.transitions, alone.transitions, "rank {rank}'s seed transitions");
        assert_eq!(run.history.len(), alone.history.len());
        for (mine, one) in run.history.iter().zip(&alone.history) {
            assert_close(&[mine.train_loss], &[one.train_loss], 1e-4, "training loss");
            assert_close(&[mine.val_loss], &[one.val_loss], 1e-4, "validation loss");
            assert!((mine.train_accuracy - one.train_accuracy).abs() < 1e-6, "training accuracy");
            assert!((mine.val_accuracy - one.val_accuracy).abs() < 1e-6, "validation accuracy");
        }
        let difference = relative_difference(&run.logits, &alone.logits);
        assert!(difference < 1e-3, "rank {rank}'s logits differ from one process's by {difference}");
    }
    assert_eq!(runs[0].logits, runs[1].logits, "the replicas end with the same model");
    assert_eq!(runs[0].checkpoints, alone.checkpoints, "rank 0 writes every checkpoint");
    assert_eq!(runs[1].checkpoints, 0, "rank 1 writes none");
}

/// An MLP whose forward pass panics at one chosen call: a replica whose device fails.
#[derive(Module, Debug)]
struct Failing<B: Backend> {
    inner: Mlp<B>,
    #[module(skip)]
    calls: Arc<AtomicUsize>,
    #[module(skip)]
    fail_at: usize,
}

seeded_through_inner!(Failing);

impl<B: Backend> TaskModel<B, ImageClassification> for Failing<B> {
    fn step(&self, batch: ImageBatch<B>) -> StepOutput<B> {
        assert_ne!(self.calls.fetch_add(1, Ordering::SeqCst), self.fail_at, "the replica's device failed");
        StepOutput::classification(self.inner.logits(batch.images), batch.labels)
    }
}

#[test]
fn a_replica_that_fails_stops_the_others_at_once_naming_it() {
    let data = pooled_data(800, 100, 4);
    let model = seeded_mlp(&data.task, 9, ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() });
    let model = model.clone().load_record(model.into_record());
    let config = TrainerConfig { epochs: 3, batch_size: 50, eval_samples: 100, ..Default::default() };
    // Far longer than the test may take: the others must not wait it out.
    let timeout = Duration::from_secs(120);
    let trainer = |rank| {
        let controller = Controller::new(ControllerConfig::default()).unwrap();
        let trainer = Trainer::new(config.clone(), controller, EventLog::in_memory()).unwrap();
        trainer.with_replica(ReplicaConfig::new(rank, 2).with_timeout(timeout)).unwrap()
    };
    let started = Instant::now();
    let (lead, failing) = std::thread::scope(|scope| {
        let failing = Failing { inner: model.clone(), calls: Arc::new(AtomicUsize::new(0)), fail_at: 20 };
        let (data, mut rank_1) = (&data, trainer(1));
        let failing = scope.spawn(move || rank_1.run(failing, AdamConfig::new().init(), data, &mut ()).map(drop));
        let lead = trainer(0).run(model.clone(), AdamConfig::new().init(), data, &mut ()).map(drop);
        (lead, failing.join())
    });
    assert!(failing.is_err(), "rank 1's thread panicked");
    match lead {
        Err(TrainError::ReplicaFailed { rank: 0, failed: 1, problem, .. }) => {
            assert!(problem.contains("panicked"), "{problem}")
        }
        other => panic!("rank 0 should name rank 1's failure, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60), "rank 0 stopped at once, not after its timeout");
}

#[test]
fn replicas_started_with_other_settings_are_refused_before_the_first_step() {
    let data = pooled_data(200, 50, 4);
    let model = seeded_mlp(&data.task, 9, ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() });
    let run = |rank: usize, learning_rate: f64, folder: &std::path::Path| {
        let config = TrainerConfig {
            epochs: 1,
            batch_size: 50,
            eval_samples: 50,
            learning_rate,
            // Where each keeps its checkpoints may differ.
            checkpoint_dir: Some(folder.join(format!("rank-{rank}"))),
            ..Default::default()
        };
        let controller = Controller::new(ControllerConfig::default()).unwrap();
        let trainer = Trainer::new(config, controller, EventLog::in_memory()).unwrap();
        let mut trainer =
            trainer.with_replica(ReplicaConfig::new(rank, 2).with_timeout(Duration::from_secs(60))).unwrap();
        let model = model.clone().load_record(model.clone().into_record());
        trainer.run(model, AdamConfig::new().init(), &data, &mut ()).map(drop)
    };
    let group = |rank_1_rate: f64, folder: &std::path::Path| {
        std::thread::scope(|scope| {
            let rank_1 = scope.spawn(|| run(1, rank_1_rate, folder));
            [run(0, 1e-3, folder), rank_1.join().unwrap()]
        })
    };
    let (same, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let results = group(1e-3, same.path());
    assert!(results.iter().all(Result::is_ok), "the same settings train: {results:?}");
    for result in group(5e-3, other.path()) {
        match result {
            Err(TrainError::ReplicaSettingsDiffer { rank: 1, setting, here, rank_0 }) => {
                assert_eq!([setting, here, rank_0], ["trainer.learning_rate", "0.005", "0.001"])
            }
            other => panic!("every replica should name rank 1's learning rate, got {other:?}"),
        }
    }
    let checkpoints = |folder: &std::path::Path| std::fs::read_dir(folder.join("rank-0")).unwrap().count();
    assert!(checkpoints(same.path()) > 0, "rank 0 saved its run");
    assert_eq!(checkpoints(other.path()), 0, "nothing saved before the check");
}
