//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

pub type Inner = NdArray<f32>;
pub type B = Autodiff<Inner>;

pub fn device() -> burn::tensor::Device<B> {
    Default::default()
}

pub fn random<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device())
}

pub fn values<const D: usize, Bk: Backend>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

pub fn bits<const D: usize, Bk: Backend>(t: Tensor<Bk, D>) -> Vec<u32> {
    values(t).into_iter().map(f32::to_bits).collect()
}

pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1.0f32.max(x.abs()).max(y.abs());
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}
