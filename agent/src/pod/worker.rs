//! The worker loop: what wakes it, the messages container tasks send it, and what it does per
//! pod on each pass (start, restart, replace, stop).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use tokio::sync::watch;

use super::init::{is_sidecar, InitStep};
use super::restart::restart_wanted;
use super::{eviction, instance, probe, spec_hash, start_time, Agent, PodRef, PodState};
use crate::runtime::ExitRecord;

/// How often to look again at pods waiting for something outside our events (an image).
const RETRY: Duration = Duration::from_secs(1);
/// The longest the loop sleeps without a reason to wake.
const IDLE: Duration = Duration::from_secs(30);
/// The grace period when a pod does not say (and for containers it no longer declares).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Messages from container tasks to the loop.
#[derive(Debug)]
pub(super) enum Msg {
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
    /// The pod (by uid) is over a local storage limit: kubelet's message.
    Evict { pod: String, message: String },
}

/// How long an evicted pod's containers get before SIGKILL (kubelet evicts for local
/// storage with no grace period, and its floor is 2 s).
const EVICTION_GRACE: Duration = Duration::from_secs(2);

/// The pod's `terminationGracePeriodSeconds` (30 s when unset).
fn grace_period(spec: &PodSpec) -> Duration {
    Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64)
}

impl Agent {
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
        let mut wake = IDLE;
        if self.storage_limited {
            wake = wake.min(eviction::INTERVAL);
        }
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
                        cs.started_once |= inst.started();
                        cs.waiting = None;
                    }
                }
            }
            Msg::Probe {
                pod,
                name,
                id,
                verdict,
            } => self.handle_probe(&pod, &name, &id, verdict),
            Msg::Evict { pod, message } => {
                let Some(state) = self.pods.get_mut(&pod) else {
                    return;
                };
                if state.evicted.is_none() {
                    tracing::warn!(pod = %state.pod.key(), "evicting: {message}");
                    self.cluster.event(
                        &state.pod.namespace,
                        &state.pod.name,
                        true,
                        eviction::REASON,
                        &message,
                    );
                    state.evicted = Some(message);
                }
            }
            Msg::Exited {
                pod,
                name,
                id,
                exit,
                ran_for,
            } => {
                let Some(state) = self.pods.get_mut(&pod) else {
                    return;
                };
                let pod_name = state.pod.name.clone();
                let Some(cs) = state.containers.get_mut(&name) else {
                    return;
                };
                let Some(inst) = cs.current.take_if(|i| i.id == id) else {
                    return;
                };
                tracing::info!(container = %id, code = exit.exit_code, reason = %exit.reason, "container exited");
                cs.record_exit(exit, inst.id, inst.image_id, ran_for, &name, &pod_name);
            }
        }
    }

    fn handle_probe(&mut self, pod: &str, name: &str, id: &str, verdict: probe::Verdict) {
        let Some(state) = self.pods.get_mut(pod) else {
            return;
        };
        let Some(cs) = state.containers.get_mut(name) else {
            return;
        };
        let Some(inst) = cs.current.as_mut().filter(|i| i.id == id) else {
            return;
        };
        match verdict {
            probe::Verdict::Ready(ready) => inst.ready = Some(ready),
            probe::Verdict::Started => {
                inst.startup_passed = true;
                cs.started_once |= inst.started();
            }
            probe::Verdict::Unhealthy => {
                if !inst.stopping {
                    inst.stop(Duration::from_secs(2));
                    self.cluster.event(
                        &state.pod.namespace,
                        &state.pod.name,
                        false,
                        "Killing",
                        &format!(
                            "Container {name} failed a liveness or startup probe, will be restarted"
                        ),
                    );
                }
            }
        }
    }

    /// Compares declared pods with what runs, and acts.
    async fn sync(&mut self) {
        let pods = self.cluster.pods();
        let mut seen = HashSet::new();
        for pod in &pods {
            let r = PodRef::of(pod);
            seen.insert(r.uid.clone());
            if pod.metadata.deletion_timestamp.is_some() {
                self.sync_terminating(pod, &r).await;
            } else {
                self.sync_pod(pod, &r).await;
            }
        }
        self.sync_orphans(&seen).await;
        self.check_storage(&pods);
    }

    /// Every [`eviction::INTERVAL`], measures the local storage of pods with a limit, off
    /// the loop; a pod over one comes back as [`Msg::Evict`].
    fn check_storage(&mut self, pods: &[Pod]) {
        use std::sync::atomic::Ordering;
        self.storage_limited = pods
            .iter()
            .any(|p| p.spec.as_ref().is_some_and(eviction::has_limits));
        if self
            .storage_checked
            .is_some_and(|t| t.elapsed() < eviction::INTERVAL)
            || self.storage_busy.load(Ordering::Acquire)
        {
            return;
        }
        self.storage_checked = Some(Instant::now());
        let layout = &self.runtime.layout;
        let subjects: Vec<eviction::Subject> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|pod| {
                let uid = pod.metadata.uid.as_deref()?;
                let state = self.pods.get(uid).filter(|s| s.evicted.is_none())?;
                let spec = pod.spec.as_ref().filter(|s| eviction::has_limits(s))?;
                let dir = layout.pods().join(state.pod.dir_name());
                Some(eviction::subject(uid, spec, &dir, |name| {
                    let inst = state.containers.get(name)?.current.as_ref()?;
                    Some(layout.container(&inst.id).join("upper"))
                }))
            })
            .collect();
        if subjects.is_empty() {
            return;
        }
        self.storage_busy.store(true, Ordering::Release);
        let (tx, busy) = (self.tx.clone(), self.storage_busy.clone());
        tokio::task::spawn_blocking(move || {
            for s in subjects {
                if let Some(message) = eviction::verdict(&s, eviction::usage) {
                    let _ = tx.send(Msg::Evict {
                        pod: s.uid,
                        message,
                    });
                }
            }
            busy.store(false, Ordering::Release);
        });
    }

    /// Pods gone from the cluster without a graceful deletion: stops what is left of them.
    async fn sync_orphans(&mut self, seen: &HashSet<String>) {
        let orphans: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !seen.contains(*u))
            .cloned()
            .collect();
        for uid in orphans {
            let state = self.pods.get_mut(&uid).expect("listed");
            if !state.stop_all(DEFAULT_GRACE) {
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
            self.finish_deletion(pod, r).await;
            return;
        };
        // Sidecars stop after the other containers, one at a time, last declared first.
        let spec = pod.spec.clone().unwrap_or_default();
        let sidecars: HashSet<&str> = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
            .map(|c| c.name.as_str())
            .collect();
        let mut busy = false;
        let mut stopping = Vec::new();
        for (name, cs) in state.containers.iter_mut() {
            cs.not_before = None;
            cs.waiting = None;
            if cs.current.is_some() {
                busy = true;
                if !sidecars.contains(name.as_str()) {
                    stopping.push(name.clone());
                }
            }
        }
        if stopping.is_empty() {
            stopping.extend(state.sidecar_to_stop(&spec).map(|c| c.name.clone()));
        }
        for name in stopping {
            let inst = state
                .containers
                .get_mut(&name)
                .and_then(|cs| cs.current.as_mut())
                .expect("running");
            if !inst.stopping {
                inst.stop(grace);
                self.cluster.event(
                    &r.namespace,
                    &r.name,
                    false,
                    "Killing",
                    &format!("Stopping container {name}"),
                );
            }
        }
        if busy || state.finished {
            return;
        }
        state.finished = true;
        let dir = self.pod_dir(r);
        self.remove_sandbox(&r.uid, dir).await;
        tracing::info!(pod = %r.key(), "pod stopped and removed");
        self.pods.remove(&r.uid);
        self.finish_deletion(pod, r).await;
    }

    async fn finish_deletion(&self, pod: &Pod, r: &PodRef) {
        if let Err(e) = self.cluster.pod_gone(pod).await {
            tracing::warn!(pod = %r.key(), "finishing the deletion: {e}");
        }
    }

    async fn sync_pod(&mut self, pod: &Pod, r: &PodRef) {
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        // An evicted pod: its containers are stopped and none starts again (also after a
        // restart of the daemon, from the stored status).
        let evicted = self
            .pods
            .get(&r.uid)
            .and_then(|s| s.evicted.clone())
            .or_else(|| eviction::stored(pod));
        if let Some(message) = evicted {
            if let Some(state) = self.pods.get_mut(&r.uid) {
                state.evicted = Some(message);
                for cs in state.containers.values_mut() {
                    cs.not_before = None;
                    cs.waiting = None;
                }
                state.stop_all(EVICTION_GRACE);
                if self.write_status(pod).await {
                    self.release_finished(r).await;
                }
            }
            return;
        }
        if !self.pods.contains_key(&r.uid) && !self.claims_ready(pod, r, spec).await {
            return;
        }
        let host_network = spec.host_network.unwrap_or(false);
        self.track(pod, r, host_network);
        if let Some(state) = self.pods.get_mut(&r.uid) {
            state.recall_init(pod);
        }
        // A change of the pod's network mode means a new sandbox: stop everything first.
        if !self
            .renew_sandbox_if_mode_changed(r, host_network, grace_period(spec))
            .await
        {
            return;
        }
        let to_start = self.containers_to_start(pod, r, spec, host_network);
        if to_start.is_empty() {
            if self.write_status(pod).await {
                self.release_finished(r).await;
            }
            return;
        }
        let Some(ctx) = self.prepare_sandbox(pod, r, spec, &to_start).await else {
            self.write_status(pod).await;
            return;
        };
        for (c, hash) in to_start {
            self.start_container(&ctx, &c, hash);
        }
        self.write_status(pod).await;
    }

    /// Makes sure the loop tracks the pod, and knows its address. (`Scheduled` is the
    /// scheduler's event, recorded when it binds the pod.)
    fn track(&mut self, pod: &Pod, r: &PodRef, host_network: bool) {
        let start_time = start_time(Some(pod));
        let state = self
            .pods
            .entry(r.uid.clone())
            .or_insert_with(|| PodState::new(r.clone(), host_network, start_time));
        if !host_network && state.pod_ip.is_none() {
            if let Some(n) = &self.network {
                state.pod_ip = n.ipam.lookup(&r.uid);
            }
        }
    }

    /// Decides which containers of the pod start now, with their spec hashes: stops those no
    /// longer declared, replaces those whose spec changed, attaches probes to re-adopted ones,
    /// and restarts exited ones under the restart policy once their back-off has passed.
    fn containers_to_start(
        &mut self,
        pod: &Pod,
        r: &PodRef,
        spec: &PodSpec,
        host_network: bool,
    ) -> Vec<(Container, String)> {
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let stored_restarts = stored_restarts(pod);
        let state = self.pods.get_mut(&r.uid).expect("tracked");
        let now = Instant::now();
        let names: Vec<&String> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| &c.name)
            .collect();
        // Containers no longer in the spec.
        for (name, cs) in state.containers.iter_mut() {
            if !names.contains(&name) {
                if let Some(inst) = cs.current.as_mut() {
                    inst.stop(DEFAULT_GRACE);
                }
            }
        }
        let (mut to_start, initialized) =
            self.init_to_start(r, spec, &policy, host_network, &stored_restarts);
        if !initialized {
            return to_start;
        }
        let state = self.pods.get_mut(&r.uid).expect("tracked");
        for c in &spec.containers {
            let hash = spec_hash(c, host_network);
            let pod_ip = state.pod_ip;
            let cs = state.containers.entry(c.name.clone()).or_default();
            if cs.restart_count == 0 {
                cs.restart_count = stored_restarts.get(&c.name).copied().unwrap_or(0);
            }
            if let Some(inst) = cs.current.as_mut() {
                reattach_probes(
                    &self.runtime,
                    &self.cluster,
                    &self.tx,
                    r,
                    c,
                    &hash,
                    inst,
                    pod_ip,
                );
                if inst.spec_hash != hash && !inst.stopping {
                    tracing::info!(container = %inst.id, "the container's spec changed: replacing it");
                    inst.stop(grace_period(spec));
                    cs.replace = true;
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
        to_start
    }
}

/// The restart counts the stored status gives, by container name (init and app containers).
fn stored_restarts(pod: &Pod) -> HashMap<String, u32> {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.init_container_statuses.as_ref()))
        .flatten()
        .map(|c| (c.name.clone(), c.restart_count.max(0) as u32))
        .collect()
}

