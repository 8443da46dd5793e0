//! Images and labels in memory: a Burn data set of [`ImageItem`]s.

use crate::{ImageClassification, ImageItem, TaskData};
use burn::data::dataset::Dataset;

/// Images and labels, in memory. Pixels are `f32` in `[0, 1]`, one image after another.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// `len * pixels` values.
    pub images: Vec<f32>,
    /// One class per image.
    pub labels: Vec<u8>,
    /// `[channels, height, width]` of one image.
    pub shape: [usize; 3],
    /// Number of classes.
    pub classes: usize,
}

impl ImageSet {
    /// Values per image.
    pub fn pixels(&self) -> usize {
        self.shape.iter().product()
    }

    /// The task these images pose: their shape and number of classes.
    pub fn classification(&self) -> ImageClassification {
        ImageClassification { shape: self.shape, classes: self.classes }
    }

    /// Training on `self`, validating on `valid`: the task of `self`'s images with both sets.
    pub fn with_validation(self, valid: ImageSet) -> TaskData<ImageClassification> {
        TaskData::new(self.classification(), self, valid)
    }

    /// The first `n` images (all of them if `n` is larger).
    pub fn take(&self, n: usize) -> ImageSet {
        let n = n.min(self.labels.len());
        ImageSet {
            images: self.images[..n * self.pixels()].to_vec(),
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
            classes: self.classes,
        }
    }
}

impl Dataset<ImageItem> for ImageSet {
    fn get(&self, index: usize) -> Option<ImageItem> {
        let p = self.pixels();
        let label = *self.labels.get(index)?;
        Some(ImageItem { pixels: self.images[index * p..(index + 1) * p].to_vec(), label: label.into() })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}
