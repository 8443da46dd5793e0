//! The trainer on a Fashion-MNIST subset: a few epochs of the MLP preset, growth on.
//!
//! Run: `cargo run --release -p morphogen-trainer --example tiny_run`

use burn::backend::{Autodiff, NdArray};
use burn::optim::AdamConfig;
use morphogen_controller::{Controller, ControllerConfig};
use morphogen_trainer::{fashion_mnist, EventLog, ModelConfig, Trainer, TrainerConfig, FASHION_MNIST_DIR};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (train, valid) = fashion_mnist(FASHION_MNIST_DIR.as_ref())?;
    let data = train.take(5000).with_validation(valid.take(1000));
    let model = ModelConfig::default().mlp::<Autodiff<NdArray>>(&data.task, &Default::default())?;
    let controller = Controller::new(ControllerConfig { patience: 0, ..Default::default() })?;
    let config = TrainerConfig { epochs: 6, eval_samples: 1000, ..Default::default() };
    let mut trainer = Trainer::new(config, controller, EventLog::in_memory())?;
    let outcome = trainer.run(model, AdamConfig::new().init(), &data, &mut ())?;
    for m in &outcome.history {
        println!("epoch {}: val accuracy {:.4}", m.epoch, m.val_accuracy);
    }
    for e in trainer.events().events() {
        println!("epoch {} {}/{}: {} -> {} ({})", e.epoch, e.layer, e.seed, e.from, e.to, e.reason);
    }
    Ok(())
}