/// A re-adopted instance (after a daemon restart) gets its probes again; it keeps serving
/// until a readiness probe says otherwise.
#[allow(clippy::too_many_arguments)]
fn reattach_probes(
    runtime: &crate::runtime::handle::Runtime,
    cluster: &std::sync::Arc<dyn crate::Cluster>,
    tx: &tokio::sync::mpsc::UnboundedSender<Msg>,
    r: &PodRef,
    c: &Container,
    hash: &str,
    inst: &mut super::Instance,
    pod_ip: Option<std::net::Ipv4Addr>,
) {
    if inst.probes_attached || inst.spec_hash != hash {
        return;
    }
    inst.probes_attached = true;
    inst._probes = instance::spawn_probes(runtime, cluster, tx, r, c, &inst.id, pod_ip);
    if c.readiness_probe.is_some() {
        inst.ready = Some(true);
    }
}

impl Agent {
    /// The init containers (and sidecars) to start now, and whether the pod is initialized
    /// (the app containers' turn). While it initializes: the init container whose turn it is
    /// (none while one runs, waits for its back-off, or failed for good). Sidecars whose turn
    /// has passed are restarted when they exit, whatever the pod's policy — until the pod
    /// ends (its app containers finished, or an init container failed for good): then they
    /// are stopped, one at a time, last declared first.
    fn init_to_start(
        &mut self,
        r: &PodRef,
        spec: &PodSpec,
        policy: &str,
        host_network: bool,
        stored_restarts: &HashMap<String, u32>,
    ) -> (Vec<(Container, String)>, bool) {
        let state = self.pods.get_mut(&r.uid).expect("tracked");
        let pod_ip = state.pod_ip;
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        for c in inits {
            let cs = state.containers.entry(c.name.clone()).or_default();
            if cs.restart_count == 0 {
                cs.restart_count = stored_restarts.get(&c.name).copied().unwrap_or(0);
            }
            if cs.current.is_none()
                && !is_sidecar(c)
                && cs.last_exit.as_ref().is_some_and(|e| e.0.exit_code == 0)
            {
                cs.completed_init();
            }
            if let Some(inst) = cs.current.as_mut() {
                let hash = spec_hash(c, host_network);
                reattach_probes(
                    &self.runtime,
                    &self.cluster,
                    &self.tx,
                    r,
                    c,
                    &hash,
                    inst,
                    pod_ip,
                );
            }
        }
        let plan = state.init_plan(spec, policy);
        let initialized = plan.step == InitStep::Done;
        if initialized {
            state.initialized = true;
        }
        if state.ended(spec, policy) {
            // Sidecars are not restarted any more; they stop, last declared first.
            for c in inits.iter().filter(|c| is_sidecar(c)) {
                let cs = state.containers.get_mut(&c.name).expect("inserted");
                cs.waiting = None;
                cs.not_before = None;
            }
            if let Some(c) = state.sidecar_to_stop(spec) {
                let inst = state
                    .containers
                    .get_mut(&c.name)
                    .and_then(|cs| cs.current.as_mut())
                    .expect("running");
                if !inst.stopping {
                    tracing::info!(container = %inst.id, "the pod has ended: stopping its sidecar");
                    inst.stop(grace_period(spec));
                    self.cluster.event(
                        &r.namespace,
                        &r.name,
                        false,
                        "Killing",
                        &format!("Stopping container {}", c.name),
                    );
                }
            }
            return (Vec::new(), initialized);
        }
        let now = Instant::now();
        let mut indexes = plan.restart_sidecars;
        if let InitStep::Start(i) = plan.step {
            indexes.push(i);
        }
        let to_start = indexes
            .into_iter()
            .map(|i| &inits[i])
            .filter(|c| {
                let cs = state.containers.get(&c.name).expect("inserted");
                cs.not_before.is_none_or(|t| t <= now)
            })
            .map(|c| (c.clone(), spec_hash(c, host_network)))
            .collect();
        (to_start, initialized)
    }
}
