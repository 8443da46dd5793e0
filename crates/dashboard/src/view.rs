//! What the views show, computed from a [`Run`]: the JSON of the API and of the report, and the
//! data the terminal view draws.

use crate::layers::compact;
use crate::{layer_groups, EpochLine, LayerColumns, LayerGroup, Run};
use morphogen_contracts::{Stage, TransitionEvent};
use serde::{Deserialize, Serialize};

/// Rows of a health heatmap at most: seeds are averaged in this many contiguous bins.
pub const HEATMAP_BINS: usize = 64;

/// Everything the dashboard page shows of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunView {
    /// The run folder's name.
    pub name: String,
    /// The run's [`Run::version`] when this was built.
    pub version: u64,
    /// What is missing, skipped or unfinished.
    pub messages: Vec<String>,
    /// Malformed lines skipped: metrics, events, layers.
    pub skipped: [usize; 3],
    /// One entry per finished epoch (with who decided at its end).
    pub metrics: Vec<EpochLine>,
    /// Every transition.
    pub events: Vec<EventRow>,
    /// The seed lattice: every layer's seeds as they are now.
    pub layers: Vec<LatticeLayer>,
    /// The layers grouped by parent path (`blocks.3`), in model order.
    #[serde(default)]
    pub groups: Vec<LayerGroup>,
    /// Health over epochs, one per layer with recorded state.
    pub heatmaps: Vec<Heatmap>,
    /// Report only: the lifecycle of every seed that ever moved (the live page asks the server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycles: Vec<SeedLifecycle>,
}

/// One transition, as the event log shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// Epoch at which it happened.
    pub epoch: u32,
    /// Optimizer step.
    pub step: u64,
    /// Layer name.
    pub layer: String,
    /// Seed id.
    pub seed: usize,
    /// Stage before.
    pub from: Stage,
    /// Stage after.
    pub to: Stage,
    /// The controller's (or trainer's) reason.
    pub reason: String,
    /// The controller service that ordered it over the bus, if one did.
    #[serde(default)]
    pub decided_by: Option<String>,
}

impl From<&TransitionEvent> for EventRow {
    fn from(e: &TransitionEvent) -> Self {
        let TransitionEvent { epoch, step, layer, seed, from, to, reason, decided_by, .. } = e.clone();
        Self { epoch, step, layer, seed, from, to, reason, decided_by }
    }
}

/// One layer of the seed lattice: the latest recorded state with the transitions logged since
/// applied to its stages.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatticeLayer {
    /// The columns; `stage` is the current stage.
    #[serde(flatten)]
    pub columns: LayerColumns,
    /// Epoch of the recorded state the other columns are from (none: rebuilt from events).
    pub measured_epoch: Option<u32>,
    /// Seeds per stage now, by stage code.
    pub counts: [usize; 11],
}

/// Per-seed health of one layer over epochs, seeds averaged in bins: value
/// `[epoch_index * bins + bin]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heatmap {
    /// Layer name.
    pub layer: String,
    /// The epochs (columns).
    pub epochs: Vec<u32>,
    /// Rows.
    pub bins: usize,
    /// Seeds in the layer (bin `b` holds seeds `b * seeds / bins .. (b + 1) * seeds / bins`).
    pub seeds: usize,
    /// Chunk variance.
    #[serde(with = "compact")]
    pub variance: Vec<f32>,
    /// Dead-node ratio.
    #[serde(with = "compact")]
    pub dead_ratio: Vec<f32>,
    /// Correlation.
    #[serde(with = "compact")]
    pub correlation: Vec<f32>,
}

/// One seed's whole story: its transitions with reasons and its state at every epoch end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedLifecycle {
    /// Layer name.
    pub layer: String,
    /// Seed id.
    pub seed: usize,
    /// Its transitions, in order.
    pub events: Vec<EventRow>,
    /// Its recorded state per epoch.
    pub history: Vec<SeedEpoch>,
}

