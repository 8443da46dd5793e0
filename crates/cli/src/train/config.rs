//! The configuration of a run: the TOML file's tables, with the flags of `morphogen train`
//! applied on top and validated.

use super::args::TrainArgs;
use crate::error::CliError;
use morphogen::controller::ControllerConfig;
use morphogen::trainer::{ModelConfig, ModelKind, TaskKind, TrainerConfig, FASHION_MNIST_DIR, SHAKESPEARE_DIR};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Run-level settings: the `[run]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Run name.
    pub name: String,
    /// What the model learns (default: the preset's task).
    pub task: Option<TaskKind>,
    /// Data folder (default: the task's, see [`RunSection::data_dir`]).
    pub data: Option<PathBuf>,
    /// Training examples used (0: all).
    pub train_subset: usize,
    /// Validation examples used (0: all).
    pub valid_subset: usize,
    /// Share of the text held out for validation (`--task lm`).
    pub valid_fraction: f32,
    /// Whether the controller may grow the model.
    pub growth: bool,
    /// Where run folders go.
    pub runs_dir: PathBuf,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.into(),
            task: None,
            data: None,
            train_subset: 0,
            valid_subset: 0,
            valid_fraction: 0.1,
            growth: true,
            runs_dir: "runs".into(),
        }
    }
}

/// The run name when neither the config file nor `--name` gives one (for the MLP preset; other
/// presets get `fashion-<preset>` or `shakespeare-transformer`).
const DEFAULT_NAME: &str = "fashion-mlp";

impl RunSection {
    /// The data folder: the configured one, or the task's default.
    pub fn data_dir(&self, task: TaskKind) -> PathBuf {
        self.data.clone().unwrap_or_else(|| match task {
            TaskKind::Classify => FASHION_MNIST_DIR.into(),
            TaskKind::Lm => SHAKESPEARE_DIR.into(),
        })
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

    /// What the model learns: the configured task, or the preset's.
    pub fn task(&self) -> TaskKind {
        self.run.task.unwrap_or(self.model.kind.task())
    }

    /// The data folder of this run's task.
    pub fn data_dir(&self) -> PathBuf {
        self.run.data_dir(self.task())
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
        config.run.data = args.data.clone().or(config.run.data);
        config.run.task = args.task.map(TaskKind::from).or(config.run.task);
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
        set(&mut config.model.width, args.width);
        set(&mut config.model.layers, args.layers);
        set(&mut config.model.d_model, args.d_model);
        set(&mut config.model.heads, args.heads);
        set(&mut config.model.context, args.context);
        set(&mut config.model.telemetry_every, args.telemetry_every);
        set(&mut config.model.kind, args.model.map(ModelKind::from));
        if config.run.name == DEFAULT_NAME && config.model.kind != ModelKind::Mlp {
            config.run.name = default_name(config.model.kind);
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
        config.model.kind.check_task(config.task())?;
        config.model.validate()?;
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

/// The run name of a preset when none is given.
fn default_name(kind: ModelKind) -> String {
    match kind {
        ModelKind::Transformer => "shakespeare-transformer".into(),
        other => format!("fashion-{other:?}").to_lowercase(),
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
    use proptest::prelude::*;

    proptest! {
        /// Any text, and any one-byte change of the shipped config, is a config or a parse
        /// error; a config that parses is validated without panicking.
        #[test]
        fn any_config_text_parses_or_is_refused(text in "(?s).{0,200}", flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut shipped = include_str!("../../../../configs/small-host.toml").as_bytes().to_vec();
            let i = flip.index(shipped.len());
            shipped[i] = byte;
            for text in [text, String::from_utf8_lossy(&shipped).into_owned()] {
                if let Ok(config) = toml::from_str::<RunConfig>(&text) {
                    let _ = (config.model.validate(), config.trainer.validate(), config.controller.validate());
                }
            }
        }
    }

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
