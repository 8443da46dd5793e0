//! Interchange with PyTorch: export a grown model as a plain state dict, import host weights
//! back, and check the export's forward pass in Python (numpy) with `examples/pytorch_interop.py`.

use crate::common::*;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use morphogen_checkpoint::{export_pytorch, import_pytorch, CheckpointError, StoredTensor};
use morphogen_engine::{
    seeded_model, SeedAddress, SeededConv2d, SeededConv2dConfig, SeededLinear, SeededLinearConfig, Stage,
};
use morphogen_testkit::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// A conv net with every blueprint kind: conv (7 channels, 3 seeds) -> relu -> flatten -> fc1
/// (175 -> 10, 4 seeds) -> relu -> fc2 (10 -> 3, 2 seeds). Chunk sizes are uneven, so padded
/// blueprint rows are sliced on export.
#[derive(Module, Debug)]
struct ConvNet<B: Backend> {
    conv: SeededConv2d<B>,
    fc1: SeededLinear<B>,
    fc2: SeededLinear<B>,
}

seeded_model!(ConvNet { conv, fc1, fc2 });

impl<B: Backend> ConvNet<B> {
    fn new(device: &B::Device) -> Self {
        let conv = SeededConv2dConfig::new([2, 7], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_num_seeds(3)
            .with_name("conv".into());
        Self {
            conv: conv.init(device),
            fc1: SeededLinearConfig::new(175, 10).with_num_seeds(4).with_name("fc1".into()).init(device),
            fc2: SeededLinearConfig::new(10, 3).with_num_seeds(2).with_name("fc2".into()).init(device),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let h = burn::tensor::activation::relu(self.conv.forward(x));
        let h = h.flatten(1, 3);
        self.fc2.forward(burn::tensor::activation::relu(self.fc1.forward(h)))
    }
}

const ARCHITECTURE: &str = r#"[{"layer": "conv", "stride": 1, "padding": 1}, {"act": "relu"}, {"flatten": 1},
    {"layer": "fc1"}, {"act": "relu"}, {"layer": "fc2"}]"#;

const TO_FINE_TUNING: [Stage; 5] =
    [Stage::Training, Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning];

fn walk<Bk: Backend>(core: &mut morphogen_engine::SeedCore<Bk>, seed: usize, stages: &[Stage]) {
    stages.iter().for_each(|&s| core.advance(seed, s).unwrap());
}

fn grown_conv_net() -> ConvNet<B> {
    let mut model = ConvNet::<B>::new(&device());
    let conv = &mut model.conv.core;
    conv.request_germination(0, "small_conv", "fixed_ramp").unwrap();
    walk(conv, 0, &TO_FINE_TUNING);
    conv.request_germination(1, "residual_mlp", "fixed_ramp").unwrap();
    walk(conv, 1, &TO_FINE_TUNING[..2]);
    conv.set_alpha(&[1], 0.3).unwrap();
    conv.request_germination(2, "wide_conv", "fixed_ramp").unwrap();
    walk(conv, 2, &[TO_FINE_TUNING.as_slice(), &[Stage::Fossilized]].concat());
    let fc1 = &mut model.fc1.core;
    fc1.request_germinations(&[0, 2], "wide_mlp", "fixed_ramp").unwrap();
    walk(fc1, 0, &TO_FINE_TUNING);
    walk(fc1, 2, &TO_FINE_TUNING[..1]);
    fc1.request_germinations(&[1, 3], "low_rank", "fixed_ramp").unwrap();
    walk(fc1, 1, &TO_FINE_TUNING[..2]);
    fc1.set_alpha(&[1], 0.6).unwrap();
    walk(fc1, 3, &TO_FINE_TUNING[..4]);
    let fc2 = &mut model.fc2.core;
    fc2.request_germination(0, "residual_mlp", "fixed_ramp").unwrap();
    walk(fc2, 0, &TO_FINE_TUNING[..3]);
    fc2.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    walk(fc2, 1, &[TO_FINE_TUNING.as_slice(), &[Stage::Fossilized]].concat());
    model.map(&mut RandomBanks)
}

fn address(layer: &str, seed: usize) -> SeedAddress {
    SeedAddress { layer: layer.into(), seed }
}

#[test]
fn export_merges_linear_blueprints_and_exports_the_rest_as_residuals() {
    let model = grown_conv_net();
    let dir = tempfile::tempdir().unwrap();
    let report = export_pytorch(&model, &dir.path().join("export.safetensors")).unwrap();
    // fc1's low_rank seeds stay residuals: its wide_mlp seed reads the host output they would change.
    assert_eq!(report.merged, [address("fc2", 1)]);
    assert_eq!(
        report.residuals,
        [
            address("conv", 0),
            address("conv", 1),
            address("conv", 2),
            address("fc1", 0),
            address("fc1", 1),
            address("fc1", 3),
            address("fc2", 0)
        ]
    );
    assert_eq!(report.inactive, [address("fc1", 2)], "TRAINING contributes nothing");
    for name in [
        "conv.weight",
        "conv.bias",
        "fc1.weight",
        "fc1.bias",
        "conv.residuals.0.0.weight",
        "conv.residuals.0.2.bias",
        "conv.residuals.2.2.weight",
        "fc1.residuals.0.2.weight",
        "fc2.residuals.0.0.bias",
    ] {
        assert!(report.tensors.iter().any(|t| t == name), "{name} not in {:?}", report.tensors);
    }
    let (tensors, metadata) = read(&dir.path().join("export.safetensors"));
    assert_eq!(tensors["fc1.weight"].shape, [10, 175], "Linear weights in PyTorch's [out, in] layout");
    assert_eq!(tensors["conv.residuals.0.0.weight"].shape, [3, 3, 3, 3], "small_conv on a 3-channel chunk");
    assert_eq!(tensors["conv.residuals.1.0.weight"].shape, [6, 2, 1, 1], "dense ops on a Conv2d host are 1x1 convs");
    assert_eq!(tensors["conv.residuals.2.0.weight"].shape, [6, 7, 3, 3], "wide_conv reads all 7 channels");
    assert_eq!(tensors["fc1.residuals.0.0.weight"].shape, [6, 10], "wide_mlp reads all 10 features");
    assert_eq!(metadata["format"], morphogen_checkpoint::EXPORT_FORMAT);
}

fn read(path: &Path) -> (HashMap<String, StoredTensor>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .iter()
        .map(|(n, v)| {
            (n.to_string(), StoredTensor { dtype: v.dtype(), shape: v.shape().to_vec(), bytes: v.data().to_vec() })
        })
        .collect();
    (tensors, header.metadata().clone().unwrap_or_default())
}

/// A model whose only contributing blueprints are low_rank on Linear layers exports as a plain
/// MLP: importing its host weights into a model with no blueprints reproduces its outputs.
#[test]
fn merged_host_weights_reproduce_the_grown_model() {
    let mut model = net::<B>(&device());
    model.fc1.request_germinations(&[0, 3], "low_rank", "fixed_ramp").unwrap();
    advance(&mut model.fc1, &[0, 3], &TO_FINE_TUNING);
    model.fc2.request_germination(2, "low_rank", "fixed_ramp").unwrap();
    advance(&mut model.fc2, &[2], &TO_FINE_TUNING[..2]);
    model.fc2.set_alpha(&[2], 0.25).unwrap();
    let model = model.map(&mut RandomBanks);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.safetensors");
    let report = export_pytorch(&model, &path).unwrap();
    assert!(report.residuals.is_empty() && report.merged.len() == 3, "{report:?}");

    let mut plain = net::<B>(&device());
    let imported = import_pytorch(&mut plain, &path).unwrap();
    assert_eq!(imported.loaded, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    assert!(imported.unused.is_empty());
    let x = random([5, 6]);
    let (grown, merged) = (values(model.forward(x.clone())), values(plain.forward(x)));
    for (g, m) in grown.iter().zip(&merged) {
        assert!((g - m).abs() <= 1e-5 * g.abs().max(1.0), "{g} vs {m}");
    }
}

#[test]
fn import_round_trips_host_weights_exactly_and_leaves_seeds_alone() {
    let source = net::<B>(&device());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.safetensors");
    export_pytorch(&source, &path).unwrap();
    let mut target = grown::<B>(&device());
    let seeds_before = seed_states(&target);
    import_pytorch(&mut target, &path).unwrap();
    assert_eq!(bits(target.fc1.host.weight.val()), bits(source.fc1.host.weight.val()));
    assert_eq!(bits(target.fc2.host.bias.as_ref().unwrap().val()), bits(source.fc2.host.bias.as_ref().unwrap().val()));
    assert_eq!(seed_states(&target), seeds_before);
}

#[test]
fn importing_a_file_for_another_model_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    let mut tensors = HashMap::new();
    tensors.insert("fc1.weight".to_string(), StoredTensor::from_f32(vec![0.0; 60], vec![6, 10]));
    std::fs::write(&path, safetensors::serialize(tensors.iter(), None).unwrap()).unwrap();
    let mut target = net::<B>(&device());
    let before = fingerprint(&target);
    let err = import_pytorch(&mut target, &path).unwrap_err();
    assert!(matches!(&err, CheckpointError::ShapeMismatch { name, .. } if name == "fc1.weight"), "{err}");
    tensors.insert("fc1.weight".to_string(), StoredTensor::from_f32(vec![0.0; 60], vec![10, 6]));
    std::fs::write(&path, safetensors::serialize(tensors.iter(), None).unwrap()).unwrap();
    let err = import_pytorch(&mut target, &path).unwrap_err();
    assert!(matches!(&err, CheckpointError::MissingTensor { name } if name == "fc1.bias"), "{err}");
    assert_eq!(fingerprint(&target), before);
}

fn python_with_safetensors() -> Result<(), String> {
    let probe = Command::new("python3").args(["-c", "import safetensors, numpy"]).output();
    match probe {
        Err(e) => Err(format!("python3 is not available ({e})")),
        Ok(out) if !out.status.success() => {
            Err(format!("python3 lacks safetensors/numpy: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
        Ok(_) => Ok(()),
    }
}

/// Writes the export and the Rust model's input/output for `examples/pytorch_interop.py`.
fn write_interop_files(dir: &Path) {
    let model = grown_conv_net();
    export_pytorch(&model, &dir.join("export.safetensors")).unwrap();
    let x: Tensor<B, 4> = Tensor::random([3, 2, 5, 5], Distribution::Normal(0.0, 1.0), &device());
    let y = model.forward(x.clone());
    let io = HashMap::from([
        ("input".to_string(), StoredTensor::from_f32(values(x.clone()), x.dims().to_vec())),
        ("output".to_string(), StoredTensor::from_f32(values(y.clone()), y.dims().to_vec())),
    ]);
    let metadata = HashMap::from([("architecture".to_string(), ARCHITECTURE.to_string())]);
    std::fs::write(dir.join("io.safetensors"), safetensors::serialize(io.iter(), Some(metadata)).unwrap()).unwrap();
}

#[test]
fn python_recomputes_the_exported_forward_pass() {
    if let Err(reason) = python_with_safetensors() {
        println!("skipping the Python export check: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_interop_files(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pytorch_interop.py");
    let out = Command::new("python3").arg(&script).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Python forward pass differs from Rust's");
    assert!(stdout.contains("1 merged and 7 residual blueprints"), "{stdout}");

    // The check can fail: a corrupted export does not match.
    let export = dir.path().join("export.safetensors");
    let (mut tensors, metadata) = read(&export);
    let bias = tensors.get_mut("fc2.bias").unwrap();
    let shifted = f32::from_le_bytes(bias.bytes[0..4].try_into().unwrap()) + 0.5;
    bias.bytes[0..4].copy_from_slice(&shifted.to_le_bytes());
    std::fs::write(&export, safetensors::serialize(tensors.iter(), Some(metadata)).unwrap()).unwrap();
    let out = Command::new("python3").arg(&script).arg(dir.path()).output().unwrap();
    assert!(!out.status.success(), "a wrong export must not match");
}

/// Writes the interop files into `$MORPHOGEN_INTEROP_DIR` for a manual `--torch` run (e.g. on a
/// machine with PyTorch): `MORPHOGEN_INTEROP_DIR=/tmp/x cargo test -p morphogen-checkpoint
/// --test checkpoint -- --ignored --exact pytorch::write_interop_files_for_a_manual_run`, then
/// `python3 examples/pytorch_interop.py /tmp/x --torch`.
#[test]
#[ignore = "writes files for a manual run of the Python script"]
fn write_interop_files_for_a_manual_run() {
    let dir = std::env::var("MORPHOGEN_INTEROP_DIR").expect("set MORPHOGEN_INTEROP_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    write_interop_files(Path::new(&dir));
}
