//! One epoch's optimizer steps, each with its grafting step and kernel-fallback report, and the
//! divergence checks on their losses.

use super::context::RunContext;
use super::loss_watch::LossWatch;
use super::tensors::scalar;
use super::types::TrainingTypes;
use super::Trainer;
use crate::{EpochPlan, Observer, Replica, TaskModel, TrainError};
use burn::module::Module;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use morphogen_engine::{GraftSignals, MorphogenError, SeededModel};
use morphogen_flags::Feature;

/// A completed epoch of steps.
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
    /// The stop flag was set: the pass ended after the step that saw it, with this model.
    Stopped(M),
}

impl Trainer {
    /// One epoch's steps ([`EpochPlan`]: a pass over the training set in a fresh random order,
    /// or `steps_per_epoch` steps of passes), gathered on the device; the losses are read back
    /// after the first step and every `loss_check_every` steps, and the epoch stops at the
    /// first NaN/Inf or spiking one.
    pub(super) fn train_epoch<T: TrainingTypes>(
        &mut self,
        mut model: T::Model,
        optim: &mut T::Optimizer,
        epoch: u32,
        run: &mut RunContext<T>,
    ) -> Result<EpochEnd<T::Model>, TrainError> {
        self.apply_disabled_kernels(&model);
        let plan = EpochPlan::new(&self.config, run.train.len());
        let batches = plan.steps();
        run.observer.epoch_started(epoch, batches);
        let mut correct = Tensor::<T::Backend, 1>::zeros([1], &run.device);
        let (mut watch, mut errors, mut predictions) = (LossWatch::new(self.config.spike_factor), 0, 0);
        let slices = plan.slices(epoch);
        let shard = run.shard();
        let walk = slices.iter().flat_map(|slice| {
            let batching = shard.map_or(slice.batching, |shard| slice.batching.sharded(shard));
            run.train.sized_batches(&run.data.task, batching, slice.first..slice.first + slice.count)
        });
        for (index, (batch, whole)) in walk.enumerate() {
            let _step = tracing::debug_span!("step", step = self.step as i64).entered();
            let out = tracing::debug_span!("forward").in_scope(|| model.step(batch));
            errors += self.signals.pass_to(run.observer);
            correct = correct + out.correct.detach();
            predictions += out.predictions;
            let rate = self.learning_rate(&plan, epoch, index);
            let step = self.step;
            let replica = run.replica.as_ref().map(|replica| (replica, whole));
            let (stepped, loss) = self.optimize::<T>(model, optim, out.loss, rate, replica)?;
            model = stepped;
            watch.push(step, loss);
            errors += self.signals.pass_to(run.observer);
            // The first step's loss is read at once: an early sanity check, and the moment the
            // observer learns that training has started.
            let check_now = index == 0 || watch.unread() >= self.config.loss_check_every;
            if self.stop_agreed(check_now, run.replica.as_ref())? {
                return Ok(read_losses(&mut watch, epoch, run.observer).err().unwrap_or(EpochEnd::Stopped(model)));
            }
            if check_now {
                if let Err(diverged) = read_losses(&mut watch, epoch, run.observer) {
                    return Ok(diverged);
                }
            }
        }
        if let Err(diverged) = read_losses(&mut watch, epoch, run.observer) {
            return Ok(diverged);
        }
        let (correct, predictions) = match run.replica.as_ref() {
            None => (scalar(correct), predictions as f32),
            Some(replica) => {
                let sums = replica.add_up(vec![scalar(correct), predictions as f32], "add up training accuracy")?;
                (sums[0], sums[1])
            }
        };
        let accuracy = correct / predictions.max(1.0);
        let loss = (watch.sum / batches.max(1) as f64) as f32;
        Ok(EpochEnd::Done(Trained { model, loss, accuracy, steps: batches, errors }))
    }

    /// Whether to stop after this step: at once when the stop flag is set, alone; with replicas,
    /// only at a loss check (`check_now`), and then when any replica's flag is set, so that all
    /// stop after the same step.
    fn stop_agreed<B: AutodiffBackend>(
        &self,
        check_now: bool,
        replica: Option<&Replica<B>>,
    ) -> Result<bool, TrainError> {
        match replica {
            None => Ok(self.stop_requested()),
            Some(_) if !check_now => Ok(false),
            Some(replica) => replica.any(self.stop_requested(), "agree on stopping"),
        }
    }

    /// The learning rate of step `index` of `epoch`, by the schedule, over the whole run (or,
    /// restarted at a widening, over the rest of it).
    fn learning_rate(&self, plan: &EpochPlan, epoch: u32, index: usize) -> f64 {
        let c = &self.config;
        let steps = plan.steps() as u64;
        let (position, total) = (plan.position(epoch, index), u64::from(c.epochs) * steps);
        let (position, total) = match c.widen {
            Some(widen) => widen.schedule_span(epoch, steps, position, total),
            None => (position, total),
        };
        c.lr_schedule.rate(c.learning_rate, c.min_learning_rate, position, total)
    }

