//! Quickstart: a small seeded MLP learns a regression task, and one seed is grown through its
//! whole lifecycle while the model trains.
//!
//! Run: `cargo run --release --example quickstart`

use morphogen::burn::backend::{Autodiff, NdArray};
use morphogen::burn::module::Module;
use morphogen::burn::nn::loss::{MseLoss, Reduction};
use morphogen::burn::optim::{AdamConfig, GradientsParams, Optimizer};
use morphogen::burn::tensor::activation::relu;
use morphogen::burn::tensor::backend::Backend;
use morphogen::burn::tensor::{Distribution, Tensor};
use morphogen::{
    GraftSignals, GraftingConfig, SeedOptions, SeededLinear, SeededLinearConfig, SeededModel, Stage, StrategyRegistry,
};

type B = Autodiff<NdArray>;

// `SeededModel` lists the seeded layers by path ("fc1", "fc2"); nested blocks, `Vec`s and
// `Option`s of them work the same way ("blocks.3.fc1").
#[derive(Module, Debug, SeededModel)]
struct Mlp<B: Backend> {
    fc1: SeededLinear<B>,
    fc2: SeededLinear<B>,
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

fn main() -> Result<(), morphogen::MorphogenError> {
    let device = Default::default();
    let mut model = Mlp {
        fc1: SeededLinearConfig::new(8, 32)
            .with_num_seeds(8)
            // Grafting ramps alpha from 0 to 1 within one epoch of 25 steps.
            .with_options(
                SeedOptions::new()
                    .with_strategies(StrategyRegistry::from_config(&GraftingConfig::new().with_ramp_steps(25))?),
            )
            .try_init::<B>(&device)?,
        fc2: SeededLinearConfig::new(32, 1).try_init::<B>(&device)?,
    };
    let x = Tensor::<B, 2>::random([256, 8], Distribution::Normal(0.0, 1.0), &device);
    let target = x.clone().powi_scalar(2).sum_dim(1).sin();
    let mut optim = AdamConfig::new().init();

    // Epoch plan for seed 3 of fc1: germinate, train in isolation, graft, settle, evaluate,
    // fine-tune, fossilize. A controller would decide these from health reports.
    let plan = [Stage::Training, Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning];
    for epoch in 0..8 {
        let mut loss_value = 0.0;
        for _ in 0..25 {
            let loss = MseLoss::new().forward(model.forward(x.clone()), target.clone(), Reduction::Mean);
            loss_value = loss.clone().into_scalar();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
            model.graft_step(&GraftSignals::new())?;
        }
        let report = &model.health_reports()[0];
        let weakest = report.seeds.iter().min_by(|a, b| a.variance.total_cmp(&b.variance)).map_or(0, |s| s.seed);
        match epoch {
            0 => model.fc1.request_germination(3, "residual_mlp", "fixed_ramp")?,
            1..=5 => model.fc1.advance(3, plan[epoch - 1])?,
            _ if model.fc1.seed(3)?.stage == Stage::FineTuning => model.fc1.advance(3, Stage::Fossilized)?,
            _ => {}
        }
        model.end_epoch();
        let seed = model.fc1.seed(3)?;
        println!(
            "epoch {epoch}: loss {loss_value:.4}  fc1 seed 3 {:<13} alpha {:.2}  (lowest-variance seed: {weakest})",
            seed.stage.name(),
            seed.alpha
        );
    }
    println!("seed state: {} bytes for {} seeds", model.fc1.state_bytes(), model.fc1.num_seeds());
    Ok(())
}
