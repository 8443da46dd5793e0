//! One pass over the training set: the optimizer steps of an epoch, each with its divergence
//! check, grafting step and kernel-fallback report.

use super::context::RunContext;
use super::tensors::scalar;
use super::types::TrainingTypes;
use super::Trainer;
use crate::task::{data_loader, Loading};
use crate::{ErrorKind, TaskModel, TrainError};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{GraftSignals, SeededModel};
use morphogen_flags::Feature;

/// A completed pass over the training set.
pub(super) struct Trained<M> {
    /// The model after the last step.
    pub model: M,
    /// Mean step loss.
    pub loss: f32,
    /// Share of the training predictions right while training.
    pub accuracy: f32,
    /// Steps taken.
    pub steps: usize,
    /// Errors and fallbacks reported meanwhile.
    pub errors: u64,
}

/// How a pass over the training set ended.
pub(super) enum EpochEnd<M> {
    /// Every step ran.
    Done(Trained<M>),
    /// A step's loss was NaN/Inf or spiked, for the reason given.
    Diverged(String),
}

impl Trainer {
    /// One pass over the training set in a fresh random order (Burn's data loader, shuffled by
    /// the epoch's own seed); stops early on a NaN/Inf or spiking loss.
    pub(super) fn train_epoch<T: TrainingTypes>(
        &mut self,
        mut model: T::Model,
        optim: &mut T::Optimizer,
        epoch: u32,
        run: &mut RunContext<T>,
    ) -> Result<EpochEnd<T::Model>, TrainError> {
        self.apply_disabled_kernels(&model);
        let loading = Loading {
            batch_size: self.config.batch_size,
            shuffle: Some(self.epoch_seed(epoch)),
            workers: self.config.workers,
            limit: usize::MAX,
        };
        let loader = data_loader::<T::Backend, T::Task>(&run.data.task, &run.data.train, loading, &run.device);
        let batches = loader.num_items().div_ceil(self.config.batch_size);
        run.observer.epoch_started(epoch, batches);
        let mut correct = Tensor::<T::Backend, 1>::zeros([1], &run.device);
        let (mut loss_sum, mut average, mut errors, mut predictions) = (0.0f64, None::<f32>, 0, 0);
        for batch in loader.iter() {
            let _step = tracing::debug_span!("step", step = self.step as i64).entered();
            let out = model.step(batch);
            let value = scalar(out.loss.clone());
            errors += self.signals.pass_to(run.observer);
            if let Some((kind, reason)) = self.divergence(value, average) {
                let reason = format!("{reason} at epoch {epoch}, step {}", self.step);
                run.observer.error(kind, &reason);
                return Ok(EpochEnd::Diverged(reason));
            }
            average = Some(average.map_or(value, |a| 0.95 * a + 0.05 * value));
            loss_sum += value as f64;
            correct = correct + out.correct.detach();
            predictions += out.predictions;
            model = self.optimize::<T>(model, optim, out.loss)?;
            errors += self.signals.pass_to(run.observer);
            run.observer.step(value);
        }
        let accuracy = scalar(correct) / predictions.max(1) as f32;
        let loss = (loss_sum / batches.max(1) as f64) as f32;
        Ok(EpochEnd::Done(Trained { model, loss, accuracy, steps: batches, errors }))
    }

    /// The shuffling seed of `epoch`: its own stream, so a resumed run sees the orders an
    /// uninterrupted one would.
    fn epoch_seed(&self, epoch: u32) -> u64 {
        self.config.seed ^ u64::from(epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// One optimizer step on `loss`, then the seeds' grafting step, the kernel-fallback report
    /// and (in debug mode) the invariant check.
    fn optimize<T: TrainingTypes>(
        &mut self,
        model: T::Model,
        optim: &mut T::Optimizer,
        loss: Tensor<T::Backend, 1>,
    ) -> Result<T::Model, TrainError> {
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut model = optim.step(self.config.learning_rate, model, grads);
        model.graft_step(&GraftSignals::new().with_loss(loss.detach()))?;
        self.report_kernel_fallbacks(&model);
        if self.config.debug {
            model.check_invariants()?;
        }
        self.step += 1;
        Ok(model)
    }

    /// Why a step's loss means the run diverged, if it does.
    fn divergence(&self, loss: f32, average: Option<f32>) -> Option<(ErrorKind, String)> {
        if !loss.is_finite() {
            return Some((ErrorKind::NonFiniteLoss, format!("non-finite loss {loss}")));
        }
        let average = average?;
        (loss > self.config.spike_factor * average).then(|| {
            let reason = format!("loss spike {loss:.4} > {} x moving average {average:.4}", self.config.spike_factor);
            (ErrorKind::LossSpike, reason)
        })
    }

    /// With the `kernels` flag switched off for this run, every seeded layer takes the tensor
    /// path (again after a rollback restored fresh layers).
    fn apply_disabled_kernels<B: Backend, M: SeededModel<B>>(&self, model: &M) {
        if self.disabled_flags.contains(&Feature::Kernels) {
            let reason = "the 'kernels' flag was switched off for this run by a rollback rule";
            model.visit_seeded(&mut |_, layer| layer.seed_core().fall_back_from_kernels(reason));
        }
    }

    /// Layers whose kernel check failed since the last step become fast-path fallbacks (an
    /// event, a metric, an error for the error-rate rule); training goes on, on the tensor path.
    fn report_kernel_fallbacks<B: Backend, M: SeededModel<B>>(&self, model: &M) {
        model.visit_seeded(&mut |name, layer| {
            if let Some(reason) = layer.seed_core().take_kernel_fallback() {
                tracing::warn!(layer = name, %reason, "seeded layer fell back to the tensor path");
                self.signals.fast_path_fell_back(name, &reason);
            }
        });
    }
}
