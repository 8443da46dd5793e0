//! Scripted states for the controller: seeds, health, layers and epochs.

use morphogen_contracts::{
    CommandKind, GlobalMetrics, LayerHealthReport, LayerState, Score, SeedHealth, SeedInfo, Stage, SystemState,
};

pub fn seed(id: usize, stage: Stage) -> SeedInfo {
    SeedInfo {
        seed: id,
        stage,
        blueprint: None,
        strategy: None,
        alpha: 0.0,
        epochs_in_stage: 1,
        embargo_epochs_left: 0,
        failures: 0,
        chunk: id * 4..id * 4 + 4,
    }
}

pub fn health(id: usize, variance: f32, dead: f32) -> SeedHealth {
    SeedHealth {
        seed: id,
        stage: Stage::Dormant,
        alpha: 0.0,
        mean: 0.0,
        variance,
        dead_ratio: dead,
        correlation: 0.0,
        blueprint_rms: 0.0,
    }
}

pub fn layer(name: &str, seeds: Vec<SeedInfo>, health: Vec<SeedHealth>) -> LayerState {
    LayerState {
        layer: name.into(),
        host: "Linear".into(),
        seeds,
        health: LayerHealthReport { layer: name.into(), samples: 100, seeds: health },
        blueprint_params: [("residual_mlp".to_string(), 100)].into(),
    }
}

pub fn dormant_layer(name: &str, n: usize) -> LayerState {
    layer(name, (0..n).map(|i| seed(i, Stage::Dormant)).collect(), (0..n).map(|i| health(i, 1.0, 0.0)).collect())
}

pub fn system(epoch: u32, val_accuracy: f32, layers: Vec<LayerState>) -> SystemState {
    let metrics = GlobalMetrics {
        epoch,
        step: epoch as u64 * 10,
        train_loss: 0.5,
        train_accuracy: 0.8,
        val_loss: 0.5,
        val_accuracy,
        score: Score::Accuracy,
    };
    SystemState { metrics, layers, evaluations: vec![], params_added: 0 }
}

pub fn germinated(d: &morphogen_contracts::Decisions) -> Vec<(String, usize)> {
    d.commands
        .iter()
        .filter(|c| matches!(c.kind, CommandKind::Germinate { .. }))
        .map(|c| (c.target.layer.clone(), c.target.seed))
        .collect()
}

/// A layer `fc1` of one seed in `stage` for `epochs` epochs, alpha 1, with health `h`.
pub fn with_stage(stage: Stage, epochs: u32, h: SeedHealth) -> LayerState {
    let mut s = seed(0, stage);
    s.epochs_in_stage = epochs;
    s.alpha = 1.0;
    layer("fc1", vec![s], vec![h])
}

/// A state of `layers` layers of `seeds` seeds each, every seed's health drawn from `key`
/// (dead share, correlation, variance), at `epoch`.
pub fn varied_system(key: u64, epoch: u32, layers: usize, seeds: usize) -> SystemState {
    let mut state = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let layers = (0..layers)
        .map(|l| {
            let mut h: Vec<SeedHealth> = (0..seeds).map(|i| health(i, 0.05 + next(), next() * next())).collect();
            h.iter_mut().for_each(|h| h.correlation = next() - 0.3);
            let mut layer = layer(&format!("layer{l}"), (0..seeds).map(|i| seed(i, Stage::Dormant)).collect(), h);
            layer.blueprint_params.insert("low_rank".into(), 40);
            layer
        })
        .collect();
    system(epoch, 0.5 + 0.02 * epoch as f32, layers)
}
