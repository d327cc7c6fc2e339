//! The OCI runtime spec (`config.json`) for one container: its process, its root, its mounts,
//! its namespaces, its cgroup and device rules. Written as JSON here so that every default
//! skiff chooses is visible in one place.
//!
//! Choices, following containerd's defaults for Kubernetes: a private PID and mount namespace
//! per container; network, UTS and IPC shared through the pod sandbox; the default capability
//! set; devices denied, then the standard allowlist; `/proc` and `/sys` paths masked as runc
//! masks them; RLIMIT_NOFILE at the host's hard limit (never above it).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::sandbox::Namespaces;

/// The process to run, after merging the image config with the pod spec.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Process {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Capabilities dropped from the default set (`CAP_…`; `ALL` drops every one).
    pub dropped_capabilities: Vec<String>,
    /// `allowPrivilegeEscalation: false`: the process cannot gain privileges (no_new_privs).
    pub no_new_privileges: bool,
    /// `readOnlyRootFilesystem`: the container's root is mounted read-only.
    pub read_only_root: bool,
    /// Capabilities added to the default set (`CAP_…`), `capabilities.add`.
    pub added_capabilities: Vec<String>,
    /// `privileged: true`: every capability, every host device, no masked paths, `/sys`
    /// writable, no seccomp filter — as runc runs a privileged container.
    pub privileged: bool,
    /// `procMount: Unmasked`: `/proc` without the masked and read-only paths.
    pub unmasked_proc: bool,
    /// The pod's `sysctls` (namespaced ones; applied in the container's namespaces).
    pub sysctls: Vec<(String, String)>,
    /// `seccompProfile`: the filter (`None`: unconfined).
    pub seccomp: Option<Seccomp>,
}

/// A seccomp filter a container runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seccomp {
    /// `RuntimeDefault`: [`runtime_default_seccomp`].
    RuntimeDefault,
    /// `Localhost`: the profile of this name under `<data-dir>/seccomp/`, not loaded yet
    /// (the pod worker loads it into [`Seccomp::Profile`] before the spec is written).
    Localhost(String),
    /// A loaded `Localhost` profile: the OCI `linux.seccomp` section
    /// (`runtime/seccomp.rs`).
    Profile(Value),
}

impl Process {
    /// The capabilities: every one when privileged; otherwise the default set, plus what
    /// the container added, minus what it dropped (`drop: [ALL]` then `add` keeps the added
    /// ones, as containerd computes it).
    pub fn capabilities(&self) -> Vec<String> {
        if self.privileged {
            return held_capabilities();
        }
        let drop_all = self.dropped_capabilities.iter().any(|d| d == "ALL");
        let mut caps: Vec<String> = if drop_all {
            Vec::new()
        } else {
            DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
        };
        for a in &self.added_capabilities {
            if a == "ALL" {
                caps = held_capabilities();
            } else if !caps.contains(a) {
                caps.push(a.clone());
            }
        }
        let added = |c: &String| self.added_capabilities.contains(c);
        caps.retain(|c| added(c) || !self.dropped_capabilities.contains(c));
        caps
    }
}

/// Everything the spec is built from.
#[derive(Clone, Debug)]
pub struct SpecInput<'a> {
    /// The process.
    pub process: &'a Process,
    /// The pod's hostname (used only with a UTS namespace of the pod's own).
    pub hostname: &'a str,
    /// The pod's namespaces.
    pub namespaces: &'a Namespaces,
    /// `cgroupsPath`.
    pub cgroups_path: String,
    /// Files bind-mounted over `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`.
    pub etc_files: Vec<(String, PathBuf)>,
    /// cgroup limits.
    pub limits: Limits,
    /// Volume bind mounts: (destination, source, read-only).
    pub volume_mounts: Vec<(String, PathBuf, bool)>,
    /// The process's `oom_score_adj`, as kubelet sets it by QoS class ([`oom_score_adj`]).
    pub oom_score_adj: i32,
}

