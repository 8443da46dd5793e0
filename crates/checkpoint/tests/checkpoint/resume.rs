//! Resume determinism: train N steps, save, train M more, versus restore into a fresh model and
//! optimizer and train the same M steps: bitwise-identical parameters, seed states and gate
//! memory on CPU.

use crate::common::*;
use burn::optim::{AdamConfig, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::Tensor;
use morphogen_checkpoint::{write_checkpoint, Checkpoint, Snapshot};
use morphogen_engine::{GraftSignals, SeededModel, Stage};
use morphogen_testkit::*;

type Batch = (Tensor<B, 2>, Tensor<B, 2>);

fn batches(n: usize) -> Vec<Batch> {
    (0..n).map(|_| (random([8, 6]), random([8, 3]))).collect()
}

fn train<O: Optimizer<Net<B>, B>>(mut model: Net<B>, optimizer: &mut O, batches: &[Batch]) -> Net<B> {
    for (x, y) in batches {
        let loss = (model.forward(x.clone()) - y.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
        model.graft_step(&GraftSignals::new().with_loss(loss.detach().reshape([1]))).unwrap();
    }
    model
}

/// The M steps after the checkpoint, with a transition and an epoch boundary in the middle.
fn continue_training<O: Optimizer<Net<B>, B>>(model: Net<B>, optimizer: &mut O, batches: &[Batch]) -> Net<B> {
    let mut model = train(model, optimizer, &batches[..2]);
    model.fc1.advance_many(&[0, 2], Stage::Stabilization).unwrap();
    model.end_epoch();
    train(model, optimizer, &batches[2..])
}

fn gate_memory_bits(model: &Net<B>) -> Vec<Vec<u32>> {
    let mut all = Vec::new();
    model.visit_seeded(&mut |_, layer| {
        let memory = layer.seed_core().graft_memory();
        all.extend(memory.loss_ema.into_iter().map(|(_, t)| bits(t)));
        all.extend(memory.drift_reference.map(bits));
    });
    all
}

fn resume_is_bitwise<O: Optimizer<Net<B>, B>>(make_optimizer: impl Fn() -> O) {
    let (before, after) = (batches(3), batches(4));
    let mut optimizer = make_optimizer();
    let model = train(grown::<B>(&device()), &mut optimizer, &before);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    write_checkpoint(&path, &Snapshot::of(&model).unwrap().with_optimizer(&optimizer).unwrap()).unwrap();
    let continued = continue_training(model, &mut optimizer, &after);

    let mut resumed = net::<B>(&device());
    let mut fresh_optimizer = make_optimizer();
    Checkpoint::read(&path).unwrap().restore_with_optimizer(&mut resumed, &mut fresh_optimizer).unwrap();
    let resumed = continue_training(resumed, &mut fresh_optimizer, &after);

    assert_eq!(fingerprint(&resumed), fingerprint(&continued), "parameters and seed states");
    assert_eq!(gate_memory_bits(&resumed), gate_memory_bits(&continued), "grafting gate memory");
    let x = random([2, 6]);
    assert_eq!(bits(resumed.forward(x.clone())), bits(continued.forward(x)));
}

#[test]
fn adam_resumes_bitwise() {
    resume_is_bitwise(|| AdamConfig::new().init::<B, Net<B>>());
}

#[test]
fn sgd_with_momentum_resumes_bitwise() {
    resume_is_bitwise(|| {
        SgdConfig::new().with_momentum(Some(burn::optim::momentum::MomentumConfig::new())).init::<B, Net<B>>()
    });
}

/// Without the optimizer state the continuation differs: the test above can fail.
#[test]
fn dropping_the_optimizer_state_breaks_resumption() {
    let (before, after) = (batches(3), batches(4));
    let mut optimizer = AdamConfig::new().init::<B, Net<B>>();
    let model = train(grown::<B>(&device()), &mut optimizer, &before);
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(&dir.path().join("c"), &Snapshot::of(&model).unwrap()).unwrap();
    let continued = continue_training(model, &mut optimizer, &after);
    let mut resumed = net::<B>(&device());
    Checkpoint::read(&dir.path().join("c")).unwrap().restore(&mut resumed).unwrap();
    let resumed = continue_training(resumed, &mut AdamConfig::new().init::<B, Net<B>>(), &after);
    assert_ne!(param_bits(&resumed), param_bits(&continued));
}
