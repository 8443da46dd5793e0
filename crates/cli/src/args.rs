//! The command line, parsed by clap: the subcommands, each with the flags its own module
//! defines.

use crate::bench::bus::BusArgs;
use crate::bench::growth::GrowthArgs;
use crate::bench::layer::args::LayerArgs;
use crate::bus::BusCommand;
use crate::controller::ControllerCommand;
use crate::dashboard::{DashboardArgs, ReportArgs, WatchArgs};
use crate::flags::FlagsCommand;
use crate::train::args::TrainArgs;
use clap::{Parser, Subcommand};

/// Morphogenetic training on Burn: seeded layers that grow blueprints while a model trains.
#[derive(Parser, Debug)]
#[command(name = "morphogen", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the version and the backends this build can run on.
    Info,
    /// Train a small host on Fashion-MNIST and let it grow: progress, a live seed summary, a
    /// results table, and `runs/<name>/` with the config, metrics, events and final model.
    Train(Box<TrainArgs>),
    /// Run a benchmark (timings measured in this run, printed as a table).
    Bench {
        /// What to benchmark.
        #[command(subcommand)]
        target: BenchTarget,
    },
    /// Feature flags with staged rollout, kept in a TOML file (default: `morphogen-flags.toml`
    /// in the current directory; `--file PATH` to pick another) with an audit log beside it.
    Flags {
        /// What to do with the flags.
        #[command(subcommand)]
        command: FlagsCommand,
    },
    /// Serve a live web dashboard of a run folder (or a folder of runs) on loopback: the seed
    /// lattice, health heatmaps, training curves and the event log (`docs/dashboard.md`).
    Dashboard(DashboardArgs),
    /// Write one self-contained HTML file with the dashboard's views of a run, or the training
    /// curves and feature importance of a policy folder (`morphogen controller train-policy`).
    Report(ReportArgs),
    /// A terminal view of a run: stages per layer, the lattice in miniature, the latest events.
    Watch(WatchArgs),
    /// The message bus between runs and controllers (Redis Streams; `docs/bus.md`).
    Bus {
        /// What to do.
        #[command(subcommand)]
        command: BusCommand,
    },
    /// The growth controller: as a service on the message bus (`docs/bus.md`), and the neural
    /// policy's training (`docs/controller.md`).
    Controller {
        /// What to do.
        #[command(subcommand)]
        command: ControllerCommand,
    },
}

/// What `morphogen bench` can measure.
#[derive(Subcommand, Debug)]
pub enum BenchTarget {
    /// Time SeededLinear(hidden -> hidden) against its host Linear alone and against the
    /// per-seed reference loop, forward and forward+backward, over a grid of shapes.
    Layer(LayerArgs),
    /// Train the same host (any preset and task) static, growing, and statically enlarged to
    /// the grown parameter count, several seeds each; report accuracy or perplexity (mean and
    /// spread), growth counts, wall time, training FLOPs and the lifecycle's costs.
    Growth(GrowthArgs),
    /// Time the decision round trip over a Redis server (a run's state out, the controller
    /// service's decision back) for states of several sizes, inline and as claim checks, beside
    /// the same decision made in process.
    Bus(BusArgs),
}
