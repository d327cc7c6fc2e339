//! CPU and memory usage of the node and of each running container, for the Metrics API
//! (`kubectl top`), as metrics-server reports them from cAdvisor: CPU as a rate over the
//! window between two samples (cumulative CPU time from the container's cgroup — `cpuacct.usage`
//! in cgroup v1, `cpu.stat`'s `usage_usec` in v2), memory as the working set (usage minus
//! inactive file pages: `memory.usage_in_bytes − total_inactive_file` in v1, `memory.current −
//! inactive_file` in v2). The node's figures come from `/proc/stat` and `/proc/meminfo`.
//!
//! A [`Sampler`] keeps the last two samples; the daemon takes one every
//! [`SAMPLE_INTERVAL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{read_json, ContainerMeta, ExitRecord, Layout, ShimState};

/// How often the daemon samples (metrics-server's default resolution is 15 s).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// Cumulative figures at one moment.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    timestamp: jiff::Timestamp,
    /// The node's busy CPU time, ns, and memory working set, bytes.
    node: Option<(u64, u64)>,
    /// Per running container id: what it is, its CPU time (ns) and working set (bytes).
    containers: HashMap<String, (ContainerMeta, u64, u64)>,
}

/// The usage between the last two samples: CPU in nanocores (10⁻⁹ CPU) over the window,
/// memory working sets in bytes.
#[derive(Clone, Debug)]
pub struct Report {
    /// When the window ended (RFC 3339).
    pub timestamp: String,
    /// The window's length.
    pub window: Duration,
    /// The node's (CPU, memory), if they could be read.
    pub node: Option<(u64, u64)>,
    /// Each container running at both samples: (pod uid, container name, CPU, memory).
    pub containers: Vec<(String, String, u64, u64)>,
}

/// Keeps the last two samples of a data directory's containers.
pub struct Sampler {
    layout: Layout,
    samples: Mutex<(Option<Sample>, Option<Sample>)>,
}

impl Sampler {
    /// A sampler with no sample yet.
    pub fn new(layout: Layout) -> Self {
        Sampler {
            layout,
            samples: Mutex::new((None, None)),
        }
    }

    /// Takes a sample (blocking: reads files under `/proc` and `/sys/fs/cgroup`).
    pub fn sample(&self) {
        let sample = Sample {
            at: Instant::now(),
            timestamp: jiff::Timestamp::now(),
            node: node_cpu_ns().zip(node_working_set()),
            containers: running_containers(&self.layout)
                .into_iter()
                .filter_map(|meta| {
                    // Inside the pod's cgroup (`runtime/cgroup.rs`); a container started by
                    // an older daemon sits right under the parent.
                    let parent = self.layout.cgroup_parent();
                    let (cpu, memory) = [
                        format!(
                            "{}/{}",
                            super::cgroup::pod_path(&parent, &meta.pod_uid),
                            meta.id
                        ),
                        format!("{parent}/{}", meta.id),
                    ]
                    .iter()
                    .find_map(|path| cgroup_cpu_ns(path).zip(cgroup_working_set(path)))?;
                    Some((meta.id.clone(), (meta, cpu, memory)))
                })
                .collect(),
        };
        let mut samples = self.samples.lock().expect("not poisoned");
        samples.0 = samples.1.take();
        samples.1 = Some(sample);
    }

    /// The usage between the last two samples (`None` before the second).
    pub fn report(&self) -> Option<Report> {
        let samples = self.samples.lock().expect("not poisoned");
        let (Some(old), Some(new)) = (&samples.0, &samples.1) else {
            return None;
        };
        let window = new.at.duration_since(old.at);
        let secs = window.as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let rate = |from: u64, to: u64| (to.saturating_sub(from) as f64 / secs) as u64;
        let node = match (old.node, new.node) {
            (Some((c0, _)), Some((c1, m))) => Some((rate(c0, c1), m)),
            _ => None,
        };
        let mut containers: Vec<(String, String, u64, u64)> = new
            .containers
            .iter()
            .filter_map(|(id, (meta, cpu, memory))| {
                let (_, cpu0, _) = old.containers.get(id)?;
                Some((
                    meta.pod_uid.clone(),
                    meta.container_name.clone(),
                    rate(*cpu0, *cpu),
                    *memory,
                ))
            })
            .collect();
        containers.sort();
        Some(Report {
            timestamp: jiff::Timestamp::from_second(new.timestamp.as_second())
                .unwrap_or(new.timestamp)
                .to_string(),
            window,
            node,
            containers,
        })
    }
}

