//! A pod's sandbox: its namespaces (`runtime::sandbox`), its address on the bridge, its
//! `/etc` files and its volumes — made ready before its containers start, and removed when
//! the pod goes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::sources::PodEnvSources;
use super::start::StartContext;
use super::{dns, volumes, Agent, PodRef};
use crate::runtime::sandbox::{self, Namespaces};

impl Agent {
    /// `<data-dir>/pods/<ns>_<name>_<uid>`.
    pub(super) fn pod_dir(&self, pod: &PodRef) -> PathBuf {
        self.runtime.layout.pods().join(pod.dir_name())
    }

    /// Removes a pod's sandbox (cgroup, namespaces, /etc files, logs) and frees its address.
    pub(super) async fn remove_sandbox(&self, uid: &str, dir: PathBuf) {
        if let Err(e) = self.give_back(uid, dir, sandbox::remove).await {
            tracing::warn!("removing a pod sandbox: {e}");
        }
    }

    /// Off the loop: removes the pod's cgroup, `remove`s what its directory holds, frees its
    /// address and veth.
    async fn give_back(
        &self,
        uid: &str,
        dir: PathBuf,
        remove: fn(&Path) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let network = self.network.clone();
        let uid = uid.to_string();
        let parent = self.runtime.layout.cgroup_parent();
        tokio::task::spawn_blocking(move || {
            crate::runtime::cgroup::remove_pod(&parent, &uid);
            let r = remove(&dir);
            if let Some(n) = network {
                n.detach(&uid);
            }
            r
        })
        .await
        .expect("no panic")
    }

    /// Releases what a pod that has finished for good (Succeeded or Failed, evicted included)
    /// holds once nothing of it runs, as kubelet tears down a terminal pod's sandbox: its
    /// namespaces, its address and veth, its cgroup, its volumes' directories (its emptyDirs'
    /// disk). Its logs stay for `kubectl logs`, its status for `kubectl get`, until it is
    /// deleted. Done once per pod and daemon life (again after a restart: every step is a
    /// no-op when done).
    pub(super) async fn release_finished(&mut self, r: &PodRef) {
        let Some(state) = self.pods.get_mut(&r.uid) else {
            return;
        };
        if state.released || state.containers.values().any(|cs| cs.current.is_some()) {
            return;
        }
        state.released = true;
        match self
            .give_back(&r.uid, self.pod_dir(r), sandbox::release)
            .await
        {
            Ok(()) => {
                tracing::info!(pod = %r.key(), "pod finished: its sandbox and address released")
            }
            Err(e) => tracing::warn!(pod = %r.key(), "releasing a finished pod's sandbox: {e}"),
        }
    }

