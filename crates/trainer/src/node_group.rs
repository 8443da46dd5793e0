//! Replicas in several processes (nodes), on one host or several. Node 0 runs the coordinator
//! (Burn's collective orchestrator), where every node registers once; tensors then travel
//! between the nodes directly, each node serving its own on `address`.

use crate::TrainError;
use burn::collective::{AllReduceStrategy, CollectiveConfig};
use morphogen_contracts::MorphogenError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often, at most, a replica waiting on the others checks that the other nodes still answer.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Where this process sits among the processes (nodes) of a data-parallel group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeGroup {
    /// Processes in the group, each with the same number of replicas.
    pub nodes: usize,
    /// This process's index, `0..nodes`; node 0 runs the coordinator and holds rank 0.
    pub node_rank: usize,
    /// The coordinator's address, the same for every node.
    pub coordinator: SocketAddr,
    /// Where this node serves its tensors to the others: reachable from every other node.
    pub address: SocketAddr,
    /// How long a node waits for the coordinator to accept connections (node 0 may start
    /// after the others): a minute by default.
    pub coordinator_wait: Duration,
}

impl NodeGroup {
    /// Node `node_rank` of `nodes`, joined through `coordinator`. It serves its tensors on the
    /// address this host reaches the coordinator from, port `coordinator + 1 + node_rank` (so
    /// that nodes on one host do not collide); [`Self::with_address`] sets another.
    pub fn new(nodes: usize, node_rank: usize, coordinator: SocketAddr) -> Self {
        let host = local_address_towards(coordinator).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = coordinator.port().saturating_add(1).saturating_add(node_rank.min(u16::MAX as usize) as u16);
        let address = SocketAddr::new(host, port);
        Self { nodes, node_rank, coordinator, address, coordinator_wait: Duration::from_secs(60) }
    }

    /// The same, serving tensors on `address`.
    pub fn with_address(self, address: SocketAddr) -> Self {
        Self { address, ..self }
    }

    /// Checks the node's rank lies inside the group.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let problem = if self.nodes == 0 {
            Some("nodes must be at least 1".to_string())
        } else if self.node_rank >= self.nodes {
            Some(format!("node rank {} is outside a group of {} nodes", self.node_rank, self.nodes))
        } else {
            None
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(MorphogenError::InvalidConfig {
                component: "run.nodes".into(),
                problem,
                hint: "start every node with the same --nodes and a distinct --node-rank from 0 to nodes - 1".into(),
            }),
        }
    }

    /// Burn's collective settings for this node with `local` replicas. The centralized
    /// all-reduce: Burn's ring needs tensors of at least one value per node, and at a few
    /// nodes it moves about as many bytes.
    pub(crate) fn collective(&self, local: usize) -> CollectiveConfig {
        let ws = |address: SocketAddr| format!("ws://{address}").parse().expect("a socket address is a valid URL");
        CollectiveConfig::default()
            .with_num_devices(local)
            .with_num_nodes(self.nodes as u32)
            .with_global_address(ws(self.coordinator))
            .with_node_address(ws(self.address))
            .with_data_service_port(self.address.port())
            .with_global_all_reduce_strategy(AllReduceStrategy::Centralized)
    }

    /// Checks that this node can serve its tensors on `address`'s port: call it once a
    /// process, before its replicas join (Burn's server cannot report a port in use).
    pub fn check_address(&self) -> Result<(), TrainError> {
        listenable(self.address.port())
            .map_err(|e| TrainError::NodeAddress { address: self.address, problem: e.to_string() })
    }

    /// The same, waiting up to `wait` for the coordinator.
    pub fn with_coordinator_wait(self, wait: Duration) -> Self {
        Self { coordinator_wait: wait, ..self }
    }

    /// Waits up to `coordinator_wait` for the coordinator to accept a connection: an
    /// unreachable one is a typed error naming it, not a node that retries forever.
    pub fn wait_for_coordinator(&self) -> Result<(), TrainError> {
        let within = self.coordinator_wait;
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match TcpStream::connect_timeout(
                &self.coordinator,
                left.clamp(Duration::from_millis(10), Duration::from_secs(1)),
            ) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(TrainError::Coordinator {
                        address: self.coordinator,
                        problem: format!("no answer within {within:?} ({e})"),
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// Whether a server can listen on `port` of every interface, as Burn's servers do: they panic
/// on a port they cannot bind, so asking first gives the reason instead.
fn listenable(port: u16) -> std::io::Result<()> {
    TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).map(drop)
}

/// The address of this host on the route to `coordinator` (no packet is sent).
fn local_address_towards(coordinator: SocketAddr) -> Option<IpAddr> {
    let unspecified: SocketAddr = if coordinator.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let socket = UdpSocket::bind(unspecified).ok()?;
    socket.connect(coordinator).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// Watches the other nodes of a group while a replica waits on them: a node whose address no
/// longer accepts connections died, or its host is unreachable.
#[derive(Debug)]
pub(crate) struct NodeWatch {
    /// Every other node's rank and address.
    others: Vec<(usize, SocketAddr)>,
    /// When the other nodes were last checked.
    checked: Mutex<Instant>,
}

impl NodeWatch {
    /// Watches every node of `addresses` (in node order) but `node_rank`.
    pub(crate) fn new(addresses: Vec<SocketAddr>, node_rank: usize) -> Self {
        let others = addresses.into_iter().enumerate().filter(|&(node, _)| node != node_rank).collect();
        Self { others, checked: Mutex::new(Instant::now()) }
    }

    /// The first other node that does not accept a connection within a second; checked at most
    /// once every [`WATCH_EVERY`] (`None` in between) unless `now`.
    pub(crate) fn silent_node(&self, now: bool) -> Option<(usize, SocketAddr)> {
        {
            let mut checked = self.checked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !now && checked.elapsed() < WATCH_EVERY {
                return None;
            }
            *checked = Instant::now();
        }
        let answers = |address: &SocketAddr| TcpStream::connect_timeout(address, Duration::from_secs(1)).is_ok();
        self.others.iter().copied().find(|(_, address)| !answers(address))
    }
}

/// The coordinator node 0 runs: Burn's orchestrator, on a thread of its own, until dropped.
#[derive(Debug)]
pub struct Coordinator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Coordinator {
    /// Starts the coordinator on `port` of every interface. A port already in use is a typed
    /// error.
    pub fn start(port: u16) -> Result<Self, TrainError> {
        let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let failed = |problem: String| TrainError::Coordinator { address, problem };
        listenable(port).map_err(|e| failed(format!("cannot listen: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start its runtime: {e}")))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = burn_collective::start_global_orchestrator_until(port, async move {
            let _ = stopped.await;
        });
        // Not joined when dropped: a node that lingers must not keep node 0 from exiting.
        std::thread::spawn(move || runtime.block_on(serve));
        Ok(Self { stop: Some(stop) })
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
