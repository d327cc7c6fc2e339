//! The task of one container instance: it starts the shim, then waits for the exit or a stop
//! request (SIGTERM, grace period, SIGKILL), removes what the container left, and reports to
//! the loop. Also the instance's probes, whose verdicts go to the loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;
use tokio::sync::{mpsc, watch};

use super::hook::{self, Hooks};
use super::termination::TerminationMessage;
use super::worker::Msg;
use super::{probe, PodRef};
use crate::runtime::handle::{Running, Runtime, Started};
use crate::runtime::{ContainerMeta, ExitRecord};
use crate::Cluster;

/// Starts the instance `meta` (its shim, over `layers`, with `spec`) in a task of its own,
/// which then watches it until it exits or `stop_rx` asks it to stop.
pub(super) fn spawn(
    runtime: Runtime,
    tx: mpsc::UnboundedSender<Msg>,
    meta: ContainerMeta,
    layers: Vec<std::path::PathBuf>,
    spec: serde_json::Value,
    mut stop_rx: mpsc::UnboundedReceiver<Duration>,
    life: Lifecycle,
) {
    let (pod_uid, name, id) = (
        meta.pod_uid.clone(),
        meta.container_name.clone(),
        meta.id.clone(),
    );
    tokio::spawn(async move {
        let exit = match runtime.create(meta.clone(), layers, spec).await {
            Ok(Started::Running(running)) => {
                let mut running = *running;
                // `postStart`: the container is not Running until it returns.
                if let Some(h) = &life.hooks {
                    match post_start(&runtime, &mut running, &mut stop_rx, h).await {
                        PostStart::Done => {}
                        PostStart::Ended(exit) => {
                            let term = life.termination.as_ref();
                            finish(&runtime, &running, exit, Duration::ZERO, &tx, term).await;
                            return;
                        }
                    }
                }
                let _ = tx.send(Msg::Running {
                    pod: pod_uid,
                    name,
                    id,
                    started_at: running.state.started_at.clone(),
                });
                monitor(runtime, running, stop_rx, tx, life).await;
                return;
            }
            Ok(Started::Exited(exit)) => Ok(exit),
            Err(e) => {
                tracing::error!(container = %id, "{e}");
                Err(e.to_string())
            }
        };
        if let Err(e) = runtime.remove(&meta).await {
            tracing::warn!(container = %id, "removing: {e}");
        }
        // A start error's record is made after the removal, so that it ends then.
        let mut exit = exit.unwrap_or_else(ExitRecord::start_error);
        // A container that exited before it was seen running has its message too.
        if let Some(message) = life.termination.and_then(|t| t.read(exit.exit_code)) {
            exit.message = Some(message);
        }
        let _ = tx.send(Msg::Exited {
            pod: pod_uid,
            name,
            id,
            exit,
            ran_for: Duration::ZERO,
        });
    });
}

