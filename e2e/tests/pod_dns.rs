//! A pod's name resolution: `hostAliases` in its /etc/hosts, `dnsPolicy: None` with
//! `dnsConfig` (only what it says), `dnsConfig` merged into ClusterFirst's cluster DNS file,
//! and `setHostnameAsFQDN` (the kernel hostname is the pod's FQDN).

use skiff_e2e::kubectl::{server_with_images, Kubectl};

const IMAGE: &str = "skiff-e2e-dns:v1";

#[test]
fn aliases_dns_config_and_fqdn() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: own}}
spec:
  terminationGracePeriodSeconds: 0
  hostname: db-0
  subdomain: db
  setHostnameAsFQDN: true
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [home.test]
    options: [{{name: ndots, value: \"2\"}}]
  hostAliases:
  - {{ip: 192.0.2.10, hostnames: [nas, nas.home.test]}}
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, \"3600\"]
---
apiVersion: v1
kind: Pod
metadata: {{name: merged}}
spec:
  terminationGracePeriodSeconds: 0
  dnsConfig:
    searches: [home.test]
    options: [{{name: ndots, value: \"1\"}}]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, \"3600\"]
"
        ),
        &[],
    );
    for pod in ["own", "merged"] {
        let o = k.run(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=60s",
        ]);
        assert!(o.ok(), "{pod}: {}", o.stderr);
    }
    let exec = |pod: &str, cmd: &[&str]| {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(cmd);
        k.ok(&args)
    };
    assert_eq!(
        exec("own", &["cat", "/etc/resolv.conf"]),
        "nameserver 192.0.2.53\nsearch home.test\noptions ndots:2\n"
    );
    let hosts = exec("own", &["cat", "/etc/hosts"]);
    assert!(
        hosts.ends_with("\n# Entries added by HostAliases.\n192.0.2.10\tnas\tnas.home.test\n"),
        "{hosts}"
    );
    assert!(
        hosts.contains("\tdb-0.db.default.svc.cluster.local\tdb-0\n"),
        "{hosts}"
    );
    assert_eq!(
        exec("own", &["hostname"]).trim(),
        "db-0.db.default.svc.cluster.local"
    );
    let resolv = exec("merged", &["cat", "/etc/resolv.conf"]);
    let lines: Vec<&str> = resolv.lines().collect();
    assert!(lines[0].starts_with("nameserver "), "{resolv}");
    assert_eq!(
        &lines[1..],
        [
            "search default.svc.cluster.local svc.cluster.local cluster.local home.test",
            "options ndots:1"
        ],
        "{resolv}"
    );
    assert_eq!(exec("merged", &["hostname"]).trim(), "merged");
}
