//! `morphogen controller train-policy`: teaches a neural growth policy on short growth
//! episodes of the presets asked for. First it records the heuristic controller's decisions
//! and imitates them; then it improves on them by REINFORCE with a leave-one-out baseline (see
//! `morphogen::controller::PolicyLearner`): groups of episodes share a preset and a training
//! seed and differ only in the policy's draws. The reward is the final validation score less a
//! cost per host's worth of parameters added. The policy, its manifest and the training curves
//! (`training.jsonl`) go into the `--out` folder.

mod episode;
mod log;
mod school;

use crate::backend::{self, OnBackend};
use crate::error::CliError;
use crate::train::args::ModelArg;
use clap::Args;
use episode::Arena;
use log::TrainingLog;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::controller::PolicyError;
use morphogen::trainer::{ModelKind, RunConfig};
use morphogen::MorphogenError;
use school::School;
use std::path::PathBuf;

/// Flags of `morphogen controller train-policy`.
#[derive(Args, Debug)]
pub struct TrainPolicyArgs {
    /// Presets to learn on, taken in turn.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mlp,cnn")]
    pub model: Vec<ModelArg>,
    /// Episodes in all, the heuristic's included.
    #[arg(long, default_value_t = 200)]
    pub episodes: usize,
    /// The first episodes, whose decisions the heuristic takes and the policy imitates.
    #[arg(long, default_value_t = 8)]
    pub imitation_episodes: usize,
    /// Episodes per policy-gradient step; they share a preset and a training seed.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..))]
    pub group: u64,
    /// Policy-gradient steps on each group's episodes (after the first, on PPO's clipped
    /// surrogate, so they stay near the policy that drew the episodes). One step a group barely
    /// moved a policy in 160 episodes; eight taught it (`docs/results.md`).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub policy_steps: u64,
    /// Episodes of a group trained at once, one thread each (1: one after the other, and
    /// exactly reproducible).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub parallel: u64,
    /// The policy folder to write (it must not exist yet).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Reward lost per host's worth of parameters added (0: growth is free).
    #[arg(long, default_value_t = 0.02)]
    pub param_cost: f32,
    /// Epochs per episode (a seed needs about five to pass every gate).
    #[arg(long, default_value_t = 5)]
    pub epochs: u32,
    /// Optimizer steps per epoch of an episode.
    #[arg(long, default_value_t = 20)]
    pub steps_per_epoch: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Validation examples per episode.
    #[arg(long, default_value_t = 500)]
    pub valid_subset: usize,
    /// Fashion-MNIST folder (for the image presets).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A `morphogen train` config file: episodes take its model, controller and optimizer
    /// settings (host sizes, seeds a layer, blueprints, graft ramp, trigger and budgets, learning
    /// rate); their length, batch and validation size come from the flags here.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Units per hidden layer of the policy.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// The policy's Adam learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Passes over the recorded heuristic decisions.
    #[arg(long, default_value_t = 100)]
    pub imitation_steps: usize,
    /// The policy's episodes draw from the softmax of its scores divided by this (above 1:
    /// more exploration; the policy it learns runs greedily, which does not depend on it).
    /// After imitation the scores are sharp: at 2 a group's episodes mostly repeated the
    /// heuristic and the reward gave no gradient; at 6 they differed and the policy learned
    /// (`docs/results.md`).
    #[arg(long, default_value_t = 6.0)]
    pub temperature: f32,
    /// Seed of the policy's weights, of its draws and of the episodes' training seeds.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Backend the episodes train on (the policy itself always runs on the CPU).
    #[arg(long, value_enum, default_value_t = crate::backend::BackendKind::Ndarray)]
    pub backend: crate::backend::BackendKind,
}

impl TrainPolicyArgs {
    /// The run every episode starts from: the config file's, with the flags applied.
    fn base(&self) -> Result<RunConfig, CliError> {
        let mut base = crate::train::config::read(self.config.as_deref())?;
        base.run.data = self.data.clone().or(base.run.data);
        base.run.valid_subset = self.valid_subset;
        base.trainer.epochs = self.epochs;
        base.trainer.steps_per_epoch = Some(self.steps_per_epoch);
        base.trainer.batch_size = self.batch_size;
        base.trainer.checkpoint_dir = None;
        Ok(base)
    }

    /// The episodes' base run, once the flags and the config file are checked.
    fn checked_base(&self) -> Result<RunConfig, CliError> {
        let bad = |problem: &str, hint: &str| {
            Err(CliError::Engine(MorphogenError::InvalidConfig {
                component: "controller train-policy".into(),
                problem: problem.into(),
                hint: hint.into(),
            }))
        };
        if self.out.exists() {
            return Err(PolicyError::Exists { path: self.out.clone() }.into());
        }
        if self.model.is_empty() || self.episodes == 0 {
            return bad("nothing to learn from", "pass at least one --model and --episodes 1 or more");
        }
        if self.imitation_episodes > self.episodes {
            return bad("--imitation-episodes exceeds --episodes", "the heuristic's episodes count towards --episodes");
        }
        if !(self.param_cost.is_finite() && self.param_cost >= 0.0) || self.hidden == 0 || self.epochs == 0 {
            return bad("--param-cost, --hidden or --epochs is out of range", "use a cost >= 0 and sizes >= 1");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("--temperature must be a finite number > 0", "2 explores twice as flat as the scores");
        }
        let base = self.base()?;
        base.validate()?;
        if !base.run.growth {
            return bad("the config turns growth off", "episodes need growth: drop `growth = false` from [run]");
        }
        Ok(base)
    }
}

/// `morphogen controller train-policy`.
pub fn train_policy(args: &TrainPolicyArgs) -> Result<(), CliError> {
    let base = args.checked_base()?;
    backend::run_on(args.backend, "policy-episodes", Learning { args, base })
}

struct Learning<'a> {
    args: &'a TrainPolicyArgs,
    base: RunConfig,
}

impl OnBackend for Learning<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<(), CliError> {
        let Learning { args, base } = self;
        let presets: Vec<ModelKind> = args.model.iter().map(|&m| m.into()).collect();
        let arena = Arena::<B>::new(base, &presets, device.clone())?;
        let log = TrainingLog::create(&args.out)?;
        let (policy, summary, log) = School::new(args, arena, presets, log).teach()?;
        policy.save(&args.out, summary)?;
        log.finish(&args.out)?;
        eprintln!(
            "wrote {} ({} episodes; curves in training.jsonl, `morphogen report` draws them)",
            args.out.display(),
            args.episodes
        );
        Ok(())
    }
}
