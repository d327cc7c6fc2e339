//! NetworkPolicy (networking.k8s.io/v1) enforced by the node's nftables table: pods isolated
//! for ingress or egress accept only what some policy allows — by pod labels, namespace labels
//! (`kubernetes.io/metadata.name` included), IP blocks and (named) ports — also through a
//! Service's virtual IP; the node itself always reaches pods; the cluster DNS stays reachable
//! from egress-isolated pods; removing the policies restores everything. Traffic goes only to
//! pod addresses on the server's own bridge.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::{http_get_at, route_dev, wait_until};

const IMAGE: &str = "skiff-e2e-netpol:v1";

fn pod(ns: &str, name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo {name} > /www/index.html; exec httpd -f -p 8080 -h /www\"]
    ports:
    - {{name: http, containerPort: 8080}}
---
"
    )
}

fn setup() -> String {
    let mut y = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: guest}\n---\n",
    );
    for (ns, name, app) in [
        ("shop", "web", "web"),
        ("shop", "client", "client"),
        ("shop", "other", "other"),
        ("guest", "visitor", "client"),
    ] {
        y.push_str(&pod(ns, name, app));
    }
    y.push_str(
        "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http}
",
    );
    y
}

/// What `from` (a pod in `ns`) gets from `url` within 2 seconds (`Err`: kubectl's output).
/// (`timeout`, not wget's `-T`: Debian's static busybox 1.35 crashes on `-T`.)
fn fetch(k: &Kubectl, ns: &str, from: &str, url: &str) -> Result<String, String> {
    let o = k.run(&[
        "exec", "-n", ns, from, "--", "timeout", "2", "wget", "-qO-", url,
    ]);
    if o.ok() {
        Ok(o.stdout.trim().to_string())
    } else {
        Err(o.to_string())
    }
}

/// Waits until `from` reaches `url` (answering `want`) or is refused, as `allowed` says: the
/// node installs rules on the change notification, within moments.
fn expect(k: &Kubectl, ns: &str, from: &str, url: &str, want: &str, allowed: bool) {
    let mut last = Ok(String::new());
    let ok = wait_until(Duration::from_secs(20), Duration::from_millis(300), || {
        last = fetch(k, ns, from, url);
        match &last {
            Ok(got) => allowed && got == want,
            Err(_) => !allowed,
        }
    });
    if !ok {
        eprintln!("last attempt: {last:?}");
        let o = std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&o.stdout));
    }
    assert!(
        ok,
        "{ns}/{from} → {url}: expected {}",
        if allowed { "an answer" } else { "no answer" }
    );
}

#[test]
fn network_policies_isolate_pods_and_allow_what_they_say() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&setup(), &[]);
    for (ns, p) in [
        ("shop", "web"),
        ("shop", "client"),
        ("shop", "other"),
        ("guest", "visitor"),
    ] {
        let o = k.run(&[
            "wait",
            "-n",
            ns,
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=60s",
        ]);
        assert!(o.ok(), "{o}");
    }
    let ip = |ns: &str, p: &str| {
        k.get_json(&["pod", "-n", ns, p]).expect("pod")["status"]["podIP"]
            .as_str()
            .expect("an address")
            .to_string()
    };
    let (web, other) = (ip("shop", "web"), ip("shop", "other"));
    let web_url = format!("http://{web}:8080/");
    let other_url = format!("http://{other}:8080/");
    let vip = k.get_json(&["svc", "-n", "shop", "web"]).unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let svc_url = format!("http://{vip}/");
    assert!(
        web.starts_with(&format!("10.244.{}.", s.net_index)),
        "{web} is outside this server's pod network"
    );

    // Nothing isolated yet.
    expect(&k, "shop", "client", &web_url, "web", true);
    expect(&k, "guest", "visitor", &web_url, "web", true);

    // Deny all ingress in shop: nobody reaches web, except the node itself.
    k.apply(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec:
  podSelector: {}
",
        &[],
    );
    expect(&k, "shop", "client", &web_url, "web", false);
    expect(&k, "guest", "visitor", &svc_url, "web", false);
    assert_eq!(
        route_dev(&web),
        s.bridge,
        "{web} must be on the server's bridge"
    );
    let from_node =
        http_get_at(format!("{web}:8080").parse().unwrap(), "/").expect("the node reaches web");
    assert_eq!(from_node.body.trim(), "web", "the node always reaches pods");

    // Allow clients of shop, on the named port, and the namespace guest by its name label.
    k.apply(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-clients, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    ports:
    - port: http
  - from:
    - namespaceSelector:
        matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: In, values: [guest]}
",
        &[],
    );
    expect(&k, "shop", "client", &web_url, "web", true);
    expect(&k, "shop", "client", &svc_url, "web", true);
    expect(&k, "shop", "other", &web_url, "web", false);
    expect(&k, "shop", "other", &svc_url, "web", false);
    expect(&k, "guest", "visitor", &web_url, "web", true);
    // deny-all still isolates the other pods of shop.
    expect(&k, "guest", "visitor", &other_url, "other", false);

    // Egress: client may talk to web only; names still resolve (the cluster DNS).
    k.apply(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-out, namespace: shop}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector: {matchLabels: {app: web}}
    ports:
    - {protocol: TCP, port: 8080}
",
        &[],
    );
    k.apply(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other-open, namespace: shop}
spec:
  podSelector: {matchLabels: {app: other}}
  ingress: [{}]
",
        &[],
    );
    expect(&k, "guest", "visitor", &other_url, "other", true);
    expect(&k, "shop", "client", &other_url, "other", false);
    expect(&k, "shop", "client", &web_url, "web", true);
    expect(
        &k,
        "shop",
        "client",
        "http://web.shop.svc.cluster.local/",
        "web",
        true,
    );

    // kubectl reads them as a Kubernetes user expects.
    let o = k.run(&["get", "netpol", "-n", "shop"]);
    assert!(o.ok(), "{o}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("POD-SELECTOR"),
        "{o}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("deny-all") && l.contains("<none>")),
        "{o}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web-clients") && l.contains("app=web")),
        "{o}"
    );
    let p = k.get_json(&["netpol", "-n", "shop", "client-out"]).unwrap();
    assert_eq!(p["spec"]["policyTypes"], serde_json::json!(["Egress"]));
    let p = k
        .get_json(&["netpol", "-n", "shop", "web-clients"])
        .unwrap();
    assert_eq!(
        p["spec"]["policyTypes"],
        serde_json::json!(["Ingress"]),
        "the default"
    );

    // A bad policy is refused by name, nothing stored.
    let o = k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/16, except: [192.168.0.0/24]}
",
    );
    assert!(
        !o.ok()
            && o.stderr
                .contains("spec.ingress[0].from[0].ipBlock.except[0]"),
        "{o}"
    );
    assert!(k.get_json(&["netpol", "-n", "shop", "bad"]).is_none());

    // Without policies, everything flows again.
    assert!(k.run(&["delete", "netpol", "-n", "shop", "--all"]).ok());
    expect(&k, "shop", "other", &web_url, "web", true);
    expect(&k, "shop", "client", &other_url, "other", true);
}
