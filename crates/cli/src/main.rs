//! `morphogen`: the command-line tool of the morphogen engine.
//!
//! `morphogen train` trains a small host on Fashion-MNIST and lets it grow; `morphogen info`
//! lists the version and the backends of this build; `morphogen bench layer` times a seeded
//! layer against its host layer and against the per-seed reference loop.
//!
//! Each command lives in its own module; [`backend`] runs a command's backend-generic work on
//! the backend named on the command line.

mod args;
mod backend;
mod bench;
mod bus;
mod controller;
mod dashboard;
mod error;
mod flags;
mod info;
mod policy;
mod stop;
mod train;

use args::{BenchTarget, Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => {
            print!("{}", info::info());
            Ok(())
        }
        Command::Train(args) => train::train(&args),
        Command::Bench { target: BenchTarget::Layer(args) } => bench::layer::run(&args),
        Command::Bench { target: BenchTarget::Growth(args) } => bench::growth::run(&args),
        Command::Bench { target: BenchTarget::Bus(args) } => bench::bus::run(&args),
        Command::Flags { command } => flags::run(&command),
        Command::Dashboard(args) => dashboard::dashboard(&args),
        Command::Report(args) => dashboard::report(&args),
        Command::Watch(args) => dashboard::watch(&args),
        Command::Bus { command } => bus::run(&command),
        Command::Controller { command } => controller::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
