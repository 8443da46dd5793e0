//! Image classification: images `[channels, height, width]` with a class each, scored by accuracy.

use crate::Task;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use morphogen_contracts::Score;

/// Classify images of one shape into `classes` classes (Fashion-MNIST: `[1, 28, 28]`, 10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageClassification {
    /// `[channels, height, width]` of every image.
    pub shape: [usize; 3],
    /// Number of classes.
    pub classes: usize,
}

/// One image and its class.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageItem {
    /// `channels * height * width` values, row-major.
    pub pixels: Vec<f32>,
    /// The class, below the task's `classes`.
    pub label: usize,
}

/// A batch of images and their classes.
#[derive(Clone, Debug)]
pub struct ImageBatch<B: Backend> {
    /// `[batch, channels, height, width]`.
    pub images: Tensor<B, 4>,
    /// `[batch]`.
    pub labels: Tensor<B, 1, Int>,
}

impl Task for ImageClassification {
    type Item = ImageItem;
    type Batch<B: Backend> = ImageBatch<B>;

    fn score(&self) -> Score {
        Score::Accuracy
    }

    fn batch<B: Backend>(&self, items: Vec<ImageItem>, device: &B::Device) -> ImageBatch<B> {
        let n = items.len();
        let [c, h, w] = self.shape;
        let labels: Vec<i64> = items.iter().map(|item| item.label as i64).collect();
        let pixels: Vec<f32> = items.into_iter().flat_map(|item| item.pixels).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [n, c, h, w]), device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }

    fn select<B: Backend>(&self, batch: &ImageBatch<B>, indices: Tensor<B, 1, Int>) -> ImageBatch<B> {
        ImageBatch {
            images: batch.images.clone().select(0, indices.clone()),
            labels: batch.labels.clone().select(0, indices),
        }
    }
}
