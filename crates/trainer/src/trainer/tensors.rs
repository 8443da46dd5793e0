//! Between tensors and the host: a number out.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The first value of `t`, read back as `f32`.
pub(super) fn scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> f32 {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 scalar")[0]
}
