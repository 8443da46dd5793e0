//! Prometheus metrics for morphogen training runs.
//!
//! [`MetricsObserver`] is a trainer [`Observer`]: it turns the trainer's progress calls into
//! metrics of a `prometheus-client` registry. [`serve`] answers `GET /metrics` with the text
//! exposition of that registry from a background thread (plain `std::net`, no async runtime).
//! [`Both`] feeds two observers at once (e.g. the CLI's progress output and the metrics).
//!
//! Label cardinality is bounded: labels are layer names, stage names and from/to stage pairs,
//! never seed ids (per-seed data belongs in the event log). See `docs/metrics.md`.
#![warn(missing_docs)]

mod server;

pub use server::{serve, MetricsServer};

use morphogen_contracts::{GlobalMetrics, LayerState, Stage, TransitionEvent};
use morphogen_trainer::{Observer, StageCounts};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Labels of the per-layer seed gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerStage {
    layer: String,
    stage: String,
}

/// Labels of the stage gauge over all layers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

/// Labels of the transition counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FromTo {
    from: String,
    to: String,
}

/// The label value of a stage: its name in lower case (`dormant`, `training`, ...).
pub fn stage_label(stage: Stage) -> String {
    stage.name().to_lowercase()
}

struct Metrics {
    registry: Registry,
    seeds: Family<LayerStage, Gauge>,
    seeds_by_stage: Family<StageLabel, Gauge>,
    transitions: Family<FromTo, Counter>,
    germinations: Counter,
    fossilizations: Counter,
    culls: Counter,
    rollbacks: Counter,
    steps: Counter,
    epoch: Gauge,
    train_loss: Gauge<f64, AtomicU64>,
    val_loss: Gauge<f64, AtomicU64>,
    val_accuracy: Gauge<f64, AtomicU64>,
    alpha: Histogram,
    step_seconds: Histogram,
    /// When the last step (or the epoch) started, for the step latency.
    last: Mutex<Option<Instant>>,
}

/// The trainer observer that keeps the Prometheus registry. Cheap to clone: clones share the
/// registry, so one clone can be served while another is handed to the trainer.
#[derive(Clone)]
pub struct MetricsObserver {
    inner: Arc<Metrics>,
}

impl Default for MetricsObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MetricsObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsObserver").finish_non_exhaustive()
    }
}

impl MetricsObserver {
    /// A fresh registry with every morphogen metric registered (all at zero).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let seeds = Family::<LayerStage, Gauge>::default();
        let seeds_by_stage = Family::<StageLabel, Gauge>::default();
        let transitions = Family::<FromTo, Counter>::default();
        let (germinations, fossilizations, culls, rollbacks, steps) =
            (Counter::default(), Counter::default(), Counter::default(), Counter::default(), Counter::default());
        let epoch = Gauge::default();
        let (train_loss, val_loss, val_accuracy) = (
            Gauge::<f64, AtomicU64>::default(),
            Gauge::<f64, AtomicU64>::default(),
            Gauge::<f64, AtomicU64>::default(),
        );
        let alpha = Histogram::new([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        // 100 us .. ~3.3 s
        let step_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "morphogen_seeds",
            "Seeds per seeded layer that left DORMANT, by stage (from the transitions)",
            seeds.clone(),
        );
        registry.register(
            "morphogen_seeds_by_stage",
            "Seeds over all layers by stage at the last epoch end",
            seeds_by_stage.clone(),
        );
        registry.register("morphogen_transitions", "Lifecycle transitions by from and to stage", transitions.clone());
        registry.register("morphogen_germinations", "Seeds germinated", germinations.clone());
        registry.register("morphogen_fossilizations", "Seeds fossilized", fossilizations.clone());
        registry.register("morphogen_culls", "Seeds culled", culls.clone());
        registry.register("morphogen_rollbacks", "Rollbacks to the last good state", rollbacks.clone());
        registry.register("morphogen_steps", "Optimizer steps", steps.clone());
        registry.register("morphogen_epoch", "The epoch last finished", epoch.clone());
        registry.register("morphogen_train_loss", "Mean training loss of the last finished epoch", train_loss.clone());
        registry.register("morphogen_val_loss", "Validation loss of the last finished epoch", val_loss.clone());
        registry.register(
            "morphogen_val_accuracy",
            "Validation accuracy of the last finished epoch",
            val_accuracy.clone(),
        );
        registry.register("morphogen_seed_alpha", "Blending alpha of active seeds, as observed", alpha.clone());
        registry.register(
            "morphogen_step_seconds",
            "Wall time of one optimizer step (forward, backward, update, graft step), seconds",
            step_seconds.clone(),
        );
        Self {
            inner: Arc::new(Metrics {
                registry,
                seeds,
                seeds_by_stage,
                transitions,
                germinations,
                fossilizations,
                culls,
                rollbacks,
                steps,
                epoch,
                train_loss,
                val_loss,
                val_accuracy,
                alpha,
                step_seconds,
                last: Mutex::new(None),
            }),
        }
    }

