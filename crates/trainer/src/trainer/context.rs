//! What one run reads, runs on and reports to.

use super::types::TrainingTypes;
use crate::{Dataset, Observer};
use burn::tensor::Device;

/// The data a run trains and validates on, its device, and the observer it reports to.
pub(super) struct RunContext<'a, T: TrainingTypes> {
    /// The training set.
    pub train: &'a Dataset,
    /// The validation set.
    pub valid: &'a Dataset,
    /// Where the model lives.
    pub device: Device<T::Backend>,
    /// Told about every step, measurement, transition and error.
    pub observer: &'a mut dyn Observer,
}
