//! The Node (issue 12 parts 4–5): `kubectl get nodes -o wide`, `describe node`, label, taint,
//! cordon with the admin token (and refused to a namespace token); what the admin set survives
//! a restart; pods scheduled against the node: an unsatisfiable nodeSelector Pending with the
//! scheduler's reason until the node is labelled, a taint and a toleration, required
//! anti-affinity leaving one of two replicas Pending.

use std::time::Duration;

use skiff_e2e::kubectl::{
    namespace_token, server_with_images, server_with_images_and_args, Kubectl,
};
use skiff_e2e::{wait_for, wait_until};

const IMAGE: &str = "skiff-e2e-node:v1";

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap()
        .trim_matches('"')
        .to_string()
}

fn pod_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: 0
{extra}
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sleep\", \"3600\"]
"
    )
}

fn phase(k: &Kubectl, pod: &str) -> String {
    k.get_json(&["pod", pod])
        .map(|p| {
            p["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

fn wait_phase(k: &Kubectl, pod: &str, want: &str) {
    let ok = wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        phase(k, pod) == want
    });
    assert!(
        ok,
        "pod {pod} not {want}: {}",
        k.run(&["get", "pod", pod, "-o", "yaml"])
    );
}

/// The pod's PodScheduled condition once it says Unschedulable.
fn unschedulable(k: &Kubectl, pod: &str) -> serde_json::Value {
    wait_for(Duration::from_secs(20), || {
        let p = k.get_json(&["pod", pod])?;
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "{pod} not Unschedulable: {}",
            k.run(&["get", "pod", pod, "-o", "yaml"])
        )
    })
}

#[test]
fn node_is_listed_described_labelled_tainted_and_cordoned() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let name = node_name();
    let node = wait_for(Duration::from_secs(20), || k.get_json(&["node", &name]))
        .expect("the Node object");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], name);
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        "true"
    );
    let cap = &node["status"]["capacity"];
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(cap["cpu"], cpus.to_string(), "{node}");
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cap["memory"], format!("{mem_kib}Ki"));
    assert_eq!(cap["pods"], "110");

    // get nodes -o wide: kubectl's columns, the machine's values.
    let wide = k.ok(&["get", "nodes", "-o", "wide"]);
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(&format!("{name} ")), "{wide}");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "Ready", "{wide}");
    assert_eq!(cols[2], "control-plane,master", "{wide}");
    assert!(cols[4].starts_with("v1.32."), "{wide}");
    let internal_ip = node["status"]["addresses"][0]["address"].as_str().unwrap();
    assert_eq!(cols[5], internal_ip);
    let host_ips = std::process::Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&host_ips.stdout).contains(&format!("inet {internal_ip}/")),
        "{internal_ip} is not an address of this machine"
    );
    assert!(row.contains(&os_image()), "{wide}");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(row.contains(kernel.trim()), "{wide}");
    assert!(
        row.trim_end()
            .ends_with(&format!("skiff://{}", env!("CARGO_PKG_VERSION"))),
        "{wide}"
    );

    // describe node.
    let d = k.ok(&["describe", "node", &name]);
    for want in [
        "Roles:",
        "Conditions:",
        "KubeletReady",
        "Capacity:",
        "Allocatable:",
        "System Info:",
        "Kernel Version:",
        "Non-terminated Pods:",
        "InternalIP:",
    ] {
        assert!(d.contains(want), "no {want:?} in describe:\n{d}");
    }

    // label, taint, cordon.
    k.ok(&["label", "node", &name, "disk=ssd"]);
    k.ok(&["taint", "node", &name, "dedicated=db:NoSchedule"]);
    k.ok(&["cordon", &name]);
    let wide = k.ok(&["get", "nodes"]);
    assert!(wide.contains("Ready,SchedulingDisabled"), "{wide}");
    k.ok(&["uncordon", &name]);
    let n = k.get_json(&["node", &name]).unwrap();
    assert_eq!(n["metadata"]["labels"]["disk"], "ssd");
    assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
    assert!(n["spec"]["unschedulable"].is_null() || n["spec"]["unschedulable"] == false);

    // A namespace token can neither label, delete nor read the node.
    k.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ci}\n",
        &[],
    );
    let (kc, _) = namespace_token(&s, "ci");
    let ci = Kubectl::with_kubeconfig(&s, &kc);
    for args in [
        vec!["label", "node", &name, "owned=yes"],
        vec!["taint", "node", &name, "x=y:NoSchedule"],
        vec!["delete", "node", &name],
        vec!["get", "node", &name],
    ] {
        let o = ci.run(&args);
        assert!(!o.ok() && o.stderr.contains("forbidden"), "{args:?}: {o}");
    }
    let n = k.get_json(&["node", &name]).unwrap();
    assert!(n["metadata"]["labels"]["owned"].is_null());

    // What the admin set survives a restart (the daemon's own labels come back too).
    k.ok(&["label", "node", &name, "kubernetes.io/os-"]);
    s.restart();
    let n = wait_for(Duration::from_secs(30), || {
        let n = k.get_json(&["node", &name])?;
        (n["metadata"]["labels"]["kubernetes.io/os"] == "linux").then_some(n)
    })
    .expect("the default labels set again after a restart");
    assert_eq!(n["metadata"]["labels"]["disk"], "ssd", "{n}");
    assert_eq!(n["spec"]["taints"][0]["key"], "dedicated", "{n}");
}

