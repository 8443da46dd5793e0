//! Integrity: truncated, corrupted, wrong-schema and wrong-model checkpoints are typed errors
//! that name the problem and leave the model (and optimizer) as they were; corruption fuzzing.

use crate::common::*;
use burn::optim::{AdamConfig, Optimizer};
use morphogen_checkpoint::{
    sha256_hex, write_checkpoint, Checkpoint, CheckpointError, Snapshot, StoredTensor, TensorMap, MANIFEST_FILE,
    MANIFEST_SUM_FILE, TENSOR_FILE,
};
use morphogen_engine::{BlueprintRegistry, BlueprintSpec, SeedOptions, SeededLinearConfig};
use morphogen_testkit::*;
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The three files of a valid checkpoint of `grown()` with Adam state.
#[derive(Clone, Debug)]
struct Files {
    tensors: Vec<u8>,
    manifest: Vec<u8>,
    sum: Vec<u8>,
}

fn valid() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let model = grown::<B>(&device());
        let mut optimizer = AdamConfig::new().init::<B, Net<B>>();
        let grads = burn::optim::GradientsParams::from_grads(model.forward(random([2, 6])).sum().backward(), &model);
        let model = optimizer.step(1e-2, model, grads);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        write_checkpoint(&path, &Snapshot::of(&model).unwrap().with_optimizer(&optimizer).unwrap()).unwrap();
        let read = |f: &str| std::fs::read(path.join(f)).unwrap();
        Files { tensors: read(TENSOR_FILE), manifest: read(MANIFEST_FILE), sum: read(MANIFEST_SUM_FILE) }
    })
}

impl Files {
    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("case-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join(TENSOR_FILE), &self.tensors).unwrap();
        std::fs::write(path.join(MANIFEST_FILE), &self.manifest).unwrap();
        std::fs::write(path.join(MANIFEST_SUM_FILE), &self.sum).unwrap();
        path
    }

    fn manifest_json(&self) -> Value {
        serde_json::from_slice(&self.manifest).unwrap()
    }

    /// Replaces the manifest and recomputes its checksum (a consistent but edited manifest).
    fn with_manifest(mut self, manifest: &Value) -> Self {
        self.manifest = serde_json::to_vec_pretty(manifest).unwrap();
        self.sum = format!("{}\n", sha256_hex(&self.manifest)).into_bytes();
        self
    }

    fn tensors(&self) -> TensorMap {
        let file = safetensors::SafeTensors::deserialize(&self.tensors).unwrap();
        file.iter()
            .map(|(n, v)| {
                (n.to_string(), StoredTensor { dtype: v.dtype(), shape: v.shape().to_vec(), bytes: v.data().to_vec() })
            })
            .collect()
    }

    /// Replaces the tensors, keeping manifest entries, hashes and checksums consistent.
    fn with_tensors(mut self, tensors: &TensorMap) -> Self {
        self.tensors = safetensors::serialize(tensors.iter(), None).unwrap();
        let mut manifest = self.manifest_json();
        manifest["tensor_file"]["bytes"] = self.tensors.len().into();
        manifest["tensor_file"]["sha256"] = sha256_hex(&self.tensors).into();
        let entries = manifest["tensors"].as_array().unwrap().clone();
        manifest["tensors"] = tensors
            .iter()
            .map(|(name, t)| {
                let old = entries.iter().find(|e| e["name"] == name.as_str());
                let id = old.map_or(Value::Null, |e| e["param_id"].clone());
                serde_json::json!({"name": name, "dtype": t.dtype, "shape": t.shape, "param_id": id})
            })
            .collect();
        self.with_manifest(&manifest)
    }
}

/// Reads and restores into `target` (and a fresh optimizer); checks both are unchanged on error.
fn restore(files: &Files, target: &mut Net<B>) -> Result<(), CheckpointError> {
    let dir = tempfile::tempdir().unwrap();
    let path = files.write(dir.path());
    let before = fingerprint(target);
    let mut optimizer = AdamConfig::new().init::<B, Net<B>>();
    let result = Checkpoint::read(&path).and_then(|c| c.restore_with_optimizer(target, &mut optimizer));
    if result.is_err() {
        assert_eq!(fingerprint(target), before, "a failed restore changed the model");
        assert!(optimizer.to_record().is_empty(), "a failed restore changed the optimizer");
    }
    result
}

fn target() -> Net<B> {
    let mut model = net::<B>(&device());
    model.fc2.request_germination(2, "low_rank", "fixed_ramp").unwrap();
    model
}

#[test]
fn the_valid_checkpoint_restores() {
    restore(valid(), &mut target()).unwrap();
}

#[test]
fn a_missing_tensor_is_named() {
    let mut tensors = valid().tensors();
    tensors.remove("model.fc1.host.bias").unwrap();
    let err = restore(&valid().clone().with_tensors(&tensors), &mut target()).unwrap_err();
    assert!(matches!(&err, CheckpointError::MissingTensor { name } if name == "model.fc1.host.bias"), "{err}");
}

