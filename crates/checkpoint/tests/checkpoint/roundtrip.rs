//! Saving a grown model and restoring it into a freshly built one.

use crate::common::*;
use morphogen_checkpoint::{write_checkpoint, Checkpoint, Snapshot};
use morphogen_engine::{GraftSignals, SeededModel, Stage};
use morphogen_testkit::*;
use serde_json::json;

/// A grown model after a few grafting steps, so alpha, loss averages and drift references
/// are all non-trivial.
fn trained() -> Net<B> {
    let mut model = grown::<B>(&device());
    for step in 0..3 {
        let loss = model.forward(random([4, 6])).powi_scalar(2).mean();
        let signals = GraftSignals::new().with_loss(loss.clone().detach().reshape([1]) * (1.0 + step as f32));
        model.graft_step(&signals).unwrap();
    }
    model
}

#[test]
fn a_fresh_model_restores_state_banks_gate_memory_and_outputs() {
    let model = trained();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    let snapshot = Snapshot::of(&model)
        .unwrap()
        .with_progress(2, 17)
        .with_rng(42, Some(json!([1, 2, 3])))
        .with_metric(0.25)
        .with_extra("controller", json!({"cooldown": 3}));
    let bytes = write_checkpoint(&path, &snapshot).unwrap();
    assert!(bytes > 0);

    let mut fresh = net::<B>(&device());
    assert!(fresh.fc1.core.params().banks.iter().all(Option::is_none), "a fresh model has no bank");
    let checkpoint = Checkpoint::read(&path).unwrap();
    checkpoint.restore(&mut fresh).unwrap();

    assert_eq!(fingerprint(&fresh), fingerprint(&model), "parameters (with ids), tables and alpha");
    let memory = |m: &Net<B>| {
        let g = m.fc1.core.graft_memory();
        (g.loss_ema.iter().map(|(id, t)| (*id, bits(t.clone()))).collect::<Vec<_>>(), g.drift_reference.map(bits))
    };
    assert!(
        !model.fc1.core.graft_memory().loss_ema.is_empty() && model.fc1.core.graft_memory().drift_reference.is_some()
    );
    assert_eq!(memory(&fresh), memory(&model), "grafting gate memory");
    let x = random([5, 6]);
    assert_eq!(bits(fresh.forward(x.clone())), bits(model.forward(x)));

    assert_eq!((checkpoint.progress().epoch, checkpoint.progress().step), (2, 17));
    assert_eq!(checkpoint.rng().seed, 42);
    assert_eq!(checkpoint.rng().state, Some(json!([1, 2, 3])));
    assert_eq!(checkpoint.metric(), Some(0.25));
    assert_eq!(checkpoint.extra("controller"), Some(&json!({"cooldown": 3})));
}

#[test]
fn a_restored_model_keeps_training_and_growing() {
    let model = trained();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(&dir.path().join("c"), &Snapshot::of(&model).unwrap()).unwrap();
    let mut fresh = net::<B>(&device());
    Checkpoint::read(&dir.path().join("c")).unwrap().restore(&mut fresh).unwrap();
    // Lifecycle continues from the restored table.
    fresh.fc1.advance_many(&[0, 2], Stage::Stabilization).unwrap();
    fresh.fc2.request_germination(0, "low_rank", "fixed_ramp").unwrap();
    assert_eq!(fresh.fc2.core.params().banks[1].as_ref().unwrap().capacity(), 3);
    // Gradients flow into restored banks.
    let grads = fresh.forward(random([3, 6])).sum().backward();
    let page = &fresh.fc2.core.params().banks[0].as_ref().unwrap().pages[0];
    assert!(page.params[3].grad(&grads).is_some(), "the TRAINING seed's blueprint gets a gradient");
}

#[test]
fn restoring_over_a_model_with_other_banks_replaces_them() {
    let model = trained();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(&dir.path().join("c"), &Snapshot::of(&model).unwrap()).unwrap();
    let mut other = net::<B>(&device());
    other.fc2.request_germinations(&[0, 1, 2], "low_rank", "fixed_ramp").unwrap();
    Checkpoint::read(&dir.path().join("c")).unwrap().restore(&mut other).unwrap();
    assert_eq!(fingerprint(&other), fingerprint(&model));
    assert!(other.fc2.core.params().banks[1].is_none(), "the checkpoint had no low_rank bank on fc2");
}

#[test]
fn the_tensor_file_uses_documented_names() {
    let model = trained();
    let snapshot = Snapshot::of(&model).unwrap();
    let names = snapshot.tensor_names();
    for expected in [
        "model.fc1.host.weight",
        "model.fc1.host.bias",
        "model.fc1.core.state.stage",
        "model.fc1.core.state.alpha",
        "model.fc1.core.banks.0.pages.0.params.0",
        "model.fc1.core.banks.1.pages.0.params.1",
        "model.fc2.core.banks.0.pages.0.params.3",
        "graft.fc1.core.loss_ema.1",
        "graft.fc1.core.drift_reference",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("model.fc2.core.banks.1")), "unallocated banks are not saved");
}
