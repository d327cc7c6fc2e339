//! Local ephemeral storage, as kubelet's eviction manager enforces it: a container's
//! `ephemeral-storage` limit (its writable layer and its logs), the pod's total (the sum of
//! its containers' limits, when every container has one, against their usage plus the
//! disk-backed emptyDirs), and an emptyDir's `sizeLimit`. A pod over one of them is evicted:
//! its containers killed, its phase `Failed` with reason `Evicted` and kubelet's message,
//! never restarted (a ReplicaSet makes a replacement, as on Kubernetes).
//!
//! Usage is measured every [`INTERVAL`] off the worker loop (a walk of the directories,
//! counting allocated blocks once per inode and staying on one filesystem, as `du -x`).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use crate::runtime::oci::parse_quantity;

/// How often pods with a storage limit are measured (kubelet's housekeeping period).
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// kubelet's reason for an evicted pod.
pub(crate) const REASON: &str = "Evicted";

/// What to measure for one pod: where its containers and disk-backed emptyDirs keep data.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub uid: String,
    /// (container name, its limit in bytes if it has one, its writable layer, its log folder).
    pub containers: Vec<(String, Option<u64>, PathBuf, PathBuf)>,
    /// (volume name, its `sizeLimit` in bytes if it has one, its directory).
    pub empty_dirs: Vec<(String, Option<u64>, PathBuf)>,
    /// The pod's limit as kubelet's pod-level check computes it, when a container has one.
    pub pod_limit: Option<u64>,
}

fn bytes(q: &str) -> Option<u64> {
    parse_quantity(q, 1.0).and_then(|b| u64::try_from(b).ok())
}

/// A container's `ephemeral-storage` limit in bytes.
fn container_limit(c: &k8s_openapi::api::core::v1::Container) -> Option<u64> {
    c.resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("ephemeral-storage"))
        .and_then(|q| bytes(&q.0))
}

/// Whether the pod declares anything this module enforces.
pub(crate) fn has_limits(spec: &PodSpec) -> bool {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .any(|c| container_limit(c).is_some())
        || spec.volumes.iter().flatten().any(|v| {
            v.empty_dir
                .as_ref()
                .is_some_and(|e| e.medium.as_deref() != Some("Memory") && e.size_limit.is_some())
        })
}

/// What to measure of a pod: `running` gives each container's current writable layer.
pub(crate) fn subject(
    uid: &str,
    spec: &PodSpec,
    pod_dir: &Path,
    running: impl Fn(&str) -> Option<PathBuf>,
) -> Subject {
    let all: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect();
    let containers = all
        .iter()
        .map(|c| {
            let layer = running(&c.name).unwrap_or_default();
            (
                c.name.clone(),
                container_limit(c),
                layer,
                pod_dir.join(&c.name),
            )
        })
        .collect();
    // kubelet's PodLimits: the app containers' limits summed, or the largest init
    // container's, whichever is more; containers without a limit add nothing.
    let app: Vec<u64> = spec.containers.iter().filter_map(container_limit).collect();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(container_limit)
        .max();
    let pod_limit = match (app.is_empty(), init) {
        (true, None) => None,
        (_, init) => Some(app.iter().sum::<u64>().max(init.unwrap_or(0))),
    };
    let empty_dirs = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            let e = v.empty_dir.as_ref()?;
            (e.medium.as_deref() != Some("Memory")).then(|| {
                let limit = e.size_limit.as_ref().and_then(|q| bytes(&q.0));
                (v.name.clone(), limit, pod_dir.join("volumes").join(&v.name))
            })
        })
        .collect();
    Subject {
        uid: uid.to_string(),
        containers,
        empty_dirs,
        pod_limit,
    }
}

/// Bytes allocated under `root` (not following symlinks, not crossing into other
/// filesystems, each inode once). A missing path is 0.
pub(crate) fn usage(root: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(root) else {
        return 0;
    };
    let device = top.dev();
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![(root.to_path_buf(), top)];
    while let Some((path, meta)) = stack.pop() {
        if meta.dev() != device {
            continue;
        }
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert(meta.ino()) {
            continue;
        }
        total = total.saturating_add(meta.blocks() * 512);
        if meta.is_dir() {
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(m) = entry.metadata() {
                    stack.push((entry.path(), m));
                }
            }
        }
    }
    total
}

/// A quantity of bytes as kubelet prints it in its messages (`2Gi`, `500Mi`, else bytes).
fn quantity(b: u64) -> String {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if b >= size && b.is_multiple_of(size) {
            return format!("{}{unit}", b / size);
        }
    }
    b.to_string()
}