/// Starts the probes of container `c` for instance `id` (none without probes): one task
/// running them, one relaying their verdicts to the loop. They end when the returned sender
/// is dropped with the instance.
pub(super) fn spawn_probes(
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
    let target = probe::Target::of(runtime, id, pod_ip);
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

/// What an instance's task does besides watching it: its lifecycle hooks and its termination
/// message.
#[derive(Debug, Default)]
pub(super) struct Lifecycle {
    pub(super) hooks: Option<Hooks>,
    pub(super) termination: Option<TerminationMessage>,
}

/// How a `postStart` hook ended.
enum PostStart {
    /// It succeeded: the container runs.
    Done,
    /// The container ended (it exited, was stopped, or was killed because the hook failed).
    Ended(ExitRecord),
}

/// Runs the `postStart` hook while watching the container: it may exit, or be asked to stop
/// (a hook may hang; a deletion must not). A failed hook kills the container, whose exit then
/// says why.
async fn post_start(
    runtime: &Runtime,
    running: &mut Running,
    stop_rx: &mut mpsc::UnboundedReceiver<Duration>,
    hooks: &Hooks,
) -> PostStart {
    let result = {
        let hook = hooks.post_start();
        tokio::pin!(hook);
        tokio::select! {
            r = &mut hook => r,
            exit = running.wait(runtime) => return PostStart::Ended(exit),
            Some(grace) = stop_rx.recv() => {
                return PostStart::Ended(stop(runtime, running, grace, None).await)
            }
        }
    };
    let Err(message) = result else {
        return PostStart::Done;
    };
    tracing::info!(container = %running.meta.id, "postStart hook failed: {message}");
    if let Err(e) = running.signal(libc::SIGKILL) {
        tracing::warn!(container = %running.meta.id, "SIGKILL: {e}");
    }
    let mut exit = running.wait(runtime).await;
    exit.message = Some(format!("PostStartHookError: {message}"));
    PostStart::Ended(exit)
}

/// Waits for a running container to exit, or stops it on request (its `preStop` hook first);
/// then removes it and reports the exit.
pub(super) async fn monitor(
    runtime: Runtime,
    mut running: Running,
    mut stop_rx: mpsc::UnboundedReceiver<Duration>,
    tx: mpsc::UnboundedSender<Msg>,
    life: Lifecycle,
) {
    let started = Instant::now();
    let hooks = life.hooks.as_ref();
    let exit = tokio::select! {
        exit = running.wait(&runtime) => exit,
        Some(grace) = stop_rx.recv() => stop(&runtime, &mut running, grace, hooks).await,
    };
    let term = life.termination.as_ref();
    finish(&runtime, &running, exit, started.elapsed(), &tx, term).await;
}

/// Removes what the ended container left and reports its exit (with its termination message)
/// to the loop.
async fn finish(
    runtime: &Runtime,
    running: &Running,
    mut exit: ExitRecord,
    ran_for: Duration,
    tx: &mpsc::UnboundedSender<Msg>,
    termination: Option<&TerminationMessage>,
) {
    if let Some(message) = termination.and_then(|t| t.read(exit.exit_code)) {
        exit.message = Some(message);
    }
    let id = running.meta.id.clone();
    if let Err(e) = runtime.remove(&running.meta).await {
        tracing::warn!(container = %id, "removing: {e}");
    }
    let _ = tx.send(Msg::Exited {
        pod: running.meta.pod_uid.clone(),
        name: running.meta.container_name.clone(),
        id,
        exit,
        ran_for,
    });
}

/// The `preStop` hook (within `grace`, not with a zero grace period, as kubelet), SIGTERM, up
/// to the rest of `grace` for the container to exit, then SIGKILL.
async fn stop(
    runtime: &Runtime,
    running: &mut Running,
    mut grace: Duration,
    hooks: Option<&Hooks>,
) -> ExitRecord {
    tracing::info!(container = %running.meta.id, grace = ?grace, "stopping container");
    if let Some(h) = hooks.filter(|h| h.has_pre_stop() && !grace.is_zero()) {
        let began = Instant::now();
        let exited = {
            let hook = h.pre_stop(grace);
            tokio::pin!(hook);
            tokio::select! {
                _ = &mut hook => None,
                exit = running.wait(runtime) => Some(exit),
            }
        };
        if let Some(exit) = exited {
            return exit;
        }
        grace = hook::grace_after_pre_stop(grace, began.elapsed());
    }
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

/// The lifecycle hooks of container `c` for instance `id` (none without `lifecycle`), their
/// failures recorded as events on the pod.
pub(super) fn hooks(
    runtime: &Runtime,
    cluster: &Arc<dyn Cluster>,
    r: &PodRef,
    c: &Container,
    id: &str,
    pod_ip: Option<std::net::Ipv4Addr>,
) -> Option<Hooks> {
    let (cluster, ns, name) = (cluster.clone(), r.namespace.clone(), r.name.clone());
    let event: hook::EventSink = Arc::new(move |warning, reason, message| {
        cluster.event(&ns, &name, warning, reason, &message)
    });
    Hooks::of(c, probe::Target::of(runtime, id, pod_ip), r.key(), event)
}
