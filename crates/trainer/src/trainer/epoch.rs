//! The epoch loop: each epoch trains, validates, checks the rollback rules and lets the
//! controller decide; its result becomes the new known-good state, or the run rolls back to
//! the last one and tries the epoch again.

use super::context::RunContext;
use super::evaluation::{evaluate_part, evaluate_seeds_part, measure_system, EvalBudget, Evaluation};
use super::rollback::KnownGood;
use super::steps::{EpochEnd, Trained};
use super::types::TrainingTypes;
use super::{TrainOutcome, Trainer};
use crate::epoch_plan::numbered_seed;
use crate::resources::{measure, Resources};
use crate::rules::EpochFacts;
use crate::{
    Batching, DecisionSource, DeviceData, ErrorKind, Observer, OnTimeout, Replica, StageCounts, Task, TaskData,
    TaskModel, TrainError, TrainerConfig,
};
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use morphogen_contracts::{Command, Decisions, GlobalMetrics, SeedEvaluation, SystemState};
use morphogen_engine::SeededModel;
use morphogen_flags::Feature;
use tracing::field::Empty;
use tracing::Span;

/// Keeps the generator seeded for an epoch's growth apart from that epoch's shuffling order.
const GROWTH_STREAM: u64 = 0x5EED_6E0E_0F6B_A4C5;

/// How an attempt at an epoch ended.
enum Attempt<M> {
    /// The epoch stands: `model` is the model after the controller's commands.
    Kept { model: M, metrics: GlobalMetrics },
    /// The run returns to its last good state for `reason`; `outcome` labels the epoch's span.
    RollBack { outcome: &'static str, reason: String },
    /// The stop flag cut the epoch short; `model` is where it stood.
    Stopped(M),
}

impl Trainer {
    /// The epochs from `first_epoch` to the configured last, each tried again after a rollback.
    pub(super) fn run_epochs<T: TrainingTypes>(
        &mut self,
        mut model: T::Model,
        optim: T::Optimizer,
        data: &TaskData<T::Task>,
        observer: &mut dyn Observer,
    ) -> Result<TrainOutcome<T::Model, T::Optimizer>, TrainError> {
        model.check_layer_paths()?;
        model.name_layers_by_path();
        let device = model.devices().into_iter().next().unwrap_or_default();
        self.report_quarantined(observer);
        if let Some(remote) = self.remote.as_mut() {
            remote.announce();
        }
        let replica = self.replica.map(|config| Replica::join(config, &device)).transpose()?;
        let mut run = RunContext::<T>::upload(data, device, observer, replica);
        let result = self.epochs_in_context(model, optim, &mut run);
        // The other replicas stop waiting for this one, with an error naming it.
        if let (Err(error), Some(replica)) = (&result, &run.replica) {
            replica.abandon(error.to_string());
        }
        result
    }

    /// [`Self::run_epochs`] once the data is on the device and the replica joined.
    fn epochs_in_context<T: TrainingTypes>(
        &mut self,
        model: T::Model,
        mut optim: T::Optimizer,
        run: &mut RunContext<T>,
    ) -> Result<TrainOutcome<T::Model, T::Optimizer>, TrainError> {
        if let Some(replica) = &run.replica {
            replica.check_same_settings(&self.settings(&model))?;
        }
        let mut model = self.in_step(model, run.replica.as_ref())?;
        let mut good = KnownGood::<T>::new(&model, &optim, &self.controller, None);
        let mut epoch = self.first_epoch;
        if epoch == 1 {
            self.save_checkpoint::<T>(&model, &optim, 0, None)?;
        }
        let (mut history, mut rollbacks) = (Vec::new(), 0);
        while epoch <= self.config.epochs {
            let span = epoch_span(epoch, rollbacks);
            let _epoch = span.enter();
            match self.attempt_epoch(model, &mut optim, epoch, good.val_loss, &span, run)? {
                Attempt::Kept { model: kept, metrics } => {
                    history.push(metrics);
                    (model, optim) = self.widen_after::<T>(epoch, kept, optim, run.observer)?;
                    run.observer.epoch_ended(&metrics, &StageCounts::of(&model));
                    self.save_checkpoint::<T>(&model, &optim, epoch, Some(metrics.val_loss))?;
                    span.record("outcome", "done");
                    good = KnownGood::new(&model, &optim, &self.controller, Some(metrics.val_loss));
                    epoch += 1;
                }
                Attempt::RollBack { outcome, reason } => {
                    span.record("outcome", outcome);
                    rollbacks += 1;
                    let (restored, restored_optim) = self.roll_back(&good, &reason, rollbacks, epoch, run.observer)?;
                    (model, optim) = (self.in_step(restored, run.replica.as_ref())?, restored_optim);
                }
                Attempt::Stopped(model) => {
                    span.record("outcome", "stopped");
                    let stopped = Some(self.stopped_at(epoch)?);
                    return Ok(TrainOutcome { model, optim, history, rollbacks, stopped });
                }
            }
        }
        Ok(TrainOutcome { model, optim, history, rollbacks, stopped: None })
    }