/// Measures a pod; kubelet's message for the first limit it is over, if any (emptyDirs,
/// then the pod's total, then each container, as kubelet's localStorageEviction checks).
pub(crate) fn verdict(s: &Subject, measure: impl Fn(&Path) -> u64) -> Option<String> {
    let mut volumes = 0u64;
    for (name, limit, dir) in &s.empty_dirs {
        let used = measure(dir);
        volumes += used;
        if let Some(limit) = limit {
            if used > *limit {
                return Some(format!(
                    "Usage of EmptyDir volume \"{name}\" exceeds the limit \"{}\". ",
                    quantity(*limit)
                ));
            }
        }
    }
    let used: Vec<u64> = s
        .containers
        .iter()
        .map(|(_, _, layer, logs)| {
            let layer = if layer.as_os_str().is_empty() {
                0
            } else {
                measure(layer)
            };
            layer + measure(logs)
        })
        .collect();
    if let Some(limit) = s.pod_limit {
        if volumes + used.iter().sum::<u64>() > limit {
            return Some(format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
                quantity(limit)
            ));
        }
    }
    for ((name, limit, _, _), used) in s.containers.iter().zip(used) {
        if let Some(limit) = limit {
            if used > *limit {
                return Some(format!(
                    "Container {name} exceeded its local ephemeral storage limit \"{}\". ",
                    quantity(*limit)
                ));
            }
        }
    }
    None
}

/// The eviction message a stored status carries (after a restart of the daemon, an evicted
/// pod stays evicted).
pub(crate) fn stored(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    (status.phase.as_deref() == Some("Failed") && status.reason.as_deref() == Some(REASON))
        .then(|| status.message.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn usage_counts_blocks_once_per_inode_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 100_000]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c"), vec![1u8; 50_000]).unwrap();
        let used = usage(dir.path());
        // 100 KB + 50 KB of data, a few blocks of directories; /usr not counted.
        assert!((150_000..300_000).contains(&used), "{used}");
        assert_eq!(usage(&dir.path().join("missing")), 0);
    }

    #[test]
    fn verdicts_name_the_limit_as_kubelet_does() {
        let s = spec(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "2Mi"}}}],
            "volumes": [
                {"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                {"name": "scratch", "emptyDir": {}}]}));
        assert!(has_limits(&s));
        let dir = Path::new("/pod");
        let subject = subject("u", &s, dir, |c| Some(PathBuf::from(format!("/layer/{c}"))));
        assert_eq!(subject.pod_limit, Some(3 << 20));
        assert_eq!(
            subject.empty_dirs.len(),
            2,
            "memory-backed emptyDirs are not disk"
        );
        fn sizes(m: HashMap<&'static str, u64>) -> impl Fn(&Path) -> u64 {
            move |p| m.get(p.to_str().unwrap()).copied().unwrap_or(0)
        }
        assert_eq!(verdict(&subject, sizes(HashMap::new())), None);
        let over_volume = HashMap::from([("/pod/volumes/cache", 2 << 20)]);
        assert_eq!(
            verdict(&subject, sizes(over_volume)).unwrap(),
            "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\". "
        );
        let over_container = HashMap::from([("/layer/a", 1 << 20), ("/pod/a", 1)]);
        assert_eq!(
            verdict(&subject, sizes(over_container)).unwrap(),
            "Container a exceeded its local ephemeral storage limit \"1Mi\". "
        );
        // Under each container's limit, over the pod's total with the scratch volume.
        let over_pod = HashMap::from([
            ("/layer/a", 1 << 19),
            ("/layer/b", 1 << 20),
            ("/pod/volumes/scratch", 2 << 20),
        ]);
        assert_eq!(
            verdict(&subject, sizes(over_pod)).unwrap(),
            "Pod ephemeral local storage usage exceeds the total limit of containers 3Mi. "
        );
    }

    #[test]
    fn the_pod_total_counts_the_containers_that_have_a_limit() {
        let s = spec(serde_json::json!({
            "initContainers": [{"name": "i", "resources": {"limits": {"ephemeral-storage": "4Mi"}}}],
            "containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "2Mi"}}},
                {"name": "c"}]}));
        let subject = subject("u", &s, Path::new("/p"), |_| None);
        assert_eq!(
            subject.pod_limit,
            Some(4 << 20),
            "the init container's is larger"
        );
        let one = spec(serde_json::json!({"containers": [
            {"name": "a", "resources": {"limits": {"ephemeral-storage": "1Mi"}}}, {"name": "b"}]}));
        assert_eq!(subject_of(&one).pod_limit, Some(1 << 20));
        let none = spec(serde_json::json!({"containers": [{"name": "a"}],
            "volumes": [{"name": "v", "emptyDir": {}}]}));
        assert_eq!(subject_of(&none).pod_limit, None);
        assert!(!has_limits(&none));
    }

    fn subject_of(s: &PodSpec) -> Subject {
        subject("u", s, Path::new("/p"), |_| None)
    }
}
