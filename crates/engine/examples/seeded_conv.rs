//! A seeded Conv2d: grow a conv blueprint on one channel group and compare the vectorized path
//! with the per-seed reference loop.
//!
//! Run: `cargo run -p morphogen-engine --example seeded_conv`

use burn::backend::{Autodiff, NdArray};
use burn::nn::PaddingConfig2d;
use burn::tensor::{Distribution, Tensor};
use morphogen_engine::{reference, SeededConv2dConfig, Stage};

type B = Autodiff<NdArray>;

fn main() -> Result<(), morphogen_engine::MorphogenError> {
    let device = Default::default();
    let mut conv = SeededConv2dConfig::new([3, 16], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .with_num_seeds(5) // 16 channels: chunks of 4, 3, 3, 3, 3
        .with_name("conv1".into())
        .try_init::<B>(&device)?;
    conv.request_germination(0, "small_conv", "fixed_ramp")?;
    for stage in [Stage::Training, Stage::Grafting, Stage::Stabilization] {
        conv.advance(0, stage)?;
    }
    let x = Tensor::<B, 4>::random([2, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let fast = conv.forward(x.clone());
    let h = conv.host.forward(x).reshape([2, 16, 64]);
    let slow = reference::apply(&conv.core, h, Some([2, 8, 8])).reshape([2, 16, 8, 8]);
    let gap = (fast - slow).abs().max().into_scalar();
    println!("seed 0: {:?}", conv.seed(0)?);
    println!("max |vectorized - reference| = {gap:e}");
    println!("{:#?}", conv.health_report().seeds[0]);
    Ok(())
}
