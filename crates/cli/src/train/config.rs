//! The configuration of a run: the TOML file's tables (`morphogen::trainer::RunConfig`), with
//! the flags of `morphogen train` applied on top and validated.

use super::args::TrainArgs;
use crate::error::CliError;
use morphogen::trainer::{ControllerKind, LrSchedule, ModelKind, NodeGroup, RunConfig, TaskKind, DEFAULT_RUN_NAME};
use morphogen::Precision;
use morphogen_flags::Feature;
use std::path::Path;

/// The config file at `path` (not validated yet), or the defaults without one.
pub fn read(path: Option<&Path>) -> Result<RunConfig, CliError> {
    let Some(path) = path else { return Ok(RunConfig::default()) };
    let problem = |e: &dyn std::fmt::Display| CliError::Config { path: path.to_path_buf(), problem: e.to_string() };
    let text = std::fs::read_to_string(path).map_err(|e| problem(&e))?;
    RunConfig::from_toml(&text).map_err(|e| problem(&e))
}

/// The config file (if any) with the flags applied, validated.
pub fn resolve(args: &TrainArgs) -> Result<RunConfig, CliError> {
    let mut config = read(args.config.as_deref())?;
    config.run.data = args.data.clone().or(config.run.data);
    config.run.task = args.task.map(TaskKind::from).or(config.run.task);
    set(&mut config.run.name, args.name.clone());
    set(&mut config.run.runs_dir, args.runs_dir.clone());
    set(&mut config.run.train_subset, args.train_subset);
    set(&mut config.run.valid_subset, args.valid_subset);
    set(&mut config.run.devices, args.devices.clone());
    config.run.nodes = node_group(args);
    config.run.growth &= !args.no_growth;
    config.trainer.debug |= args.debug;
    set(&mut config.trainer.epochs, args.epochs);
    set(&mut config.trainer.batch_size, args.batch_size);
    config.trainer.steps_per_epoch = args.steps_per_epoch.or(config.trainer.steps_per_epoch);
    set(&mut config.trainer.learning_rate, args.lr);
    set(&mut config.trainer.lr_schedule, args.lr_schedule.map(LrSchedule::from));
    set(&mut config.trainer.seed, args.seed);
    set(&mut config.model.num_seeds, args.seeds);
    set(&mut config.model.hidden, args.hidden);
    set(&mut config.model.width, args.width);
    set(&mut config.model.layers, args.layers);
    set(&mut config.model.d_model, args.d_model);
    set(&mut config.model.heads, args.heads);
    set(&mut config.model.context, args.context);
    set(&mut config.model.telemetry_every, args.telemetry_every);
    set(&mut config.model.precision, args.precision.map(Precision::from));
    set(&mut config.model.kind, args.model.map(ModelKind::from));
    if config.run.name == DEFAULT_RUN_NAME {
        config.run.name = RunConfig::default_name(config.model.kind);
    }
    config.set_growth(config.run.growth);
    config.bus.url = args.bus.clone().or(config.bus.url);
    config.bus.ca_file = args.bus_ca_file.clone().or(config.bus.ca_file);
    set(&mut config.run.controller, args.controller.map(ControllerKind::from));
    config.run.policy = args.policy.clone().or(config.run.policy);
    if let Some(path) = &args.flags {
        apply_flags(&mut config, path);
    }
    if config.trainer.checkpoint_dir.is_none() {
        config.trainer.checkpoint_dir = Some(config.run.runs_dir.join(&config.run.name).join("checkpoints"));
    }
    config.validate()?;
    if config.run.name.is_empty() || config.run.name.contains(['/', '\\']) {
        return Err(CliError::Config {
            path: "--name".into(),
            problem: "the run name must be a plain, non-empty file name".into(),
        });
    }
    Ok(config)
}

/// What the flag file decides for this run: the kernels, whether it talks to the bus, and
/// whether a neural policy decides its growth.
fn apply_flags(config: &mut RunConfig, path: &std::path::Path) {
    let (flags, warning) = morphogen_flags::Flags::load(path);
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    let name = &config.run.name;
    config.model.kernels = flags.is_enabled_for(Feature::Kernels, name);
    if config.bus.url.is_some() && !flags.is_enabled_for(Feature::MessageBus, name) {
        eprintln!("the message_bus flag is off for run {name}: its controller runs in this process");
        config.bus.url = None;
    }
    if config.run.controller == ControllerKind::Neural && !flags.is_enabled_for(Feature::NeuralController, name) {
        eprintln!("the neural_controller flag is off for run {name}: the heuristic decides its growth");
        config.run.controller = ControllerKind::Heuristic;
    }
}

/// Overrides `slot` with a flag's value when the flag was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// The node group `--nodes`, `--node-rank`, `--coordinator` and `--node-address` describe.
fn node_group(args: &TrainArgs) -> Option<NodeGroup> {
    let (nodes, node_rank, coordinator) = (args.nodes?, args.node_rank?, args.coordinator?);
    let wait = std::time::Duration::from_secs(args.coordinator_wait);
    let group = NodeGroup::new(nodes, node_rank, coordinator).with_coordinator_wait(wait);
    Some(args.node_address.map_or(group, |address| group.with_address(address)))
}
