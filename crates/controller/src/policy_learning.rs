//! Teaching the neural policy: first to imitate the heuristic's recorded decisions, then to do
//! better by a policy gradient over whole growth episodes.
//!
//! The gradient is REINFORCE with a leave-one-out baseline: episodes come in groups that share
//! the preset and the training seed and differ only in the policy's draws, and each episode's
//! advantage is its reward minus the mean of the others in its group. When a group's episodes
//! serve several steps, the steps after the first run on PPO's clipped surrogate, which keeps
//! them near the policy that drew the episodes. No value network: an episode is a whole training
//! run, a few seconds to minutes, and gives only a handful of decisions, too few samples to fit a
//! critic; the group baseline removes the variance the training seed adds, which is most of it.

use crate::features::Observation;
use crate::neural_policy::{NeuralPolicy, PolicyBackend};
use crate::policy_net::PolicyNet;
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};

/// One decision as it was taken: what was seen, what was ordered, whether it chose to wait.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRecord {
    /// What the controller saw.
    pub observation: Observation,
    /// Candidates germinated, in order.
    pub picks: Vec<usize>,
    /// Whether the decision stopped by choice with feasible candidates left.
    pub waited: bool,
    /// What the scores were divided by when the moves were drawn (1 for the heuristic).
    pub temperature: f32,
}

type Learning = Autodiff<PolicyBackend>;

/// A policy being trained, with its optimizer.
pub struct PolicyLearner {
    net: PolicyNet<Learning>,
    optim: OptimizerAdaptor<Adam, PolicyNet<Learning>, Learning>,
    learning_rate: f64,
}

impl PolicyLearner {
    /// Starts from `policy` with Adam at `learning_rate`.
    pub fn new(policy: NeuralPolicy, learning_rate: f64) -> Self {
        Self { net: PolicyNet::from_inner(policy.net), optim: AdamConfig::new().init(), learning_rate }
    }

    /// The policy as it stands, ready to decide (how it was trained is given when it is saved).
    pub fn policy(&self) -> NeuralPolicy {
        let net = self.net.valid();
        let manifest = crate::policy_file::manifest_for(net.hidden(), serde_json::Value::Null);
        NeuralPolicy { net, manifest }
    }

    /// One step towards taking `records`' decisions (cross-entropy of every pick and wait);
    /// returns the mean negative log-likelihood per decision before the step.
    pub fn imitate(&mut self, records: &[DecisionRecord]) -> f32 {
        let device = Default::default();
        let terms = records
            .iter()
            .filter(|r| !r.observation.candidates.is_empty())
            .map(|record| log_probability(&self.net, record, &device).neg())
            .collect();
        self.descend(terms)
    }

    /// One policy-gradient step on `(record, advantage, log p when drawn)` triples, on the
    /// clipped surrogate of PPO: with `ratio = p now / p when drawn` per decision it ascends
    /// `min(ratio * A, clamp(ratio, 1 - clip, 1 + clip) * A)`. On fresh episodes (ratio 1) the
    /// gradient is REINFORCE's; further steps on the same episodes stop pushing a decision once
    /// its ratio leaves the band. Returns the loss before the step.
    pub fn reinforce<'a>(&mut self, batch: impl IntoIterator<Item = (&'a DecisionRecord, f32, f32)>, clip: f32) -> f32 {
        let device = Default::default();
        let terms = batch
            .into_iter()
            .filter(|(r, _, _)| !r.observation.candidates.is_empty())
            .map(|(record, advantage, drawn)| {
                let ratio = log_probability(&self.net, record, &device).sub_scalar(drawn).exp();
                let clipped = ratio.clone().clamp(1.0 - clip, 1.0 + clip).mul_scalar(advantage);
                ratio.mul_scalar(advantage).min_pair(clipped).neg()
            })
            .collect();
        self.descend(terms)
    }

    /// One Adam step on the mean of `terms`; returns that mean before the step.
    fn descend(&mut self, terms: Vec<Tensor<Learning, 1>>) -> f32 {
        if terms.is_empty() {
            return 0.0;
        }
        let loss = Tensor::cat(terms, 0).mean();
        let value = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &self.net);
        self.net = self.optim.step(self.learning_rate, self.net.clone(), grads);
        value
    }
}

impl NeuralPolicy {
    /// The log-probability that this policy, drawing its moves, takes `record`'s decision.
    pub fn log_probability(&self, record: &DecisionRecord) -> f32 {
        if record.observation.candidates.is_empty() {
            return 0.0;
        }
        log_probability(&self.net, record, &Default::default()).into_scalar()
    }
}

/// `log p` of a recorded decision under `net`: the sum, over its picks (and its wait), of the
/// log-softmax over the candidates feasible at that pick and waiting. Shape `[1]`.
pub(crate) fn log_probability<B: burn::tensor::backend::Backend>(
    net: &PolicyNet<B>,
    record: &DecisionRecord,
    device: &B::Device,
) -> Tensor<B, 1> {
    let o = &record.observation;
    let scores = net.scores(&o.candidate_features, &o.run_features, device);
    let (candidates, wait) =
        (scores.candidates.div_scalar(record.temperature), scores.wait.div_scalar(record.temperature));
    let n = o.candidates.len();
    let moves = record.picks.iter().map(|&p| Some(p)).chain(record.waited.then_some(None));
    let mut total = Tensor::<B, 1>::zeros([1], device);
    for (step, chosen) in moves.enumerate() {
        let feasible = o.feasible_after(&record.picks[..step]);
        let bias: Vec<f32> = feasible.iter().map(|&f| if f { 0.0 } else { -1e9 }).collect();
        let masked = candidates.clone() + Tensor::from_data(TensorData::new(bias, [n]), device);
        let log_p = log_softmax(Tensor::cat(vec![masked, wait.clone()], 0), 0);
        let at = chosen.unwrap_or(n);
        total = total + log_p.narrow(0, at, 1);
    }
    total
}