/// The containers whose shim reported them running and that have not exited.
fn running_containers(layout: &Layout) -> Vec<ContainerMeta> {
    let Ok(rd) = std::fs::read_dir(layout.containers()) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|dir| {
            read_json::<ShimState>(&dir.join("state.json")).is_some()
                && read_json::<ExitRecord>(&dir.join("exit.json")).is_none()
        })
        .filter_map(|dir| read_json::<ContainerMeta>(&dir.join("meta.json")))
        .collect()
}

/// The first of `candidates` (paths under `/sys/fs/cgroup` with `{}` for the cgroup's path)
/// that reads.
fn read_cgroup_file(path: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find_map(|c| std::fs::read_to_string(c.replace("{}", path)).ok())
}

/// A `key value` line's value in a cgroup stat file.
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// A cgroup's cumulative CPU time, ns (v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec`).
fn cgroup_cpu_ns(path: &str) -> Option<u64> {
    if let Some(v1) = read_cgroup_file(
        path,
        &[
            "/sys/fs/cgroup/cpuacct/{}/cpuacct.usage",
            "/sys/fs/cgroup/cpu,cpuacct/{}/cpuacct.usage",
        ],
    ) {
        return v1.trim().parse().ok();
    }
    let stat = read_cgroup_file(path, &["/sys/fs/cgroup/{}/cpu.stat"])?;
    stat_value(&stat, "usage_usec").map(|us| us * 1000)
}

/// A cgroup's memory working set, bytes, as cAdvisor computes it.
fn cgroup_working_set(path: &str) -> Option<u64> {
    if let Some(usage) = read_cgroup_file(path, &["/sys/fs/cgroup/memory/{}/memory.usage_in_bytes"])
    {
        let usage: u64 = usage.trim().parse().ok()?;
        let stat = read_cgroup_file(path, &["/sys/fs/cgroup/memory/{}/memory.stat"])?;
        let inactive = stat_value(&stat, "total_inactive_file").unwrap_or(0);
        return Some(usage.saturating_sub(inactive));
    }
    let current: u64 = read_cgroup_file(path, &["/sys/fs/cgroup/{}/memory.current"])?
        .trim()
        .parse()
        .ok()?;
    let stat = read_cgroup_file(path, &["/sys/fs/cgroup/{}/memory.stat"])?;
    let inactive = stat_value(&stat, "inactive_file").unwrap_or(0);
    Some(current.saturating_sub(inactive))
}

/// The node's busy CPU time since boot, ns: `/proc/stat`'s `cpu` line without idle and iowait.
fn node_cpu_ns() -> Option<u64> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?, clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

fn parse_proc_stat(text: &str, hz: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy * 1_000_000_000 / hz)
}

/// The node's memory working set, bytes: total − free − inactive file pages.
fn node_working_set() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let kib = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let total = kib("MemTotal")?;
    let free = kib("MemFree")?;
    let inactive_file = kib("Inactive(file)").unwrap_or(0);
    Some(total.saturating_sub(free).saturating_sub(inactive_file) * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_proc_stat(stat, 100), Some(161 * 10_000_000));
        let meminfo = "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    500 kB\nInactive(file):  100 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(700 * 1024));
        assert_eq!(
            stat_value("cache 5\ntotal_inactive_file 42\n", "total_inactive_file"),
            Some(42)
        );
        assert_eq!(stat_value("inactive_file 7\n", "total_inactive_file"), None);
    }

    #[test]
    fn the_node_reads_on_this_machine() {
        assert!(node_cpu_ns().is_some_and(|n| n > 0));
        assert!(node_working_set().is_some_and(|n| n > 0));
    }
}
