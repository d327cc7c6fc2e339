//! Re-adoption: the containers an earlier daemon left. Running ones are watched again (their
//! probes are attached at the first sync); those that exited while skiff was down, or whose
//! shim ended without a record, are removed and their exit recorded, as if seen live.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::{instance, start_time, Agent, ContainerState, Instance, PodRef, PodState};
use crate::runtime::handle::{Found, Running};
use crate::runtime::{ContainerMeta, ExitRecord};

/// What became of a container found on disk.
enum Outcome {
    Running(Box<Running>),
    Exited(ExitRecord),
}

impl Agent {
    /// Re-adopts every container the runtime finds.
    pub(super) async fn adopt(&mut self) {
        let pods: HashMap<String, Pod> = self
            .cluster
            .pods()
            .into_iter()
            .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
            .collect();
        for found in self.runtime.find_all() {
            let (meta, outcome) = match found {
                Found::Running(running) => (running.meta.clone(), Outcome::Running(running)),
                Found::Exited(meta, exit) => (meta, Outcome::Exited(exit)),
                Found::Lost(meta) => {
                    let exit = ExitRecord::unknown(
                        "the container's shim ended while skiff was down, without recording an exit",
                        None,
                    );
                    (meta, Outcome::Exited(exit))
                }
            };
            self.adopt_one(meta, outcome, &pods).await;
        }
    }

    async fn adopt_one(
        &mut self,
        meta: ContainerMeta,
        outcome: Outcome,
        pods: &HashMap<String, Pod>,
    ) {
        match &outcome {
            Outcome::Running(running) => {
                tracing::info!(container = %meta.id, pod = %format!("{}/{}", meta.pod_namespace, meta.pod_name), pid = running.state.init_pid, "re-adopted a running container");
            }
            Outcome::Exited(exit) => {
                tracing::info!(container = %meta.id, code = exit.exit_code, "found a container that exited while skiff was down");
                if let Err(e) = self.runtime.remove(&meta).await {
                    tracing::warn!(container = %meta.id, "removing: {e}");
                }
            }
        }
        let pod = pods.get(&meta.pod_uid);
        // The imageID its status reports (`meta.image_id` is the image's id, which image
        // garbage collection reads).
        let image_id = match self.images.store().resolve(&meta.image_id) {
            Ok(Some(image)) => image.status_id(&meta.image),
            _ => meta.image_id.clone(),
        };
        let cs = self.adopted_state(&meta, pod);
        cs.restart_count = meta.restart_count;
        match outcome {
            Outcome::Running(running) => {
                let (stop_tx, stop_rx) = mpsc::unbounded_channel();
                cs.started_once = true;
                cs.current = Some(Instance {
                    id: meta.id.clone(),
                    spec_hash: meta.spec_hash.clone(),
                    image_id,
                    started_at: Some(running.state.started_at.clone()),
                    stopping: false,
                    stop: stop_tx,
                    ready: None,
                    startup_passed: true,
                    _probes: None,
                    probes_attached: false,
                });
                // Its preStop hook runs when it is stopped, as for the instances this daemon
                // started.
                let life = pod
                    .map(|p| adopted_lifecycle(&self.runtime, &self.cluster, p, &meta))
                    .unwrap_or_default();
                tokio::spawn(instance::monitor(
                    self.runtime.clone(),
                    *running,
                    stop_rx,
                    self.tx.clone(),
                    life,
                ));
            }
            Outcome::Exited(exit) => cs.record_exit(
                exit,
                meta.id.clone(),
                image_id,
                Duration::ZERO,
                &meta.container_name,
                &meta.pod_name,
            ),
        }
    }

    /// The state of the adopted container's slot, tracking its pod if needed.
    fn adopted_state(&mut self, meta: &ContainerMeta, pod: Option<&Pod>) -> &mut ContainerState {
        let host_network = pod.is_some_and(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false)
        });
        let start_time = start_time(pod);
        let state = self.pods.entry(meta.pod_uid.clone()).or_insert_with(|| {
            let r = PodRef {
                uid: meta.pod_uid.clone(),
                namespace: meta.pod_namespace.clone(),
                name: meta.pod_name.clone(),
            };
            PodState::new(r, host_network, start_time)
        });
        state
            .containers
            .entry(meta.container_name.clone())
            .or_default()
    }
}

/// The hooks and termination message of an adopted container, from its pod's spec and
/// address.
fn adopted_lifecycle(
    runtime: &crate::runtime::handle::Runtime,
    cluster: &std::sync::Arc<dyn crate::Cluster>,
    pod: &Pod,
    meta: &ContainerMeta,
) -> instance::Lifecycle {
    let Some(spec) = pod.spec.as_ref() else {
        return instance::Lifecycle::default();
    };
    let Some(c) = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name == meta.container_name)
    else {
        return instance::Lifecycle::default();
    };
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .filter(|_| !spec.host_network.unwrap_or(false));
    instance::Lifecycle {
        hooks: instance::hooks(runtime, cluster, &PodRef::of(pod), c, &meta.id, pod_ip),
        termination: Some(super::termination::TerminationMessage::of(
            c,
            &meta.log_path,
        )),
    }
}
