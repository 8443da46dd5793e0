//! What the trainer asks of the types it trains: a model that classifies images, and the bundle
//! of one run's backend, model and optimizer, named once.

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use morphogen_engine::SeededModel;
use std::marker::PhantomData;

/// A model that maps a batch of flattened images `[batch, pixels]` to class logits.
pub trait Classifier<B: Backend> {
    /// `[batch, pixels] -> [batch, classes]`.
    fn logits(&self, images: Tensor<B, 2>) -> Tensor<B, 2>;
}

/// The types of one training run, as burn-train's `LearningComponentsTypes` bundles its loop's:
/// the autodiff backend, the seeded classifier trained on it, the same model without autodiff
/// (validated and measured at each epoch end) and the optimizer. Nobody implements it by hand:
/// [`Trainer::run`](crate::Trainer::run) infers [`Training`] from the model and optimizer it
/// is given.
pub trait TrainingTypes {
    /// The backend training runs on.
    type Backend: AutodiffBackend;
    /// The model trained and grown.
    type Model: AutodiffModule<Self::Backend, InnerModule = Self::ValidModel>
        + SeededModel<Self::Backend>
        + Classifier<Self::Backend>;
    /// The model on the inner backend: [`Self::Model`]'s `valid()`.
    type ValidModel: Module<ValidBackend<Self>> + SeededModel<ValidBackend<Self>> + Classifier<ValidBackend<Self>>;
    /// The optimizer stepping the model.
    type Optimizer: Optimizer<Self::Model, Self::Backend>;
}

/// The backend of validation: the training backend without autodiff.
pub(crate) type ValidBackend<T> = <<T as TrainingTypes>::Backend as AutodiffBackend>::InnerBackend;

/// The [`TrainingTypes`] of a run on backend `B` training model `M` with optimizer `O`.
pub struct Training<B, M, O>(PhantomData<(B, M, O)>);

impl<B, M, O> TrainingTypes for Training<B, M, O>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SeededModel<B> + Classifier<B>,
    M::InnerModule: SeededModel<B::InnerBackend> + Classifier<B::InnerBackend>,
    O: Optimizer<M, B>,
{
    type Backend = B;
    type Model = M;
    type ValidModel = M::InnerModule;
    type Optimizer = O;
}
