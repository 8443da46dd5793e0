//! Seeded multi-head attention against Burn's own attention on the same projection weights, its
//! causal mask, seeds grown through model commands, gradients and bad input.

use crate::common::*;
use burn::module::Module;
use burn::nn::attention::{generate_autoregressive_mask, MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{
    Command, CommandKind, MorphogenError, SeedAddress, SeededModel, SeededMultiHeadAttention,
    SeededMultiHeadAttentionConfig, Stage,
};

const D_MODEL: usize = 12;

fn attention(causal: bool) -> SeededMultiHeadAttention<B> {
    SeededMultiHeadAttentionConfig::new(D_MODEL, 3).with_num_seeds(4).with_causal(causal).init(&device())
}

/// Burn's attention with `seeded`'s host projections and no dropout.
fn burn_twin(seeded: &SeededMultiHeadAttention<B>) -> MultiHeadAttention<B> {
    // Burn initialises parameters lazily, per clone: read them before cloning.
    for layer in [&seeded.query, &seeded.key, &seeded.value, &seeded.output] {
        let _ = (layer.host.weight.val(), layer.host.bias.as_ref().map(|b| b.val()));
    }
    let mut twin = MultiHeadAttentionConfig::new(D_MODEL, 3).with_dropout(0.0).init(&device());
    twin.query = seeded.query.host.clone();
    twin.key = seeded.key.host.clone();
    twin.value = seeded.value.host.clone();
    twin.output = seeded.output.host.clone();
    twin
}

#[test]
fn all_dormant_equals_burns_attention_on_the_hosts() {
    for causal in [false, true] {
        let seeded = attention(causal);
        let x = random([2, 5, D_MODEL]);
        let input = MhaInput::self_attn(x.clone());
        let input = if causal { input.mask_attn(generate_autoregressive_mask(2, 5, &device())) } else { input };
        let expected = burn_twin(&seeded).forward(input).context;
        let got = seeded.forward(x);
        assert_eq!(got.dims(), [2, 5, D_MODEL]);
        assert_close(&values(got), &values(expected), 1e-5, &format!("causal = {causal}"));
    }
}

/// Later positions never reach earlier outputs when causal; they do when not (so the test can
/// see a leak).
#[test]
fn causal_outputs_ignore_later_positions() {
    let (seq, t) = (6, 2);
    let x = random([2, seq, D_MODEL]);
    let later = random([2, seq - t - 1, D_MODEL]);
    let changed = Tensor::cat(vec![x.clone().narrow(1, 0, t + 1), later], 1);
    let prefix = |y: Tensor<B, 3>| values(y.narrow(1, 0, t + 1));
    let causal = attention(true);
    assert_close(&prefix(causal.forward(x.clone())), &prefix(causal.forward(changed.clone())), 1e-6, "causal prefix");
    let full = attention(false);
    assert_ne!(prefix(full.forward(x)), prefix(full.forward(changed)), "without the mask the prefix sees the change");
}

#[derive(Module, Debug, morphogen_engine::SeededModel)]
struct Block<B: Backend> {
    norm: LayerNorm<B>,
    attn: SeededMultiHeadAttention<B>,
}

fn command(layer: &str, seed: usize, kind: CommandKind) -> Command {
    Command { target: SeedAddress { layer: layer.into(), seed }, kind, reason: "test".into() }
}

#[test]
fn seeds_grow_on_every_projection_through_model_commands() {
    let mut block = Block { norm: LayerNormConfig::new(D_MODEL).init(&device()), attn: attention(true) };
    let paths = ["attn.query", "attn.key", "attn.value", "attn.output"];
    assert_eq!(block.seeded_layer_names(), paths);
    let x = random([2, 4, D_MODEL]);
    let before = values(block.attn.forward(block.norm.forward(x.clone())));
    for (seed, path) in paths.iter().enumerate() {
        let germinate = CommandKind::Germinate { blueprint: "residual_mlp".into(), strategy: "fixed_ramp".into() };
        block.apply_command(&command(path, seed, germinate)).unwrap();
        for to in [Stage::Training, Stage::Grafting, Stage::Stabilization] {
            block.apply_command(&command(path, seed, CommandKind::Advance { to })).unwrap();
        }
    }
    let block = block.map(&mut RandomBanks);
    for (seed, state) in block.layer_states().iter().enumerate() {
        assert_eq!(state.seeds[seed].stage, Stage::Stabilization, "{}", state.layer);
    }
    let after = values(block.attn.forward(block.norm.forward(x)));
    assert_ne!(before, after, "stabilizing blueprints with random banks change the output");
    let mut block = block;
    let err = block.apply_command(&command("attn.key", 9, CommandKind::Advance { to: Stage::Training })).unwrap_err();
    assert!(err.to_string().contains("'attn.key'"), "{err}");
}

#[test]
fn gradients_reach_all_four_hosts() {
    let seeded = attention(true);
    let grads = seeded.forward(random([2, 4, D_MODEL])).powi_scalar(2).sum().backward();
    for (name, layer) in
        [("query", &seeded.query), ("key", &seeded.key), ("value", &seeded.value), ("output", &seeded.output)]
    {
        let grad = layer.host.weight.grad(&grads).unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(values(grad).iter().any(|g| *g != 0.0), "{name}: zero gradient");
    }
}

#[test]
fn bad_configs_and_inputs_are_typed_errors() {
    let err = SeededMultiHeadAttentionConfig::new(10, 3).try_init::<B>(&device()).unwrap_err();
    assert!(matches!(err, MorphogenError::InvalidConfig { .. }) && err.to_string().contains("n_heads = 3"), "{err}");
    let err = SeededMultiHeadAttentionConfig::new(8, 0).try_init::<B>(&device()).unwrap_err();
    assert!(matches!(err, MorphogenError::InvalidConfig { .. }), "{err}");
    let err = SeededMultiHeadAttentionConfig::new(4, 2).with_num_seeds(5).try_init::<B>(&device()).unwrap_err();
    assert!(err.to_string().contains("num_seeds = 5"), "{err}");

    let seeded = attention(false);
    let err = seeded.try_forward(random([2, 4, D_MODEL + 1])).unwrap_err();
    assert!(matches!(err, MorphogenError::ShapeMismatch { ref got, .. } if got == &[2, 4, D_MODEL + 1]), "{err}");
    let err = seeded.try_forward(random([4, D_MODEL])).unwrap_err();
    assert!(matches!(err, MorphogenError::ShapeMismatch { ref got, .. } if got == &[4, D_MODEL]), "{err}");
    assert_eq!(seeded.try_forward(random([1, 3, D_MODEL])).unwrap().dims(), [1, 3, D_MODEL]);
}
