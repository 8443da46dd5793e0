//! The controller on scripted telemetry: a layer plateaus, the controller grows its weakest seed.
//!
//! Run: `cargo run -p morphogen-controller --example scripted`

use morphogen_contracts::{GlobalMetrics, LayerHealthReport, LayerState, SeedHealth, SeedInfo, Stage, SystemState};
use morphogen_controller::{Controller, ControllerConfig};

fn main() -> Result<(), morphogen_contracts::MorphogenError> {
    let seeds: Vec<SeedInfo> = (0..4)
        .map(|seed| SeedInfo {
            seed,
            stage: Stage::Dormant,
            blueprint: None,
            strategy: None,
            alpha: 0.0,
            epochs_in_stage: 0,
            embargo_epochs_left: 0,
            failures: 0,
            chunk: seed * 8..seed * 8 + 8,
        })
        .collect();
    let health: Vec<SeedHealth> = (0..4)
        .map(|seed| SeedHealth {
            seed,
            stage: Stage::Dormant,
            alpha: 0.0,
            mean: 0.1,
            variance: if seed == 2 { 0.01 } else { 1.0 },
            dead_ratio: if seed == 2 { 0.5 } else { 0.0 },
            correlation: 0.1,
            blueprint_rms: 0.0,
        })
        .collect();
    let layer = LayerState {
        layer: "fc1".into(),
        host: "Linear".into(),
        seeds,
        health: LayerHealthReport { layer: "fc1".into(), samples: 1000, seeds: health },
        blueprint_params: [("residual_mlp".to_string(), 544)].into(),
    };
    let mut controller = Controller::new(ControllerConfig::default())?;
    for (epoch, accuracy) in [(1, 0.80), (2, 0.84), (3, 0.841)] {
        let metrics = GlobalMetrics { epoch, val_accuracy: accuracy, val_loss: 1.0 - accuracy, ..Default::default() };
        let state = SystemState { metrics, layers: vec![layer.clone()], evaluations: vec![], params_added: 0 };
        let decisions = controller.step(&state);
        println!("epoch {epoch}: val accuracy {accuracy}: {} command(s)", decisions.commands.len());
        for command in decisions.commands {
            println!("  {}", serde_json::to_string(&command).expect("commands serialise"));
        }
    }
    Ok(())
}
