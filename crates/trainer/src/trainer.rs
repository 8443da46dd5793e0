//! The epoch loop.

use crate::resources::{measure, process_rss_bytes, Resources};
use crate::rules::{EpochFacts, RollbackRule};
use crate::signals::Signal;
use crate::{Dataset, ErrorKind, EventLog, Observer, Signals, StageCounts, TrainError};
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use morphogen_checkpoint::{CheckpointDir, Snapshot as CheckpointSnapshot};
use morphogen_contracts::{
    Command, GlobalMetrics, MorphogenError, SeedAddress, SeedEvaluation, Stage, SystemState, TransitionEvent,
};
use morphogen_controller::Controller;
use morphogen_engine::{GraftSignals, SeededModel};
use morphogen_flags::Feature;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tracing::field::Empty;

/// A model that maps a batch of flattened images `[batch, pixels]` to class logits.
pub trait Classifier<B: Backend> {
    /// `[batch, pixels] -> [batch, classes]`.
    fn logits(&self, images: Tensor<B, 2>) -> Tensor<B, 2>;
}

/// How the trainer runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    /// Epochs to train.
    pub epochs: u32,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Seed of the shuffling order.
    pub seed: u64,
    /// A step loss above this many times its moving average is a spike and triggers a rollback.
    pub spike_factor: f32,
    /// Rollbacks allowed before the run stops with an error.
    pub max_rollbacks: u32,
    /// Validation images used to measure each EVALUATING seed's contribution.
    pub eval_samples: usize,
    /// Most EVALUATING seeds measured per epoch (the rest wait for the next epoch).
    pub max_evaluations_per_epoch: usize,
    /// Where to save a checkpoint (model, optimizer, controller state) after every epoch; a
    /// rollback then restores the newest checkpoint that verifies. Without it, rollbacks use an
    /// in-memory copy of the last good epoch.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Check every seeded layer's invariants after every step (legal states, alpha in range,
    /// finite blueprints): slow, for debugging; a violation stops the run with the layer named.
    pub debug: bool,
    /// Conditions checked at every epoch end that roll the run back to its last good state
    /// (and may switch a feature flag off for the rest of the run); none by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback_rules: Vec<RollbackRule>,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 128,
            learning_rate: 1e-3,
            seed: 42,
            spike_factor: 5.0,
            max_rollbacks: 3,
            eval_samples: 2000,
            max_evaluations_per_epoch: 16,
            checkpoint_dir: None,
            debug: false,
            rollback_rules: Vec::new(),
        }
    }
}

impl TrainerConfig {
    /// Checks every value is usable; the error names the field.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let problem = if self.epochs == 0 || self.batch_size == 0 || self.eval_samples == 0 {
            Some("epochs, batch_size and eval_samples must be at least 1")
        } else if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            Some("learning_rate must be a finite value > 0")
        } else if self.spike_factor.is_nan() || self.spike_factor <= 1.0 {
            Some("spike_factor must be > 1")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(MorphogenError::InvalidConfig {
                component: "trainer".into(),
                problem: problem.into(),
                hint: "fix the value in the config file or on the command line".into(),
            });
        }
        self.rollback_rules.iter().enumerate().try_for_each(|(i, rule)| rule.validate(i))
    }
}

/// What a finished run hands back.
pub struct TrainOutcome<M, O> {
    /// The trained (and grown) model.
    pub model: M,
    /// The optimizer, with its state for every parameter the model has.
    pub optim: O,
    /// Metrics of every completed epoch.
    pub history: Vec<GlobalMetrics>,
    /// Rollbacks that happened.
    pub rollbacks: u32,
}

/// The last known-good state: where a rollback returns to.
#[derive(Clone)]
struct Snapshot<M, O> {
    model: M,
    optim: O,
    controller: Controller,
}

/// How an epoch of training ended.
enum EpochEnd<M> {
    /// Every step ran; `errors` counts the errors and fallbacks reported meanwhile.
    Done {
        model: M,
        loss: f32,
        accuracy: f32,
        steps: usize,
        errors: u64,
    },
    Diverged(String),
}

/// Reads the process's resident memory at each epoch end.
type MemoryProbe = Box<dyn FnMut() -> Option<u64> + Send>;

