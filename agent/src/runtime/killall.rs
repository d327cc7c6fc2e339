//! `skiff killall --data-dir DIR`: stops the daemon of that data directory, every container
//! and shim started from it, and removes their mounts, cgroups and runtime state — like k3s's
//! `k3s-killall.sh`. Objects in the store, images and logs of the store are kept: starting the
//! daemon again brings the declared containers back.
//!
//! Runs in the single-threaded `skiff killall` process (it calls libcontainer to delete).

use std::path::Path;
use std::time::{Duration, Instant};

use super::protocol::{shim_pid_file, PidFile};
use super::{
    mount, pidfd, process_parent_and_state, process_start_ticks, read_json, shim, ContainerMeta,
    Layout, ShimState,
};

/// What killall did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Containers stopped (their shim was running).
    pub stopped: usize,
    /// Container directories removed.
    pub removed: usize,
    /// Whether a daemon was stopped.
    pub daemon_stopped: bool,
}

/// The file the daemon writes its pid to.
pub fn daemon_pid_file(layout: &Layout) -> std::path::PathBuf {
    layout.data_dir.join("run").join("skiff.pid")
}

fn wait_gone(pid: i32, ticks: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match process_parent_and_state(pid) {
            None => return true,
            Some((_, 'Z')) => return true,
            _ if process_start_ticks(pid) != Some(ticks) => return true,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

/// Stops everything of a data directory.
pub fn killall(data_dir: &Path) -> std::io::Result<Summary> {
    let layout = Layout::new(data_dir)?;
    let mut summary = Summary::default();
    // 1. The daemon first, so it does not restart what we stop.
    if let Some(daemon) = PidFile::read(&daemon_pid_file(&layout)).filter(PidFile::is_alive) {
        let PidFile { pid, start_ticks } = daemon;
        if let Ok(fd) = pidfd::open(pid) {
            let _ = pidfd::send_signal(&fd, libc::SIGTERM);
            if !wait_gone(pid, start_ticks, Duration::from_secs(10)) {
                let _ = pidfd::send_signal(&fd, libc::SIGKILL);
                wait_gone(pid, start_ticks, Duration::from_secs(5));
            }
            summary.daemon_stopped = true;
        }
    }
    // 2. Every container: kill its processes, let its shim record the exit, then clean up.
    let containers = layout.containers();
    let dirs: Vec<_> = std::fs::read_dir(&containers)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for dir in &dirs {
        let meta = read_json::<ContainerMeta>(&dir.join("meta.json"));
        if let Some(state) = read_json::<ShimState>(&dir.join("state.json")) {
            if process_start_ticks(state.shim_pid) == Some(state.shim_start_ticks) {
                if let Ok(init) = pidfd::open(state.init_pid) {
                    if matches!(process_parent_and_state(state.init_pid), Some((ppid, _)) if ppid == state.shim_pid)
                    {
                        let _ = pidfd::send_signal(&init, libc::SIGKILL);
                    }
                }
                if !wait_gone(
                    state.shim_pid,
                    state.shim_start_ticks,
                    Duration::from_secs(5),
                ) {
                    if let Ok(fd) = pidfd::open(state.shim_pid) {
                        let _ = pidfd::send_signal(&fd, libc::SIGKILL);
                        wait_gone(
                            state.shim_pid,
                            state.shim_start_ticks,
                            Duration::from_secs(5),
                        );
                    }
                }
                summary.stopped += 1;
            }
        }
        // A shim still starting its container (no state yet): stop it too.
        if let Some(shim) = PidFile::read(&shim_pid_file(dir)).filter(PidFile::is_alive) {
            if let Ok(fd) = pidfd::open(shim.pid) {
                let _ = pidfd::send_signal(&fd, libc::SIGKILL);
                wait_gone(shim.pid, shim.start_ticks, Duration::from_secs(5));
            }
        }
        if let Some(meta) = meta {
            // Kills whatever is left in the container's cgroups and removes them.
            shim::delete_container(&meta);
        }
        mount::remove_dir_with_mounts(dir)?;
        summary.removed += 1;
    }
    // 3. Pod sandboxes (shared PID namespaces' holders, namespace bind mounts) and anything
    // else mounted under the data dir.
    for pod in std::fs::read_dir(layout.pods())
        .into_iter()
        .flatten()
        .flatten()
    {
        super::pidns::kill(&pod.path());
    }
    mount::remove_dir_with_mounts(&layout.pods())?;
    mount::unmount_all_under(&layout.data_dir)?;
    let _ = std::fs::remove_dir_all(layout.libcontainer_root());
    // 4. The cgroup parent of this data directory, in every hierarchy.
    remove_cgroup_parent(&layout.cgroup_parent());
    // 5. The network: bridge, veths, skiff's nftables table, address allocations.
    if let Some(config) = crate::network::NetworkConfig::load(&layout.data_dir) {
        if let Err(e) = crate::network::Network::new(config, &layout.data_dir).teardown() {
            eprintln!("skiff killall: removing the network: {e}");
        }
    }
    Ok(summary)
}

/// Removes `<hierarchy>/<parent>` (and the empty cgroups below it: pods', containers') from
/// every cgroup hierarchy.
pub fn remove_cgroup_parent(parent: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        super::cgroup::remove_tree(&h.path().join(parent));
    }
    super::cgroup::remove_tree(&Path::new("/sys/fs/cgroup").join(parent));
}