#[test]
fn a_host_shape_mismatch_names_tensor_and_layer() {
    let mut other = target();
    other.fc1 = SeededLinearConfig::new(7, 10)
        .with_num_seeds(4)
        .with_name("fc1".into())
        .with_options(options())
        .init(&device());
    let err = restore(valid(), &mut other).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, CheckpointError::ShapeMismatch { .. }), "{message}");
    for needle in ["model.fc1.host.weight", "fc1", "[6, 10]", "[7, 10]"] {
        assert!(message.contains(needle), "{message} lacks {needle}");
    }
}

#[test]
fn corrupted_and_truncated_tensor_files_fail_their_checks() {
    let mut flipped = valid().clone();
    let at = flipped.tensors.len() - 3;
    flipped.tensors[at] ^= 0x10;
    let err = restore(&flipped, &mut target()).unwrap_err();
    assert!(matches!(&err, CheckpointError::HashMismatch { file, .. } if file == TENSOR_FILE), "{err}");

    let mut truncated = valid().clone();
    truncated.tensors.truncate(100);
    let err = restore(&truncated, &mut target()).unwrap_err();
    assert!(matches!(err, CheckpointError::SizeMismatch { actual: 100, .. }), "{err}");
}

#[test]
fn an_edited_manifest_fails_its_checksum_and_a_future_schema_is_refused() {
    let mut edited = valid().clone();
    edited.manifest = String::from_utf8(edited.manifest).unwrap().replace("\"epoch\": 0", "\"epoch\": 9").into_bytes();
    let err = restore(&edited, &mut target()).unwrap_err();
    assert!(matches!(&err, CheckpointError::HashMismatch { file, .. } if file == MANIFEST_FILE), "{err}");

    let mut manifest = valid().manifest_json();
    let future = morphogen_checkpoint::SCHEMA_VERSION + 1;
    manifest["schema_version"] = future.into();
    let err = restore(&valid().clone().with_manifest(&manifest), &mut target()).unwrap_err();
    assert!(matches!(err, CheckpointError::UnsupportedSchema { found, .. } if found == u64::from(future)), "{err}");
}

#[test]
fn a_model_with_other_blueprints_is_refused() {
    let wide = BlueprintRegistry::default().register(BlueprintSpec::residual_mlp(4.0)).unwrap();
    let mut other = target();
    other.fc1 = SeededLinearConfig::new(6, 10)
        .with_num_seeds(4)
        .with_name("fc1".into())
        .with_options(SeedOptions::new().with_blueprints(wide).with_strategies(options().strategies))
        .init(&device());
    let err = restore(valid(), &mut other).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::LayerMismatch { layer, problem } if layer == "fc1" && problem.contains("blueprint")),
        "{err}"
    );
}

#[test]
fn impossible_seed_states_and_bank_shapes_are_named() {
    let mut tensors = valid().tensors();
    let stage = tensors.get_mut("model.fc1.core.state.stage").unwrap();
    stage.bytes[8..12].copy_from_slice(&42f32.to_le_bytes());
    let err = restore(&valid().clone().with_tensors(&tensors), &mut target()).unwrap_err();
    assert!(matches!(err, CheckpointError::InvalidSeedState { seed: 2, .. }), "{err}");

    let mut tensors = valid().tensors();
    tensors.insert(
        "model.fc1.core.banks.0.pages.0.params.0".into(),
        StoredTensor::from_f32(vec![0.0; 4 * 3 * 5], vec![4, 3, 5]),
    );
    let err = restore(&valid().clone().with_tensors(&tensors), &mut target()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, CheckpointError::BankMismatch { page: 0, param: 0, .. }), "{message}");
    assert!(message.contains("residual_mlp") && message.contains("seeds 0, 2"), "{message}");

    let mut tensors = valid().tensors();
    for (param, [a, b]) in [[3, 6], [1, 6], [6, 3], [1, 3]].into_iter().enumerate() {
        let name = format!("model.fc1.core.banks.0.pages.1.params.{param}");
        tensors.insert(name, StoredTensor::from_f32(vec![0.0; 4 * a * b], vec![4, a, b]));
    }
    let err = restore(&valid().clone().with_tensors(&tensors), &mut target()).unwrap_err();
    assert!(err.to_string().contains("8 rows in 2 pages"), "{err}");

    let mut tensors = valid().tensors();
    tensors.insert("model.fc9.weight".into(), StoredTensor::from_f32(vec![0.0], vec![1]));
    let err = restore(&valid().clone().with_tensors(&tensors), &mut target()).unwrap_err();
    assert!(matches!(&err, CheckpointError::UnexpectedTensor { name } if name == "model.fc9.weight"), "{err}");
}

