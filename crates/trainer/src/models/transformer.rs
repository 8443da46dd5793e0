//! The transformer preset: decoder-only, pre-norm and causal, for next-character language
//! modelling. Each block's attention projections and MLP layers are seeded.

use super::config::{named, plus_branch};
use super::ModelConfig;
use crate::{NextCharacter, ParamGrowth, StepOutput, TaskModel, TextBatch};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use morphogen_engine::{
    HostKind, MorphogenError, Precision, SeededBranch, SeededLinear, SeededLinearConfig, SeededModel,
    SeededMultiHeadAttention, SeededMultiHeadAttentionConfig,
};

/// The transformer preset.
#[derive(Module, Debug, SeededModel)]
pub struct Transformer<B: Backend> {
    /// Token embedding, `vocab -> d_model`.
    pub embed: Embedding<B>,
    /// Learned position embedding, `context -> d_model`.
    pub position: Embedding<B>,
    /// The blocks, in order (paths `blocks.<i>.attn.query`, `blocks.<i>.mlp.fc1`, ...).
    pub blocks: Vec<TransformerBlock<B>>,
    /// Final layer norm.
    pub norm: LayerNorm<B>,
    /// `d_model -> vocab`.
    pub head: Linear<B>,
    /// The float type the products compute in (configuration, not saved).
    #[module(skip)]
    pub precision: Precision,
    /// Each MLP's hidden units per stream feature (configuration, not saved): a widened model
    /// keeps it.
    #[module(skip)]
    pub mlp_ratio: f32,
}

/// `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Module, Debug, SeededModel)]
pub struct TransformerBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: LayerNorm<B>,
    /// Causal self-attention, projections seeded.
    pub attn: SeededMultiHeadAttention<B>,
    /// Norm before the MLP.
    pub norm2: LayerNorm<B>,
    /// The block's MLP, both layers seeded.
    pub mlp: FeedForward<B>,
}

/// `fc2(gelu(fc1(x))) + branch(x)`, `d_model -> mlp_ratio d_model -> d_model`.
#[derive(Module, Debug, SeededModel)]
pub struct FeedForward<B: Backend> {
    /// Seeded `d_model -> mlp_ratio d_model`.
    pub fc1: SeededLinear<B>,
    /// Seeded `mlp_ratio d_model -> d_model`.
    pub fc2: SeededLinear<B>,
    /// Seeds beside the two layers, reading their input (`[model] mlp_branch`).
    pub branch: Option<SeededBranch<B>>,
}

impl ModelConfig {
    /// Builds the transformer preset for `task`'s vocabulary and context.
    pub fn transformer<B: Backend>(
        &self,
        task: &NextCharacter,
        device: &B::Device,
    ) -> Result<Transformer<B>, MorphogenError> {
        self.precision.check::<B>(device)?;
        let d = self.d_model;
        let blocks = (0..self.layers).map(|_| self.transformer_block(device)).collect::<Result<_, _>>()?;
        Ok(named(Transformer {
            embed: EmbeddingConfig::new(task.vocab, d).init(device),
            position: EmbeddingConfig::new(task.context, d).init(device),
            blocks,
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, task.vocab).init(device),
            precision: self.precision,
            mlp_ratio: self.mlp_ratio,
        }))
    }

    /// One block `d_model` wide.
    fn transformer_block<B: Backend>(&self, device: &B::Device) -> Result<TransformerBlock<B>, MorphogenError> {
        let d = self.d_model;
        let inner = Self::inner_width(self.mlp_ratio, d);
        let branch = self.branch(self.mlp_branch, HostKind::Linear, d, device)?;
        let seeded = |io: [usize; 2]| {
            SeededLinearConfig::new(io[0], io[1])
                .with_num_seeds(self.seeds_for(io[1]))
                .with_options(self.options()?)
                .with_precision(self.precision)
                .try_init(device)
        };
        let attn = SeededMultiHeadAttentionConfig::new(d, self.heads)
            .with_num_seeds(self.seeds_for(d))
            .with_causal(true)
            .with_options(self.options()?)
            .with_precision(self.precision)
            .try_init(device)?;
        Ok(TransformerBlock {
            norm1: LayerNormConfig::new(d).init(device),
            attn,
            norm2: LayerNormConfig::new(d).init(device),
            mlp: FeedForward { fc1: seeded([d, inner])?, fc2: seeded([inner, d])?, branch },
        })
    }
}

impl<B: Backend> TransformerBlock<B> {
    /// `[batch, seq, d_model] -> [batch, seq, d_model]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x));
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

impl<B: Backend> FeedForward<B> {
    /// `[batch, seq, d_model] -> [batch, seq, d_model]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let y = self.fc2.forward(gelu(self.fc1.forward(x.clone())));
        plus_branch(y, &self.branch, x)
    }
}

impl<B: Backend> Transformer<B> {
    /// `[batch, seq]` token ids (`seq` at most the context) `-> [batch, seq, vocab]` logits of
    /// each next token.
    pub fn logits(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq] = tokens.dims();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &tokens.device()).reshape([1, seq]);
        let mut x = self.embed.forward(tokens) + self.position.forward(positions);
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.precision.linear(&self.head, self.norm.forward(x))
    }
}

impl<B: Backend> TaskModel<B, NextCharacter> for Transformer<B> {
    fn step(&self, batch: TextBatch<B>) -> StepOutput<B> {
        let [n, seq] = batch.targets.dims();
        let logits = self.logits(batch.inputs);
        let vocab = logits.dims()[2];
        StepOutput::classification(logits.reshape([n * seq, vocab]), batch.targets.reshape([n * seq]))
    }

    fn widen(self, features: usize) -> Result<(Self, Vec<ParamGrowth>), MorphogenError> {
        self.widen_stream(features)
    }
}