    /// When the pod's network mode changed, stops its containers (with `grace`) and, once none
    /// runs, removes its namespaces and address so that the next start makes new ones. True
    /// when the pod may go on starting containers.
    pub(super) async fn renew_sandbox_if_mode_changed(
        &mut self,
        r: &PodRef,
        host_network: bool,
        grace: Duration,
    ) -> bool {
        let state = self.pods.get_mut(&r.uid).expect("tracked");
        if state.host_network == host_network {
            return true;
        }
        if state.stop_all(grace) {
            return false;
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
        true
    }

    /// Makes the pod's sandbox ready for `to_start`: namespaces and address, `/etc` files,
    /// volumes. On failure the containers wait with the reason, and `None` is returned.
    pub(super) async fn prepare_sandbox<'a>(
        &mut self,
        pod: &'a Pod,
        r: &'a PodRef,
        spec: &PodSpec,
        to_start: &[(Container, String)],
    ) -> Option<StartContext<'a>> {
        let host_network = spec.host_network.unwrap_or(false);
        let short = spec.hostname.clone().unwrap_or_else(|| r.name.clone());
        let fqdn = spec
            .subdomain
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|sub| {
                let domain = crate::network::dns::DOMAIN;
                format!("{short}.{sub}.{}.svc.{domain}", r.namespace)
            });
        let hostname = match dns::kernel_hostname(spec, &short, fqdn.as_deref()) {
            Ok(h) => h,
            Err(message) => {
                self.set_waiting(r, to_start, "CreateContainerConfigError", &message, true);
                return None;
            }
        };
        let pod_dir = self.pod_dir(r);
        let ns = match self
            .ensure_namespaces(r, &pod_dir, host_network, &hostname)
            .await
        {
            Ok(ns) if spec.share_process_namespace == Some(true) => {
                // One PID namespace for every container of the pod, held by its holder.
                match crate::runtime::pidns::ensure(&self.runtime.shim_exe, &pod_dir).await {
                    Ok(pid) => Namespaces {
                        pid: Some(pid),
                        ..ns
                    },
                    Err(e) => {
                        tracing::error!(pod = %r.key(), "the pod's PID namespace: {e}");
                        let message = format!("pod sandbox: shared PID namespace: {e}");
                        self.set_waiting(r, to_start, "CreateContainerError", &message, false);
                        return None;
                    }
                }
            }
            Ok(ns) => ns,
            Err(e) => {
                tracing::error!(pod = %r.key(), "creating the pod sandbox: {e}");
                let message = format!("pod sandbox: {e}");
                self.set_waiting(r, to_start, "CreateContainerError", &message, false);
                return None;
            }
        };
        // The pod's cgroup with its pids limit, before any of its containers' cgroups.
        let parent = self.runtime.layout.cgroup_parent();
        if let Err(e) = crate::runtime::cgroup::ensure_pod(&parent, &r.uid, self.runtime.pids_limit)
        {
            tracing::error!(pod = %r.key(), "the pod's cgroup: {e}");
            let message = format!("pod sandbox: cgroup: {e}");
            self.set_waiting(r, to_start, "CreateContainerError", &message, false);
            return None;
        }
        let pod_ip = self.pods.get(&r.uid).and_then(|p| p.pod_ip);
        let resolv = self.resolv_conf(r, spec);
        // With a subdomain, /etc/hosts names the pod by its cluster DNS name too (as kubelet).
        let names = match &fqdn {
            Some(f) => format!("{f}\t{short}"),
            None => short.clone(),
        };
        let hosts = EtcHosts {
            names: &names,
            aliases: &dns::host_aliases(spec.host_aliases.as_deref().unwrap_or_default()),
        };
        let etc = match write_etc_files(&pod_dir, host_network, &hostname, &hosts, pod_ip, resolv) {
            Ok(files) => files,
            Err(e) => {
                tracing::error!(pod = %r.key(), "writing /etc files: {e}");
                Vec::new()
            }
        };
        let sources = PodEnvSources {
            cluster: &*self.cluster,
            pod,
            pod_ip,
            node_name: &self.node_name,
            host_ip: self.host_ip,
        };
        let security = spec.security_context.as_ref();
        let fs_group = security
            .and_then(|s| s.fs_group)
            .map(|gid| volumes::FsGroup {
                gid: gid as u32,
                always: security.and_then(|s| s.fs_group_change_policy.as_deref())
                    != Some("OnRootMismatch"),
            });
        let volumes = volumes::prepare(
            &pod_dir,
            spec.volumes.as_deref().unwrap_or_default(),
            &sources,
            fs_group,
        );
        let volumes = match volumes {
            Ok(v) => v,
            Err(e) => {
                let message = e.to_string();
                self.set_waiting(r, to_start, "CreateContainerConfigError", &message, true);
                return None;
            }
        };
        Some(StartContext {
            pod,
            r,
            ns,
            hostname,
            etc,
            pod_dir,
            volumes,
        })
    }

    /// Whether a pod not started yet may start as far as its PersistentVolumeClaims go. If
    /// not, it stays Pending, unscheduled, with the scheduler's condition and a
    /// FailedScheduling event (once per reason); it is looked at again when claims change.
    pub(super) async fn claims_ready(&mut self, pod: &Pod, r: &PodRef, spec: &PodSpec) -> bool {
        let sources = PodEnvSources {
            cluster: &*self.cluster,
            pod,
            pod_ip: None,
            node_name: &self.node_name,
            host_ip: self.host_ip,
        };
        let Err(why) = volumes::claims_ready(spec.volumes.as_deref().unwrap_or_default(), &sources)
        else {
            return true;
        };
        let message = format!("0/1 nodes are available: {why}.");
        let current = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
        let said = current.is_some_and(|c| {
            c.iter()
                .any(|c| c.message.as_deref() == Some(message.as_str()))
        });
        if said {
            return false;
        }
        tracing::info!(pod = %r.key(), "waits: {why}");
        self.cluster
            .event(&r.namespace, &r.name, true, "FailedScheduling", &message);
        let status = PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some(message),
                last_transition_time: jiff::Timestamp::from_second(
                    jiff::Timestamp::now().as_second(),
                )
                .ok()
                .map(Time),
                ..Default::default()
            }]),
            ..Default::default()
        };
        if let Err(e) = self.cluster.set_pod_status(pod, status).await {
            tracing::warn!(pod = %r.key(), "writing the status of a waiting pod: {e}");
        }
        false
    }

    /// The containers of `to_start` wait with `reason` and `message` (logged once per message
    /// when `log_changes`).
    fn set_waiting(
        &mut self,
        r: &PodRef,
        to_start: &[(Container, String)],
        reason: &str,
        message: &str,
        log_changes: bool,
    ) {
        let state = self.pods.get_mut(&r.uid).expect("tracked");
        for (c, _) in to_start {
            let cs = state.containers.entry(c.name.clone()).or_default();
            if log_changes && cs.waiting.as_ref().map(|w| w.1.as_str()) != Some(message) {
                tracing::warn!(pod = %r.key(), "volumes: {message}");
            }
            cs.waiting = Some((reason.into(), message.to_string()));
        }
    }

    /// Creates (or finds) the pod's namespaces and, on the bridge, attaches the pod and records
    /// its address.
    async fn ensure_namespaces(
        &mut self,
        r: &PodRef,
        pod_dir: &Path,
        host_network: bool,
        hostname: &str,
    ) -> std::io::Result<Namespaces> {
        let network = self.network.clone().filter(|_| !host_network);
        let (pod_dir, hostname, uid) = (pod_dir.to_path_buf(), hostname.to_string(), r.uid.clone());
        let (ns, ip) = tokio::task::spawn_blocking(
            move || -> std::io::Result<(Namespaces, Option<Ipv4Addr>)> {
                let started = Instant::now();
                let ns = sandbox::ensure(&pod_dir, host_network, &hostname)?;
                let namespaces_us = started.elapsed().as_micros() as u64;
                let ip = match (&network, &ns.net) {
                    (Some(n), Some(netns)) => {
                        let ip = n.attach(&uid, netns).map_err(std::io::Error::other)?;
                        // Measured by e2e/bench/network.py: namespaces, veth, address, routes.
                        tracing::debug!(pod = %uid, %ip, namespaces_us, took_us = started.elapsed().as_micros() as u64, "pod network ready");
                        Some(ip)
                    }
                    _ => None,
                };
                Ok((ns, ip))
            },
        )
        .await
        .expect("no panic")?;
        if ip.is_some() {
            self.pods.get_mut(&r.uid).expect("tracked").pod_ip = ip;
        }
        Ok(ns)
    }

    /// The pod's resolv.conf under its `dnsPolicy` and `dnsConfig` (the cluster DNS is served
    /// on the bridge's gateway).
    fn resolv_conf(&self, r: &PodRef, spec: &PodSpec) -> Option<String> {
        let cluster = self
            .network
            .as_ref()
            .filter(|_| dns::uses_cluster_dns(spec))
            .map(|n| {
                crate::network::dns::resolv_conf(n.config.cluster_cidr.gateway(), &r.namespace)
            });
        Some(dns::resolv_conf(spec, cluster, &dns::node_resolv_conf()))
    }
}

