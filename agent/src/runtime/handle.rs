//! The daemon's side of the runtime: prepare a container (overlayfs root, `config.json`,
//! `meta.json`), start its shim, find running shims again after a restart, signal a
//! container, wait for it to exit, and remove what it left.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::unix::AsyncFd;

use super::protocol::{self, PidFile, ShimCommand};
use super::{
    mount, pidfd, process_parent_and_state, process_start_ticks, read_json, write_json_durable,
    ContainerMeta, ExitRecord, Layout, ShimState,
};

/// Runtime errors.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Preparing the container's files or mounts failed.
    #[error("preparing container {id}: {source}")]
    Prepare {
        /// The container.
        id: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The shim could not be started.
    #[error("starting the shim of {id}: {source}")]
    Spawn {
        /// The container.
        id: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The shim neither started the container nor reported a failure in time.
    #[error("the shim of {0} did not report within {1:?}")]
    Timeout(String, Duration),
}

/// How long a shim may take to report that its container runs.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The runtime of one data directory.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Paths.
    pub layout: Layout,
    /// The `skiff` executable to run as `skiff shim`.
    pub shim_exe: PathBuf,
    /// Every pod's `pids.max` (`None`: no limit), on its cgroup (`runtime/cgroup.rs`).
    pub pids_limit: Option<u32>,
    /// How containers' logs are rotated.
    pub log_rotation: super::logfile::Rotation,
    /// Forks shims instead of executing them, when the daemon started one (`zygote.rs`).
    pub zygote: Option<std::sync::Arc<super::zygote::Zygote>>,
}

/// A container whose shim is running.
pub struct Running {
    /// What the daemon recorded.
    pub meta: ContainerMeta,
    /// What the shim recorded.
    pub state: ShimState,
    init: Option<OwnedFd>,
    watch: Watch,
}

enum Watch {
    Child(tokio::process::Child),
    Pidfd(AsyncFd<OwnedFd>),
    Gone,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("meta", &self.meta)
            .field("state", &self.state)
            .finish()
    }
}

/// What starting a container gave.
#[derive(Debug)]
pub enum Started {
    /// It runs.
    Running(Box<Running>),
    /// The shim reported a failure (or the container exited at once).
    Exited(ExitRecord),
}

/// A container found on disk when the daemon starts.
#[derive(Debug)]
pub enum Found {
    /// Its shim runs: re-adopted.
    Running(Box<Running>),
    /// It exited while the daemon was away.
    Exited(ContainerMeta, ExitRecord),
    /// Neither running nor recorded as exited (the shim died, or never started).
    Lost(ContainerMeta),
}

impl Runtime {
    /// The runtime for `layout`, running shims from the current executable.
    pub fn new(layout: Layout) -> std::io::Result<Self> {
        Ok(Runtime {
            layout,
            shim_exe: std::env::current_exe()?,
            pids_limit: None,
            log_rotation: Default::default(),
            zygote: None,
        })
    }

    /// Forks shims from `zygote` (executing them when it cannot).
    pub fn with_zygote(mut self, zygote: Option<super::zygote::Zygote>) -> Self {
        self.zygote = zygote.map(std::sync::Arc::new);
        self
    }

    /// Every pod's `pids.max` (`None`: no limit).
    pub fn with_pids_limit(mut self, limit: Option<u32>) -> Self {
        self.pids_limit = limit;
        self
    }

    /// How containers' logs are rotated.
    pub fn with_log_rotation(mut self, rotation: super::logfile::Rotation) -> Self {
        self.log_rotation = rotation;
        self
    }

