//! `morphogen bus`: the message bus between runs and controllers (the `morphogen-bus` crate).

use crate::error::CliError;
use clap::Subcommand;
use morphogen_bus::{BusOptions, RedisBus};
use std::path::PathBuf;
use std::time::Duration;

/// What `morphogen bus` can do.
#[derive(Subcommand, Debug)]
pub enum BusCommand {
    /// Show every run's streams on the bus: messages, consumer groups, messages read and not
    /// yet acknowledged (pending), messages not yet read (lag), and the dead letters.
    Status {
        /// The Redis server: `redis://[:password@]host:port[/db]`, or `rediss://` for TLS.
        #[arg(long, value_name = "URL")]
        bus: String,
        /// For `rediss://`: a PEM file of the certificate authorities to trust instead of the
        /// system's.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
}

/// How long to wait for the server before saying it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs a `morphogen bus` command.
pub fn run(command: &BusCommand) -> Result<(), CliError> {
    match command {
        BusCommand::Status { bus, ca_file } => {
            let options = BusOptions { ca_file: ca_file.clone(), ..BusOptions::default() };
            let mut bus = RedisBus::connect(bus, options, CONNECT_TIMEOUT)?;
            print!("{}", bus.status()?);
            Ok(())
        }
    }
}
