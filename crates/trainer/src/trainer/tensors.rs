//! Between the data set and tensors: a batch of images and labels in, a number out.

use crate::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// The images `[n, pixels]` and labels `[n]` at `indices` of `data`, on `device`.
pub(super) fn batch<B: Backend>(
    data: &Dataset,
    indices: &[usize],
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let n = indices.len();
    let images = TensorData::new(data.gather_images(indices), [n, data.pixels()]);
    let labels = TensorData::new(indices.iter().map(|&i| data.labels[i] as i64).collect::<Vec<_>>(), [n]);
    (Tensor::from_data(images, device), Tensor::from_data(labels, device))
}

/// The first value of `t`, read back as `f32`.
pub(super) fn scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> f32 {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 scalar")[0]
}
