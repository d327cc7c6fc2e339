//! The attack suite (issue 13): what a CI pipeline's namespace token (`skiff token create -n
//! ci`) tries in order to become root on the host, through the real kubectl — each refused in
//! Kubernetes' words, while the admin may still do what the admin should. And what a pod
//! tries: the host's 127.0.0.1 services.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skiff_e2e::kubectl::{namespace_token, server_with_images, KOut, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-attack:v1";

fn pod(name: &str, spec_extra: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
{spec_extra}  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, '3600']
{container_extra}"
    )
}

/// The admin's kubectl, and a kubectl with a token for the namespace `ci` (created).
fn admin_and_ci(s: &skiff_e2e::Server) -> (Kubectl, Kubectl) {
    let admin = Kubectl::admin(s);
    admin.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ci}\n",
        &[],
    );
    let ci = Kubectl::with_kubeconfig(s, &namespace_token(s, "ci").0);
    (admin, ci)
}

/// Asserts `o` failed and its error says every one of `words`.
fn refused(o: &KOut, words: &[&str]) {
    assert_ne!(o.code, 0, "accepted:\n{o}");
    for w in words {
        assert!(o.stderr.contains(w), "missing {w:?} in:\n{o}");
    }
}

#[test]
fn a_namespace_token_cannot_take_the_host() {
    let s = server_with_images(&[IMAGE]);
    let (admin, ci) = admin_and_ci(&s);
    let apply = |k: &Kubectl, yaml: &str| k.run_stdin(&["apply", "-n", "ci", "-f", "-"], yaml);

    // hostPath: / — the host's filesystem.
    let host_root = pod(
        "root",
        "  volumes: [{name: root, hostPath: {path: /}}]\n",
        "    volumeMounts: [{name: root, mountPath: /host}]\n",
    );
    refused(
        &apply(&ci, &host_root),
        &[
            "pods \"root\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")",
        ],
    );
    // hostNetwork, and a hostPort on the API's own port.
    let api_port = s.api_port.to_string();
    refused(
        &apply(&ci, &pod("net", "  hostNetwork: true\n", "")),
        &["violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"],
    );
    let host_port = pod(
        "port",
        "",
        &format!("    ports: [{{containerPort: 80, hostPort: {api_port}}}]\n"),
    );
    refused(
        &apply(&ci, &host_port),
        &[&format!(
            "containers[0].ports[0].hostPort={api_port} is a port on the host"
        )],
    );
    // privileged, and added capabilities.
    let privileged = pod("priv", "", "    securityContext: {privileged: true}\n");
    refused(
        &apply(&ci, &privileged),
        &["privileged (container \"main\" must not set securityContext.privileged=true)"],
    );
    let sys_admin = pod(
        "caps",
        "",
        "    securityContext: {capabilities: {add: [SYS_ADMIN]}}\n",
    );
    refused(
        &apply(&ci, &sys_admin),
        &["non-default capabilities (container \"main\" must not include \"SYS_ADMIN\""],
    );
    // A Deployment whose template is privileged: refused at the Deployment, no pod appears.
    let deployment = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: sneaky}}