/// One way of damaging a checkpoint.
#[derive(Clone, Debug)]
enum Damage {
    FlipTensorFile(usize, u8),
    FlipManifest(usize, u8),
    FlipManifestSum(usize, u8),
    TruncateTensorFile(usize),
    TruncateManifest(usize),
    /// Swaps two byte ranges of the tensor file's data (two tensors' contents).
    SwapData(usize, usize),
    /// Swaps two differently shaped tensors' names, with hashes and manifest made consistent.
    SwapNames(usize, usize),
    /// A semantic edit of the manifest with its checksum recomputed.
    EditManifest(usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let flip = (any::<usize>(), 1..=255u8);
    prop_oneof![
        flip.clone().prop_map(|(a, x)| Damage::FlipTensorFile(a, x)),
        flip.clone().prop_map(|(a, x)| Damage::FlipManifest(a, x)),
        flip.prop_map(|(a, x)| Damage::FlipManifestSum(a, x)),
        any::<usize>().prop_map(Damage::TruncateTensorFile),
        any::<usize>().prop_map(Damage::TruncateManifest),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::SwapData(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::SwapNames(a, b)),
        (0..12usize, any::<usize>()).prop_map(|(k, i)| Damage::EditManifest(k, i)),
    ]
}

fn flip(bytes: &mut [u8], at: usize, xor: u8) {
    let at = at % bytes.len();
    bytes[at] ^= xor;
}

fn swap_names(files: Files, a: usize, b: usize) -> Files {
    let mut tensors = files.tensors();
    let names: Vec<String> = tensors.keys().cloned().collect();
    let first = names[a % names.len()].clone();
    let candidates: Vec<&String> = names.iter().filter(|n| tensors[*n].shape != tensors[&first].shape).collect();
    let second = candidates[b % candidates.len()].clone();
    let (x, y) = (tensors.remove(&first).unwrap(), tensors.remove(&second).unwrap());
    tensors.insert(first, y);
    tensors.insert(second, x);
    files.with_tensors(&tensors)
}

fn edit_manifest(files: Files, kind: usize, i: usize) -> Files {
    let mut m = files.manifest_json();
    let count = m["tensors"].as_array().unwrap().len();
    let entry = i % count;
    match kind {
        0 => m["schema_version"] = [0, morphogen_checkpoint::SCHEMA_VERSION + 1, 99][i % 3].into(),
        1 => m["format"] = "something-else".into(),
        2 => m["tensor_file"]["sha256"] = sha256_hex(b"other").into(),
        3 => m["tensor_file"]["bytes"] = (files.tensors.len() + 1 + i % 7).into(),
        4 => m["tensor_file"]["name"] = ["../tensors.safetensors", "/etc/passwd", "missing.safetensors"][i % 3].into(),
        5 => _ = m["tensors"].as_array_mut().unwrap().remove(entry),
        6 => {
            let copy = m["tensors"][entry].clone();
            m["tensors"].as_array_mut().unwrap().push(copy);
        }
        7 => m["tensors"][entry]["shape"].as_array_mut().unwrap().push(2.into()),
        8 => m["tensors"][entry]["dtype"] = if m["tensors"][entry]["dtype"] == "F64" { "F16" } else { "F64" }.into(),
        9 => m["seeded_layers"][i % 2]["seeds"] = 5.into(),
        10 => _ = m["seeded_layers"].as_array_mut().unwrap().remove(i % 2),
        _ => m["surprise"] = true.into(),
    }
    files.with_manifest(&m)
}

fn damaged(damage: &Damage) -> Files {
    let mut files = valid().clone();
    match *damage {
        Damage::FlipTensorFile(at, x) => flip(&mut files.tensors, at, x),
        Damage::FlipManifest(at, x) => flip(&mut files.manifest, at, x),
        // Only the 64 hex digits: the trailing newline is whitespace the reader trims, so a flip
        // there (say to a tab) leaves a valid checksum.
        Damage::FlipManifestSum(at, x) => flip(&mut files.sum[..64], at, x),
        Damage::TruncateTensorFile(len) => files.tensors.truncate(len % files.tensors.len()),
        Damage::TruncateManifest(len) => files.manifest.truncate(len % files.manifest.len()),
        Damage::SwapData(a, b) => {
            let header = 8 + u64::from_le_bytes(files.tensors[..8].try_into().unwrap()) as usize;
            let data = files.tensors.len() - header;
            let (a, b) = (header + a % (data - 4), header + b % (data - 4));
            if a.abs_diff(b) < 4 || files.tensors[a..a + 4] == files.tensors[b..b + 4] {
                // Swapping equal bytes changes nothing; flip instead so the case stays damaged.
                files.tensors[a] ^= 1;
            } else {
                for k in 0..4 {
                    files.tensors.swap(a + k, b + k);
                }
            }
        }
        Damage::SwapNames(a, b) => files = swap_names(files, a, b),
        Damage::EditManifest(kind, i) => files = edit_manifest(files, kind, i),
    }
    files
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every damaged checkpoint is a typed error, never a panic, and changes nothing.
    #[test]
    fn every_damaged_checkpoint_is_a_typed_error(damage in damage()) {
        let files = damaged(&damage);
        let result = restore(&files, &mut target());
        prop_assert!(result.is_err(), "{damage:?} restored");
    }
}
