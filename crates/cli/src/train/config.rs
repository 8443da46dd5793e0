//! The configuration of a run: the TOML file's tables, with the flags of `morphogen train`
//! applied on top and validated.

use super::args::{ModelArg, TrainArgs};
use crate::error::CliError;
use morphogen::controller::ControllerConfig;
use morphogen::trainer::{ModelConfig, ModelKind, TrainerConfig, FASHION_MNIST_DIR};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Run-level settings: the `[run]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Run name.
    pub name: String,
    /// Data folder.
    pub data: PathBuf,
    /// Training images used (0: all).
    pub train_subset: usize,
    /// Validation images used (0: all).
    pub valid_subset: usize,
    /// Whether the controller may grow the model.
    pub growth: bool,
    /// Where run folders go.
    pub runs_dir: PathBuf,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            name: "fashion-mlp".into(),
            data: FASHION_MNIST_DIR.into(),
            train_subset: 0,
            valid_subset: 0,
            growth: true,
            runs_dir: "runs".into(),
        }
    }
}

/// The whole configuration of a run, as read from TOML and written to the run folder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Run settings.
    pub run: RunSection,
    /// Host model.
    pub model: ModelConfig,
    /// Trainer.
    pub trainer: TrainerConfig,
    /// Controller.
    pub controller: ControllerConfig,
}

impl RunConfig {
    /// Turns growth on or off: off, the controller never germinates.
    pub fn set_growth(&mut self, on: bool) {
        self.run.growth = on;
        if !on {
            self.controller.max_germinations_per_epoch = 0;
        }
    }

    /// The config file (if any) with the flags applied, validated.
    pub fn resolve(args: &TrainArgs) -> Result<Self, CliError> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Config { path: path.clone(), problem: e.to_string() })?;
                toml::from_str(&text).map_err(|e| CliError::Config { path: path.clone(), problem: e.to_string() })?
            }
            None => RunConfig::default(),
        };
        set(&mut config.run.data, args.data.clone());
        set(&mut config.run.name, args.name.clone());
        set(&mut config.run.runs_dir, args.runs_dir.clone());
        set(&mut config.run.train_subset, args.train_subset);
        set(&mut config.run.valid_subset, args.valid_subset);
        config.run.growth &= !args.no_growth;
        config.trainer.debug |= args.debug;
        set(&mut config.trainer.epochs, args.epochs);
        set(&mut config.trainer.batch_size, args.batch_size);
        set(&mut config.trainer.learning_rate, args.lr);
        set(&mut config.trainer.seed, args.seed);
        set(&mut config.model.num_seeds, args.seeds);
        set(&mut config.model.hidden, args.hidden);
        if let Some(model) = args.model {
            config.model.kind = match model {
                ModelArg::Mlp => ModelKind::Mlp,
                ModelArg::Cnn => ModelKind::Cnn,
            };
        }
        config.set_growth(config.run.growth);
        if let Some(path) = &args.flags {
            let (flags, warning) = morphogen_flags::Flags::load(path);
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            config.model.kernels = flags.is_enabled_for(morphogen_flags::Feature::Kernels, &config.run.name);
        }
        if config.trainer.checkpoint_dir.is_none() {
            config.trainer.checkpoint_dir = Some(config.run.runs_dir.join(&config.run.name).join("checkpoints"));
        }
        config.trainer.validate()?;
        config.controller.validate()?;
        if config.run.name.is_empty() || config.run.name.contains(['/', '\\']) {
            return Err(CliError::Config {
                path: "--name".into(),
                problem: "the run name must be a plain, non-empty file name".into(),
            });
        }
        Ok(config)
    }
}

/// Overrides `slot` with a flag's value when the flag was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::RunConfig;

    #[test]
    fn the_seed_count_reads_under_its_old_name_too() {
        for key in ["num_seeds", "seeds"] {
            let config: RunConfig = toml::from_str(&format!("[model]\n{key} = 4\n")).unwrap();
            assert_eq!(config.model.num_seeds, 4, "{key}");
        }
        let shipped: RunConfig = toml::from_str(include_str!("../../../../configs/small-host.toml")).unwrap();
        assert_eq!(shipped.model.num_seeds, 4);
    }
}
