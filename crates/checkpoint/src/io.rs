//! Writing a checkpoint directory atomically, and reading one back with every check.
//!
//! A checkpoint is a directory of three files:
//! - `tensors.safetensors`: every tensor (see [`Snapshot`] for names);
//! - `manifest.json`: the [`Manifest`], holding the tensor file's length and SHA-256;
//! - `manifest.sha256`: the SHA-256 of `manifest.json`'s bytes (schema v2).
//!
//! [`write_checkpoint`] writes them into a hidden temporary directory beside the target, syncs
//! every file and the directory, then renames the directory into place and syncs its parent: a
//! crash at any point leaves either no checkpoint at the target or a complete one, and never
//! touches other checkpoints. Leftover temporary directories (`.tmp-*`) are ignored by readers.

use crate::error::CheckpointError;
use crate::legacy;
use crate::manifest::{self, FileDigest, Manifest, ParseError, FORMAT, SCHEMA_VERSION, SUPPORTED_SCHEMAS};
use crate::snapshot::Snapshot;
use crate::tensor::{self, StoredTensor, TensorMap};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The tensor file's name.
pub const TENSOR_FILE: &str = "tensors.safetensors";
/// The manifest's name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest checksum's name.
pub const MANIFEST_SUM_FILE: &str = "manifest.sha256";
/// Prefix of temporary directories a save writes into.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = File::create(path).map_err(CheckpointError::io("create", path))?;
    file.write_all(bytes).map_err(CheckpointError::io("write", path))?;
    file.sync_all().map_err(CheckpointError::io("sync", path))
}

fn sync_dir(path: &Path) -> Result<(), CheckpointError> {
    File::open(path).and_then(|dir| dir.sync_all()).map_err(CheckpointError::io("sync directory", path))
}

/// The three files of a checkpoint, as bytes.
pub(crate) struct Encoded {
    pub tensors: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_sum: Vec<u8>,
}

/// Encodes a snapshot into the bytes of its three files.
pub(crate) fn encode(snapshot: &Snapshot) -> Result<Encoded, CheckpointError> {
    let tensors = tensor::encode(&snapshot.tensors, None)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        schema_version: SCHEMA_VERSION,
        writer: format!("morphogen-checkpoint {}", env!("CARGO_PKG_VERSION")),
        progress: snapshot.progress,
        rng: snapshot.rng.clone(),
        metric: snapshot.metric,
        tensor_file: FileDigest { name: TENSOR_FILE.into(), bytes: tensors.len() as u64, sha256: sha256_hex(&tensors) },
        tensors: snapshot.tensor_infos(),
        seeded_layers: snapshot.layers.clone(),
        optimizer: snapshot.optimizer.clone(),
        extra: snapshot.extra.clone(),
    };
    let manifest = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| CheckpointError::Model { problem: format!("could not encode the manifest: {e}") })?;
    let manifest_sum = format!("{}\n", sha256_hex(&manifest)).into_bytes();
    Ok(Encoded { tensors, manifest, manifest_sum })
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Writes `snapshot` as a new checkpoint directory `dir` (which must not exist yet), atomically.
/// Returns the bytes written.
pub fn write_checkpoint(dir: &Path, snapshot: &Snapshot) -> Result<u64, CheckpointError> {
    let encoded = encode(snapshot)?;
    write_encoded(dir, &encoded)
}

pub(crate) fn write_encoded(dir: &Path, encoded: &Encoded) -> Result<u64, CheckpointError> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| CheckpointError::Model {
        problem: format!("{} is not a usable checkpoint directory name", dir.display()),
    })?;
    if dir.exists() {
        let source = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "checkpoints are never overwritten");
        return Err(CheckpointError::Io { action: "create", path: dir.to_path_buf(), source });
    }
    fs::create_dir_all(parent).map_err(CheckpointError::io("create directory", parent))?;
    let temp = parent.join(format!("{TEMP_PREFIX}{name}-{}", unique_suffix()));
    let result = write_into(&temp, encoded).and_then(|()| {
        fs::rename(&temp, dir).map_err(CheckpointError::io("rename into place", dir))?;
        sync_dir(parent)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&temp);
    }
    result.map(|()| (encoded.tensors.len() + encoded.manifest.len() + encoded.manifest_sum.len()) as u64)
}

fn write_into(temp: &Path, encoded: &Encoded) -> Result<(), CheckpointError> {
    fs::create_dir(temp).map_err(CheckpointError::io("create directory", temp))?;
    write_synced(&temp.join(TENSOR_FILE), &encoded.tensors)?;
    write_synced(&temp.join(MANIFEST_FILE), &encoded.manifest)?;
    write_synced(&temp.join(MANIFEST_SUM_FILE), &encoded.manifest_sum)?;
    sync_dir(temp)
}

/// A checkpoint read from disk whose every check passed: manifest checksum, schema version,
/// tensor file length and SHA-256, safetensors header, and agreement of header and manifest.
/// Restoring it into a model checks it against that model (see
/// [`restore`](Checkpoint::restore)).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub(crate) path: PathBuf,
    pub(crate) manifest: Manifest,
    pub(crate) tensors: TensorMap,
}

