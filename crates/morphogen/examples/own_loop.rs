//! Your own training loop with the controller: measure, decide, apply, count the epoch.
//!
//! Run: `cargo run --release --example own_loop` (reads Fashion-MNIST from Debian's
//! `dataset-fashion-mnist`; a 2,000-image subset keeps it quick).

use morphogen::burn::backend::{Autodiff, NdArray};
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::nn::loss::CrossEntropyLossConfig;
use morphogen::burn::optim::{AdamConfig, GradientsParams, Optimizer};
use morphogen::burn::tensor::{Int, Tensor, TensorData};
use morphogen::controller::{Controller, ControllerConfig};
use morphogen::trainer::{fashion_mnist, measure_system, Classifier, Dataset, ModelConfig, FASHION_MNIST_DIR};
use morphogen::{GlobalMetrics, GraftSignals, SeededModel};

type B = Autodiff<NdArray>;

fn tensors(data: &Dataset, range: std::ops::Range<usize>) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let idx: Vec<usize> = range.collect();
    let device = Default::default();
    let x = TensorData::new(data.gather_images(&idx), [idx.len(), data.pixels()]);
    let y = TensorData::new(idx.iter().map(|&i| data.labels[i] as i64).collect::<Vec<_>>(), [idx.len()]);
    (Tensor::from_data(x, &device), Tensor::from_data(y, &device))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (train, valid) = fashion_mnist(FASHION_MNIST_DIR.as_ref())?;
    let (train, valid) = (train.take(2000), valid.take(500));
    let mut model = ModelConfig::default().mlp::<B>(&Default::default())?;
    let mut optim = AdamConfig::new().init();
    let mut controller = Controller::new(ControllerConfig { patience: 0, ..Default::default() })?;
    let loss_fn = CrossEntropyLossConfig::new().init(&Default::default());
    for epoch in 1..=4 {
        let mut train_loss = 0.0;
        for start in (0..train.len()).step_by(100) {
            let (x, y) = tensors(&train, start..start + 100);
            let loss = loss_fn.forward(model.logits(x), y);
            train_loss += loss.clone().into_scalar() / 20.0;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(3e-3, model, grads);
            model.graft_step(&GraftSignals::new())?;
        }
        // Measure, decide, apply: the controller never touches the model itself.
        let (x, y) = tensors(&valid, 0..valid.len());
        let logits = model.valid().logits(x.inner());
        let val_loss = loss_fn.forward(Tensor::from_inner(logits.clone()), y.clone()).into_scalar();
        let correct = logits.argmax(1).reshape([valid.len()]).equal(y.inner()).int().sum().into_scalar();
        let val_accuracy = correct as f32 / valid.len() as f32;
        let metrics =
            GlobalMetrics { epoch, step: epoch as u64 * 20, train_loss, val_loss, val_accuracy, ..Default::default() };
        let decisions = controller.step(&measure_system(&model, metrics, vec![]));
        for command in &decisions.commands {
            model.apply_command(command)?;
            println!(
                "epoch {epoch}: {} {} -> {:?} ({})",
                command.target.layer, command.target.seed, command.kind, command.reason
            );
        }
        model.end_epoch();
        println!("epoch {epoch}: train loss {train_loss:.4}, val loss {val_loss:.4}, val accuracy {val_accuracy:.4}");
    }
    Ok(())
}
