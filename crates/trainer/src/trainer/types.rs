//! What the trainer asks of the types it trains: the bundle of one run's backend, task, model and
//! optimizer, named once.

use crate::{Task, TaskModel};
use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use morphogen_engine::SeededModel;
use std::marker::PhantomData;

/// The types of one training run, as burn-train's `LearningComponentsTypes` bundles its loop's:
/// the autodiff backend, the task, the seeded model trained on it for that task, the same model
/// without autodiff (validated and measured at each epoch end) and the optimizer. Nobody
/// implements it by hand: [`Trainer::run`](crate::Trainer::run) infers [`Training`] from the
/// model, optimizer and data it is given.
pub trait TrainingTypes {
    /// The backend training runs on.
    type Backend: AutodiffBackend;
    /// What the model learns.
    type Task: Task;
    /// The model trained and grown.
    type Model: AutodiffModule<Self::Backend, InnerModule = Self::ValidModel>
        + SeededModel<Self::Backend>
        + TaskModel<Self::Backend, Self::Task>
        + 'static;
    /// The model on the inner backend: [`Self::Model`]'s `valid()`.
    type ValidModel: Module<ValidBackend<Self>>
        + SeededModel<ValidBackend<Self>>
        + TaskModel<ValidBackend<Self>, Self::Task>;
    /// The optimizer stepping the model.
    type Optimizer: Optimizer<Self::Model, Self::Backend> + 'static;
}

/// The backend of validation: the training backend without autodiff.
pub(crate) type ValidBackend<T> = <<T as TrainingTypes>::Backend as AutodiffBackend>::InnerBackend;

/// The [`TrainingTypes`] of a run on backend `B` training model `M` with optimizer `O` for task `T`.
pub struct Training<B, M, O, T>(PhantomData<(B, M, O, T)>);

impl<B, M, O, T> TrainingTypes for Training<B, M, O, T>
where
    B: AutodiffBackend,
    T: Task,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + 'static,
    M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
    O: Optimizer<M, B> + 'static,
{
    type Backend = B;
    type Task = T;
    type Model = M;
    type ValidModel = M::InnerModule;
    type Optimizer = O;
}
