//! `morphogen flags`: enable, disable and show feature flags (the `morphogen-flags` crate).

use crate::error::CliError;
use clap::{Args, Subcommand};
use morphogen_flags::{Feature, FlagFile, Flags, DEFAULT_FILE};
use std::path::PathBuf;

/// What `morphogen flags` can do.
#[derive(Subcommand, Debug)]
pub enum FlagsCommand {
    /// Enable a feature for a percentage of model/run ids (raising the rollout keeps every id
    /// that was already in). Creates the flag file if it is missing; refuses to overwrite an
    /// invalid one. Each change is appended to `<file>.audit.jsonl`.
    Enable {
        /// Feature name: kernels, extended_lifecycle, message_bus or neural_controller.
        name: String,
        /// Percent of ids (0 to 100) the feature applies to.
        #[arg(long, value_name = "PCT", default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
        rollout: u8,
        #[command(flatten)]
        file: FileArg,
    },
    /// Disable a feature (its rollout is kept for a later enable).
    Disable {
        /// Feature name: kernels, extended_lifecycle, message_bus or neural_controller.
        name: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// Show every feature, whether it is enabled and its rollout. A missing or invalid file
    /// shows every feature disabled, with a warning.
    Status {
        #[command(flatten)]
        file: FileArg,
        /// Also say whether this model/run id is in each feature's rollout.
        #[arg(long, value_name = "RUN_ID")]
        id: Option<String>,
    },
}

/// The flag file option shared by every `morphogen flags` subcommand.
#[derive(Args, Debug)]
pub struct FileArg {
    /// Flag file (TOML) [default: morphogen-flags.toml in the current directory].
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

impl FileArg {
    fn path(&self) -> PathBuf {
        self.file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE))
    }
}

/// Runs a `morphogen flags` subcommand.
pub fn run(command: &FlagsCommand) -> Result<(), CliError> {
    match command {
        FlagsCommand::Enable { name, rollout, file } => {
            let feature: Feature = name.parse()?;
            let entry = FlagFile::new(file.path()).enable(feature, *rollout)?;
            println!("{feature}: enabled, rollout {}% (was {})", entry.new.rollout, describe(entry.old));
            Ok(())
        }
        FlagsCommand::Disable { name, file } => {
            let feature: Feature = name.parse()?;
            let entry = FlagFile::new(file.path()).disable(feature)?;
            println!("{feature}: disabled (was {})", describe(entry.old));
            Ok(())
        }
        FlagsCommand::Status { file, id } => {
            let path = file.path();
            let (flags, warning) = Flags::load(&path);
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            print!("{}", status(&flags, id.as_deref()));
            Ok(())
        }
    }
}

/// `enabled, rollout N%` or `disabled`.
fn describe(state: morphogen_flags::FeatureState) -> String {
    if state.enabled {
        format!("enabled, rollout {}%", state.rollout)
    } else {
        "disabled".to_string()
    }
}

/// The status table: one line per feature, with a membership column when `id` is given.
fn status(flags: &Flags, id: Option<&str>) -> String {
    let mut text = format!("{:<20} {:<8} {:>7}", "feature", "enabled", "rollout");
    if let Some(id) = id {
        text.push_str(&format!("  {id}"));
    }
    text.push('\n');
    for feature in Feature::ALL {
        let state = flags.state(feature);
        let enabled = if state.enabled { "yes" } else { "no" };
        text.push_str(&format!("{:<20} {:<8} {:>6}%", feature.name(), enabled, state.rollout));
        if let Some(id) = id {
            text.push_str(if flags.is_enabled_for(feature, id) { "  in" } else { "  out" });
        }
        text.push('\n');
    }
    text
}