    /// Trains one epoch on `model` and judges it: a diverged step, a firing rollback rule or the
    /// controller's call rolls it back; otherwise the controller's commands grow the model.
    fn attempt_epoch<T: TrainingTypes>(
        &mut self,
        model: T::Model,
        optim: &mut T::Optimizer,
        epoch: u32,
        last_good_val_loss: Option<f32>,
        span: &Span,
        run: &mut RunContext<T>,
    ) -> Result<Attempt<T::Model>, TrainError> {
        let mut trained = match self.train_epoch(model, optim, epoch, run)? {
            EpochEnd::Done(trained) => trained,
            EpochEnd::Diverged(reason) => return Ok(Attempt::RollBack { outcome: "diverged", reason }),
            EpochEnd::Stopped(model) => return Ok(Attempt::Stopped(model)),
        };
        let inner = trained.model.valid();
        let metrics = self.validate(&inner, &trained, epoch, span, run)?;
        if let Some(reason) = self.check_epoch(&inner, &metrics, &trained, last_good_val_loss, run)? {
            return Ok(Attempt::RollBack { outcome: "rollback_rule", reason });
        }
        let budget = EvalBudget {
            samples: self.config.eval_samples,
            batch_size: self.config.eval_batch_size,
            max_seeds: self.config.max_evaluations_per_epoch,
            ablation: self.config.ablation,
        };
        let evaluations = evaluate_seeds_everywhere(&inner, budget, run)?;
        if let Some(replica) = &run.replica {
            replica.sum_telemetry(&mut trained.model)?;
        }
        let system = measure_system(&trained.model, metrics, evaluations);
        run.observer.layers_measured(&system.layers);
        let (decisions, decided_by) = match &run.replica {
            None => self.decide(&system, epoch, run.observer),
            Some(replica) => {
                replica.agree("receive rank 0's decisions", || self.decide(&system, epoch, run.observer))?
            }
        };
        if let Some(reason) = decisions.rollback {
            return Ok(Attempt::RollBack { outcome: "controller_rollback", reason });
        }
        // Germination draws blueprint weights from the backend's generator: seeded by the run's
        // seed and the epoch alone, a resumed run grows the blueprints an uninterrupted one would.
        // Replicas of one process share the generator, so rank 0 grows first.
        let seed = numbered_seed(self.config.seed, epoch.into()) ^ GROWTH_STREAM;
        let grow = || {
            T::Backend::seed(&run.device, seed);
            self.grow(trained.model, &decisions.commands, &metrics, decided_by.as_deref(), run.observer)
        };
        let model = match &run.replica {
            None => grow()?,
            Some(replica) => replica.rank_0_first("wait for rank 0 to grow", grow)??,
        };
        Ok(Attempt::Kept { model: self.in_step(model, run.replica.as_ref())?, metrics })
    }

