//! One `morphogen train` run on a backend: the data (its shape or vocabulary sizes the model),
//! the preset model, the run folder, training and the results.

use super::data::{image_data, text_data};
use super::once::{controller_for, train_once, Lifetime};
use super::progress::{Progress, RunMode};
use super::replicas::Replicated;
use super::resume::agree_with_checkpoint;
use super::run_folder::RunFolder;
use super::summary::results;
use crate::backend::{devices, OnBackend};
use crate::error::CliError;
use crate::stop::StopSignal;
use morphogen::burn::data::dataset::Dataset;
use morphogen::burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::burn::tensor::backend::Backend;
use morphogen::burn::tensor::Tensor;
use morphogen::trainer::{Coordinator, EventLog, NodeGroup, RunConfig};
use morphogen::trainer::{ErrorKind, ModelKind, Observer, Stopped, Task, TaskData, TaskModel};
use morphogen::SeededModel;
use morphogen_metrics::{Borrowed, Both, MetricsObserver};

/// Trains `config`'s preset, reporting as `mode` says and feeding `metrics` beside the progress
/// output.
pub struct Training<'a> {
    /// The resolved configuration.
    pub config: &'a RunConfig,
    /// Quiet or not, fresh or resumed.
    pub mode: RunMode,
    /// The Prometheus registry (served or not).
    pub metrics: MetricsObserver,
    /// Set by SIGINT or SIGTERM.
    pub stop: &'a StopSignal,
}

impl OnBackend for Training<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<(), CliError> {
        let config = self.config;
        let devices = match devices::<B>(&config.run.devices)? {
            devices if devices.is_empty() => vec![device.clone()],
            devices => devices,
        };
        B::seed(&devices[0], config.trainer.seed);
        let model = &config.model;
        match model.kind {
            ModelKind::Mlp => {
                let data = image_data(config)?;
                self.train_model::<B, _, _>(models::<B, _, _>(&devices, |d| model.mlp(&data.task, d))?, &data)
            }
            ModelKind::Cnn => {
                let data = image_data(config)?;
                self.train_model::<B, _, _>(models::<B, _, _>(&devices, |d| model.cnn(&data.task, d))?, &data)
            }
            ModelKind::Resnet => {
                let data = image_data(config)?;
                self.train_model::<B, _, _>(models::<B, _, _>(&devices, |d| model.resnet(&data.task, d))?, &data)
            }
            ModelKind::Transformer => {
                let data = text_data(config)?;
                self.train_model::<B, _, _>(models::<B, _, _>(&devices, |d| model.transformer(&data.task, d))?, &data)
            }
        }
    }
}

/// One model on each of `devices`, built by `build` one after the other, every parameter drawn
/// at once (Burn draws a parameter's initial values at its first use, which replicas on threads
/// would do in any order): the first model is the one a run without `--devices` trains.
fn models<B, M, E>(devices: &[B::Device], build: impl Fn(&B::Device) -> Result<M, E>) -> Result<Vec<M>, CliError>
where
    B: Backend,
    M: Module<B>,
    CliError: From<E>,
{
    devices.iter().map(|device| Ok(drawn(build(device)?))).collect()
}

/// `model` with every parameter's initial values drawn, in the order the model visits them.
fn drawn<B: Backend, M: Module<B>>(model: M) -> M {
    struct Draw;
    impl<B: Backend> ModuleVisitor<B> for Draw {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            drop(param.val());
        }
    }
    model.visit(&mut Draw);
    model
}