/// What a pod's `/etc/hosts` says of it.
pub(super) struct EtcHosts<'a> {
    /// The pod's names on its address's line (the hostname, or the cluster DNS name and the
    /// hostname, tab-separated).
    pub(super) names: &'a str,
    /// The `hostAliases` lines ([`dns::host_aliases`]).
    pub(super) aliases: &'a str,
}

/// Writes the pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, returning the bind
/// mounts for them. A `hostNetwork` pod sees the host's files, as on Kubernetes.
pub(super) fn write_etc_files(
    pod_dir: &Path,
    host_network: bool,
    hostname: &str,
    hosts: &EtcHosts,
    pod_ip: Option<Ipv4Addr>,
    resolv: Option<String>,
) -> std::io::Result<Vec<(String, PathBuf)>> {
    let etc = pod_dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    let EtcHosts { names, aliases } = hosts;
    let hosts = if host_network {
        let node = std::fs::read_to_string("/etc/hosts")
            .unwrap_or_else(|_| "127.0.0.1\tlocalhost\n".into());
        format!("{node}{aliases}")
    } else {
        let own = pod_ip.map_or_else(|| "127.0.1.1".to_string(), |ip| ip.to_string());
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{names}\n{aliases}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_files_of_a_bridged_pod() {
        let dir = tempfile::tempdir().unwrap();
        let ip = Some(Ipv4Addr::new(10, 42, 0, 7));
        let files = write_etc_files(
            dir.path(),
            false,
            "web",
            &EtcHosts {
                names: "web",
                aliases: "",
            },
            ip,
            Some("nameserver 10.42.0.1\n".into()),
        )
        .unwrap();
        let targets: Vec<&str> = files.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(targets, ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]);
        let read = |name: &str| std::fs::read_to_string(dir.path().join("etc").join(name)).unwrap();
        assert_eq!(
            read("hosts"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.42.0.7\tweb\n"
        );
        assert_eq!(read("hostname"), "web\n");
        assert_eq!(read("resolv.conf"), "nameserver 10.42.0.1\n");
    }

    #[test]
    fn etc_hosts_without_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = EtcHosts {
            names: "web",
            aliases: "\n# Entries added by HostAliases.\n192.0.2.1\tdb\n",
        };
        write_etc_files(dir.path(), false, "web", &hosts, None, Some(String::new())).unwrap();
        let hosts = std::fs::read_to_string(dir.path().join("etc/hosts")).unwrap();
        assert!(
            hosts.ends_with("127.0.1.1\tweb\n\n# Entries added by HostAliases.\n192.0.2.1\tdb\n"),
            "{hosts}"
        );
    }

    #[test]
    fn etc_hosts_with_a_subdomain_names_the_pod_by_its_dns_name() {
        let dir = tempfile::tempdir().unwrap();
        let ip = Some(Ipv4Addr::new(10, 42, 0, 7));
        let names = "web-0.web.default.svc.cluster.local\tweb-0";
        let hosts = EtcHosts { names, aliases: "" };
        write_etc_files(dir.path(), false, "web-0", &hosts, ip, Some(String::new())).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join("etc").join(name)).unwrap();
        assert!(
            read("hosts").ends_with("10.42.0.7\tweb-0.web.default.svc.cluster.local\tweb-0\n"),
            "{}",
            read("hosts")
        );
        assert_eq!(read("hostname"), "web-0\n");
    }
}
