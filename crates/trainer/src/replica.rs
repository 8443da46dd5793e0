//! One member of a data-parallel group, for a loop of one's own (in the spirit of PyTorch's
//! DistributedDataParallel), built on Burn's collective operations (`burn::collective`).
//!
//! Every replica holds the same model and optimizer, takes its shard of each global batch, and
//! averages gradients with the others before its optimizer step, so all replicas take the same
//! step. Growth decisions are made once and applied by every replica at the same step; a
//! lockstep check compares every replica's seed state with rank 0's and names the first layer
//! that differs.

use crate::json_difference::first_difference;
use crate::node_group::NodeWatch;
use crate::{Evaluation, NodeGroup, Shard, TrainError};
use burn::collective::{self, CollectiveConfig, CollectiveError, PeerId, ReduceOperation};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use morphogen_contracts::{Decisions, MorphogenError, SeedEvaluation};
use morphogen_engine::SeededModel;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first failure among this process's replicas: the rank that failed and why. Burn's
/// collective server, and so the group, is one per process; cleared when the last replica leaves.
static FAILURE: Mutex<Option<(usize, String)>> = Mutex::new(None);

/// Replicas of this process that joined and have not left yet.
static JOINED: AtomicUsize = AtomicUsize::new(0);

/// How often a replica waiting on a collective operation checks whether another one failed.
const FAILURE_POLL: Duration = Duration::from_millis(100);

/// Where a replica sits in its group, and how long it waits for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// This replica's index, `0..replicas`; rank 0 is the reference the others are checked against.
    pub rank: usize,
    /// Replicas in the group, over every process.
    pub replicas: usize,
    /// The processes the group spans, when more than this one: each holds `replicas / nodes`
    /// consecutive ranks, node 0 the first.
    pub nodes: Option<NodeGroup>,
    /// The longest a collective operation waits for the other replicas before it fails with
    /// [`TrainError::ReplicaTimeout`]: a peer that died or hangs stops the run instead of
    /// blocking it forever. Generous by default (20 minutes), because a GPU replica's first
    /// steps include compiling its kernels.
    pub timeout: Duration,
}

impl ReplicaConfig {
    /// Replica `rank` of `replicas`, with the default timeout.
    pub fn new(rank: usize, replicas: usize) -> Self {
        Self { rank, replicas, nodes: None, timeout: Duration::from_secs(20 * 60) }
    }

    /// The same, the group spanning the processes of `nodes`.
    pub fn with_nodes(self, nodes: NodeGroup) -> Self {
        Self { nodes: Some(nodes), ..self }
    }

    /// Replicas in this process.
    pub fn local_replicas(&self) -> usize {
        self.replicas / self.nodes.map_or(1, |group| group.nodes.max(1))
    }

    /// The same with another timeout.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Checks the rank lies inside the group (and inside its node's share of it) and the
    /// timeout is not zero.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let problem = if self.replicas == 0 {
            Some("replicas must be at least 1".to_string())
        } else if self.rank >= self.replicas {
            Some(format!("rank {} is outside a group of {} replicas", self.rank, self.replicas))
        } else if self.timeout.is_zero() {
            Some("the timeout must be longer than zero".to_string())
        } else {
            self.nodes.and_then(|group| self.node_problem(group))
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(MorphogenError::InvalidConfig {
                component: "replica".into(),
                problem,
                hint: "give each replica a distinct rank from 0 to replicas - 1, and a timeout".into(),
            }),
        }
    }

    /// What is wrong with this replica's place among the nodes of `group`, if anything.
    fn node_problem(&self, group: NodeGroup) -> Option<String> {
        if let Err(MorphogenError::InvalidConfig { problem, .. }) = group.validate() {
            return Some(problem);
        }
        if !self.replicas.is_multiple_of(group.nodes) {
            return Some(format!("{} replicas do not split evenly over {} nodes", self.replicas, group.nodes));
        }
        let node = self.rank / self.local_replicas();
        (node != group.node_rank)
            .then(|| format!("rank {} belongs to node {node}, not to node {}", self.rank, group.node_rank))
    }

    /// The examples of a global batch of `size` this replica takes: consecutive shards, the first
    /// `size % replicas` replicas taking one example more.
    pub fn shard(&self, size: usize) -> Range<usize> {
        self.batch_shard().range(size)
    }

    /// This replica's part of every batch, for [`Batching::sharded`](crate::Batching::sharded).
    pub fn batch_shard(&self) -> Shard {
        Shard { index: self.rank, count: self.replicas }
    }

    /// What this replica's mean loss is multiplied by before backward, so that averaging the
    /// replicas' gradients gives the gradient of the mean loss over the whole global batch of
    /// `size`, uneven shards included: `replicas * shard / size`.
    pub fn loss_weight(&self, size: usize) -> f32 {
        (self.replicas * self.shard(size).len()) as f32 / size.max(1) as f32
    }
}