spec:
  selector: {{matchLabels: {{app: sneaky}}}}
  template:
    metadata: {{labels: {{app: sneaky}}}}
    spec:
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        securityContext: {{privileged: true}}
"
    );
    refused(
        &apply(&ci, &deployment),
        &["deployments.apps \"sneaky\" is forbidden: violates PodSecurity \"baseline:latest\": privileged"],
    );
    // nodePort out of range (70000 wrapped to 4464 before), LoadBalancer on 443.
    let svc = |name: &str, ty: &str, port: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {ty}\n  selector: {{app: x}}\n  ports: [{port}]\n"
        )
    };
    refused(
        &apply(&ci, &svc("wrap", "NodePort", "{port: 80, nodePort: 70000}")),
        &["nodePort", "The range of valid ports is 30000-32767"],
    );
    refused(
        &apply(&ci, &svc("https", "LoadBalancer", "{port: 443}")),
        &["spec.ports[0]", "host ports are the admin's"],
    );
    // The token may not relabel its own namespace (to privileged).
    let o = ci.run(&[
        "label",
        "namespace",
        "ci",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    refused(&o, &["(Forbidden)"]);
    // Under restricted (the admin's label), runAsUser 0 is refused too.
    admin.ok(&[
        "label",
        "namespace",
        "ci",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let hardened = "    securityContext:\n      runAsUser: 0\n      allowPrivilegeEscalation: false\n      capabilities: {drop: [ALL]}\n      seccompProfile: {type: RuntimeDefault}\n";
    refused(
        &apply(&ci, &pod("rootuser", "", hardened)),
        &[
            "violates PodSecurity \"restricted:latest\"",
            "runAsUser=0 (container \"main\" must not set runAsUser=0)",
        ],
    );
    let non_root = hardened.replace("runAsUser: 0", "runAsUser: 1000\n      runAsNonRoot: true");
    let o = apply(&ci, &pod("nonroot", "", &non_root));
    assert!(o.ok(), "a restricted pod is accepted: {o}");

    // Nothing was created by the refused writes.
    let names = admin.names(&["pods,deploy,svc", "-n", "ci"]);
    assert_eq!(names, vec!["nonroot".to_string()], "{names:?}");

    // What the namespace allows, the token may: the admin lists host ports for it.
    admin.ok(&["annotate", "namespace", "ci", "skiff.io/host-ports=30080"]);
    let o = apply(&ci, &svc("web", "NodePort", "{port: 80, nodePort: 30080}"));
    assert!(o.ok(), "an allowed node port: {o}");

    // Not even the admin takes skiff's own ports (the ingress's HTTPS port here) or another
    // Service's node port.
    let https = s.https_port.to_string();
    let o = admin.run_stdin(
        &["apply", "-n", "ci", "-f", "-"],
        &svc("takeover", "LoadBalancer", &format!("{{port: {https}}}")),
    );
    refused(
        &o,
        &[
            "spec.ports[0].port",
            &format!("{https}: provided port is already allocated (127.0.0.1:{https} is the ingress proxy (HTTPS)'s)"),
        ],
    );
    let o = admin.run_stdin(
        &["apply", "-n", "default", "-f", "-"],
        &svc("web", "NodePort", "{port: 80, nodePort: 30080}"),
    );
    refused(&o, &["is the Service ci/web's"]);

    // The admin may do what the namespace token may not, and hears the namespace's level.
    let o = admin.run_stdin(&["apply", "-n", "ci", "-f", "-"], &privileged);
    assert!(o.ok(), "the admin runs a privileged pod: {o}");
    assert!(
        o.stderr
            .contains("Warning: would violate PodSecurity \"restricted:latest\""),
        "{o}"
    );
}

/// A pod routes 127.0.0.1 to the node over the bridge (CVE-2020-8558: the node has
/// `route_localnet` on) — skiff's table drops it; the host's 127.0.0.1 service never sees a
/// connection.
#[test]
fn pods_cannot_reach_the_hosts_loopback() {
    let s = server_with_images(&[IMAGE]);
    let admin = Kubectl::admin(&s);
    // UDP: one datagram arriving is the proof (the CVE's TCP variant also needs the reply
    // routed back with a loopback source, which newer kernels refuse on their own).
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let reached = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (r, st) = (reached.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        let mut b = [0u8; 64];
        while !st.load(Ordering::Relaxed) {
            if listener.recv_from(&mut b).is_ok() {
                r.store(true, Ordering::Relaxed);
            }
        }
    });
    // The attacker has every privilege inside its own network namespace (the admin's pod:
    // the strongest case), and steers 127.0.0.1 to its gateway, the node.
    let script = format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); echo gw=$gw; \
         sysctl -w net.ipv4.conf.eth0.route_localnet=1 >/dev/null && sysctl -w net.ipv4.conf.all.route_localnet=1 >/dev/null && echo localnet=ok; \
         ip route del local 127.0.0.1 dev lo table local; \
         ip route del local 127.0.0.0/8 dev lo table local && echo unrouted=ok; \
         ip route add 127.0.0.1/32 via $gw dev eth0 && echo routed=ok; ip route get 127.0.0.1; \
         timeout 3 tftp -g -r probe -l /tmp/probe 127.0.0.1 {port} 2>&1; echo done"
    );
    admin.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: prober}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{privileged: true}}
    command: [sh, -c, {script:?}]
