//! Starting one container instance: its image (pulled in the background if needed), its
//! process and mounts, its records and OCI spec; then the instance's task takes over
//! (`instance.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::mpsc;

use super::sources::PodEnvSources;
use super::termination::TerminationMessage;
use super::{instance, process, report, volumes, Agent, Instance, PodRef};
use crate::image::{Image, ImageWanted, Readiness};
use crate::runtime::oci::{self, SpecInput};
use crate::runtime::sandbox::Namespaces;
use crate::runtime::ContainerMeta;

/// What starting any container of a pod needs: the pod, and its sandbox made ready.
pub(super) struct StartContext<'a> {
    pub(super) pod: &'a Pod,
    pub(super) r: &'a PodRef,
    /// The pod's namespaces.
    pub(super) ns: Namespaces,
    pub(super) hostname: String,
    /// `/etc` files to bind-mount: (path in the container, file on the host).
    pub(super) etc: Vec<(String, PathBuf)>,
    pub(super) pod_dir: PathBuf,
    /// The pod's volumes, by name.
    pub(super) volumes: HashMap<String, volumes::Prepared>,
}

impl Agent {
    /// Starts container `c` (whose spec hashes to `hash`) in the pod of `ctx`, or leaves it
    /// waiting with a reason (image not ready, bad configuration).
    pub(super) fn start_container(&mut self, ctx: &StartContext, c: &Container, hash: String) {
        let Some(image) = self.image_for(ctx, c) else {
            return;
        };
        let Some((proc, volume_mounts)) = self.container_config(ctx, c, &image) else {
            return;
        };
        let r = ctx.r;
        let state = self.pods.get_mut(&r.uid).expect("tracked");
        let pod_ip = state.pod_ip;
        let cs = state.containers.get_mut(&c.name).expect("inserted");
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
            image: c.image.clone().unwrap_or_default(),
            image_id: image.id.clone(),
            log_path: ctx
                .pod_dir
                .join(&c.name)
                .join(format!("{}.log", cs.restart_count)),
            log_rotation: self.runtime.log_rotation,
            libcontainer_root: self.runtime.layout.libcontainer_root(),
        };
        // The termination message file, bind-mounted at terminationMessagePath.
        let termination = TerminationMessage::of(c, &meta.log_path);
        let mut volume_mounts = volume_mounts;
        match termination.prepare() {
            Ok(mount) => volume_mounts.push(mount),
            Err(e) => tracing::warn!(container = %id, "termination message file: {e}"),
        }
        let spec = oci::spec(
            &SpecInput {
                process: &proc,
                hostname: &ctx.hostname,
                namespaces: &ctx.ns,
                cgroups_path: format!(
                    "/{}/{}",
                    crate::runtime::cgroup::pod_path(&self.runtime.layout.cgroup_parent(), &r.uid),
                    id
                ),
                etc_files: ctx.etc.clone(),
                // The pids limit is the pod's (its cgroup, made in prepare_sandbox).
                limits: oci::Limits::from_resources(c.resources.as_ref()),
                volume_mounts,
                oom_score_adj: oom_score_adj(ctx.pod, c),
            },
            std::path::Path::new("rootfs"),
        );
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let probes =
            instance::spawn_probes(&self.runtime, &self.cluster, &self.tx, r, c, &id, pod_ip);
        let life = instance::Lifecycle {
            hooks: instance::hooks(&self.runtime, &self.cluster, r, c, &id, pod_ip),
            termination: Some(termination),
        };
        cs.current = Some(Instance {
            id,
            spec_hash: hash,
            image_id: image.status_id(c.image.as_deref().unwrap_or_default()),
            started_at: None,
            stopping: false,
            stop: stop_tx,
            ready: c.readiness_probe.as_ref().map(|_| false),
            startup_passed: c.startup_probe.is_none(),
            _probes: probes,
            probes_attached: true,
        });
        instance::spawn(
            self.runtime.clone(),
            self.tx.clone(),
            meta,
            image.layers,
            spec,
            stop_rx,
            life,
        );
    }

    /// The container's image if it is ready; otherwise the container waits (a pull runs in the
    /// background) and the pull's events are recorded when its state changes.
    fn image_for(&mut self, ctx: &StartContext, c: &Container) -> Option<Image> {
        let r = ctx.r;
        let cs = self
            .pods
            .get_mut(&r.uid)
            .and_then(|p| p.containers.get_mut(&c.name))
            .expect("inserted");
        let image_ref = c.image.clone().unwrap_or_default();
        let wanted = ImageWanted {
            reference: image_ref.clone(),
            policy: c
                .image_pull_policy
                .clone()
                .unwrap_or_else(|| "IfNotPresent".into()),
            credentials: crate::image::auth::pod_credentials(&*self.cluster, ctx.pod),
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
        match self.images.ensure(&wanted) {
            Readiness::Ready(image) => {
                let message = if was_pulling {
                    format!("Successfully pulled image {image_ref:?}")
                } else {
                    format!("Container image {image_ref:?} already present on machine")
                };
                self.cluster
                    .event(&r.namespace, &r.name, false, "Pulled", &message);
                Some(*image)
            }
            Readiness::Waiting { reason, message } => {
                if cs.waiting.as_ref().map(|w| w.0.as_str()) != Some(reason) {
                    if reason != "ContainerCreating" {
                        tracing::warn!(pod = %r.key(), container = %c.name, "{reason}: {message}");
                    }
                    let (warning, event) = report::pull_event(reason);
                    self.cluster
                        .event(&r.namespace, &r.name, warning, event, &message);
                }
                cs.waiting = Some((reason.into(), message));
                cs.not_before = None;
                None
            }
        }
    }

    /// The container's process (argv, env, user…) and volume mounts; on a configuration error
    /// the container waits with `CreateContainerConfigError`.
    fn container_config(
        &mut self,
        ctx: &StartContext,
        c: &Container,
        image: &Image,
    ) -> Option<(oci::Process, Vec<volumes::Mount>)> {
        let r = ctx.r;
        let state = self.pods.get_mut(&r.uid).expect("tracked");
        let sources = PodEnvSources {
            cluster: &*self.cluster,
            pod: ctx.pod,
            pod_ip: state.pod_ip,
            node_name: &self.node_name,
            host_ip: self.host_ip,
        };
        let cs = state.containers.get_mut(&c.name).expect("inserted");
        let defaults = process::ImageDefaults::from_config(&image.config);
        let pod_security = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref());
        let config = process::process(
            c,
            pod_security,
            &defaults,
            &image.layers,
            &ctx.hostname,
            &sources,
        )
        .map_err(|e| {
            let message = e.to_string();
            if cs.waiting.as_ref().map(|w| &w.1) != Some(&message) {
                tracing::warn!(pod = %r.key(), container = %c.name, "{message}");
            }
            message
        })
        .and_then(|proc| {
            let env = process::pod_env(c, &sources).map_err(|e| e.to_string())?;
            let env = env.into_iter().collect();
            let mounts = volumes::mounts(c, &ctx.volumes, &env).map_err(|e| e.to_string())?;
            Ok((proc, mounts))
        });
        let (mut proc, mounts) = match config {
            Ok(config) => config,
            Err(message) => {
                cs.waiting = Some(("CreateContainerConfigError".into(), message));
                cs.not_before = None;
                return None;
            }
        };
        // A Localhost seccomp profile is read now: missing or invalid, the container is not
        // created (kubelet's CreateContainerError), and is tried again.
        if let Some(oci::Seccomp::Localhost(name)) = &proc.seccomp {
            let dir = self.runtime.layout.seccomp_profiles();
            let host = crate::runtime::seccomp::Host::this();
            match crate::runtime::seccomp::load(&dir, name, &proc.capabilities(), &host) {
                Ok(profile) => proc.seccomp = Some(oci::Seccomp::Profile(profile)),
                Err(e) => {
                    let message = e.to_string();
                    if cs.waiting.as_ref().map(|w| &w.1) != Some(&message) {
                        tracing::warn!(pod = %r.key(), container = %c.name, "{message}");
                    }
                    cs.waiting = Some(("CreateContainerError".into(), message));
                    cs.not_before = None;
                    return None;
                }
            }
        }
        Some((proc, mounts))
    }
}

