//! `#[derive(SeededModel)]`: which fields it visits, in which order, under which paths, and
//! what model-level code does with those paths.

use crate::common::*;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{
    Command, CommandKind, MorphogenError, SeedAddress, SeedControl, SeededConv2d, SeededConv2dConfig, SeededLinear,
    SeededLinearConfig, SeededModel, SeededMultiHeadAttention, SeededMultiHeadAttentionConfig, Stage,
};
use std::collections::BTreeMap;

/// Seeded and plain fields interleaved, the plain ones first and last.
#[derive(Module, Debug, SeededModel)]
struct Mlp<B: Backend> {
    norm: LayerNorm<B>,
    fc1: SeededLinear<B>,
    fc2: SeededLinear<B>,
    skip: Linear<B>,
}

#[derive(Module, Debug, SeededModel)]
struct Block<B: Backend> {
    attn: SeededMultiHeadAttention<B>,
    norm: LayerNorm<B>,
    mlp: Mlp<B>,
}

/// The transformer, plus an optional layer, an array and a plain `Vec` of Linears.
#[derive(Module, Debug, SeededModel)]
struct Transformer<B: Backend> {
    embed: Embedding<B>,
    blocks: Vec<Block<B>>,
    extra: Option<SeededLinear<B>>,
    heads: [SeededLinear<B>; 2],
    plain: Vec<Linear<B>>,
    head: Linear<B>,
}

const D: usize = 8;

fn seeded(d_in: usize, d_out: usize) -> SeededLinear<B> {
    SeededLinearConfig::new(d_in, d_out).with_num_seeds(2).init(&device())
}

fn mlp() -> Mlp<B> {
    Mlp {
        norm: LayerNormConfig::new(D).init(&device()),
        fc1: seeded(D, 16),
        fc2: seeded(16, D),
        skip: LinearConfig::new(D, D).init(&device()),
    }
}

fn block() -> Block<B> {
    Block {
        attn: SeededMultiHeadAttentionConfig::new(D, 2).with_num_seeds(2).init(&device()),
        norm: LayerNormConfig::new(D).init(&device()),
        mlp: mlp(),
    }
}

fn transformer(extra: bool) -> Transformer<B> {
    Transformer {
        embed: EmbeddingConfig::new(10, D).init(&device()),
        blocks: vec![block(), block()],
        extra: extra.then(|| seeded(D, D)),
        heads: [seeded(D, 3), seeded(D, 3)],
        plain: vec![LinearConfig::new(D, D).init(&device())],
        head: LinearConfig::new(D, 10).init(&device()),
    }
}

fn block_paths(i: usize) -> Vec<String> {
    ["attn.query", "attn.key", "attn.value", "attn.output", "mlp.fc1", "mlp.fc2"]
        .iter()
        .map(|p| format!("blocks.{i}.{p}"))
        .collect()
}

fn command(layer: &str, seed: usize, kind: CommandKind) -> Command {
    Command { target: SeedAddress { layer: layer.into(), seed }, kind, reason: "test".into() }
}

fn germinate() -> CommandKind {
    CommandKind::Germinate { blueprint: "residual_mlp".into(), strategy: "fixed_ramp".into() }
}

#[test]
fn nested_structs_vecs_options_and_arrays_are_visited_in_declaration_order_by_path() {
    let with_extra = transformer(true);
    let mut expected = [block_paths(0), block_paths(1)].concat();
    expected.extend(["extra", "heads.0", "heads.1"].map(String::from));
    assert_eq!(with_extra.seeded_layer_names(), expected);

    let without = transformer(false);
    expected.retain(|p| p != "extra");
    assert_eq!(without.seeded_layer_names(), expected, "None holds no layer");
}

#[test]
fn visiting_mutably_gives_the_same_paths_and_layers() {
    let mut model = transformer(true);
    let mut mutable = Vec::new();
    model.visit_seeded_mut(&mut |path, layer| mutable.push((path.to_string(), layer.seed_core().num_seeds())));
    let mut shared = Vec::new();
    model.visit_seeded(&mut |path, layer| shared.push((path.to_string(), layer.seed_core().num_seeds())));
    assert_eq!(mutable, shared);
    assert_eq!(mutable.len(), 15);
}

/// Records the Burn path of every float parameter by id.
#[derive(Default)]
struct RecordPaths {
    stack: Vec<String>,
    paths: BTreeMap<ParamId, String>,
}

impl<Bk: Backend> ModuleVisitor<Bk> for RecordPaths {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }

    fn visit_float<const N: usize>(&mut self, param: &Param<Tensor<Bk, N>>) {
        self.paths.insert(param.id, self.stack.join("."));
    }
}

#[test]
fn layer_paths_agree_with_burn_record_paths() {
    let model = transformer(true);
    let mut record = RecordPaths::default();
    model.visit(&mut record);
    model.visit_seeded(&mut |path, layer| {
        let stage = &layer.seed_core().params().state.stage;
        assert_eq!(record.paths[&stage.id], format!("{path}.core.state.stage"));
    });
}

