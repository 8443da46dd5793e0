//! Schema evolution: the checked-in fixture `tests/fixtures/v1-checkpoint` was written in the
//! previous schema (v1: flat epoch/step/rng_seed, no seeded-layer records, no gate memory, no
//! manifest checksum); this build reads it into a fresh model.

use crate::common::*;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use morphogen_checkpoint::manifest::{Manifest, ManifestV1};
use morphogen_checkpoint::{write_checkpoint, Checkpoint, Snapshot, MANIFEST_FILE, MANIFEST_SUM_FILE, TENSOR_FILE};
use morphogen_engine::Stage;
use morphogen_testkit::*;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-checkpoint")
}

/// Fills every parameter outside the seed-state columns with values fixed by its position.
struct Deterministic {
    path: Vec<String>,
    count: usize,
}

impl<Bk: Backend> ModuleMapper<Bk> for Deterministic {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        if self.path.iter().any(|p| p == "state") {
            return param;
        }
        self.count += 1;
        let offset = self.count as f32;
        param.map(|t| {
            let shape = t.shape();
            let n = shape.num_elements();
            let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + offset).sin() * 0.5).collect();
            let fresh = Tensor::from_data(TensorData::new(values, shape), &t.device());
            if t.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// The model the fixture holds.
fn expected() -> Net<B> {
    let mut model = net::<B>(&device());
    model.fc1.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    model.fc1.advance(1, Stage::Training).unwrap();
    model.fc2.request_germination(0, "residual_mlp", "fixed_ramp").unwrap();
    advance(&mut model.fc2, &[0], &[Stage::Training, Stage::Grafting]);
    model.fc2.set_alpha(&[0], 0.5).unwrap();
    model.map(&mut Deterministic { path: Vec::new(), count: 0 })
}

/// Writes the fixture as the v1 writer did: after changing `expected()`, run
/// `cargo test -p morphogen-checkpoint --test checkpoint -- --ignored --exact schema::regenerate_v1_fixture`.
#[test]
#[ignore = "regenerates the checked-in fixture"]
fn regenerate_v1_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let written = temp.path().join("v2");
    let snapshot = Snapshot::of(&expected()).unwrap().with_progress(1, 5).with_rng(1234, None).with_metric(0.75);
    write_checkpoint(&written, &snapshot).unwrap();
    let v2: Manifest = serde_json::from_slice(&std::fs::read(written.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert!(v2.tensors.iter().all(|t| !t.name.starts_with("graft.")), "v1 had no gate memory");
    let v1 = ManifestV1 {
        format: v2.format,
        schema_version: 1,
        writer: "morphogen-checkpoint 0.0.1 (schema v1)".into(),
        epoch: v2.progress.epoch,
        step: v2.progress.step,
        rng_seed: v2.rng.seed,
        metric: v2.metric,
        tensor_file: v2.tensor_file,
        tensors: v2.tensors,
        optimizer: v2.optimizer,
        extra: v2.extra,
    };
    let out = fixture();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(written.join(TENSOR_FILE), out.join(TENSOR_FILE)).unwrap();
    std::fs::write(out.join(MANIFEST_FILE), serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
}

#[test]
fn the_v1_fixture_restores_into_a_fresh_model() {
    assert!(!fixture().join(MANIFEST_SUM_FILE).exists(), "v1 wrote no manifest checksum");
    let checkpoint = Checkpoint::read(&fixture()).unwrap();
    assert_eq!(checkpoint.manifest().schema_version, 1);
    assert_eq!((checkpoint.progress().epoch, checkpoint.progress().step), (1, 5));
    assert_eq!((checkpoint.rng().seed, checkpoint.rng().state.clone()), (1234, None));
    assert_eq!(checkpoint.metric(), Some(0.75));
    assert!(checkpoint.manifest().seeded_layers.is_empty());

    let mut fresh = net::<B>(&device());
    checkpoint.restore(&mut fresh).unwrap();
    let expected = expected();
    let without_ids = |m: &Net<B>| param_bits(m).into_iter().map(|(_, shape, bits)| (shape, bits)).collect::<Vec<_>>();
    assert_eq!(without_ids(&fresh), without_ids(&expected), "parameters, banks included");
    assert_eq!(seed_states(&fresh), seed_states(&expected), "seed tables and alpha");
    assert_eq!(fresh.fc2.seed(0).unwrap().stage, Stage::Grafting);
    let x = random([3, 6]);
    assert_eq!(bits(fresh.forward(x.clone())), bits(expected.forward(x)));
}

#[test]
fn v1_checkpoints_are_still_checked_against_the_model() {
    let mut other = net::<B>(&device());
    other.fc2 =
        morphogen_engine::SeededLinearConfig::new(10, 4).with_num_seeds(3).with_name("fc2".into()).init(&device());
    let before = fingerprint(&other);
    let err = Checkpoint::read(&fixture()).unwrap().restore(&mut other).unwrap_err();
    assert!(err.to_string().contains("model.fc2"), "{err}");
    assert_eq!(fingerprint(&other), before);
}
