//! What one run reads, runs on and reports to.

use super::types::TrainingTypes;
use crate::{Observer, TaskData};
use burn::tensor::Device;

/// The task and data a run trains and validates on, its device, and the observer it reports to.
pub(super) struct RunContext<'a, T: TrainingTypes> {
    /// The task with its training and validation sets.
    pub data: &'a TaskData<T::Task>,
    /// Where the model lives.
    pub device: Device<T::Backend>,
    /// Told about every step, measurement, transition and error.
    pub observer: &'a mut dyn Observer,
}
