//! Checkpoints: the known-good state saved after every epoch, and the newest one that verifies
//! restored to resume a run or to roll it back.

use super::types::TrainingTypes;
use super::{AppliedDecision, Stopped, Trainer};
use crate::{ErrorKind, Observer, TrainError};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use morphogen_checkpoint::{Checkpoint, Snapshot};
use morphogen_contracts::MorphogenError;
use morphogen_engine::SeededModel;
use std::path::PathBuf;
use tracing::field::Empty;

impl Trainer {
    /// Saves the known-good state (model, optimizer, controller state, progress) when a
    /// checkpoint directory is configured (by rank 0 alone, with replicas).
    pub(super) fn save_checkpoint<T: TrainingTypes>(
        &self,
        model: &T::Model,
        optim: &T::Optimizer,
        epoch: u32,
        val_loss: Option<f32>,
    ) -> Result<(), TrainError> {
        let Some(dir) = self.checkpoints.as_ref().filter(|_| self.writes_checkpoints()) else { return Ok(()) };
        let span = tracing::info_span!(
            "checkpoint.save",
            epoch = i64::from(epoch),
            step = self.step as i64,
            path = Empty,
            bytes = Empty
        );
        let _save = span.enter();
        let controller = serde_json::to_value(self.controller.state()).expect("controller state serialises");
        let mut snapshot = Snapshot::of(model)?
            .with_optimizer(optim)?
            .with_progress(epoch as u64, self.step)
            .with_rng(self.config.seed, None)
            .with_extra("controller", controller);
        if !self.applied.is_empty() {
            let applied = serde_json::to_value(&self.applied).expect("decision records serialise");
            snapshot = snapshot.with_extra("bus_decisions_applied", applied);
        }
        if let Some(loss) = val_loss {
            snapshot = snapshot.with_metric(loss as f64);
        }
        let saved = dir.save(&snapshot)?;
        span.record("path", saved.path.display().to_string()).record("bytes", saved.bytes as i64);
        Ok(())
    }

    /// [`Trainer::resume`]'s work: restores `model`, `optim`, the controller's state and the
    /// step count from the newest checkpoint that verifies; the run continues after the epoch
    /// it ended, which is returned.
    pub(super) fn resume_from_newest<B, M, O>(&mut self, model: &mut M, optim: &mut O) -> Result<u32, TrainError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B>,
        O: Optimizer<M, B>,
    {
        let Some(dir) = &self.checkpoints else {
            return Err(MorphogenError::InvalidConfig {
                component: "trainer".into(),
                problem: "resume needs checkpoint_dir".into(),
                hint: "set trainer.checkpoint_dir to the run's checkpoint folder".into(),
            }
            .into());
        };
        let restored = dir.rollback_with_optimizer(model, optim)?;
        self.quarantined.extend(restored.quarantined);
        self.restore_controller_state(&restored.checkpoint);
        let progress = restored.checkpoint.progress();
        self.step = progress.step;
        self.first_epoch = progress.epoch as u32 + 1;
        Ok(progress.epoch as u32)
    }

    /// A rollback's restore: the newest checkpoint that verifies over `model` and `optim`, and
    /// the controller's state saved with it. Returns the checkpoint's path; `None` (nothing
    /// restored) without a checkpoint directory.
    pub(super) fn load_newest<T: TrainingTypes>(
        &mut self,
        model: &mut T::Model,
        optim: &mut T::Optimizer,
    ) -> Result<Option<PathBuf>, TrainError> {
        let Some(dir) = &self.checkpoints else { return Ok(None) };
        let load = tracing::info_span!("checkpoint.load", path = Empty, skipped = Empty);
        let restored = load.in_scope(|| dir.rollback_with_optimizer(model, optim))?;
        load.record("path", restored.checkpoint.path().display().to_string());
        load.record("skipped", restored.skipped.len() as i64);
        self.quarantined.extend(restored.quarantined);
        self.restore_controller_state(&restored.checkpoint);
        Ok(Some(restored.checkpoint.path().to_path_buf()))
    }

    /// Where a run stopped during `epoch`: the newest checkpoint, read back and verified.
    pub(super) fn stopped_at(&self, epoch: u32) -> Result<Stopped, TrainError> {
        let checkpoint = match &self.checkpoints {
            Some(dir) => {
                let newest = dir.latest()?;
                Some((newest.path().to_path_buf(), newest.progress().epoch as u32))
            }
            None => None,
        };
        tracing::info!(epoch = i64::from(epoch), step = self.step as i64, "run stopped on request");
        Ok(Stopped { epoch, step: self.step, checkpoint })
    }

    /// Tells `observer` (and the log) about every checkpoint quarantined since the last call.
    pub(super) fn report_quarantined(&mut self, observer: &mut dyn Observer) {
        for q in self.quarantined.drain(..) {
            tracing::warn!(checkpoint = %q.from.display(), quarantine = %q.to.display(), reason = %q.reason, "checkpoint quarantined");
            observer.error(ErrorKind::CheckpointCorrupt, &q.to_string());
        }
    }

    /// Continues the controller from the state saved in `checkpoint`, if it holds one, and
    /// adds the decisions it records as applied to those known.
    fn restore_controller_state(&mut self, checkpoint: &Checkpoint) {
        if let Some(Ok(state)) = checkpoint.extra("controller").cloned().map(serde_json::from_value) {
            self.controller = self.controller.clone().with_state(state);
        }
        let saved =
            checkpoint.extra("bus_decisions_applied").cloned().map(serde_json::from_value::<Vec<AppliedDecision>>);
        for record in saved.and_then(Result::ok).unwrap_or_default() {
            if !self.applied.contains(&record) {
                self.applied.push(record);
            }
        }
    }
}
