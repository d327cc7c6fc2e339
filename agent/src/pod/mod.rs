//! The pod worker — skiff's kubelet. One loop owns the state of every pod on the node; it
//! compares the pods the cluster declares with the containers that exist, and acts: creates
//! sandboxes, starts containers (each instance in its own task that starts the shim, then
//! waits for the exit or a stop request), restarts them under `restartPolicy` with back-off,
//! stops them gracefully when pods go (SIGTERM, grace period, SIGKILL), removes what they
//! leave, and writes pod status back.
//!
//! It re-adopts containers whose shims survived a daemon restart (see [`Agent::run`]).
//!
//! Files, by job: `worker.rs` (the loop, its messages, and what it does per pod),
//! `sandbox.rs` (a pod's namespaces, address, `/etc` files, and their removal), `start.rs`
//! (starting one container instance), `instance.rs` (the task that runs an instance, and its
//! probes), `adopt.rs` (containers left by an earlier daemon), `restart.rs` (restart policy
//! and crash back-off, pure), `init.rs` (init containers: which runs next, pure), `hook.rs` (postStart/preStop),
//! `termination.rs` (termination messages), `report.rs` (pod status and events), `sources.rs` (what env and
//! volumes read from the cluster).

mod adopt;
mod dns;
mod error;
mod eviction;
mod grpc;
mod hook;
mod init;
mod instance;
pub mod logs;
pub mod probe;
pub mod process;
mod report;
mod restart;
mod sandbox;
mod sources;
mod start;
pub mod status;
mod termination;
pub mod volumes;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::image::Puller;
use crate::runtime::handle::Runtime;
use crate::runtime::ExitRecord;
use crate::Cluster;

pub use error::ConfigError;

/// A pod's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// uid.
    pub uid: String,
    /// namespace.
    pub namespace: String,
    /// name.
    pub name: String,
}

impl PodRef {
    fn of(pod: &Pod) -> Self {
        PodRef {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        }
    }
    /// The pod's directory name, as kubelet names it under /var/log/pods.
    fn dir_name(&self) -> String {
        format!("{}_{}_{}", self.namespace, self.name, self.uid)
    }
    /// `namespace/name`, for the log.
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One container instance the loop knows of.
#[derive(Debug)]
struct Instance {
    id: String,
    spec_hash: String,
    image_id: String,
    started_at: Option<String>,
    stopping: bool,
    stop: mpsc::UnboundedSender<Duration>,
    /// Readiness from the readiness probe; `None` without one (ready once started).
    ready: Option<bool>,
    /// The startup probe succeeded (true without one).
    startup_passed: bool,
    /// Dropped with the instance: ends its probes.
    _probes: Option<watch::Sender<bool>>,
    /// Whether the probes of the container spec run for this instance (false for an instance
    /// re-adopted after a daemon restart, until the pod worker attaches them).
    probes_attached: bool,
}

impl Instance {
    /// Started as Kubernetes means it: running (its postStart hook done) and its startup
    /// probe passed.
    fn started(&self) -> bool {
        self.started_at.is_some() && self.startup_passed
    }

