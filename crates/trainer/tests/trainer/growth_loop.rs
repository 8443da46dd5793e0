//! The growth loop end to end on real Fashion-MNIST (Debian's `dataset-fashion-mnist`).

use crate::common::{data, pooled_data, seeded_mlp, seeded_through_inner, B};
use burn::optim::{AdamConfig, Optimizer};
use burn::tensor::backend::Backend;
use morphogen_contracts::{Stage, TransitionEvent};
use morphogen_controller::{Controller, ControllerConfig, GrowthTrigger};
use morphogen_engine::SeededModel;
use morphogen_trainer::{
    fashion_mnist, EventLog, ImageBatch, ImageClassification, LrSchedule, Mlp, ModelConfig, StepOutput, TaskModel,
    TrainError, Trainer, TrainerConfig,
};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn eager_controller() -> Controller {
    Controller::new(ControllerConfig {
        patience: 0,
        max_germinations_per_epoch: 3,
        max_active_per_layer: 3,
        max_active_total: 6,
        min_contribution: 0.005,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn a_full_lifecycle_fossilizes_and_culls_through_the_trainer() {
    let data = data(3000, 1000);
    let seed: u64 = std::env::var("LIFECYCLE_SEED").map_or(7, |s| s.parse().expect("a number"));
    let model = seeded_mlp(&data.task, seed, ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() });
    // Twelve epochs give the first seeds (germinated at epoch 1) time to pass all gates, and
    // their successors time to fail some: a seed needs about seven epochs from germination to
    // its last gate.
    let config = TrainerConfig {
        epochs: 12,
        batch_size: 64,
        learning_rate: 2e-3,
        eval_samples: 1000,
        seed,
        ..Default::default()
    };
    let mut trainer = Trainer::new(config, eager_controller(), EventLog::in_memory()).unwrap();
    let out = trainer.run(model, AdamConfig::new().init(), &data, &mut ()).unwrap();
    let events = trainer.events().events();
    let reached = |stage: Stage| events.iter().filter(|e| e.to == stage).count();
    for e in events {
        eprintln!("epoch {} {}/{} {} -> {}: {}", e.epoch, e.layer, e.seed, e.from, e.to, e.reason);
    }
    assert!(reached(Stage::Fossilized) >= 1, "no seed fossilized");
    assert!(reached(Stage::Culled) >= 1, "no seed culled");
    for e in events {
        assert!(e.from.can_transition_to(e.to), "illegal logged transition {e:?}");
        assert!(!e.reason.is_empty());
    }
    let last = out.history.last().unwrap();
    assert!(last.val_accuracy > 0.6, "it learned: {last:?}");
    assert_eq!(out.history.len(), 12);
    assert!(out.model.params_added() > 0);
    // The optimizer kept state for the host weights across every growth step.
    assert!(out.optim.to_record().contains_key(&out.model.fc1.host.weight.id));
}

/// A run of 10 epochs of 8 steps on 2,000 images (batches of 50: a pass is 40 steps, so five
/// epoch ends and growth decisions come in each pass), growing every epoch with `strategy`.
fn short_epochs_run(strategy: &str) -> (Vec<u64>, Vec<TransitionEvent>, f32) {
    let data = pooled_data(2000, 400, 2);
    let config = ModelConfig { hidden: 16, num_seeds: 4, graft_ramp_steps: 4, ..Default::default() };
    let model = seeded_mlp(&data.task, 3, config);
    let config = TrainerConfig {
        epochs: 10,
        batch_size: 50,
        steps_per_epoch: Some(8),
        learning_rate: 2e-3,
        eval_samples: 400,
        seed: 3,
        ..Default::default()
    };
    let controller = Controller::new(ControllerConfig {
        trigger: GrowthTrigger::EveryEpoch,
        max_active_per_layer: 4,
        max_germinations_per_epoch: 4,
        strategy: strategy.into(),
        ..Default::default()
    })
    .unwrap();
    let mut trainer = Trainer::new(config, controller, EventLog::in_memory()).unwrap();
    let out =
        trainer.run(model, AdamConfig::new().init(), &data, &mut ()).unwrap_or_else(|e| panic!("{strategy}: {e}"));
    let steps = out.history.iter().map(|m| m.step).collect();
    (steps, trainer.events().events().to_vec(), out.history.last().unwrap().val_accuracy)
}

#[test]
fn epochs_of_n_steps_run_the_lifecycle_inside_one_pass() {
    let (steps, events, accuracy) = short_epochs_run("fixed_ramp");
    assert_eq!(steps, (1..=10).map(|e| e * 8).collect::<Vec<_>>(), "an epoch is 8 steps");
    let first = |stage: Stage| events.iter().filter(|e| e.to == stage).map(|e| e.step).min();
    assert!(first(Stage::Germinated) == Some(8), "growth from the first epoch end: {:?}", first(Stage::Germinated));
    // 80 steps are two passes: with epochs of a whole pass, two epochs could not get a seed
    // from germination to its last gate.
    assert!(first(Stage::Fossilized).or(first(Stage::Culled)).is_some(), "no seed reached its last gate");
    assert!(accuracy > 0.5, "it learned: {accuracy}");
}

#[test]
fn every_grafting_strategy_ramps_seeds_in_through_the_trainer() {
    for strategy in ["performance_linked", "drift_controlled", "grad_norm_gated"] {
        let (_, events, _) = short_epochs_run(strategy);
        let ramped = events.iter().filter(|e| e.to == Stage::Stabilization).count();
        assert!(ramped > 0, "{strategy}: no seed's alpha reached 1");
    }
}

/// An MLP whose logits turn NaN on one chosen forward call.
#[derive(burn::module::Module, Debug)]
struct Poisoned<B: Backend> {
    inner: Mlp<B>,
    #[module(skip)]
    calls: Arc<AtomicUsize>,
    #[module(skip)]
    poison_at: usize,
}

seeded_through_inner!(Poisoned);

impl<B: Backend> TaskModel<B, ImageClassification> for Poisoned<B> {
    fn step(&self, batch: ImageBatch<B>) -> StepOutput<B> {
        let logits = self.inner.logits(batch.images);
        match self.calls.fetch_add(1, Ordering::SeqCst) == self.poison_at {
            true => StepOutput::classification(logits * f32::NAN, batch.labels),
            false => StepOutput::classification(logits, batch.labels),
        }
    }
}

/// Records what the trainer says about rollbacks.
#[derive(Default)]
struct Rollbacks(Vec<String>);

impl morphogen_trainer::Observer for Rollbacks {
    fn rolled_back(&mut self, reason: &str) {
        self.0.push(reason.to_string());
    }
}

/// Trains a model whose loss turns NaN once, in the third epoch, and returns what happened.
fn poisoned_run(
    checkpoint_dir: Option<std::path::PathBuf>,
) -> (Vec<String>, Vec<morphogen_contracts::TransitionEvent>) {
    let data = data(640, 200);
    let device = Default::default();
    let inner: Mlp<B> =
        ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() }.mlp(&data.task, &device).unwrap();
    // An epoch is 10 training calls and 4 validation calls (validation copies share the
    // counter), so call 32 is in the third epoch's training, when the seeds germinated after
    // epoch 1 are TRAINING.
    let model = Poisoned { inner, calls: Arc::new(AtomicUsize::new(0)), poison_at: 32 };
    let config = TrainerConfig { epochs: 4, batch_size: 64, eval_samples: 200, checkpoint_dir, ..Default::default() };
    let mut trainer = Trainer::new(config, eager_controller(), EventLog::in_memory()).unwrap();
    let mut seen = Rollbacks::default();
    let out = trainer.run(model, AdamConfig::new().init(), &data, &mut seen).unwrap();
    assert_eq!(out.rollbacks, 1);
    assert_eq!(out.history.len(), 4, "the failed epoch was retried");
    assert!(out.history.iter().all(|m| m.train_loss.is_finite()));
    let rolled: Vec<_> = trainer.events().events().iter().filter(|e| e.to == Stage::RolledBack).cloned().collect();
    assert!(!rolled.is_empty(), "seeds active at the failure are marked ROLLED_BACK");
    assert!(rolled.iter().all(|e| e.reason.contains("non-finite loss")), "{rolled:?}");
    (seen.0, rolled)
}

#[test]
fn a_nan_loss_rolls_back_to_the_last_good_epoch() {
    let (said, _) = poisoned_run(None);
    assert!(said[0].contains("from memory"), "{said:?}");
}

#[test]
fn a_nan_loss_rolls_back_to_the_newest_checkpoint_on_disk() {
    let dir = std::env::temp_dir().join(format!("morphogen-rollback-{}", std::process::id()));
    let (said, _) = poisoned_run(Some(dir.clone()));
    assert!(said[0].contains("restored checkpoint") && said[0].contains(dir.to_str().unwrap()), "{said:?}");
    let kept = morphogen_checkpoint::CheckpointDir::open(&dir).unwrap().list().unwrap();
    assert!(!kept.is_empty(), "a checkpoint per epoch, thinned by retention");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn repeated_divergence_stops_with_a_clear_error() {
    let data = data(256, 64);
    let device = Default::default();
    let mlp: Mlp<B> = ModelConfig::default().mlp(&data.task, &device).unwrap();
    let config =
        TrainerConfig { epochs: 2, batch_size: 64, learning_rate: 1e30, max_rollbacks: 1, ..Default::default() };
    let mut trainer = Trainer::new(config, eager_controller(), EventLog::in_memory()).unwrap();
    match trainer.run(mlp, AdamConfig::new().init(), &data, &mut ()) {
        Err(TrainError::Diverged { rollbacks: 1, reason }) => assert!(!reason.is_empty()),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a learning rate of 1e30 must diverge"),
    }
}

#[test]
fn debug_mode_checks_invariants_every_step() {
    let data = data(256, 64);
    let device = Default::default();
    let model: Mlp<B> = ModelConfig::default().mlp(&data.task, &device).unwrap();
    let config = TrainerConfig { epochs: 3, batch_size: 64, eval_samples: 64, debug: true, ..Default::default() };
    let mut trainer = Trainer::new(config, eager_controller(), EventLog::in_memory()).unwrap();
    let out = trainer.run(model, AdamConfig::new().init(), &data, &mut ()).unwrap();
    assert_eq!(out.history.len(), 3);
    assert!(!trainer.events().events().is_empty(), "seeds moved while every step was checked");
}

#[test]
fn missing_data_says_how_to_install_it() {
    let err = fashion_mnist(Path::new("/nonexistent")).unwrap_err();
    assert!(err.to_string().contains("apt-get install dataset-fashion-mnist"), "{err}");
}

#[test]
fn bad_trainer_config_is_rejected_before_training() {
    let err =
        Trainer::new(TrainerConfig { batch_size: 0, ..Default::default() }, eager_controller(), EventLog::in_memory());
    assert!(err.is_err());
}

#[test]
fn the_learning_rate_schedule_reaches_the_optimizer() {
    let data = pooled_data(600, 100, 4);
    let train = |schedule: LrSchedule, min_learning_rate: f64| {
        let model = seeded_mlp(&data.task, 5, ModelConfig { hidden: 8, num_seeds: 2, ..Default::default() });
        let config = TrainerConfig {
            epochs: 2,
            batch_size: 100,
            learning_rate: 1e-2,
            lr_schedule: schedule,
            min_learning_rate,
            seed: 5,
            ..Default::default()
        };
        let controller = Controller::new(ControllerConfig { max_germinations_per_epoch: 0, ..Default::default() });
        let mut trainer = Trainer::new(config, controller.unwrap(), EventLog::in_memory()).unwrap();
        let out = trainer.run(model, AdamConfig::new().init(), &data, &mut ()).unwrap();
        out.model.fc1.host.weight.val().into_data().to_vec::<f32>().unwrap()
    };
    let constant = train(LrSchedule::Constant, 0.0);
    assert_eq!(train(LrSchedule::Cosine, 1e-2), constant, "a cosine from 0.01 to 0.01 is the constant rate");
    assert_ne!(train(LrSchedule::Cosine, 0.0), constant, "a decaying rate takes other steps");
}
