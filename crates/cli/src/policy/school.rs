//! The curriculum: the heuristic's episodes and their imitation, then groups of the policy's own
//! episodes and a policy-gradient step after each group.

use super::episode::{Arena, Episode};
use super::log::TrainingLog;
use super::TrainPolicyArgs;
use crate::error::CliError;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::controller::{DecisionRecord, NeuralPolicy, PolicyLearner, CANDIDATE_FEATURES};
use morphogen::trainer::ModelKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Training seeds of the reinforcement groups start here (the heuristic's episodes use 1, 2, ...).
const GROUP_SEEDS: u64 = 1000;

/// How far from 1 the probability ratio of a decision may move on one group's episodes
/// (PPO's usual 0.2).
const CLIP: f32 = 0.2;

/// One policy's training, episode by episode.
pub struct School<'a, B: AutodiffBackend> {
    args: &'a TrainPolicyArgs,
    arena: Arena<B>,
    presets: Vec<ModelKind>,
    log: TrainingLog,
    episode: usize,
    imitation_loss: (f32, f32),
    /// Mean squared leave-one-out advantage so far: advantages are divided by its root.
    advantage_square: f32,
    /// The last group's decisions, on which feature importance is measured.
    last_records: Vec<DecisionRecord>,
}

impl<'a, B: AutodiffBackend> School<'a, B> {
    /// A school for `presets` on `arena`, logging to `log`.
    pub fn new(args: &'a TrainPolicyArgs, arena: Arena<B>, presets: Vec<ModelKind>, log: TrainingLog) -> Self {
        let (imitation_loss, advantage_square, last_records) = ((0.0, 0.0), 0.0, Vec::new());
        Self { args, arena, presets, log, episode: 0, imitation_loss, advantage_square, last_records }
    }

    /// Trains a policy: imitation, then reinforcement. Returns it, the summary its manifest
    /// keeps, and the log to move into its folder.
    pub fn teach(mut self) -> Result<(NeuralPolicy, serde_json::Value, TrainingLog), CliError> {
        let mut learner = self.imitate()?;
        let mut group = 0;
        while self.episode < self.args.episodes {
            self.reinforce(&mut learner, group)?;
            group += 1;
        }
        let policy = learner.policy();
        let summary = self.summary(&policy);
        Ok((policy, summary, self.log))
    }

    /// Records the heuristic's episodes and fits a fresh policy to their decisions.
    fn imitate(&mut self) -> Result<PolicyLearner, CliError> {
        let mut records = Vec::new();
        for i in 0..self.args.imitation_episodes {
            let preset = self.presets[i % self.presets.len()];
            let seed = self.args.seed + i as u64;
            let controller = self.arena.controller()?.recording();
            let episode = self.arena.run(preset, seed, controller)?;
            self.report("imitation", &episode, None)?;
            records.extend(episode.trace);
        }
        let untrained = NeuralPolicy::untrained(self.args.hidden, self.args.seed);
        let mut learner = PolicyLearner::new(untrained, self.args.lr);
        if !records.is_empty() {
            let first = learner.imitate(&records);
            let last = (1..self.args.imitation_steps).fold(first, |_, _| learner.imitate(&records));
            self.imitation_loss = (first, last);
            eprintln!("imitation: {} decisions, loss {first:.4} -> {last:.4}", records.len());
        }
        Ok(learner)
    }

    /// One group of the policy's episodes, all on one preset and training seed, and a
    /// policy-gradient step on them.
    fn reinforce(&mut self, learner: &mut PolicyLearner, group: usize) -> Result<(), CliError> {
        let size = (self.args.group as usize).min(self.args.episodes - self.episode);
        let preset = self.presets[group % self.presets.len()];
        let seed = self.args.seed + GROUP_SEEDS + group as u64;
        let policy = Arc::new(learner.policy());
        let keys: Vec<u64> = (0..size as u64).map(|i| (self.args.seed << 32) ^ (group as u64 * 1009 + i)).collect();
        let episodes = self.run_group(preset, seed, &policy, &keys)?;
        let rewards: Vec<f32> = episodes.iter().map(|e| e.reward(self.args.param_cost)).collect();
        let advantages = self.advantages(&rewards);
        let batch: Vec<_> = episodes
            .iter()
            .zip(&advantages)
            .flat_map(|(e, &a)| e.trace.iter().map(move |r| (r, a)))
            .map(|(record, advantage)| (record, advantage, policy.log_probability(record)))
            .collect();
        let loss = learner.reinforce(batch.iter().copied(), CLIP);
        for _ in 1..self.args.policy_steps {
            learner.reinforce(batch.iter().copied(), CLIP);
        }
        for episode in &episodes {
            self.report("reinforce", episode, Some(loss))?;
        }
        self.last_records = episodes.into_iter().flat_map(|e| e.trace).collect();
        Ok(())
    }

