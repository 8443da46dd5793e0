//! The epoch loop, [`Trainer`]: see the crate docs. Its parts, one a file: the config, the
//! types a run bundles, the epoch loop, one pass of optimizer steps, validation and seed
//! evaluation, seed transitions, checkpoints, and rollback.

mod checkpoints;
mod config;
mod context;
mod epoch;
mod evaluation;
mod loss_watch;
mod remote;
mod rollback;
mod steps;
mod tensors;
mod transitions;
mod types;
mod widen;

pub use config::TrainerConfig;
pub use evaluation::{evaluate, evaluate_seeds, measure_system, EvalBudget, Evaluation};
pub use remote::{Answer, AppliedDecision, NoDecision, RemoteController};
pub use types::{Training, TrainingTypes};

use crate::resources::process_rss_bytes;
use crate::{BusConfig, EventLog, Observer, ReplicaConfig, Signals, Task, TaskData, TaskModel, TrainError};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use morphogen_bus::Bus;
use morphogen_checkpoint::{CheckpointDir, Quarantined};
use morphogen_contracts::GlobalMetrics;
use morphogen_controller::Controller;
use morphogen_engine::SeededModel;
use morphogen_flags::Feature;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a finished run hands back.
pub struct TrainOutcome<M, O> {
    /// The trained (and grown) model.
    pub model: M,
    /// The optimizer, with its state for every parameter the model has.
    pub optim: O,
    /// Metrics of every completed epoch.
    pub history: Vec<GlobalMetrics>,
    /// Rollbacks that happened.
    pub rollbacks: u32,
    /// Set when the run stopped early on request (see [`Trainer::with_stop_flag`]): `model` and
    /// `optim` are then mid-epoch, and the run resumes from the checkpoint named.
    pub stopped: Option<Stopped>,
}

/// Where a run stopped on request, and where it resumes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Stopped {
    /// The epoch that was cut short.
    pub epoch: u32,
    /// Optimizer steps taken in all.
    pub step: u64,
    /// The newest checkpoint, read back and verified, with its epoch: what `resume` restores
    /// (the cut epoch is trained again from its start). `None` without a checkpoint directory.
    pub checkpoint: Option<(PathBuf, u32)>,
}

/// Reads the process's resident memory at each epoch end.
type MemoryProbe = Box<dyn FnMut() -> Option<u64> + Send>;

/// The epoch loop: see the crate docs.
pub struct Trainer {
    config: TrainerConfig,
    controller: Controller,
    events: EventLog,
    step: u64,
    first_epoch: u32,
    checkpoints: Option<CheckpointDir>,
    signals: Signals,
    disabled_flags: BTreeSet<Feature>,
    memory: MemoryProbe,
    baseline_rss: Option<u64>,
    /// Damaged checkpoints moved to quarantine and not yet reported to an observer.
    quarantined: Vec<Quarantined>,
    /// Set from outside (a signal handler) to stop the run after the current step.
    stop: Option<Arc<AtomicBool>>,
    /// The controller service on a bus, when decisions come from there.
    remote: Option<RemoteController>,
    /// Decisions applied from the bus, saved in every checkpoint.
    applied: Vec<AppliedDecision>,
    /// This run's place in a data-parallel group, when it is one replica of several.
    replica: Option<ReplicaConfig>,
}

impl Trainer {
    /// A trainer with validated config, driving `controller`, logging to `events`.
    pub fn new(config: TrainerConfig, controller: Controller, events: EventLog) -> Result<Self, TrainError> {
        config.validate()?;
        let checkpoints = config.checkpoint_dir.as_ref().map(CheckpointDir::open).transpose()?;
        Ok(Self {
            config,
            controller,
            events,
            step: 0,
            first_epoch: 1,
            checkpoints,
            signals: Signals::default(),
            disabled_flags: BTreeSet::new(),
            memory: Box::new(process_rss_bytes),
            baseline_rss: None,
            quarantined: Vec::new(),
            stop: None,
            remote: None,
            applied: Vec::new(),
            replica: None,
        })
    }

    /// Takes decisions from a controller service on `bus` instead of the controller inside this
    /// process, publishing requests on the streams of `run` (every run on one bus needs its own
    /// name). `config` says how long to wait and what to do when no decision comes. The
    /// in-process controller's config and state still travel with every request, and its
    /// state is updated from every reply, so checkpoints hold it as before.
    pub fn with_bus(mut self, bus: Box<dyn Bus>, run: &str, config: BusConfig) -> Result<Self, TrainError> {
        config.validate()?;
        self.remote = Some(RemoteController::new(bus, run, config));
        Ok(self)
    }

