//! Grafting strategies move alpha on device, each gated by its own signal.

use crate::common::*;
use burn::tensor::Tensor;
use morphogen_engine::{
    Gate, GraftSignals, GraftingConfig, GraftingSpec, MorphogenError, SeedOptions, SeededLinear, SeededLinearConfig,
    Stage, StrategyRegistry,
};

fn grafting(strategy: &str) -> SeededLinear<B> {
    let strategies =
        StrategyRegistry::from_config(&GraftingConfig::new().with_ramp_steps(4).with_drift_threshold(0.01))
            .unwrap()
            .register(GraftingSpec { name: "slow".into(), ramp_steps: 8, gate: Gate::Always })
            .unwrap();
    let mut layer = SeededLinearConfig::new(3, 4)
        .with_num_seeds(2)
        .with_options(SeedOptions::new().with_strategies(strategies))
        .init::<B>(&device());
    layer.request_germination(0, "low_rank", strategy).unwrap();
    layer.advance(0, Stage::Training).unwrap();
    layer.advance(0, Stage::Grafting).unwrap();
    layer
}

fn alpha(layer: &SeededLinear<B>) -> f32 {
    layer.seed(0).unwrap().alpha
}

fn loss(v: f32) -> Tensor<B, 1> {
    Tensor::from_floats([v], &device())
}

#[test]
fn fixed_ramp_reaches_one_and_stays_there() {
    let mut layer = grafting("fixed_ramp");
    let mut seen = Vec::new();
    for _ in 0..6 {
        layer.graft_step(&GraftSignals::new()).unwrap();
        seen.push(alpha(&layer));
    }
    assert_close(&seen, &[0.25, 0.5, 0.75, 1.0, 1.0, 1.0], 1e-6, "alpha");
    assert_eq!(layer.seed(1).unwrap().alpha, 0.0, "dormant seeds keep alpha 0");
}

#[test]
fn custom_strategies_are_pluggable() {
    let mut layer = grafting("slow");
    layer.graft_step(&GraftSignals::new()).unwrap();
    assert!((alpha(&layer) - 0.125).abs() < 1e-6);
}

#[test]
fn performance_linked_slows_while_the_loss_does_not_improve() {
    let mut layer = grafting("performance_linked");
    let err = layer.graft_step(&GraftSignals::new()).unwrap_err();
    assert!(matches!(err, MorphogenError::MissingSignal { .. }), "{err}");
    layer.graft_step(&GraftSignals::new().with_loss(loss(1.0))).unwrap(); // first: full step
    layer.graft_step(&GraftSignals::new().with_loss(loss(0.5))).unwrap(); // improving: full step
    assert!((alpha(&layer) - 0.5).abs() < 1e-6);
    layer.graft_step(&GraftSignals::new().with_loss(loss(5.0))).unwrap(); // worse: stall factor 0.25
    assert!((alpha(&layer) - 0.5625).abs() < 1e-6, "{}", alpha(&layer));
}

#[test]
fn drift_controlled_pauses_while_host_weights_move() {
    let mut layer = grafting("drift_controlled");
    layer.graft_step(&GraftSignals::new()).unwrap(); // no reference yet: moves
    layer.graft_step(&GraftSignals::new()).unwrap(); // weights unchanged: moves
    assert!((alpha(&layer) - 0.5).abs() < 1e-6);
    layer.host.weight = layer.host.weight.clone().map(|w| w * 2.0);
    layer.graft_step(&GraftSignals::new()).unwrap(); // drift 100% > 1%: paused
    assert!((alpha(&layer) - 0.5).abs() < 1e-6, "{}", alpha(&layer));
    layer.graft_step(&GraftSignals::new()).unwrap(); // settled again
    assert!((alpha(&layer) - 0.75).abs() < 1e-6);
}

#[test]
fn grad_norm_gated_moves_only_inside_its_band() {
    let mut layer = grafting("grad_norm_gated");
    let norms = |v: f32| Tensor::<B, 1>::from_floats([v, 0.0], &device());
    assert!(layer.graft_step(&GraftSignals::new()).is_err());
    // At alpha 0 the blueprint's gradient is 0 whatever it learned: the first step is free.
    layer.graft_step(&GraftSignals::new().with_seed_grad_norms(norms(100.0))).unwrap();
    assert!((alpha(&layer) - 0.25).abs() < 1e-6, "unstarted: moves");
    // From then on the norm is judged at weight 1 (divided by alpha 0.25): band [1e-6, 10].
    layer.graft_step(&GraftSignals::new().with_seed_grad_norms(norms(3.0))).unwrap();
    assert!((alpha(&layer) - 0.25).abs() < 1e-6, "12 at weight 1, too large: paused");
    layer.graft_step(&GraftSignals::new().with_seed_grad_norms(norms(0.0))).unwrap();
    assert!((alpha(&layer) - 0.25).abs() < 1e-6, "vanished: paused");
    layer.graft_step(&GraftSignals::new().with_seed_grad_norms(norms(2.0))).unwrap();
    assert!((alpha(&layer) - 0.5).abs() < 1e-6, "8 at weight 1: moves");
}

#[test]
fn seed_grad_norms_come_from_the_blueprint_gradients() {
    let mut layer = grafting("grad_norm_gated");
    layer.set_alpha(&[0], 1.0).unwrap();
    let grads = layer.forward(random([5, 3])).powi_scalar(2).sum().backward();
    let norms = values(layer.core.seed_grad_norms(&grads));
    assert!(norms[0] > 0.0, "seed 0 trains: {norms:?}");
    assert_eq!(norms[1], 0.0, "seed 1 has no blueprint");
}

#[test]
fn invalid_strategy_thresholds_are_rejected() {
    let bad = GraftingConfig::new().with_grad_norm_lower(5.0).with_grad_norm_upper(1.0);
    let err = StrategyRegistry::from_config(&bad).unwrap_err();
    assert!(err.to_string().contains("grad_norm_gated"), "{err}");
    assert!(GraftingSpec { name: "zero".into(), ramp_steps: 0, gate: Gate::Always }.validate().is_err());
}
