//! A synthetic run folder: for the example, the rendering benchmark and tests that need
//! thousands of seeds without training them.

use crate::{DashboardError, EpochLayers, LayerColumns};
use morphogen_contracts::{GlobalMetrics, Stage, TransitionEvent};
use std::io::Write;
use std::path::Path;

/// A run of `layers` seeded layers of `seeds` seeds each (optionally in blocks, named by path), `epochs` long, whose seeds move
/// through the lifecycle (germinate, train, graft, stabilize, evaluate, fine-tune, fossilize or
/// get culled, an occasional rollback) in a deterministic pattern; health values are
/// pseudo-random. [`DemoRun::write`] writes it as `morphogen train` would.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoRun {
    /// Seeded layers (`fc1`, `fc2`, ...).
    pub layers: usize,
    /// Seeds per layer.
    pub seeds: usize,
    /// Epochs.
    pub epochs: u32,
    /// Seeds germinated per layer and epoch.
    pub germinations: usize,
    /// Layers per block: `Some(k)` names layer `i` `blocks.<i / k>.fc<i % k + 1>` (a model of
    /// nested blocks); `None` names them `fc1`, `fc2`, ...
    pub layers_per_block: Option<usize>,
}

impl DemoRun {
    /// A demo with `layers` layers of `seeds` seeds over `epochs` epochs, germinating about one
    /// seed in 500 (at least one) per layer and epoch.
    pub fn new(layers: usize, seeds: usize, epochs: u32) -> Self {
        Self { layers, seeds, epochs, germinations: (seeds / 500).max(1), layers_per_block: None }
    }

    /// The same run with its layers in blocks of `layers_per_block` (at least 1), named by path.
    pub fn in_blocks(self, layers_per_block: usize) -> Self {
        Self { layers_per_block: Some(layers_per_block.max(1)), ..self }
    }

    fn layer_name(&self, index: usize) -> String {
        match self.layers_per_block {
            Some(k) => format!("blocks.{}.fc{}", index / k.max(1), index % k.max(1) + 1),
            None => format!("fc{}", index + 1),
        }
    }

