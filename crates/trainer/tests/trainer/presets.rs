//! The ResNet and transformer presets grown through the trainer on CPU, small: seeds fossilize
//! and are culled, every logged transition is legal, and the grown model's checkpoint restores
//! bit for bit; a transformer and a ResNet grow only their branches when told to; a NaN loss on the
//! language task rolls the run back as on images.

use crate::common::{pooled_data, text_data, B};
use burn::data::dataset::Dataset;
use burn::module::AutodiffModule;
use burn::optim::AdamConfig;
use burn::tensor::backend::Backend;
use morphogen_checkpoint::{export_pytorch, CheckpointDir};
use morphogen_contracts::{Stage, TransitionEvent};
use morphogen_controller::{Controller, ControllerConfig};
use morphogen_engine::SeededModel;
use morphogen_trainer::{
    EventLog, ModelConfig, NextCharacter, StepOutput, Task, TaskData, TaskModel, TextBatch, Trainer, TrainerConfig,
    Transformer,
};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A controller that grows at once and judges quickly, keeping seeds that lower the validation
/// loss by at least `min_contribution`.
fn eager_controller(min_contribution: f32) -> Controller {
    Controller::new(ControllerConfig {
        patience: 0,
        max_germinations_per_epoch: 4,
        max_active_per_layer: 2,
        max_active_total: 8,
        min_contribution,
        ..Default::default()
    })
    .unwrap()
}