/// One seed at one epoch end (health `None` where not finite).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedEpoch {
    /// Epoch.
    pub epoch: u32,
    /// Stage when measured.
    pub stage: Stage,
    /// Blueprint held.
    pub blueprint: Option<String>,
    /// Blend factor.
    pub alpha: Option<f32>,
    /// Chunk mean.
    pub mean: Option<f32>,
    /// Chunk variance.
    pub variance: Option<f32>,
    /// Dead-node ratio.
    pub dead_ratio: Option<f32>,
    /// Correlation.
    pub correlation: Option<f32>,
    /// Blueprint RMS.
    pub blueprint_rms: Option<f32>,
}

/// Which events to list: every given field must match (`stage` matches `from` or `to`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EventFilter {
    /// Layer name.
    pub layer: Option<String>,
    /// Seed id.
    pub seed: Option<usize>,
    /// Stage entered or left.
    pub stage: Option<Stage>,
}

impl EventFilter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &EventRow) -> bool {
        self.layer.as_ref().is_none_or(|l| *l == event.layer)
            && self.seed.is_none_or(|s| s == event.seed)
            && self.stage.is_none_or(|s| s == event.from || s == event.to)
    }
}

impl RunView {
    /// The live view of `run` (lifecycles are fetched one at a time).
    pub fn live(run: &Run) -> Self {
        let layers = lattice(run);
        Self {
            name: run.name().to_string(),
            version: run.version(),
            messages: run.messages(),
            skipped: run.skipped(),
            metrics: run.metrics().to_vec(),
            events: run.events().iter().map(EventRow::from).collect(),
            groups: layer_groups(&layers),
            layers,
            heatmaps: heatmaps(run),
            lifecycles: Vec::new(),
        }
    }

    /// The report's view: the live one plus the lifecycle of every seed that ever moved.
    pub fn report(run: &Run) -> Self {
        let mut view = Self::live(run);
        let mut moved: Vec<(String, usize)> = view.events.iter().map(|e| (e.layer.clone(), e.seed)).collect();
        moved.sort();
        moved.dedup();
        view.lifecycles = moved.iter().filter_map(|(layer, seed)| lifecycle(run, layer, *seed)).collect();
        view
    }

    /// The last finished epoch (0 before the first).
    pub fn epoch(&self) -> u32 {
        self.metrics.last().map_or(0, |m| m.metrics.epoch)
    }
}

/// The seed lattice of `run`: each layer's latest recorded state, its stages moved on by the
/// transitions logged since; layers seen only in events are rebuilt from them.
pub fn lattice(run: &Run) -> Vec<LatticeLayer> {
    let latest = run.layers().last();
    let mut layers: Vec<LatticeLayer> = latest.map_or_else(Vec::new, |l| {
        l.layers
            .iter()
            .map(|c| LatticeLayer { columns: c.clone(), measured_epoch: Some(l.epoch), counts: [0; 11] })
            .collect()
    });
    let since = latest.map_or(0, |l| l.epoch);
    for event in run.events() {
        if !layers.iter().any(|l| l.columns.layer == event.layer) {
            layers.push(LatticeLayer {
                columns: LayerColumns { layer: event.layer.clone(), ..Default::default() },
                measured_epoch: None,
                counts: [0; 11],
            });
        }
    }
    for layer in &mut layers {
        if layer.measured_epoch.is_none() {
            let seeds = run.events().iter().filter(|e| e.layer == layer.columns.layer).map(|e| e.seed + 1).max();
            grow(&mut layer.columns, seeds.unwrap_or(0));
        }
        let from = if layer.measured_epoch.is_some() { since } else { 0 };
        for e in run.events().iter().filter(|e| e.epoch >= from && e.layer == layer.columns.layer) {
            if let Some(stage) = layer.columns.stage.get_mut(e.seed) {
                *stage = e.to.code();
            }
        }
        layer.columns.stage.iter().for_each(|c| layer.counts[usize::from(*c).min(10)] += 1);
    }
    layers
}