    /// Writes `config.toml`, `metrics.jsonl`, `events.jsonl` and `layers.jsonl` into `dir`
    /// (created if needed).
    pub fn write(&self, dir: &Path) -> Result<(), DashboardError> {
        let io = |source| DashboardError::Io { path: dir.into(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let config = format!("# demo run\n[model]\nnum_seeds = {}\n[trainer]\nepochs = {}\n", self.seeds, self.epochs);
        std::fs::write(dir.join("config.toml"), config).map_err(io)?;
        let mut lines = [String::new(), String::new(), String::new()];
        let mut state: Vec<LayerColumns> = (0..self.layers).map(|l| self.fresh_layer(l)).collect();
        for epoch in 1..=self.epochs {
            let metrics = metrics(epoch);
            for layer in &mut state {
                measure(layer, epoch);
            }
            let line = serde_json::to_string(&EpochLayers { epoch, step: metrics.step, layers: state.clone() })
                .map_err(std::io::Error::other);
            lines[2] += &(line.map_err(io)? + "\n");
            lines[0] += &(serde_json::to_string(&metrics).expect("metrics serialise") + "\n");
            for layer in &mut state {
                for event in self.step(layer, &metrics) {
                    lines[1] += &(serde_json::to_string(&event).expect("events serialise") + "\n");
                }
            }
        }
        for (name, text) in ["metrics.jsonl", "events.jsonl", "layers.jsonl"].iter().zip(lines) {
            let mut file = std::fs::File::create(dir.join(name)).map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
        }
        Ok(())
    }

    fn fresh_layer(&self, index: usize) -> LayerColumns {
        let n = self.seeds;
        LayerColumns {
            layer: self.layer_name(index),
            host: "Linear".into(),
            features: n * 4,
            samples: 60_000,
            blueprints: vec!["residual_mlp".into()],
            stage: vec![0; n],
            blueprint: vec![0; n],
            alpha: vec![0.0; n],
            epochs_in_stage: vec![0; n],
            failures: vec![0; n],
            mean: vec![0.0; n],
            variance: vec![0.0; n],
            dead_ratio: vec![0.0; n],
            correlation: vec![0.0; n],
            blueprint_rms: vec![0.0; n],
        }
    }

    /// The transitions of one epoch end: every active seed moves one stage on (or is culled),
    /// then new seeds germinate.
    fn step(&self, layer: &mut LayerColumns, metrics: &GlobalMetrics) -> Vec<TransitionEvent> {
        let mut events = Vec::new();
        let epoch = metrics.epoch;
        for seed in 0..layer.seeds() {
            layer.epochs_in_stage[seed] += 1;
            if let Some((to, reason)) = next(layer, seed, epoch) {
                events.push(move_seed(layer, seed, to, reason, metrics));
            }
        }
        let salt = hash(epoch as usize, salt(layer));
        let dormant: Vec<usize> = (0..layer.seeds()).filter(|s| layer.stage[*s] == 0).collect();
        for k in 0..self.germinations.min(dormant.len()) {
            let seed = dormant[(salt + k * 7919) % dormant.len()];
            if layer.stage[seed] == 0 {
                let reason = format!(
                    "plateau: val loss {:.4} did not improve; seed {seed} has the lowest variance",
                    metrics.val_loss
                );
                events.push(move_seed(layer, seed, Stage::Germinated, reason, metrics));
            }
        }
        events
    }
}

/// Where a seed goes at this epoch end, with the reason, if it moves.
fn next(layer: &LayerColumns, seed: usize, epoch: u32) -> Option<(Stage, String)> {
    let dice = hash(seed ^ salt(layer), epoch as usize) % 100;
    let moved = match layer.stage_of(seed) {
        Stage::Germinated => (Stage::Training, "queued blueprint starts training".to_string()),
        Stage::Training if dice < 10 => (Stage::RolledBack, "loss spike: restored the last good epoch".into()),
        Stage::Training => {
            (Stage::Grafting, format!("training gate passed: output rms {:.3}", layer.blueprint_rms[seed]))
        }
        Stage::Grafting if layer.alpha[seed] < 1.0 => return None,
        Stage::Grafting => (Stage::Stabilization, "alpha reached 1".into()),
        Stage::Stabilization => (Stage::Evaluating, "stabilized for 1 epoch".into()),
        Stage::Evaluating if dice < 35 => (Stage::Culled, format!("contribution -0.00{dice} below 0")),
        Stage::Evaluating => (Stage::FineTuning, format!("contribution 0.00{dice} >= 0")),
        Stage::FineTuning => (Stage::Fossilized, "validation loss improved since entry".into()),
        Stage::Culled if layer.epochs_in_stage[seed] >= 2 => (Stage::Dormant, "embargo over".into()),
        _ => return None,
    };
    Some(moved)
}

fn move_seed(layer: &mut LayerColumns, seed: usize, to: Stage, reason: String, m: &GlobalMetrics) -> TransitionEvent {
    let from = layer.stage_of(seed);
    layer.stage[seed] = to.code();
    layer.epochs_in_stage[seed] = 0;
    layer.blueprint[seed] = u16::from(to.holds_blueprint());
    layer.failures[seed] += u32::from(to == Stage::Culled);
    TransitionEvent {
        time: 1_700_000_000.0 + f64::from(m.epoch) * 60.0,
        epoch: m.epoch,
        step: m.step,
        layer: layer.layer.clone(),
        seed,
        from,
        to,
        reason,
        metrics: *m,
        decided_by: None,
    }
}

/// Pseudo-random health for every seed, and alpha ramping in GRAFTING.
fn measure(layer: &mut LayerColumns, epoch: u32) {
    for seed in 0..layer.seeds() {
        let layer_salt = salt(layer);
        let r = |k: usize| (hash((seed * 31 + k) ^ layer_salt, epoch as usize) % 10_000) as f32 / 10_000.0;
        let stage = layer.stage_of(seed);
        if stage == Stage::Grafting {
            layer.alpha[seed] = (layer.alpha[seed] + 0.5).min(1.0);
        } else if !stage.holds_blueprint() {
            layer.alpha[seed] = 0.0;
        }
        layer.mean[seed] = r(1) - 0.5;
        layer.variance[seed] = r(2) * 2.0 / epoch as f32;
        layer.dead_ratio[seed] = (r(3) * (seed % 7) as f32 / 6.0).min(1.0);
        layer.correlation[seed] = r(4) * 0.8 + 0.1 * (seed as f32 / layer.seeds() as f32);
        layer.blueprint_rms[seed] = if stage.holds_blueprint() { 0.05 + r(5) * 0.1 } else { 0.0 };
    }
}

/// Metrics of a run that learns: loss falling, accuracy rising.
fn metrics(epoch: u32) -> GlobalMetrics {
    let e = epoch as f32;
    GlobalMetrics {
        epoch,
        step: u64::from(epoch) * 469,
        train_loss: 0.3 + 0.9 / e,
        train_accuracy: 0.9 - 0.3 / e,
        val_loss: 0.35 + 0.9 / e,
        val_accuracy: 0.88 - 0.3 / e,
        ..Default::default()
    }
}

/// A number that differs between layers, so they do not move in step.
fn salt(layer: &LayerColumns) -> usize {
    hash(layer.layer.bytes().map(usize::from).sum(), 17) & 0xFFFF_FFFF
}

/// A small deterministic mix of two numbers.
fn hash(a: usize, b: usize) -> usize {
    let mut x = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x ^ (x >> 29)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Run;

    #[test]
    fn a_demo_run_reads_back_with_legal_transitions() {
        let dir = tempfile::tempdir().unwrap();
        DemoRun { germinations: 5, ..DemoRun::new(2, 100, 10) }.write(dir.path()).unwrap();
        let run = Run::open(dir.path()).unwrap();
        assert!(run.messages().is_empty(), "{:?}", run.messages());
        assert_eq!((run.metrics().len(), run.layers().len()), (10, 10));
        assert!(run.events().iter().all(|e| e.from.can_transition_to(e.to)), "only legal transitions");
        for stage in [Stage::Fossilized, Stage::Culled, Stage::RolledBack] {
            assert!(run.events().iter().any(|e| e.to == stage), "some seed reaches {stage}");
        }
    }
}
