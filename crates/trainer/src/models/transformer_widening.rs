//! Widening the transformer's residual stream from `d` to `d + k` features mid-run, keeping what
//! it computes (ADR 0025).
//!
//! - Every layer that writes the stream (the embeddings, attention's output projection, the
//!   MLP's second layer) gets `k` new output features, each the mean of its old ones. So each
//!   new stream feature holds the mean of the old features, a layer norm's mean is unchanged and
//!   its variance shrinks by `d / (d + k)`: the old gains are scaled by `sqrt(d / (d + k))` to
//!   make up for it (exactly, but for the norm's epsilon), and the new features normalize to 0.
//! - Every layer that reads a norm's output gets random weights for the new features: they read
//!   0 now, and their gradients make the new features diverge from the mean and carry their own
//!   signal.
//! - Each head widens from `d / h` to `(d + k) / h`: new query features 0 and new key features
//!   random leave the scores unchanged; the old queries are scaled by
//!   `sqrt((d + k) / d)` for the wider score scale. New value features are 0.
//! - The MLP grows its hidden units with the stream (`mlp_ratio` kept, so the widened model has
//!   the shape of the host built that wide): new units read the
//!   stream through random weights and write through zero ones.

use super::transformer::{FeedForward, Transformer, TransformerBlock};
use super::ModelConfig;
use crate::widening::{grow_param, AxisGrowth, Fill, ParamGrowth};
use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;
use morphogen_engine::SeededMultiHeadAttention;

/// The widths before and after, and the growths recorded on the way.
struct Widen {
    /// The MLP's hidden units per stream feature.
    mlp_ratio: f32,
    /// Stream features before and after.
    d: [usize; 2],
    /// Heads (unchanged) and a head's features before and after.
    heads: usize,
    head: [usize; 2],
    growths: Vec<ParamGrowth>,
}

impl<B: Backend> Transformer<B> {
    /// This transformer with `features` more stream features (a multiple of the heads), and how
    /// each parameter grew (for the optimizer's state). It computes the same logits (up to the
    /// layer norms' epsilon); refused while a seed holds a blueprint or with MLP branches.
    pub fn widen_stream(self, features: usize) -> Result<(Self, Vec<ParamGrowth>), MorphogenError> {
        let d = self.embed.weight.dims()[1];
        let heads = self.blocks.first().map_or(1, |block| block.attn.n_heads);
        let branched = self.blocks.iter().any(|block| block.mlp.branch.is_some());
        if features == 0 || !features.is_multiple_of(heads) || branched {
            let with = if branched { " with MLP branches" } else { "" };
            return Err(MorphogenError::InvalidConfig {
                component: "trainer.widen".into(),
                problem: format!(
                    "a transformer of {heads} heads widens by a positive multiple of {heads} features and without \
                     branches, not by {features}{with}"
                ),
                hint: format!("set trainer.widen.features to {heads}, {}, ... and model.mlp_branch = false", 2 * heads),
            });
        }
        let mut widen = Widen {
            mlp_ratio: self.mlp_ratio,
            d: [d, d + features],
            heads,
            head: [d / heads, (d + features) / heads],
            growths: Vec::new(),
        };
        let blocks = self.blocks.into_iter().map(|block| widen.block(block)).collect::<Result<_, _>>()?;
        let model = Transformer {
            embed: widen.stream_embedding(self.embed),
            position: widen.stream_embedding(self.position),
            blocks,
            norm: widen.norm(self.norm),
            head: widen.reader(self.head),
            precision: self.precision,
            mlp_ratio: self.mlp_ratio,
        };
        Ok((super::config::named(model), widen.growths))
    }
}

impl Widen {
    /// A block: norms, attention and MLP widened.
    fn block<B: Backend>(&mut self, block: TransformerBlock<B>) -> Result<TransformerBlock<B>, MorphogenError> {
        let attn = block.attn;
        let (zero_heads, random_heads) = (self.heads_axis(1, Fill::Constant(0.0)), self.heads_axis(1, self.random()));
        let query = self.linear(attn.query.host.clone(), self.query_scale(), [self.stream_in(), zero_heads]);
        let key = self.linear(attn.key.host.clone(), 1.0, [self.stream_in(), random_heads]);
        let value = self.linear(attn.value.host.clone(), 1.0, [self.stream_in(), zero_heads]);
        let output = self.linear(attn.output.host.clone(), 1.0, [self.heads_axis(0, self.random()), self.stream_out()]);
        let attn = SeededMultiHeadAttention {
            query: attn.query.with_host(query)?,
            key: attn.key.with_host(key)?,
            value: attn.value.with_host(value)?,
            output: attn.output.with_host(output)?,
            ..attn
        };
        let inner = block.mlp.fc1.host.weight.dims()[1];
        let wider = ModelConfig::inner_width(self.mlp_ratio, self.d[1]);
        let hidden = |axis, fill| AxisGrowth { axis, groups: 1, old: inner, new: wider, fill };
        let fc1 = self.linear(block.mlp.fc1.host.clone(), 1.0, [self.stream_in(), hidden(1, self.random())]);
        let fc2 = self.linear(block.mlp.fc2.host.clone(), 1.0, [hidden(0, Fill::Constant(0.0)), self.stream_out()]);
        Ok(TransformerBlock {
            norm1: self.norm(block.norm1),
            attn,
            norm2: self.norm(block.norm2),
            mlp: FeedForward { fc1: block.mlp.fc1.with_host(fc1)?, fc2: block.mlp.fc2.with_host(fc2)?, branch: None },
        })
    }

