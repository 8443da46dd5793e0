//! `morphogen controller serve`: the growth controller as a service on the message bus, serving
//! every run there until SIGINT or SIGTERM; `morphogen controller train-policy`: teaches the
//! neural controller's policy (see the `policy` module).

use crate::error::CliError;
use crate::policy::{train_policy, TrainPolicyArgs};
use crate::stop::StopSignal;
use crate::train::args::ControllerArg;
use clap::{Args, Subcommand};
use morphogen::controller::{ControllerService, Handled, NeuralPolicy, ServiceOptions};
use morphogen_bus::{BusError, BusOptions, RedisBus};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What `morphogen controller` can do.
#[derive(Subcommand, Debug)]
pub enum ControllerCommand {
    /// Answer every run's state on the bus with its controller's decisions (each run sends its
    /// own controller settings; growth by the heuristic, or by `--policy`), until SIGINT or
    /// SIGTERM. Start several, with different names, to share the work and take over from one
    /// that dies.
    Serve(ServeArgs),
    /// Teach the neural controller's policy on short growth episodes: imitate the heuristic,
    /// then improve on it by policy gradient (see `docs/controller.md`).
    TrainPolicy(Box<TrainPolicyArgs>),
}

/// Flags of `morphogen controller serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The Redis server: `redis://[:password@]host:port[/db]`, or `rediss://` for TLS.
    #[arg(long, value_name = "URL")]
    bus: String,
    /// For `rediss://`: a PEM file of the certificate authorities to trust instead of the
    /// system's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// This controller's name, unique among the replicas: recorded with each decision it
    /// makes [default: <host>-<pid>].
    #[arg(long)]
    name: Option<String>,
    /// Take over a state another replica read and has not answered for this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    reclaim_after_secs: u64,
    /// Print nothing per decision (failures are still shown).
    #[arg(long)]
    quiet: bool,
    /// Who decides growth: the heuristic, or the neural policy `--policy` (each run's own
    /// budgets and gates still hold). A policy that cannot be loaded leaves growth to the
    /// heuristic, with a warning.
    #[arg(long, value_enum, default_value_t = ControllerArg::Heuristic, requires_if("neural", "policy"))]
    controller: ControllerArg,
    /// The policy folder for `--controller neural`.
    #[arg(long, value_name = "DIR")]
    policy: Option<PathBuf>,
}

/// How long to wait for the server at start and on each call.
const SERVER_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs a `morphogen controller` command.
pub fn run(command: &ControllerCommand) -> Result<(), CliError> {
    match command {
        ControllerCommand::Serve(args) => serve(args),
        ControllerCommand::TrainPolicy(args) => train_policy(args),
    }
}

/// `morphogen controller serve`.
fn serve(args: &ServeArgs) -> Result<(), CliError> {
    let ServeArgs { bus, ca_file, name, reclaim_after_secs, quiet, controller, policy } = args;
    keep_freed_memory();
    let options = BusOptions { ca_file: ca_file.clone(), ..BusOptions::default() };
    let connected = RedisBus::connect(bus, options, SERVER_TIMEOUT)?;
    let url = connected.url().to_string();
    let name = name.clone().unwrap_or_else(default_name);
    let options = ServiceOptions { reclaim_after: Duration::from_secs(*reclaim_after_secs), ..Default::default() };
    let mut service = ControllerService::new(connected, name, options);
    if let (ControllerArg::Neural, Some(path)) = (controller, policy) {
        match NeuralPolicy::load(path) {
            Ok(policy) => service = service.with_policy(Arc::new(policy)),
            Err(error) => eprintln!("warning: {error}; the heuristic decides growth"),
        }
    }
    let stop = StopSignal::install()?;
    eprintln!("controller {} serving every run on {url} (stop with Ctrl-C)", service.name());
    let mut down = false;
    service.serve(&stop.flag, |outcome| report(outcome, *quiet, &mut down));
    eprintln!("controller stopped by signal {}", stop.signal());
    Ok(())
}

/// Prints what the service did; a bus failure once per outage.
fn report(outcome: Result<&Handled, &BusError>, quiet: bool, down: &mut bool) {
    match outcome {
        Err(error) => {
            if !std::mem::replace(down, true) {
                eprintln!("warning: {error}; retrying");
            }
            return;
        }
        Ok(Handled::Refused { run, reason }) => eprintln!("warning: run {run}: {reason} (moved to the dead letters)"),
        Ok(Handled::Answered { run, step, commands, rollback, took }) if !quiet => {
            let rollback = if *rollback { ", rollback" } else { "" };
            println!("run {run} step {step}: {commands} command(s){rollback} in {:.1} ms", took.as_secs_f64() * 1e3);
        }
        Ok(Handled::Answered { .. }) => {}
    }
    if std::mem::replace(down, false) {
        eprintln!("the bus is back");
    }
}

/// A service builds and drops a run's whole state at every request: by default glibc hands those
/// megabytes back to the system after each one and faults them in again at the next (a quarter
/// of a 200,000-seed round trip, `docs/benchmarks.md`). Keep freed memory for reuse instead.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; nothing else runs on other threads yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// `<host>-<pid>`: unique among replicas on different hosts and on one host.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "controller".into());
    format!("{host}-{}", std::process::id())
}
