//! `layers.jsonl`: every seeded layer's per-seed state at each epoch end, one line an epoch,
//! stored as columns (one array per field) so 10,000 seeds a layer stay compact.

use morphogen_contracts::{LayerState, Stage};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `layers.jsonl`: the state of every seeded layer as measured at the end of `epoch`
/// (before the controller's decisions of that epoch, which are in `events.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLayers {
    /// Epochs completed (1 after the first), as in `metrics.jsonl`.
    pub epoch: u32,
    /// Optimizer steps completed at that epoch's end, as in `metrics.jsonl` (0 in logs written
    /// before it was recorded).
    #[serde(default)]
    pub step: u64,
    /// Every seeded layer, in model order.
    pub layers: Vec<LayerColumns>,
}

/// One layer's seeds as columns: entry `i` of every array is seed `i`.
///
/// Floats are rounded to 4 significant digits; a non-finite value is written as `null` and read
/// back as NaN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerColumns {
    /// Layer name.
    pub layer: String,
    /// `Linear` or `Conv2d`.
    pub host: String,
    /// Output features (Conv2d: channels) of the layer; seed chunks split them in order.
    pub features: usize,
    /// Samples in the telemetry window the health columns cover.
    pub samples: u64,
    /// Blueprint names the `blueprint` column refers to.
    pub blueprints: Vec<String>,
    /// Stage codes (0-10, see `Stage`).
    pub stage: Vec<u8>,
    /// 0: no blueprint; `i + 1`: `blueprints[i]`.
    pub blueprint: Vec<u16>,
    /// Blend factor.
    #[serde(with = "compact")]
    pub alpha: Vec<f32>,
    /// Epochs spent in the current stage.
    pub epochs_in_stage: Vec<u32>,
    /// Culls and failures so far.
    pub failures: Vec<u32>,
    /// Mean of the host output over the seed's chunk.
    #[serde(with = "compact")]
    pub mean: Vec<f32>,
    /// Variance of the host output over the chunk.
    #[serde(with = "compact")]
    pub variance: Vec<f32>,
    /// Share of the chunk's features that never exceeded zero.
    #[serde(with = "compact")]
    pub dead_ratio: Vec<f32>,
    /// Mean correlation between the chunk's features.
    #[serde(with = "compact")]
    pub correlation: Vec<f32>,
    /// RMS of the blueprint's contribution.
    #[serde(with = "compact")]
    pub blueprint_rms: Vec<f32>,
}

impl EpochLayers {
    /// The columns of `layers` at the end of `epoch`, after `step` optimizer steps.
    pub fn new(epoch: u32, step: u64, layers: &[LayerState]) -> Self {
        Self { epoch, step, layers: layers.iter().map(LayerColumns::from_state).collect() }
    }
}

impl LayerColumns {
    /// The columns of one layer's state; seeds missing from the health report get NaN health.
    pub fn from_state(state: &LayerState) -> Self {
        let n = state.seeds.len();
        let mut blueprints: Vec<String> = Vec::new();
        let mut columns = LayerColumns {
            layer: state.layer.clone(),
            host: state.host.clone(),
            features: state.seeds.iter().map(|s| s.chunk.end).max().unwrap_or(0),
            samples: state.health.samples,
            mean: vec![f32::NAN; n],
            variance: vec![f32::NAN; n],
            dead_ratio: vec![f32::NAN; n],
            correlation: vec![f32::NAN; n],
            blueprint_rms: vec![f32::NAN; n],
            ..Default::default()
        };
        for seed in &state.seeds {
            columns.stage.push(seed.stage.code());
            columns.blueprint.push(seed.blueprint.as_deref().map_or(0, |name| intern(&mut blueprints, name)));
            columns.alpha.push(seed.alpha);
            columns.epochs_in_stage.push(seed.epochs_in_stage);
            columns.failures.push(seed.failures);
        }
        for h in state.health.seeds.iter().filter(|h| h.seed < n) {
            columns.mean[h.seed] = h.mean;
            columns.variance[h.seed] = h.variance;
            columns.dead_ratio[h.seed] = h.dead_ratio;
            columns.correlation[h.seed] = h.correlation;
            columns.blueprint_rms[h.seed] = h.blueprint_rms;
        }
        columns.blueprints = blueprints;
        columns
    }