/// The `oom_score_adj` kubelet gives a container (`pkg/kubelet/qos/policy.go`): Guaranteed
/// pods −997, BestEffort 1000, Burstable `1000 − 1000 × memory request / node memory` kept
/// within 3..=999 — so the kernel kills BestEffort containers first and the host's own
/// services (and the daemon, −500 in its unit) last. (Without it a container inherits the
/// daemon's −500 and outlives the host's services.)
pub fn oom_score_adj(qos_class: &str, memory_request: Option<i64>, node_memory: i64) -> i32 {
    match qos_class {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let request = memory_request.unwrap_or(0).max(0) as i128;
            let adj = 1000 - (1000 * request) / (node_memory.max(1) as i128);
            adj.clamp(3, 999) as i32
        }
    }
}

/// A container's cgroup limits, from its `resources`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `limits.memory`, bytes.
    pub memory: Option<i64>,
    /// `limits.cpu` as a CFS quota per 100 ms period, µs.
    pub cpu_quota: Option<i64>,
    /// `requests.cpu` as cgroup CPU shares (1024 per CPU, as kubelet converts them).
    pub cpu_shares: Option<u64>,
    /// `pids.max`: the node's limit on a container's processes.
    pub pids: Option<u32>,
}

/// Parses a Kubernetes quantity (`128Mi`, `1G`, `0.5`, `500m`, `1e3`) into a number of base
/// units times `scale` (e.g. scale 1000 gives millicores for CPU), rounded up.
pub fn parse_quantity(q: &str, scale: f64) -> Option<i64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 15] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, factor) = suffixes
        .iter()
        .find_map(|(suf, f)| q.strip_suffix(suf).map(|n| (n, *f)))
        .unwrap_or((q, 1.0));
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Some((value * factor * scale).ceil() as i64)
}

impl Limits {
    /// From a container's `resources`.
    pub fn from_resources(r: Option<&k8s_openapi::api::core::v1::ResourceRequirements>) -> Self {
        let get = |m: Option<
            &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
                   k: &str,
                   scale: f64| {
            m.and_then(|m| m.get(k))
                .and_then(|q| parse_quantity(&q.0, scale))
        };
        let limits = r.and_then(|r| r.limits.as_ref());
        let requests = r.and_then(|r| r.requests.as_ref());
        let cpu_limit = get(limits, "cpu", 1000.0);
        // Kubernetes: a request defaults to the limit when only the limit is given.
        let cpu_request = get(requests, "cpu", 1000.0).or(cpu_limit);
        Limits {
            memory: get(limits, "memory", 1.0),
            cpu_quota: cpu_limit.map(|m| (m * 100).max(1000)),
            cpu_shares: cpu_request.map(|m| ((m * 1024) / 1000).max(2) as u64),
            pids: None,
        }
    }
}

/// The capabilities a container gets by default: containerd's set without `CAP_NET_RAW`
/// (as Docker 20.10+ and containerd drop it: raw sockets spoof packets on the pod network;
/// `ping` works through `net.ipv4.ping_group_range`). `capabilities.add: [NET_RAW]` brings
/// it back.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The capabilities this process holds (permitted), by name: what a privileged container
/// gets, as containerd gives it "all current capabilities" — a daemon started without some
/// (a restricted unit, a container) cannot hand them out.
pub(crate) fn held_capabilities() -> Vec<String> {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Every capability Linux knows, in bit order (`CAP_CHOWN` is bit 0).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The syscalls `RuntimeDefault` refuses (EPERM): those containerd's default profile leaves
/// out for a container without extra capabilities — kernel modules, kexec and reboot, the
/// clock, swap, accounting, keyrings, mount and namespace changes (and `clone` asking for a
/// new namespace, `clone3` answering ENOSYS so that libc falls back to `clone`, as Docker's
/// profile does), BPF and perf, ptrace, userfaultfd, handle-based opens. skiff's filter is
/// this deny list over an allowed default (containerd's is an allow list: a syscall newer
/// than both is allowed here and refused there).
pub const RUNTIME_DEFAULT_DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "setdomainname",
    "sethostname",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
];