    /// The group's episodes, `--parallel` at a time.
    fn run_group(
        &self,
        preset: ModelKind,
        seed: u64,
        policy: &Arc<NeuralPolicy>,
        keys: &[u64],
    ) -> Result<Vec<Episode>, CliError> {
        let one = |key: u64| -> Result<Episode, CliError> {
            let controller = self.arena.controller()?.with_policy(policy.clone());
            self.arena.run(preset, seed, controller.exploring(key, self.args.temperature).recording())
        };
        let mut episodes = Vec::new();
        for chunk in keys.chunks(self.args.parallel as usize) {
            let results: Vec<Result<Episode, CliError>> = if chunk.len() == 1 {
                vec![one(chunk[0])]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk.iter().map(|&key| scope.spawn(move || one(key))).collect();
                    handles.into_iter().map(|h| h.join().expect("an episode thread panicked")).collect()
                })
            };
            episodes.extend(results.into_iter().collect::<Result<Vec<_>, _>>()?);
        }
        Ok(episodes)
    }

    /// Each reward less the mean of the others of its group, divided by the root mean square of
    /// every advantage so far (so the step size does not depend on the score's scale).
    fn advantages(&mut self, rewards: &[f32]) -> Vec<f32> {
        let n = rewards.len() as f32;
        let total: f32 = rewards.iter().sum();
        if rewards.len() < 2 {
            return vec![0.0; rewards.len()];
        }
        let raw: Vec<f32> = rewards.iter().map(|r| r - (total - r) / (n - 1.0)).collect();
        let square = raw.iter().map(|a| a * a).sum::<f32>() / n;
        self.advantage_square =
            if self.advantage_square == 0.0 { square } else { 0.9 * self.advantage_square + 0.1 * square };
        let scale = self.advantage_square.sqrt().max(1e-6);
        raw.iter().map(|a| a / scale).collect()
    }

    /// Logs and prints one finished episode.
    fn report(&mut self, phase: &str, episode: &Episode, loss: Option<f32>) -> Result<(), CliError> {
        let reward = episode.reward(self.args.param_cost);
        self.log.episode(self.episode, phase, episode, reward, loss)?;
        eprintln!(
            "episode {}/{} ({phase}) {} seed {}: reward {reward:.4}, score {:.4}, +{} params, {} germinated, {} culled",
            self.episode + 1,
            self.args.episodes,
            episode.preset.name(),
            episode.seed,
            episode.score,
            episode.params_added,
            episode.germinated,
            episode.culled
        );
        self.episode += 1;
        Ok(())
    }

    /// What the manifest keeps about this training.
    fn summary(&self, policy: &NeuralPolicy) -> serde_json::Value {
        let a = self.args;
        serde_json::json!({
            "algorithm": "imitation of the heuristic, then REINFORCE with a leave-one-out group baseline (clipped surrogate over policy_steps steps a group)",
            "policy_steps": a.policy_steps,
            "config": a.config,
            "presets": self.presets.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "episodes": a.episodes,
            "imitation_episodes": a.imitation_episodes,
            "imitation_loss": [self.imitation_loss.0, self.imitation_loss.1],
            "group": a.group,
            "param_cost": a.param_cost,
            "epochs": a.epochs,
            "steps_per_epoch": a.steps_per_epoch,
            "batch_size": a.batch_size,
            "learning_rate": a.lr,
            "temperature": a.temperature,
            "seed": a.seed,
            "feature_importance": feature_importance(policy, &self.last_records),
        })
    }
}

/// The mean absolute effect of each candidate feature on the policy's scores (see
/// `NeuralPolicy::explain`), over up to 16 candidates of each of `records`: what the policy
/// weighs.
fn feature_importance(policy: &NeuralPolicy, records: &[DecisionRecord]) -> serde_json::Map<String, serde_json::Value> {
    let mut totals: BTreeMap<&str, f32> = CANDIDATE_FEATURES.iter().map(|&f| (f, 0.0)).collect();
    let mut count = 0;
    for record in records {
        let n = record.observation.candidates.len();
        for candidate in (0..n).step_by(n.div_ceil(16).max(1)) {
            for effect in policy.explain(&record.observation, candidate, CANDIDATE_FEATURES.len()) {
                *totals.entry(effect.feature).or_default() += effect.effect.abs();
            }
            count += 1;
        }
    }
    totals.into_iter().map(|(name, total)| (name.to_string(), serde_json::json!(total / count.max(1) as f32))).collect()
}
