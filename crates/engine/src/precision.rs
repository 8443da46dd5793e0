//! [`Precision`]: the float type a model's matrix products compute in, PyTorch autocast's rule
//! for them. Parameters, optimizer state, gradients as the optimizer sees them, normalizations,
//! softmax, the loss and the seeds' own pass stay in the model's float type (f32): the master
//! weights. A half-precision product casts its inputs down, multiplies (tensor cores on a GPU,
//! accumulating in f32) and casts the result back; Burn's autodiff casts the gradients the same
//! way in reverse, so f32 parameters get f32 gradients.

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};
use morphogen_contracts::MorphogenError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The float type matrix products compute in: see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in the model's own float type: no casts.
    #[default]
    F32,
    /// Products in bfloat16 (f32's range, 8 bits of mantissa): mixed-precision training.
    Bf16,
    /// Products in IEEE half precision (narrower range than bf16).
    F16,
}

impl Precision {
    /// The name configs and flags use (`f32`, `bf16`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// The half type products are cast to; `None` for [`Precision::F32`].
    fn half(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(FloatDType::BF16),
            Precision::F16 => Some(FloatDType::F16),
        }
    }

    /// Checks that `B` on `device` computes in this precision: a typed error naming what to use
    /// instead (Burn's CPU backend has no half types; its CUDA backend has both).
    pub fn check<B: Backend>(self, device: &B::Device) -> Result<(), MorphogenError> {
        let Some(half) = self.half() else { return Ok(()) };
        if B::supports_dtype(device, DType::from(half)) {
            return Ok(());
        }
        Err(MorphogenError::InvalidConfig {
            component: "model.precision".into(),
            problem: format!("this backend has no {} arithmetic on {device:?}", self.name()),
            hint: "use precision = \"f32\", or a GPU backend (--backend cuda) for half-precision products".into(),
        })
    }

    /// `a.matmul(b)` in this precision, the result in `a`'s float type.
    pub fn matmul<B: Backend, const D: usize>(self, a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
        match self.half() {
            None => a.matmul(b),
            Some(half) => {
                let dtype = a.dtype();
                a.cast(half).matmul(b.cast(half)).cast(FloatDType::from(dtype))
            }
        }
    }

    /// `layer.forward(x)` with its product in this precision, the result in `x`'s float type.
    pub fn linear<B: Backend, const D: usize>(self, layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
        let Some(half) = self.half() else { return layer.forward(x) };
        let dtype = FloatDType::from(x.dtype());
        let weight = layer.weight.val().cast(half);
        let bias = layer.bias.as_ref().map(|b| b.val().cast(half));
        burn::tensor::module::linear(x.cast(half), weight, bias).cast(dtype)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