    /// The registry in the text exposition format (OpenMetrics text, `# EOF` at the end).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).expect("writing to a String");
        out
    }

    /// Records alphas of active seeds by hand, for callers with their own loop; the trainer
    /// reports them through `Observer::layers_measured` at every epoch end.
    pub fn observe_alphas(&self, alphas: &[f32]) {
        alphas.iter().filter(|a| a.is_finite()).for_each(|a| self.inner.alpha.observe(*a as f64));
    }

    /// Records a step that took `seconds` (the observer times steps itself; this is for callers
    /// that measure their own).
    pub fn observe_step_seconds(&self, seconds: f64) {
        self.inner.step_seconds.observe(seconds);
    }

    fn now(&self) -> Option<Instant> {
        self.inner.last.lock().map(|mut last| last.replace(Instant::now())).unwrap_or(None)
    }
}

impl Observer for MetricsObserver {
    fn epoch_started(&mut self, _epoch: u32, _steps: usize) {
        self.now();
    }

    fn step(&mut self, _loss: f32) {
        let m = &self.inner;
        m.steps.inc();
        if let Some(start) = self.now() {
            m.step_seconds.observe(start.elapsed().as_secs_f64());
        }
    }

    fn epoch_ended(&mut self, metrics: &GlobalMetrics, seeds: &StageCounts) {
        let m = &self.inner;
        m.epoch.set(metrics.epoch as i64);
        m.train_loss.set(metrics.train_loss as f64);
        m.val_loss.set(metrics.val_loss as f64);
        m.val_accuracy.set(metrics.val_accuracy as f64);
        for stage in Stage::ALL {
            m.seeds_by_stage.get_or_create(&StageLabel { stage: stage_label(stage) }).set(seeds.get(stage) as i64);
        }
        // The next epoch's first step is timed from its epoch_started, not from here.
        if let Ok(mut last) = m.last.lock() {
            *last = None;
        }
    }

    fn layers_measured(&mut self, layers: &[LayerState]) {
        let m = &self.inner;
        for layer in layers {
            let count = |stage: Stage| layer.seeds.iter().filter(|s| s.stage == stage).count() as i64;
            for stage in Stage::ALL {
                let key = LayerStage { layer: layer.layer.clone(), stage: stage_label(stage) };
                m.seeds.get_or_create(&key).set(count(stage));
            }
            let active = layer.seeds.iter().filter(|s| s.stage.holds_blueprint() && s.stage != Stage::Germinated);
            self.observe_alphas(&active.map(|s| s.alpha).collect::<Vec<_>>());
        }
    }

    fn transition(&mut self, e: &TransitionEvent) {
        let m = &self.inner;
        m.transitions.get_or_create(&FromTo { from: stage_label(e.from), to: stage_label(e.to) }).inc();
        if e.from != Stage::Dormant {
            m.seeds.get_or_create(&LayerStage { layer: e.layer.clone(), stage: stage_label(e.from) }).dec();
        }
        if e.to != Stage::Dormant {
            m.seeds.get_or_create(&LayerStage { layer: e.layer.clone(), stage: stage_label(e.to) }).inc();
        }
        if e.from == e.to {
            return;
        }
        match e.to {
            Stage::Germinated => m.germinations.inc(),
            Stage::Fossilized => m.fossilizations.inc(),
            Stage::Culled => m.culls.inc(),
            _ => 0,
        };
    }

    fn rolled_back(&mut self, _reason: &str) {
        self.inner.rollbacks.inc();
        if let Ok(mut last) = self.inner.last.lock() {
            *last = None;
        }
    }
}

/// Two observers fed with every call, `0` first: `Both(&mut progress, &mut metrics)`.
pub struct Both<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Both<A, B> {
    fn epoch_started(&mut self, epoch: u32, steps: usize) {
        self.0.epoch_started(epoch, steps);
        self.1.epoch_started(epoch, steps);
    }

    fn step(&mut self, loss: f32) {
        self.0.step(loss);
        self.1.step(loss);
    }

    fn epoch_ended(&mut self, metrics: &GlobalMetrics, seeds: &StageCounts) {
        self.0.epoch_ended(metrics, seeds);
        self.1.epoch_ended(metrics, seeds);
    }

    fn layers_measured(&mut self, layers: &[LayerState]) {
        self.0.layers_measured(layers);
        self.1.layers_measured(layers);
    }

    fn transition(&mut self, event: &TransitionEvent) {
        self.0.transition(event);
        self.1.transition(event);
    }

    fn rolled_back(&mut self, reason: &str) {
        self.0.rolled_back(reason);
        self.1.rolled_back(reason);
    }
}

/// A mutable borrow of an observer (e.g. `&mut dyn Observer`) inside [`Both`].
pub struct Borrowed<'a, O: Observer + ?Sized>(pub &'a mut O);

impl<O: Observer + ?Sized> Observer for Borrowed<'_, O> {
    fn epoch_started(&mut self, epoch: u32, steps: usize) {
        self.0.epoch_started(epoch, steps);
    }

    fn step(&mut self, loss: f32) {
        self.0.step(loss);
    }

    fn epoch_ended(&mut self, metrics: &GlobalMetrics, seeds: &StageCounts) {
        self.0.epoch_ended(metrics, seeds);
    }

    fn layers_measured(&mut self, layers: &[LayerState]) {
        self.0.layers_measured(layers);
    }

    fn transition(&mut self, event: &TransitionEvent) {
        self.0.transition(event);
    }

    fn rolled_back(&mut self, reason: &str) {
        self.0.rolled_back(reason);
    }
}
