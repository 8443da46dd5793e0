//! Seed transitions: applying a controller command to the model, and logging every transition
//! to the event log and the observer.

use super::Trainer;
use crate::{Observer, TrainError};
use burn::tensor::backend::Backend;
use morphogen_contracts::{Command, GlobalMetrics, SeedAddress, Stage, TransitionEvent};
use morphogen_engine::SeededModel;
use tracing::field::Empty;

impl Trainer {
    /// Applies one controller command and logs the transition.
    pub(super) fn apply<B: Backend, M: SeededModel<B>>(
        &mut self,
        model: &mut M,
        command: &Command,
        metrics: &GlobalMetrics,
        decided_by: Option<&str>,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let from = stage_of(model, &command.target).unwrap_or(Stage::Dormant);
        let span = tracing::info_span!(
            "command",
            layer = %command.target.layer,
            seed = command.target.seed as i64,
            kind = ?command.kind,
            reason = %command.reason,
            from = from.name(),
            to = Empty
        );
        let _command = span.enter();
        model.apply_command(command)?;
        let to = stage_of(model, &command.target).unwrap_or(from);
        span.record("to", to.name());
        let event = Transition { at: &command.target, from, to, reason: &command.reason, decided_by };
        self.log(event, metrics, observer)
    }

    /// Records `transition`: in the event log and to the observer.
    pub(super) fn log(
        &mut self,
        transition: Transition<'_>,
        metrics: &GlobalMetrics,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let Transition { at, from, to, reason, decided_by } = transition;
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let event = TransitionEvent {
            time,
            epoch: metrics.epoch,
            step: self.step,
            layer: at.layer.clone(),
            seed: at.seed,
            from,
            to,
            reason: reason.to_string(),
            metrics: *metrics,
            decided_by: decided_by.map(str::to_string),
        };
        observer.transition(&event);
        self.events.push(event)
    }
}

/// A seed's move from one stage to another, and why.
pub(super) struct Transition<'a> {
    /// The seed.
    pub at: &'a SeedAddress,
    /// Its stage before.
    pub from: Stage,
    /// Its stage after.
    pub to: Stage,
    /// Why.
    pub reason: &'a str,
    /// The controller service that ordered it, when one did over the bus.
    pub decided_by: Option<&'a str>,
}

/// The stage of the seed at `at`, if the model has it.
fn stage_of<B: Backend, M: SeededModel<B>>(model: &M, at: &SeedAddress) -> Option<Stage> {
    let mut stage = None;
    model.visit_seeded(&mut |name, layer| {
        if name == at.layer {
            stage = layer.seed_core().table().get(at.seed).map(|r| r.stage);
        }
    });
    stage
}
