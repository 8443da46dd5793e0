//! What the trainer's test modules share: the backend and the data.

use burn::backend::{Autodiff, NdArray};
use morphogen_trainer::{fashion_mnist, Dataset, FASHION_MNIST_DIR};
use std::path::Path;

/// The backend every test trains on.
pub type B = Autodiff<NdArray>;

/// The first `train` training and `valid` validation images of Fashion-MNIST.
pub fn data(train: usize, valid: usize) -> (Dataset, Dataset) {
    let (t, v) = fashion_mnist(Path::new(FASHION_MNIST_DIR)).expect("install dataset-fashion-mnist (see README)");
    (t.take(train), v.take(valid))
}