/// The denied syscalls a capability gives back, as Docker's and containerd's default profiles
/// allow them to a container holding it (`capabilities.add: [SYS_ADMIN]` may still mount).
const UNLOCKED_BY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("CAP_SYS_BOOT", &["reboot"]),
    (
        "CAP_SYS_MODULE",
        &[
            "create_module",
            "delete_module",
            "finit_module",
            "init_module",
        ],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "process_vm_readv", "process_vm_writev", "ptrace"],
    ),
    ("CAP_SYS_RAWIO", &["ioperm", "iopl"]),
    (
        "CAP_SYS_TIME",
        &["clock_adjtime", "clock_settime", "settimeofday", "stime"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["move_pages"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Which argument of `clone` holds the flags (the second on s390x, the first elsewhere).
const CLONE_FLAGS_ARG: u32 = if cfg!(target_arch = "s390x") { 1 } else { 0 };

/// The OCI `linux.seccomp` section of `RuntimeDefault` for a container holding `capabilities`
/// (`CAP_…` names): [`RUNTIME_DEFAULT_DENIED`] less what those capabilities give back.
pub fn runtime_default_seccomp(capabilities: &[String]) -> Value {
    let unlocked: std::collections::HashSet<&str> = UNLOCKED_BY
        .iter()
        .filter(|(cap, _)| capabilities.iter().any(|c| c == cap))
        .flat_map(|(_, calls)| calls.iter().copied())
        .collect();
    let denied: Vec<&str> = RUNTIME_DEFAULT_DENIED
        .iter()
        .copied()
        .filter(|c| !unlocked.contains(c))
        .collect();
    let mut syscalls = vec![json!({"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": 1})];
    if !capabilities.iter().any(|c| c == "CAP_SYS_ADMIN") {
        // clone with any CLONE_NEW* flag: one rule per flag (a rule's conditions are ANDed).
        for flag in [
            0x0002_0000u64, // CLONE_NEWNS
            0x0200_0000,    // CLONE_NEWCGROUP
            0x0400_0000,    // CLONE_NEWUTS
            0x0800_0000,    // CLONE_NEWIPC
            0x1000_0000,    // CLONE_NEWUSER
            0x2000_0000,    // CLONE_NEWPID
            0x4000_0000,    // CLONE_NEWNET
        ] {
            syscalls.push(json!({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{"index": CLONE_FLAGS_ARG, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}));
        }
        // clone3 passes its flags in memory a filter cannot read.
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": if cfg!(target_arch = "aarch64") {
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        } else {
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        },
        "syscalls": syscalls,
    })
}

/// The host's device nodes (`/dev`, recursively, but the pseudo-terminal, shared-memory and
/// queue filesystems skiff mounts itself), for a privileged container.
fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::FileTypeExt;
    fn walk(dir: &Path, out: &mut Vec<Value>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/hugepages"]
                    .iter()
                    .any(|p| path == Path::new(p))
                {
                    walk(&path, out);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            let Ok(st) = nix::sys::stat::stat(&path) else {
                continue;
            };
            let (major, minor) = (
                nix::sys::stat::major(st.st_rdev),
                nix::sys::stat::minor(st.st_rdev),
            );
            // The console, terminal and the devices every container has stay the runtime's.
            let own = [
                "console", "tty", "ptmx", "null", "zero", "full", "random", "urandom",
            ];
            if own.iter().any(|d| path == Path::new("/dev").join(d)) {
                continue;
            }
            out.push(
                json!({"path": path, "type": kind, "major": major, "minor": minor,
                "fileMode": st.st_mode & 0o777, "uid": st.st_uid, "gid": st.st_gid}),
            );
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

fn nofile_limit() -> u64 {
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        Ok((_, hard)) => hard.min(1_048_576),
        Err(_) => 1024,
    }
}

/// Builds `config.json` with the root at `rootfs` (relative to the bundle or absolute).
pub fn spec(input: &SpecInput<'_>, rootfs: &Path) -> Value {
    let p = input.process;
    let caps = p.capabilities();
    // A non-root process keeps the set only as its bounding set, as containerd does.
    let (effective, permitted): (&[String], &[String]) = if p.uid == 0 {
        (&caps, &caps)
    } else {
        (&[], &[])
    };
    let nofile = nofile_limit();
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": p.uid, "gid": p.gid, "additionalGids": p.additional_gids},
            "args": p.args,
            "env": p.env,
            "cwd": p.cwd,
            "capabilities": {"bounding": caps, "effective": effective, "permitted": permitted},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "oomScoreAdj": input.oom_score_adj,
        },
        "root": {"path": rootfs, "readonly": p.read_only_root},
        "mounts": mounts(input),
        "linux": {
            "cgroupsPath": input.cgroups_path,
            "namespaces": namespaces(input),
            "resources": resources(&input.limits),
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    });
    // Only when asked: libcontainer takes a present `false` as "set" and then loads the
    // seccomp filter after dropping the capability that loading it without no_new_privs needs.
    if p.no_new_privileges && !p.privileged {
        spec["process"]["noNewPrivileges"] = json!(true);
    }
    if p.privileged || p.unmasked_proc {
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
    }
    if p.privileged {
        spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
        spec["linux"]["devices"] = json!(host_devices());
    } else {
        match &p.seccomp {
            None => {}
            Some(Seccomp::RuntimeDefault) => {
                spec["linux"]["seccomp"] = runtime_default_seccomp(&caps)
            }
            Some(Seccomp::Profile(s)) => spec["linux"]["seccomp"] = s.clone(),
            // Never reached (loaded before); fail closed: every syscall refused, so the
            // container cannot start rather than run unfiltered.
            Some(Seccomp::Localhost(_)) => {
                spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO"})
            }
        }
    }
    if !p.sysctls.is_empty() {
        let map: serde_json::Map<String, Value> = p
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        spec["linux"]["sysctl"] = Value::Object(map);
    }
    if input.namespaces.uts.is_some() {
        spec["hostname"] = json!(input.hostname);
    }
    spec
}

/// Private PID and mount namespaces; network, UTS and IPC from the pod's sandbox when it has
/// them.
fn namespaces(input: &SpecInput<'_>) -> Vec<Value> {
    let pid = match &input.namespaces.pid {
        Some(path) => json!({"type": "pid", "path": path}),
        None => json!({"type": "pid"}),
    };
    let mut namespaces = vec![pid, json!({"type": "mount"})];
    for (kind, path) in [
        ("network", &input.namespaces.net),
        ("uts", &input.namespaces.uts),
        ("ipc", &input.namespaces.ipc),
    ] {
        if let Some(path) = path {
            namespaces.push(json!({"type": kind, "path": path}));
        }
    }
    namespaces
}

/// The standard filesystems, then the volumes' and the pod's `/etc` files' bind mounts.
fn mounts(input: &SpecInput<'_>) -> Vec<Value> {
    let sys_options = if input.process.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
    ];
    for (dest, source, read_only) in &input.volume_mounts {
        let mut options = vec!["rbind", "rprivate"];
        if *read_only {
            options.push("ro");
        }
        mounts.push(
            json!({"destination": dest, "type": "bind", "source": source, "options": options}),
        );
    }
    for (dest, source) in &input.etc_files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind", "rprivate"]}));
    }
    mounts
}

