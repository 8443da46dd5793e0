//! Rolling back: the last known-good state, the rollback rules checked at each epoch end, and
//! the return to that state (from the newest checkpoint when there is one) with the seeds that
//! were active there marked ROLLED_BACK.

use super::transitions::Transition;
use super::types::TrainingTypes;
use super::Trainer;
use crate::rules::{EpochFacts, Firing};
use crate::{Observer, Replica, TrainError};
use burn::tensor::backend::{AutodiffBackend, Backend};
use morphogen_contracts::{Command, GlobalMetrics, SeedAddress, Stage};
use morphogen_controller::Controller;
use morphogen_engine::SeededModel;
use tracing::field::Empty;

/// The last known-good state: where a rollback returns to.
pub(super) struct KnownGood<T: TrainingTypes> {
    model: T::Model,
    optim: T::Optimizer,
    controller: Controller,
    /// Validation loss of the epoch that ended in this state; `None` before the first.
    pub val_loss: Option<f32>,
}

impl<T: TrainingTypes> KnownGood<T> {
    /// Copies of `model`, `optim` and `controller`, the state after an epoch of `val_loss`.
    pub fn new(model: &T::Model, optim: &T::Optimizer, controller: &Controller, val_loss: Option<f32>) -> Self {
        Self { model: model.clone(), optim: optim.clone(), controller: controller.clone(), val_loss }
    }
}

impl Trainer {
    /// The first rollback rule that fires, reported to the observer with the flag it switches
    /// off; its reason is the rollback's.
    /// With replicas, rank 0's facts decide for every replica (memory and errors are measured
    /// on each), so that all roll back together.
    pub(super) fn check_rules<B: AutodiffBackend>(
        &mut self,
        facts: &EpochFacts,
        observer: &mut dyn Observer,
        replica: Option<&Replica<B>>,
    ) -> Result<Option<String>, TrainError> {
        let rules = &self.config.rollback_rules;
        let first = || rules.iter().enumerate().find_map(|(i, rule)| rule.check(facts).map(|f| (i, f.reason)));
        let fired = match replica {
            None => first(),
            Some(replica) => replica.agree("agree on the rollback rules", first)?,
        };
        let Some((index, reason)) = fired else { return Ok(None) };
        let Some(rule) = rules.get(index) else {
            return Err(TrainError::Collective {
                rank: replica.map_or(0, |r| r.config().rank),
                operation: "agree on the rollback rules".into(),
                problem: format!("rank 0 has a rollback rule {index} this replica lacks: the replicas' configs differ"),
            });
        };
        let firing = Firing { rule: rule.name(), reason, flag: rule.flag() };
        tracing::warn!(rule = firing.rule, reason = %firing.reason, "rollback rule fired");
        observer.rule_fired(firing.rule, &firing.reason);
        if let Some(feature) = firing.flag {
            if self.disabled_flags.insert(feature) {
                tracing::warn!(flag = feature.name(), rule = firing.rule, "feature flag disabled for this run");
                observer.flag_disabled(feature.name(), &firing.reason);
            }
        }
        Ok(Some(firing.reason))
    }

    /// Returns to the last good state; the seeds that were active there are ROLLED_BACK. Fails
    /// once `rollbacks` exceeds the configured maximum.
    pub(super) fn roll_back<T: TrainingTypes>(
        &mut self,
        good: &KnownGood<T>,
        reason: &str,
        rollbacks: u32,
        epoch: u32,
        observer: &mut dyn Observer,
    ) -> Result<(T::Model, T::Optimizer), TrainError> {
        let span = tracing::info_span!(
            "rollback",
            epoch = i64::from(epoch),
            rollbacks = i64::from(rollbacks),
            reason,
            source = Empty,
            seeds = Empty
        );
        let _rollback = span.enter();
        if rollbacks > self.config.max_rollbacks {
            return Err(TrainError::Diverged { rollbacks: rollbacks - 1, reason: reason.to_string() });
        }
        let mut model = good.model.clone();
        let mut optim = good.optim.clone();
        self.controller = good.controller.clone();
        let loaded = self.load_newest::<T>(&mut model, &mut optim)?;
        self.report_quarantined(observer);
        match loaded {
            Some(path) => {
                span.record("source", "checkpoint");
                observer.rolled_back(&format!("{reason}; restored checkpoint {}", path.display()));
            }
            None => {
                span.record("source", "memory");
                observer.rolled_back(&format!("{reason}; restored the last good epoch from memory"))
            }
        }
        model.health_reports(); // drop the statistics of the failed attempt
        let active = active_seeds(&model);
        span.record("seeds", active.len() as i64);
        self.mark_rolled_back(&mut model, active, reason, epoch, observer)?;
        Ok((model, optim))
    }

    /// Moves each of `seeds` (with the stage it is in) to ROLLED_BACK and logs it.
    fn mark_rolled_back<B: Backend, M: SeededModel<B>>(
        &mut self,
        model: &mut M,
        seeds: Vec<(SeedAddress, Stage)>,
        reason: &str,
        epoch: u32,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let metrics = GlobalMetrics { epoch, step: self.step, ..Default::default() };
        let reason = format!("rollback: {reason}");
        for (at, from) in seeds {
            model.apply_command(&Command::advance(at.clone(), Stage::RolledBack, reason.clone()))?;
            let transition = Transition { at: &at, from, to: Stage::RolledBack, reason: &reason, decided_by: None };
            self.log(transition, &metrics, observer)?;
        }
        Ok(())
    }
}

/// The seeds of `model` that can be rolled back, with their stages.
fn active_seeds<B: Backend, M: SeededModel<B>>(model: &M) -> Vec<(SeedAddress, Stage)> {
    let mut active = Vec::new();
    model.visit_seeded(&mut |name, layer| {
        for (seed, row) in layer.seed_core().table().iter().enumerate() {
            if row.stage.can_transition_to(Stage::RolledBack) {
                active.push((SeedAddress { layer: name.to_string(), seed }, row.stage));
            }
        }
    });
    active
}
