//! `morphogen`: the command-line tool of the morphogen engine.
//!
//! `morphogen train` trains a small host on Fashion-MNIST and lets it grow; `morphogen info`
//! lists the version and the backends of this build; `morphogen bench layer` times a seeded
//! layer against its host layer and against the per-seed reference loop.

mod args;
mod backend;
mod bench;
mod dashboard;
mod error;
mod flags;
mod growth;
mod report;
mod timing;
mod train;

use args::{BenchTarget, Cli, Command, LayerArgs};
use backend::BackendKind;
use clap::Parser;
use error::CliError;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => {
            print!("{}", info());
            Ok(())
        }
        Command::Train(args) => train::train(&args),
        Command::Bench { target: BenchTarget::Layer(args) } => bench_layer(&args),
        Command::Bench { target: BenchTarget::Growth(args) } => bench_growth(&args),
        Command::Flags { command } => flags::run(&command),
        Command::Dashboard(args) => dashboard::dashboard(&args),
        Command::Report(args) => dashboard::report(&args),
        Command::Watch(args) => dashboard::watch(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The text of `morphogen info`.
fn info() -> String {
    let mut text = format!("morphogen {}\nbackends in this build:\n", env!("CARGO_PKG_VERSION"));
    for kind in BackendKind::ALL {
        let line = if kind.is_built() {
            format!("  {:<8} {}\n", kind.name(), kind.description())
        } else {
            format!("  ({} not built: rebuild with `--features {}`)\n", kind.name(), kind.name())
        };
        text.push_str(&line);
    }
    text
}

/// `morphogen bench layer`: measures the grid, prints the table, writes the JSON if asked.
fn bench_layer(args: &LayerArgs) -> Result<(), CliError> {
    let json = args.json.as_deref().map(|path| create(path).map(|file| (path, file))).transpose()?;
    let report = backend::run_layer_bench(args.backend, &args.plan())?;
    print!("{}", report.table());
    if let Some((path, mut file)) = json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        file.write_all(text.as_bytes()).map_err(|source| CliError::Write { path: path.to_path_buf(), source })?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `morphogen bench growth`: runs every variant, prints the tables, writes the JSON if asked.
fn bench_growth(args: &growth::GrowthArgs) -> Result<(), CliError> {
    let json = args.json.as_deref().map(|path| create(path).map(|file| (path, file))).transpose()?;
    let rows = backend::run_growth(args.run.backend, args)?;
    print!("{}", growth::table(&rows));
    if let Some((path, mut file)) = json {
        let text = serde_json::to_string_pretty(&rows)? + "\n";
        file.write_all(text.as_bytes()).map_err(|source| CliError::Write { path: path.to_path_buf(), source })?;
    }
    Ok(())
}

/// Creates an output file before any measuring, so a bad path fails at once, not after the run.
fn create(path: &Path) -> Result<File, CliError> {
    File::create(path).map_err(|source| CliError::Write { path: path.to_path_buf(), source })
}
