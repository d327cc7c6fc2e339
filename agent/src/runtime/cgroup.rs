//! The pod's cgroup: `<parent>/pod<uid>`, holding its containers' cgroups as kubelet's
//! `kubepods/pod<uid>` does, and carrying the pod's `pids.max` (kubelet's `podPidsLimit`): the
//! pod's containers share one process budget, so a fork bomb in a pod of five containers stops
//! at the same count as in a pod of one.
//!
//! cgroup v1 (and hybrid) sets it in the `pids` hierarchy; v2 in the unified one, with the
//! `pids` controller enabled down the path (libcontainer enables the rest when it creates the
//! container's cgroup). The other hierarchies get the pod's directory from libcontainer.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The pod's cgroup path below the hierarchy roots (no leading slash).
pub fn pod_path(parent: &str, pod_uid: &str) -> String {
    format!("{parent}/pod{pod_uid}")
}

/// The hierarchy where `pids.max` lives, and whether it is v2's unified one.
fn pids_hierarchy() -> Option<(PathBuf, bool)> {
    let v1 = Path::new(ROOT).join("pids");
    if v1.join("cgroup.procs").exists() {
        return Some((v1, false));
    }
    let v2 = PathBuf::from(ROOT);
    v2.join("cgroup.controllers").exists().then_some((v2, true))
}

/// Makes the pod's cgroup and sets its `pids.max` (`None`: `max`). Called before each of the
/// pod's containers is created, so a directory removed in between comes back with its limit.
pub fn ensure_pod(parent: &str, pod_uid: &str, pids_limit: Option<u32>) -> std::io::Result<()> {
    let Some((root, unified)) = pids_hierarchy() else {
        return Err(std::io::Error::other(
            "no cgroup pids controller on this host: the pod's pids limit cannot be set",
        ));
    };
    let dir = root.join(pod_path(parent, pod_uid));
    std::fs::create_dir_all(&dir)?;
    if unified {
        // Enable pids in every level above the pod's directory (idempotent).
        let mut level = root.clone();
        for part in Path::new(&pod_path(parent, pod_uid)).components() {
            let _ = std::fs::write(level.join("cgroup.subtree_control"), "+pids");
            level = level.join(part);
        }
    }
    let value = pids_limit.map_or_else(|| "max".to_string(), |l| l.to_string());
    std::fs::write(dir.join("pids.max"), value)
        .map_err(|e| std::io::Error::other(format!("{}/pids.max: {e}", dir.display())))
}

/// Removes the pod's (empty) cgroup from every hierarchy.
pub fn remove_pod(parent: &str, pod_uid: &str) {
    let Ok(hierarchies) = std::fs::read_dir(ROOT) else {
        return;
    };
    let path = pod_path(parent, pod_uid);
    for h in hierarchies.flatten() {
        remove_tree(&h.path().join(&path));
    }
    remove_tree(&Path::new(ROOT).join(&path));
}

/// Removes `dir` and every cgroup below it, deepest first (a cgroup with processes stays).
pub fn remove_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for c in children.flatten() {
            if c.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&c.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the test machines (root, a pids controller): the limit lands in the pod's cgroup and
    /// the directory goes again.
    #[test]
    fn a_pods_cgroup_carries_its_pids_limit() {
        let Some((root, _)) = pids_hierarchy() else {
            eprintln!("no pids controller: skipped");
            return;
        };
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let parent = format!("skiff-unit-{}", std::process::id());
        ensure_pod(&parent, "u1", Some(123)).unwrap();
        let dir = root.join(pod_path(&parent, "u1"));
        assert_eq!(
            std::fs::read_to_string(dir.join("pids.max"))
                .unwrap()
                .trim(),
            "123"
        );
        ensure_pod(&parent, "u1", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("pids.max"))
                .unwrap()
                .trim(),
            "max"
        );
        remove_pod(&parent, "u1");
        assert!(!dir.exists());
        remove_tree(&root.join(&parent));
        assert!(!root.join(&parent).exists());
    }
}
