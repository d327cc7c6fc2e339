//! This machine as a Kubernetes `Node`: registered by the daemon at start (labels as k3s sets
//! them), its status (addresses, capacity and allocatable, conditions, nodeInfo) measured
//! from `/proc`, `/etc/os-release` and `statvfs` of the data directory, and written back as
//! a heartbeat.
//!
//! The daemon writes only `status` after registration, plus — at start, as kubelet's
//! `updateDefaultLabels` — the labels it owns (hostname, os, arch): labels and taints an
//! admin sets with kubectl stay, across restarts too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::sync::watch;

/// The field manager of the daemon's writes to its Node.
const MANAGER: &str = "skiff-node";
/// How often the machine is measured.
const MEASURE: Duration = Duration::from_secs(10);
/// How often the status is written when nothing but the heartbeat changed.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// The namespace of nodes' Leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long the Lease holds: two heartbeats.
const LEASE_SECONDS: i32 = 120;
/// kubelet's default `maxPods` (`skiff server --max-pods`).
pub const MAX_PODS: u64 = 110;
/// kubelet's default hard eviction threshold for memory: what allocatable keeps back and
/// below which MemoryPressure is reported.
const MEMORY_RESERVE: u64 = 100 << 20;
/// kubelet's default `nodefs.available<10%`: DiskPressure below it; allocatable keeps it back.
const DISK_RESERVE_PERCENT: u64 = 10;
/// PIDPressure when fewer than this share (%) of `pid_max` is left (kubelet has no default).
const PID_RESERVE_PERCENT: u64 = 5;

/// What the daemon measures about the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub cpus: u64,
    pub memory_total: u64,
    pub memory_available: u64,
    pub disk_total: u64,
    pub disk_available: u64,
    pub pid_max: u64,
    pub processes: u64,
    pub internal_ip: String,
    pub hostname: String,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
    /// The most pods the node takes (its `pods` capacity; kubelet's `maxPods`).
    pub max_pods: u64,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A `kB` field of `/proc/meminfo`, in bytes.
fn meminfo(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// `PRETTY_NAME` of an os-release file (what kubelet reports as `osImage`).
pub fn os_image(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// Go's name of this architecture (`kubernetes.io/arch`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Facts {
    /// Measures the machine; the disk is the filesystem of `data_dir`.
    pub fn measure(data_dir: &Path, internal_ip: String, hostname: String, max_pods: u64) -> Facts {
        let mem = read("/proc/meminfo");
        // The field types differ between platforms (u32 on some 32-bit ones).
        #[allow(clippy::unnecessary_cast)]
        let (disk_total, disk_available) = nix::sys::statvfs::statvfs(data_dir)
            .map(|s| {
                let f = s.fragment_size() as u64;
                (s.blocks() as u64 * f, s.blocks_available() as u64 * f)
            })
            .unwrap_or((0, 0));
        let processes = std::fs::read_dir("/proc")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        Facts {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_total: meminfo(&mem, "MemTotal"),
            memory_available: meminfo(&mem, "MemAvailable"),
            disk_total,
            disk_available,
            pid_max: read("/proc/sys/kernel/pid_max").parse().unwrap_or(32768),
            processes,
            internal_ip,
            hostname,
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image: os_image(&os_release),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            system_uuid: read("/sys/class/dmi/id/product_uuid"),
            max_pods,
        }
    }

    fn memory_pressure(&self) -> bool {
        self.memory_available < MEMORY_RESERVE
    }

    fn disk_pressure(&self) -> bool {
        self.disk_available * 100 < self.disk_total * DISK_RESERVE_PERCENT
    }

    fn pid_pressure(&self) -> bool {
        self.pid_max.saturating_sub(self.processes) * 100 < self.pid_max * PID_RESERVE_PERCENT
    }
}

/// The labels the daemon owns on its Node, as k3s sets them on a server node.
pub fn default_labels(name: &str) -> Value {
    json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": go_arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": go_arch(),
        "node-role.kubernetes.io/control-plane": "true",
        "node-role.kubernetes.io/master": "true",
        "node.kubernetes.io/instance-type": "skiff",
    })
}