#[test]
fn pods_are_scheduled_against_the_node() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let name = node_name();
    wait_for(Duration::from_secs(20), || k.get_json(&["node", &name])).expect("the Node");

    // An unsatisfiable nodeSelector: Pending with the scheduler's words, then Running once
    // the node carries the label.
    k.apply(&pod_yaml("picky", "  nodeSelector: {disktype: ssd}"), &[]);
    let c = unschedulable(&k, "picky");
    assert_eq!(c["status"], "False");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );
    let d = k.ok(&["describe", "pod", "picky"]);
    assert!(
        d.contains("FailedScheduling") && d.contains("didn't match Pod's node affinity/selector"),
        "{d}"
    );
    assert_eq!(phase(&k, "picky"), "Pending");
    k.ok(&["label", "node", &name, "disktype=ssd"]);
    wait_phase(&k, "picky", "Running");
    let p = k.get_json(&["pod", "picky"]).unwrap();
    assert_eq!(p["spec"]["nodeName"], name);

    // A taint keeps pods away unless they tolerate it.
    k.ok(&["taint", "node", &name, "dedicated=db:NoSchedule"]);
    k.apply(&pod_yaml("plain", ""), &[]);
    let c = unschedulable(&k, "plain");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("1 node(s) had untolerated taint {dedicated: db}"),
        "{c}"
    );
    k.apply(
        &pod_yaml(
            "tolerant",
            "  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]",
        ),
        &[],
    );
    wait_phase(&k, "tolerant", "Running");
    k.ok(&["taint", "node", &name, "dedicated-"]);
    wait_phase(&k, "plain", "Running");

    // Required anti-affinity on the host name: one of two replicas stays Pending.
    k.apply(
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: spread}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: spread}}}}
  template:
    metadata: {{labels: {{app: spread}}}}
    spec:
      terminationGracePeriodSeconds: 0
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {{matchLabels: {{app: spread}}}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sleep\", \"3600\"]
"
        ),
        &[],
    );
    let phases = wait_for(Duration::from_secs(30), || {
        let mut ph: Vec<String> = k.get_json(&["pods", "-l", "app=spread"])?["items"]
            .as_array()?
            .iter()
            .map(|p| {
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        ph.sort();
        (ph == ["Pending", "Running"]).then_some(ph)
    });
    assert!(
        phases.is_some(),
        "{}",
        k.run(&["get", "pods", "-o", "wide"])
    );
    let pending = k
        .get_json(&[
            "pods",
            "-l",
            "app=spread",
            "--field-selector",
            "status.phase=Pending",
        ])
        .unwrap();
    let pod = pending["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let c = unschedulable(&k, &pod);
    assert!(
        // Kubernetes checks the bound pods' anti-affinity first: their rule refuses it.
        c["message"]
            .as_str()
            .unwrap()
            .contains("1 node(s) didn't satisfy existing pods anti-affinity rules"),
        "{c}"
    );
    // Still Pending a few passes later (the decision holds).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(phase(&k, &pod), "Pending");
    k.ok(&["delete", "deployment", "spread", "--wait=false"]);

    // PriorityClasses: the built-in ones listed; a pod's priority from its class; an unknown
    // class refused as Kubernetes' admission refuses it.
    let classes = k.ok(&["get", "priorityclasses"]);
    assert!(
        classes.contains("system-node-critical") && classes.contains("2000001000"),
        "{classes}"
    );
    k.apply(
        &pod_yaml("critical", "  priorityClassName: system-cluster-critical"),
        &[],
    );
    let p = k.get_json(&["pod", "critical"]).unwrap();
    assert_eq!(p["spec"]["priority"], 2_000_000_000);
    wait_phase(&k, "critical", "Running");
    let o = k.run_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("unknown", "  priorityClassName: nope"),
    );
    assert!(!o.ok(), "{o}");
    assert!(
        o.stderr
            .contains("pods \"unknown\" is forbidden: no PriorityClass with name nope was found"),
        "{o}"
    );
}

/// `--max-pods` sets the node's `pods` capacity (kubelet's maxPods): past it a pod stays
/// Pending with the scheduler's `Too many pods`, and starts once another goes.
#[test]
fn max_pods_bounds_the_pods_the_node_takes() {
    let s = server_with_images_and_args(&[IMAGE], &["--max-pods", "2"]);
    let k = Kubectl::admin(&s);
    let name = node_name();
    let node =
        wait_for(Duration::from_secs(20), || k.get_json(&["node", &name])).expect("the Node");
    assert_eq!(node["status"]["capacity"]["pods"], "2");
    assert_eq!(node["status"]["allocatable"]["pods"], "2");
    for pod in ["one", "two"] {
        k.apply(&pod_yaml(pod, ""), &[]);
        wait_phase(&k, pod, "Running");
    }
    k.apply(&pod_yaml("three", ""), &[]);
    let c = unschedulable(&k, "three");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.starts_with("0/1 nodes are available: 1 Too many pods."),
        "{msg}"
    );
    assert_eq!(phase(&k, "three"), "Pending");
    k.ok(&["delete", "pod", "one", "--wait=false"]);
    wait_phase(&k, "three", "Running");
}
