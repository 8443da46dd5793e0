//! Models with batch norm: Burn updates a `BatchNorm`'s running mean and variance lazily (the
//! value a training step computes is applied on the next step, or when the record is taken), so
//! a checkpoint taken right after a step must still hold that step's statistics, and a restore
//! over a model with such a pending update must not be overwritten by it.

use burn::module::{AutodiffModule, Module};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_checkpoint::{export_pytorch, write_checkpoint, Checkpoint, CheckpointError, Snapshot};
use morphogen_engine::{seeded_model, SeededConv2d, SeededConv2dConfig};
use morphogen_testkit::*;
use std::path::Path;

/// A seeded conv, batch norm, global average pooling and a linear head (a ResNet stem in small).
#[derive(Module, Debug)]
struct NormNet<B: Backend> {
    conv: SeededConv2d<B>,
    norm: BatchNorm<B>,
    head: Linear<B>,
}

seeded_model!(NormNet { conv });

impl<B: Backend> NormNet<B> {
    fn new(device: &B::Device) -> Self {
        let conv = SeededConv2dConfig::new([2, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_num_seeds(2)
            .with_name("conv".into());
        Self {
            conv: conv.init(device),
            norm: BatchNormConfig::new(4).init(device),
            head: LinearConfig::new(4, 3).init(device),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let h = burn::tensor::activation::relu(self.norm.forward(self.conv.forward(x)));
        self.head.forward(h.mean_dim(3).mean_dim(2).flatten(1, 3))
    }
}

/// `model` after `steps` Adam steps on random data (each step updates the running statistics).
fn trained(mut model: NormNet<B>, steps: usize) -> NormNet<B> {
    let mut optimizer = AdamConfig::new().init::<B, NormNet<B>>();
    for _ in 0..steps {
        let loss = (model.forward(random([8, 2, 5, 5]) * 3.0 + 1.0) - random([8, 3])).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }
    model
}

/// Inference outputs (running statistics, no autodiff) as bit patterns.
fn inference_bits(model: &NormNet<B>, x: &Tensor<B, 4>) -> Vec<u32> {
    let valid = model.valid();
    bits(valid.forward(x.clone().inner()))
}

fn save(model: &NormNet<B>, path: &Path) -> Checkpoint {
    write_checkpoint(path, &Snapshot::of(model).unwrap()).unwrap();
    Checkpoint::read(path).unwrap()
}

#[test]
fn a_snapshot_right_after_a_step_holds_that_steps_running_statistics() {
    let model = trained(NormNet::new(&device()), 3);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = save(&model, &dir.path().join("c"));

    let mut restored = NormNet::<B>::new(&device());
    checkpoint.restore(&mut restored).unwrap();
    let x = random([4, 2, 5, 5]);
    assert_eq!(inference_bits(&restored, &x), inference_bits(&model, &x), "restored inference outputs");
    let running_mean = |m: &NormNet<B>| bits(m.valid().norm.running_mean.value());
    assert_eq!(running_mean(&restored), running_mean(&model));
}

/// A rollback restores into the training model itself, whose last step left a pending update.
#[test]
fn restoring_over_a_pending_update_keeps_the_checkpoints_statistics() {
    let model = trained(NormNet::new(&device()), 2);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = save(&model, &dir.path().join("c"));
    let x = random([4, 2, 5, 5]);
    let saved = inference_bits(&model, &x);

    let mut rolled_back = trained(model, 2);
    checkpoint.restore(&mut rolled_back).unwrap();
    assert_eq!(inference_bits(&rolled_back, &x), saved);
}

#[test]
fn the_pytorch_export_holds_the_current_running_statistics() {
    let model = trained(NormNet::new(&device()), 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.safetensors");
    export_pytorch(&model, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let exported = |name: &str| -> Vec<u32> {
        let view = file.tensor(name).unwrap();
        view.data().chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
    };
    let valid = model.valid();
    assert_eq!(exported("norm.running_mean"), bits(valid.norm.running_mean.value()));
    assert_eq!(exported("norm.running_var"), bits(valid.norm.running_var.value()));
    assert_eq!(exported("norm.weight"), bits(valid.norm.gamma.val()));
}

/// Restoring writes running statistics into state the model's clones share, so a restore that
/// fails on the optimizer must fail before it touches the model.
#[test]
fn a_failed_restore_with_optimizer_leaves_the_running_statistics_alone() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = save(&trained(NormNet::new(&device()), 2), &dir.path().join("c"));
    let mut model = trained(NormNet::new(&device()), 3);
    let x = random([4, 2, 5, 5]);
    let before = inference_bits(&model, &x);
    let mut optimizer = AdamConfig::new().init::<B, NormNet<B>>();
    let err = checkpoint.restore_with_optimizer(&mut model, &mut optimizer).unwrap_err();
    assert!(matches!(err, CheckpointError::Optimizer { .. }), "{err}");
    assert_eq!(inference_bits(&model, &x), before);
}
