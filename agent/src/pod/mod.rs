//! The pod worker — skiff's kubelet. One loop owns the state of every pod on the node; it
//! compares the pods the cluster declares with the containers that exist, and acts: creates
//! sandboxes, starts containers (each instance in its own task that starts the shim, then
//! waits for the exit or a stop request), restarts them under `restartPolicy` with back-off,
//! stops them gracefully when pods go (SIGTERM, grace period, SIGKILL), removes what they
//! leave, and writes pod status back.
//!
//! It re-adopts containers whose shims survived a daemon restart (see [`Agent::run`]).

pub mod logs;
pub mod probe;
pub mod process;
pub mod status;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::image::ImageStore;
use crate::runtime::handle::{Found, Running, Runtime, Started};
use crate::runtime::oci::{self, SpecInput};
use crate::runtime::{sandbox, ContainerMeta, ExitRecord};
use crate::Cluster;

/// Back-off before the second restart; doubles after each, up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_secs(10);
/// Kubernetes' cap on crash back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long has its back-off reset.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often to look again at pods waiting for something outside our events (an image).
const RETRY: Duration = Duration::from_secs(1);

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
}

/// Messages from container tasks to the loop.
#[derive(Debug)]
enum Msg {
    Running {
        pod: String,
        name: String,
        id: String,
        started_at: String,
    },
    Exited {
        pod: String,
        name: String,
        id: String,
        exit: ExitRecord,
        ran_for: Duration,
    },
    Probe {
        pod: String,
        name: String,
        id: String,
        verdict: probe::Verdict,
    },
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
    /// Readiness from the readiness probe; `None` without one (ready once running).
    ready: Option<bool>,
    /// Dropped with the instance: ends its probes.
    _probes: Option<watch::Sender<bool>>,
    /// Whether the probes of the container spec run for this instance (false for an instance
    /// re-adopted after a daemon restart, until the pod worker attaches them).
    probes_attached: bool,
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
}

/// The node agent.
pub struct Agent {
    cluster: Arc<dyn Cluster>,
    runtime: Runtime,
    images: Arc<ImageStore>,
    pods: HashMap<String, PodState>,
    images_changed: Arc<tokio::sync::Notify>,
    network: Option<Arc<crate::network::Network>>,
    /// The Service rules last installed (to write nftables only on change).
    service_rules: Option<crate::network::rules::Rules>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
}

fn spec_hash(container: &Container, host_network: bool) -> String {
    let text = serde_json::to_string(&(container, host_network)).expect("containers serialize");
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

impl ContainerState {
    /// Records an exit and decides when a restart may happen: at once for the first crash,
    /// then after a back-off that doubles from [`BASE_BACKOFF`] to [`MAX_BACKOFF`], as kubelet
    /// does. A replacement (spec change) is not a crash and waits for nothing.
    fn record_exit(
        &mut self,
        exit: ExitRecord,
        id: String,
        image_id: String,
        ran_for: Duration,
        name: &str,
        pod: &str,
    ) {
        if let Some((prev, _, _)) = self.last_exit.take() {
            self.previous_exit = Some(prev);
        }
        self.last_exit = Some((exit, id, image_id));
        if self.replace {
            self.not_before = Some(Instant::now());
            self.waiting = None;
            return;
        }
        if ran_for >= BACKOFF_RESET {
            self.backoff = Duration::ZERO;
        }
        let delay = self.backoff;
        self.backoff = if delay.is_zero() {
            BASE_BACKOFF
        } else {
            (delay * 2).min(MAX_BACKOFF)
        };
        self.not_before = Some(Instant::now() + delay);
        self.waiting = (!delay.is_zero()).then(|| {
            (
                "CrashLoopBackOff".to_string(),
                format!(
                    "back-off {}s restarting failed container={name} pod={pod}",
                    delay.as_secs()
                ),
            )
        });
    }
}

fn restart_wanted(policy: &str, exit: &ExitRecord) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit.exit_code != 0,
        _ => true,
    }
}

impl Agent {
    /// An agent over `cluster`, running containers with `runtime` from `images`.
    /// `images_changed` is notified when an image was imported.
    pub fn new(
        cluster: Arc<dyn Cluster>,
        runtime: Runtime,
        images: Arc<ImageStore>,
        images_changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Agent {
            cluster,
            runtime,
            images,
            pods: HashMap::new(),
            images_changed,
            network: None,
            service_rules: None,
            tx,
            rx,
        }
    }

    /// Gives pods without `hostNetwork` an address on the bridge, and implements Services.
    pub fn with_network(mut self, network: Arc<crate::network::Network>) -> Self {
        self.network = Some(network);
        self
    }