    /// The stream axis of a layer reading a norm's output: new inputs with random weights.
    fn stream_in(&self) -> AxisGrowth {
        AxisGrowth { axis: 0, groups: 1, old: self.d[0], new: self.d[1], fill: self.random() }
    }

    /// The stream axis of a layer writing the stream: each new output the mean of the old ones.
    fn stream_out(&self) -> AxisGrowth {
        AxisGrowth { axis: 1, groups: 1, old: self.d[0], new: self.d[1], fill: Fill::MeanAlong }
    }

    /// The heads' features along `axis`, each head widened.
    fn heads_axis(&self, axis: usize, fill: Fill) -> AxisGrowth {
        AxisGrowth { axis, groups: self.heads, old: self.head[0], new: self.head[1], fill }
    }

    /// Random weights as Burn's Linear initializes them for `d + k` inputs.
    fn random(&self) -> Fill {
        Fill::Uniform(1.0 / (self.d[1] as f64).sqrt())
    }

    /// Wider heads divide their scores by a larger `sqrt(d_head)`: scaling the old queries by the
    /// ratio keeps the scores.
    fn query_scale(&self) -> f64 {
        (self.head[1] as f64 / self.head[0] as f64).sqrt()
    }

    /// A Linear layer with its weight grown along `[inputs, outputs]` and its bias along the
    /// outputs (the bias of a stream writer gets the mean of its old entries too).
    fn linear<B: Backend>(&mut self, linear: Linear<B>, scale: f64, [inputs, outputs]: [AxisGrowth; 2]) -> Linear<B> {
        let grows_out = outputs.new > outputs.old;
        let bias_fill = if outputs.fill == Fill::MeanAlong { Fill::MeanAlong } else { Fill::Constant(0.0) };
        let bias_axis = AxisGrowth { axis: 0, fill: bias_fill, ..outputs };
        Linear {
            weight: self.grow(linear.weight, scale, vec![inputs, outputs]),
            bias: linear.bias.map(|bias| if grows_out { self.grow(bias, scale, vec![bias_axis]) } else { bias }),
        }
    }

    /// A layer reading the stream through the final norm (the head): new inputs only.
    fn reader<B: Backend>(&mut self, linear: Linear<B>) -> Linear<B> {
        Linear { weight: self.grow(linear.weight, 1.0, vec![self.stream_in()]), bias: linear.bias }
    }

    /// An embedding into the stream: each new feature the mean of the old ones.
    fn stream_embedding<B: Backend>(&mut self, embedding: Embedding<B>) -> Embedding<B> {
        Embedding { weight: self.grow(embedding.weight, 1.0, vec![self.stream_out()]) }
    }

    /// A layer norm over the wider stream: old gains scaled by `sqrt(d / (d + k))`, new gains 1,
    /// new biases 0.
    fn norm<B: Backend>(&mut self, norm: LayerNorm<B>) -> LayerNorm<B> {
        let axis = |fill| AxisGrowth { axis: 0, groups: 1, old: self.d[0], new: self.d[1], fill };
        let (gain_axis, bias_axis) = (axis(Fill::Constant(1.0)), axis(Fill::Constant(0.0)));
        let mut wider = LayerNormConfig::new(self.d[1]).init(&norm.gamma.device());
        wider.gamma = self.grow(norm.gamma, (self.d[0] as f64 / self.d[1] as f64).sqrt(), vec![gain_axis]);
        wider.beta = norm.beta.map(|beta| self.grow(beta, 1.0, vec![bias_axis]));
        wider
    }

    /// `param` grown (old values times `scale`), its id kept, and its growth recorded.
    fn grow<B: Backend, const D: usize>(
        &mut self,
        param: Param<Tensor<B, D>>,
        scale: f64,
        axes: Vec<AxisGrowth>,
    ) -> Param<Tensor<B, D>> {
        grow_param(param, scale, axes, &mut self.growths)
    }
}
