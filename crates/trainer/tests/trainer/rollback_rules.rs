//! Automatic rollback rules on real Fashion-MNIST training: each rule fires on its scripted
//! condition, rolls the run back and switches its flag off; none fires on a healthy run.

use crate::common::{data, seeded_through_inner, B};
use burn::optim::AdamConfig;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_controller::{Controller, ControllerConfig};
use morphogen_flags::Feature;
use morphogen_trainer::{
    ErrorKind, EventLog, ImageBatch, ImageClassification, Mlp, ModelConfig, Observer, Resources, RollbackRule, Signals,
    StepOutput, TaskModel, TrainError, Trainer, TrainerConfig,
};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// What the scripted fault does to the model while it is armed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Logits become NaN.
    Nan,
    /// Logits are negated and scaled: confidently wrong.
    Wrong,
    /// Every forward pass reports a fast-path fallback.
    Fallback,
    /// The memory probe reads three times the normal value.
    Memory,
    /// Nothing is done: the rule must fire (or not) on its own measurement.
    None,
}

/// Shared between the model, the memory probe and the observer.
#[derive(Debug)]
struct Script {
    fault: Fault,
    /// The epoch whose first attempt is faulty.
    epoch: u32,
    /// Whether the fault is acting now.
    armed: AtomicBool,
    /// The epoch running and its steps so far.
    current: AtomicU32,
    steps: AtomicUsize,
    /// Resident memory the probe reports.
    memory: AtomicU64,
}

/// The preset MLP with a fault it applies while the script is armed.
#[derive(burn::module::Module, Debug)]
struct Scripted<B: Backend> {
    inner: Mlp<B>,
    #[module(skip)]
    script: Arc<Script>,
    #[module(skip)]
    signals: Signals,
}

seeded_through_inner!(Scripted);

impl<B: Backend> TaskModel<B, ImageClassification> for Scripted<B> {
    fn step(&self, batch: ImageBatch<B>) -> StepOutput<B> {
        StepOutput::classification(self.faulty_logits(batch.images), batch.labels)
    }
}

impl<B: Backend> Scripted<B> {
    /// The inner model's logits, with the script's fault when armed.
    fn faulty_logits(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let logits = self.inner.logits(images);
        if !self.script.armed.load(Ordering::SeqCst) {
            return logits;
        }
        match self.script.fault {
            Fault::Nan => logits * f32::NAN,
            Fault::Wrong => logits * -10.0,
            Fault::Fallback => {
                self.signals.fast_path_fell_back("fc1", "scripted fallback");
                logits
            }
            Fault::Memory | Fault::None => logits,
        }
    }
}

/// Arms the script and records what the trainer reports.
#[derive(Default)]
struct Seen {
    script: Option<Arc<Script>>,
    rules: Vec<(String, String)>,
    flags: Vec<String>,
    rollbacks: Vec<String>,
    fallbacks: usize,
    errors: Vec<ErrorKind>,
    resources: Vec<Resources>,
    fired: bool,
}

impl Observer for Seen {
    fn epoch_started(&mut self, epoch: u32, _steps: usize) {
        let script = self.script.as_ref().unwrap();
        script.current.store(epoch, Ordering::SeqCst);
        script.steps.store(0, Ordering::SeqCst);
        // Fallbacks happen while training; the other faults only after the last step.
        let arm = script.fault == Fault::Fallback && epoch == script.epoch && !self.fired;
        script.armed.store(arm, Ordering::SeqCst);
    }

    fn step(&mut self, _loss: f32) {
        let script = self.script.as_ref().unwrap();
        let done = script.steps.fetch_add(1, Ordering::SeqCst) + 1;
        // 640 images in batches of 64: the tenth step is an epoch's last.
        let last = done == 10 && script.current.load(Ordering::SeqCst) == script.epoch;
        if last && script.fault == Fault::Fallback {
            script.armed.store(false, Ordering::SeqCst);
        } else if last && !self.fired {
            script.armed.store(true, Ordering::SeqCst);
            if script.fault == Fault::Memory {
                script.memory.store(300 << 20, Ordering::SeqCst);
            }
        }
    }

    fn rolled_back(&mut self, reason: &str) {
        let script = self.script.as_ref().unwrap();
        script.armed.store(false, Ordering::SeqCst);
        script.memory.store(100 << 20, Ordering::SeqCst);
        self.fired = true;
        self.rollbacks.push(reason.to_string());
    }

    fn resources_measured(&mut self, resources: &Resources) {
        self.resources.push(resources.clone());
    }

    fn fast_path_fell_back(&mut self, layer: &str, _reason: &str) {
        assert_eq!(layer, "fc1");
        self.fallbacks += 1;
    }

    fn error(&mut self, kind: ErrorKind, _message: &str) {
        self.errors.push(kind);
    }

    fn rule_fired(&mut self, rule: &str, reason: &str) {
        self.rules.push((rule.to_string(), reason.to_string()));
    }

