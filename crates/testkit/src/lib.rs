//! Helpers for morphogen's integration tests, shared by every crate's suite (a dev-dependency
//! only): the CPU test backend [`B`], random tensors ([`random`], [`random_on`], [`RandomBanks`])
//! and tensors read back for assertions ([`values`], [`bits`], [`assert_close`]); a real Redis
//! server for the message-bus tests ([`RedisServer`]).
//!
//! Model-specific helpers (test networks, grown models, fingerprints) stay in each suite.
#![warn(missing_docs)]

mod redis_server;

pub use redis_server::{RedisServer, TlsRedisServer};

use burn::backend::{Autodiff, NdArray};
use burn::module::{ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Device, Distribution, Tensor};

/// The backend the tests run on: Burn's CPU backend in f32, with autodiff.
pub type B = Autodiff<NdArray<f32>>;

/// The default device of [`B`].
pub fn device() -> Device<B> {
    Default::default()
}

/// A tensor of standard normal values on [`B`].
pub fn random<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    random_on::<B, D>(shape)
}

/// A tensor of standard normal values on backend `Bk`'s default device.
pub fn random_on<Bk: Backend, const D: usize>(shape: [usize; D]) -> Tensor<Bk, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// A tensor's elements as `f32`, in row-major order.
pub fn values<const D: usize, Bk: Backend>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// A tensor's elements as `f32` bit patterns, for bit-exact comparisons.
pub fn bits<const D: usize, Bk: Backend>(t: Tensor<Bk, D>) -> Vec<u32> {
    values(t).into_iter().map(f32::to_bits).collect()
}

/// Asserts that `a` and `b` have the same length and agree element by element within `tol`,
/// relative to the larger magnitude (absolute below 1). `what` names the compared quantity in
/// the failure message.
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1.0f32.max(x.abs()).max(y.abs());
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

/// A module mapper that gives every rank-3 float parameter fresh normal values (standard
/// deviation 0.5), keeping whether it requires gradients. In a seeded layer the blueprint banks
/// are the only rank-3 parameters, and their last maps start at zero: after this mapper every
/// blueprint contributes something measurable.
pub struct RandomBanks;

impl<Bk: Backend> ModuleMapper<Bk> for RandomBanks {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        if D != 3 {
            return param;
        }
        param.map(|t| {
            let fresh = Tensor::random(t.shape(), Distribution::Normal(0.0, 0.5), &t.device());
            if t.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}