/// A joined member of a data-parallel group on backend `B`. Leaving the group (drop) unregisters it.
pub struct Replica<B: AutodiffBackend> {
    config: ReplicaConfig,
    peer: PeerId,
    device: B::Device,
    /// Set once an operation timed out: the group is then out of step for good.
    timed_out: AtomicBool,
    /// The other nodes, when the group spans several processes.
    watch: Option<NodeWatch>,
}

impl<B: AutodiffBackend> std::fmt::Debug for Replica<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("config", &self.config).finish()
    }
}

impl<B: AutodiffBackend> Replica<B> {
    /// Joins the group of `config.replicas` replicas, computing on `device`: all in this
    /// process, or spread over the processes of `config.nodes` (each waits up to
    /// its `coordinator_wait` for the coordinator, then up to the timeout for every node to
    /// register). Every replica must join before the first collective operation returns.
    pub fn join(config: ReplicaConfig, device: &B::Device) -> Result<Self, TrainError> {
        config.validate()?;
        let peer = PeerId::from(config.rank);
        let group = match config.nodes {
            None => CollectiveConfig::default().with_num_devices(config.replicas),
            Some(nodes) => {
                nodes.wait_for_coordinator()?;
                nodes.collective(config.local_replicas())
            }
        };
        JOINED.fetch_add(1, Ordering::SeqCst);
        let mut replica = Self { config, peer, device: device.clone(), timed_out: AtomicBool::new(false), watch: None };
        let device = device.clone();
        replica.bounded("join the group", move || collective::register::<B::InnerBackend>(peer, device, group))?;
        if let Some(nodes) = config.nodes {
            replica.watch = Some(NodeWatch::new(replica.node_addresses(nodes)?, nodes.node_rank));
        }
        Ok(replica)
    }

    /// Every node's tensor address, in node order, told by the node's first replica. A
    /// collective operation.
    fn node_addresses(&self, nodes: NodeGroup) -> Result<Vec<SocketAddr>, TrainError> {
        let first_rank = |node| node * self.config.local_replicas();
        (0..nodes.nodes)
            .map(|node| self.told_by(first_rank(node), "exchange node addresses", || nodes.address))
            .collect()
    }

    /// Where this replica sits in its group.
    pub fn config(&self) -> ReplicaConfig {
        self.config
    }

