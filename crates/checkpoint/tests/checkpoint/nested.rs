//! Nested models: a `Vec` of blocks, each with two seeded layers, a plain `Linear` and a
//! `LayerNorm`, its seeded layers named by dotted path (`blocks.1.fc2`). Save and restore,
//! rollback and the PyTorch export all address layers and tensors by that path.

use crate::common::{advance, fingerprint, options};
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_checkpoint::{
    export_pytorch, write_checkpoint, Checkpoint, CheckpointDir, CheckpointError, Snapshot, IDENTITY_HOST,
};
use morphogen_engine::{
    SeedAddress, SeedControl, SeededBranch, SeededBranchConfig, SeededLinear, SeededLinearConfig, SeededModel, Stage,
};
use morphogen_testkit::*;
use std::collections::HashMap;

const WIDTH: usize = 8;
const HIDDEN: usize = 12;

#[derive(Module, Debug)]
struct Block<B: Backend> {
    norm: LayerNorm<B>,
    fc1: SeededLinear<B>,
    fc2: SeededLinear<B>,
    proj: Linear<B>,
}

/// Pre-norm residual blocks and a plain head.
#[derive(Module, Debug)]
struct Deep<B: Backend> {
    blocks: Vec<Block<B>>,
    head: Linear<B>,
}

/// Written by hand as the derive will write it: each block's layers under `blocks.<i>`.
impl<B: Backend> SeededModel<B> for Deep<B> {
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<B>)) {
        for (i, block) in self.blocks.iter().enumerate() {
            f(&format!("blocks.{i}.fc1"), &block.fc1);
            f(&format!("blocks.{i}.fc2"), &block.fc2);
        }
    }

    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<B>)) {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            f(&format!("blocks.{i}.fc1"), &mut block.fc1);
            f(&format!("blocks.{i}.fc2"), &mut block.fc2);
        }
    }
}

impl<B: Backend> Deep<B> {
    fn new(blocks: usize, device: &B::Device) -> Self {
        let seeded = |i: usize, name: &str, [d_in, d_out]: [usize; 2]| {
            SeededLinearConfig::new(d_in, d_out)
                .with_num_seeds(4)
                .with_name(format!("blocks.{i}.{name}"))
                .with_options(options())
                .init(device)
        };
        let block = |i| Block {
            norm: LayerNormConfig::new(WIDTH).init(device),
            fc1: seeded(i, "fc1", [WIDTH, HIDDEN]),
            fc2: seeded(i, "fc2", [HIDDEN, WIDTH]),
            proj: LinearConfig::new(WIDTH, WIDTH).init(device),
        };
        Self { blocks: (0..blocks).map(block).collect(), head: LinearConfig::new(WIDTH, 3).init(device) }
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.blocks.iter().fold(x, |h, b| {
            let inner = b.fc2.forward(relu(b.fc1.forward(b.norm.forward(h.clone()))));
            b.proj.forward(h + inner)
        });
        self.head.forward(h)
    }
}

const TO_FINE_TUNING: [Stage; 5] =
    [Stage::Training, Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning];

/// Three blocks, seeds grown in the first two (residual and merged blueprints, several stages),
/// the third untouched; every bank holds random values.
fn grown() -> Deep<B> {
    let mut model = Deep::<B>::new(3, &device());
    let [b0, b1, _] = model.blocks.as_mut_slice() else { unreachable!("three blocks") };
    b0.fc1.request_germinations(&[0, 2], "residual_mlp", "fixed_ramp").unwrap();
    advance(&mut b0.fc1, &[0, 2], &TO_FINE_TUNING[..2]);
    b0.fc1.set_alpha(&[0, 2], 0.4).unwrap();
    b0.fc2.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    advance(&mut b0.fc2, &[1], &TO_FINE_TUNING);
    b1.fc1.request_germination(3, "residual_mlp", "fixed_ramp").unwrap();
    advance(&mut b1.fc1, &[3], &TO_FINE_TUNING[..3]);
    b1.fc2.request_germination(0, "low_rank", "fixed_ramp").unwrap();
    advance(&mut b1.fc2, &[0], &[TO_FINE_TUNING.as_slice(), &[Stage::Fossilized]].concat());
    model.map(&mut RandomBanks)
}