    fn flag_disabled(&mut self, feature: &str, _reason: &str) {
        self.flags.push(feature.to_string());
    }
}

/// Trains three epochs with `rules`, the fault acting in epoch 2's first attempt.
fn run(fault: Fault, rules: Vec<RollbackRule>) -> (Result<u32, TrainError>, Seen, Vec<Feature>) {
    let controller =
        Controller::new(ControllerConfig { patience: 0, max_germinations_per_epoch: 2, ..Default::default() }).unwrap();
    let (outcome, seen, flags, _) = run_with(controller, fault, rules);
    (outcome, seen, flags)
}

/// [`run`] with `controller`, also handing back the transitions.
fn run_with(
    controller: Controller,
    fault: Fault,
    rules: Vec<RollbackRule>,
) -> (Result<u32, TrainError>, Seen, Vec<Feature>, Vec<morphogen_contracts::TransitionEvent>) {
    let data = data(640, 200);
    let device = Default::default();
    B::seed(&device, 11);
    let script = Arc::new(Script {
        fault,
        epoch: 2,
        armed: AtomicBool::new(false),
        current: AtomicU32::new(0),
        steps: AtomicUsize::new(0),
        memory: AtomicU64::new(100 << 20),
    });
    // A high spike factor and rollback budget keep the step-level guard out of the way.
    let config = TrainerConfig {
        epochs: 3,
        batch_size: 64,
        eval_samples: 200,
        spike_factor: 1000.0,
        max_rollbacks: 2,
        rollback_rules: rules,
        ..Default::default()
    };
    let probe = script.clone();
    let mut trainer = Trainer::new(config, controller, EventLog::in_memory())
        .unwrap()
        .with_memory_probe(move || Some(probe.memory.load(Ordering::SeqCst)));
    let inner: Mlp<B> =
        ModelConfig { hidden: 16, num_seeds: 4, ..Default::default() }.mlp(&data.task, &device).unwrap();
    let model = Scripted { inner, script: script.clone(), signals: trainer.signals() };
    let mut seen = Seen { script: Some(script), ..Default::default() };
    let outcome = trainer.run(model, AdamConfig::new().init(), &data, &mut seen);
    let flags = trainer.disabled_flags().iter().copied().collect();
    (outcome.map(|o| o.rollbacks), seen, flags, trainer.events().events().to_vec())
}

/// Asserts `rule` fired once, in epoch 2, the run rolled back once and finished, and `kernels`
/// was switched off.
fn assert_fired_once(fault: Fault, rule: RollbackRule) {
    let name = rule.name();
    let (outcome, seen, flags) = run(fault, vec![rule]);
    assert_eq!(outcome.unwrap(), 1, "one rollback: {:?}", seen.rollbacks);
    assert_eq!(seen.rules.len(), 1, "{:?}", seen.rules);
    assert_eq!(seen.rules[0].0, name);
    assert!(seen.rollbacks[0].contains(&format!("rollback rule {name}")), "{:?}", seen.rollbacks);
    assert!(seen.rollbacks[0].contains("from memory"), "the last good epoch was restored: {:?}", seen.rollbacks);
    assert_eq!(seen.flags, ["kernels"]);
    assert_eq!(flags, [Feature::Kernels]);
    // Epochs 1, 2 (fired), 2 again, 3.
    assert_eq!(seen.resources.len(), 4);
}

#[test]
fn non_finite_validation_rolls_back_and_disables_the_flag() {
    assert_fired_once(Fault::Nan, RollbackRule::NonFinite { flag: Some("kernels".into()) });
}

#[test]
fn a_validation_loss_spike_rolls_back_and_disables_the_flag() {
    assert_fired_once(Fault::Wrong, RollbackRule::LossSpike { factor: 3.0, flag: Some("kernels".into()) });
}

#[test]
fn fast_path_fallbacks_over_the_error_rate_roll_back_and_disable_the_flag() {
    let rule = RollbackRule::ErrorRate { max: 0.5, flag: Some("kernels".into()) };
    assert_fired_once(Fault::Fallback, rule.clone());
    let (_, seen, _) = run(Fault::Fallback, vec![rule]);
    // One fallback a training forward pass in epoch 2's first attempt: ten steps.
    assert_eq!(seen.fallbacks, 10);
}