"
        ),
        &[],
    );
    let logs = wait_for(Duration::from_secs(60), || {
        let o = admin.run(&["logs", "prober"]);
        (o.ok() && o.stdout.contains("done")).then_some(o.stdout)
    })
    .expect("the prober's output");
    eprintln!("prober:\n{logs}");
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    for step in ["localnet=ok", "unrouted=ok", "routed=ok"] {
        assert!(
            logs.contains(step),
            "the attack was not set up ({step}):\n{logs}"
        );
    }
    assert!(
        !reached.load(Ordering::Relaxed),
        "the host's 127.0.0.1 service was reached:\n{logs}"
    );
}

/// Issue 13 part 6: what skiff keeps on disk is root's only — the data directory 0700, the
/// store (every Secret) 0600, each container's spec (its environment, Secrets included) 0600
/// — and a client cannot set skiff's own annotations or write a body of another kind than
/// its URL says.
#[test]
fn data_at_rest_and_skiffs_own_annotations_are_skiffs() {
    use std::os::unix::fs::PermissionsExt;
    let s = server_with_images(&[IMAGE]);
    let (admin, ci) = admin_and_ci(&s);
    admin.apply(
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: pw}}\nstringData: {{password: hunter2}}\n---\n{}",
            pod(
                "app",
                "",
                "    env: [{name: PW, valueFrom: {secretKeyRef: {name: pw, key: password}}}]\n"
            )
        ),
        &[],
    );
    wait_for(Duration::from_secs(60), || {
        let o = admin.run(&["exec", "app", "--", "sh", "-c", "echo $PW"]);
        o.stdout.contains("hunter2").then_some(())
    })
    .expect("the pod runs with the Secret in its environment");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&s.data_dir), 0o700, "the data directory");
    for f in ["state.db", "state.db-wal"] {
        assert_eq!(mode(&s.data_dir.join(f)), 0o600, "{f}");
    }
    let mut specs = 0;
    for c in std::fs::read_dir(s.data_dir.join("containers")).unwrap() {
        let spec = c.unwrap().path().join("bundle/config.json");
        if spec.exists() {
            let text = std::fs::read_to_string(&spec).unwrap();
            if text.contains("hunter2") {
                specs += 1;
            }
            assert_eq!(mode(&spec), 0o600, "{}", spec.display());
        }
    }
    assert_eq!(specs, 1, "the pod's container spec with the Secret");

    // skiff's own annotations are not a client's to set: neither the manifests folder's
    // (the folder would take the object for its own and prune it) nor, for a token, the
    // certificate issuer's (skiff would renew and overwrite the Secret).
    let o = ci.run_stdin(
        &["apply", "-n", "ci", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sneaky\n  annotations: {skiff.io/manifest-file: app.yaml, keep: me}\ndata: {k: v}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: cert\n  annotations: {skiff.io/certificate-issuer: https://example.invalid/}\nstringData: {k: v}\n",
    );
    assert!(o.ok(), "{o}");
    let cm = ci.get_json(&["configmap", "sneaky", "-n", "ci"]).unwrap();
    assert_eq!(cm["metadata"]["annotations"]["keep"], "me");
    assert!(
        cm["metadata"]["annotations"]["skiff.io/manifest-file"].is_null(),
        "a client set the manifests folder's annotation: {cm}"
    );
    let o = admin.run(&[
        "annotate",
        "configmap",
        "sneaky",
        "-n",
        "ci",
        "skiff.io/manifest-file=app.yaml",
    ]);
    let cm = admin
        .get_json(&["configmap", "sneaky", "-n", "ci"])
        .unwrap();
    assert!(
        cm["metadata"]["annotations"]["skiff.io/manifest-file"].is_null(),
        "the admin's kubectl set the manifests folder's annotation ({o}): {cm}"
    );
    let secret = ci.get_json(&["secret", "cert", "-n", "ci"]).unwrap();
    assert!(
        secret["metadata"]["annotations"]["skiff.io/certificate-issuer"].is_null(),
        "a token marked a Secret as skiff's certificate: {secret}"
    );

    // The body's kind must be the URL's.
    let body = s.work_dir.join("secret-as-configmap.json");
    std::fs::write(
        &body,
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"sneaky","namespace":"ci"},"data":{"k":"dg=="}}"#,
    )
    .unwrap();
    let o = ci.run(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/ci/configmaps/sneaky",
        "-f",
        body.to_str().unwrap(),
    ]);
    refused(&o, &["does not match the resource"]);
    let cm = ci.get_json(&["configmap", "sneaky", "-n", "ci"]).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["data"]["k"], "v");
}