    /// `model` on this replica's device with rank 0's parameters (values and ids), as a run must
    /// start: Burn initializes parameters lazily, so even clones of one model made before its
    /// first forward pass hold different random weights. The copy has its own telemetry windows
    /// (clones share them). Call it on every replica before creating the optimizer: it is a
    /// collective operation, two broadcasts (every id, then every value as one flat tensor).
    pub fn synchronize<M: Module<B>>(&self, model: M) -> Result<M, TrainError> {
        let operation = "receive rank 0's parameters";
        let model = model.fork(&self.device);
        let mut root = RootParams::<B>::default();
        if self.is_root() {
            model.visit(&mut root);
        }
        // The count leads, so the ids' tensor is never empty and every replica knows it.
        let sent = [vec![root.ids.len() as u64], root.ids].concat();
        let sent = self.is_root().then(|| self.floats(to_pieces(&sent)));
        let mut ids = from_pieces(&values(self.broadcast(sent, operation)?)).into_iter();
        if ids.next() == Some(0) {
            return Ok(model);
        }
        let flat = self.broadcast(self.is_root().then(|| Tensor::cat(root.values, 0)), operation)?;
        let mut adopt = Adopt::<B> { len: flat.dims()[0], flat, offset: 0, ids, fits: true };
        let model = model.map(&mut adopt);
        if adopt.fits && adopt.ids.len() == 0 && adopt.offset == adopt.len {
            Ok(model)
        } else {
            Err(TrainError::Collective {
                rank: self.config.rank,
                operation: operation.into(),
                problem: "rank 0's model has other parameters than this replica's".into(),
            })
        }
    }

    /// Growth decisions made once, on rank 0 (only there is `decide` called: the controller runs
    /// on one replica), and sent to every replica, to apply at the same step. A collective
    /// operation.
    pub fn decide_once(&self, decide: impl FnOnce() -> Decisions) -> Result<Decisions, TrainError> {
        self.agree("receive rank 0's decisions", decide)
    }

    /// What `decide` returns on rank 0 (only there is it called), on every replica: one
    /// broadcast of its JSON. A collective operation.
    pub(crate) fn agree<V: Serialize + DeserializeOwned>(
        &self,
        operation: &str,
        decide: impl FnOnce() -> V,
    ) -> Result<V, TrainError> {
        self.told_by(0, operation, decide)
    }

    /// Checks that this replica was started with the settings rank 0 was started with
    /// (`settings`: any JSON, the same shape on every replica). A collective operation: every
    /// replica returns the same answer, naming the lowest rank that differs, the first setting
    /// that differs (a dotted path) and both values.
    pub fn check_same_settings(&self, settings: &serde_json::Value) -> Result<(), TrainError> {
        let operation = "compare settings with rank 0's";
        let rank_0 = self.agree(operation, || settings.clone())?;
        let difference = first_difference(&rank_0, settings);
        let Some((differing, _)) = self.lowest_reporting(f32::from(u8::from(difference.is_some())), operation)? else {
            return Ok(());
        };
        let (setting, rank_0, here) = self.told_by(differing, operation, || difference.expect("this rank differs"))?;
        Err(TrainError::ReplicaSettingsDiffer { rank: differing, setting, here, rank_0 })
    }

    /// What `decide` returns on rank `from` (only there is it called), on every replica.
    fn told_by<V: Serialize + DeserializeOwned>(
        &self,
        from: usize,
        operation: &str,
        decide: impl FnOnce() -> V,
    ) -> Result<V, TrainError> {
        let json = (self.config.rank == from).then(|| serde_json::to_vec(&decide()).expect("JSON values serialize"));
        let sent = json.map(|bytes| self.floats(bytes.into_iter().map(f32::from).collect()));
        let bytes: Vec<u8> = values(self.broadcast(sent, operation)?).iter().map(|&b| b as u8).collect();
        serde_json::from_slice(&bytes).map_err(|e| TrainError::Collective {
            rank: self.config.rank,
            operation: operation.into(),
            problem: e.to_string(),
        })
    }

    /// `values` added up over every replica. A collective operation.
    pub(crate) fn add_up(&self, values_here: Vec<f32>, operation: &str) -> Result<Vec<f32>, TrainError> {
        Ok(values(self.sum(self.floats(values_here), operation)?))
    }