#[test]
fn a_rule_naming_neural_controller_leaves_growth_to_the_heuristic_from_then_on() {
    let policy = std::sync::Arc::new(morphogen_controller::NeuralPolicy::untrained(16, 1));
    let config = ControllerConfig { max_germinations_per_epoch: 2, ..Default::default() };
    let controller = Controller::new(config).unwrap().with_policy(policy);
    let rule = RollbackRule::NonFinite { flag: Some("neural_controller".into()) };
    let (outcome, seen, flags, events) = run_with(controller, Fault::Nan, vec![rule]);
    assert_eq!(outcome.unwrap(), 1, "one rollback: {:?}", seen.rollbacks);
    assert_eq!(flags, [Feature::NeuralController]);
    let grown = |epoch: u32| -> Vec<&str> {
        events
            .iter()
            .filter(|e| e.epoch == epoch && e.to == morphogen_contracts::Stage::Germinated)
            .map(|e| e.reason.as_str())
            .collect()
    };
    assert!(!grown(1).is_empty() && grown(1).iter().all(|r| r.starts_with("neural policy")), "{:?}", grown(1));
    let later = [grown(2), grown(3)].concat();
    assert!(!later.is_empty() && later.iter().all(|r| !r.starts_with("neural")), "{later:?}");
}

#[test]
fn memory_growth_rolls_back_and_disables_the_flag() {
    assert_fired_once(Fault::Memory, RollbackRule::MemoryGrowth { factor: 2.0, flag: Some("kernels".into()) });
}

#[test]
fn seeded_overhead_above_the_ceiling_rolls_back_until_the_budget_is_spent() {
    // The real measurement: any seeded-layer work is above a ceiling of 1e-9 x the host, so the
    // rule fires at every epoch end until the rollbacks run out.
    let rule = RollbackRule::Overhead { max_ratio: 1e-9, flag: Some("kernels".into()) };
    let (outcome, seen, flags) = run(Fault::None, vec![rule]);
    match outcome {
        Err(TrainError::Diverged { rollbacks: 2, reason }) => assert!(reason.contains("overhead"), "{reason}"),
        other => panic!("expected the rollback budget to run out, got {other:?}"),
    }
    assert_eq!(seen.rollbacks.len(), 2);
    assert!(seen.rules.iter().all(|(rule, _)| rule == "overhead"));
    assert_eq!(seen.flags, ["kernels"], "the flag is switched off once");
    assert_eq!(flags, [Feature::Kernels]);
    assert_eq!(seen.errors.last(), Some(&ErrorKind::Diverged), "the stopping error reaches the observer");
}

#[test]
fn healthy_runs_fire_no_rule_and_measure_the_seeded_layers() {
    let rules = vec![
        RollbackRule::NonFinite { flag: Some("kernels".into()) },
        RollbackRule::LossSpike { factor: 3.0, flag: None },
        RollbackRule::ErrorRate { max: 0.0, flag: Some("kernels".into()) },
        RollbackRule::Overhead { max_ratio: 1000.0, flag: None },
        RollbackRule::MemoryGrowth { factor: 2.0, flag: Some("extended_lifecycle".into()) },
    ];
    let (outcome, seen, flags) = run(Fault::None, rules);
    assert_eq!(outcome.unwrap(), 0);
    assert!(seen.rules.is_empty() && seen.flags.is_empty() && flags.is_empty(), "{:?}", seen.rules);
    assert_eq!(seen.resources.len(), 3);
    for resources in &seen.resources {
        assert!(resources.forward_seconds > 0.0);
        let names: Vec<_> = resources.layers.iter().map(|l| l.layer.as_str()).collect();
        assert_eq!(names, ["fc1", "fc2"]);
        for layer in &resources.layers {
            assert!(layer.seeded_seconds > 0.0, "the engine's seeded_layer span was timed: {layer:?}");
            assert!(layer.seeded_seconds < resources.forward_seconds);
            assert_eq!(layer.state_bytes, 4 * 32);
        }
    }
    let last = seen.resources.last().unwrap();
    assert!(last.layers.iter().any(|l| l.bank_bytes > 0), "germinated seeds hold bank rows: {last:?}");
    assert_eq!(last.rss_bytes, Some(100 << 20), "the memory probe is read");
}

#[test]
fn real_resident_memory_is_read_on_linux() {
    let rss = morphogen_trainer::process_rss_bytes().expect("/proc/self/status has VmRSS");
    assert!(rss > 1 << 20, "{rss}");
}

#[test]
fn bad_rules_are_rejected_naming_the_field() {
    let cases = [
        (RollbackRule::LossSpike { factor: 1.0, flag: None }, "trainer.rollback_rules[0].factor"),
        (RollbackRule::ErrorRate { max: f64::NAN, flag: None }, "trainer.rollback_rules[0].max"),
        (RollbackRule::Overhead { max_ratio: 0.0, flag: None }, "trainer.rollback_rules[0].max_ratio"),
        (RollbackRule::MemoryGrowth { factor: 0.5, flag: None }, "trainer.rollback_rules[0].factor"),
        (RollbackRule::NonFinite { flag: Some("warp_drive".into()) }, "trainer.rollback_rules[0].flag"),
    ];
    for (rule, field) in cases {
        let config = TrainerConfig { rollback_rules: vec![rule], ..Default::default() };
        match config.validate() {
            Err(morphogen_contracts::MorphogenError::InvalidConfig { component, .. }) => assert_eq!(component, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}
