//! The container runtime: how one container becomes a process, and how it is found again.
//!
//! A container is run by a **shim** — forked from the daemon's [`zygote`] (or, failing that,
//! this binary re-executed), named `skiff shim <container-dir>` either way; single-threaded —
//! because libcontainer changes its calling process (cwd, dumpable flag, oom_score_adj) and
//! must not run inside the multi-threaded daemon. The shim is the
//! container's parent, writes its stdout/stderr to a log file, records the exit durably, and
//! outlives the daemon: a restarted daemon re-adopts running shims from their records.
//!
//! On disk, per container, `<data-dir>/containers/<id>/`:
//! - `meta.json` — [`ContainerMeta`], written by the daemon before the shim starts;
//! - `bundle/config.json`, `bundle/rootfs` (an overlayfs over the image layers, `upper/`, `work/`);
//! - `state.json` — [`ShimState`], written by the shim once the container runs;
//! - `exit.json` — [`ExitRecord`], written by the shim when the container has exited;
//! - `shim.log` — the shim's own messages.
//!
//! libcontainer's own state lives in `<data-dir>/run/libcontainer/<id>/`; cgroups under
//! `<controller>/skiff-<hash of data dir>/<id>`.
//!
//! Modules: [`oci`] builds the OCI runtime spec, [`sandbox`] the pod's shared namespaces,
//! [`shim`] is the shim process, [`zygote`] forks shims, [`handle`] is the daemon's side
//! (create, adopt, signal, wait, remove), [`protocol`] what they agree on (command lines, pid
//! files, durable records), [`killall`] stops everything of a data directory.

pub mod cgroup;
pub mod exec;
pub mod handle;
pub mod killall;
pub mod logfile;
pub mod mount;
pub mod oci;
pub mod pidfd;
pub mod pidns;
pub mod protocol;
pub mod sandbox;
pub mod seccomp;
pub mod shim;
pub mod trim;
pub mod usage;
pub mod zygote;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use protocol::write_json_durable;

/// Paths of one data directory that the runtime uses.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The data directory (absolute).
    pub data_dir: PathBuf,
}

impl Layout {
    /// The layout of `data_dir`, made absolute.
    /// Creates the data directory if needed and makes it the owner's only (0700): it holds
    /// the store (Secrets), container specs with their environment, volumes and keys.
    pub fn new(data_dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(data_dir)?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Layout {
            data_dir: data_dir.canonicalize()?,
        })
    }
    /// `<data-dir>/containers`.
    pub fn containers(&self) -> PathBuf {
        self.data_dir.join("containers")
    }
    /// One container's directory.
    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }
    /// libcontainer's state root.
    pub fn libcontainer_root(&self) -> PathBuf {
        self.data_dir.join("run").join("libcontainer")
    }
    /// `<data-dir>/seccomp`: the `Localhost` seccomp profiles (the admin's files).
    pub fn seccomp_profiles(&self) -> PathBuf {
        self.data_dir.join("seccomp")
    }
    /// `<data-dir>/pods`.
    pub fn pods(&self) -> PathBuf {
        self.data_dir.join("pods")
    }
    /// The cgroup parent of every container of this data directory: `skiff-<8 hex>`, the
    /// first 8 hex digits of the SHA-256 of the data directory's path, so that two data
    /// directories (tests, or two instances) never share cgroups.
    pub fn cgroup_parent(&self) -> String {
        let h = Sha256::digest(self.data_dir.to_string_lossy().as_bytes());
        format!("skiff-{}", &hex::encode(h)[..8])
    }
}

/// The id of a pod's container instance: `<first 12 hex of the pod uid>-<container>-<restart>`.
/// The prefix up to the last `-` names every instance of that container.
pub fn container_id(pod_uid: &str, container: &str, restart: u32) -> String {
    format!("{}{restart}", container_id_prefix(pod_uid, container))
}

/// `<first 12 hex of the pod uid>-<container>-`: what every instance id of a container starts with.
pub fn container_id_prefix(pod_uid: &str, container: &str) -> String {
    let uid: String = pod_uid.chars().filter(|c| *c != '-').take(12).collect();
    format!("{uid}-{container}-")
}

/// What the daemon records about a container before starting its shim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// The container id (also libcontainer's).
    pub id: String,
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's namespace.
    pub pod_namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The container's name in the pod.
    pub container_name: String,
    /// How many times this container was restarted before this instance.
    pub restart_count: u32,
    /// A hash of the container's spec, to notice changes.
    pub spec_hash: String,
    /// The image as written in the pod.
    pub image: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    /// The CRI-format log file the shim writes.
    pub log_path: PathBuf,
    /// How the shim rotates it (kubelet's defaults in records written before rotation existed).
    #[serde(default)]
    pub log_rotation: logfile::Rotation,
    /// libcontainer's state root.
    pub libcontainer_root: PathBuf,
}

/// What the shim records once the container runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimState {
    /// The shim's pid.
    pub shim_pid: i32,
    /// The shim's start time in clock ticks since boot (`/proc/<pid>/stat` field 22), to tell
    /// it from a later process that reuses the pid.
    pub shim_start_ticks: u64,
    /// The container's init pid (a child of the shim).
    pub init_pid: i32,
    /// When the container started (RFC 3339).
    pub started_at: String,
}

/// What the shim records when the container has exited (or failed to start).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    /// The exit code (128 + signal when killed by a signal).
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, or `StartError`.
    pub reason: String,
    /// A message (for start errors, what went wrong).
    pub message: Option<String>,
    /// When it started, if it did.
    pub started_at: Option<String>,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

impl ExitRecord {
    /// A container that never started (exit code 128, reason `StartError`).
    pub fn start_error(message: String) -> Self {
        ExitRecord {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: Some(message),
            started_at: None,
            finished_at: now_rfc3339(),
        }
    }

    /// A container whose shim ended without recording an exit (exit code 255, `Unknown`).
    pub fn unknown(message: &str, started_at: Option<String>) -> Self {
        ExitRecord {
            exit_code: 255,
            signal: None,
            reason: "Unknown".into(),
            message: Some(message.into()),
            started_at,
            finished_at: now_rfc3339(),
        }
    }
}

/// Reads a JSON file, `None` if it does not exist or does not parse.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A process's start time in clock ticks since boot, from `/proc/<pid>/stat`.
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// A process's parent pid and state letter, from `/proc/<pid>/stat`.
pub fn process_parent_and_state(pid: i32) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// The current time in RFC 3339 with nanoseconds (as Kubernetes writes log timestamps).
pub fn now_rfc3339_nanos() -> String {
    jiff::Timestamp::now().to_string()
}

/// The current time in RFC 3339, seconds precision (as Kubernetes writes object timestamps).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}
