//! `skiff shim --exec <container-dir> -- COMMAND…`: runs a process inside a running container
//! (what `kubectl exec` asks for) through libcontainer's tenant builder, with this process's
//! stdin/stdout/stderr, and exits with the process's exit code. Like the shim it is a small
//! single-threaded process of its own: the tenant builder changes its caller as the init
//! builder does.

use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};

use super::{read_json, ContainerMeta, ExitRecord, Layout, ShimState};

/// The directory of the running instance of a pod's container, if any.
pub fn running_container_dir(layout: &Layout, pod_uid: &str, container: &str) -> Option<PathBuf> {
    let prefix = super::container_id_prefix(pod_uid, container);
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir(layout.containers())
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .filter(|(_, dir)| {
            read_json::<ShimState>(&dir.join("state.json")).is_some()
                && read_json::<ExitRecord>(&dir.join("exit.json")).is_none()
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, d)| d)
}

/// Runs `command` in the container of `dir`; returns the exit code for this process.
pub fn main(dir: &Path, command: Vec<String>) -> i32 {
    let Some(meta) = read_json::<ContainerMeta>(&dir.join("meta.json")) else {
        eprintln!("skiff: no container in {}", dir.display());
        return 126;
    };
    if command.is_empty() {
        eprintln!("skiff: exec needs a command");
        return 126;
    }
    let built = ContainerBuilder::new(meta.id.clone(), SyscallType::default())
        .with_root_path(&meta.libcontainer_root)
        .and_then(|b| b.validate_id())
        .and_then(|b| {
            b.as_tenant()
                .with_container_args(command.clone())
                .with_detach(false)
                .build()
        });
    let pid = match built {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!(
                "skiff: exec of {:?} in container {} failed: {e}",
                command, meta.container_name
            );
            return 126;
        }
    };
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("skiff: waiting for the exec'd process: {e}");
                return 126;
            }
        }
    }
}
