//! [`CheckpointError`]: everything that can go wrong saving, reading, restoring or exporting.

use morphogen_engine::{io_advice, MorphogenError};
use std::path::PathBuf;
use thiserror::Error;

/// Why a checkpoint could not be written, read, verified or restored.
///
/// Every variant names the file or tensor concerned. A restore that returns an error has left the
/// model (and optimizer) exactly as they were.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file system operation failed.
    #[error("could not {action} {path}: {source}{}", io_advice(.source))]
    Io {
        /// What was being done ("read", "write", "rename", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is unreadable, fails its checksum, or says something impossible.
    #[error("checkpoint {path}: invalid manifest: {problem}")]
    Manifest {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The manifest was written by a schema this build cannot read.
    #[error("checkpoint {path}: schema version {found} is not supported (this build reads versions {supported:?})")]
    UnsupportedSchema {
        /// The checkpoint directory.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// Versions this build reads.
        supported: Vec<u32>,
    },
    /// A file does not have the content hash the manifest recorded.
    #[error("checkpoint {path}: {file} has SHA-256 {actual}, the manifest recorded {expected}; the file is corrupt or was replaced")]
    HashMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// The file whose hash differs.
        file: String,
        /// The recorded hash.
        expected: String,
        /// The hash of the bytes on disk.
        actual: String,
    },
    /// A file does not have the length the manifest recorded.
    #[error("checkpoint {path}: {file} holds {actual} bytes, the manifest recorded {expected}; the file is truncated or was replaced")]
    SizeMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// The file concerned.
        file: String,
        /// The recorded length.
        expected: u64,
        /// The length on disk.
        actual: u64,
    },
    /// The tensor file is not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {problem}")]
    TensorFile {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        problem: String,
    },
    /// The manifest's tensor list and the tensor file's header disagree.
    #[error("checkpoint {path}: manifest and tensor file disagree on '{name}': {problem}")]
    ManifestMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// The tensor concerned.
        name: String,
        /// How they differ.
        problem: String,
    },
    /// The model expects a tensor the checkpoint does not hold.
    #[error("tensor '{name}' is missing from the file; was it written for another model?")]
    MissingTensor {
        /// The tensor's name in the checkpoint.
        name: String,
    },
    /// The checkpoint holds a tensor the model has no place for.
    #[error(
        "the checkpoint holds tensor '{name}', which the model has no place for; was it written for another model?"
    )]
    UnexpectedTensor {
        /// The tensor's name in the checkpoint.
        name: String,
    },
    /// A tensor's shape differs from the model's.
    #[error(
        "tensor '{name}'{}: the checkpoint holds shape {found:?}, the model expects {expected}",
        layer_note(layer)
    )]
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The seeded layer it belongs to, if any.
        layer: Option<String>,
        /// The expected shape, in words.
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A tensor's element type differs from the model's.
    #[error("tensor '{name}': the checkpoint holds {found}, the model expects {expected}")]
    DtypeMismatch {
        /// The tensor's name.
        name: String,
        /// The model's dtype.
        expected: String,
        /// The checkpoint's dtype.
        found: String,
    },
    /// A seeded layer of the model does not match the layer the checkpoint recorded.
    #[error("seeded layer '{layer}': {problem}")]
    LayerMismatch {
        /// The layer's name.
        layer: String,
        /// How they differ.
        problem: String,
    },
    /// A seed's state columns hold values no legal lifecycle produces.
    #[error("seeded layer '{layer}' seed {seed}: invalid state in the checkpoint: {problem}")]
    InvalidSeedState {
        /// The layer's name.
        layer: String,
        /// The seed.
        seed: usize,
        /// What is wrong.
        problem: String,
    },
    /// A blueprint bank's tensors do not fit the layer's blueprint.
    #[error(
        "seeded layer '{layer}', blueprint '{blueprint}', bank page {page}, parameter {param}: {problem}{}",
        seeds_note(seeds)
    )]
    BankMismatch {
        /// The layer's name.
        layer: String,
        /// The blueprint's name.
        blueprint: String,
        /// Page index in the bank.
        page: usize,
        /// Parameter index in the page.
        param: usize,
        /// What is wrong.
        problem: String,
        /// Seeds whose rows live in that page.
        seeds: Vec<usize>,
    },
    /// The optimizer state could not be encoded or decoded.
    #[error("optimizer state: {problem}")]
    Optimizer {
        /// What went wrong.
        problem: String,
    },
    /// A tensor's element type has no equivalent on the other side (safetensors or Burn).
    #[error("tensor '{name}' has dtype {dtype}, which cannot be converted between Burn and safetensors")]
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// A model could not be described or exported.
    #[error("{problem}")]
    Model {
        /// What is wrong.
        problem: String,
    },
    /// No checkpoint in a directory could be read and verified.
    #[error("no loadable checkpoint in {dir}{}", skipped_note(skipped))]
    NoCheckpoint {
        /// The directory searched.
        dir: PathBuf,
        /// Why each checkpoint found was skipped.
        skipped: Vec<String>,
    },
    /// The engine refused an operation.
    #[error(transparent)]
    Engine(#[from] MorphogenError),
}

impl CheckpointError {
    /// Whether the error says a checkpoint's files are damaged (unreadable or inconsistent
    /// manifest, wrong hash or length, broken tensor file, a file missing), as opposed to a
    /// checkpoint that is fine but does not fit the model, or one written by a newer schema.
    pub fn is_corruption(&self) -> bool {
        match self {
            CheckpointError::Manifest { .. }
            | CheckpointError::HashMismatch { .. }
            | CheckpointError::SizeMismatch { .. }
            | CheckpointError::TensorFile { .. }
            | CheckpointError::ManifestMismatch { .. } => true,
            CheckpointError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CheckpointError::Io { action, path, source }
    }
}

fn layer_note(layer: &Option<String>) -> String {
    layer.as_ref().map(|l| format!(" (seeded layer '{l}')")).unwrap_or_default()
}

fn seeds_note(seeds: &[usize]) -> String {
    if seeds.is_empty() {
        return String::new();
    }
    let list: Vec<String> = seeds.iter().map(usize::to_string).collect();
    format!(" (rows of seeds {})", list.join(", "))
}

fn skipped_note(skipped: &[String]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    format!("; skipped: {}", skipped.join("; "))
}