#[test]
fn commands_reach_nested_layers_by_path_and_errors_name_the_path() {
    let mut model = transformer(false);
    model.apply_command(&command("blocks.1.mlp.fc1", 1, germinate())).unwrap();
    model.apply_command(&command("blocks.1.mlp.fc1", 1, CommandKind::Advance { to: Stage::Training })).unwrap();
    model.apply_command(&command("blocks.0.attn.value", 0, germinate())).unwrap();
    assert_eq!(model.blocks[1].mlp.fc1.seed(1).unwrap().stage, Stage::Training);
    assert_eq!(model.blocks[0].attn.value.seed(0).unwrap().stage, Stage::Germinated);
    assert_eq!(model.blocks[0].mlp.fc1.seed(1).unwrap().stage, Stage::Dormant, "only the addressed layer");

    let err = model.apply_command(&command("blocks.1.mlp.fc2", 7, germinate())).unwrap_err();
    assert_eq!(err, MorphogenError::UnknownSeed { layer: "blocks.1.mlp.fc2".into(), seed: 7, num_seeds: 2 });
    assert!(err.to_string().contains("'blocks.1.mlp.fc2'"), "{err}");
    let err = model.apply_command(&command("blocks.1.mlp.fc1", 1, CommandKind::Advance { to: Stage::Fossilized }));
    assert!(matches!(err, Err(MorphogenError::IllegalTransition { ref layer, .. }) if layer == "blocks.1.mlp.fc1"));
    let err = model.apply_command(&command("blocks.2.mlp.fc1", 0, germinate())).unwrap_err();
    assert!(matches!(err, MorphogenError::UnknownLayer { ref known, .. } if known.len() == 14), "{err}");
}

/// A model-level call names every layer by its path, so the layer's own methods and reports
/// use it afterwards; a layer used alone keeps its config's name.
#[test]
fn model_level_code_names_layers_by_their_paths() {
    let mut model = transformer(false);
    assert_eq!(model.blocks[1].attn.key.name(), "key", "before: the config's name");
    model.name_layers_by_path();
    assert_eq!(model.blocks[1].attn.key.name(), "blocks.1.attn.key");
    let err = model.blocks[0].mlp.fc1.try_forward(random([2, 3])).unwrap_err();
    assert!(err.to_string().contains("'blocks.0.mlp.fc1'"), "{err}");
    let err = model.blocks[0].attn.try_forward(random([2, 3, D + 1])).unwrap_err();
    assert!(matches!(err, MorphogenError::ShapeMismatch { ref layer, .. } if layer == "blocks.0.attn"), "{err}");
    let names: Vec<String> = model.layer_states().into_iter().map(|s| s.layer).collect();
    assert_eq!(names, model.seeded_layer_names());

    let mut alone = SeededConv2dConfig::new([2, 4], [3, 3]).init::<B>(&device());
    alone.name_layers_by_path();
    assert_eq!(alone.seeded_layer_names(), [""], "a layer alone is a model of one layer at the empty path");
    assert_eq!(alone.name(), "seeded_conv2d", "and keeps its config's name");
}

/// A hand-written visitor that reports one layer twice under one path.
struct Twice<B: Backend> {
    fc: SeededLinear<B>,
    conv: SeededConv2d<B>,
}

impl<Bk: Backend> SeededModel<Bk> for Twice<Bk> {
    fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn SeedControl<Bk>)) {
        f("conv", &self.conv);
        f("fc", &self.fc);
        f("fc", &self.fc);
    }

    fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn SeedControl<Bk>)) {
        f("conv", &mut self.conv);
        f("fc", &mut self.fc);
    }
}

#[test]
fn colliding_paths_are_a_typed_error() {
    let twice = Twice { fc: seeded(2, 2), conv: SeededConv2dConfig::new([2, 4], [3, 3]).init(&device()) };
    assert_eq!(twice.check_layer_paths(), Err(MorphogenError::DuplicateLayerPath { path: "fc".into() }));
    assert_eq!(transformer(true).check_layer_paths(), Ok(()));
}

/// No seeded field at all: the derive compiles and lists nothing.
#[derive(Module, Debug, SeededModel)]
struct Plain<B: Backend> {
    fc: Linear<B>,
    norm: LayerNorm<B>,
}

/// A unit-like model with a backend but no field.
#[derive(SeededModel)]
struct Empty<B: Backend> {
    _backend: std::marker::PhantomData<B>,
}

#[test]
fn a_model_without_seeded_layers_lists_none() {
    let mut plain =
        Plain { fc: LinearConfig::new(2, 2).init::<B>(&device()), norm: LayerNormConfig::new(2).init(&device()) };
    assert!(plain.seeded_layer_names().is_empty());
    assert!(plain.layer_states().is_empty());
    plain.end_epoch();
    let err = plain.apply_command(&command("fc", 0, germinate())).unwrap_err();
    assert!(matches!(err, MorphogenError::UnknownLayer { ref known, .. } if known.is_empty()));
    assert!(Empty::<B> { _backend: std::marker::PhantomData }.seeded_layer_names().is_empty());
}

/// `Box`es and tuple structs, without `Module`: the derive needs only the backend parameter.
#[derive(SeededModel)]
struct Boxed<B: Backend>(Box<SeededLinear<B>>, u32, Box<Mlp<B>>);

#[test]
fn boxes_are_transparent_and_tuple_fields_are_indices() {
    let boxed = Boxed(Box::new(seeded(2, 2)), 7, Box::new(mlp()));
    assert_eq!(boxed.seeded_layer_names(), ["0", "2.fc1", "2.fc2"]);
}
