//! The neural policy's network: one small MLP shared by every candidate growth (so any number
//! of layers and seeds), a context pooled over all candidates with the run's features, and two
//! heads: a score per candidate and the score of waiting.
//!
//! ```text
//! e_i    = relu(enc2(relu(enc1(x_i))))            per candidate, shared weights
//! c      = relu(context([mean_i e_i, run]))       pooled over the candidates
//! s_i    = score2(relu(score1([e_i, c])))         germinate candidate i
//! s_wait = wait(c)                                order nothing (more)
//! ```

use crate::features::{CANDIDATE_FEATURES, RUN_FEATURES};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// The network; see the module docs.
#[derive(Module, Debug)]
pub struct PolicyNet<B: Backend> {
    enc1: Linear<B>,
    enc2: Linear<B>,
    context: Linear<B>,
    score1: Linear<B>,
    score2: Linear<B>,
    wait: Linear<B>,
}

/// The scores of one decision point.
pub struct Scores<B: Backend> {
    /// One per candidate, `[candidates]`.
    pub candidates: Tensor<B, 1>,
    /// Waiting, `[1]`.
    pub wait: Tensor<B, 1>,
}

impl<B: Backend> PolicyNet<B> {
    /// A network with `hidden` units per layer, weights drawn by the backend's generator.
    pub fn new(hidden: usize, device: &B::Device) -> Self {
        let (c, r) = (CANDIDATE_FEATURES.len(), RUN_FEATURES.len());
        Self {
            enc1: LinearConfig::new(c, hidden).init(device),
            enc2: LinearConfig::new(hidden, hidden).init(device),
            context: LinearConfig::new(hidden + r, hidden).init(device),
            score1: LinearConfig::new(2 * hidden, hidden).init(device),
            score2: LinearConfig::new(hidden, 1).init(device),
            wait: LinearConfig::new(hidden, 1).init(device),
        }
    }

    /// Units per hidden layer.
    pub fn hidden(&self) -> usize {
        self.enc2.weight.dims()[1]
    }

    /// Scores `candidates` (row-major `[n, CANDIDATE_FEATURES.len()]`, `n >= 1`) in the run
    /// described by `run` (`RUN_FEATURES.len()` numbers).
    pub fn scores(&self, candidates: &[f32], run: &[f32], device: &B::Device) -> Scores<B> {
        let width = CANDIDATE_FEATURES.len();
        let n = candidates.len() / width;
        let x = Tensor::<B, 2>::from_data(TensorData::new(candidates.to_vec(), [n, width]), device);
        let run = Tensor::<B, 2>::from_data(TensorData::new(run.to_vec(), [1, run.len()]), device);
        let embedded = self.embed(x);
        let context = self.context(embedded.clone(), run);
        Scores { candidates: self.score(embedded, context.clone()), wait: self.wait.forward(context).reshape([1]) }
    }

    /// The candidate rows, embedded: `[n, hidden]`.
    fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        relu(self.enc2.forward(relu(self.enc1.forward(x))))
    }

    /// The decision point's context: `[1, hidden]`.
    fn context(&self, embedded: Tensor<B, 2>, run: Tensor<B, 2>) -> Tensor<B, 2> {
        relu(self.context.forward(Tensor::cat(vec![embedded.mean_dim(0), run], 1)))
    }

    /// One score per embedded row under `context`: `[n]`.
    fn score(&self, embedded: Tensor<B, 2>, context: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = embedded.dims()[0];
        let joined = Tensor::cat(vec![embedded, context.repeat_dim(0, n)], 1);
        self.score2.forward(relu(self.score1.forward(joined))).reshape([n])
    }

    /// Scores of `rows` (row-major candidate features) under the context of `scores_of`'s
    /// decision point: for explanations, where one candidate's features are varied one at a
    /// time and the context is held.
    pub fn rescore(&self, rows: &[f32], context_of: (&[f32], &[f32]), device: &B::Device) -> Vec<f32> {
        let width = CANDIDATE_FEATURES.len();
        let to_tensor = |values: &[f32], cols: usize| {
            Tensor::<B, 2>::from_data(TensorData::new(values.to_vec(), [values.len() / cols, cols]), device)
        };
        let (candidates, run) = context_of;
        let context = self.context(self.embed(to_tensor(candidates, width)), to_tensor(run, run.len()));
        let scores = self.score(self.embed(to_tensor(rows, width)), context);
        scores.into_data().to_vec().unwrap_or_default()
    }
}
