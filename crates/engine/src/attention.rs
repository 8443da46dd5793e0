//! [`SeededMultiHeadAttention`]: multi-head self-attention whose four projections are
//! [`SeededLinear`] layers, so seeds can grow in a transformer's attention as in its MLP.

use crate::linear::{SeededLinear, SeededLinearConfig};
use crate::precision::Precision;
use crate::seeds::SeedOptions;
use crate::SeededModel;
use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};
use morphogen_contracts::MorphogenError;

/// The score a masked (future) position gets before the softmax, as in Burn's
/// `MultiHeadAttention`: its weight underflows to exactly zero in f32.
const MASKED_SCORE: f32 = -1.0e4;

/// Configuration of a [`SeededMultiHeadAttention`]; reads like Burn's
/// `MultiHeadAttentionConfig`, plus seeds and the causal flag.
#[derive(Config, Debug)]
pub struct SeededMultiHeadAttentionConfig {
    /// Model width: input and output features of the attention and of each projection.
    pub d_model: usize,
    /// Number of heads, each `d_model / n_heads` wide; must divide `d_model`.
    pub n_heads: usize,
    /// Seeds of each projection (chunks of its `d_model` output features);
    /// `1 <= num_seeds <= d_model`.
    #[config(default = 1)]
    pub num_seeds: usize,
    /// Whether the projections have biases.
    #[config(default = true)]
    pub bias: bool,
    /// Whether position `t` attends only to positions `0..=t` (a decoder's self-attention).
    /// A property of the architecture, so it is set once here and every `forward` obeys it.
    #[config(default = false)]
    pub causal: bool,
    /// Initializer of the projections' weights (Burn's attention default).
    #[config(default = "Initializer::KaimingUniform{gain: 1.0 / 3.0f64.sqrt(), fan_out_only: false}")]
    pub initializer: Initializer,
    /// Lifecycle rules, blueprints and grafting strategies of the four projections.
    #[config(default = "SeedOptions::new()")]
    pub options: SeedOptions,
    /// The float type the projections' and the attention's products compute in.
    #[config(default = "Precision::F32")]
    pub precision: Precision,
}

/// Multi-head self-attention on `[batch, seq, d_model]` whose query, key, value and output
/// projections are seeded Linear layers (paths `<field>.query`, `<field>.key`, `<field>.value`,
/// `<field>.output` in a model). With every seed dormant it computes exactly what Burn's
/// `MultiHeadAttention` computes with the same projection weights (without dropout).
#[derive(Module, Debug, SeededModel)]
pub struct SeededMultiHeadAttention<B: Backend> {
    /// Query projection, `[d_model] -> [d_model]`.
    pub query: SeededLinear<B>,
    /// Key projection, `[d_model] -> [d_model]`.
    pub key: SeededLinear<B>,
    /// Value projection, `[d_model] -> [d_model]`.
    pub value: SeededLinear<B>,
    /// Output projection of the concatenated heads, `[d_model] -> [d_model]`.
    pub output: SeededLinear<B>,
    /// Number of heads.
    pub n_heads: usize,
    /// Whether position `t` attends only to positions `0..=t`.
    pub causal: bool,
    /// The float type the products compute in (not saved: it is configuration).
    #[module(skip)]
    pub precision: Precision,
}

impl SeededMultiHeadAttentionConfig {
    /// Builds the attention, or says what is wrong with the config.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<SeededMultiHeadAttention<B>, MorphogenError> {
        let (d_model, n_heads) = (self.d_model, self.n_heads);
        if d_model == 0 || n_heads == 0 || d_model % n_heads != 0 {
            return Err(MorphogenError::InvalidConfig {
                component: "seeded multi-head attention".into(),
                problem: format!("d_model = {d_model} is not split evenly into n_heads = {n_heads} heads"),
                hint: "use d_model >= 1 and n_heads >= 1 dividing it (e.g. d_model = 64, n_heads = 4)".into(),
            });
        }
        let projection = |name: &str| {
            SeededLinearConfig::new(d_model, d_model)
                .with_num_seeds(self.num_seeds)
                .with_bias(self.bias)
                .with_initializer(self.initializer.clone())
                .with_name(name.into())
                .with_options(self.options.clone())
                .with_precision(self.precision)
                .try_init(device)
        };
        Ok(SeededMultiHeadAttention {
            query: projection("query")?,
            key: projection("key")?,
            value: projection("value")?,
            output: projection("output")?,
            n_heads,
            causal: self.causal,
            precision: self.precision,
        })
    }

    /// Builds the attention; panics with [`try_init`](Self::try_init)'s error (Burn's convention).
    pub fn init<B: Backend>(&self, device: &B::Device) -> SeededMultiHeadAttention<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl<B: Backend> SeededMultiHeadAttention<B> {
    /// `[batch, seq, d_model] -> [batch, seq, d_model]`: each head attends over the sequence
    /// (only to earlier positions and itself when causal) with scores `q·k / sqrt(d_head)`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, d_model] = x.dims();
        let d_head = d_model / self.n_heads;
        let heads = |t: Tensor<B, 3>| t.reshape([batch, seq, self.n_heads, d_head]).swap_dims(1, 2);
        let query = heads(self.query.forward(x.clone()));
        let key = heads(self.key.forward(x.clone()));
        let value = heads(self.value.forward(x));
        let scores = self.precision.matmul(query, key.transpose()).div_scalar((d_head as f32).sqrt());
        let scores = if self.causal {
            scores.mask_fill(future_positions::<B>(seq, &value.device()), MASKED_SCORE)
        } else {
            scores
        };
        let context = self.precision.matmul(softmax(scores, 3), value).swap_dims(1, 2).reshape([batch, seq, d_model]);
        self.output.forward(context)
    }

    /// [`forward`](Self::forward) with the input checked first: rank 3, `[batch, seq, d_model]`
    /// with `batch` and `seq` at least 1.
    pub fn try_forward<const D: usize>(&self, x: Tensor<B, D>) -> Result<Tensor<B, D>, MorphogenError> {
        let d_model = self.query.host.weight.dims()[0];
        let dims = x.dims();
        if D != 3 || dims[2] != d_model || dims[0] == 0 || dims[1] == 0 {
            return Err(MorphogenError::ShapeMismatch {
                layer: self.name(),
                expected: format!("[batch, seq, {d_model}] (rank 3, batch and seq at least 1)"),
                got: dims.to_vec(),
            });
        }
        Ok(self.forward(x.reshape([dims[0], dims[1], d_model])).reshape(dims))
    }

    /// The attention's path in its model, read from its query projection's name
    /// (`blocks.0.attn` for `blocks.0.attn.query`), or `multi_head_attention` before a model has
    /// named its layers.
    fn name(&self) -> String {
        match self.query.name().rsplit_once('.') {
            Some((path, _)) => path.to_string(),
            None => "multi_head_attention".to_string(),
        }
    }
}

/// `[1, 1, seq, seq]`, true where a key position lies after the query position.
fn future_positions<B: Backend>(seq: usize, device: &B::Device) -> Tensor<B, 4, Bool> {
    Tensor::<B, 2, Bool>::tril_mask([seq, seq], 0, device).unsqueeze()
}