    /// Removes a pod's sandbox (namespaces, /etc files, logs) and frees its address.
    async fn remove_sandbox(&self, uid: &str, dir: PathBuf) {
        let network = self.network.clone();
        let uid = uid.to_string();
        let result = tokio::task::spawn_blocking(move || {
            let r = sandbox::remove(&dir);
            if let Some(n) = network {
                n.detach(&uid);
            }
            r
        })
        .await
        .expect("no panic");
        if let Err(e) = result {
            tracing::warn!("removing a pod sandbox: {e}");
        }
    }

    fn pod_dir(&self, pod: &PodRef) -> PathBuf {
        self.runtime.layout.pods().join(pod.dir_name())
    }

    /// Re-adopts containers left by an earlier daemon, then runs until `shutdown` flips.
    /// Containers keep running when it returns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.cluster.subscribe();
        self.adopt().await;
        loop {
            self.sync().await;
            let wake = self.next_wake();
            tokio::select! {
                _ = shutdown.changed() => break,
                r = changes.recv() => {
                    if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                        break;
                    }
                    // Coalesce a burst.
                    while changes.try_recv().is_ok() {}
                }
                Some(msg) = self.rx.recv() => {
                    self.handle(msg);
                    while let Ok(msg) = self.rx.try_recv() {
                        self.handle(msg);
                    }
                }
                _ = tokio::time::sleep(wake) => {}
                _ = self.images_changed.notified() => {}
            }
        }
        tracing::info!("agent stopped; containers keep running");
    }

    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = Duration::from_secs(30);
        for p in self.pods.values() {
            for c in p.containers.values() {
                if let Some(t) = c.not_before {
                    wake = wake.min(t.saturating_duration_since(now) + Duration::from_millis(5));
                }
                if c.waiting.is_some() && c.not_before.is_none() {
                    wake = wake.min(RETRY);
                }
            }
        }
        wake
    }

    async fn adopt(&mut self) {
        let pods: HashMap<String, Pod> = self
            .cluster
            .pods()
            .into_iter()
            .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
            .collect();
        for found in self.runtime.find_all() {
            match found {
                Found::Running(running) => {
                    let meta = running.meta.clone();
                    tracing::info!(container = %meta.id, pod = %format!("{}/{}", meta.pod_namespace, meta.pod_name), pid = running.state.init_pid, "re-adopted a running container");
                    let host_network = pods.get(&meta.pod_uid).is_some_and(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.host_network)
                            .unwrap_or(false)
                    });
                    let state = self.pod_state(&meta, host_network, pods.get(&meta.pod_uid));
                    let cs = state
                        .containers
                        .entry(meta.container_name.clone())
                        .or_default();
                    cs.restart_count = meta.restart_count;
                    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
                    cs.current = Some(Instance {
                        id: meta.id.clone(),
                        spec_hash: meta.spec_hash.clone(),
                        image_id: meta.image_id.clone(),
                        started_at: Some(running.state.started_at.clone()),
                        stopping: false,
                        stop: stop_tx,
                        ready: None,
                        _probes: None,
                        probes_attached: false,
                    });
                    self.spawn_monitor(*running, stop_rx);
                }
                Found::Exited(meta, exit) => self.adopt_exited(meta, exit, &pods).await,
                Found::Lost(meta) => {
                    let exit = ExitRecord::unknown(
                        "the container's shim ended while skiff was down, without recording an exit",
                        None,
                    );
                    self.adopt_exited(meta, exit, &pods).await
                }
            }
        }
    }

    async fn adopt_exited(
        &mut self,
        meta: ContainerMeta,
        exit: ExitRecord,
        pods: &HashMap<String, Pod>,
    ) {
        tracing::info!(container = %meta.id, code = exit.exit_code, "found a container that exited while skiff was down");
        if let Err(e) = self.runtime.remove(&meta).await {
            tracing::warn!(container = %meta.id, "removing: {e}");
        }
        let host_network = pods.get(&meta.pod_uid).is_some_and(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false)
        });
        let state = self.pod_state(&meta, host_network, pods.get(&meta.pod_uid));
        let cs = state
            .containers
            .entry(meta.container_name.clone())
            .or_default();
        cs.restart_count = meta.restart_count;
        cs.record_exit(
            exit,
            meta.id.clone(),
            meta.image_id.clone(),
            Duration::ZERO,
            &meta.container_name,
            &meta.pod_name,
        );
    }

    fn pod_state(
        &mut self,
        meta: &ContainerMeta,
        host_network: bool,
        pod: Option<&Pod>,
    ) -> &mut PodState {
        let start_time = pod
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(crate::runtime::now_rfc3339);
        self.pods
            .entry(meta.pod_uid.clone())
            .or_insert_with(|| PodState {
                pod: PodRef {
                    uid: meta.pod_uid.clone(),
                    namespace: meta.pod_namespace.clone(),
                    name: meta.pod_name.clone(),
                },
                host_network,
                containers: HashMap::new(),
                start_time,
                finished: false,
                pod_ip: None,
            })
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Running {
                pod,
                name,
                id,
                started_at,
            } => {
                if let Some(cs) = self
                    .pods
                    .get_mut(&pod)
                    .and_then(|p| p.containers.get_mut(&name))
                {
                    if let Some(inst) = cs.current.as_mut().filter(|i| i.id == id) {
                        inst.started_at = Some(started_at);
                        cs.waiting = None;
                    }
                }
            }
            Msg::Probe {
                pod,
                name,
                id,
                verdict,
            } => {
                let pod_ref = self.pods.get(&pod).map(|p| p.pod.clone());
                let Some(cs) = self
                    .pods
                    .get_mut(&pod)
                    .and_then(|p| p.containers.get_mut(&name))
                else {
                    return;
                };
                let Some(inst) = cs.current.as_mut().filter(|i| i.id == id) else {
                    return;
                };
                match verdict {
                    probe::Verdict::Ready(ready) => inst.ready = Some(ready),
                    probe::Verdict::Unhealthy => {
                        if !inst.stopping {
                            inst.stopping = true;
                            let _ = inst.stop.send(Duration::from_secs(2));
                            if let Some(p) = pod_ref {
                                self.cluster.event(&p.namespace, &p.name, false, "Killing", &format!("Container {name} failed a liveness or startup probe, will be restarted"));
                            }
                        }
                    }
                }
            }
            Msg::Exited {
                pod,
                name,
                id,
                exit,
                ran_for,
            } => {
                let Some(cs) = self
                    .pods
                    .get_mut(&pod)
                    .and_then(|p| p.containers.get_mut(&name))
                else {
                    return;
                };
                let Some(inst) = cs.current.take_if(|i| i.id == id) else {
                    return;
                };
                tracing::info!(container = %id, code = exit.exit_code, reason = %exit.reason, "container exited");
                let pod_name = self
                    .pods
                    .get(&pod)
                    .map(|p| p.pod.name.clone())
                    .unwrap_or_default();
                let cs = self
                    .pods
                    .get_mut(&pod)
                    .and_then(|p| p.containers.get_mut(&name))
                    .expect("found above");
                cs.record_exit(exit, inst.id, inst.image_id, ran_for, &name, &pod_name);
            }
        }
    }

    /// Implements Services on the node (see `network::services`): writes back what it
    /// allocates, installs the rules when they changed, updates the DNS records.
    async fn sync_services(&mut self, pods: &[Pod]) {
        let Some(net) = self.network.clone() else {
            return;
        };
        let services = self.cluster.objects("Service");
        let slices = self.cluster.objects("EndpointSlice");
        let plan = crate::network::services::plan(
            &net.config,
            &services,
            &slices,
            pods,
            crate::network::host_ip(&net.config),
        );
        for a in plan.allocations {
            let r = match a {
                crate::network::services::Allocation::Spec {
                    namespace,
                    name,
                    patch,
                } => {
                    self.cluster
                        .update_service(&namespace, &name, Some(patch), None)
                        .await
                }
                crate::network::services::Allocation::Status {
                    namespace,
                    name,
                    status,
                } => {
                    self.cluster
                        .update_service(&namespace, &name, None, Some(status))
                        .await
                }
            };
            if let Err(e) = r {
                tracing::warn!("recording a Service allocation: {e}");
            }
        }
        {
            let mut current = net.records.write().unwrap_or_else(|p| p.into_inner());
            if *current != plan.records {
                *current = plan.records;
            }
        }
        if self.service_rules.as_ref() == Some(&plan.rules) {
            return;
        }
        let config = net.config.clone();
        let rules = plan.rules.clone();
        match tokio::task::spawn_blocking(move || crate::network::rules::apply(&config, &rules))
            .await
            .expect("no panic")
        {
            Ok(()) => self.service_rules = Some(plan.rules),
            Err(e) => tracing::error!("installing the Service rules: {e}"),
        }
    }

    /// Compares declared pods with what runs, and acts.
    async fn sync(&mut self) {
        // One read of the pods serves both the Service rules and the pod workers.
        let pods = self.cluster.pods();
        self.sync_services(&pods).await;
        let mut seen = std::collections::HashSet::new();
        for pod in &pods {
            let r = PodRef::of(pod);
            seen.insert(r.uid.clone());
            if pod.metadata.deletion_timestamp.is_some() {
                self.sync_terminating(pod, &r).await;
            } else {
                self.sync_pod(pod, &r).await;
            }
        }
        // Pods gone from the cluster without a graceful deletion: stop what is left.
        let orphans: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !seen.contains(*u))
            .cloned()
            .collect();
        for uid in orphans {
            let state = self.pods.get_mut(&uid).expect("listed");
            let mut busy = false;
            for cs in state.containers.values_mut() {
                if let Some(inst) = cs.current.as_mut() {
                    busy = true;
                    if !inst.stopping {
                        inst.stopping = true;
                        let _ = inst.stop.send(Duration::from_secs(30));
                    }
                }
            }
            if !busy {
                let dir = self.runtime.layout.pods().join(state.pod.dir_name());
                self.remove_sandbox(&uid, dir).await;
                self.pods.remove(&uid);
            }
        }
    }

    async fn sync_terminating(&mut self, pod: &Pod, r: &PodRef) {
        let grace = Duration::from_secs(
            pod.metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64,
        );
        let Some(state) = self.pods.get_mut(&r.uid) else {
            // Nothing of it runs here (never started, or already cleaned up).
            let dir = self.pod_dir(r);
            self.remove_sandbox(&r.uid, dir).await;
            if let Err(e) = self.cluster.pod_gone(pod).await {
                tracing::warn!(pod = %format!("{}/{}", r.namespace, r.name), "finishing the deletion: {e}");
            }
            return;
        };
        let mut busy = false;
        for (name, cs) in state.containers.iter_mut() {
            cs.not_before = None;
            cs.waiting = None;
            if let Some(inst) = cs.current.as_mut() {
                busy = true;
                if !inst.stopping {
                    inst.stopping = true;
                    let _ = inst.stop.send(grace);
                    self.cluster.event(
                        &r.namespace,
                        &r.name,
                        false,
                        "Killing",
                        &format!("Stopping container {name}"),
                    );
                }
            }
        }
        if busy || state.finished {
            return;
        }
        state.finished = true;
        let dir = self.pod_dir(r);
        self.remove_sandbox(&r.uid, dir).await;
        tracing::info!(pod = %format!("{}/{}", r.namespace, r.name), "pod stopped and removed");
        self.pods.remove(&r.uid);
        if let Err(e) = self.cluster.pod_gone(pod).await {
            tracing::warn!(pod = %format!("{}/{}", r.namespace, r.name), "finishing the deletion: {e}");
        }
    }

    async fn sync_pod(&mut self, pod: &Pod, r: &PodRef) {
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let host_network = spec.host_network.unwrap_or(false);
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let hostname = spec.hostname.clone().unwrap_or_else(|| r.name.clone());
        let stored_restarts: HashMap<String, u32> = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.name.clone(), c.restart_count.max(0) as u32))
                    .collect()
            })
            .unwrap_or_default();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(crate::runtime::now_rfc3339);
        if !self.pods.contains_key(&r.uid)
            && pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .is_none()
        {
            self.cluster.event(
                &r.namespace,
                &r.name,
                false,
                "Scheduled",
                &format!(
                    "Successfully assigned {}/{} to {}",
                    r.namespace,
                    r.name,
                    node_name()
                ),
            );
        }
        let state = self.pods.entry(r.uid.clone()).or_insert_with(|| PodState {
            pod: r.clone(),
            host_network,
            containers: HashMap::new(),
            start_time,
            finished: false,
            pod_ip: None,
        });
        if !host_network && state.pod_ip.is_none() {
            if let Some(n) = &self.network {
                state.pod_ip = n.ipam.lookup(&r.uid);
            }
        }
        // A change of the pod's network mode means a new sandbox: stop everything first.
        if state.host_network != host_network {
            let mut busy = false;
            for cs in state.containers.values_mut() {
                if let Some(inst) = cs.current.as_mut() {
                    busy = true;
                    if !inst.stopping {
                        inst.stopping = true;
                        let _ = inst.stop.send(Duration::from_secs(
                            spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
                        ));
                    }
                }
            }
            if busy {
                return;
            }
            let dir = self.runtime.layout.pods().join(r.dir_name()).join("ns");
            state.host_network = host_network;
            state.pod_ip = None;
            let (network, uid) = (self.network.clone(), r.uid.clone());
            let _ = tokio::task::spawn_blocking(move || {
                let _ = sandbox::remove(&dir);
                if let Some(n) = network {
                    n.detach(&uid);
                }
            })
            .await;
        }
        let pod_dir = self.runtime.layout.pods().join(r.dir_name());
        let now = Instant::now();
        let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
        // Containers no longer in the spec.
        for (name, cs) in state.containers.iter_mut() {
            if !names.contains(name) {
                if let Some(inst) = cs.current.as_mut().filter(|i| !i.stopping) {
                    inst.stopping = true;
                    let _ = inst.stop.send(Duration::from_secs(30));
                }
            }
        }
        let mut to_start = Vec::new();
        for c in &spec.containers {
            let hash = spec_hash(c, host_network);
            let cs = state.containers.entry(c.name.clone()).or_default();
            if cs.restart_count == 0 {
                cs.restart_count = stored_restarts.get(&c.name).copied().unwrap_or(0);
            }
            if let Some(inst) = cs.current.as_mut() {
                if !inst.probes_attached && inst.spec_hash == hash {
                    // Re-adopted after a daemon restart: its probes run again; it keeps serving
                    // until a readiness probe says otherwise.
                    inst.probes_attached = true;
                    inst._probes = spawn_probes(
                        &self.runtime,
                        &self.cluster,
                        &self.tx,
                        r,
                        c,
                        &inst.id,
                        state.pod_ip,
                    );
                    if c.readiness_probe.is_some() {
                        inst.ready = Some(true);
                    }
                }
                if inst.spec_hash != hash && !inst.stopping {
                    tracing::info!(container = %inst.id, "the container's spec changed: replacing it");
                    inst.stopping = true;
                    cs.replace = true;
                    let _ = inst.stop.send(Duration::from_secs(
                        spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
                    ));
                }
                continue;
            }
            if let Some((exit, _, _)) = &cs.last_exit {
                if !cs.replace && !restart_wanted(&policy, exit) {
                    continue;
                }
                if cs.not_before.is_some_and(|t| t > now) {
                    continue;
                }
            }
            to_start.push((c.clone(), hash));
        }
        if to_start.is_empty() {
            self.write_status(pod).await;
            return;
        }
        let network = self.network.clone().filter(|_| !host_network);
        let ns = match tokio::task::spawn_blocking({
            let pod_dir = pod_dir.clone();
            let hostname = hostname.clone();
            let uid = r.uid.clone();
            move || -> std::io::Result<(sandbox::Namespaces, Option<std::net::Ipv4Addr>)> {
                let started = Instant::now();
                let ns = sandbox::ensure(&pod_dir, host_network, &hostname)?;
                let ip = match (&network, &ns.net) {
                    (Some(n), Some(netns)) => {
                        let ip = n.attach(&uid, netns).map_err(std::io::Error::other)?;
                        // Measured by e2e/bench/network.py: namespaces, veth, address, routes.
                        tracing::debug!(pod = %uid, %ip, took_us = started.elapsed().as_micros() as u64, "pod network ready");
                        Some(ip)
                    }
                    _ => None,
                };
                Ok((ns, ip))
            }
        })
        .await
        .expect("no panic")
        {
            Ok((ns, ip)) => {
                if ip.is_some() {
                    self.pods.get_mut(&r.uid).expect("inserted").pod_ip = ip;
                }
                ns
            }
            Err(e) => {
                tracing::error!(pod = %format!("{}/{}", r.namespace, r.name), "creating the pod sandbox: {e}");
                let state = self.pods.get_mut(&r.uid).expect("inserted");
                for (c, _) in &to_start {
                    let cs = state.containers.entry(c.name.clone()).or_default();
                    cs.waiting = Some(("CreateContainerError".into(), format!("pod sandbox: {e}")));
                }
                self.write_status(pod).await;
                return;
            }
        };
        let pod_ip = self.pods.get(&r.uid).and_then(|p| p.pod_ip);
        // Cluster DNS for pods on the bridge with dnsPolicy ClusterFirst (the default).
        let dns_policy = spec
            .dns_policy
            .clone()
            .unwrap_or_else(|| "ClusterFirst".into());
        let cluster_dns = matches!(dns_policy.as_str(), "ClusterFirst" if !host_network)
            || dns_policy == "ClusterFirstWithHostNet";
        let resolv = self.network.as_ref().filter(|_| cluster_dns).map(|n| {
            crate::network::dns::resolv_conf(n.config.cluster_cidr.gateway(), &r.namespace)
        });
        let etc = match write_etc_files(&pod_dir, host_network, &hostname, pod_ip, resolv) {
            Ok(files) => files,
            Err(e) => {
                tracing::error!(pod = %format!("{}/{}", r.namespace, r.name), "writing /etc files: {e}");
                Vec::new()
            }
        };
        let volumes = {
            let sources = PodEnvSources {
                cluster: &*self.cluster,
                pod,
                pod_ip,
            };
            volumes::prepare(
                &pod_dir,
                spec.volumes.as_deref().unwrap_or_default(),
                &sources,
            )
        };
        let volumes = match volumes {
            Ok(v) => v,
            Err(message) => {
                let state = self.pods.get_mut(&r.uid).expect("inserted");
                for (c, _) in &to_start {
                    let cs = state.containers.entry(c.name.clone()).or_default();
                    if cs.waiting.as_ref().map(|w| &w.1) != Some(&message) {
                        tracing::warn!(pod = %format!("{}/{}", r.namespace, r.name), "volumes: {message}");
                    }
                    cs.waiting = Some(("CreateContainerConfigError".into(), message.clone()));
                }
                self.write_status(pod).await;
                return;
            }
        };
        for (c, hash) in to_start {
            self.start_container(pod, r, &c, hash, &ns, &hostname, &etc, &pod_dir, &volumes);
        }
        self.write_status(pod).await;
    }

    #[allow(clippy::too_many_arguments)]
    fn start_container(
        &mut self,
        pod: &Pod,
        r: &PodRef,
        c: &Container,
        hash: String,
        ns: &sandbox::Namespaces,
        hostname: &str,
        etc: &[(String, PathBuf)],
        pod_dir: &std::path::Path,
        volumes: &HashMap<String, volumes::Prepared>,
    ) {
        let pod_ip = self.pods.get(&r.uid).and_then(|p| p.pod_ip);
        let state = self.pods.get_mut(&r.uid).expect("inserted");
        let cs = state.containers.get_mut(&c.name).expect("inserted");
        let image_ref = c.image.clone().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let wanted = crate::image::ImageWanted {
            reference: image_ref.clone(),
            policy: policy.clone(),
            credentials: crate::image::auth::pod_credentials(&*self.cluster, pod),
            // `Always`: every start pulls (a pull that finished after the last exit counts).
            pulled_after: cs.last_exit.as_ref().and_then(|(exit, _, _)| {
                exit.finished_at
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .map(std::time::SystemTime::from)
            }),
            who: format!("{}/{} {}", r.namespace, r.name, c.name),
        };
        let was_pulling = cs.waiting.as_ref().is_some_and(|(reason, _)| {
            matches!(
                reason.as_str(),
                "ContainerCreating" | "ErrImagePull" | "ImagePullBackOff"
            )
        });
        let image = match self.images.ensure(&wanted) {
            crate::image::Readiness::Ready(image) => {
                let message = if was_pulling {
                    format!("Successfully pulled image {image_ref:?}")
                } else {
                    format!("Container image {image_ref:?} already present on machine")
                };
                self.cluster
                    .event(&r.namespace, &r.name, false, "Pulled", &message);
                *image
            }
            crate::image::Readiness::Waiting { reason, message } => {
                if cs.waiting.as_ref().map(|w| w.0.as_str()) != Some(reason) {
                    if reason != "ContainerCreating" {
                        tracing::warn!(pod = %format!("{}/{}", r.namespace, r.name), container = %c.name, "{reason}: {message}");
                    }
                    // Pull events, as kubelet names them.
                    let (warning, event) = match reason {
                        "ContainerCreating" => (false, "Pulling"),
                        "ImagePullBackOff" => (false, "BackOff"),
                        "ErrImagePull" => (true, "Failed"),
                        other => (true, other),
                    };
                    self.cluster
                        .event(&r.namespace, &r.name, warning, event, &message);
                }
                cs.waiting = Some((reason.into(), message));
                cs.not_before = None;
                return;
            }
        };
        let defaults = process::ImageDefaults::from_config(&image.config);
        let proc = match process::process(
            c,
            &defaults,
            &image.layers,
            hostname,
            &PodEnvSources {
                cluster: &*self.cluster,
                pod,
                pod_ip,
            },
        ) {
            Ok(p) => p,
            Err(message) => {
                if cs.waiting.as_ref().map(|w| &w.1) != Some(&message) {
                    tracing::warn!(pod = %format!("{}/{}", r.namespace, r.name), container = %c.name, "{message}");
                }
                cs.waiting = Some(("CreateContainerConfigError".into(), message));
                cs.not_before = None;
                return;
            }
        };
        let volume_mounts = match volumes::mounts(c, volumes) {
            Ok(m) => m,
            Err(message) => {
                cs.waiting = Some(("CreateContainerConfigError".into(), message));
                cs.not_before = None;
                return;
            }
        };
        // Every start after the first is a restart.
        if cs.last_exit.is_some() {
            cs.restart_count += 1;
        }
        cs.not_before = None;
        cs.replace = false;
        let id = crate::runtime::container_id(&r.uid, &c.name, cs.restart_count);
        let meta = ContainerMeta {
            id: id.clone(),
            pod_uid: r.uid.clone(),
            pod_namespace: r.namespace.clone(),
            pod_name: r.name.clone(),
            container_name: c.name.clone(),
            restart_count: cs.restart_count,
            spec_hash: hash.clone(),
            image: image_ref,
            image_id: image.id.clone(),
            log_path: pod_dir
                .join(&c.name)
                .join(format!("{}.log", cs.restart_count)),
            libcontainer_root: self.runtime.layout.libcontainer_root(),
        };
        let spec = oci::spec(
            &SpecInput {
                process: &proc,
                hostname,
                namespaces: ns,
                cgroups_path: format!("/{}/{}", self.runtime.layout.cgroup_parent(), id),
                etc_files: etc.to_vec(),
                limits: oci::Limits::from_resources(c.resources.as_ref()),
                volume_mounts,
            },
            std::path::Path::new("rootfs"),
        );
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let probes = spawn_probes(&self.runtime, &self.cluster, &self.tx, r, c, &id, pod_ip);
        cs.current = Some(Instance {
            id: id.clone(),
            spec_hash: hash,
            image_id: image.id.clone(),
            started_at: None,
            stopping: false,
            stop: stop_tx,
            ready: c.readiness_probe.as_ref().map(|_| false),
            _probes: probes,
            probes_attached: true,
        });
        let runtime = self.runtime.clone();
        let tx = self.tx.clone();
        let layers = image.layers.clone();
        let pod_uid = r.uid.clone();
        let name = c.name.clone();
        let _ = pod;
        tokio::spawn(async move {
            match runtime.create(meta.clone(), layers, spec).await {
                Ok(Started::Running(running)) => {
                    let _ = tx.send(Msg::Running {
                        pod: pod_uid,
                        name,
                        id,
                        started_at: running.state.started_at.clone(),
                    });
                    monitor(runtime, *running, stop_rx, tx).await;
                }
                Ok(Started::Exited(exit)) => {
                    if let Err(e) = runtime.remove(&meta).await {
                        tracing::warn!(container = %id, "removing: {e}");
                    }
                    let _ = tx.send(Msg::Exited {
                        pod: pod_uid,
                        name,
                        id,
                        exit,
                        ran_for: Duration::ZERO,
                    });
                }
                Err(e) => {
                    tracing::error!(container = %id, "{e}");
                    if let Err(e) = runtime.remove(&meta).await {
                        tracing::warn!(container = %id, "removing: {e}");
                    }
                    let exit = ExitRecord::start_error(e.to_string());
                    let _ = tx.send(Msg::Exited {
                        pod: pod_uid,
                        name,
                        id,
                        exit,
                        ran_for: Duration::ZERO,
                    });
                }
            }
        });
    }

    fn spawn_monitor(&self, running: Running, stop_rx: mpsc::UnboundedReceiver<Duration>) {
        tokio::spawn(monitor(
            self.runtime.clone(),
            running,
            stop_rx,
            self.tx.clone(),
        ));
    }

    async fn write_status(&mut self, pod: &Pod) {
        let Some(state) = self
            .pods
            .get(pod.metadata.uid.as_deref().unwrap_or_default())
        else {
            return;
        };
        let status = status::pod_status(pod, state);
        if pod.status.as_ref() != Some(&status) {
            for (reason, warning, message) in status::events(pod.status.as_ref(), &status) {
                self.cluster.event(
                    &state.pod.namespace,
                    &state.pod.name,
                    warning,
                    reason,
                    &message,
                );
            }
            if let Err(e) = self.cluster.set_pod_status(pod, status).await {
                tracing::warn!(pod = %format!("{}/{}", state.pod.namespace, state.pod.name), "writing status: {e}");
            }
        }
    }
}