/// The container's `oom_score_adj` from its pod's QoS class and its memory request (the limit
/// when no request is given, as the API server defaults it), against the node's memory.
fn oom_score_adj(pod: &Pod, c: &Container) -> i32 {
    static NODE_MEMORY: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let node_memory = *NODE_MEMORY.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
            .map_or(i64::MAX, |kb| kb * 1024)
    });
    let qos = pod
        .spec
        .as_ref()
        .map_or("BestEffort", super::status::qos_class);
    let resources = c.resources.as_ref();
    let memory = |m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        m.and_then(|m| m.get("memory"))
            .and_then(|q| oci::parse_quantity(&q.0, 1.0))
    };
    let request = memory(resources.and_then(|r| r.requests.as_ref()))
        .or_else(|| memory(resources.and_then(|r| r.limits.as_ref())));
    let adj = oci::oom_score_adj(qos, request, node_memory);
    // Below its own value only with CAP_SYS_RESOURCE (a daemon in a container may lack it):
    // then as low as it may go, rather than a container that cannot start.
    static FLOOR: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();
    let floor = *FLOOR.get_or_init(|| {
        let floor = oom_floor();
        if let Some(f) = floor {
            tracing::warn!("without CAP_SYS_RESOURCE, containers' oom_score_adj cannot go below the daemon's {f} (Guaranteed pods get {f}, not -997)");
        }
        floor
    });
    floor.map_or(adj, |f| adj.max(f))
}

/// The lowest `oom_score_adj` this process may give: `None` when it holds CAP_SYS_RESOURCE
/// (any), else its own value.
fn oom_floor() -> Option<i32> {
    if oci::held_capabilities()
        .iter()
        .any(|c| c == "CAP_SYS_RESOURCE")
    {
        return None;
    }
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()?
        .trim()
        .parse()
        .ok()
}
