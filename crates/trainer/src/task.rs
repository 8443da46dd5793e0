//! What the trainer trains for, in the shape of burn-train's `TrainStep`/`ValidStep`: a [`Task`]
//! (its examples, how a list of them becomes a batch of tensors, the score it names) and a
//! [`TaskModel`] (a batch in, its loss and counts out).

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::transform::PartialDataset;
use burn::data::dataset::Dataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use morphogen_contracts::Score;
use std::fmt::Debug;
use std::sync::Arc;

/// A learning task: what one example is, how examples become a batch, and which score the
/// controller reads. [`ImageClassification`](crate::ImageClassification) and
/// [`NextCharacter`](crate::NextCharacter) ship; implement it for your own.
pub trait Task: Clone + Debug + Send + Sync + 'static {
    /// One example as a data set holds it.
    type Item: Clone + Debug + Send + Sync + 'static;
    /// A batch of examples as tensors on one device.
    type Batch<B: Backend>: Clone + Debug + Send + 'static;

    /// The "higher is better" number this task is judged by.
    fn score(&self) -> Score;

    /// Stacks `items` into a batch on `device`.
    fn batch<B: Backend>(&self, items: Vec<Self::Item>, device: &B::Device) -> Self::Batch<B>;
}

/// A model that solves task `T`: one batch in, its loss and counts out.
pub trait TaskModel<B: Backend, T: Task> {
    /// The forward pass on `batch` and its loss.
    fn step(&self, batch: T::Batch<B>) -> StepOutput<B>;
}

/// What one batch gives the trainer.
#[derive(Clone, Debug)]
pub struct StepOutput<B: Backend> {
    /// Mean loss over the batch's predictions: what the optimizer minimizes.
    pub loss: Tensor<B, 1>,
    /// How many predictions were right, as a one-element float tensor (kept on the device).
    pub correct: Tensor<B, 1>,
    /// Predictions made: images for classification, tokens for language modelling.
    pub predictions: usize,
}

impl<B: Backend> StepOutput<B> {
    /// Cross-entropy of `logits` `[n, classes]` against `targets` `[n]`, and the arg-max hits.
    pub fn classification(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Self {
        let [n, _] = logits.dims();
        let loss = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits.clone(), targets.clone());
        let correct = logits.argmax(1).reshape([n]).equal(targets).int().sum().float();
        Self { loss, correct, predictions: n }
    }
}

/// A task's training and validation examples.
#[derive(Clone)]
pub struct TaskData<T: Task> {
    /// The task.
    pub task: T,
    /// Examples trained on, shuffled every epoch.
    pub train: Arc<dyn Dataset<T::Item>>,
    /// Examples validated on, in order.
    pub valid: Arc<dyn Dataset<T::Item>>,
}

impl<T: Task> TaskData<T> {
    /// Bundles a task with its data sets.
    pub fn new(task: T, train: impl Dataset<T::Item> + 'static, valid: impl Dataset<T::Item> + 'static) -> Self {
        Self { task, train: Arc::new(train), valid: Arc::new(valid) }
    }
}

/// Burn's batcher for a task: the task's own [`Task::batch`].
#[derive(Clone, Debug)]
struct TaskBatcher<T>(T);

impl<B: Backend, T: Task> Batcher<B, T::Item, T::Batch<B>> for TaskBatcher<T> {
    fn batch(&self, items: Vec<T::Item>, device: &B::Device) -> T::Batch<B> {
        self.0.batch(items, device)
    }
}

/// How a data loader walks its data set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loading {
    /// Examples per batch.
    pub batch_size: usize,
    /// Shuffle with this seed (`None`: in order).
    pub shuffle: Option<u64>,
    /// Background threads building batches (0: on the calling thread). More than 0 makes the
    /// order in which batches arrive vary from run to run.
    pub workers: usize,
    /// Only the first this many examples.
    pub limit: usize,
}

/// Burn's data loader over the first `loading.limit` examples of `data`, batches on `device`.
pub(crate) fn data_loader<B: Backend, T: Task>(
    task: &T,
    data: &Arc<dyn Dataset<T::Item>>,
    loading: Loading,
    device: &B::Device,
) -> Arc<dyn DataLoader<B, T::Batch<B>>> {
    let end = loading.limit.min(data.len());
    let builder = DataLoaderBuilder::new(TaskBatcher(task.clone()))
        .batch_size(loading.batch_size)
        .num_workers(loading.workers)
        .set_device(device.clone());
    let builder = match loading.shuffle {
        Some(seed) => builder.shuffle(seed),
        None => builder,
    };
    builder.build(PartialDataset::new(data.clone(), 0, end))
}
