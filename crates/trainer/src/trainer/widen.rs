//! Widening the host after an epoch (`[trainer.widen]`, ADR 0025): the model and its Adam state
//! grow together.

use super::types::TrainingTypes;
use super::Trainer;
use crate::{grow_adam_state, AdamOptimizer, Observer, ParamGrowth, Task, TaskModel, TrainError};
use burn::tensor::backend::Backend;
use morphogen_contracts::MorphogenError;
use std::any::Any;

impl Trainer {
    /// `model` and `optim` widened if the config says to widen after `epoch`, else as they are.
    /// The new features' random weights come from the backend's generator, seeded for the
    /// epoch's growth just before (by the run's seed and the epoch): a run resumed from before
    /// the widening widens as an uninterrupted one does.
    pub(super) fn widen_after<T: TrainingTypes>(
        &self,
        epoch: u32,
        model: T::Model,
        optim: T::Optimizer,
        observer: &mut dyn Observer,
    ) -> Result<(T::Model, T::Optimizer), TrainError> {
        let Some(widen) = self.config.widen.filter(|widen| widen.widens_after(epoch)) else {
            return Ok((model, optim));
        };
        let (model, growths) = model.widen(widen.features)?;
        let optim = grow_optimizer_state::<T>(optim, &growths)?;
        tracing::info!(epoch, features = widen.features, params = growths.len(), "host widened");
        observer.widened(epoch, widen.features);
        Ok((model, optim))
    }

    /// Widens `model`, built narrow, as often as the host had widened when the newest checkpoint
    /// that verifies was saved, so that it has that checkpoint's shapes (the run then starts
    /// after that epoch, and [`Self::widen_after`] widens only at the widenings still to come).
    pub(super) fn widen_for_newest_checkpoint<B, M, T>(&self, model: &mut M) -> Result<(), TrainError>
    where
        B: Backend,
        T: Task,
        M: TaskModel<B, T> + Clone,
    {
        let (Some(widen), Some(dir)) = (self.config.widen, &self.checkpoints) else { return Ok(()) };
        let saved_at = dir.latest().map_or(0, |newest| newest.progress().epoch);
        let done = widen.widenings_by(u32::try_from(saved_at).unwrap_or(u32::MAX));
        for _ in 0..done {
            *model = model.clone().widen(widen.features)?.0;
        }
        Ok(())
    }

    /// Refuses widening in a data-parallel group: the replicas would have to draw the same
    /// random weights for the new features.
    pub(super) fn refuse_widening_replicas(&self) -> Result<(), TrainError> {
        match self.config.widen {
            Some(_) => Err(MorphogenError::InvalidConfig {
                component: "trainer.widen".into(),
                problem: "a run that widens its host cannot run as one replica of several yet".into(),
                hint: "remove [trainer.widen], or train on one device".into(),
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
