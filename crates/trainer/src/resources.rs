//! What a run costs, measured at each epoch end: resident memory, blueprint bank bytes per
//! layer, and the seeded layers' share of a forward pass.
//!
//! The share is timed through the engine's `seeded_layer` tracing span (one per
//! `SeedCore::apply`, at trace level): one validation batch goes through the model twice (a
//! warm-up, then a timed pass) under a scoped subscriber that sums the time spent inside those
//! spans per layer. The rest of the pass is the host's work (host layers, activations, loss-free
//! head). On backends that run asynchronously the split is host-side dispatch time; the total is
//! synchronised by reading the logits back.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::SeededModel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The engine's span around one seeded layer's forward work (`SeedCore::apply`).
const SEEDED_LAYER_SPAN: &str = "seeded_layer";

/// One seeded layer's costs at an epoch end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerResources {
    /// The layer's name.
    pub layer: String,
    /// Bytes of blueprint bank parameters on the layer's device.
    pub bank_bytes: usize,
    /// Bytes of seed-state columns on the layer's device.
    pub state_bytes: usize,
    /// Seconds spent in the layer's seed work during the timed forward pass.
    pub seeded_seconds: f64,
}

/// A run's costs at an epoch end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Resident set size of this process (`VmRSS` of `/proc/self/status`), when readable.
    pub rss_bytes: Option<u64>,
    /// Seconds of the timed forward pass over one validation batch, seeds included.
    pub forward_seconds: f64,
    /// Every seeded layer.
    pub layers: Vec<LayerResources>,
}

impl Resources {
    /// Seconds of the forward pass outside the seeds' work: the host's share.
    pub fn host_seconds(&self) -> f64 {
        (self.forward_seconds - self.layers.iter().map(|l| l.seeded_seconds).sum::<f64>()).max(f64::MIN_POSITIVE)
    }

    /// All seeded layers' work over the host's, for the whole model (0 with no seeded work).
    pub fn overhead_ratio(&self) -> f64 {
        self.layers.iter().map(|l| l.seeded_seconds).sum::<f64>() / self.host_seconds()
    }

    /// One layer's seed work over the host's share of the pass.
    pub fn layer_overhead_ratio(&self, layer: &LayerResources) -> f64 {
        layer.seeded_seconds / self.host_seconds()
    }
}

/// Resident memory of this process in bytes, from `/proc/self/status` (Linux); `None` elsewhere.
pub fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Measures `model`'s costs: bank and state bytes per layer, the timed `forward` pass of `input`
/// (none without input) and `rss_bytes` as given.
pub(crate) fn measure<B, M, X: Clone>(
    model: &M,
    forward: impl Fn(X) -> Tensor<B, 1>,
    input: Option<X>,
    rss_bytes: Option<u64>,
) -> Resources
where
    B: Backend,
    M: SeededModel<B>,
{
    let mut layers = Vec::new();
    model.visit_seeded(&mut |name, layer| {
        let core = layer.seed_core();
        layers.push(LayerResources {
            layer: name.to_string(),
            bank_bytes: core.bank_bytes(),
            state_bytes: core.state_bytes(),
            seeded_seconds: 0.0,
        });
    });
    let Some(input) = input else {
        return Resources { rss_bytes, forward_seconds: 0.0, layers };
    };
    // Warm-up: first-use allocations and caches stay out of the timing.
    let _ = forward(input.clone()).into_data();
    let timer = SeedTimer::default();
    let start = Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(timer.clone()), || {
        let _ = forward(input).into_data();
    });
    let forward_seconds = start.elapsed().as_secs_f64();
    let spent = timer.spent.lock().map(|s| s.clone()).unwrap_or_default();
    for layer in &mut layers {
        layer.seeded_seconds = spent.get(&layer.layer).map_or(0.0, Duration::as_secs_f64);
    }
    Resources { rss_bytes, forward_seconds, layers }
}

/// Sums the time inside `seeded_layer` spans per layer name.
#[derive(Clone, Default)]
struct SeedTimer {
    spent: Arc<Mutex<BTreeMap<String, Duration>>>,
}

/// When a `seeded_layer` span opened, and for which layer.
struct Opened {
    layer: String,
    at: Instant,
}

/// Reads the `layer` field of a span.
struct LayerField(String);

impl Visit for LayerField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "layer" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "layer" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SeedTimer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SEEDED_LAYER_SPAN {
            return;
        }
        let mut layer = LayerField(String::new());
        attrs.record(&mut layer);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened { layer: layer.0, at: Instant::now() });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(opened) = extensions.get::<Opened>() else { return };
        if let Ok(mut spent) = self.spent.lock() {
            *spent.entry(opened.layer.clone()).or_default() += opened.at.elapsed();
        }
    }
}
