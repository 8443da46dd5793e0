//! `morphogen train --devices`: one data-parallel replica per device, each a trainer on a thread
//! of this process. Rank 0 is the run: it reports progress, writes the run folder, the events
//! and the checkpoints, and alone talks to a controller service; the others train their shard
//! of every batch in lockstep with it.

use super::once::{controller_for, train_once, Lifetime, RunResult};
use crate::error::CliError;
use morphogen::burn::module::AutodiffModule;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::trainer::{EventLog, Observer, ReplicaConfig, RunConfig, Task, TaskData, TaskModel, TrainError};
use morphogen::SeededModel;

/// A run trained as one replica per model given to [`Replicated::train`].
pub struct Replicated<'a, T: Task> {
    /// The run's configuration.
    pub config: &'a RunConfig,
    /// Its data, shared by every replica.
    pub data: &'a TaskData<T>,
    /// How it starts and stops (every replica resumes from rank 0's checkpoints).
    pub lifetime: Lifetime,
}

impl<T: Task> Replicated<'_, T> {
    /// Trains `lead` as rank 0 on this thread, reporting to `observer` and logging to `events`,
    /// and each of `others` as the next rank on a thread of its own; returns rank 0's result, or
    /// the first error (rank 0's before the others').
    pub fn train<B, M>(
        self,
        lead: M,
        others: Vec<M>,
        events: EventLog,
        observer: &mut dyn Observer,
    ) -> Result<RunResult<M>, CliError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B> + TaskModel<B, T> + Send + 'static,
        M::InnerModule: SeededModel<B::InnerBackend> + TaskModel<B::InnerBackend, T>,
    {
        let Replicated { config, data, lifetime } = self;
        let replicas = others.len() + 1;
        let member = |index| Lifetime { replica: Some(replica_config(config, replicas, index)), ..lifetime.clone() };
        // Decisions reach the other replicas from rank 0, never from a bus of their own.
        let mut follower = config.clone();
        follower.bus.url = None;
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..replicas)
                .zip(others)
                .map(|(rank, model)| {
                    let (follower, lifetime) = (&follower, member(rank));
                    let events = EventLog::in_memory();
                    scope.spawn(move || {
                        train_once(controller_for(follower, &mut ())?, model, follower, data, events, lifetime, &mut ())
                            .map(drop)
                    })
                })
                .collect();
            let result = controller_for(config, observer)
                .and_then(|controller| train_once(controller, lead, config, data, events, member(0), observer));
            let followers = handles.into_iter().zip(1..).map(|(handle, index)| {
                handle.join().unwrap_or_else(|_| Err(panicked(replica_config(config, replicas, index).rank)))
            });
            let followers: Result<Vec<()>, CliError> = followers.collect();
            let result = result?;
            followers?;
            Ok(result)
        })
    }
}

/// The place of this process's replica `index` (of `here`) in the whole group: with `--nodes`,
/// node `k` holds ranks `k * here ..`.
fn replica_config(config: &RunConfig, here: usize, index: usize) -> ReplicaConfig {
    match config.run.nodes {
        None => ReplicaConfig::new(index, here),
        Some(group) => ReplicaConfig::new(group.node_rank * here + index, group.nodes * here).with_nodes(group),
    }
}

/// The error of a replica whose thread panicked.
fn panicked(rank: usize) -> CliError {
    TrainError::Collective { rank, operation: "train".into(), problem: "the replica's thread panicked".into() }.into()
}