    /// Seeds in the layer.
    pub fn seeds(&self) -> usize {
        self.stage.len()
    }

    /// The stage of `seed` (DORMANT for an unknown code).
    pub fn stage_of(&self, seed: usize) -> Stage {
        self.stage.get(seed).and_then(|c| Stage::from_code(*c)).unwrap_or(Stage::Dormant)
    }

    /// The blueprint name `seed` holds, if any.
    pub fn blueprint_of(&self, seed: usize) -> Option<&str> {
        let index = usize::from(*self.blueprint.get(seed)?);
        index.checked_sub(1).and_then(|i| self.blueprints.get(i)).map(String::as_str)
    }

    /// What is inconsistent in these columns (lengths, codes), if anything.
    pub fn problem(&self) -> Option<String> {
        let n = self.seeds();
        let lengths = [
            self.blueprint.len(),
            self.alpha.len(),
            self.epochs_in_stage.len(),
            self.failures.len(),
            self.mean.len(),
            self.variance.len(),
            self.dead_ratio.len(),
            self.correlation.len(),
            self.blueprint_rms.len(),
        ];
        if lengths.iter().any(|len| *len != n) {
            return Some(format!("layer {}: columns of different lengths", self.layer));
        }
        if self.stage.iter().any(|c| Stage::from_code(*c).is_none()) {
            return Some(format!("layer {}: a stage code above 10", self.layer));
        }
        let bad_blueprint = self.blueprint.iter().any(|b| usize::from(*b) > self.blueprints.len());
        bad_blueprint.then(|| format!("layer {}: a blueprint index with no name", self.layer))
    }
}

/// The 1-based index of `name` in `names`, added if new.
fn intern(names: &mut Vec<String>, name: &str) -> u16 {
    let index = names.iter().position(|n| n == name).unwrap_or_else(|| {
        names.push(name.to_string());
        names.len() - 1
    });
    u16::try_from(index + 1).unwrap_or(u16::MAX)
}

/// Appends one [`EpochLayers`] line to `layers.jsonl` per completed epoch: feed it
/// [`LayersLog::measured`] from a trainer observer's `layers_measured` and
/// [`LayersLog::epoch_ended`] from its `epoch_ended`, so an epoch that is rolled back and
/// retried is written once, with the state of the run that counted.
#[derive(Debug)]
pub struct LayersLog {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    pending: Option<Vec<LayerColumns>>,
}

