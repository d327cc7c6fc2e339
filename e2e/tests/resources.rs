//! Container resources become cgroup limits: a container allocating past `limits.memory` is
//! killed (exit 137), and the memory and CPU limits are what the cgroup says; the pod's QoS
//! class follows from them.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::{wait_for, wait_until, POLL};

const IMAGE: &str = "skiff-e2e-res:v1";

fn pod(name: &str, command: &str, memory: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"{command}\"]
    resources:
      requests: {{cpu: 100m, memory: 16Mi}}
      limits: {{cpu: {cpu}, memory: {memory}}}
"
    )
}

#[test]
fn memory_and_cpu_limits_are_enforced_by_the_cgroup() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    // Within its limits: reads its own cgroup limits and prints them.
    k.apply(
        &pod(
            "fits",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; sleep 30",
            "48Mi",
            "250m",
        ),
        &[],
    );
    // Past its memory limit: a 64 MiB buffer under a 32 MiB limit.
    k.apply(
        &pod(
            "hog",
            "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
            "32Mi",
            "500m",
        ),
        &[],
    );
    let (code, reason) = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "hog"])?;
        let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        Some((t["exitCode"].as_i64()?, t["reason"].as_str()?.to_string()))
    })
    .expect("the hog terminated");
    assert_eq!(
        (code, reason.as_str()),
        (137, "OOMKilled"),
        "killed by the memory limit"
    );
    assert!(k
        .run(&["wait", "--for=condition=Ready", "pod/fits", "--timeout=60s"])
        .ok());
    // The cgroup of the running container, from the host: the limits as declared.
    let cgroups = s.container_cgroups();
    let mem: Vec<String> = cgroups
        .iter()
        .filter_map(|c| std::fs::read_to_string(c.join("memory.limit_in_bytes")).ok())
        .map(|v| v.trim().to_string())
        .collect();
    assert!(
        mem.contains(&(48u64 * 1024 * 1024).to_string()),
        "memory limits seen: {mem:?} in {cgroups:?}"
    );
    let quota: Vec<String> = cgroups
        .iter()
        .filter_map(|c| std::fs::read_to_string(c.join("cpu.cfs_quota_us")).ok())
        .map(|v| v.trim().to_string())
        .collect();
    assert!(
        quota.contains(&"25000".to_string()),
        "cpu quotas seen: {quota:?}"
    );
    // The QoS class, as Kubernetes computes it: requests below limits are Burstable, requests
    // equal to limits Guaranteed.
    k.apply(&pod("steady", "sleep 30", "16Mi", "100m"), &[]);
    let qos = |name: &str| {
        k.get_json(&["pod", name]).expect("the pod")["status"]["qosClass"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(qos("fits"), "Burstable");
    let steady = wait_for(Duration::from_secs(60), || {
        Some(qos("steady")).filter(|q| !q.is_empty())
    });
    assert_eq!(steady.as_deref(), Some("Guaranteed"));
}

/// Issue 13 part 5: the kernel's OOM killer chooses as on a Kubernetes node — each container's
/// `oom_score_adj` is kubelet's for its QoS class (BestEffort 1000, Guaranteed −997, Burstable
/// from its memory request), not the daemon's −500 inherited; the shim keeps its own; and every
/// container's cgroup has the node's `pids.max`.
#[test]
fn oom_score_adj_follows_the_qos_class_and_containers_have_a_pids_limit() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&pod("burst", "sleep 300", "48Mi", "250m"), &[]);
    k.apply(&pod("steady", "sleep 300", "16Mi", "100m"), &[]);
    k.apply(
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: best}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {{name: main, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, '300']}}\n"
        ),
        &[],
    );
    for p in ["burst", "steady", "best"] {
        assert!(k
            .run(&[
                "wait",
                "--for=condition=Ready",
                &format!("pod/{p}"),
                "--timeout=60s"
            ])
            .ok());
    }
    let adj = |p: &str| -> i64 {
        let o = k.run(&["exec", p, "--", "cat", "/proc/1/oom_score_adj"]);
        assert!(o.ok(), "{o}");
        o.stdout.trim().parse().unwrap()
    };
    let mem_total: i64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<i64>()
                .unwrap()
                * 1024
        })
        .unwrap();
    let burstable = (1000 - 1000 * (16 * 1024 * 1024) / mem_total).clamp(3, 999);
    assert_eq!(adj("best"), 1000, "BestEffort");
    // Below the daemon's own value only with CAP_SYS_RESOURCE (which these test machines'
    // root lacks): then the daemon's value, which skiff logs.
    let daemon_adj: i64 =
        std::fs::read_to_string(format!("/proc/{}/oom_score_adj", s.pid().unwrap()))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap() & (1 << 24) != 0)
        .unwrap();
    let guaranteed = if sys_resource {
        -997
    } else {
        daemon_adj.max(-997)
    };
    assert_eq!(adj("steady"), guaranteed, "Guaranteed");
    assert_eq!(adj("burst"), burstable, "Burstable with 16Mi requested");
    // The shims keep the daemon's value (the test server runs with the harness's own).
    let daemon =
        std::fs::read_to_string(format!("/proc/{}/oom_score_adj", s.pid().unwrap())).unwrap();
    let mut shims = 0;
    for dir in s.container_state_dirs() {
        if let Ok(pid) = std::fs::read_to_string(dir.join("shim.pid")) {
            let pid = pid
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            if let Ok(v) = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")) {
                assert_eq!(v, daemon, "shim {pid} of {}", dir.display());
                shims += 1;
            }
        }
    }
    assert_eq!(shims, 3, "the three shims");
    // pids.max of every pod's cgroup: the default 4096; the containers' cgroups are inside.
    let pids: Vec<String> = pods_pids_max(&s);
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.iter().all(|v| v == "4096"), "{pids:?}");
    let containers = s.container_cgroups();
    assert!(
        containers.iter().all(|c| c
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("pod"))),
        "{containers:?}"
    );
}

