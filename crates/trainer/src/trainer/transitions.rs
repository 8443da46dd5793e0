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
        self.log(&command.target, from, to, &command.reason, metrics, observer)
    }

    /// Records that the seed `at` went from `from` to `to` for `reason`: in the event log and
    /// to the observer.
    pub(super) fn log(
        &mut self,
        at: &SeedAddress,
        from: Stage,
        to: Stage,
        reason: &str,
        metrics: &GlobalMetrics,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
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
        };
        observer.transition(&event);
        self.events.push(event)
    }
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