    /// What every replica of a group must agree on before the first step: the trainer's config
    /// (but where each keeps its checkpoints), the controller's, and the model's seeded layers
    /// and parameter count.
    fn settings<B: AutodiffBackend, M: SeededModel<B> + Module<B>>(&self, model: &M) -> serde_json::Value {
        let trainer = TrainerConfig { checkpoint_dir: None, ..self.config.clone() };
        serde_json::json!({
            "trainer": trainer,
            "controller": self.controller.config(),
            "model": {"parameters": model.num_params(), "seeded_layers": model.seeded_layer_names()},
        })
    }

    /// With replicas, `model` with rank 0's parameters (growth draws new blueprint weights on
    /// each replica), checked to be in lockstep in debug mode; alone, `model` as it is.
    pub(super) fn in_step<B: AutodiffBackend, M: SeededModel<B> + Module<B>>(
        &self,
        model: M,
        replica: Option<&Replica<B>>,
    ) -> Result<M, TrainError> {
        let Some(replica) = replica else { return Ok(model) };
        let model = replica.synchronize(model)?;
        if self.config.debug {
            replica.check_lockstep(&model)?;
        }
        Ok(model)
    }

    /// The epoch's metrics: the training pass's, and loss and accuracy on the whole validation
    /// set, with the task's score (also recorded on the epoch's span).
    fn validate<T: TrainingTypes>(
        &self,
        inner: &T::ValidModel,
        trained: &Trained<T::Model>,
        epoch: u32,
        span: &Span,
        run: &RunContext<T>,
    ) -> Result<GlobalMetrics, TrainError> {
        let budget = EvalBudget {
            samples: usize::MAX,
            batch_size: self.config.eval_batch_size,
            max_seeds: 0,
            ablation: self.config.ablation,
        };
        let (valid, samples) = evaluate_part(inner, &run.data.task, &run.valid, budget, run.shard());
        let valid = match &run.replica {
            None => valid,
            Some(replica) => replica.combine_evaluations(valid, Vec::new(), samples)?.0,
        };
        span.record("train_loss", trained.loss).record("val_loss", valid.loss).record("val_accuracy", valid.accuracy);
        Ok(GlobalMetrics {
            epoch,
            step: self.step,
            train_loss: trained.loss,
            train_accuracy: trained.accuracy,
            val_loss: valid.loss,
            val_accuracy: valid.accuracy,
            score: run.data.task.score(),
        })
    }

    /// Measures the epoch's resources and errors and checks the rollback rules on them: the
    /// reason of the first rule that fires.
    fn check_epoch<T: TrainingTypes>(
        &mut self,
        inner: &T::ValidModel,
        metrics: &GlobalMetrics,
        trained: &Trained<T::Model>,
        last_good_val_loss: Option<f32>,
        run: &mut RunContext<T>,
    ) -> Result<Option<String>, TrainError> {
        let resources = self.measure_resources(inner, &run.data.task, &run.valid);
        run.observer.resources_measured(&resources);
        let errors = trained.errors + self.signals.pass_to(run.observer);
        let facts = EpochFacts {
            metrics,
            last_good_val_loss,
            errors,
            steps: trained.steps,
            resources: &resources,
            baseline_rss: self.baseline_rss,
        };
        self.check_rules(&facts, run.observer, run.replica.as_ref())
    }

    /// Memory, bank bytes and the seeded share of a forward pass over the first validation
    /// batch; the first measurement of the run is the memory baseline.
    fn measure_resources<B, T, N>(&mut self, inner: &N, task: &T, valid: &DeviceData<B, T>) -> Resources
    where
        B: Backend,
        T: Task,
        N: SeededModel<B> + TaskModel<B, T>,
    {
        let _span = tracing::debug_span!("measure_resources").entered();
        let batch = valid.batches(task, Batching::in_order(self.config.batch_size)).next();
        let rss = (self.memory)();
        self.baseline_rss = self.baseline_rss.or(rss);
        measure(inner, |batch| inner.step(batch).loss, batch, rss)
    }