    /// Runs `work` on rank 0 before any other replica runs its own (they wait for it): for work
    /// that draws from a random generator the replicas of one process share, so that rank 0
    /// draws what one process alone would. A collective operation.
    pub(crate) fn rank_0_first<R>(&self, operation: &str, work: impl FnOnce() -> R) -> Result<R, TrainError> {
        if self.is_root() {
            let done = work();
            self.any(false, operation)?;
            Ok(done)
        } else {
            self.any(false, operation)?;
            Ok(work())
        }
    }

    /// The lowest rank whose `report` is above 0, and its report, on every replica (each
    /// replica's report travels in its own slot). A collective operation.
    fn lowest_reporting(&self, report: f32, operation: &str) -> Result<Option<(usize, f32)>, TrainError> {
        let mut reports = vec![0f32; self.config.replicas];
        reports[self.config.rank] = report;
        Ok(self.add_up(reports, operation)?.into_iter().enumerate().find(|&(_, r)| r > 0.0))
    }

    /// Whether `flag` is set on any replica. A collective operation.
    pub(crate) fn any(&self, flag: bool, operation: &str) -> Result<bool, TrainError> {
        Ok(self.add_up(vec![f32::from(u8::from(flag))], operation)?[0] > 0.0)
    }

    /// Applies `decisions` (from [`Self::decide_once`]) to this replica's `model`, then gives the
    /// parameters growth created (new bank pages, random and with ids of their own on each
    /// replica) rank 0's values and ids, as [`Self::synchronize`] does for the whole model.
    /// Existing parameters keep their ids, so the optimizer's state carries on. A collective
    /// operation.
    pub fn apply_decisions<M: SeededModel<B> + Module<B>>(
        &self,
        mut model: M,
        decisions: &Decisions,
    ) -> Result<M, TrainError> {
        for command in &decisions.commands {
            model.apply_command(command)?;
        }
        self.synchronize(model)
    }

    /// Every replica's gradients of `model`'s parameters averaged, so that each takes the same
    /// optimizer step. All of them travel as one flat tensor, in the model's parameter order (the
    /// same on every replica): one collective call a step, not one per parameter. Weigh each
    /// replica's loss by [`ReplicaConfig::loss_weight`] first when shards can be uneven.
    pub fn average_gradients<M: Module<B>>(
        &self,
        model: &M,
        grads: GradientsParams,
    ) -> Result<GradientsParams, TrainError> {
        Ok(self.average_with(model, grads, Vec::new())?.0)
    }

    /// [`Self::average_gradients`], with `extras` (per-step signals such as the weighted loss)
    /// averaged in the same collective call; they come back in order.
    pub(crate) fn average_with<M: Module<B>>(
        &self,
        model: &M,
        mut grads: GradientsParams,
        extras: Vec<Tensor<B::InnerBackend, 1>>,
    ) -> Result<Averaged<B>, TrainError> {
        let mut bucket = GradientBucket::<B> { grads: &mut grads, flat: Vec::new(), unflatten: Vec::new() };
        model.visit(&mut bucket);
        let GradientBucket { mut flat, unflatten, .. } = bucket;
        let extra_lens: Vec<usize> = extras.iter().map(|extra| extra.dims()[0]).collect();
        flat.extend(extras);
        if flat.is_empty() {
            return Ok((grads, Vec::new()));
        }
        let total = self.sum(Tensor::cat(flat, 0), "average gradients")?;
        let (lens, put_backs): (Vec<usize>, Vec<_>) = unflatten.into_iter().unzip();
        let mut means = total.div_scalar(self.config.replicas as f32).split_with_sizes([lens, extra_lens].concat(), 0);
        let extras = means.split_off(put_backs.len());
        for (mean, put_back) in means.into_iter().zip(put_backs) {
            put_back(&mut grads, mean);
        }
        Ok((grads, extras))
    }

