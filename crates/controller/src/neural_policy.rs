//! The neural policy: which growths to order at a decision point, from a trained [`PolicyNet`].
//!
//! Every candidate has a score and waiting has one. Picks are drawn one at a time from the
//! softmax over the candidates still within the limits and waiting; drawing waiting ends the
//! decision. In a run the policy takes the most probable move each time (so it germinates every
//! candidate, best first, whose score beats waiting); while it learns it samples.

use crate::features::{Observation, CANDIDATE_FEATURES};
use crate::policy_file::manifest_for;
use crate::policy_net::PolicyNet;
use burn::backend::NdArray;
use morphogen_contracts::PolicyManifest;

/// The backend the policy runs on: the CPU, whatever trains the model (a decision scores a few
/// thousand rows with a 32-unit network).
pub type PolicyBackend = NdArray;

/// A trained policy and its manifest.
pub struct NeuralPolicy {
    pub(crate) net: PolicyNet<PolicyBackend>,
    pub(crate) manifest: PolicyManifest,
}

/// How the policy picks among its scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Picking {
    /// The most probable move each time (runs).
    Greedy,
    /// Drawn from the softmax of the scores divided by `temperature` (learning episodes; above
    /// 1 explores more); the same key, epoch and scores draw the same picks. The most probable
    /// move does not depend on the temperature, so a policy trained this way runs greedily.
    Sample {
        /// Names the draws.
        key: u64,
        /// Divides every score before the softmax.
        temperature: f32,
    },
}

impl Picking {
    /// What every score is divided by.
    pub fn temperature(self) -> f32 {
        match self {
            Picking::Greedy => 1.0,
            Picking::Sample { temperature, .. } => temperature,
        }
    }
}

/// One germination the policy ordered.
#[derive(Clone, Debug, PartialEq)]
pub struct Pick {
    /// Index into [`Observation::candidates`].
    pub candidate: usize,
    /// Its score.
    pub score: f32,
    /// Its probability when it was picked (among the feasible candidates and waiting).
    pub probability: f32,
}

/// What the policy decided at one point.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// Germinations, in order.
    pub picks: Vec<Pick>,
    /// Whether it chose to wait (rather than running out of feasible candidates or picks).
    pub waited: bool,
    /// The score of waiting.
    pub wait_score: f32,
}

/// How much one feature moved a candidate's score.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureEffect {
    /// The feature's name (see [`CANDIDATE_FEATURES`]).
    pub feature: &'static str,
    /// Its value for the candidate.
    pub value: f32,
    /// The score minus the score with this feature at the mean over all candidates.
    pub effect: f32,
}

/// The manifest's identity, not the weights (a controller is printed in logs and panics).
impl std::fmt::Debug for NeuralPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeuralPolicy")
            .field("schema_version", &self.manifest.schema_version)
            .field("hidden", &self.manifest.hidden)
            .field("weights_sha256", &self.manifest.weights_sha256)
            .finish()
    }
}

impl NeuralPolicy {
    /// A fresh, untrained policy with `hidden` units per layer (weights from `seed`).
    pub fn untrained(hidden: usize, seed: u64) -> Self {
        use burn::tensor::backend::Backend;
        let device = Default::default();
        PolicyBackend::seed(&device, seed);
        let net = PolicyNet::new(hidden, &device);
        Self { net, manifest: manifest_for(hidden, serde_json::Value::Null) }
    }

    /// The manifest: schema, sizes, how it was trained.
    pub fn manifest(&self) -> &PolicyManifest {
        &self.manifest
    }