/// Empty columns for `seeds` seeds (all DORMANT, health unknown).
fn grow(columns: &mut LayerColumns, seeds: usize) {
    columns.stage = vec![0; seeds];
    columns.blueprint = vec![0; seeds];
    columns.alpha = vec![0.0; seeds];
    columns.epochs_in_stage = vec![0; seeds];
    columns.failures = vec![0; seeds];
    for health in [
        &mut columns.mean,
        &mut columns.variance,
        &mut columns.dead_ratio,
        &mut columns.correlation,
        &mut columns.blueprint_rms,
    ] {
        *health = vec![f32::NAN; seeds];
    }
}

/// The health heatmaps of every layer with recorded state.
pub fn heatmaps(run: &Run) -> Vec<Heatmap> {
    let Some(last) = run.layers().last() else { return Vec::new() };
    last.layers.iter().map(|layer| heatmap(run, &layer.layer, layer.seeds())).collect()
}

fn heatmap(run: &Run, layer: &str, seeds: usize) -> Heatmap {
    let bins = seeds.clamp(1, HEATMAP_BINS);
    let mut map = Heatmap {
        layer: layer.to_string(),
        epochs: Vec::new(),
        bins,
        seeds,
        variance: Vec::new(),
        dead_ratio: Vec::new(),
        correlation: Vec::new(),
    };
    for epoch in run.layers() {
        let Some(columns) = epoch.layers.iter().find(|c| c.layer == layer && c.seeds() == seeds) else { continue };
        map.epochs.push(epoch.epoch);
        map.variance.extend(binned(&columns.variance, bins));
        map.dead_ratio.extend(binned(&columns.dead_ratio, bins));
        map.correlation.extend(binned(&columns.correlation, bins));
    }
    map
}

/// The mean of the finite values of each of `bins` contiguous slices of `values` (NaN if none).
fn binned(values: &[f32], bins: usize) -> impl Iterator<Item = f32> + '_ {
    (0..bins).map(move |b| {
        let slice = &values[b * values.len() / bins..(b + 1) * values.len() / bins];
        let (sum, n) =
            slice.iter().filter(|v| v.is_finite()).fold((0.0f64, 0u32), |(s, n), v| (s + f64::from(*v), n + 1));
        if n == 0 {
            f32::NAN
        } else {
            (sum / f64::from(n)) as f32
        }
    })
}

/// The lifecycle of `seed` of `layer`, or `None` when the run has no such seed.
pub fn lifecycle(run: &Run, layer: &str, seed: usize) -> Option<SeedLifecycle> {
    let events: Vec<EventRow> =
        run.events().iter().filter(|e| e.layer == layer && e.seed == seed).map(EventRow::from).collect();
    let history: Vec<SeedEpoch> = run
        .layers()
        .iter()
        .filter_map(|epoch| epoch.layers.iter().find(|c| c.layer == layer).map(|c| (epoch.epoch, c)))
        .filter(|(_, c)| seed < c.seeds())
        .map(|(epoch, c)| seed_epoch(epoch, c, seed))
        .collect();
    (!events.is_empty() || !history.is_empty()).then(|| SeedLifecycle {
        layer: layer.to_string(),
        seed,
        events,
        history,
    })
}