/// The Node as first registered.
pub fn node(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": default_labels(name)},
        "spec": {},
    })
}

/// The version kubelet would report: the API server's own (`/version`), so Helm charts and
/// dashboards comparing the two see one cluster version.
pub fn kubelet_version() -> String {
    format!("v1.32.0+skiff.{}", env!("CARGO_PKG_VERSION"))
}

/// One condition, its transition time carried over from `previous` when unchanged.
fn condition(
    previous: &Value,
    now: &str,
    (ty, status, reason, message): (&str, bool, &str, &str),
) -> Value {
    let status = if status { "True" } else { "False" };
    let old = previous["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty);
    let since = match old {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    json!({
        "type": ty, "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now, "lastTransitionTime": since,
    })
}

/// The Node's status from `facts` (transition times carried over from `previous`).
pub fn status(facts: &Facts, previous: &Value, now: &str) -> Value {
    let kib = |b: u64| format!("{}Ki", b / 1024);
    let capacity = json!({
        "cpu": facts.cpus.to_string(),
        "memory": kib(facts.memory_total),
        "pods": facts.max_pods.to_string(),
        "ephemeral-storage": kib(facts.disk_total),
    });
    let allocatable = json!({
        "cpu": facts.cpus.to_string(),
        "memory": kib(facts.memory_total.saturating_sub(MEMORY_RESERVE)),
        "pods": facts.max_pods.to_string(),
        "ephemeral-storage": (facts.disk_total / 100 * (100 - DISK_RESERVE_PERCENT)).to_string(),
    });
    let (mem, disk, pid) = (
        facts.memory_pressure(),
        facts.disk_pressure(),
        facts.pid_pressure(),
    );
    let conditions = [
        if mem {
            (
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            )
        } else {
            (
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            )
        },
        if disk {
            (
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            )
        } else {
            (
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            )
        },
        if pid {
            (
                "PIDPressure",
                true,
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            )
        } else {
            (
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            )
        },
        (
            "Ready",
            true,
            "KubeletReady",
            "skiff is posting ready status",
        ),
    ];
    json!({
        "addresses": [
            {"type": "InternalIP", "address": facts.internal_ip},
            {"type": "Hostname", "address": facts.hostname},
        ],
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conditions.iter().map(|c| condition(previous, now, *c)).collect::<Vec<_>>(),
        // skiff serves logs and exec through the API server: no kubelet port listens.
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.system_uuid,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel,
            "osImage": facts.os_image,
            "containerRuntimeVersion": format!("skiff://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": kubelet_version(),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": go_arch(),
        },
    })
}

/// What the status says apart from heartbeat times (a change is written at once).
fn essence(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(cs) = s["conditions"].as_array_mut() {
        for c in cs {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastHeartbeatTime");
            }
        }
    }
    s
}

/// The Node's registration and heartbeat.
pub struct Heartbeat {
    pub client: kube::Client,
    pub name: String,
    pub data_dir: PathBuf,
    pub internal_ip: String,
    /// The node's `pods` capacity.
    pub max_pods: u64,
}

impl Heartbeat {
    fn measure(&self) -> Facts {
        Facts::measure(
            &self.data_dir,
            self.internal_ip.clone(),
            self.name.clone(),
            self.max_pods,
        )
    }

    fn api(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn now() -> String {
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string()
    }

    /// Creates the Node, or (it exists) sets the labels the daemon owns; then its status.
    /// Returns the status written.
    pub async fn register(&self) -> Result<Value, kube::Error> {
        let pp = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        let obj: Node = serde_json::from_value(node(&self.name)).expect("a Node");
        let existing = match self.api().create(&PostParams::default(), &obj).await {
            Ok(_) => Value::Null,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let labels = json!({"metadata": {"labels": default_labels(&self.name)}});
                let n = self
                    .api()
                    .patch(&self.name, &pp, &Patch::Merge(labels))
                    .await?;
                serde_json::to_value(n.status).unwrap_or_default()
            }
            Err(e) => return Err(e),
        };
        self.write(&existing).await
    }

    async fn write(&self, previous: &Value) -> Result<Value, kube::Error> {
        let facts = self.measure();
        let status = status(&facts, previous, &Self::now());
        let pp = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        self.api()
            .patch_status(&self.name, &pp, &Patch::Merge(json!({ "status": status })))
            .await?;
        self.renew_lease(&pp).await?;
        Ok(status)
    }

    /// The node's Lease in `kube-node-lease` (what `kubectl describe node` shows), renewed with
    /// every status write.
    async fn renew_lease(&self, pp: &PatchParams) -> Result<(), kube::Error> {
        use k8s_openapi::api::coordination::v1::Lease;
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let now = jiff::Timestamp::now().to_string();
        let renew = json!({"spec": {"renewTime": now, "holderIdentity": self.name,
            "leaseDurationSeconds": LEASE_SECONDS}});
        match api.patch(&self.name, pp, &Patch::Merge(renew)).await {
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                    "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                        "acquireTime": now, "renewTime": now}});
                let lease: Lease = serde_json::from_value(lease).expect("a Lease");
                api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    /// Measures every few seconds; writes the status when it changed, and at least every
    /// minute (the heartbeat); registers again if the Node was deleted.
    pub async fn run(self, mut last: Value, mut shutdown: watch::Receiver<bool>) {
        let mut written = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(MEASURE) => {}
            }
            let facts = self.measure();
            let fresh = status(&facts, &last, &Self::now());
            if essence(&fresh) == essence(&last) && written.elapsed() < HEARTBEAT {
                continue;
            }
            let r = match self.write(&last).await {
                Err(kube::Error::Api(s)) if s.code == 404 => self.register().await,
                r => r,
            };
            match r {
                Ok(s) => {
                    last = s;
                    written = Instant::now();
                }
                Err(e) => tracing::warn!(node = %self.name, "writing the node's status: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            cpus: 4,
            memory_total: 8 << 30,
            memory_available: 4 << 30,
            disk_total: 100 << 30,
            disk_available: 50 << 30,
            pid_max: 4_194_304,
            processes: 300,
            internal_ip: "192.0.2.10".into(),
            hostname: "box".into(),
            kernel: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            system_uuid: "u".into(),
            max_pods: MAX_PODS,
        }
    }

    #[test]
    fn status_reports_capacity_allocatable_and_conditions() {
        let s = status(&facts(), &Value::Null, "2026-01-01T00:00:00Z");
        assert_eq!(s["capacity"]["cpu"], "4");
        assert_eq!(s["capacity"]["memory"], "8388608Ki");
        assert_eq!(s["allocatable"]["memory"], "8286208Ki");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(
            s["addresses"][0],
            json!({"type": "InternalIP", "address": "192.0.2.10"})
        );
        let cond = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(cond("Ready")["status"], "True");
        assert_eq!(cond("MemoryPressure")["status"], "False");
        assert_eq!(cond("DiskPressure")["reason"], "KubeletHasNoDiskPressure");
        // Typed clients decode it.
        let _: k8s_openapi::api::core::v1::NodeStatus = serde_json::from_value(s).unwrap();
    }

    #[test]
    fn pressure_comes_from_the_measurements_and_keeps_transition_times() {
        let first = status(&facts(), &Value::Null, "2026-01-01T00:00:00Z");
        let mut low = facts();
        low.memory_available = 50 << 20;
        low.disk_available = 5 << 30;
        let s = status(&low, &first, "2026-01-01T00:01:00Z");
        let cond = |s: &Value, t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(cond(&s, "MemoryPressure")["status"], "True");
        assert_eq!(cond(&s, "DiskPressure")["status"], "True");
        assert_eq!(
            cond(&s, "MemoryPressure")["lastTransitionTime"],
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(
            cond(&s, "Ready")["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            cond(&s, "Ready")["lastHeartbeatTime"],
            "2026-01-01T00:01:00Z"
        );
        assert_ne!(essence(&s), essence(&first));
    }

    #[test]
    fn os_image_is_the_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(os_image(text), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os_image(""), "Linux");
    }
}