    /// Each replica's validation measurements on its own shard (`samples` examples here: the
    /// model's mean loss and accuracy, and every EVALUATING seed's) combined into what one
    /// process measuring every shard reports. Means are weighted by samples. A contribution's
    /// standard error becomes that of the weighted mean, the shards being independent. Every
    /// replica gets the same answer. A collective operation; the seeds come in the same order on
    /// every replica (they do in lockstep), which is checked.
    pub fn combine_evaluations(
        &self,
        evaluation: Evaluation,
        seeds: Vec<SeedEvaluation>,
        samples: usize,
    ) -> Result<(Evaluation, Vec<SeedEvaluation>), TrainError> {
        let operation = "combine evaluations";
        let n = samples as f32;
        let mut flat = vec![n, n * evaluation.loss, n * evaluation.accuracy];
        for seed in &seeds {
            let (with, without) = (seed.loss_with, seed.loss_without);
            flat.extend([n * with, n * without, n * seed.accuracy_with, n * seed.accuracy_without]);
            flat.push((n * seed.contribution_stderr).powi(2));
            flat.extend(to_pieces(&[hash_of(&seed.seed)]));
        }
        let total = values(self.sum(self.floats(flat.clone()), operation)?);
        // The model's three sums, then per seed five sums and four pieces of its address's hash.
        let (model_sums, seed_sums, seed_entries) = (3, 5, 9);
        let seed_part = |values: &[f32], i: usize| {
            values[model_sums + seed_entries * i..model_sums + seed_entries * (i + 1)].to_vec()
        };
        let replicas = self.config.replicas as f32;
        let same_seed = |i: usize| {
            let (mine, summed) = (seed_part(&flat, i), seed_part(&total, i));
            mine[seed_sums..].iter().map(|piece| piece * replicas).eq(summed[seed_sums..].iter().copied())
        };
        if !(0..seeds.len()).all(same_seed) {
            return Err(TrainError::Collective {
                rank: self.config.rank,
                operation: operation.into(),
                problem: "the replicas measured different seeds".into(),
            });
        }
        let all = total[0].max(1.0);
        let combined = Evaluation { loss: total[1] / all, accuracy: total[2] / all };
        let seeds = seeds
            .into_iter()
            .enumerate()
            .map(|(i, seed)| {
                let t = seed_part(&total, i);
                SeedEvaluation {
                    loss_with: t[0] / all,
                    loss_without: t[1] / all,
                    accuracy_with: t[2] / all,
                    accuracy_without: t[3] / all,
                    contribution_stderr: t[4].sqrt() / all,
                    ..seed
                }
            })
            .collect();
        Ok((combined, seeds))
    }

    /// Adds up every seeded layer's telemetry window over the replicas, so that the next health
    /// report on each replica covers the whole global batches, as one process's would (the
    /// controller then sees all the data). Every layer's sums travel in one call, in f32. A
    /// collective operation: call it on every replica before reading health.
    pub fn sum_telemetry<M: SeededModel<B>>(&self, model: &mut M) -> Result<(), TrainError> {
        let mut sums = Vec::new();
        model.visit_seeded(&mut |_, layer| sums.push(layer.seed_core().telemetry_sums().inner()));
        if sums.is_empty() {
            return Ok(());
        }
        let (lens, dtypes): (Vec<usize>, Vec<DType>) = sums.iter().map(|s| (s.dims()[0], s.dtype())).unzip();
        let flat = Tensor::cat(sums.into_iter().map(|s| s.cast(DType::F32)).collect(), 0);
        let mut totals = self.sum(flat, "add up telemetry")?.split_with_sizes(lens, 0).into_iter().zip(dtypes);
        let mut outcome = Ok(());
        model.visit_seeded_mut(&mut |_, layer| {
            if let (Ok(()), Some((total, dtype))) = (&outcome, totals.next()) {
                let total = Tensor::from_inner(total.cast(dtype));
                outcome = layer.seed_core_mut().set_telemetry_sums(total).map_err(TrainError::from);
            }
        });
        outcome
    }