/// The cgroup's resources: devices, memory and CPU limits.
fn resources(limits: &Limits) -> Value {
    let mut resources = json!({"devices": devices()});
    if let Some(m) = limits.memory {
        resources["memory"] = json!({"limit": m});
    }
    if let Some(p) = limits.pids {
        resources["pids"] = json!({"limit": p});
    }
    if limits.cpu_quota.is_some() || limits.cpu_shares.is_some() {
        let mut cpu = json!({});
        if let Some(q) = limits.cpu_quota {
            cpu["quota"] = json!(q);
            cpu["period"] = json!(100_000);
        }
        if let Some(sh) = limits.cpu_shares {
            cpu["shares"] = json!(sh);
        }
        resources["cpu"] = cpu;
    }
    resources
}

/// Devices: deny all, then mknod of any and the standard allowlist.
fn devices() -> Vec<Value> {
    let char_dev = |major: i64, minor: Option<i64>| {
        let mut d = json!({"allow": true, "type": "c", "major": major, "access": "rwm"});
        if let Some(m) = minor {
            d["minor"] = json!(m);
        }
        d
    };
    vec![
        json!({"allow": false, "access": "rwm"}),
        json!({"allow": true, "type": "c", "access": "m"}),
        json!({"allow": true, "type": "b", "access": "m"}),
        char_dev(1, Some(3)), // null
        char_dev(1, Some(5)), // zero
        char_dev(1, Some(7)), // full
        char_dev(1, Some(8)), // random
        char_dev(1, Some(9)), // urandom
        char_dev(5, Some(0)), // tty
        char_dev(5, Some(2)), // ptmx
        char_dev(136, None),  // pts
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_score_adj_as_kubelet_sets_it() {
        let gib = 1 << 30;
        assert_eq!(oom_score_adj("Guaranteed", Some(gib), 8 * gib), -997);
        assert_eq!(oom_score_adj("BestEffort", None, 8 * gib), 1000);
        assert_eq!(oom_score_adj("Burstable", Some(2 * gib), 8 * gib), 750);
        assert_eq!(oom_score_adj("Burstable", None, 8 * gib), 999);
        assert_eq!(oom_score_adj("Burstable", Some(8 * gib), 8 * gib), 3);
        assert_eq!(oom_score_adj("Burstable", Some(16 * gib), 8 * gib), 3);
    }

    #[test]
    fn host_network_pods_join_no_network_namespace_and_devices_start_denied() {
        let process = Process {
            args: vec!["sh".into()],
            cwd: "/".into(),
            ..Default::default()
        };
        let ns = Namespaces {
            net: None,
            uts: None,
            ipc: Some("/x/ipc".into()),
            pid: None,
        };
        let s = spec(
            &SpecInput {
                process: &process,
                hostname: "p",
                namespaces: &ns,
                cgroups_path: "/skiff-1/c".into(),
                etc_files: vec![],
                limits: Limits::default(),
                volume_mounts: vec![],
                oom_score_adj: 0,
            },
            Path::new("rootfs"),
        );
        let kinds: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["pid", "mount", "ipc"]);
        assert!(s.get("hostname").is_none());
        assert_eq!(
            s["linux"]["resources"]["devices"][0],
            json!({"allow": false, "access": "rwm"})
        );
        assert_eq!(
            s["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            DEFAULT_CAPABILITIES.len()
        );
    }

    /// The spec of `process` in a container with no namespaces of its own to join.
    fn spec_of(process: &Process) -> Value {
        let ns = Namespaces {
            net: None,
            uts: None,
            ipc: None,
            pid: None,
        };
        spec(
            &SpecInput {
                process,
                hostname: "p",
                namespaces: &ns,
                cgroups_path: "/skiff-1/c".into(),
                etc_files: vec![],
                limits: Limits::default(),
                volume_mounts: vec![],
                oom_score_adj: 0,
            },
            Path::new("rootfs"),
        )
    }

    #[test]
    fn security_context_takes_privileges_away() {
        let mut process = Process {
            dropped_capabilities: vec!["CAP_KILL".into()],
            ..Default::default()
        };
        let s = spec_of(&process);
        let bounding = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(bounding.len(), DEFAULT_CAPABILITIES.len() - 1);
        assert!(!bounding.contains(&json!("CAP_KILL")));
        assert!(
            !bounding.contains(&json!("CAP_NET_RAW")),
            "NET_RAW is not a default"
        );
        assert!(s["process"]["noNewPrivileges"].is_null());
        assert_eq!(s["root"]["readonly"], false);
        process.dropped_capabilities = vec!["ALL".into()];
        process.no_new_privileges = true;
        process.read_only_root = true;
        let s = spec_of(&process);
        assert_eq!(s["process"]["capabilities"]["effective"], json!([]));
        assert_eq!(s["process"]["capabilities"]["bounding"], json!([]));
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(s["root"]["readonly"], true);
    }

    #[test]
    fn security_context_adds_privileges_for_the_admin() {
        // drop ALL, add NET_ADMIN: only NET_ADMIN.
        let mut p = Process {
            dropped_capabilities: vec!["ALL".into()],
            added_capabilities: vec!["CAP_NET_ADMIN".into()],
            ..Default::default()
        };
        assert_eq!(
            spec_of(&p)["process"]["capabilities"]["effective"],
            json!(["CAP_NET_ADMIN"])
        );
        p.dropped_capabilities.clear();
        p.sysctls = vec![("net.ipv4.tcp_syncookies".into(), "0".into())];
        p.seccomp = Some(Seccomp::RuntimeDefault);
        let s = spec_of(&p);
        assert_eq!(s["linux"]["sysctl"]["net.ipv4.tcp_syncookies"], "0");
        assert_eq!(
            s["linux"]["seccomp"]["syscalls"][0]["action"],
            "SCMP_ACT_ERRNO"
        );
        // NET_ADMIN gives no syscall back; SYS_ADMIN gives back mount and unshare (Docker's
        // and containerd's default profiles allow them to a container holding it).
        let denied = |s: &Value| s["linux"]["seccomp"]["syscalls"][0]["names"].clone();
        assert!(denied(&s).as_array().unwrap().contains(&json!("mount")));
        assert!(denied(&s).as_array().unwrap().contains(&json!("keyctl")));
        p.added_capabilities.push("CAP_SYS_ADMIN".into());
        let with_admin = spec_of(&p);
        let names = denied(&with_admin);
        assert!(!names.as_array().unwrap().contains(&json!("mount")));
        assert!(!names.as_array().unwrap().contains(&json!("unshare")));
        assert!(names.as_array().unwrap().contains(&json!("keyctl")));
        assert!(names.as_array().unwrap().contains(&json!("ptrace")));
        let clone_rules = |s: &Value| {
            s["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["names"] == json!(["clone"]))
                .count()
        };
        assert_eq!(clone_rules(&with_admin), 0);
        p.added_capabilities.pop();
        assert_eq!(clone_rules(&spec_of(&p)), 7, "one per CLONE_NEW* flag");
        assert!(s["linux"]["maskedPaths"]
            .as_array()
            .is_some_and(|m| !m.is_empty()));
        p.privileged = true;
        let s = spec_of(&p);
        let caps = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), held_capabilities().len());
        assert!(
            caps.contains(&json!("CAP_SYS_ADMIN")),
            "the tests run as root"
        );
        assert_eq!(s["linux"]["maskedPaths"], json!([]));
        assert!(
            s["linux"]["seccomp"].is_null(),
            "privileged runs unconfined"
        );
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let devices = s["linux"]["devices"].as_array().unwrap();
        assert!(devices
            .iter()
            .all(|d| d["path"] != "/dev/null" && d["path"] != "/dev/pts/0"));
        let sys = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert!(!sys["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn quantities_and_limits_convert_like_kubelet() {
        assert_eq!(parse_quantity("128Mi", 1.0), Some(128 * 1024 * 1024));
        assert_eq!(parse_quantity("1G", 1.0), Some(1_000_000_000));
        assert_eq!(parse_quantity("500m", 1000.0), Some(500));
        assert_eq!(parse_quantity("0.5", 1000.0), Some(500));
        assert_eq!(parse_quantity("2", 1000.0), Some(2000));
        assert_eq!(parse_quantity("x", 1.0), None);
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let r = k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(
                [
                    ("cpu".to_string(), Quantity("500m".into())),
                    ("memory".to_string(), Quantity("64Mi".into())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let l = Limits::from_resources(Some(&r));
        assert_eq!(
            l,
            Limits {
                memory: Some(64 << 20),
                cpu_quota: Some(50_000),
                cpu_shares: Some(512),
                pids: None,
            }
        );
    }
}