    /// Decides at `observation`. Fails, naming the value, when a score is not finite (the
    /// caller falls back to the heuristic).
    pub fn choose(&self, observation: &Observation, picking: Picking, epoch: u32) -> Result<Choice, String> {
        if observation.candidates.is_empty() {
            return Ok(Choice { picks: Vec::new(), waited: false, wait_score: 0.0 });
        }
        let scores = self.net.scores(&observation.candidate_features, &observation.run_features, &Default::default());
        let candidates: Vec<f32> = scores.candidates.into_data().to_vec().map_err(|e| format!("{e:?}"))?;
        let wait_score = scores.wait.into_scalar();
        if let Some(bad) = candidates.iter().chain([&wait_score]).find(|s| !s.is_finite()) {
            return Err(format!("the policy scored a candidate {bad}"));
        }
        Ok(pick(observation, &candidates, wait_score, picking, epoch))
    }

    /// The features that moved candidate `index`'s score most, largest effect first: each is
    /// set to its mean over the decision's candidates and the score taken again (the context is
    /// held).
    pub fn explain(&self, observation: &Observation, index: usize, top: usize) -> Vec<FeatureEffect> {
        let width = CANDIDATE_FEATURES.len();
        let n = observation.candidates.len() as f32;
        let row = observation.row(index);
        let mut rows = row.to_vec();
        for (feature, _) in CANDIDATE_FEATURES.iter().enumerate() {
            let mean = observation.candidate_features.iter().skip(feature).step_by(width).sum::<f32>() / n;
            let mut varied = row.to_vec();
            varied[feature] = mean;
            rows.extend(varied);
        }
        let context = (observation.candidate_features.as_slice(), observation.run_features.as_slice());
        let scores = self.net.rescore(&rows, context, &Default::default());
        let Some((base, varied)) = scores.split_first() else { return Vec::new() };
        let mut effects: Vec<FeatureEffect> = CANDIDATE_FEATURES
            .iter()
            .zip(row)
            .zip(varied)
            .map(|((&feature, &value), score)| FeatureEffect { feature, value, effect: base - score })
            .collect();
        effects.sort_by(|a, b| b.effect.abs().total_cmp(&a.effect.abs()));
        effects.truncate(top);
        effects
    }
}

/// Picks one move at a time among the feasible candidates and waiting.
fn pick(observation: &Observation, scores: &[f32], wait_score: f32, picking: Picking, epoch: u32) -> Choice {
    let mut picks: Vec<Pick> = Vec::new();
    loop {
        let taken: Vec<usize> = picks.iter().map(|p| p.candidate).collect();
        let feasible = observation.feasible_after(&taken);
        let options: Vec<usize> = (0..scores.len()).filter(|&i| feasible[i]).collect();
        if options.is_empty() {
            return Choice { picks, waited: false, wait_score };
        }
        let t = picking.temperature();
        let top = options.iter().map(|&i| scores[i]).fold(wait_score, f32::max);
        let weights: Vec<f32> = options.iter().map(|&i| ((scores[i] - top) / t).exp()).collect();
        let wait_weight = ((wait_score - top) / t).exp();
        let total = weights.iter().sum::<f32>() + wait_weight;
        let chosen = match picking {
            Picking::Greedy => {
                options.iter().zip(&weights).filter(|(_, &w)| w > wait_weight).max_by(|a, b| a.1.total_cmp(b.1))
            }
            Picking::Sample { key, .. } => {
                let mut target = unit(key, epoch, picks.len()) * total - wait_weight;
                let mut options = options.iter().zip(&weights);
                // Rounding can leave a sliver past the last weight: it goes to the last option.
                (target >= 0.0)
                    .then(|| {
                        options
                            .clone()
                            .find(|(_, &w)| {
                                target -= w;
                                target < 0.0
                            })
                            .or_else(|| options.next_back())
                    })
                    .flatten()
            }
        };
        let Some((&candidate, &weight)) = chosen else {
            return Choice { picks, waited: true, wait_score };
        };
        picks.push(Pick { candidate, score: scores[candidate], probability: weight / total });
    }
}

/// A number in `[0, 1)` from `key`, `epoch` and `pick` alone (SplitMix64's finalizer).
fn unit(key: u64, epoch: u32, pick: usize) -> f32 {
    let mut h = key ^ (u64::from(epoch) << 32) ^ (pick as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    (h >> 40) as f32 / (1u64 << 24) as f32
}