/// Issue 13 part 3: the node does not connect where a tenant says — a token's EndpointSlice
/// may only name pod addresses, and a token cannot forge a pod's status (its podIP is what the
/// Service rules, the proxy and port-forward connect to).
#[test]
fn the_node_does_not_connect_where_a_token_says() {
    let s = server_with_images(&[IMAGE]);
    let (admin, ci) = admin_and_ci(&s);
    let slice = |name: &str, address: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/service-name: outside}}\naddressType: IPv4\nports: [{{port: 22, protocol: TCP}}]\nendpoints:\n- addresses: [{address:?}]\n"
        )
    };
    let apply = |k: &Kubectl, yaml: &str| k.run_stdin(&["apply", "-n", "ci", "-f", "-"], yaml);
    assert!(apply(
        &ci,
        "apiVersion: v1\nkind: Service\nmetadata: {name: outside}\nspec:\n  ports: [{port: 22}]\n"
    )
    .ok());
    for address in ["127.0.0.1", "192.168.1.1", "169.254.169.254"] {
        refused(
            &apply(&ci, &slice("sneaky", address)),
            &[
                "endpointslices.discovery.k8s.io \"sneaky\" is forbidden",
                &format!("{address:?} is not a pod address of this node"),
            ],
        );
    }
    let pod_address = format!("10.244.{}.200", s.net_index);
    let o = apply(&ci, &slice("pods-only", &pod_address));
    assert!(o.ok(), "a pod address refused: {o}");
    // The admin's may name any address, as on Kubernetes.
    let o = apply(&admin, &slice("admins", "192.168.1.1"));
    assert!(o.ok(), "{o}");

    // A pod's status is the node's to write.
    assert!(apply(&ci, &pod("app", "", "")).ok());
    let o = ci.run(&[
        "patch",
        "pod",
        "app",
        "-n",
        "ci",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"podIP":"127.0.0.1","podIPs":[{"ip":"127.0.0.1"}]}}"#,
    ]);
    refused(
        &o,
        &["is forbidden", "a pod's status is written by the node"],
    );
    let ip = wait_for(Duration::from_secs(60), || {
        let p = admin.get_json(&["pod", "app", "-n", "ci"])?;
        p["status"]["podIP"].as_str().map(str::to_string)
    })
    .expect("the pod's IP");
    assert!(ip.starts_with("10.244."), "podIP {ip}");
}

/// A namespace token's pods cannot act on other namespaces through scheduling: no critical
/// priority class outside kube-system (as Kubernetes' Priority admission), no pod
/// (anti-)affinity over other namespaces (a required anti-affinity naming `default` would keep
/// the admin's pods Pending).
#[test]
fn a_token_cannot_reach_other_namespaces_through_scheduling() {
    let s = server_with_images(&[IMAGE]);
    let (admin, ci) = admin_and_ci(&s);
    let apply = |yaml: &str| ci.run_stdin(&["apply", "-n", "ci", "-f", "-"], yaml);
    refused(
        &apply(&pod(
            "critical",
            "  priorityClassName: system-node-critical\n",
            "",
        )),
        &["pods with system-node-critical priorityClass is not permitted in ci namespace"],
    );
    let anti = |term: &str| {
        pod(
            "blocker",
            &format!("  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - {{topologyKey: kubernetes.io/hostname, labelSelector: {{}}, {term}}}\n"),
            "",
        )
    };
    for term in ["namespaces: [default]", "namespaceSelector: {}"] {
        refused(
            &apply(&anti(term)),
            &["spec.affinity.podAntiAffinity: a namespace token's pods may only select pods of their own namespace"],
        );
    }
    let o = apply(&anti("namespaces: [ci]"));
    assert!(o.ok(), "its own namespace refused: {o}");
    // The admin may.
    let o = admin.run_stdin(
        &["apply", "-n", "ci", "-f", "-"],
        &pod(
            "critical",
            "  priorityClassName: system-node-critical\n",
            "",
        ),
    );
    assert!(o.ok(), "{o}");
}