/// The epoch loop: see the crate docs.
pub struct Trainer {
    config: TrainerConfig,
    controller: Controller,
    events: EventLog,
    step: u64,
    first_epoch: u32,
    checkpoints: Option<CheckpointDir>,
    signals: Signals,
    disabled_flags: BTreeSet<Feature>,
    memory: MemoryProbe,
    baseline_rss: Option<u64>,
}

/// Builds the controller's input from a model: every layer's seeds and health (this resets the
/// telemetry windows), the epoch's metrics, the measured evaluations and the parameters grown.
pub fn measure_system<B: Backend, M: SeededModel<B>>(
    model: &M,
    metrics: GlobalMetrics,
    evaluations: Vec<SeedEvaluation>,
) -> SystemState {
    SystemState { metrics, layers: model.layer_states(), evaluations, params_added: model.params_added() }
}

fn scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> f32 {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 scalar")[0]
}

fn batch<B: Backend>(data: &Dataset, indices: &[usize], device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let n = indices.len();
    let images = TensorData::new(data.gather_images(indices), [n, data.pixels()]);
    let labels = TensorData::new(indices.iter().map(|&i| data.labels[i] as i64).collect::<Vec<_>>(), [n]);
    (Tensor::from_data(images, device), Tensor::from_data(labels, device))
}

