//! Container resources become cgroup limits: a container allocating past `limits.memory` is
//! killed (exit 137), and the memory and CPU limits are what the cgroup says; the pod's QoS
//! class follows from them.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

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