/// A short run's trainer settings: `epochs` of small batches, checkpoints in `dir`.
fn short_run(epochs: u32, dir: &Path) -> TrainerConfig {
    TrainerConfig {
        epochs,
        batch_size: 32,
        learning_rate: 3e-3,
        eval_samples: 64,
        checkpoint_dir: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

/// Restores the newest checkpoint in `dir` into `fresh`, a newly built model of `grown`'s
/// preset, and checks it computes exactly what `grown` does, with the same seed tables.
fn restores_exactly<M, T>(grown: &M, mut fresh: M, data: &TaskData<T>, dir: &Path)
where
    T: Task,
    M: AutodiffModule<B> + SeededModel<B>,
    M::InnerModule: TaskModel<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, T>,
{
    CheckpointDir::open(dir).unwrap().latest().unwrap().restore(&mut fresh).unwrap();
    let device = Default::default();
    let items: Vec<_> = (0..8).filter_map(|i| data.valid.get(i)).collect();
    let batch = data.task.batch::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(items, &device);
    let expected = grown.valid().step(batch.clone()).loss.into_data();
    let restored = fresh.valid().step(batch).loss.into_data();
    assert_eq!(expected, restored, "the restored model computes exactly what the grown one does");
    grown.visit_seeded(&mut |path, layer| {
        fresh.visit_seeded(&mut |other, twin| {
            if path == other {
                assert_eq!(layer.seed_core().table(), twin.seed_core().table(), "{path}");
            }
        });
    });
}

/// Trains `model` for twelve epochs with growth on and checks the lifecycle and the checkpoint of
/// the grown model against `fresh`, a newly built model of the same preset.
fn grows_and_restores<M, T>(model: M, fresh: M, data: &TaskData<T>, controller: Controller, dir: &Path) -> M
where
    T: Task,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + 'static,
    M::InnerModule: SeededModel<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>
        + TaskModel<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, T>,
{
    let mut trainer = Trainer::new(short_run(12, dir), controller, EventLog::in_memory()).unwrap();
    let out = trainer.run(model, AdamConfig::new().init(), data, &mut ()).unwrap();
    let events = trainer.events().events();
    for e in events {
        eprintln!("epoch {} {}/{} {} -> {}: {}", e.epoch, e.layer, e.seed, e.from, e.to, e.reason);
        assert!(e.from.can_transition_to(e.to), "illegal logged transition {e:?}");
        assert!(e.layer.contains('.'), "layers are named by their dotted path: {e:?}");
    }
    let reached = |stage: Stage| events.iter().filter(|e| e.to == stage).count();
    assert!(reached(Stage::Fossilized) >= 1, "no seed fossilized");
    assert!(reached(Stage::Culled) >= 1, "no seed culled");
    assert!(out.model.params_added() > 0);
    restores_exactly(&out.model, fresh, data, dir);
    std::fs::remove_dir_all(dir).ok();
    out.model
}

#[test]
fn a_resnet_grows_through_the_trainer() {
    // Burn's CPU convolutions are slow in a debug build: the images are pooled to 7x7 and the
    // stages are 2, 4 and 8 channels wide, which keeps the test near a minute.
    let data = pooled_data(160, 64, 4);
    let device = Default::default();
    B::seed(&device, 3);
    let config = ModelConfig { width: 2, num_seeds: 2, graft_ramp_steps: 8, ..Default::default() };
    let model = config.resnet::<B>(&data.task, &device).unwrap();
    let fresh = config.resnet::<B>(&data.task, &device).unwrap();
    assert_eq!(model.seeded_layer_names().len(), 12, "every block conv is seeded");
    assert_eq!(model.seeded_layer_names()[0], "blocks.0.conv1");
    let dir = std::env::temp_dir().join(format!("morphogen-resnet-{}", std::process::id()));
    // Twelve short epochs move the loss little: any seed that lowers it is kept.
    grows_and_restores(model, fresh, &data, eager_controller(0.0), &dir);
}

/// One block, 16 wide, two heads, 16 characters of context, two seeds a layer.
fn tiny() -> ModelConfig {
    ModelConfig { layers: 1, d_model: 16, heads: 2, context: 16, num_seeds: 2, ..Default::default() }
}

/// `config`'s transformer built twice from backend seed `seed` (to grow, and fresh to restore
/// into), and Shakespeare in windows of its context.
fn tiny_transformer(config: ModelConfig, seed: u64) -> (Transformer<B>, Transformer<B>, TaskData<NextCharacter>) {
    let data = text_data(config.context, 256, 64);
    let device = Default::default();
    B::seed(&device, seed);
    let model = config.transformer::<B>(&data.task, &device).unwrap();
    let fresh = config.transformer::<B>(&data.task, &device).unwrap();
    (model, fresh, data)
}

#[test]
fn a_transformer_grows_on_shakespeare_through_the_trainer() {
    let (model, fresh, data) = tiny_transformer(ModelConfig { graft_ramp_steps: 16, ..tiny() }, 3);
    let names = model.seeded_layer_names();
    assert_eq!(
        names,
        [
            "blocks.0.attn.query",
            "blocks.0.attn.key",
            "blocks.0.attn.value",
            "blocks.0.attn.output",
            "blocks.0.mlp.fc1",
            "blocks.0.mlp.fc2"
        ]
    );
    let dir = std::env::temp_dir().join(format!("morphogen-transformer-{}", std::process::id()));
    let grown = grows_and_restores(model, fresh, &data, eager_controller(0.002), &dir);

    let file = std::env::temp_dir().join(format!("morphogen-transformer-{}.safetensors", std::process::id()));
    let report = export_pytorch(&grown, &file).unwrap();
    std::fs::remove_file(&file).ok();
    for name in
        ["embed.weight", "blocks.0.attn.query.weight", "blocks.0.mlp.fc2.bias", "blocks.0.norm1.weight", "head.weight"]
    {
        assert!(report.tensors.iter().any(|t| t == name), "{name} not among {:?}", report.tensors);
    }
    let grown_seeds = report.merged.len() + report.residuals.len();
    assert!(grown_seeds > 0, "the grown seeds are exported: {report:?}");
    assert!(report.merged.iter().chain(&report.residuals).all(|s| s.layer.starts_with("blocks.0.")));
}

#[test]
fn a_transformer_grows_only_its_mlp_branches_when_told_and_they_restore_and_export() {
    let config = ModelConfig { graft_ramp_steps: 8, mlp_branch: true, ..tiny() };
    let (model, fresh, data) = tiny_transformer(config, 5);
    assert_eq!(model.seeded_layer_names().last().map(String::as_str), Some("blocks.0.mlp.branch"));
    let grow = ControllerConfig {
        grow_in: vec!["mlp.branch".into()],
        linear_blueprint: "wide_mlp".into(),
        ..Default::default()
    };
    grows_only_in_branches(model, fresh, &data, grow);
}

#[test]
fn a_resnet_grows_only_its_block_branches_when_told_and_they_restore_and_export() {
    let data = pooled_data(96, 32, 4);
    let device = Default::default();
    B::seed(&device, 5);
    let config = ModelConfig { width: 2, num_seeds: 2, graft_ramp_steps: 3, block_branch: true, ..Default::default() };
    let model = config.resnet::<B>(&data.task, &device).unwrap();
    let fresh = config.resnet::<B>(&data.task, &device).unwrap();
    let branches: Vec<_> = model.seeded_layer_names().into_iter().filter(|n| n.ends_with("branch")).collect();
    assert_eq!(branches, ["blocks.0.branch", "blocks.1.branch", "blocks.3.branch", "blocks.5.branch"]);
    // Germinations take a free TRAINING slot in the same decision: the lifecycle an epoch shorter.
    let grow = ControllerConfig {
        grow_in: vec!["branch".into()],
        conv_blueprint: "inner_conv".into(),
        train_at_once: true,
        ..Default::default()
    };
    let events = grows_only_in_branches(model, fresh, &data, grow);
    let at_once = events.iter().find(|e| e.to == Stage::Training).expect("a seed trained");
    assert!(at_once.reason.contains("promoted at once"), "{at_once:?}");
}

/// Trains `model` for five epochs under `grow`, whose `grow_in` names the branches: seeds grow only
/// there and reach EVALUATING (contributing); the grown model restores exactly into `fresh` and
/// exports its branch seeds as residuals. Returns the run's lifecycle events.
fn grows_only_in_branches<M, T>(model: M, fresh: M, data: &TaskData<T>, grow: ControllerConfig) -> Vec<TransitionEvent>
where
    T: Task,
    M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + 'static,
    M::InnerModule: SeededModel<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>
        + TaskModel<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, T>,
{
    let branch = grow.grow_in[0].clone();
    let controller = Controller::new(grow).unwrap();
    let dir = std::env::temp_dir().join(format!("morphogen-branch-{}-{}", branch, std::process::id()));
    // Five epochs: germinated at the first end, the seeds are EVALUATING (contributing) at the last.
    let mut trainer = Trainer::new(short_run(5, &dir), controller, EventLog::in_memory()).unwrap();
    let out = trainer.run(model, AdamConfig::new().init(), data, &mut ()).unwrap();
    let events = trainer.events().events();
    let germinated: Vec<_> = events.iter().filter(|e| e.to == Stage::Germinated).collect();
    assert!(!germinated.is_empty(), "the branches grew");
    assert!(germinated.iter().all(|e| e.layer.ends_with(&branch)), "{germinated:?}");
    assert!(events.iter().any(|e| e.to == Stage::Evaluating), "a branch seed grafted and contributes");

    restores_exactly(&out.model, fresh, data, &dir);
    std::fs::remove_dir_all(&dir).ok();

    let file = dir.with_extension("safetensors");
    let report = export_pytorch(&out.model, &file).unwrap();
    std::fs::remove_file(&file).ok();
    assert!(report.residuals.iter().any(|s| s.layer.ends_with(&branch)), "{report:?}");
    assert!(report.merged.is_empty(), "nothing merges into an identity host: {report:?}");
    events.to_vec()
}

/// The transformer preset, whose loss turns NaN on one chosen training step (validation passes,
/// on the backend without autodiff, are not counted).
#[derive(burn::module::Module, Debug, morphogen_engine::SeededModel)]
struct PoisonedLm<B: Backend> {
    inner: Transformer<B>,
    #[module(skip)]
    calls: Arc<AtomicUsize>,
    #[module(skip)]
    poison_at: usize,
}

impl<B: Backend> TaskModel<B, NextCharacter> for PoisonedLm<B> {
    fn step(&self, batch: TextBatch<B>) -> StepOutput<B> {
        let training = B::ad_enabled(&batch.inputs.device());
        let mut out = self.inner.step(batch);
        if training && self.calls.fetch_add(1, Ordering::SeqCst) == self.poison_at {
            out.loss = out.loss * f32::NAN;
        }
        out
    }
}

#[test]
fn a_nan_loss_on_the_language_task_rolls_the_run_back() {
    let config = ModelConfig { layers: 1, d_model: 8, heads: 2, context: 8, num_seeds: 2, ..Default::default() };
    let data = text_data(config.context, 64, 16);
    let device = Default::default();
    let inner = config.transformer::<B>(&data.task, &device).unwrap();
    // An epoch is 2 training steps: step 2 is the second epoch's first.
    let model = PoisonedLm { inner, calls: Arc::new(AtomicUsize::new(0)), poison_at: 2 };
    let trainer_config = TrainerConfig { epochs: 3, batch_size: 32, eval_samples: 16, ..Default::default() };
    let mut trainer = Trainer::new(trainer_config, eager_controller(0.0), EventLog::in_memory()).unwrap();
    let out = trainer.run(model, AdamConfig::new().init(), &data, &mut ()).unwrap();
    assert_eq!(out.rollbacks, 1, "the NaN step rolled the run back once");
    assert_eq!(out.history.len(), 3, "the failed epoch was tried again");
    assert!(out.history.iter().all(|m| m.train_loss.is_finite() && m.val_score() < 0.0), "{:?}", out.history);
}