    /// Asks the instance's task to stop it (SIGTERM, `grace`, SIGKILL), once.
    fn stop(&mut self, grace: Duration) {
        if !self.stopping {
            self.stopping = true;
            let _ = self.stop.send(grace);
        }
    }
}

/// What the loop knows of one container of a pod.
#[derive(Debug, Default)]
pub(crate) struct ContainerState {
    current: Option<Instance>,
    /// The last exit, with the instance's id and image id.
    last_exit: Option<(ExitRecord, String, String)>,
    /// The exit before it (for `lastState`).
    previous_exit: Option<ExitRecord>,
    restart_count: u32,
    backoff: Duration,
    not_before: Option<Instant>,
    /// A reason the container is waiting (image missing, start failed…), with a message.
    waiting: Option<(String, String)>,
    /// Restart at once, without counting it as a crash (the spec changed).
    replace: bool,
    /// An instance of it has started in this pod's life (a sidecar's turn has passed).
    started_once: bool,
}

/// What the loop knows of one pod.
#[derive(Debug)]
pub(crate) struct PodState {
    pod: PodRef,
    host_network: bool,
    /// The pod's address on the bridge (pods without `hostNetwork`).
    pod_ip: Option<std::net::Ipv4Addr>,
    containers: HashMap<String, ContainerState>,
    start_time: String,
    /// The pod's directory has been removed and the cluster told.
    finished: bool,
    /// Every init container completed (they are not run again while the pod lives).
    initialized: bool,
    /// Evicted for its local storage use, with kubelet's message: nothing of it runs again.
    evicted: Option<String>,
    /// Finished for good and its sandbox released (`Agent::release_finished`).
    released: bool,
}

impl PodState {
    fn new(pod: PodRef, host_network: bool, start_time: String) -> Self {
        PodState {
            pod,
            host_network,
            pod_ip: None,
            containers: HashMap::new(),
            start_time,
            finished: false,
            initialized: false,
            evicted: None,
            released: false,
        }
    }

    /// Asks every running instance to stop; true if any still runs.
    fn stop_all(&mut self, grace: Duration) -> bool {
        let mut busy = false;
        for cs in self.containers.values_mut() {
            if let Some(inst) = cs.current.as_mut() {
                busy = true;
                inst.stop(grace);
            }
        }
        busy
    }
}

/// The node agent's pod worker.
pub struct Agent {
    /// This node's name (pods are bound to it, events name it), from the binary.
    node_name: String,
    cluster: Arc<dyn Cluster>,
    runtime: Runtime,
    images: Puller,
    pods: HashMap<String, PodState>,
    images_changed: Arc<tokio::sync::Notify>,
    network: Option<Arc<crate::network::Network>>,
    /// The node's address (the Node's InternalIP): every pod's `hostIP`.
    host_ip: std::net::Ipv4Addr,
    tx: mpsc::UnboundedSender<worker::Msg>,
    rx: mpsc::UnboundedReceiver<worker::Msg>,
    /// When pods' local storage was last measured, whether a pod here has a storage limit
    /// (the loop wakes for measuring only then), and whether a measure is under way.
    storage_checked: Option<std::time::Instant>,
    storage_limited: bool,
    storage_busy: Arc<std::sync::atomic::AtomicBool>,
}

fn spec_hash(container: &Container, host_network: bool) -> String {
    let text = serde_json::to_string(&(container, host_network)).expect("containers serialize");
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The pod's `status.startTime`, or now for a pod that has none yet.
fn start_time(pod: Option<&Pod>) -> String {
    pod.and_then(|p| p.status.as_ref())
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_else(crate::runtime::now_rfc3339)
}

impl Agent {
    /// The agent of node `node_name` over `cluster`, running containers with `runtime` from the
    /// images `images` makes ready. `images_changed` is notified when an image was imported.
    pub fn new(
        node_name: &str,
        cluster: Arc<dyn Cluster>,
        runtime: Runtime,
        images: Puller,
        images_changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Agent {
            node_name: node_name.into(),
            cluster,
            runtime,
            images,
            pods: HashMap::new(),
            images_changed,
            network: None,
            host_ip: std::net::Ipv4Addr::LOCALHOST,
            tx,
            rx,
            storage_checked: None,
            storage_limited: false,
            storage_busy: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Gives pods without `hostNetwork` an address on the bridge. (Services are implemented
    /// by [`crate::network::ServiceProxy`], a loop of its own.)
    /// The pods' `hostIP` becomes the node's address, as the Node object reports it
    /// ([`crate::network::host_ip`]).
    pub fn with_network(mut self, network: Arc<crate::network::Network>) -> Self {
        self.host_ip = crate::network::host_ip(&network.config);
        self.network = Some(network);
        self
    }
}