impl LayersLog {
    /// Opens `path`: truncated, or appended to when `append` (a resumed run).
    pub fn open(path: &Path, append: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(path)?;
        Ok(Self { path: path.into(), file: std::io::BufWriter::new(file), pending: None })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the layers as measured at an epoch end, until the epoch is known to count.
    pub fn measured(&mut self, layers: &[LayerState]) {
        self.pending = Some(layers.iter().map(LayerColumns::from_state).collect());
    }

    /// Writes the kept layers as the line of `epoch`, which ended after `step` optimizer steps
    /// (nothing when none were measured).
    pub fn epoch_ended(&mut self, epoch: u32, step: u64) -> std::io::Result<()> {
        let Some(layers) = self.pending.take() else { return Ok(()) };
        let line = serde_json::to_string(&EpochLayers { epoch, step, layers }).map_err(std::io::Error::other)?;
        writeln!(self.file, "{line}")?;
        self.file.flush()
    }
}

/// Serde for float columns: 4 significant digits, non-finite as `null` (read back as NaN).
pub(crate) mod compact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(|v| v.is_finite().then(|| round(*v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        let values = Vec::<Option<f32>>::deserialize(deserializer)?;
        Ok(values.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
    }

    /// `value` to 4 significant digits.
    pub fn round(value: f32) -> f32 {
        if value == 0.0 {
            return 0.0;
        }
        let digits = 3 - f64::from(value.abs()).log10().floor() as i32;
        let scale = 10f64.powi(digits.abs());
        let v = f64::from(value);
        let rounded = if digits >= 0 { (v * scale).round() / scale } else { (v / scale).round() * scale };
        rounded as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morphogen_contracts::{LayerHealthReport, SeedHealth, SeedInfo};

    pub(crate) fn state(seeds: usize) -> LayerState {
        let info = |seed: usize| SeedInfo {
            seed,
            stage: if seed.is_multiple_of(3) { Stage::Training } else { Stage::Dormant },
            blueprint: (seed.is_multiple_of(3)).then(|| "residual_mlp".to_string()),
            strategy: None,
            alpha: 0.123456,
            epochs_in_stage: 2,
            embargo_epochs_left: 0,
            failures: 1,
            chunk: seed * 2..seed * 2 + 2,
        };
        let health = |seed: usize| SeedHealth {
            seed,
            stage: Stage::Dormant,
            alpha: 0.0,
            mean: -0.0123456,
            variance: if seed == 1 { f32::NAN } else { 12345.678 },
            dead_ratio: 0.5,
            correlation: 0.25,
            blueprint_rms: 0.0,
        };
        LayerState {
            layer: "fc1".into(),
            host: "Linear".into(),
            seeds: (0..seeds).map(info).collect(),
            health: LayerHealthReport { layer: "fc1".into(), samples: 10, seeds: (0..seeds).map(health).collect() },
            blueprint_params: Default::default(),
        }
    }

    #[test]
    fn columns_round_trip_with_rounding_and_nan() {
        let line = serde_json::to_string(&EpochLayers::new(3, 30, &[state(4)])).unwrap();
        assert!(line.contains("\"alpha\":[0.1235,"), "{line}");
        assert!(line.contains("12350.0") && line.contains("null"), "{line}");
        let back: EpochLayers = serde_json::from_str(&line).unwrap();
        let layer = &back.layers[0];
        assert_eq!((back.epoch, layer.seeds(), layer.features), (3, 4, 8));
        assert_eq!(layer.stage_of(3), Stage::Training);
        assert_eq!(layer.blueprint_of(3), Some("residual_mlp"));
        assert_eq!(layer.blueprint_of(1), None);
        assert!(layer.variance[1].is_nan());
        assert_eq!(layer.mean[0], -0.01235);
        assert_eq!(layer.problem(), None);
    }

    #[test]
    fn inconsistent_columns_are_named() {
        let mut layer = LayerColumns::from_state(&state(3));
        layer.alpha.pop();
        assert!(layer.problem().unwrap().contains("lengths"));
        let mut layer = LayerColumns::from_state(&state(3));
        layer.stage[0] = 11;
        assert!(layer.problem().unwrap().contains("stage code"));
    }

    #[test]
    fn log_writes_only_epochs_that_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.jsonl");
        let mut log = LayersLog::open(&path, false).unwrap();
        log.measured(&[state(2)]);
        log.measured(&[state(2)]); // a rolled-back epoch measured again
        log.epoch_ended(1, 10).unwrap();
        log.epoch_ended(2, 20).unwrap(); // nothing measured: nothing written
        drop(log);
        let mut log = LayersLog::open(&path, true).unwrap();
        log.measured(&[state(2)]);
        log.epoch_ended(2, 20).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let epochs: Vec<u32> = text.lines().map(|l| serde_json::from_str::<EpochLayers>(l).unwrap().epoch).collect();
        assert_eq!(epochs, [1, 2]);
    }
}