impl Checkpoint {
    /// Reads and verifies the checkpoint directory `dir`.
    pub fn read(dir: &Path) -> Result<Self, CheckpointError> {
        let manifest = read_manifest(dir)?;
        let mut tensors = read_tensors(dir, &manifest)?;
        if legacy::names_seed_cores_old(manifest.schema_version) {
            tensors = legacy::rename_tensors(tensors);
        }
        check_header(dir, &manifest, &tensors)?;
        Ok(Self { path: dir.to_path_buf(), manifest, tensors })
    }

    /// Reads and verifies only the manifest (checksum and schema), not the tensor file; names
    /// are today's whatever schema wrote them.
    pub fn read_manifest(dir: &Path) -> Result<Manifest, CheckpointError> {
        read_manifest(dir)
    }

    /// The checkpoint's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest (upgraded to the current schema if it was older).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Epoch and step.
    pub fn progress(&self) -> manifest::Progress {
        self.manifest.progress
    }

    /// RNG seed and state.
    pub fn rng(&self) -> &manifest::RngState {
        &self.manifest.rng
    }

    /// The retention metric, if one was saved.
    pub fn metric(&self) -> Option<f64> {
        self.manifest.metric
    }

    /// A caller-supplied JSON value saved under `key`.
    pub fn extra(&self, key: &str) -> Option<&serde_json::Value> {
        self.manifest.extra.get(key)
    }

    /// A stored tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&StoredTensor> {
        self.tensors.get(name)
    }

    /// Every stored tensor, by name.
    pub fn tensors(&self) -> &TensorMap {
        &self.tensors
    }
}

fn manifest_error(dir: &Path, problem: String) -> CheckpointError {
    CheckpointError::Manifest { path: dir.to_path_buf(), problem }
}

fn read_manifest(dir: &Path) -> Result<Manifest, CheckpointError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&path).map_err(CheckpointError::io("read", &path))?;
    let sum_path = dir.join(MANIFEST_SUM_FILE);
    let has_sum = match fs::read(&sum_path) {
        Ok(sum) => {
            verify_manifest_sum(dir, &bytes, &sum)?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(CheckpointError::io("read", &sum_path)(e)),
    };
    let mut manifest = manifest::parse(&bytes).map_err(|e| match e {
        ParseError::Invalid(problem) => manifest_error(dir, problem),
        ParseError::Unsupported(found) => {
            CheckpointError::UnsupportedSchema { path: dir.to_path_buf(), found, supported: SUPPORTED_SCHEMAS.to_vec() }
        }
    })?;
    if manifest.schema_version >= 2 && !has_sum {
        return Err(manifest_error(dir, format!("{MANIFEST_SUM_FILE} is missing")));
    }
    if legacy::names_seed_cores_old(manifest.schema_version) {
        legacy::rename_manifest(&mut manifest);
    }
    Ok(manifest)
}

fn verify_manifest_sum(dir: &Path, manifest: &[u8], sum: &[u8]) -> Result<(), CheckpointError> {
    let expected = String::from_utf8_lossy(sum).trim().to_string();
    let actual = sha256_hex(manifest);
    if expected != actual {
        return Err(CheckpointError::HashMismatch {
            path: dir.to_path_buf(),
            file: MANIFEST_FILE.into(),
            expected,
            actual,
        });
    }
    Ok(())
}

fn read_tensors(dir: &Path, manifest: &Manifest) -> Result<TensorMap, CheckpointError> {
    let digest = &manifest.tensor_file;
    let plain_name = Path::new(&digest.name).file_name().is_some_and(|n| n == digest.name.as_str());
    if !plain_name || digest.name.starts_with('.') {
        return Err(manifest_error(dir, format!("tensor file name '{}' is not a plain file name", digest.name)));
    }
    let path = dir.join(&digest.name);
    let bytes = fs::read(&path).map_err(CheckpointError::io("read", &path))?;
    if bytes.len() as u64 != digest.bytes {
        return Err(CheckpointError::SizeMismatch {
            path: dir.to_path_buf(),
            file: digest.name.clone(),
            expected: digest.bytes,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_hex(&bytes);
    if actual != digest.sha256 {
        return Err(CheckpointError::HashMismatch {
            path: dir.to_path_buf(),
            file: digest.name.clone(),
            expected: digest.sha256.clone(),
            actual,
        });
    }
    Ok(tensor::decode(&bytes, &path)?.0)
}

fn check_header(dir: &Path, manifest: &Manifest, tensors: &TensorMap) -> Result<(), CheckpointError> {
    let mismatch = |name: &str, problem: String| CheckpointError::ManifestMismatch {
        path: dir.to_path_buf(),
        name: name.to_string(),
        problem,
    };
    let mut listed = std::collections::BTreeSet::new();
    if let Some(twice) = manifest.tensors.iter().find(|t| !listed.insert(t.name.as_str())) {
        return Err(mismatch(&twice.name, "listed twice in the manifest".into()));
    }
    if let Some(unlisted) = tensors.keys().find(|k| !listed.contains(k.as_str())) {
        return Err(mismatch(unlisted, "in the tensor file but not in the manifest".into()));
    }
    for info in &manifest.tensors {
        let tensor = tensors.get(&info.name).ok_or_else(|| mismatch(&info.name, "not in the tensor file".into()))?;
        if tensor.dtype != info.dtype || tensor.shape != info.shape {
            return Err(mismatch(
                &info.name,
                format!(
                    "manifest says {:?} {:?}, the file holds {:?} {:?}",
                    info.dtype, info.shape, tensor.dtype, tensor.shape
                ),
            ));
        }
    }
    Ok(())
}