    /// Makes this run one replica of a data-parallel group (one trainer per replica, each on its
    /// device, in threads of one process): each trains on its shard of every global batch and
    /// averages gradients with the others, so all take the steps one process would take on the
    /// whole batch; validation and seed evaluations are measured on shards and combined;
    /// telemetry is added up before the controller reads health; the controller (and a bus)
    /// runs on rank 0 only and its decisions reach every replica, which grow alike; rank 0 alone
    /// writes checkpoints. Every replica must be given the same config, model, optimizer and
    /// data. In debug mode the replicas' seed states are compared after every epoch.
    pub fn with_replica(mut self, config: ReplicaConfig) -> Result<Self, TrainError> {
        config.validate()?;
        self.refuse_widening_replicas()?;
        self.replica = Some(config);
        Ok(self)
    }

    /// Whether this trainer writes checkpoints: alone, or as rank 0 of a group.
    fn writes_checkpoints(&self) -> bool {
        self.replica.is_none_or(|config| config.rank == 0)
    }

    /// The decisions applied from the bus so far (restored from the checkpoint on resume).
    pub fn applied_decisions(&self) -> &[AppliedDecision] {
        &self.applied
    }

    /// Stops the run after the current step once `flag` is set (by a signal handler, say): the
    /// epoch is cut short, losses read so far are checked, and [`TrainOutcome::stopped`] names
    /// the newest verified checkpoint to resume from.
    pub fn with_stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Whether the stop flag is set.
    fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// Reads resident memory from `probe` instead of `/proc/self/status` (for a process that
    /// knows better, such as a device allocator's own count).
    pub fn with_memory_probe(mut self, probe: impl FnMut() -> Option<u64> + Send + 'static) -> Self {
        self.memory = Box::new(probe);
        self
    }

    /// The handle through which other code reports errors and fast-path fallbacks to this
    /// trainer while it runs.
    pub fn signals(&self) -> Signals {
        self.signals.clone()
    }

    /// Feature flags a rollback rule switched off for the rest of this run.
    pub fn disabled_flags(&self) -> &BTreeSet<Feature> {
        &self.disabled_flags
    }

    /// Whether `feature` is on for `id` in `flags` and no rollback rule switched it off in this
    /// run: the check for code guarded by a flag.
    pub fn flag_enabled(&self, flags: &morphogen_flags::Flags, feature: Feature, id: &str) -> bool {
        !self.disabled_flags.contains(&feature) && flags.is_enabled_for(feature, id)
    }

    /// The transitions so far.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The controller (and its state).
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Continues a run from the newest checkpoint in `checkpoint_dir` that verifies: restores
    /// `model` and `optim` in place (a freshly built model is fine), the controller's state and
    /// the step count. [`run`](Self::run) then starts at the next epoch. Returns the epoch the
    /// checkpoint ended. In a run that widens its host (`[trainer.widen]`), pass the model built
    /// narrow: it is widened first when the checkpoint was saved after the widening.
    pub fn resume<B, M, O, T>(&mut self, model: &mut M, optim: &mut O) -> Result<u32, TrainError>
    where
        B: AutodiffBackend,
        T: Task,
        M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T>,
        O: Optimizer<M, B>,
    {
        self.widen_for_newest_checkpoint(model)?;
        self.resume_from_newest(model, optim)
    }

    /// Trains `model` for `data`'s task on its training set, validating on its validation set,
    /// growing it as the controller decides. An error that stops the run is also passed to
    /// `observer.error` before it is returned. `B`, `M`, `O` and `T` are inferred from the
    /// arguments: `M` is a seeded [`TaskModel`](crate::TaskModel) for task `T` on the autodiff
    /// backend `B` (its `valid()` model one too) and `O` an optimizer for it, as
    /// [`TrainingTypes`] says.
    pub fn run<B, M, O, T>(
        &mut self,
        model: M,
        optim: O,
        data: &TaskData<T>,
        observer: &mut dyn Observer,
    ) -> Result<TrainOutcome<M, O>, TrainError>
    where
        T: Task,
        Training<B, M, O, T>: TrainingTypes<Model = M, Optimizer = O, Task = T>,
    {
        let span = tracing::info_span!(
            "run",
            first_epoch = i64::from(self.first_epoch),
            epochs = i64::from(self.config.epochs)
        );
        let _run = span.enter();
        let result = self.run_epochs::<Training<B, M, O, T>>(model, optim, data, observer);
        if let Err(error) = &result {
            observer.error(error.kind(), &error.to_string());
        }
        result
    }
}