fn seed_epoch(epoch: u32, c: &LayerColumns, seed: usize) -> SeedEpoch {
    let finite = |v: &[f32]| Some(v[seed]).filter(|v| v.is_finite());
    SeedEpoch {
        epoch,
        stage: c.stage_of(seed),
        blueprint: c.blueprint_of(seed).map(str::to_string),
        alpha: finite(&c.alpha),
        mean: finite(&c.mean),
        variance: finite(&c.variance),
        dead_ratio: finite(&c.dead_ratio),
        correlation: finite(&c.correlation),
        blueprint_rms: finite(&c.blueprint_rms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DemoRun;

    fn demo(seeds: usize, epochs: u32) -> (tempfile::TempDir, Run) {
        let dir = tempfile::tempdir().unwrap();
        DemoRun::new(2, seeds, epochs).write(dir.path()).unwrap();
        let run = Run::open(dir.path()).unwrap();
        (dir, run)
    }

    #[test]
    fn the_lattice_is_the_last_state_moved_on_by_later_events() {
        let (_dir, run) = demo(200, 5);
        let layers = lattice(&run);
        assert_eq!(layers.len(), 2);
        let fc1 = &layers[0];
        assert_eq!((fc1.measured_epoch, fc1.columns.seeds()), (Some(5), 200));
        assert_eq!(fc1.counts.iter().sum::<usize>(), 200);
        let measured = &run.layers()[4].layers[0];
        for e in run.events().iter().filter(|e| e.epoch == 5 && e.layer == "fc1") {
            assert_eq!(fc1.columns.stage_of(e.seed), e.to, "seed {} moved after the measurement", e.seed);
            assert_eq!(measured.stage_of(e.seed), e.from);
        }
    }

    #[test]
    fn without_layers_jsonl_the_lattice_is_rebuilt_from_events() {
        let (dir, _) = demo(50, 3);
        std::fs::remove_file(dir.path().join("layers.jsonl")).unwrap();
        let run = Run::open(dir.path()).unwrap();
        let layers = lattice(&run);
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].measured_epoch, None);
        let last = run.events().iter().rfind(|e| e.layer == "fc2").unwrap();
        assert_eq!(layers[1].columns.stage_of(last.seed), last.to);
        assert!(run.messages().iter().any(|m| m.contains("rebuilt from events.jsonl")));
        assert!(heatmaps(&run).is_empty());
    }

    #[test]
    fn heatmaps_bin_large_layers_and_keep_small_ones_whole() {
        let (_dir, run) = demo(1000, 4);
        let map = &heatmaps(&run)[0];
        assert_eq!((map.bins, map.seeds, map.epochs.as_slice()), (HEATMAP_BINS, 1000, &[1, 2, 3, 4][..]));
        assert_eq!(map.variance.len(), 4 * HEATMAP_BINS);
        let first = &run.layers()[0].layers[0].variance[..1000 / HEATMAP_BINS];
        let mean = first.iter().sum::<f32>() / first.len() as f32;
        assert!((map.variance[0] - mean).abs() < 1e-3, "{} vs {mean}", map.variance[0]);
        let (_dir, small) = demo(8, 2);
        assert_eq!(heatmaps(&small)[0].bins, 8);
    }

    #[test]
    fn a_lifecycle_has_every_transition_and_every_epoch() {
        let (_dir, run) = demo(100, 6);
        let e = &run.events()[0];
        let story = lifecycle(&run, &e.layer, e.seed).unwrap();
        assert_eq!(story.history.len(), 6);
        assert!(story.events.iter().all(|x| x.layer == e.layer && x.seed == e.seed));
        assert_eq!(story.events.len(), run.events().iter().filter(|x| x.layer == e.layer && x.seed == e.seed).count());
        assert!(lifecycle(&run, "fc1", 100).is_none() && lifecycle(&run, "nope", 0).is_none());
        let report = RunView::report(&run);
        assert!(report.lifecycles.iter().any(|l| l.layer == e.layer && l.seed == e.seed));
    }

    #[test]
    fn filters_match_layer_seed_and_either_stage() {
        let row = EventRow {
            epoch: 1,
            step: 1,
            layer: "fc1".into(),
            seed: 3,
            from: Stage::Training,
            to: Stage::Grafting,
            reason: String::new(),
            decided_by: None,
        };
        let f = |layer: Option<&str>, seed, stage| EventFilter { layer: layer.map(Into::into), seed, stage };
        assert!(f(None, None, None).matches(&row));
        assert!(f(Some("fc1"), Some(3), Some(Stage::Training)).matches(&row));
        assert!(f(None, None, Some(Stage::Grafting)).matches(&row));
        assert!(!f(Some("fc2"), None, None).matches(&row));
        assert!(!f(None, Some(4), None).matches(&row));
        assert!(!f(None, None, Some(Stage::Culled)).matches(&row));
    }
}