    /// One optimizer step on `loss` at `rate`, then the seeds' grafting step, the kernel-fallback
    /// report and (in debug mode) the invariant check. With a replica (and the size of the global
    /// batch this replica took a shard of), gradients, loss and gradient norms are first averaged over the
    /// replicas, weighted so that they are those of the whole global batch. Returns the model
    /// and the step's loss (the global batch's, with replicas).
    fn optimize<T: TrainingTypes>(
        &mut self,
        model: T::Model,
        optim: &mut T::Optimizer,
        loss: Tensor<T::Backend, 1>,
        rate: f64,
        replica: Option<(&Replica<T::Backend>, usize)>,
    ) -> Result<(T::Model, Tensor<T::Backend, 1>), TrainError> {
        let (grads, loss, norms) = {
            let _backward = tracing::debug_span!("backward").entered();
            let loss = match replica {
                None => loss,
                Some((replica, whole)) => loss.mul_scalar(replica.config().loss_weight(whole)),
            };
            let grads = loss.backward();
            let norms = seed_grad_norms(&model, &grads);
            let grads = GradientsParams::from_grads(grads, &model);
            match replica {
                None => (grads, loss.detach(), norms),
                Some((replica, _)) => average(replica, &model, grads, loss, norms)?,
            }
        };
        let mut model = {
            let _optimizer = tracing::debug_span!("optimizer").entered();
            optim.step(rate, model, grads)
        };
        let signals = GraftSignals::new().with_loss(loss.clone());
        tracing::debug_span!("graft_step").in_scope(|| graft_step(&mut model, signals, norms))?;
        self.report_kernel_fallbacks(&model);
        if self.config.debug {
            model.check_invariants()?;
        }
        self.step += 1;
        Ok((model, loss))
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

/// Per-seed blueprint gradient norms, by seeded layer.
type SeedGradNorms<B> = Vec<(String, Tensor<B, 1>)>;

/// Gradients, weighted loss and gradient norms averaged over the replicas in one collective call:
/// the global batch's gradients and loss, and the mean of the replicas' norms (what the
/// `grad_norm_gated` gate reads with replicas).
fn average<B: AutodiffBackend, M: Module<B>>(
    replica: &Replica<B>,
    model: &M,
    grads: GradientsParams,
    weighted_loss: Tensor<B, 1>,
    norms: SeedGradNorms<B>,
) -> Result<(GradientsParams, Tensor<B, 1>, SeedGradNorms<B>), TrainError> {
    let extras = std::iter::once(weighted_loss.detach().inner()).chain(norms.iter().map(|(_, n)| n.clone().inner()));
    let (grads, mut means) = replica.average_with(model, grads, extras.collect())?;
    let norms = norms.into_iter().zip(means.split_off(1)).map(|((layer, _), mean)| (layer, Tensor::from_inner(mean)));
    let loss = Tensor::from_inner(means.remove(0));
    Ok((grads, loss, norms.collect()))
}

/// Each seeded layer's per-seed blueprint gradient norms, for the layers whose grafting seeds
/// gate on them (`grad_norm_gated`); measured before the optimizer takes the gradients.
fn seed_grad_norms<B: AutodiffBackend, M: SeededModel<B>>(model: &M, grads: &B::Gradients) -> SeedGradNorms<B> {
    let mut norms = Vec::new();
    model.visit_seeded(&mut |name, layer| {
        if layer.seed_core().needs_grad_norms() {
            norms.push((name.to_string(), layer.seed_core().seed_grad_norms(grads)));
        }
    });
    norms
}

/// One grafting step on every seeded layer: `signals`, plus its gradient norms for a layer
/// that has them.
fn graft_step<B: Backend, M: SeededModel<B>>(
    model: &mut M,
    signals: GraftSignals<B>,
    norms: SeedGradNorms<B>,
) -> Result<(), MorphogenError> {
    model.graft_step_each(&|path| match norms.iter().find(|(layer, _)| layer == path) {
        Some((_, n)) => signals.clone().with_seed_grad_norms(n.clone()),
        None => signals.clone(),
    })
}

/// Reads and checks the losses `watch` holds; a divergence is reported and ends the epoch.
fn read_losses<B: Backend, M>(
    watch: &mut LossWatch<B>,
    epoch: u32,
    observer: &mut dyn Observer,
) -> Result<(), EpochEnd<M>> {
    let _read = tracing::debug_span!("read_losses", steps = watch.unread() as i64).entered();
    watch.read(observer).map_err(|(kind, reason)| {
        let reason = format!("{reason} of epoch {epoch}");
        observer.error(kind, &reason);
        EpochEnd::Diverged(reason)
    })
}