/// `pids.max` of each pod cgroup of the server (cgroup v1's pids hierarchy).
fn pods_pids_max(s: &skiff_e2e::Server) -> Vec<String> {
    s.pod_cgroups()
        .iter()
        .filter(|c| c.starts_with("/sys/fs/cgroup/pids"))
        .filter_map(|c| std::fs::read_to_string(c.join("pids.max")).ok())
        .map(|v| v.trim().to_string())
        .collect()
}

/// `--pod-max-pids` is the pod's budget, shared by its containers (kubelet's podPidsLimit):
/// two containers of one pod each trying to hold 30 processes under a limit of 40 — the pod's
/// cgroup refuses forks past 40 (its `pids.events` counts them), so one container holds fewer
/// than 30. And the pod's cgroup goes with the pod.
#[test]
fn a_pods_containers_share_its_pids_limit() {
    let s = skiff_e2e::kubectl::server_with_images_and_args(&[IMAGE], &["--pod-max-pids", "40"]);
    let k = Kubectl::admin(&s);
    let hog = |name: &str| {
        format!(
            "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [sh, -c, 'n=0; while [ $n -lt 30 ]; do sleep 600 & n=$((n+1)); done; wait']\n"
        )
    };
    k.apply(
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: pair}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n{}{}",
            hog("a"),
            hog("b")
        ),
        &[],
    );
    let uid = skiff_e2e::wait_for(std::time::Duration::from_secs(30), || {
        k.get_json(&["pod", "pair"])?["metadata"]["uid"]
            .as_str()
            .map(String::from)
    })
    .expect("the pod");
    let pod_dir = || {
        s.pod_cgroups().into_iter().find(|c| {
            c.starts_with("/sys/fs/cgroup/pids")
                && c.file_name()
                    .is_some_and(|n| n.to_string_lossy() == format!("pod{uid}"))
        })
    };
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    // The kernel counts a refused fork in the cgroup of the process that forked (the
    // container's, which a restart replaces), so the proof is the shell's own error: busybox
    // sh gives up with "can't fork" once the pod's 40 are taken.
    let refused = |c: &str| {
        [
            &["logs", "pair", "-c", c][..],
            &["logs", "pair", "-c", c, "--previous"],
        ]
        .iter()
        .any(|args| k.run(args).stdout.contains("can't fork"))
    };
    let mut highest = 0usize;
    let seen = skiff_e2e::wait_until(std::time::Duration::from_secs(60), skiff_e2e::POLL, || {
        let Some(dir) = pod_dir() else { return false };
        assert_eq!(read(dir.join("pids.max")).trim(), "40");
        let current: usize = read(dir.join("pids.current")).trim().parse().unwrap_or(0);
        highest = highest.max(current);
        current >= 31 && (refused("a") || refused("b"))
    });
    assert!(
        seen,
        "no fork refused in the pod (highest pids.current {highest}); pod {:#}\n{}",
        k.get_json(&["pod", "pair"]).unwrap_or_default()["status"]["containerStatuses"],
        s.log_tail(30)
    );
    assert!(highest <= 40, "pids.current reached {highest}");
    assert!(k.run(&["delete", "pod", "pair", "--wait=true"]).ok());
    assert!(
        skiff_e2e::wait_until(skiff_e2e::WAIT, skiff_e2e::POLL, || pod_dir().is_none()),
        "the pod's cgroup stayed"
    );
}

