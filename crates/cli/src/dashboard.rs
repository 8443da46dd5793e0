//! `morphogen dashboard`, `morphogen report` and `morphogen watch`: the seed views of a run
//! folder (`docs/dashboard.md`).

use crate::error::CliError;
use clap::Args;
use morphogen_dashboard::{write_policy_report, write_report, PolicyFolder, RunSet, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `morphogen dashboard`.
#[derive(Args, Debug)]
pub struct DashboardArgs {
    /// A run folder (`runs/<name>`) or a folder of them (`runs`).
    pub path: PathBuf,
    /// Address to serve on; loopback by default (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8050")]
    pub addr: SocketAddr,
}

/// Flags of `morphogen report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run folder (`runs/<name>`), or a policy folder (`morphogen controller train-policy
    /// --out`, recognised by its `manifest.json`).
    pub path: PathBuf,
    /// The HTML file to write.
    #[arg(short, long, value_name = "FILE", default_value = "report.html")]
    pub output: PathBuf,
}

/// Flags of `morphogen watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// A run folder (`runs/<name>`) or a folder of them (left/right switch runs).
    pub path: PathBuf,
    /// How often to re-read the run files, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub interval_ms: u64,
}

/// `morphogen dashboard`: serves the live page until interrupted.
pub fn dashboard(args: &DashboardArgs) -> Result<(), CliError> {
    let runs = RunSet::open(&args.path)?;
    let server = Server::bind(args.addr, runs)?;
    let addr = server.local_addr();
    if !addr.ip().is_loopback() {
        eprintln!("warning: {} is reachable from other machines; the dashboard has no authentication", addr.ip());
    }
    eprintln!("dashboard of {}: http://{addr}/ (Ctrl-C stops it)", args.path.display());
    Ok(server.run()?)
}

/// `morphogen report`: writes the self-contained HTML report of one run, or of one policy
/// folder (its manifest, training curves and feature importance).
pub fn report(args: &ReportArgs) -> Result<(), CliError> {
    if PolicyFolder::has_manifest(&args.path) {
        return policy_report(args);
    }
    let runs = RunSet::open(&args.path)?;
    let [run] = runs.runs() else {
        let names: Vec<&str> = runs.runs().iter().map(|r| r.name()).collect();
        return Err(CliError::Config {
            path: args.path.clone(),
            problem: format!("holds {} runs ({}); pass one of them", names.len(), names.join(", ")),
        });
    };
    for message in run.messages() {
        eprintln!("note: {message}");
    }
    write_report(run, &args.output)?;
    eprintln!("wrote {} (run {}, {} epochs)", args.output.display(), run.name(), run.metrics().len());
    Ok(())
}

/// `morphogen report` of a policy folder.
fn policy_report(args: &ReportArgs) -> Result<(), CliError> {
    let policy = PolicyFolder::open(&args.path)?;
    for message in policy.messages() {
        eprintln!("note: {message}");
    }
    write_policy_report(&policy, &args.output)?;
    eprintln!("wrote {} (policy {}, {} episodes)", args.output.display(), policy.name(), policy.episodes().len());
    Ok(())
}

/// `morphogen watch`: the terminal view, until `q`.
pub fn watch(args: &WatchArgs) -> Result<(), CliError> {
    let runs = RunSet::open(&args.path)?;
    Ok(morphogen_dashboard::watch(runs, Duration::from_millis(args.interval_ms.max(50)))?)
}
