//! One training run with Adam, and what it produced: the step `morphogen train` and every run
//! of `morphogen bench growth` share.

use crate::error::CliError;
use morphogen::burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use morphogen::burn::optim::AdamConfig;
use morphogen::burn::tensor::backend::{AutodiffBackend, Backend};
use morphogen::burn::tensor::Tensor;
use morphogen::controller::{Controller, DecisionRecord, NeuralPolicy};
use morphogen::trainer::RunConfig;
use morphogen::trainer::{
    ControllerKind, ErrorKind, EventLog, Observer, ReplicaConfig, Stopped, Task, TaskData, TaskModel, Trainer,
};
use morphogen::{GlobalMetrics, SeededModel, Stage, TransitionEvent};
use morphogen_bus::RedisBus;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What one training run produced.
pub struct RunResult<M> {
    /// The final model.
    pub model: M,
    /// Metrics per epoch.
    pub history: Vec<GlobalMetrics>,
    /// Every transition.
    pub events: Vec<TransitionEvent>,
    /// Rollbacks done.
    pub rollbacks: u32,
    /// Trainable parameters before training (the host; banks are still empty).
    pub host_params: usize,
    /// Parameters the blueprints seeds hold at the end add.
    pub params_added: usize,
    /// Wall time of training, seconds.
    pub seconds: f64,
    /// Where the run stopped, when a stop was requested before its end.
    pub stopped: Option<Stopped>,
    /// The controller's growth decisions, when it was recording them.
    pub trace: Vec<DecisionRecord>,
}

impl<M> RunResult<M> {
    /// Transitions into `stage`.
    pub fn reached(&self, stage: Stage) -> usize {
        self.events.iter().filter(|e| e.to == stage).count()
    }

    /// The task's validation score after the last epoch (accuracy, or negative perplexity).
    pub fn final_score(&self) -> f32 {
        self.history.last().map_or(f32::NAN, GlobalMetrics::val_score)
    }
}

/// Parameters of `model` that train (host weights and blueprint banks; not the seed-state
/// columns): what `morphogen train` reports as the host's count.
pub fn trainable_params<B: Backend, M: Module<B>>(model: &M) -> usize {
    struct Count(usize);
    impl<B: Backend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    model.visit(&mut count);
    count.0
}

/// How one run starts and may stop: resumed or fresh, the flag that stops it after a step, and
/// its place in a data-parallel group.
#[derive(Clone, Debug, Default)]
pub struct Lifetime {
    /// Continue from the newest checkpoint.
    pub resume: bool,
    /// Set (by a signal handler) to stop after the current step.
    pub stop: Option<Arc<AtomicBool>>,
    /// This run's replica, when it is one of several.
    pub replica: Option<ReplicaConfig>,
}

/// The controller `config` asks for: the heuristic, or one whose growth a neural policy
/// decides. A policy that cannot be loaded is reported to `observer` (a warning, an incident,
/// a metric) and the heuristic decides instead.
pub fn controller_for(config: &RunConfig, observer: &mut dyn Observer) -> Result<Controller, CliError> {
    let controller = Controller::new(config.controller.clone())?;
    let (ControllerKind::Neural, Some(path)) = (config.run.controller, &config.run.policy) else {
        return Ok(controller);
    };
    match NeuralPolicy::load(path) {
        Ok(policy) => Ok(controller.with_policy(Arc::new(policy))),
        Err(error) => {
            observer.error(ErrorKind::Policy, &format!("{error}; the heuristic decides growth"));
            Ok(controller)
        }
    }
}

/// Trains `model` once with Adam as `config` says, `controller` deciding.
pub fn train_once<B, M, T>(
    controller: Controller,
    model: M,
    config: &RunConfig,
    data: &TaskData<T>,
    events: EventLog,
    lifetime: Lifetime,
    observer: &mut dyn Observer,
) -> Result<RunResult<M>, CliError>
where
    B: AutodiffBackend,
    T: Task,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + 'static,
    M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
{
    let mut trainer = Trainer::new(config.trainer.clone(), controller, events)?;
    if let Some(url) = &config.bus.url {
        let bus = RedisBus::open(url, config.bus.options(), config.bus.decision_timeout())?;
        eprintln!("decisions from the controller service on {}", bus.url());
        trainer = trainer.with_bus(Box::new(bus), &config.run.name, config.bus.clone())?;
    }
    if let Some(flag) = lifetime.stop {
        trainer = trainer.with_stop_flag(flag);
    }
    if let Some(replica) = lifetime.replica {
        trainer = trainer.with_replica(replica)?;
    }
    let (mut model, mut optim) = (model, AdamConfig::new().init());
    let host_params = trainable_params(&model);
    if lifetime.resume {
        let epoch = trainer.resume(&mut model, &mut optim)?;
        if lifetime.replica.is_none_or(|replica| replica.rank == 0) {
            eprintln!("resumed after epoch {epoch}");
        }
    }
    let start = std::time::Instant::now();
    let outcome = trainer.run(model, optim, data, observer)?;
    Ok(RunResult {
        params_added: outcome.model.params_added(),
        model: outcome.model,
        history: outcome.history,
        events: trainer.events().events().to_vec(),
        rollbacks: outcome.rollbacks,
        host_params,
        seconds: start.elapsed().as_secs_f64(),
        stopped: outcome.stopped,
        trace: trainer.controller().trace().to_vec(),
    })
}
