//! What the trainer trains for, in the shape of burn-train's `TrainStep`/`ValidStep`: a [`Task`]
//! (its examples, how a list of them becomes a batch of tensors and how a batch is gathered from
//! another, the score it names) and a [`TaskModel`] (a batch in, its loss and counts out).

use crate::ParamGrowth;
use burn::data::dataset::Dataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use morphogen_contracts::MorphogenError;
use morphogen_contracts::Score;
use std::fmt::Debug;
use std::sync::Arc;

/// A learning task: what one example is, how examples become a batch, how a batch is gathered
/// from another on the device, and which score the controller reads.
/// [`ImageClassification`](crate::ImageClassification) and
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

    /// The examples of `batch` at `indices`, in that order, gathered on the batch's device (the
    /// trainer uploads a data set once as one batch and gathers every training batch from it).
    fn select<B: Backend>(&self, batch: &Self::Batch<B>, indices: Tensor<B, 1, Int>) -> Self::Batch<B>;
}

/// A model that solves task `T`: one batch in, its loss and counts out.
pub trait TaskModel<B: Backend, T: Task> {
    /// The forward pass on `batch` and its loss.
    fn step(&self, batch: T::Batch<B>) -> StepOutput<B>;

    /// This model `features` wider, computing what it computed, and how each parameter grew
    /// (`[trainer.widen]`, ADR 0025). Models that cannot widen refuse, as by default.
    fn widen(self, features: usize) -> Result<(Self, Vec<ParamGrowth>), MorphogenError>
    where
        Self: Sized,
    {
        Err(MorphogenError::InvalidConfig {
            component: "trainer.widen".into(),
            problem: format!("this model cannot widen (asked for {features} features)"),
            hint: "remove [trainer.widen]: the transformer and ResNet presets widen".into(),
        })
    }
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
