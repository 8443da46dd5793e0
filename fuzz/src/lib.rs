//! What the fuzz targets share: a scratch folder per process, and a small grown model with a
//! checkpoint of it to damage.
//!
//! Every target hands outside bytes to one of morphogen's readers, through the same public call
//! `morphogen train`, `--resume`, `morphogen dashboard` or `watch` makes, and lets libFuzzer look
//! for a panic, an abort, a hang or runaway memory. A typed error is the expected answer.

use morphogen::burn::backend::NdArray;
use morphogen::burn::module::Module;
use morphogen::burn::tensor::backend::Backend;
use morphogen::checkpoint::{
    sha256_hex, Checkpoint, CheckpointDir, Snapshot, MANIFEST_FILE, MANIFEST_SUM_FILE, TENSOR_FILE,
};
use morphogen::{SeededLinear, SeededLinearConfig, SeededModel, Stage};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The backend the targets run on (CPU, no autodiff: nothing trains).
pub type Cpu = NdArray<f32>;

/// A two-layer seeded MLP, the model the damaged checkpoints are restored into.
#[derive(Module, Debug, SeededModel)]
pub struct Net<B: Backend> {
    /// First layer: 6 inputs, 8 features, 4 seeds.
    pub fc1: SeededLinear<B>,
    /// Second layer: 8 inputs, 3 features, 2 seeds.
    pub fc2: SeededLinear<B>,
}

/// A fresh `Net`, every seed dormant.
pub fn net() -> Net<Cpu> {
    let device = Default::default();
    Net {
        fc1: SeededLinearConfig::new(6, 8).with_num_seeds(4).init(&device),
        fc2: SeededLinearConfig::new(8, 3).with_num_seeds(2).init(&device),
    }
}

/// A `Net` with seeds in several stages, so its checkpoint holds banks and seed state.
fn grown() -> Net<Cpu> {
    let mut model = net();
    for seed in 0..3 {
        model.fc1.request_germination(seed, "residual_mlp", "fixed_ramp").expect("germinate");
    }
    model.fc1.advance(1, Stage::Training).expect("train");
    model.fc1.advance(2, Stage::Training).expect("train");
    model.fc1.advance(2, Stage::Grafting).expect("graft");
    model
}

/// A folder of this process's own under the system's temporary folder, emptied.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morphogen-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

/// The manifest and tensor file of a checkpoint of the grown `Net`, written once.
pub fn checkpoint_files() -> &'static (Vec<u8>, Vec<u8>) {
    static FILES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = scratch("base");
        let snapshot = Snapshot::of(&grown()).expect("snapshot").with_progress(1, 10);
        let saved = CheckpointDir::open(&root).expect("open").save(&snapshot).expect("save");
        let read = |file: &str| std::fs::read(saved.path.join(file)).expect("read back");
        let files = (read(MANIFEST_FILE), read(TENSOR_FILE));
        let _ = std::fs::remove_dir_all(&root);
        files
    })
}

/// Writes a checkpoint folder of `manifest` (with its checksum file, so the manifest's own
/// content is what gets checked) and `tensors`, reads it and restores it into a fresh `Net`.
/// Any error is an answer.
pub fn read_and_restore(manifest: &[u8], tensors: &[u8]) {
    let dir = scratch("checkpoint");
    std::fs::write(dir.join(MANIFEST_FILE), manifest).unwrap();
    std::fs::write(dir.join(MANIFEST_SUM_FILE), sha256_hex(manifest)).unwrap();
    std::fs::write(dir.join(TENSOR_FILE), tensors).unwrap();
    if let Ok(checkpoint) = Checkpoint::read(&dir) {
        let _ = checkpoint.restore(&mut net());
    }
}