    /// Prepares and starts a container. `spec` is the OCI `config.json`; its root is set to the
    /// bundle's `rootfs`, an overlayfs over `layers` (bottom → top).
    pub async fn create(
        &self,
        meta: ContainerMeta,
        layers: Vec<PathBuf>,
        spec: Value,
    ) -> Result<Started, RuntimeError> {
        let dir = self.layout.container(&meta.id);
        let id = meta.id.clone();
        {
            let dir = dir.clone();
            let meta = meta.clone();
            tokio::task::spawn_blocking(move || prepare(&dir, &meta, &layers, spec))
                .await
                .expect("prepare does not panic")
                .map_err(|source| RuntimeError::Prepare {
                    id: id.clone(),
                    source,
                })?;
        }
        let log =
            std::fs::File::create(dir.join("shim.log")).map_err(|source| RuntimeError::Spawn {
                id: id.clone(),
                source,
            })?;
        let (forked, log) = self.fork_shim(&id, &dir, log).await?;
        let mut watch = match forked {
            Some(fd) => Watch::Pidfd(fd),
            None => {
                let spawned = log.try_clone().and_then(|log2| {
                    protocol::shim_command(&self.shim_exe, &dir, ShimCommand::Run)
                        .stdin(Stdio::null())
                        .stdout(log)
                        .stderr(log2)
                        .spawn()
                });
                Watch::Child(spawned.map_err(|source| RuntimeError::Spawn {
                    id: id.clone(),
                    source,
                })?)
            }
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(exit) = read_json::<ExitRecord>(&dir.join("exit.json")) {
                if let Watch::Child(c) = &mut watch {
                    let _ = c.wait().await;
                }
                return Ok(Started::Exited(exit));
            }
            if let Some(state) = read_json::<ShimState>(&dir.join("state.json")) {
                let init = open_init(&state);
                return Ok(Started::Running(Box::new(Running {
                    meta,
                    state,
                    init,
                    watch,
                })));
            }
            let ended = match &mut watch {
                Watch::Child(c) => match c.try_wait() {
                    Ok(Some(status)) => Some(format!(" ({status})")),
                    _ => None,
                },
                // Forked by the zygote, which reaps it: its status is not ours to read.
                Watch::Pidfd(fd) => pidfd::has_exited(fd.get_ref()).then(String::new),
                Watch::Gone => None,
            };
            if let Some(status) = ended {
                // The shim is gone without a word: read once more, then give up.
                if let Some(exit) = read_json::<ExitRecord>(&dir.join("exit.json")) {
                    return Ok(Started::Exited(exit));
                }
                let log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                return Ok(Started::Exited(ExitRecord::start_error(format!(
                    "the shim exited{status} without starting the container: {}",
                    log.trim()
                ))));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(RuntimeError::Timeout(id, START_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The shim of `dir` forked by the zygote, watched through its pidfd; `None` (with the log
    /// file back) when it is to be executed instead: no zygote, or none was forked.
    async fn fork_shim(
        &self,
        id: &str,
        dir: &Path,
        log: std::fs::File,
    ) -> Result<(Option<AsyncFd<OwnedFd>>, std::fs::File), RuntimeError> {
        let Some(zygote) = self.zygote.clone() else {
            return Ok((None, log));
        };
        let spawn_error = |source| RuntimeError::Spawn {
            id: id.to_string(),
            source,
        };
        let at = dir.to_path_buf();
        let (forked, log) = tokio::task::spawn_blocking(move || (zygote.spawn(&at, &log), log))
            .await
            .map_err(|e| spawn_error(std::io::Error::other(e.to_string())))?;
        match forked {
            Ok(fd) => match register(fd) {
                Some(fd) => Ok((Some(fd), log)),
                None => Err(spawn_error(std::io::Error::other(
                    "cannot watch the forked shim",
                ))),
            },
            Err(super::zygote::SpawnError::NotForked(e)) => {
                tracing::debug!("{id}: the zygote did not fork the shim ({e}); executing it");
                Ok((None, log))
            }
            // A shim may run: executing another for the same directory is not safe.
            Err(super::zygote::SpawnError::Unknown(source)) => Err(spawn_error(source)),
        }
    }

    /// Finds every container of this data directory on disk.
    pub fn find_all(&self) -> Vec<Found> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.layout.containers()) else {
            return found;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(meta) = read_json::<ContainerMeta>(&dir.join("meta.json")) else {
                continue;
            };
            if let Some(exit) = read_json::<ExitRecord>(&dir.join("exit.json")) {
                found.push(Found::Exited(meta, exit));
                continue;
            }
            if read_json::<ShimState>(&dir.join("state.json")).is_none() {
                // A shim may be starting its container at this very moment: give it time.
                wait_while_starting(&dir);
                if let Some(exit) = read_json::<ExitRecord>(&dir.join("exit.json")) {
                    found.push(Found::Exited(meta, exit));
                    continue;
                }
            }
            let Some(state) = read_json::<ShimState>(&dir.join("state.json")) else {
                found.push(Found::Lost(meta));
                continue;
            };
            let alive = process_start_ticks(state.shim_pid) == Some(state.shim_start_ticks);
            let fd = if alive {
                pidfd::open(state.shim_pid).ok()
            } else {
                None
            };
            // Check again after opening the pidfd: the pid cannot be reused from here on.
            let fd =
                fd.filter(|_| process_start_ticks(state.shim_pid) == Some(state.shim_start_ticks));
            match fd.and_then(register) {
                Some(fd) => {
                    let init = open_init(&state);
                    found.push(Found::Running(Box::new(Running {
                        meta,
                        state,
                        init,
                        watch: Watch::Pidfd(fd),
                    })));
                }
                None => match read_json::<ExitRecord>(&dir.join("exit.json")) {
                    Some(exit) => found.push(Found::Exited(meta, exit)),
                    None => found.push(Found::Lost(meta)),
                },
            }
        }
        found
    }

    /// Removes a container that no longer runs: libcontainer state and cgroups (through a
    /// `skiff shim --delete` helper process if the shim did not get to it), mounts, files.
    pub async fn remove(&self, meta: &ContainerMeta) -> std::io::Result<()> {
        let dir = self.layout.container(&meta.id);
        if meta.libcontainer_root.join(&meta.id).exists() {
            let status = protocol::shim_command(&self.shim_exe, &dir, ShimCommand::Delete)
                .stdin(Stdio::null())
                .status()
                .await?;
            if !status.success() {
                tracing::warn!(container = %meta.id, "the delete helper failed ({status})");
            }
        }
        let parent = self.layout.cgroup_parent();
        tokio::task::spawn_blocking(move || {
            mount::remove_dir_with_mounts(&dir)?;
            // The shared parent cgroup goes with the last container (rmdir fails while others
            // exist; pods' cgroups go with their sandboxes).
            if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
                for h in hierarchies.flatten() {
                    let _ = std::fs::remove_dir(h.path().join(&parent));
                }
            }
            Ok(())
        })
        .await
        .expect("remove does not panic")
    }
}

/// Waits while the shim of `dir` is alive and has recorded neither a start nor an exit.
fn wait_while_starting(dir: &Path) {
    let Some(shim) = PidFile::read(&protocol::shim_pid_file(dir)) else {
        return;
    };
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    while shim.is_alive()
        && !dir.join("state.json").exists()
        && !dir.join("exit.json").exists()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Registers a pidfd with the reactor (readable once the process exits).
fn register(fd: OwnedFd) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: the OwnedFd is moved into the AsyncFd, so it stays open and refers to the same
    // pidfd for the AsyncFd's whole life, and its as_raw_fd never changes.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

fn open_init(state: &ShimState) -> Option<OwnedFd> {
    let fd = pidfd::open(state.init_pid).ok()?;
    // Only if it is still the shim's child: otherwise the pid may belong to someone else.
    match process_parent_and_state(state.init_pid) {
        Some((ppid, _)) if ppid == state.shim_pid => Some(fd),
        _ => None,
    }
}

fn prepare(
    dir: &Path,
    meta: &ContainerMeta,
    layers: &[PathBuf],
    mut spec: Value,
) -> std::io::Result<()> {
    if dir.exists() {
        // A leftover of an earlier attempt with the same id.
        mount::remove_dir_with_mounts(dir)?;
    }
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    for d in [&rootfs, &dir.join("upper"), &dir.join("work")] {
        std::fs::create_dir_all(d)?;
    }
    // Root's alone, like the data dir above them (a container reaches its root through
    // pivot_root, never through these paths).
    use std::os::unix::fs::PermissionsExt;
    for d in [dir, &bundle] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    let nosuid = spec["process"]["noNewPrivileges"] == true;
    mount::mount_overlay(
        layers,
        &dir.join("upper"),
        &dir.join("work"),
        &rootfs,
        nosuid,
    )?;
    spec["root"]["path"] = Value::String("rootfs".into());
    // 0600: the spec holds the container's environment, Secrets included.
    write_json_durable(&bundle.join("config.json"), &spec)?;
    write_json_durable(&dir.join("meta.json"), meta)
}

impl Running {
    /// Sends a signal to the container's init process (ignored if it has exited).
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        match &self.init {
            Some(fd) => pidfd::send_signal(fd, signal),
            None => Ok(()),
        }
    }

    /// Waits until the shim has exited, then returns the exit it recorded.
    pub async fn wait(&mut self, runtime: &Runtime) -> ExitRecord {
        match &mut self.watch {
            Watch::Child(c) => {
                let _ = c.wait().await;
            }
            Watch::Pidfd(fd) => {
                let _ = fd.readable().await;
            }
            Watch::Gone => {}
        }
        self.watch = Watch::Gone;
        let dir = runtime.layout.container(&self.meta.id);
        read_json::<ExitRecord>(&dir.join("exit.json")).unwrap_or_else(|| {
            ExitRecord::unknown(
                "the container's shim ended without recording an exit",
                Some(self.state.started_at.clone()),
            )
        })
    }
}