/// Starts the probes of container `c` for instance `id` (none without probes): one task
/// running them, one relaying their verdicts to the loop. They end when the returned sender
/// is dropped with the instance.
fn spawn_probes(
    runtime: &Runtime,
    cluster: &Arc<dyn Cluster>,
    loop_tx: &mpsc::UnboundedSender<Msg>,
    r: &PodRef,
    c: &Container,
    id: &str,
    pod_ip: Option<std::net::Ipv4Addr>,
) -> Option<watch::Sender<bool>> {
    if c.readiness_probe.is_none() && c.liveness_probe.is_none() && c.startup_probe.is_none() {
        return None;
    }
    let (done_tx, done_rx) = watch::channel(false);
    let target = probe::Target {
        ip: std::net::IpAddr::V4(pod_ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST)),
        container_dir: runtime.layout.container(id),
        exe: runtime.shim_exe.clone(),
    };
    let (verdict_tx, mut verdict_rx) = mpsc::unbounded_channel();
    let (cluster, ns, pod_name) = (cluster.clone(), r.namespace.clone(), r.name.clone());
    let event = move |message: String| cluster.event(&ns, &pod_name, true, "Unhealthy", &message);
    let container = c.clone();
    let state_file = target.container_dir.join("state.json");
    tokio::spawn(async move {
        // Probes start once the container runs.
        for _ in 0..6000 {
            if state_file.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probe::run(container, target, verdict_tx, event, done_rx).await;
    });
    let (tx, pod_uid, name, inst_id) = (
        loop_tx.clone(),
        r.uid.clone(),
        c.name.clone(),
        id.to_string(),
    );
    tokio::spawn(async move {
        while let Some(verdict) = verdict_rx.recv().await {
            let msg = Msg::Probe {
                pod: pod_uid.clone(),
                name: name.clone(),
                id: inst_id.clone(),
                verdict,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    Some(done_tx)
}

/// `env[].valueFrom` and `envFrom` sources of one pod, read from the cluster.
struct PodEnvSources<'a> {
    cluster: &'a dyn Cluster,
    pod: &'a Pod,
    pod_ip: Option<std::net::Ipv4Addr>,
}

impl process::EnvSources for PodEnvSources<'_> {
    fn config_map(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let cm = self
            .cluster
            .objects("ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["namespace"] == ns && c["metadata"]["name"] == name)?;
        Some(
            cm["data"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    fn secret(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let secret = self.cluster.secret(ns, name)?;
        Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
                .collect(),
        )
    }

    fn field(&self, path: &str) -> Option<String> {
        let m = &self.pod.metadata;
        let keyed = |prefix: &str, map: &Option<std::collections::BTreeMap<String, String>>| {
            let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
            Some(
                map.as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        match path {
            "metadata.name" => m.name.clone(),
            "metadata.namespace" => m.namespace.clone(),
            "metadata.uid" => m.uid.clone(),
            "spec.nodeName" => self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .or_else(|| Some(node_name())),
            "spec.serviceAccountName" => Some("default".into()),
            "status.hostIP" => Some(
                self.pod
                    .status
                    .as_ref()
                    .and_then(|s| s.host_ip.clone())
                    .unwrap_or_else(|| "127.0.0.1".into()),
            ),
            "status.podIP" => Some(match self.pod_ip {
                Some(ip) => ip.to_string(),
                None => self
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_else(|| "127.0.0.1".into()),
            }),
            _ => keyed("metadata.labels['", &m.labels)
                .or_else(|| keyed("metadata.annotations['", &m.annotations)),
        }
    }
}

/// The node's name (the host name), as pods and events report it.
pub fn node_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Waits for a running container to exit, or stops it on request; then removes it and
/// reports the exit.
async fn monitor(
    runtime: Runtime,
    mut running: Running,
    mut stop_rx: mpsc::UnboundedReceiver<Duration>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let started = Instant::now();
    let id = running.meta.id.clone();
    let exit = tokio::select! {
        exit = running.wait(&runtime) => exit,
        Some(grace) = stop_rx.recv() => stop(&runtime, &mut running, grace).await,
    };
    if let Err(e) = runtime.remove(&running.meta).await {
        tracing::warn!(container = %id, "removing: {e}");
    }
    let _ = tx.send(Msg::Exited {
        pod: running.meta.pod_uid.clone(),
        name: running.meta.container_name.clone(),
        id,
        exit,
        ran_for: started.elapsed(),
    });
}

/// SIGTERM, up to `grace` for the container to exit, then SIGKILL.
async fn stop(runtime: &Runtime, running: &mut Running, grace: Duration) -> ExitRecord {
    tracing::info!(container = %running.meta.id, grace = ?grace, "stopping container");
    if let Err(e) = running.signal(libc::SIGTERM) {
        tracing::warn!(container = %running.meta.id, "SIGTERM: {e}");
    }
    // `wait` is cancel-safe up to the point it returns; race it against the grace period.
    let waited = {
        let fut = running.wait(runtime);
        tokio::pin!(fut);
        tokio::select! {
            exit = &mut fut => Some(exit),
            _ = tokio::time::sleep(grace) => None,
        }
    };
    if let Some(exit) = waited {
        return exit;
    }
    if let Err(e) = running.signal(libc::SIGKILL) {
        tracing::warn!(container = %running.meta.id, "SIGKILL: {e}");
    }
    running.wait(runtime).await
}

/// Writes the pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, returning the bind
/// mounts for them. A `hostNetwork` pod sees the host's files, as on Kubernetes.
fn write_etc_files(
    pod_dir: &std::path::Path,
    host_network: bool,
    hostname: &str,
    pod_ip: Option<std::net::Ipv4Addr>,
    resolv: Option<String>,
) -> std::io::Result<Vec<(String, PathBuf)>> {
    let etc = pod_dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| "127.0.0.1\tlocalhost\n".into())
    } else {
        let own = pod_ip.map_or_else(|| "127.0.1.1".to_string(), |ip| ip.to_string());
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{hostname}\n"
        )
    };
    let host_name = if host_network {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().to_string())
            .unwrap_or_else(|_| hostname.into())
    } else {
        hostname.to_string()
    };
    let resolv =
        resolv.unwrap_or_else(|| std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let mut files = Vec::new();
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{host_name}\n")),
        ("resolv.conf", resolv),
    ] {
        let path = etc.join(name);
        std::fs::write(&path, content)?;
        files.push((format!("/etc/{name}"), path));
    }
    Ok(files)
}
