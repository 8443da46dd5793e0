//! Next-character language modelling: windows of token ids, each position predicting the next,
//! scored by negative perplexity.

use crate::Task;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use morphogen_contracts::Score;

/// Predict each next character of windows `context` long over a vocabulary of `vocab` symbols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextCharacter {
    /// Distinct symbols (token ids are below it).
    pub vocab: usize,
    /// Positions a model sees at once.
    pub context: usize,
}

/// One window of `context + 1` token ids: positions `0..context` are the input, `1..=context`
/// the targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextItem {
    /// The token ids.
    pub tokens: Vec<u32>,
}

/// A batch of windows.
#[derive(Clone, Debug)]
pub struct TextBatch<B: Backend> {
    /// `[batch, context]` token ids.
    pub inputs: Tensor<B, 2, Int>,
    /// `[batch, context]`: the token after each input position.
    pub targets: Tensor<B, 2, Int>,
}

impl Task for NextCharacter {
    type Item = TextItem;
    type Batch<B: Backend> = TextBatch<B>;

    fn score(&self) -> Score {
        Score::NegativePerplexity
    }

    fn batch<B: Backend>(&self, items: Vec<TextItem>, device: &B::Device) -> TextBatch<B> {
        let (n, t) = (items.len(), self.context);
        let (mut inputs, mut targets) = (Vec::with_capacity(n * t), Vec::with_capacity(n * t));
        for item in &items {
            inputs.extend(item.tokens[..t].iter().map(|&id| id as i64));
            targets.extend(item.tokens[1..=t].iter().map(|&id| id as i64));
        }
        TextBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [n, t]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n, t]), device),
        }
    }

    fn select<B: Backend>(&self, batch: &TextBatch<B>, indices: Tensor<B, 1, Int>) -> TextBatch<B> {
        TextBatch {
            inputs: batch.inputs.clone().select(0, indices.clone()),
            targets: batch.targets.clone().select(0, indices),
        }
    }
}