    /// Checks that every seeded layer of `model` is in the same state (every seed's stage,
    /// blueprint, strategy, alpha, epochs in stage, embargo and failures; every bank's size) as on
    /// rank 0. A collective operation: call it on every replica at the same point; every replica
    /// then returns the same answer, naming the lowest rank that differs and its first layer.
    pub fn check_lockstep<M: SeededModel<B>>(&self, model: &M) -> Result<(), TrainError> {
        let operation = "compare seed states";
        let (names, hashes) = layer_hashes(model);
        let sent = self.is_root().then(|| self.floats(to_pieces(&hashes)));
        let reference = from_pieces(&values(self.broadcast(sent, operation)?));
        let first_difference = (0..names.len().max(reference.len())).find(|&i| reference.get(i) != hashes.get(i));
        // Each replica reports its first differing layer (+1; 0 for none).
        match self.lowest_reporting(first_difference.map_or(0.0, |i| (i + 1) as f32), operation)? {
            None => Ok(()),
            Some((differing, report)) => {
                let layer = report as usize - 1;
                Err(TrainError::ReplicasDiverged {
                    rank: differing,
                    layer: names.get(layer).cloned().unwrap_or_else(|| format!("seeded layer {layer}")),
                })
            }
        }
    }

    /// Whether this replica is rank 0, the one that sends what is broadcast.
    fn is_root(&self) -> bool {
        self.config.rank == 0
    }

    /// The `sent` of the one replica that sends (`None` on every other) on every replica. Burn
    /// 0.21 has no broadcast across processes, so it is two sums, exact because every other
    /// replica adds zeros: the length (in 16-bit pieces), then the values.
    fn broadcast(
        &self,
        sent: Option<Tensor<B::InnerBackend, 1>>,
        operation: &str,
    ) -> Result<Tensor<B::InnerBackend, 1>, TrainError> {
        let len = sent.as_ref().map_or(0, |tensor| tensor.dims()[0] as u64);
        let len = from_pieces(&values(self.sum(self.floats(to_pieces(&[len])), operation)?))[0] as usize;
        if len == 0 {
            return Ok(self.floats(Vec::new()));
        }
        let mine = sent.unwrap_or_else(|| Tensor::zeros([len], &self.device));
        if mine.dims()[0] != len {
            return Err(TrainError::Collective {
                rank: self.config.rank,
                operation: operation.into(),
                problem: "more than one replica sent a broadcast".into(),
            });
        }
        self.sum(mine, operation)
    }

    /// `tensor` added up over every replica.
    fn sum<const D: usize>(
        &self,
        tensor: Tensor<B::InnerBackend, D>,
        operation: &str,
    ) -> Result<Tensor<B::InnerBackend, D>, TrainError> {
        // Through host memory both ways: Burn's collective computes on threads of its own, and a
        // CubeCL tensor handed between threads of one device was read before it was written
        // (replicas on one CUDA or wgpu device trained apart from one process; the test
        // `replicas_on_one_cubecl_device_train_as_one_process`).
        let (peer, device) = (self.peer, self.device.clone());
        let mine = Tensor::<B::InnerBackend, D>::from_data(tensor.into_data(), &device).into_primitive().tensor();
        let total = self.bounded(operation, move || {
            let total = collective::all_reduce::<B::InnerBackend>(peer, mine, ReduceOperation::Sum)?;
            Ok(Tensor::<B::InnerBackend, D>::from_primitive(TensorPrimitive::Float(total)).into_data())
        })?;
        Ok(Tensor::from_data(total, &self.device))
    }

