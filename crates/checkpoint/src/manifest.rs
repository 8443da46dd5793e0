//! The JSON manifest of a checkpoint, its schema versions and the reader for older ones.
//!
//! - **v3** (current): as v2, with seed cores at `<layer>.core` (the seeded layers' field was
//!   `seeds` before). v1 and v2 checkpoints are read under the new names (`legacy`).
//! - **v2**: [`Manifest`]. Progress and RNG are objects, every seeded layer's
//!   blueprints and strategies are recorded (so a checkpoint of another model is refused), the
//!   grafting gates' memory is saved as `graft.*` tensors, and `manifest.sha256` holds the
//!   SHA-256 of the manifest's bytes.
//! - **v1**: flat `epoch`, `step` and `rng_seed` fields, no seeded-layer records, no gate memory,
//!   no manifest checksum. [`parse`] reads it into a v2 [`Manifest`] with an empty
//!   `seeded_layers` list (layers are then checked by their tensors only) and no RNG state.

use morphogen_engine::{BlueprintSpec, GraftingSpec};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `format` field of every manifest.
pub const FORMAT: &str = "morphogen-checkpoint";
/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 3;
/// Schema versions this build reads.
pub const SUPPORTED_SCHEMAS: [u32; 3] = [1, 2, 3];
/// How an optimizer record is encoded in its `u8` tensor: Burn's `BinBytesRecorder` with full
/// precision (a plain data format; nothing in it can execute).
pub const OPTIMIZER_ENCODING: &str = "burn-bin-bytes-full-precision";

/// Where training stood when the checkpoint was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
}

/// The random number generator's seed and, if the caller has it, its full state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngState {
    /// The seed the run started from.
    pub seed: u64,
    /// The generator's state at the checkpoint, in whatever JSON form its owner chose.
    pub state: Option<serde_json::Value>,
}

/// Length and SHA-256 of a file of the checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// File name inside the checkpoint directory.
    pub name: String,
    /// Length in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

/// One tensor of the tensor file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorInfo {
    /// Name in the tensor file.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Id of the model parameter it holds (optimizer state is keyed by it), if any.
    pub param_id: Option<u64>,
}

/// What a seeded layer was when saved: a target layer must match it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerInfo {
    /// Name the model lists the layer under.
    pub name: String,
    /// Module path of its seed core (`fc1.core`).
    pub path: String,
    /// Host kind (`Linear`, `Conv2d`).
    pub host: String,
    /// Output features (channels) split into seeds.
    pub features: usize,
    /// Number of seeds.
    pub seeds: usize,
    /// Registered blueprints, in id order (ids are what the state columns store).
    pub blueprints: Vec<BlueprintSpec>,
    /// Registered grafting strategies, in id order.
    pub strategies: Vec<GraftingSpec>,
}

/// How the optimizer state is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerInfo {
    /// The `u8` tensor holding the encoded record.
    pub tensor: String,
    /// The encoding ([`OPTIMIZER_ENCODING`]).
    pub encoding: String,
}

/// A checkpoint's manifest, schema v2 and v3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The crate and version that wrote it.
    pub writer: String,
    /// Epoch and step.
    pub progress: Progress,
    /// RNG seed and state.
    pub rng: RngState,
    /// The metric retention ranks by (e.g. validation loss), if any.
    pub metric: Option<f64>,
    /// The tensor file's length and hash.
    pub tensor_file: FileDigest,
    /// Every tensor in the tensor file.
    pub tensors: Vec<TensorInfo>,
    /// Every seeded layer of the model (empty when read from v1).
    pub seeded_layers: Vec<LayerInfo>,
    /// The optimizer state, if saved.
    pub optimizer: Option<OptimizerInfo>,
    /// Caller-supplied JSON (controller state, event-log position, ...), by key.
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A v1 manifest, as the previous release wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestV1 {
    /// Always [`FORMAT`].
    pub format: String,
    /// 1.
    pub schema_version: u32,
    /// The crate and version that wrote it.
    pub writer: String,
    /// Epochs completed.
    pub epoch: u64,
    /// Steps taken.
    pub step: u64,
    /// The RNG seed (v1 kept no RNG state).
    pub rng_seed: u64,
    /// Retention metric.
    pub metric: Option<f64>,
    /// The tensor file's length and hash.
    pub tensor_file: FileDigest,
    /// Every tensor.
    pub tensors: Vec<TensorInfo>,
    /// The optimizer state, if saved.
    pub optimizer: Option<OptimizerInfo>,
    /// Caller-supplied JSON.
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl From<ManifestV1> for Manifest {
    fn from(v1: ManifestV1) -> Self {
        Manifest {
            format: v1.format,
            schema_version: 1,
            writer: v1.writer,
            progress: Progress { epoch: v1.epoch, step: v1.step },
            rng: RngState { seed: v1.rng_seed, state: None },
            metric: v1.metric,
            tensor_file: v1.tensor_file,
            tensors: v1.tensors,
            seeded_layers: Vec::new(),
            optimizer: v1.optimizer,
            extra: v1.extra,
        }
    }
}

/// Why a manifest could not be parsed.
#[derive(Debug, PartialEq)]
pub enum ParseError {
    /// Not JSON, or not the expected fields.
    Invalid(String),
    /// A schema version this build does not read.
    Unsupported(u64),
}

#[derive(Deserialize)]
struct Probe {
    format: String,
    schema_version: u64,
}

/// Parses manifest bytes of any supported schema into the current [`Manifest`].
pub fn parse(bytes: &[u8]) -> Result<Manifest, ParseError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ParseError::Invalid(e.to_string()))?;
    if probe.format != FORMAT {
        return Err(ParseError::Invalid(format!("format is '{}', not '{FORMAT}'", probe.format)));
    }
    let invalid = |e: serde_json::Error| ParseError::Invalid(e.to_string());
    match probe.schema_version {
        1 => Ok(serde_json::from_slice::<ManifestV1>(bytes).map_err(invalid)?.into()),
        2 | 3 => serde_json::from_slice::<Manifest>(bytes).map_err(invalid),
        other => Err(ParseError::Unsupported(other)),
    }
}

impl Manifest {
    /// The tensor entry with this name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> FileDigest {
        FileDigest { name: "tensors.safetensors".into(), bytes: 8, sha256: "00".into() }
    }

    #[test]
    fn v1_upgrades_to_v2_and_unknown_versions_are_refused() {
        let v1 = ManifestV1 {
            format: FORMAT.into(),
            schema_version: 1,
            writer: "old".into(),
            epoch: 2,
            step: 30,
            rng_seed: 7,
            metric: Some(0.5),
            tensor_file: digest(),
            tensors: vec![],
            optimizer: None,
            extra: BTreeMap::new(),
        };
        let manifest = parse(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(manifest.progress, Progress { epoch: 2, step: 30 });
        assert_eq!(manifest.rng, RngState { seed: 7, state: None });
        assert_eq!(manifest.schema_version, 1);

        let mut future = serde_json::to_value(&v1).unwrap();
        future["schema_version"] = 9.into();
        assert_eq!(parse(&serde_json::to_vec(&future).unwrap()), Err(ParseError::Unsupported(9)));
        assert!(matches!(parse(b"{\"format\": \"other\", \"schema_version\": 2}"), Err(ParseError::Invalid(_))));
        assert!(matches!(parse(b"\xff\x00"), Err(ParseError::Invalid(_))));
    }
}
