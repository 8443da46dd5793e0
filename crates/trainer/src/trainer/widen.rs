//! Widening the host after an epoch (`[trainer.widen]`, ADR 0025): the model and its Adam state
//! grow together.

use super::types::TrainingTypes;
use super::Trainer;
use crate::{grow_adam_state, AdamOptimizer, Observer, ParamGrowth, TaskModel, TrainError};
use morphogen_contracts::MorphogenError;
use std::any::Any;

impl Trainer {
    /// `model` and `optim` widened if the config says to widen after `epoch`, else as they are.
    pub(super) fn widen_after<T: TrainingTypes>(
        &self,
        epoch: u32,
        model: T::Model,
        optim: T::Optimizer,
        observer: &mut dyn Observer,
    ) -> Result<(T::Model, T::Optimizer), TrainError> {
        let Some(widen) = self.config.widen.filter(|widen| widen.after_epoch == epoch) else {
            return Ok((model, optim));
        };
        let (model, growths) = model.widen(widen.features)?;
        let optim = grow_optimizer_state::<T>(optim, &growths)?;
        tracing::info!(epoch, features = widen.features, params = growths.len(), "host widened");
        observer.widened(epoch, widen.features);
        Ok((model, optim))
    }

    /// Refuses what a widening run cannot do yet: resume (the checkpoint's shapes depend on
    /// whether it was saved before the widening) and data parallelism.
    pub(super) fn check_widening(&self, what: &str) -> Result<(), TrainError> {
        match self.config.widen {
            Some(_) => Err(MorphogenError::InvalidConfig {
                component: "trainer.widen".into(),
                problem: format!("a run that widens its host cannot {what} yet"),
                hint: "remove [trainer.widen], or start the run afresh on one device".into(),
            }
            .into()),
            None => Ok(()),
        }
    }
}

/// `optim`'s moments grown as `growths` say: Adam's only (the optimizer the CLI trains with).
fn grow_optimizer_state<T: TrainingTypes>(
    optim: T::Optimizer,
    growths: &[ParamGrowth],
) -> Result<T::Optimizer, TrainError> {
    let optim: Box<dyn Any> = Box::new(optim);
    let adam = optim.downcast::<AdamOptimizer<T::Model, T::Backend>>().map_err(|_| MorphogenError::InvalidConfig {
        component: "trainer.widen".into(),
        problem: "widening grows the state of Adam only, and this run's optimizer is another".into(),
        hint: "train with burn's Adam (AdamConfig::new().init()) or remove [trainer.widen]".into(),
    })?;
    let grown: Box<dyn Any> = Box::new(grow_adam_state(*adam, growths));
    Ok(*grown.downcast::<T::Optimizer>().expect("the optimizer's own type"))
}
