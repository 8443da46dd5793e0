//! One pass over the training set: the optimizer steps of an epoch, each with its divergence
//! check, grafting step and kernel-fallback report.

use super::context::RunContext;
use super::tensors::{batch, scalar};
use super::types::{Classifier, TrainingTypes};
use super::Trainer;
use crate::{ErrorKind, TrainError};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use morphogen_engine::{GraftSignals, SeededModel};
use morphogen_flags::Feature;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A completed pass over the training set.
pub(super) struct Trained<M> {
    /// The model after the last step.
    pub model: M,
    /// Mean step loss.
    pub loss: f32,
    /// Share of the training images classified right while training.
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
    /// One pass over the training set in a fresh random order; stops early on a NaN/Inf or
    /// spiking loss.
    pub(super) fn train_epoch<T: TrainingTypes>(
        &mut self,
        mut model: T::Model,
        optim: &mut T::Optimizer,
        epoch: u32,
        run: &mut RunContext<T>,
    ) -> Result<EpochEnd<T::Model>, TrainError> {
        self.apply_disabled_kernels(&model);
        let order = self.shuffled_order(run.train.len(), epoch);
        let batches: Vec<&[usize]> = order.chunks(self.config.batch_size).collect();
        run.observer.epoch_started(epoch, batches.len());
        let loss_fn = CrossEntropyLossConfig::new().init(&run.device);
        let mut correct = Tensor::<T::Backend, 1, Int>::zeros([1], &run.device);
        let (mut loss_sum, mut average, mut errors) = (0.0f64, None::<f32>, 0);
        for indices in &batches {
            let _step = tracing::debug_span!("step", step = self.step as i64).entered();
            let (x, y) = batch::<T::Backend>(run.train, indices, &run.device);
            let logits = model.logits(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let value = scalar(loss.clone());
            errors += self.signals.pass_to(run.observer);
            if let Some((kind, reason)) = self.divergence(value, average) {
                let reason = format!("{reason} at epoch {epoch}, step {}", self.step);
                run.observer.error(kind, &reason);
                return Ok(EpochEnd::Diverged(reason));
            }
            average = Some(average.map_or(value, |a| 0.95 * a + 0.05 * value));
            loss_sum += value as f64;
            correct = correct + logits.argmax(1).reshape([indices.len()]).equal(y).int().sum();
            model = self.optimize::<T>(model, optim, loss)?;
            errors += self.signals.pass_to(run.observer);
            run.observer.step(value);
        }
        let accuracy = scalar(correct.float()) / run.train.len().max(1) as f32;
        let loss = (loss_sum / batches.len().max(1) as f64) as f32;
        Ok(EpochEnd::Done(Trained { model, loss, accuracy, steps: batches.len(), errors }))
    }

    /// The indices `0..len` shuffled by the epoch's own stream, so a resumed run sees the
    /// orders an uninterrupted one would.
    fn shuffled_order(&self, len: usize, epoch: u32) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(self.config.seed ^ u64::from(epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut rng);
        order
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