    /// The controller's decisions on `system`, and the service that made them when they came
    /// over the bus.
    fn decide(&mut self, system: &SystemState, epoch: u32, observer: &mut dyn Observer) -> (Decisions, Option<String>) {
        let decide = tracing::info_span!(
            "controller.decide",
            epoch = i64::from(epoch),
            controller = Empty,
            commands = Empty,
            rollback = Empty
        );
        let _decide = decide.enter();
        if self.disabled_flags.contains(&Feature::NeuralController) && self.controller.policy().is_some() {
            self.controller = self.controller.clone().without_policy();
        }
        let (decisions, source) = match self.remote.as_mut() {
            None => (self.controller.step(system), DecisionSource::InProcess),
            Some(remote) => match remote.ask(&self.controller, system, self.step, &self.applied) {
                Ok(answer) => {
                    self.controller = self.controller.clone().with_state(answer.reply.state);
                    let source = DecisionSource::Bus {
                        controller: answer.record.controller.clone(),
                        round_trip: answer.round_trip,
                    };
                    self.applied.push(answer.record);
                    (answer.reply.decisions, source)
                }
                Err(problem) => {
                    let fallback = remote.config().on_timeout;
                    let reason = problem.to_string();
                    tracing::warn!(%reason, ?fallback, "no decision from the bus");
                    let (decisions, instead) = match fallback {
                        OnTimeout::Pause => (Decisions::default(), "growth paused for this epoch"),
                        OnTimeout::InProcess => (self.controller.step(system), "decided in process"),
                    };
                    observer.error(ErrorKind::Bus, &format!("epoch {epoch}: {reason}; {instead}"));
                    (decisions, DecisionSource::Missing { reason, fallback })
                }
            },
        };
        if let Some(why) = &decisions.fallback {
            observer.error(ErrorKind::Policy, &format!("epoch {epoch}: {why}"));
        }
        observer.decided(epoch, &source);
        decide.record("controller", source.controller());
        decide.record("commands", decisions.commands.len() as i64);
        decide.record("rollback", decisions.rollback.as_deref().unwrap_or(""));
        (decisions, source.service().map(str::to_string))
    }

    /// Applies the controller's `commands` (from the service `decided_by`, if one) to `model`
    /// and ends its seeds' epoch.
    fn grow<B: Backend, M: SeededModel<B>>(
        &mut self,
        mut model: M,
        commands: &[Command],
        metrics: &GlobalMetrics,
        decided_by: Option<&str>,
        observer: &mut dyn Observer,
    ) -> Result<M, TrainError> {
        for command in commands {
            self.apply(&mut model, command, metrics, decided_by, observer)?;
        }
        model.end_epoch();
        Ok(model)
    }
}

/// Every EVALUATING seed measured on this replica's shard of the validation data and combined
/// over the replicas (on all of it, alone).
fn evaluate_seeds_everywhere<T: TrainingTypes>(
    inner: &T::ValidModel,
    budget: EvalBudget,
    run: &RunContext<T>,
) -> Result<Vec<SeedEvaluation>, TrainError> {
    let (seeds, samples) = evaluate_seeds_part(inner, &run.data.task, &run.valid, budget, run.shard());
    match &run.replica {
        // In lockstep every replica has the same EVALUATING seeds: all combine, or none.
        Some(replica) if !seeds.is_empty() => {
            let nothing = Evaluation { loss: 0.0, accuracy: 0.0 };
            Ok(replica.combine_evaluations(nothing, seeds, samples)?.1)
        }
        _ => Ok(seeds),
    }
}

/// The span of one attempt at `epoch`, after `rollbacks` rollbacks in the run.
fn epoch_span(epoch: u32, rollbacks: u32) -> Span {
    tracing::info_span!(
        "epoch",
        epoch = i64::from(epoch),
        attempt = i64::from(rollbacks),
        train_loss = Empty,
        val_loss = Empty,
        val_accuracy = Empty,
        outcome = Empty
    )
}
