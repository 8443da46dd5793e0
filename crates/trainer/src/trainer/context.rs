//! What one run reads, runs on and reports to.

use super::types::{TrainingTypes, ValidBackend};
use crate::{DeviceData, Observer, Replica, Shard, TaskData};
use burn::tensor::Device;

/// The task and data a run trains and validates on, its device, and the observer it reports to.
pub(super) struct RunContext<'a, T: TrainingTypes> {
    /// The task with its training and validation sets.
    pub data: &'a TaskData<T::Task>,
    /// The training set, on the device.
    pub train: DeviceData<T::Backend, T::Task>,
    /// The validation set, on the device.
    pub valid: DeviceData<ValidBackend<T>, T::Task>,
    /// Where the model lives.
    pub device: Device<T::Backend>,
    /// Told about every step, measurement, transition and error.
    pub observer: &'a mut dyn Observer,
    /// This run's place in a data-parallel group, when it is one replica of several.
    pub replica: Option<Replica<T::Backend>>,
}

impl<'a, T: TrainingTypes> RunContext<'a, T> {
    /// Uploads `data`'s training and validation sets to `device`, for a run that is `replica`
    /// when that is set.
    pub fn upload(
        data: &'a TaskData<T::Task>,
        device: Device<T::Backend>,
        observer: &'a mut dyn Observer,
        replica: Option<Replica<T::Backend>>,
    ) -> Self {
        let _upload = tracing::info_span!("upload_data").entered();
        let train = DeviceData::upload(&data.task, &*data.train, &device);
        let valid = DeviceData::upload(&data.task, &*data.valid, &device);
        Self { data, train, valid, device, observer, replica }
    }

    /// This replica's part of every batch; `None` alone.
    pub fn shard(&self) -> Option<Shard> {
        self.replica.as_ref().map(|replica| replica.config().batch_shard())
    }
}
