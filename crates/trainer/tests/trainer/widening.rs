//! Widening the transformer's stream and the ResNet's channels mid-run (`[trainer.widen]`): the
//! wider model computes what the narrow one did and has the enlarged host's shape; through the trainer its Adam state grows
//! with it, the new features learn, and what widening cannot do is refused by name.

use crate::common::{text_data, B};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use morphogen_controller::{Controller, ControllerConfig};
use morphogen_trainer::{
    grow_adam_state, AxisGrowth, EventLog, Fill, ImageClassification, ModelConfig, Observer, ParamGrowth,
    ReplicaConfig, TaskModel, Trainer, TrainerConfig, Transformer, Widening,
};
use proptest::prelude::*;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Adds noise to every float parameter, so that norms' gains and biases are not their defaults;
/// non-negative noise, as batch norm's running variances are mapped too and must stay positive.
struct Perturb;

impl<B2: Backend> ModuleMapper<B2> for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B2, D>>) -> Param<Tensor<B2, D>> {
        let (id, value, mapper) = param.consume();
        let noise = value.random_like(Distribution::Normal(0.0, 0.3)).abs();
        Param::from_mapped_value(id, value + noise, mapper)
    }
}

/// Reads every float tensor of a module, leaving it as it was.
struct Drawn;

impl<B2: Backend> ModuleMapper<B2> for Drawn {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B2, D>>) -> Param<Tensor<B2, D>> {
        let (id, value, mapper) = param.consume();
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Trainable parameters of a module.
fn params<M: Module<B>>(model: &M) -> usize {
    model.num_params()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn a_widened_transformer_computes_the_same_logits_and_has_the_enlarged_hosts_shape(
        layers in 1usize..=2,
        heads in 1usize..=3,
        d_head in 2usize..=5,
        extra_per_head in 1usize..=3,
        mlp_ratio in prop::sample::select(vec![1.0f32, 2.5, 4.0]),
        seed in 0u64..1000,
    ) {
        // A norm over 2 or 3 features can see them within its epsilon of each other, where the
        // widening is exact only up to that epsilon; real streams are far wider.
        prop_assume!(heads * d_head >= 4);
        let data = text_data(8, 4, 4);
        let device = Default::default();
        B::seed(&device, seed);
        let config =
            ModelConfig { layers, heads, d_model: heads * d_head, context: 8, mlp_ratio, num_seeds: 1, ..Default::default() };
        let model = config.transformer::<B>(&data.task, &device).unwrap().map(&mut Perturb);
        let tokens = Tensor::<B, 2, Int>::random([3, 8], Distribution::Uniform(0.0, data.task.vocab as f64), &device);
        let before = model.logits(tokens.clone());
        let features = heads * extra_per_head;
        let (wider, growths) = model.widen(features).unwrap();
        let after = wider.logits(tokens);
        let difference = (after - before.clone()).abs().max().into_scalar();
        let scale = before.abs().max().into_scalar();
        prop_assert!(difference <= 2e-3 * scale.max(1.0), "logits moved by {difference} (largest {scale})");
        let enlarged = ModelConfig { d_model: config.d_model + features, ..config };
        prop_assert_eq!(params(&wider), params(&enlarged.transformer::<B>(&data.task, &device).unwrap()));
        prop_assert!(growths.iter().all(|g| g.rank == 1 || g.rank == 2));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn a_widened_resnet_computes_the_same_logits_training_and_evaluating_and_has_the_enlarged_shape(
        width in 1usize..=3,
        features in 1usize..=3,
        inner_ratio in prop::sample::select(vec![1.0f32, 1.5, 2.0]),
        seed in 0u64..1000,
    ) {
        let task = ImageClassification { shape: [1, 8, 8], classes: 3 };
        let device = Default::default();
        B::seed(&device, seed);
        let config = ModelConfig { width, inner_ratio, num_seeds: 1, ..Default::default() };
        let model = config.resnet::<B>(&task, &device).unwrap().map(&mut Perturb);
        let images = Tensor::<B, 4>::random([4, 1, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let (training, evaluating) = (model.logits(images.clone()), model.valid().logits(images.clone().inner()));
        let (wider, _) = model.widen(features).unwrap();
        // Evaluation first: a training-mode pass updates the running statistics.
        let moved = (wider.valid().logits(images.clone().inner()) - evaluating).abs().max().into_scalar();
        prop_assert!(moved < 1e-4, "evaluation-mode logits moved by {moved}");
        let moved = (wider.logits(images) - training).abs().max().into_scalar();
        prop_assert!(moved < 1e-4, "training-mode logits moved by {moved}");
        let enlarged = ModelConfig { width: width + features, ..config };
        prop_assert_eq!(params(&wider), params(&enlarged.resnet::<B>(&task, &device).unwrap()));
    }
}

#[test]
fn adam_moments_grow_with_the_parameter_old_ones_kept_new_ones_zero() {
    let device = Default::default();
    B::seed(&device, 7);
    let linear = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
    let mut optim = AdamConfig::new().init();
    let x = Tensor::<B, 2>::random([5, 3], Distribution::Normal(0.0, 1.0), &device);
    let grads = GradientsParams::from_grads(linear.forward(x).sum().backward(), &linear);
    let linear = optim.step(1e-2, linear, grads);
    let id = linear.weight.id;
    let growth = ParamGrowth {
        id,
        rank: 2,
        scale: 1.0,
        axes: vec![AxisGrowth { axis: 1, groups: 1, old: 2, new: 4, fill: Fill::Constant(0.0) }],
    };
    let before = optim.to_record().get(&id).unwrap().clone().into_state::<2>().momentum;
    let grown = grow_adam_state(optim, std::slice::from_ref(&growth));
    let after = grown.to_record().get(&id).unwrap().clone().into_state::<2>().momentum;
    assert_eq!(after.moment_1.dims(), [3, 4]);
    let kept = |t: Tensor<_, 2>| t.slice([0..3, 0..2]);
    kept(after.moment_1.clone()).into_data().assert_eq(&before.moment_1.clone().into_data(), true);
    kept(after.moment_2.clone()).into_data().assert_eq(&before.moment_2.clone().into_data(), true);
    assert_eq!(after.moment_1.clone().slice([0..3, 2..4]).abs().sum().into_scalar(), 0.0);
    assert_eq!(after.moment_2.slice([0..3, 2..4]).abs().sum().into_scalar(), 0.0);
}

/// Counts the widenings a run reports.
#[derive(Default)]
struct Widenings(Vec<(u32, usize)>);

impl Observer for Widenings {
    fn widened(&mut self, epoch: u32, features: usize) {
        self.0.push((epoch, features));
    }
}

/// A trainer that never germinates and widens after epoch 1 of 3 by `features`.
fn widening_trainer(features: usize) -> Trainer {
    widening_trainer_saving(Widening::once(1, features), 3, None)
}

/// A trainer that never germinates and widens as `widen` says, for `epochs` epochs, saving
/// checkpoints in `checkpoints`.
fn widening_trainer_saving(widen: Widening, epochs: u32, checkpoints: Option<&Path>) -> Trainer {
    let config = TrainerConfig {
        epochs,
        checkpoint_dir: checkpoints.map(Path::to_path_buf),
        batch_size: 16,
        steps_per_epoch: Some(12),
        learning_rate: 3e-3,
        eval_samples: 32,
        widen: Some(widen),
        ..Default::default()
    };
    let controller = Controller::new(ControllerConfig { max_germinations_per_epoch: 0, ..Default::default() }).unwrap();
    Trainer::new(config, controller, EventLog::in_memory()).unwrap()
}

#[test]
fn a_transformer_widens_through_the_trainer_and_its_new_features_learn() {
    let data = text_data(16, 256, 64);
    let device = Default::default();
    B::seed(&device, 11);
    let config = ModelConfig { layers: 1, d_model: 8, heads: 2, context: 16, num_seeds: 1, ..Default::default() };
    let model = config.transformer::<B>(&data.task, &device).unwrap();
    let mut trainer = widening_trainer(4);
    let mut observer = Widenings::default();
    let outcome = trainer.run(model, AdamConfig::new().init(), &data, &mut observer).unwrap();
    assert_eq!(observer.0, vec![(1, 4)]);
    assert_eq!((outcome.rollbacks, outcome.history.len()), (0, 3));
    assert!(outcome.history.iter().all(|m| m.val_loss.is_finite()));
    // The new stream features began as the mean of the old ones; training moved them apart.
    let embed = outcome.model.embed.weight.val();
    assert_eq!(embed.dims()[1], 12);
    let mean = embed.clone().slice([0..embed.dims()[0], 0..8]).mean_dim(1);
    let spread = (embed.slice([0..data.task.vocab, 8..12]) - mean).abs().max().into_scalar();
    assert!(spread > 1e-3, "the new features did not move from the mean ({spread})");
}

#[test]
fn a_widening_run_resumes_from_before_and_after_its_widening() {
    let data = text_data(16, 256, 64);
    let device = Default::default();
    let config = ModelConfig { layers: 1, d_model: 8, heads: 2, context: 16, num_seeds: 1, ..Default::default() };
    let narrow = || (config.transformer::<B>(&data.task, &device).unwrap(), AdamConfig::new().init());
    // Burn draws a parameter's value when it is first read: clones of an untouched model would
    // draw different weights, so every value is read once first.
    let first = narrow().0.map(&mut Drawn);
    let (whole_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut uninterrupted = widening_trainer_saving(Widening::once(1, 4), 2, Some(whole_dir.path()));
    let whole = uninterrupted.run(first.clone(), AdamConfig::new().init(), &data, &mut ()).unwrap();
    let trainer = |epochs| widening_trainer_saving(Widening::once(1, 4), epochs, Some(dir.path()));
    // Stopped in epoch 1: the newest checkpoint holds the narrow model of epoch 0.
    let stop = Arc::new(AtomicBool::new(true));
    let stopped = trainer(3).with_stop_flag(stop).run(first, AdamConfig::new().init(), &data, &mut ());
    assert!(stopped.unwrap().stopped.is_some());
    let (mut resumed, (mut model, mut optim)) = (trainer(2), narrow());
    assert_eq!(resumed.resume(&mut model, &mut optim).unwrap(), 0);
    assert_eq!(model.embed.weight.dims()[1], 8);
    let mut observer = Widenings::default();
    let outcome = resumed.run(model, optim, &data, &mut observer).unwrap();
    assert_eq!(observer.0, vec![(1, 4)], "the resumed run widens after epoch 1");
    let widened_alike = outcome.model.embed.weight.val().equal(whole.model.embed.weight.val()).all();
    assert!(widened_alike.into_scalar(), "the resumed run ended elsewhere than the uninterrupted one");
    // The newest checkpoint (epoch 2) holds the wide model: the narrow one is widened to load it.
    let (mut resumed, (mut model, mut optim)) = (trainer(3), narrow());
    assert_eq!(resumed.resume(&mut model, &mut optim).unwrap(), 2);
    let saved = outcome.model.embed.weight.val();
    assert_eq!((model.embed.weight.val() - saved).abs().max().into_scalar(), 0.0);
    let mut observer = Widenings::default();
    let last = resumed.run(model, optim, &data, &mut observer).unwrap();
    assert!(observer.0.is_empty(), "widened twice: {:?}", observer.0);
    assert_eq!(last.history.iter().map(|m| m.epoch).collect::<Vec<_>>(), vec![3]);
    assert!(last.history[0].val_loss < outcome.history[0].val_loss, "epoch 3 lost what the first two learned");
}

#[test]
fn a_resnet_widens_twice_through_the_trainer_its_kernels_moments_growing_with_it() {
    let data = crate::common::pooled_data(128, 32, 4);
    let device = Default::default();
    B::seed(&device, 5);
    let config = ModelConfig { width: 2, num_seeds: 1, ..Default::default() };
    let model = config.resnet::<B>(&data.task, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let twice = Widening { times: 2, every_epochs: 1, ..Widening::once(1, 2) };
    let mut observer = Widenings::default();
    let mut trainer = widening_trainer_saving(twice, 3, Some(dir.path()));
    let outcome = trainer.run(model, AdamConfig::new().init(), &data, &mut observer).unwrap();
    assert_eq!((observer.0, outcome.rollbacks), (vec![(1, 2), (2, 2)], 0));
    assert_eq!(outcome.model.head.weight.dims()[0], 4 * 6, "the last stage is 4 x (2 + 2 + 2) channels");
    // The head read the last stage's new channels through zero weights; training grew them.
    let weights = outcome.model.head.weight.val().narrow(0, 8, 16).abs().max().into_scalar();
    assert!(weights > 1e-4, "the head's weights for the new channels did not move ({weights})");
    // Resuming after both widenings widens the narrow model twice to load the newest checkpoint.
    let (mut model, mut optim) = (config.resnet::<B>(&data.task, &device).unwrap(), AdamConfig::new().init());
    let mut resumed = widening_trainer_saving(twice, 4, Some(dir.path()));
    assert_eq!(resumed.resume(&mut model, &mut optim).unwrap(), 3);
    let saved = outcome.model.head.weight.val();
    assert_eq!((model.head.weight.val() - saved).abs().max().into_scalar(), 0.0);
}

#[test]
fn what_widening_cannot_do_is_refused_by_name() {
    let data = text_data(16, 64, 16);
    let device = Default::default();
    let odd = ModelConfig { layers: 1, d_model: 8, heads: 2, context: 16, ..Default::default() };
    let error = odd.transformer::<B>(&data.task, &device).unwrap().widen(3).unwrap_err().to_string();
    assert!(error.contains("multiple of 2"), "{error}");
    let branched = ModelConfig { mlp_branch: true, ..odd.clone() };
    let error = branched.transformer::<B>(&data.task, &device).unwrap().widen(2).unwrap_err().to_string();
    assert!(error.contains("branches"), "{error}");
    let replica = ReplicaConfig::new(0, 2);
    let error = widening_trainer(2).with_replica(replica).map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("replica"), "{error}");
    let mlp = crate::common::seeded_mlp(&crate::common::data(8, 8).task, 1, ModelConfig::default());
    let error = TaskModel::<B, _>::widen(mlp, 4).map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("cannot widen"), "{error}");
    let late = TrainerConfig { epochs: 3, widen: Some(Widening::once(3, 2)), ..Default::default() };
    assert!(late.validate().unwrap_err().to_string().contains("after_epoch"));
}

#[test]
fn a_widened_transformer_keeps_the_ids_of_the_parameters_it_grew() {
    // An optimizer's state and a checkpoint are keyed by parameter id: they follow the growth.
    let data = text_data(8, 4, 4);
    let device = Default::default();
    let config = ModelConfig { layers: 1, d_model: 4, heads: 2, context: 8, ..Default::default() };
    let model = config.transformer::<B>(&data.task, &device).unwrap();
    let before = ids(&model);
    let (wider, growths) = model.widen(2).unwrap();
    let after = ids(&wider);
    // Embeddings, 3 norms x 2, attention 4 x 2, MLP 2 x 2, the head's weight.
    assert_eq!(growths.len(), 2 + 6 + 8 + 4 + 1);
    assert!(growths.iter().all(|g| before.contains(&g.id) && after.contains(&g.id)));
}

/// Every float parameter's id.
fn ids(model: &Transformer<B>) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl<B2: Backend> ModuleVisitor<B2> for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B2, D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    ids.0
}

/// `values` shaped `dims` on backend `B2`, grown as `growth` says, read back.
#[cfg(feature = "wgpu")]
fn grown_on<B2: Backend>(growth: &ParamGrowth, values: &[f32], dims: [usize; 4]) -> Vec<f32> {
    let tensor = Tensor::<B2, 1>::from_floats(values, &Default::default()).reshape(dims);
    growth.apply(tensor).into_data().to_vec::<f32>().unwrap()
}

#[cfg(feature = "wgpu")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A parameter grows on CubeCL as on the CPU: conv kernels of every size (1x1 ones too, where a
    /// reshape after `swap_dims` read the wrong entries on CubeCL and broke every GPU widening of
    /// the ResNet's projections), and axes of one entry as matrices and vectors have, in blocks.
    #[test]
    fn a_parameter_grows_on_cubecl_as_on_the_cpu(
        dims in prop::array::uniform4(1usize..=6),
        axis in 0usize..4,
        groups in 1usize..=2,
        extra in 1usize..=3,
        mean in any::<bool>(),
    ) {
        let mut dims = dims;
        dims[axis] *= groups;
        let old = dims[axis] / groups;
        let fill = if mean { Fill::MeanAlong } else { Fill::Constant(-1.0) };
        let growth = ParamGrowth {
            id: ParamId::new(),
            rank: 4,
            scale: 0.5,
            axes: vec![AxisGrowth { axis, groups, old, new: old + extra, fill }],
        };
        let values: Vec<f32> = (0..dims.iter().product::<usize>()).map(|i| i as f32).collect();
        let on_cpu = grown_on::<burn::backend::NdArray>(&growth, &values, dims);
        let on_cubecl = grown_on::<burn::backend::Wgpu>(&growth, &values, dims);
        prop_assert_eq!(on_cpu, on_cubecl);
    }
}