/// Local ephemeral storage, as kubelet enforces it: a pod writing past an emptyDir's
/// `sizeLimit`, or past its container's `ephemeral-storage` limit in its own writable layer,
/// is evicted (Failed, reason Evicted, kubelet's message, a DisruptionTarget condition) and
/// not restarted, also after a restart of skiff; a pod within its limits keeps running; a
/// request larger than the node leaves the pod unschedulable.
#[test]
fn ephemeral_storage_limits_evict_as_kubelet_does() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let write = |name: &str, path: &str, volume: &str, limits: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"dd if=/dev/zero of={path}/fill bs=1M count=3; sleep 3600\"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
    resources:
      requests: {{ephemeral-storage: 1Mi}}
      limits: {{ephemeral-storage: {limits}}}
  volumes:
  - name: scratch
    emptyDir: {{{volume}}}
"
        )
    };
    k.apply(&write("volume", "/scratch", "sizeLimit: 2Mi", "64Mi"), &[]);
    k.apply(&write("layer", "/tmp", "", "2Mi"), &[]);
    k.apply(&write("fits", "/tmp", "sizeLimit: 8Mi", "8Mi"), &[]);
    let evicted = |name: &str| {
        wait_for(Duration::from_secs(60), || {
            let p = k.get_json(&["pod", name])?;
            (p["status"]["phase"] == "Failed").then_some(p)
        })
        .unwrap_or_else(|| panic!("{name} was not evicted\n{}", s.log_tail(30)))
    };
    let p = evicted("volume");
    let volume_uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(p["status"]["reason"], "Evicted");
    assert_eq!(
        p["status"]["message"],
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"2Mi\". "
    );
    let p = evicted("layer");
    assert_eq!(p["status"]["reason"], "Evicted");
    assert_eq!(
        p["status"]["message"],
        "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. "
    );
    let disruption = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .expect("a DisruptionTarget condition");
    assert_eq!(disruption["reason"], "TerminationByKubelet");
    // The containers were stopped and none restarts.
    let stopped = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "layer"])?;
        let st = &p["status"]["containerStatuses"][0];
        st["state"]["terminated"].is_object().then(|| st.clone())
    })
    .expect("the evicted container stopped");
    std::thread::sleep(Duration::from_secs(3));
    let again = k.get_json(&["pod", "layer"]).unwrap();
    assert_eq!(
        again["status"]["containerStatuses"][0]["restartCount"],
        stopped["restartCount"]
    );
    assert!(k.run(&["get", "events"]).stdout.contains("Evicted"));
    // The disk is given back: once its containers stopped, the evicted pod's emptyDir is
    // removed (with the rest of its sandbox), as kubelet tears down a terminal pod.
    let scratch = s
        .data_dir
        .join("pods")
        .join(format!("default_volume_{volume_uid}"))
        .join("volumes/scratch");
    assert!(
        wait_until(Duration::from_secs(20), POLL, || !scratch.exists()),
        "{} kept after the eviction",
        scratch.display()
    );
    // Evicted stays evicted across a restart of the daemon (from the stored status).
    let mut s = s;
    s.restart();
    std::thread::sleep(Duration::from_secs(5));
    let after = k.get_json(&["pod", "layer"]).unwrap();
    assert_eq!(after["status"]["reason"], "Evicted");
    assert_eq!(
        after["status"]["containerStatuses"][0]["restartCount"],
        stopped["restartCount"]
    );
    assert!(after["status"]["containerStatuses"][0]["state"]["running"].is_null());
    // Within its limits: still running after a check has passed.
    assert_eq!(
        k.get_json(&["pod", "fits"]).unwrap()["status"]["phase"],
        "Running"
    );
    // A node without room for the request: unschedulable, said as kube-scheduler says it.
    let big = write("huge", "/tmp", "", "1Ei")
        .replace("ephemeral-storage: 1Mi", "ephemeral-storage: 1Ei");
    k.apply(&big, &[]);
    let message = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "huge"])?;
        let c = p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        c["message"].as_str().map(str::to_string)
    })
    .expect("huge is unschedulable");
    assert!(
        message.contains("Insufficient ephemeral-storage"),
        "{message}"
    );
}
