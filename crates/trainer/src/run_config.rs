//! The configuration of a run as one TOML file: the `[run]`, `[model]`, `[trainer]`,
//! `[controller]` and `[bus]` tables, what `morphogen train --config` reads and writes into each run folder.
//! A program of its own can read the same file with [`RunConfig::from_toml`].

use crate::{
    BusConfig, ModelConfig, ModelKind, NodeGroup, TaskKind, TrainError, TrainerConfig, FASHION_MNIST_DIR,
    SHAKESPEARE_DIR,
};
use morphogen_contracts::MorphogenError;
use morphogen_controller::ControllerConfig;
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
    /// The backend's devices to train on, by index, one data-parallel replica each (empty: the
    /// backend's default device alone). An index may repeat: two replicas on one device.
    pub devices: Vec<usize>,
    /// The processes (nodes) the run spans, each training on its own `devices`; none: this
    /// process alone. Set by `morphogen train --nodes`, never read from a file.
    #[serde(skip)]
    pub nodes: Option<NodeGroup>,
    /// Who decides growth: the heuristic, or a neural policy (`policy`).
    pub controller: ControllerKind,
    /// The policy folder the neural controller loads (`morphogen controller train-policy`
    /// writes one). A missing or damaged policy leaves growth to the heuristic, with a warning.
    pub policy: Option<PathBuf>,
}

/// Who decides growth (`[run] controller`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControllerKind {
    /// The heuristic: grow at the unhealthiest seeds by the configured trigger.
    #[default]
    Heuristic,
    /// A trained neural policy decides where, what and when to grow; the heuristic's gates stay.
    Neural,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            name: DEFAULT_RUN_NAME.into(),
            task: None,
            data: None,
            train_subset: 0,
            valid_subset: 0,
            valid_fraction: 0.1,
            growth: true,
            runs_dir: "runs".into(),
            devices: Vec::new(),
            nodes: None,
            controller: ControllerKind::Heuristic,
            policy: None,
        }
    }
}

/// The run name when neither the config file nor `--name` gives one (for the MLP preset; other
/// presets get `fashion-<preset>` or `shakespeare-transformer`).
pub const DEFAULT_RUN_NAME: &str = "fashion-mlp";

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
    /// Where decisions come from: the controller in this process, or a service on a bus.
    pub bus: BusConfig,
}

impl RunConfig {
    /// Turns growth on or off: off, the controller never germinates and the host never widens.
    pub fn set_growth(&mut self, on: bool) {
        self.run.growth = on;
        if !on {
            self.controller.max_germinations_per_epoch = 0;
            self.trainer.widen = None;
        }
    }

    /// The model the run ends with: after every widening of `[trainer.widen]`, if any.
    pub fn final_model(&self) -> ModelConfig {
        self.widened_model(self.trainer.widen.map_or(0, |widen| widen.times as usize))
    }

    /// The model after the first `widenings` widenings of `[trainer.widen]`: `features` wider at
    /// each (the transformer's `d_model`, the ResNet's `width`); the configured model without.
    pub fn widened_model(&self, widenings: usize) -> ModelConfig {
        let mut model = self.model.clone();
        let features = self.trainer.widen.map_or(0, |widen| widen.features * widenings);
        match model.kind {
            ModelKind::Transformer => model.d_model += features,
            ModelKind::Resnet => model.width += features,
            ModelKind::Mlp | ModelKind::Cnn => {}
        }
        model
    }

    /// What the model learns: the configured task, or the preset's.
    pub fn task(&self) -> TaskKind {
        self.run.task.unwrap_or(self.model.kind.task())
    }

    /// The data folder of this run's task.
    pub fn data_dir(&self) -> PathBuf {
        self.run.data_dir(self.task())
    }

    /// Parses the TOML text of a config file. Tables and keys left out keep their defaults;
    /// unknown ones are refused. The result is not validated yet: see [`RunConfig::validate`].
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks that the preset serves the task and that every table holds legal values.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.model.kind.check_task(self.task())?;
        self.model.validate()?;
        self.trainer.validate()?;
        self.controller.validate()?;
        self.bus.validate()?;
        self.check_devices()?;
        if self.run.controller == ControllerKind::Neural && self.run.policy.is_none() {
            return Err(MorphogenError::InvalidConfig {
                component: "run.policy".into(),
                problem: "the neural controller needs a policy".into(),
                hint: "pass --policy <folder> (made by `morphogen controller train-policy`)".into(),
            }
            .into());
        }
        Ok(())
    }

    /// Every replica must get at least one example of each global batch.
    fn check_devices(&self) -> Result<(), TrainError> {
        if let Some(group) = self.run.nodes {
            group.validate()?;
        }
        let replicas = self.run.devices.len().max(1) * self.run.nodes.map_or(1, |group| group.nodes);
        if replicas <= self.trainer.batch_size {
            return Ok(());
        }
        Err(MorphogenError::InvalidConfig {
            component: "run.devices".into(),
            problem: format!("{replicas} devices share batches of only {} examples", self.trainer.batch_size),
            hint: "use a batch size of at least one example per device, or fewer devices".into(),
        }
        .into())
    }

    /// The run name a preset gets when neither the file nor the caller names the run:
    /// `fashion-<preset>` for the image presets, `shakespeare-transformer` for the transformer.
    pub fn default_name(kind: ModelKind) -> String {
        match kind {
            ModelKind::Mlp => DEFAULT_RUN_NAME.into(),
            ModelKind::Transformer => "shakespeare-transformer".into(),
            other => format!("fashion-{other:?}").to_lowercase(),
        }
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
            let mut shipped = include_str!("../../../configs/small-host.toml").as_bytes().to_vec();
            let i = flip.index(shipped.len());
            shipped[i] = byte;
            for text in [text, String::from_utf8_lossy(&shipped).into_owned()] {
                if let Ok(config) = RunConfig::from_toml(&text) {
                    let _ = config.validate();
                }
            }
        }
    }

    #[test]
    fn every_shipped_config_parses_and_validates() {
        let shipped = [
            include_str!("../../../configs/mlp-growth.toml"),
            include_str!("../../../configs/small-host.toml"),
            include_str!("../../../configs/resnet-growth.toml"),
            include_str!("../../../configs/transformer-growth.toml"),
            include_str!("../../../configs/transformer-branches.toml"),
            include_str!("../../../configs/transformer-widening.toml"),
            include_str!("../../../configs/resnet-widening.toml"),
        ];
        for text in shipped {
            let config = RunConfig::from_toml(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            config.validate().unwrap_or_else(|e| panic!("{e}: {text}"));
        }
    }

    #[test]
    fn the_seed_count_reads_under_its_old_name_too() {
        for key in ["num_seeds", "seeds"] {
            let config = RunConfig::from_toml(&format!("[model]\n{key} = 4\n")).unwrap();
            assert_eq!(config.model.num_seeds, 4, "{key}");
        }
        let shipped = RunConfig::from_toml(include_str!("../../../configs/small-host.toml")).unwrap();
        assert_eq!(shipped.model.num_seeds, 4);
    }
}