impl Training<'_> {
    /// Creates the run folder, trains `models` (one replica each; rank 0 first) on `data`, saves
    /// the result and prints it.
    fn train_model<B, M, T>(self, mut models: Vec<M>, data: &TaskData<T>) -> Result<(), CliError>
    where
        B: AutodiffBackend,
        T: Task,
        M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + 'static,
        M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
    {
        let Training { config, mode, metrics, stop } = self;
        let others = models.split_off(1);
        let model = models.pop().expect("a model for the first device");
        let lifetime = Lifetime { resume: mode.resume, stop: Some(stop.flag.clone()), replica: None };
        if let Some(group) = config.run.nodes {
            group.check_address()?;
        }
        let _coordinator = match config.run.nodes {
            Some(group) if group.node_rank > 0 => return follow_node_0(group, config, data, model, others, lifetime),
            Some(group) => Some(start_coordinator(group)?),
            None => None,
        };
        let folder = RunFolder::create(config)?;
        let quarantined = match (&config.trainer.checkpoint_dir, mode.resume) {
            (Some(checkpoints), true) => agree_with_checkpoint(&folder, checkpoints)?,
            _ => Vec::new(),
        };
        let events = folder.events(mode.resume)?;
        let mut progress = Progress::new(&folder, mode)?;
        eprintln!(
            "training {:?} ({:?}) on {} examples ({} for validation), {} epochs, growth {}",
            config.model.kind,
            config.task(),
            data.train.len(),
            data.valid.len(),
            config.trainer.epochs,
            if config.run.growth { "on" } else { "off" }
        );
        let mut observer = Both(Borrowed(&mut progress), metrics);
        for q in &quarantined {
            observer.error(ErrorKind::CheckpointCorrupt, &q.to_string());
        }
        let result = if others.is_empty() && config.run.nodes.is_none() {
            train_once(controller_for(config, &mut observer)?, model, config, data, events, lifetime, &mut observer)?
        } else {
            let nodes = config.run.nodes.map_or(1, |group| group.nodes);
            eprintln!(
                "data parallel: {} replicas ({} a node, {nodes} node{}), each on a shard of every batch of {}",
                (others.len() + 1) * nodes,
                others.len() + 1,
                if nodes == 1 { "" } else { "s" },
                config.trainer.batch_size
            );
            let lead = Replicated { config, data, lifetime };
            lead.train(model, others, events, &mut observer).map_err(|e| folder.undo_if_refused(e))?
        };
        if let Some(stopped) = &result.stopped {
            return Err(CliError::Stopped { signal: stop.signal(), message: stopped_message(stopped, config) });
        }
        folder.save_model(&result.model)?;
        print!("{}", results(&result));
        println!("{}", progress.timing().line());
        println!("run folder: {}", folder.path().display());
        Ok(())
    }
}

/// What `morphogen train` says when a signal stopped it: where, and how to go on.
fn stopped_message(stopped: &Stopped, config: &RunConfig) -> String {
    let resume = format!(
        "resume with: morphogen train --name {} --runs-dir {} --resume (and the same options as this run)",
        config.run.name,
        config.run.runs_dir.display()
    );
    match &stopped.checkpoint {
        Some((path, epoch)) => format!(
            "stopped by a signal in epoch {} (step {}); the newest checkpoint, verified, is {} (epoch {epoch}): \
             epoch {} will be trained again; {resume}",
            stopped.epoch,
            stopped.step,
            path.display(),
            epoch + 1
        ),
        None => format!(
            "stopped by a signal in epoch {} (step {}); no checkpoint to resume from",
            stopped.epoch, stopped.step
        ),
    }
}

/// Node 0's side of `--nodes`: the coordinator, which the other nodes wait for, until the run
/// ends.
fn start_coordinator(group: NodeGroup) -> Result<Coordinator, CliError> {
    eprintln!("node 0 of {}: coordinator on port {}", group.nodes, group.coordinator.port());
    Ok(Coordinator::start(group.coordinator.port())?)
}

/// A node other than 0 of `--nodes`: trains its replicas in lockstep with node 0, which writes
/// the run folder, the checkpoints and the results (with `--resume`, every node reads node 0's
/// checkpoints: on several hosts, from shared storage). Nothing is written here.
fn follow_node_0<B, M, T>(
    group: NodeGroup,
    config: &RunConfig,
    data: &TaskData<T>,
    model: M,
    others: Vec<M>,
    lifetime: Lifetime,
) -> Result<(), CliError>
where
    B: AutodiffBackend,
    T: Task,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + Send + 'static,
    M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
{
    eprintln!(
        "node {} of {}: {} replica(s), in lockstep with node 0 through the coordinator at {}",
        group.node_rank,
        group.nodes,
        others.len() + 1,
        group.coordinator
    );
    // Decisions come from node 0, never from a bus of this node's own; only node 0 writes
    // checkpoints (the others read them to resume).
    let mut follower = config.clone();
    follower.bus.url = None;
    if !lifetime.resume {
        follower.trainer.checkpoint_dir = None;
    }
    let replicas = Replicated { config: &follower, data, lifetime };
    let result = replicas.train(model, others, EventLog::in_memory(), &mut ())?;
    match result.stopped {
        Some(stopped) => eprintln!("node {}: stopped with node 0 in epoch {}", group.node_rank, stopped.epoch),
        None => eprintln!("node {}: done; node 0 holds the run", group.node_rank),
    }
    Ok(())
}