    /// Runs `call`, a blocking collective operation, on a thread of its own and waits for it at
    /// most the configured timeout. A call that times out stays blocked on its thread (Burn's
    /// collective operations cannot be cancelled), so every later operation fails at once. The
    /// wait is a `collective` span named by `operation` (in `--profile` traces: the cost of
    /// lockstep, waiting on peers included).
    fn bounded<T: Send + 'static>(
        &self,
        operation: &str,
        call: impl FnOnce() -> Result<T, CollectiveError> + Send + 'static,
    ) -> Result<T, TrainError> {
        let _span = tracing::debug_span!("collective", operation, rank = self.config.rank).entered();
        let timeout = || TrainError::ReplicaTimeout {
            rank: self.config.rank,
            operation: operation.into(),
            waited: self.config.timeout,
        };
        if let Some(failed) = self.group_failure(operation) {
            return Err(failed);
        }
        if self.timed_out.load(Ordering::SeqCst) {
            return Err(timeout());
        }
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || sender.send(call()));
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now()).min(FAILURE_POLL);
            let error = match receiver.recv_timeout(wait) {
                // Burn's server fails at once when a peer's connection breaks: a lost node is
                // the reason to report.
                Ok(result) => {
                    return result.map_err(|e| {
                        self.lost_node(operation, true)
                            .unwrap_or_else(|| collective_error(self.config.rank, operation, e))
                    })
                }
                Err(RecvTimeoutError::Disconnected) => TrainError::Collective {
                    rank: self.config.rank,
                    operation: operation.into(),
                    problem: "Burn's collective operation panicked".into(),
                },
                Err(RecvTimeoutError::Timeout) => {
                    match self.group_failure(operation).or_else(|| self.lost_node(operation, false)) {
                        Some(failed) => failed,
                        None if Instant::now() < deadline => continue,
                        None => timeout(),
                    }
                }
            };
            self.timed_out.store(true, Ordering::SeqCst);
            return Err(error);
        }
    }

    /// Records that this replica failed for `problem` (the first failure in the group wins):
    /// every replica waiting on a collective operation then stops with an error naming it,
    /// instead of waiting out its timeout.
    pub(crate) fn abandon(&self, problem: String) {
        let mut failure = FAILURE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failure.get_or_insert((self.config.rank, problem));
    }

    /// The error naming the replica that failed, if one did.
    fn group_failure(&self, operation: &str) -> Option<TrainError> {
        let failure = FAILURE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failure.as_ref().map(|(failed, problem)| TrainError::ReplicaFailed {
            rank: self.config.rank,
            failed: *failed,
            operation: operation.into(),
            problem: problem.clone(),
        })
    }

    /// The error naming another node that stopped answering, if one did (checked at once if
    /// `now`, else at most once a second).
    fn lost_node(&self, operation: &str, now: bool) -> Option<TrainError> {
        let (node, address) = self.watch.as_ref()?.silent_node(now)?;
        Some(TrainError::NodeLost { rank: self.config.rank, node, address, operation: operation.into() })
    }

    /// `values` as a tensor on this replica's device.
    fn floats(&self, values: Vec<f32>) -> Tensor<B::InnerBackend, 1> {
        let len = values.len();
        Tensor::from_data(TensorData::new(values, [len]), &self.device)
    }
}

/// Averaged gradients, and the extras averaged with them.
type Averaged<B> = (GradientsParams, Vec<Tensor<<B as AutodiffBackend>::InnerBackend, 1>>);

/// Puts a flat slice of a bucket back into a gradient of its parameter's shape.
type PutBack<Bk> = Box<dyn FnOnce(&mut GradientsParams, Tensor<Bk, 1>)>;

/// Takes every gradient `grads` holds out of it, flattened, in the model's parameter order,
/// with how long each is and how to put it back.
struct GradientBucket<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    flat: Vec<Tensor<B::InnerBackend, 1>>,
    unflatten: Vec<(usize, PutBack<B::InnerBackend>)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradientBucket<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let id = param.id;
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) {
            let shape: [usize; D] = grad.dims();
            let len = shape.iter().product();
            self.flat.push(grad.reshape([len]));
            self.unflatten.push((len, Box::new(move |grads, flat| grads.register(id, flat.reshape(shape)))));
        }
    }
}

