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

pub use server::{serve, MetricsServer, TIMEOUT};

use morphogen_contracts::{GlobalMetrics, LayerState, Stage, TransitionEvent};
use morphogen_trainer::{DecisionSource, ErrorKind, Observer, Resources, StageCounts};
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

/// Labels of the per-layer metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabel {
    layer: String,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// Labels of the rollback rule counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

/// Labels of the disabled-flag gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeatureLabel {
    feature: String,
}

/// Labels of the decision counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

/// Buckets of the seeded-layer overhead ratio: 0.001 .. ~8 (doubling).
fn overhead_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
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
    widenings: Counter,
    widened_features: Counter,
    epoch: Gauge,
    train_loss: Gauge<f64, AtomicU64>,
    val_loss: Gauge<f64, AtomicU64>,
    val_accuracy: Gauge<f64, AtomicU64>,
    alpha: Histogram,
    step_seconds: Histogram,
    errors: Family<KindLabel, Counter>,
    fallbacks: Family<LayerLabel, Counter>,
    rule_firings: Family<RuleLabel, Counter>,
    flags_disabled: Family<FeatureLabel, Gauge>,
    overhead: Family<LayerLabel, Histogram, fn() -> Histogram>,
    overhead_total: Gauge<f64, AtomicU64>,
    resident_bytes: Gauge,
    bank_bytes: Family<LayerLabel, Gauge>,
    decisions: Family<ControllerLabel, Counter>,
    decision_round_trip: Histogram,
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
        let (widenings, widened_features) = (Counter::default(), Counter::default());
        registry.register("morphogen_widenings", "Times the host widened ([trainer.widen])", widenings.clone());
        registry.register(
            "morphogen_widened_features",
            "Features the host's widenings added (d_model, or the ResNet's first-stage channels)",
            widened_features.clone(),
        );
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
        let errors = Family::<KindLabel, Counter>::default();
        let fallbacks = Family::<LayerLabel, Counter>::default();
        let rule_firings = Family::<RuleLabel, Counter>::default();
        let flags_disabled = Family::<FeatureLabel, Gauge>::default();
        let overhead = Family::<LayerLabel, Histogram, fn() -> Histogram>::new_with_constructor(overhead_histogram);
        let overhead_total = Gauge::<f64, AtomicU64>::default();
        let (resident_bytes, bank_bytes) = (Gauge::default(), Family::<LayerLabel, Gauge>::default());
        registry.register(
            "morphogen_errors",
            "Errors by kind (survived, and the one that stopped a run)",
            errors.clone(),
        );
        registry.register(
            "morphogen_fast_path_fallbacks",
            "Forward passes of a seeded layer that left the fast path for the general one",
            fallbacks.clone(),
        );
        registry.register(
            "morphogen_rollback_rule_firings",
            "Automatic rollback rules that fired",
            rule_firings.clone(),
        );
        registry.register(
            "morphogen_flag_disabled",
            "1 for a feature flag a rollback rule switched off for the rest of the run",
            flags_disabled.clone(),
        );
        registry.register(
            "morphogen_seeded_overhead_ratio",
            "Seed work of a seeded layer over the host's share of a timed forward pass, at each epoch end",
            overhead.clone(),
        );
        registry.register(
            "morphogen_seeded_overhead",
            "All seeded layers' work over the host's share of the last timed forward pass",
            overhead_total.clone(),
        );
        registry.register(
            "morphogen_resident_memory_bytes",
            "Resident memory of the training process at the last epoch end",
            resident_bytes.clone(),
        );
        registry.register(
            "morphogen_bank_bytes",
            "Bytes of blueprint bank parameters of a seeded layer on its device",
            bank_bytes.clone(),
        );
        let decisions = Family::<ControllerLabel, Counter>::default();
        // 100 us .. ~13 s
        let decision_round_trip = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "morphogen_decisions",
            "Decision points by who decided: a controller service's name, in-process, or paused (no decision came)",
            decisions.clone(),
        );
        registry.register(
            "morphogen_decision_round_trip_seconds",
            "Bus lag: from publishing a run's state to reading the controller service's decision, seconds",
            decision_round_trip.clone(),
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
                widenings,
                widened_features,
                epoch,
                train_loss,
                val_loss,
                val_accuracy,
                alpha,
                step_seconds,
                errors,
                fallbacks,
                rule_firings,
                flags_disabled,
                overhead,
                overhead_total,
                resident_bytes,
                bank_bytes,
                decisions,
                decision_round_trip,
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

    fn widened(&mut self, _epoch: u32, features: usize) {
        self.inner.widenings.inc();
        self.inner.widened_features.inc_by(features as u64);
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

    fn resources_measured(&mut self, resources: &Resources) {
        let m = &self.inner;
        if let Some(rss) = resources.rss_bytes {
            m.resident_bytes.set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        m.overhead_total.set(resources.overhead_ratio());
        for layer in &resources.layers {
            let key = LayerLabel { layer: layer.layer.clone() };
            m.bank_bytes.get_or_create(&key).set(i64::try_from(layer.bank_bytes).unwrap_or(i64::MAX));
            m.overhead.get_or_create(&key).observe(resources.layer_overhead_ratio(layer));
        }
    }

    fn fast_path_fell_back(&mut self, layer: &str, _reason: &str) {
        self.inner.fallbacks.get_or_create(&LayerLabel { layer: layer.to_string() }).inc();
    }

    fn error(&mut self, kind: ErrorKind, _message: &str) {
        self.inner.errors.get_or_create(&KindLabel { kind: kind.as_str().to_string() }).inc();
    }

    fn rule_fired(&mut self, rule: &str, _reason: &str) {
        self.inner.rule_firings.get_or_create(&RuleLabel { rule: rule.to_string() }).inc();
    }

    fn flag_disabled(&mut self, feature: &str, _reason: &str) {
        self.inner.flags_disabled.get_or_create(&FeatureLabel { feature: feature.to_string() }).set(1);
    }

    fn decided(&mut self, _epoch: u32, source: &DecisionSource) {
        self.inner.decisions.get_or_create(&ControllerLabel { controller: source.controller().to_string() }).inc();
        if let Some(round_trip) = source.round_trip() {
            self.inner.decision_round_trip.observe(round_trip.as_secs_f64());
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

    fn widened(&mut self, epoch: u32, features: usize) {
        self.0.widened(epoch, features);
        self.1.widened(epoch, features);
    }

    fn resources_measured(&mut self, resources: &Resources) {
        self.0.resources_measured(resources);
        self.1.resources_measured(resources);
    }

    fn fast_path_fell_back(&mut self, layer: &str, reason: &str) {
        self.0.fast_path_fell_back(layer, reason);
        self.1.fast_path_fell_back(layer, reason);
    }

    fn error(&mut self, kind: ErrorKind, message: &str) {
        self.0.error(kind, message);
        self.1.error(kind, message);
    }

    fn rule_fired(&mut self, rule: &str, reason: &str) {
        self.0.rule_fired(rule, reason);
        self.1.rule_fired(rule, reason);
    }

    fn flag_disabled(&mut self, feature: &str, reason: &str) {
        self.0.flag_disabled(feature, reason);
        self.1.flag_disabled(feature, reason);
    }

    fn decided(&mut self, epoch: u32, source: &DecisionSource) {
        self.0.decided(epoch, source);
        self.1.decided(epoch, source);
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

    fn widened(&mut self, epoch: u32, features: usize) {
        self.0.widened(epoch, features);
    }

    fn resources_measured(&mut self, resources: &Resources) {
        self.0.resources_measured(resources);
    }

    fn fast_path_fell_back(&mut self, layer: &str, reason: &str) {
        self.0.fast_path_fell_back(layer, reason);
    }

    fn error(&mut self, kind: ErrorKind, message: &str) {
        self.0.error(kind, message);
    }

    fn rule_fired(&mut self, rule: &str, reason: &str) {
        self.0.rule_fired(rule, reason);
    }

    fn flag_disabled(&mut self, feature: &str, reason: &str) {
        self.0.flag_disabled(feature, reason);
    }

    fn decided(&mut self, epoch: u32, source: &DecisionSource) {
        self.0.decided(epoch, source);
    }
}