fn address(layer: &str, seed: usize) -> SeedAddress {
    SeedAddress { layer: layer.into(), seed }
}

#[test]
fn nested_blocks_save_and_restore_bitwise_by_path() {
    let model = grown();
    let snapshot = Snapshot::of(&model).unwrap();
    let names = snapshot.tensor_names();
    for expected in [
        "model.blocks.0.fc1.host.weight",
        "model.blocks.0.fc1.core.banks.0.pages.0.params.0",
        "model.blocks.1.fc2.core.banks.1.pages.0.params.1",
        "model.blocks.2.fc2.core.state.stage",
        "model.blocks.1.proj.weight",
        "model.blocks.2.norm.gamma",
        "model.head.bias",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(&dir.path().join("c"), &snapshot).unwrap();
    let checkpoint = Checkpoint::read(&dir.path().join("c")).unwrap();
    let recorded: Vec<(&str, &str)> =
        checkpoint.manifest().seeded_layers.iter().map(|l| (l.name.as_str(), l.path.as_str())).collect();
    assert_eq!(
        recorded[..3],
        [
            ("blocks.0.fc1", "blocks.0.fc1.core"),
            ("blocks.0.fc2", "blocks.0.fc2.core"),
            ("blocks.1.fc1", "blocks.1.fc1.core")
        ]
    );
    assert_eq!(recorded.len(), 6);

    let mut fresh = Deep::<B>::new(3, &device());
    checkpoint.restore(&mut fresh).unwrap();
    assert_eq!(fingerprint(&fresh), fingerprint(&model), "host weights, banks, seed tables and alpha");
    let x = random([5, WIDTH]);
    assert_eq!(bits(fresh.forward(x.clone())), bits(model.forward(x)));
}

#[test]
fn rollback_restores_every_block_and_names_seeds_by_path() {
    let model = grown();
    let root = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::open(root.path()).unwrap();
    dir.save(&Snapshot::of(&model).unwrap().with_progress(1, 5)).unwrap();
    let saved = fingerprint(&model);

    let mut model = model;
    model.blocks[2].fc2.request_germination(2, "residual_mlp", "fixed_ramp").unwrap();
    advance(&mut model.blocks[2].fc2, &[2], &[Stage::Training]);
    model.blocks[0].fc1.advance_many(&[0, 2], Stage::Stabilization).unwrap();
    let mut model = model.map(&mut RandomBanks);
    assert_ne!(fingerprint(&model), saved);

    let rollback = dir.rollback(&mut model).unwrap();
    assert_eq!(fingerprint(&model), saved);
    assert_eq!(rollback.checkpoint.progress().step, 5);
    let expected = [
        address("blocks.0.fc1", 0),
        address("blocks.0.fc1", 2),
        address("blocks.0.fc2", 1),
        address("blocks.1.fc1", 3),
        address("blocks.2.fc2", 2),
    ];
    assert_eq!(rollback.rolled_back, expected);
}

#[test]
fn export_names_tensors_by_module_path() {
    let model = grown();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.safetensors");
    let report = export_pytorch(&model, &path).unwrap();
    assert_eq!(report.merged, [address("blocks.0.fc2", 1), address("blocks.1.fc2", 0)]);
    assert_eq!(report.residuals, [address("blocks.0.fc1", 0), address("blocks.0.fc1", 2), address("blocks.1.fc1", 3)]);

    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let shapes: HashMap<String, Vec<usize>> = file.iter().map(|(n, v)| (n.to_string(), v.shape().to_vec())).collect();
    for (name, shape) in [
        ("blocks.0.fc1.weight", vec![HIDDEN, WIDTH]),
        ("blocks.2.fc2.weight", vec![WIDTH, HIDDEN]),
        ("blocks.0.fc1.bias", vec![HIDDEN]),
        ("blocks.1.proj.weight", vec![WIDTH, WIDTH]),
        ("blocks.1.norm.weight", vec![WIDTH]),
        ("blocks.1.norm.bias", vec![WIDTH]),
        ("head.weight", vec![3, WIDTH]),
        ("blocks.0.fc1.residuals.0.0.weight", vec![6, 3]),
        ("blocks.0.fc1.residuals.2.2.bias", vec![3]),
        ("blocks.1.fc1.residuals.3.0.weight", vec![6, 3]),
    ] {
        assert_eq!(shapes.get(name), Some(&shape), "{name} in {:?}", shapes.keys().collect::<Vec<_>>());
    }
    assert!(shapes.keys().all(|n| !n.contains(".host.") && !n.contains(".core.")), "{shapes:?}");
    let head = model.head.weight.val();
    let exported: Vec<f32> = file
        .tensor("head.weight")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(exported, values(head.transpose()), "plain Linear weights in PyTorch's [out, in] layout");

    let layers: serde_json::Value = serde_json::from_str(&header.metadata().as_ref().unwrap()["layers"]).unwrap();
    let paths: Vec<&str> = layers.as_array().unwrap().iter().map(|l| l["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["blocks.0.fc1", "blocks.0.fc2", "blocks.1.fc1", "blocks.1.fc2", "blocks.2.fc1", "blocks.2.fc2"]);
}

/// A branch beside a plain layer: seeds with no host weights.
#[derive(Module, Debug, SeededModel)]
struct Branched<B: Backend> {
    fc: Linear<B>,
    branch: SeededBranch<B>,
}

#[test]
fn a_branch_exports_its_seeds_as_residuals_on_an_identity_host() {
    let mut model = Branched::<B> {
        fc: LinearConfig::new(WIDTH, WIDTH).init(&device()),
        branch: SeededBranchConfig::new(WIDTH).with_num_seeds(4).with_options(options()).init(&device()),
    };
    model.name_layers_by_path();
    // An affine blueprint, fossilized: on a Linear layer it would be merged into the host rows.
    model.branch.request_germination(2, "low_rank", "fixed_ramp").unwrap();
    advance(&mut model.branch, &[2], &[TO_FINE_TUNING.as_slice(), &[Stage::Fossilized]].concat());
    let model = model.map(&mut RandomBanks);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.safetensors");
    let report = export_pytorch(&model, &path).unwrap();
    assert_eq!(report.residuals, [address("branch", 2)], "{report:?}");
    assert!(report.merged.is_empty(), "nothing to merge into: {report:?}");
    assert!(report.tensors.iter().all(|t| !t.starts_with("branch.weight")), "{:?}", report.tensors);

    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let layers: serde_json::Value = serde_json::from_str(&header.metadata().as_ref().unwrap()["layers"]).unwrap();
    assert_eq!(layers[0]["path"], "branch");
    assert_eq!(layers[0]["host"], IDENTITY_HOST);
    assert_eq!(layers[0]["residuals"][0]["seed"], 2);
}

#[test]
fn a_seeded_layer_path_missing_on_either_side_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let three = dir.path().join("three");
    write_checkpoint(&three, &Snapshot::of(&grown()).unwrap()).unwrap();
    let mut two = Deep::<B>::new(2, &device());
    let before = fingerprint(&two);
    let err = Checkpoint::read(&three).unwrap().restore(&mut two).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::LayerMismatch { layer, problem }
            if layer == "blocks.2.fc1" && problem.contains("'blocks.2.fc1.core' the model lacks")),
        "{err}"
    );
    assert_eq!(fingerprint(&two), before, "nothing changed");

    let two_blocks = dir.path().join("two");
    write_checkpoint(&two_blocks, &Snapshot::of(&two).unwrap()).unwrap();
    let mut model = grown();
    let err = Checkpoint::read(&two_blocks).unwrap().restore(&mut model).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::LayerMismatch { layer, problem }
            if layer == "blocks.2.fc1" && problem.contains("no seeded layer at 'blocks.2.fc1.core'")),
        "{err}"
    );
}