/// Rank 0's parameter ids and values (flattened), in the model's parameter order.
struct RootParams<B: AutodiffBackend> {
    ids: Vec<u64>,
    values: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> Default for RootParams<B> {
    fn default() -> Self {
        Self { ids: Vec::new(), values: Vec::new() }
    }
}

impl<B: AutodiffBackend> ModuleVisitor<B> for RootParams<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val().inner();
        let len = value.shape().num_elements();
        self.ids.push(param.id.val());
        self.values.push(value.reshape([len]));
    }
}

/// Gives every float parameter, in the model's parameter order, the next of rank 0's ids and
/// the next slice of rank 0's flat values; `fits` turns false when rank 0's run out first.
struct Adopt<B: AutodiffBackend> {
    flat: Tensor<B::InnerBackend, 1>,
    len: usize,
    offset: usize,
    ids: std::vec::IntoIter<u64>,
    fits: bool,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Adopt<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, value, mapper) = param.consume();
        let shape: [usize; D] = value.dims();
        let len: usize = shape.iter().product();
        let Some(root_id) = self.ids.next().filter(|_| self.fits && self.offset + len <= self.len) else {
            self.fits = false;
            return Param::from_mapped_value(id, value, mapper);
        };
        let root_value = match len {
            0 => value.clone(),
            _ => Tensor::from_inner(self.flat.clone().narrow(0, self.offset, len).reshape(shape)),
        };
        self.offset += len;
        let root_value = if value.is_require_grad() { root_value.require_grad() } else { root_value };
        Param::from_mapped_value(ParamId::from(root_id), root_value, mapper)
    }
}

impl<B: AutodiffBackend> Drop for Replica<B> {
    fn drop(&mut self) {
        // Leaving waits for the group too: bounded like every operation, and skipped once the
        // group is out of step. Nothing to report on the way out.
        if std::thread::panicking() {
            self.abandon("its thread panicked".into());
        }
        let peer = self.peer;
        let _ = self.bounded("leave the group", move || collective::finish_collective::<B::InnerBackend>(peer));
        if JOINED.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The whole group has left: the next one starts without this one's failure.
            *FAILURE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        }
    }
}

/// A collective operation's failure, naming the replica and what it was doing.
fn collective_error(rank: usize, operation: &str, error: CollectiveError) -> TrainError {
    TrainError::Collective { rank, operation: operation.into(), problem: format!("{error:?}") }
}

/// Every seeded layer's name and a hash of its seed state, in visiting order, after the number of
/// seeded layers (so that models of different shapes differ first there, and a model without
/// seeded layers still takes part).
fn layer_hashes<B: AutodiffBackend, M: SeededModel<B>>(model: &M) -> (Vec<String>, Vec<u64>) {
    let (mut names, mut hashes) = (vec!["the number of seeded layers".to_string()], vec![0]);
    model.visit_seeded(&mut |name, layer| {
        let core = layer.seed_core();
        let state =
            serde_json::to_string(&(core.seed_infos(), core.blueprint_params())).expect("seed state serializes");
        names.push(name.to_string());
        hashes.push(hash_of(&state));
    });
    hashes[0] = names.len() as u64 - 1;
    (names, hashes)
}

/// A 64-bit hash of `value`, the same in every replica of one build (fixed keys).
fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// 64-bit values (hashes, parameter ids) as exact floats: four 16-bit pieces each.
fn to_pieces(values: &[u64]) -> Vec<f32> {
    values.iter().flat_map(|v| (0..4).map(move |i| ((v >> (16 * i)) & 0xffff) as f32)).collect()
}

/// The values [`to_pieces`] wrote.
fn from_pieces(pieces: &[f32]) -> Vec<u64> {
    pieces
        .chunks(4)
        .map(|p| p.iter().enumerate().fold(0u64, |v, (i, &piece)| v | ((piece as u64) << (16 * i))))
        .collect()
}

/// A tensor's elements, read back to the host.
fn values<Bk: Backend>(tensor: Tensor<Bk, 1>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}