/// Mean loss and accuracy of `model` on the first `limit` images of `data`.
fn evaluate<B: Backend, M: Classifier<B>>(
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

fn stage_of<B: Backend, M: SeededModel<B>>(model: &M, at: &SeedAddress) -> Option<Stage> {
    let mut stage = None;
    model.visit_seeded(&mut |name, layer| {
        if name == at.layer {
            stage = layer.seed_core().table().get(at.seed).map(|r| r.stage);
        }
    });
    stage
}

impl Trainer {
    /// A trainer with validated config, driving `controller`, logging to `events`.
    pub fn new(config: TrainerConfig, controller: Controller, events: EventLog) -> Result<Self, TrainError> {
        config.validate()?;
        let checkpoints = config.checkpoint_dir.as_ref().map(CheckpointDir::open).transpose()?;
        Ok(Self {
            config,
            controller,
            events,
            step: 0,
            first_epoch: 1,
            checkpoints,
            signals: Signals::default(),
            disabled_flags: BTreeSet::new(),
            memory: Box::new(process_rss_bytes),
            baseline_rss: None,
        })
    }

    /// Reads resident memory from `probe` instead of `/proc/self/status` (for a process that
    /// knows better, such as a device allocator's own count).
    pub fn with_memory_probe(mut self, probe: impl FnMut() -> Option<u64> + Send + 'static) -> Self {
        self.memory = Box::new(probe);
        self
    }

    /// The handle through which other code reports errors and fast-path fallbacks to this
    /// trainer while it runs.
    pub fn signals(&self) -> Signals {
        self.signals.clone()
    }

    /// Feature flags a rollback rule switched off for the rest of this run.
    pub fn disabled_flags(&self) -> &BTreeSet<Feature> {
        &self.disabled_flags
    }

    /// Whether `feature` is on for `id` in `flags` and no rollback rule switched it off in this
    /// run: the check for code guarded by a flag.
    pub fn flag_enabled(&self, flags: &morphogen_flags::Flags, feature: Feature, id: &str) -> bool {
        !self.disabled_flags.contains(&feature) && flags.is_enabled_for(feature, id)
    }

    /// The transitions so far.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The controller (and its state).
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Continues a run from the newest checkpoint in `checkpoint_dir` that verifies: restores
    /// `model` and `optim` in place (a freshly built model is fine), the controller's state and
    /// the step count. [`run`](Self::run) then starts at the next epoch. Returns the epoch the
    /// checkpoint ended.
    pub fn resume<B, M, O>(&mut self, model: &mut M, optim: &mut O) -> Result<u32, TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B>,
        O: Optimizer<M, B>,
    {
        let Some(dir) = &self.checkpoints else {
            return Err(MorphogenError::InvalidConfig {
                component: "trainer".into(),
                problem: "resume needs checkpoint_dir".into(),
                hint: "set trainer.checkpoint_dir to the run's checkpoint folder".into(),
            }
            .into());
        };
        let restored = dir.rollback_with_optimizer(model, optim)?;
        if let Some(Ok(state)) = restored.checkpoint.extra("controller").cloned().map(serde_json::from_value) {
            self.controller = self.controller.clone().with_state(state);
        }
        let progress = restored.checkpoint.progress();
        self.step = progress.step;
        self.first_epoch = progress.epoch as u32 + 1;
        Ok(progress.epoch as u32)
    }

    /// Trains `model` on `train`, validating on `valid`, growing it as the controller decides.
    /// An error that stops the run is also passed to `observer.error` before it is returned.
    pub fn run<B, M, O>(
        &mut self,
        model: M,
        optim: O,
        train: &Dataset,
        valid: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<TrainOutcome<M, O>, TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B> + Classifier<B>,
        M::InnerModule: SeededModel<B::InnerBackend> + Classifier<B::InnerBackend>,
        O: Optimizer<M, B>,
    {
        let span = tracing::info_span!(
            "run",
            first_epoch = i64::from(self.first_epoch),
            epochs = i64::from(self.config.epochs)
        );
        let _run = span.enter();
        let result = self.run_epochs(model, optim, train, valid, observer);
        if let Err(error) = &result {
            observer.error(error.kind(), &error.to_string());
        }
        result
    }

    fn run_epochs<B, M, O>(
        &mut self,
        mut model: M,
        mut optim: O,
        train: &Dataset,
        valid: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<TrainOutcome<M, O>, TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B> + Classifier<B>,
        M::InnerModule: SeededModel<B::InnerBackend> + Classifier<B::InnerBackend>,
        O: Optimizer<M, B>,
    {
        let device = model.devices().into_iter().next().unwrap_or_default();
        let mut good = Snapshot { model: model.clone(), optim: optim.clone(), controller: self.controller.clone() };
        let mut epoch = self.first_epoch;
        if epoch == 1 {
            self.save_checkpoint(&model, &optim, 0, None)?;
        }
        let (mut history, mut rollbacks, mut last_good_val_loss) = (Vec::new(), 0, None);
        while epoch <= self.config.epochs {
            let span = tracing::info_span!(
                "epoch",
                epoch = i64::from(epoch),
                attempt = i64::from(rollbacks),
                train_loss = Empty,
                val_loss = Empty,
                val_accuracy = Empty,
                outcome = Empty
            );
            let _epoch = span.enter();
            // One shuffling stream per epoch, so a resumed run sees the orders an uninterrupted
            // one would.
            let mut rng =
                StdRng::seed_from_u64(self.config.seed ^ u64::from(epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (trained, loss, accuracy, steps, errors) =
                match self.train_epoch(model, &mut optim, train, &mut rng, epoch, &device, observer)? {
                    EpochEnd::Done { model, loss, accuracy, steps, errors } => (model, loss, accuracy, steps, errors),
                    EpochEnd::Diverged(reason) => {
                        span.record("outcome", "diverged");
                        rollbacks += 1;
                        (model, optim) = self.roll_back(&good, &reason, rollbacks, epoch, observer)?;
                        continue;
                    }
                };
            model = trained;
            let inner = model.valid();
            let (val_loss, val_accuracy) = evaluate(&inner, valid, valid.len(), self.config.batch_size, &device);
            span.record("train_loss", loss).record("val_loss", val_loss).record("val_accuracy", val_accuracy);
            let metrics = GlobalMetrics {
                epoch,
                step: self.step,
                train_loss: loss,
                train_accuracy: accuracy,
                val_loss,
                val_accuracy,
            };
            let resources = self.measure_resources(&inner, valid, &device);
            observer.resources_measured(&resources);
            let errors = errors + self.pass_signals(observer);
            let facts = EpochFacts {
                metrics: &metrics,
                last_good_val_loss,
                errors,
                steps,
                resources: &resources,
                baseline_rss: self.baseline_rss,
            };
            if let Some(reason) = self.check_rules(&facts, observer) {
                span.record("outcome", "rollback_rule");
                rollbacks += 1;
                (model, optim) = self.roll_back(&good, &reason, rollbacks, epoch, observer)?;
                continue;
            }
            let evaluations = self.evaluate_seeds(&inner, valid, &device);
            let system = measure_system(&model, metrics, evaluations);
            observer.layers_measured(&system.layers);
            let decisions = {
                let decide = tracing::info_span!(
                    "controller.decide",
                    epoch = i64::from(epoch),
                    commands = Empty,
                    rollback = Empty
                );
                let _decide = decide.enter();
                let decisions = self.controller.step(&system);
                decide.record("commands", decisions.commands.len() as i64);
                decide.record("rollback", decisions.rollback.as_deref().unwrap_or(""));
                decisions
            };
            if let Some(reason) = decisions.rollback {
                span.record("outcome", "controller_rollback");
                rollbacks += 1;
                (model, optim) = self.roll_back(&good, &reason, rollbacks, epoch, observer)?;
                continue;
            }
            for command in &decisions.commands {
                self.apply(&mut model, command, &metrics, observer)?;
            }
            model.end_epoch();
            let counts = StageCounts::of(&model);
            observer.epoch_ended(&metrics, &counts);
            history.push(metrics);
            self.save_checkpoint(&model, &optim, epoch, Some(metrics.val_loss))?;
            span.record("outcome", "done");
            good = Snapshot { model: model.clone(), optim: optim.clone(), controller: self.controller.clone() };
            last_good_val_loss = Some(metrics.val_loss);
            epoch += 1;
        }
        Ok(TrainOutcome { model, optim, history, rollbacks })
    }

    /// Memory, bank bytes and the seeded share of a forward pass over the first validation
    /// batch; the first measurement of the run is the memory baseline.
    fn measure_resources<B, N>(&mut self, inner: &N, valid: &Dataset, device: &B::Device) -> Resources
    where
        B: Backend,
        N: SeededModel<B> + Classifier<B>,
    {
        let _span = tracing::debug_span!("measure_resources").entered();
        let indices: Vec<usize> = (0..self.config.batch_size.min(valid.len())).collect();
        let (images, _) = batch::<B>(valid, &indices, device);
        let rss = (self.memory)();
        self.baseline_rss = self.baseline_rss.or(rss);
        measure(inner, |x| inner.logits(x), images, rss)
    }

    /// The first rollback rule that fires, reported to the observer with the flag it switches
    /// off; its reason is the rollback's.
    fn check_rules(&mut self, facts: &EpochFacts, observer: &mut dyn Observer) -> Option<String> {
        let firing = self.config.rollback_rules.iter().find_map(|rule| rule.check(facts))?;
        tracing::warn!(rule = firing.rule, reason = %firing.reason, "rollback rule fired");
        observer.rule_fired(firing.rule, &firing.reason);
        if let Some(feature) = firing.flag {
            if self.disabled_flags.insert(feature) {
                tracing::warn!(flag = feature.name(), rule = firing.rule, "feature flag disabled for this run");
                observer.flag_disabled(feature.name(), &firing.reason);
            }
        }
        Some(firing.reason)
    }

    /// One pass over `train` in a fresh random order; stops early on a NaN/Inf or spiking loss.
    #[allow(clippy::too_many_arguments)]
    fn train_epoch<B, M, O>(
        &mut self,
        mut model: M,
        optim: &mut O,
        train: &Dataset,
        rng: &mut StdRng,
        epoch: u32,
        device: &B::Device,
        observer: &mut dyn Observer,
    ) -> Result<EpochEnd<M>, TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B> + Classifier<B>,
        O: Optimizer<M, B>,
    {
        self.apply_disabled_kernels(&model);
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(rng);
        let batches: Vec<&[usize]> = order.chunks(self.config.batch_size).collect();
        observer.epoch_started(epoch, batches.len());
        let loss_fn = CrossEntropyLossConfig::new().init(device);
        let mut correct = Tensor::<B, 1, Int>::zeros([1], device);
        let (mut loss_sum, mut average, mut errors) = (0.0f64, None::<f32>, 0);
        for indices in &batches {
            let _step = tracing::debug_span!("step", step = self.step as i64).entered();
            let (x, y) = batch::<B>(train, indices, device);
            let logits = model.logits(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let value = scalar(loss.clone());
            errors += self.pass_signals(observer);
            if let Some((kind, reason)) = self.divergence(value, average) {
                let reason = format!("{reason} at epoch {epoch}, step {}", self.step);
                observer.error(kind, &reason);
                return Ok(EpochEnd::Diverged(reason));
            }
            average = Some(average.map_or(value, |a| 0.95 * a + 0.05 * value));
            loss_sum += value as f64;
            correct = correct + logits.argmax(1).reshape([indices.len()]).equal(y).int().sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(self.config.learning_rate, model, grads);
            model.graft_step(&GraftSignals::new().with_loss(loss.detach()))?;
            self.report_kernel_fallbacks(&model);
            if self.config.debug {
                model.check_invariants()?;
            }
            self.step += 1;
            errors += self.pass_signals(observer);
            observer.step(value);
        }
        let accuracy = scalar(correct.float()) / train.len().max(1) as f32;
        let loss = (loss_sum / batches.len().max(1) as f64) as f32;
        Ok(EpochEnd::Done { model, loss, accuracy, steps: batches.len(), errors })
    }

    /// With the `kernels` flag switched off for this run, every seeded layer takes the tensor
    /// path (again after a rollback restored fresh layers).
    fn apply_disabled_kernels<B: Backend, M: SeededModel<B>>(&self, model: &M) {
        if self.disabled_flags.contains(&Feature::Kernels) {
            let reason = "the 'kernels' flag was switched off for this run by a rollback rule";
            model.visit_seeded(&mut |_, layer| layer.seed_core().fall_back_from_kernels(reason));
        }
    }

    /// Layers whose kernel check failed since the last step become fast-path fallbacks (an
    /// event, a metric, an error for the error-rate rule); training goes on, on the tensor path.
    fn report_kernel_fallbacks<B: Backend, M: SeededModel<B>>(&self, model: &M) {
        model.visit_seeded(&mut |name, layer| {
            if let Some(reason) = layer.seed_core().take_kernel_fallback() {
                tracing::warn!(layer = name, %reason, "seeded layer fell back to the tensor path");
                self.signals.fast_path_fell_back(name, &reason);
            }
        });
    }

    /// Hands what was reported through [`Signals`] to the observer; returns how many.
    fn pass_signals(&self, observer: &mut dyn Observer) -> u64 {
        let signals = self.signals.take();
        for signal in &signals {
            match signal {
                Signal::FastPathFallback { layer, reason } => observer.fast_path_fell_back(layer, reason),
                Signal::Error { kind, message } => observer.error(*kind, message),
            }
        }
        signals.len() as u64
    }

    /// Saves the known-good state when a checkpoint directory is configured.
    fn save_checkpoint<B, M, O>(
        &self,
        model: &M,
        optim: &O,
        epoch: u32,
        val_loss: Option<f32>,
    ) -> Result<(), TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B>,
        O: Optimizer<M, B>,
    {
        let Some(dir) = &self.checkpoints else { return Ok(()) };
        let span = tracing::info_span!(
            "checkpoint.save",
            epoch = i64::from(epoch),
            step = self.step as i64,
            path = Empty,
            bytes = Empty
        );
        let _save = span.enter();
        let controller = serde_json::to_value(self.controller.state()).expect("controller state serialises");
        let mut snapshot = CheckpointSnapshot::of(model)?
            .with_optimizer(optim)?
            .with_progress(epoch as u64, self.step)
            .with_rng(self.config.seed, None)
            .with_extra("controller", controller);
        if let Some(loss) = val_loss {
            snapshot = snapshot.with_metric(loss as f64);
        }
        let saved = dir.save(&snapshot)?;
        span.record("path", saved.path.display().to_string()).record("bytes", saved.bytes as i64);
        Ok(())
    }

    /// Why a step's loss means the run diverged, if it does.
    fn divergence(&self, loss: f32, average: Option<f32>) -> Option<(ErrorKind, String)> {
        if !loss.is_finite() {
            return Some((ErrorKind::NonFiniteLoss, format!("non-finite loss {loss}")));
        }
        let average = average?;
        (loss > self.config.spike_factor * average).then(|| {
            let reason = format!("loss spike {loss:.4} > {} x moving average {average:.4}", self.config.spike_factor);
            (ErrorKind::LossSpike, reason)
        })
    }

    /// Measures every EVALUATING seed (up to the per-epoch cap): validation loss on the first
    /// `eval_samples` images with the seed, and with its alpha forced to 0. One pass for the
    /// baseline, one per measured seed.
    fn evaluate_seeds<B, N>(&self, inner: &N, valid: &Dataset, device: &B::Device) -> Vec<SeedEvaluation>
    where
        B: Backend,
        N: SeededModel<B> + Classifier<B> + Clone,
    {
        let mut targets = Vec::new();
        inner.visit_seeded(&mut |name, layer| {
            for (seed, row) in layer.seed_core().table().iter().enumerate() {
                if row.stage == Stage::Evaluating {
                    targets.push(SeedAddress { layer: name.to_string(), seed });
                }
            }
        });
        targets.truncate(self.config.max_evaluations_per_epoch);
        if targets.is_empty() {
            return Vec::new();
        }
        let (n, bs) = (self.config.eval_samples, self.config.batch_size);
        let (loss_with, accuracy_with) = evaluate(inner, valid, n, bs, device);
        targets
            .into_iter()
            .map(|seed| {
                let mut ablated = inner.clone();
                ablated.visit_seeded_mut(&mut |name, layer| {
                    if name == seed.layer {
                        layer.seed_core_mut().set_ablation(&[seed.seed]).expect("seed is EVALUATING");
                    }
                });
                let (loss_without, accuracy_without) = evaluate(&ablated, valid, n, bs, device);
                SeedEvaluation { seed, loss_with, loss_without, accuracy_with, accuracy_without }
            })
            .collect()
    }

    /// Applies one controller command and logs the transition.
    fn apply<B: Backend, M: SeededModel<B>>(
        &mut self,
        model: &mut M,
        command: &Command,
        metrics: &GlobalMetrics,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let from = stage_of(model, &command.target).unwrap_or(Stage::Dormant);
        let span = tracing::info_span!(
            "command",
            layer = %command.target.layer,
            seed = command.target.seed as i64,
            kind = ?command.kind,
            reason = %command.reason,
            from = from.name(),
            to = Empty
        );
        let _command = span.enter();
        model.apply_command(command)?;
        let to = stage_of(model, &command.target).unwrap_or(from);
        span.record("to", to.name());
        self.log(&command.target, from, to, &command.reason, metrics, observer)
    }

    fn log(
        &mut self,
        at: &SeedAddress,
        from: Stage,
        to: Stage,
        reason: &str,
        metrics: &GlobalMetrics,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let event = TransitionEvent {
            time,
            epoch: metrics.epoch,
            step: self.step,
            layer: at.layer.clone(),
            seed: at.seed,
            from,
            to,
            reason: reason.to_string(),
            metrics: *metrics,
        };
        observer.transition(&event);
        self.events.push(event)
    }

    /// Returns to the last good state; the seeds that were active there are ROLLED_BACK.
    fn roll_back<B, M, O>(
        &mut self,
        good: &Snapshot<M, O>,
        reason: &str,
        rollbacks: u32,
        epoch: u32,
        observer: &mut dyn Observer,
    ) -> Result<(M, O), TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B>,
        O: Optimizer<M, B>,
    {
        let span = tracing::info_span!(
            "rollback",
            epoch = i64::from(epoch),
            rollbacks = i64::from(rollbacks),
            reason,
            source = Empty,
            seeds = Empty
        );
        let _rollback = span.enter();
        if rollbacks > self.config.max_rollbacks {
            return Err(TrainError::Diverged { rollbacks: rollbacks - 1, reason: reason.to_string() });
        }
        let mut model = good.model.clone();
        let mut optim = good.optim.clone();
        self.controller = good.controller.clone();
        match &self.checkpoints {
            Some(dir) => {
                let load = tracing::info_span!("checkpoint.load", path = Empty, skipped = Empty);
                let restored = load.in_scope(|| dir.rollback_with_optimizer(&mut model, &mut optim))?;
                load.record("path", restored.checkpoint.path().display().to_string());
                load.record("skipped", restored.skipped.len() as i64);
                span.record("source", "checkpoint");
                let state = restored.checkpoint.extra("controller").cloned().map(serde_json::from_value);
                if let Some(Ok(state)) = state {
                    self.controller = good.controller.clone().with_state(state);
                }
                let at = restored.checkpoint.path().display().to_string();
                observer.rolled_back(&format!("{reason}; restored checkpoint {at}"));
            }
            None => {
                span.record("source", "memory");
                observer.rolled_back(&format!("{reason}; restored the last good epoch from memory"))
            }
        }
        model.health_reports(); // drop the statistics of the failed attempt
        let mut active = Vec::new();
        model.visit_seeded(&mut |name, layer| {
            for (seed, row) in layer.seed_core().table().iter().enumerate() {
                if row.stage.can_transition_to(Stage::RolledBack) {
                    active.push((SeedAddress { layer: name.to_string(), seed }, row.stage));
                }
            }
        });
        span.record("seeds", active.len() as i64);
        let metrics = GlobalMetrics { epoch, step: self.step, ..Default::default() };
        for (at, from) in active {
            model.apply_command(&Command::advance(at.clone(), Stage::RolledBack, format!("rollback: {reason}")))?;
            self.log(&at, from, Stage::RolledBack, &format!("rollback: {reason}"), &metrics, observer)?;
        }
        Ok((model, optim))
    }
}
