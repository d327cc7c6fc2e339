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
                cgroups_path: format!("/{}/{}", self.runtime.layout.cgroup_parent(), id),
                etc_files: ctx.etc.clone(),
                limits: oci::Limits::from_resources(c.resources.as_ref()),
                volume_mounts,
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
        match config {
            Ok(config) => Some(config),
            Err(message) => {
                cs.waiting = Some(("CreateContainerConfigError".into(), message));
                cs.not_before = None;
                None
            }
        }
    }
}
