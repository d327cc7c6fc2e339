//! The kubectl conformance matrix (issue 17): every kubectl command a k3s user types in daily
//! work, run with the real kubectl 1.32 against one `skiff server`, each row asserted on exit
//! code and output. A row skiff does not support must be refused *by name*, with what to use
//! instead. The same list, with each row's state, is `docs/kubectl.md`.
//!
//! One `#[test]` per group; a group is a table of rows (name → check) run by [`run_group`],
//! which runs every row and then fails naming each failed row with kubectl's output. The
//! groups share one server (started by the first group, stopped when the test process exits)
//! behind a lock, so they run one after another whatever `--test-threads` says; a group
//! leaves `web` rolled out for the next.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use skiff_e2e::kubectl::*;
use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e-matrix:v1";
const IMAGE2: &str = "skiff-e2e-matrix:v2";

/// The shared server and what every group reads.
struct Fx {
    server: Server,
    k: Kubectl,
    node: String,
    dir: std::path::PathBuf,
}

static FX: OnceLock<Mutex<Option<Fx>>> = OnceLock::new();

extern "C" fn stop_server() {
    if let Some(m) = FX.get() {
        // Dropping the server stops it and removes what it made.
        let taken = m
            .lock()
            .map(|mut g| g.take())
            .unwrap_or_else(|p| p.into_inner().take());
        drop(taken);
    }
}

/// A Deployment `web` (label `app: web`, container `main`): busybox httpd on 8080 serving its
/// host name, and a `tick N` line on stdout every second; a Service `web` 80 → 8080.
fn web_yaml(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {image}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"mkdir -p /www; hostname > /www/index.html; httpd -p 8080 -h /www; echo started; i=0; while true; i=$((i+1)); do echo tick $i; sleep 1; done\"]
        ports:
        - {{name: http, containerPort: 8080}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - {{port: 80, targetPort: http}}
"
    )
}

/// The shared fixture: started on first use (server, images, `web` rolled out).
fn fx() -> MutexGuard<'static, Option<Fx>> {
    let m = FX.get_or_init(|| Mutex::new(None));
    let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        let server = server_with_images(&[IMAGE, IMAGE2]);
        // SAFETY: registering a plain extern "C" function; it runs at process exit.
        unsafe { libc::atexit(stop_server) };
        let k = Kubectl::admin(&server);
        k.apply(&web_yaml(IMAGE), &[]);
        let o = k.run(&["rollout", "status", "deploy/web", "--timeout=90s"]);
        assert!(o.ok(), "web did not roll out: {o}");
        let node = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
        let dir = server.work_dir.join("matrix");
        std::fs::create_dir_all(&dir).unwrap();
        *g = Some(Fx {
            node: node.trim().to_string(),
            server,
            k,
            dir,
        });
    }
    g
}

type Check = Box<dyn Fn(&Fx) -> Result<(), String>>;

/// One row of the matrix: what a user types, and the check of what kubectl answered.
fn row(
    name: &'static str,
    check: impl Fn(&Fx) -> Result<(), String> + 'static,
) -> (&'static str, Check) {
    (name, Box::new(check))
}

/// Runs every row of `group` in order, then fails naming each row that failed.
fn run_group(group: &str, rows: Vec<(&'static str, Check)>) {
    let guard = fx();
    let fx = guard.as_ref().expect("fixture");
    let mut failed = Vec::new();
    for (name, check) in rows {
        match check(fx) {
            Ok(()) => eprintln!("[{group}] {name}: ok"),
            Err(e) => {
                eprintln!("[{group}] {name}: FAILED");
                failed.push(format!("row `{name}`: {e}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} row(s) of group {group} failed:\n\n{}\n\nserver log (tail):\n{}",
        failed.len(),
        failed.join("\n\n"),
        fx.server.log_tail(30)
    );
}

/// `o` exited `code` and its stdout holds every one of `out`, its stderr every one of `err`.
fn expect(o: &KOut, code: i32, out: &[&str], err: &[&str]) -> Result<(), String> {
    let missing: Vec<_> = out
        .iter()
        .filter(|s| !o.stdout.contains(*s))
        .map(|s| format!("stdout lacks {s:?}"))
        .chain(
            err.iter()
                .filter(|s| !o.stderr.contains(*s))
                .map(|s| format!("stderr lacks {s:?}")),
        )
        .collect();
    if o.code == code && missing.is_empty() {
        Ok(())
    } else {
        Err(format!("expected exit {code}; {}\n{o}", missing.join(", ")))
    }
}

/// kubectl ARGS (with `{pod}` → a running `web` pod, `{node}` → the node, `{dir}` → a work
/// directory) exits 0 printing each of `out`.
fn ok(
    args: &'static [&'static str],
    out: &'static [&'static str],
) -> impl Fn(&Fx) -> Result<(), String> {
    move |fx| expect(&run_owned(&fx.k, &fill(fx, args)), 0, out, &[])
}

/// kubectl ARGS exits `code` with each of `err` on stderr: a refusal by name.
fn fails(
    args: &'static [&'static str],
    code: i32,
    err: &'static [&'static str],
) -> impl Fn(&Fx) -> Result<(), String> {
    move |fx| expect(&run_owned(&fx.k, &fill(fx, args)), code, &[], err)
}

/// Like [`ok`], retried for up to 40 s (the Metrics API has figures once two samples, 10 s
/// apart, have seen a container).
fn eventually(
    args: &'static [&'static str],
    out: &'static [&'static str],
) -> impl Fn(&Fx) -> Result<(), String> {
    move |fx| {
        let out: Vec<String> = fill(fx, out);
        let out: Vec<&str> = out.iter().map(String::as_str).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            let r = expect(&run_owned(&fx.k, &fill(fx, args)), 0, &out, &[]);
            if r.is_ok() || std::time::Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

fn fill(fx: &Fx, args: &[&str]) -> Vec<String> {
    let needs_pod = args.iter().any(|a| a.contains("{pod}"));
    let pod = if needs_pod {
        web_pod(fx)
    } else {
        String::new()
    };
    args.iter()
        .map(|a| {
            a.replace("{pod}", &pod)
                .replace("{node}", &fx.node)
                .replace("{dir}", &fx.dir.to_string_lossy())
        })
        .collect()
}

/// `kubectl ARGS` with owned arguments.
fn run_owned(k: &Kubectl, args: &[String]) -> KOut {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    k.run(&a)
}

/// A running, ready `web` pod (waits for one after a rollout or a drain).
fn web_pod(fx: &Fx) -> String {
    let _ =
        fx.k.run(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    wait_for(Duration::from_secs(60), || {
        let v = fx.k.get_json(&["pods", "-l", "app=web"])?;
        v["items"].as_array()?.iter().find_map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (ready && p["metadata"]["deletionTimestamp"].is_null()).then(|| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
        })
    })
    .expect("a ready web pod within 60 s")
}

/// `kubectl rollout status deploy/web` says it rolled out.
fn rolled_out(fx: &Fx) -> Result<(), String> {
    expect(
        &k(fx, &["rollout", "status", "deploy/web", "--timeout=90s"]),
        0,
        &["deployment \"web\" successfully rolled out"],
        &[],
    )
}

fn k(fx: &Fx, args: &[&str]) -> KOut {
    fx.k.run(args)
}

fn write(fx: &Fx, name: &str, content: &str) -> String {
    let p = fx.dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// Reading: get, describe, events, discovery, config.

#[test]
fn matrix_get_describe_and_discovery() {
    run_group(
        "get/describe",
        vec![
            row(
                "get -o wide",
                ok(
                    &["get", "pods", "-l", "app=web", "-o", "wide"],
                    &["IP", "NODE", "Running", "10.244."],
                ),
            ),
            row(
                "get -o yaml",
                ok(
                    &["get", "deploy", "web", "-o", "yaml"],
                    &["kind: Deployment", "name: web", "replicas: 1"],
                ),
            ),
            row("get -o json", |fx| {
                let o = k(fx, &["get", "svc", "web", "-o", "json"]);
                expect(&o, 0, &[], &[])?;
                let v: serde_json::Value =
                    serde_json::from_str(&o.stdout).map_err(|e| format!("{e}: {o}"))?;
                (v["spec"]["ports"][0]["port"] == 80)
                    .then_some(())
                    .ok_or(format!("port 80 expected: {o}"))
            }),
            row(
                "get -o jsonpath",
                ok(
                    &[
                        "get",
                        "deploy",
                        "web",
                        "-o",
                        "jsonpath={.spec.template.spec.containers[0].name}/{.spec.replicas}",
                    ],
                    &["main/1"],
                ),
            ),
            row(
                "get -o custom-columns",
                ok(
                    &[
                        "get",
                        "pods",
                        "-l",
                        "app=web",
                        "-o",
                        "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image",
                    ],
                    // v1, or v2 after the write group's `set image`
                    &["NAME", "IMAGE", "skiff-e2e-matrix:v"],
                ),
            ),
            row(
                "get --show-labels",
                ok(
                    &["get", "deploy", "web", "--show-labels"],
                    &["LABELS", "app=web"],
                ),
            ),
            row("get -l (no match)", |fx| {
                expect(
                    &k(fx, &["get", "pods", "-l", "app=nothing"]),
                    0,
                    &[],
                    &["No resources found in default namespace."],
                )
            }),
            row(
                "get -A",
                ok(&["get", "pods", "-A"], &["NAMESPACE", "default"]),
            ),
            row(
                "get deploy,rs,po,svc",
                ok(
                    &["get", "deploy,rs,po,svc"],
                    &[
                        "deployment.apps/web",
                        "replicaset.apps/web-",
                        "pod/web-",
                        "service/web",
                    ],
                ),
            ),
            row("get -w with a timeout", |fx| {
                let o = k(
                    fx,
                    &["get", "pods", "-l", "app=web", "-w", "--request-timeout=3s"],
                );
                expect(&o, 0, &["NAME", "web-"], &[])
            }),
            row("get -w prints a change", |fx| {
                let mut w =
                    fx.k.spawn(&["get", "configmaps", "-w", "--output-watch-events"]);
                w.wait_line(Duration::from_secs(20), |l| l.contains("NAME"))
                    .ok_or_else(|| format!("no first list: {}", w.describe()))?;
                Kubectl::run(
                    &fx.k,
                    &["create", "configmap", "watched", "--from-literal=a=1"],
                );
                let line = w.wait_line(Duration::from_secs(20), |l| l.contains("watched"));
                let _ = fx.k.run(&["delete", "configmap", "watched"]);
                let line = line
                    .ok_or_else(|| format!("no ADDED line: {}", w.describe()))?
                    .1;
                w.stop();
                line.contains("ADDED")
                    .then_some(())
                    .ok_or(format!("{line:?} is not an ADDED event"))
            }),
            row(
                "get a missing object",
                fails(
                    &["get", "deploy", "nope"],
                    1,
                    &["Error from server (NotFound): deployments.apps \"nope\" not found"],
                ),
            ),
            row(
                "describe deployment",
                ok(
                    &["describe", "deploy", "web"],
                    &[
                        "Name:                   web",
                        "StrategyType:           RollingUpdate",
                        "Replicas:",
                        "NewReplicaSet:",
                    ],
                ),
            ),
            row(
                "describe pod",
                ok(
                    &["describe", "pod", "{pod}"],
                    &[
                        "Status:           Running",
                        // kubectl's tabwriter aligns this after the IPs block.
                        "Controlled By:",
                        "ReplicaSet/web-",
                        "Events:",
                        "Started",
                    ],
                ),
            ),
            row("describe pod shows the node's address", |fx| {
                let pod = web_pod(fx);
                let o = k(fx, &["describe", "pod", &pod]);
                // The Node's InternalIP, as kubelet fills a pod's hostIP.
                let node_ip = k(
                    fx,
                    &[
                        "get",
                        "node",
                        &fx.node,
                        "-o",
                        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
                    ],
                )
                .stdout;
                let want = format!("Node:             {}/{}", fx.node, node_ip.trim());
                expect(&o, 0, &[&want], &[])?;
                (!node_ip.trim().is_empty() && node_ip.trim() != "127.0.0.1")
                    .then_some(())
                    .ok_or(format!("the node's InternalIP is {node_ip:?}"))
            }),
            row(
                "describe service",
                ok(
                    &["describe", "svc", "web"],
                    &[
                        "Selector:",
                        "app=web",
                        "TargetPort:",
                        "http/TCP",
                        "Endpoints:",
                        "10.244.",
                    ],
                ),
            ),
            row(
                "events",
                ok(&["events"], &["REASON", "Started", "ScalingReplicaSet"]),
            ),
            row(
                "events --for",
                ok(&["events", "--for", "deploy/web"], &["ScalingReplicaSet"]),
            ),
            row(
                "api-resources",
                ok(
                    &["api-resources"],
                    &["deployments", "apps/v1", "pods", "cronjobs", "ingresses"],
                ),
            ),
            row(
                "api-resources --namespaced=false",
                ok(
                    &["api-resources", "--namespaced=false"],
                    &["namespaces", "nodes", "persistentvolumes"],
                ),
            ),
            row(
                "api-versions",
                ok(
                    &["api-versions"],
                    &["apps/v1", "batch/v1", "networking.k8s.io/v1", "v1\n"],
                ),
            ),
            row(
                "version",
                ok(
                    &["version"],
                    &["Client Version: v1.32", "Server Version: v1.32.0+skiff"],
                ),
            ),
            row(
                "cluster-info",
                ok(
                    &["cluster-info"],
                    &["Kubernetes control plane is running at https://127.0.0.1:"],
                ),
            ),
            row(
                "config view",
                ok(
                    &["config", "view", "--minify"],
                    &[
                        "current-context:",
                        "token: REDACTED",
                        "server: https://127.0.0.1:",
                    ],
                ),
            ),
            row(
                "config get-contexts",
                ok(&["config", "get-contexts"], &["CURRENT", "*"]),
            ),
            row(
                "explain pods",
                ok(&["explain", "pods"], &["KIND:       Pod", "VERSION:    v1"]),
            ),
            row(
                "explain deployment.spec.strategy",
                ok(
                    &["explain", "deployment.spec.strategy"],
                    &["FIELD: strategy", "rollingUpdate"],
                ),
            ),
            row(
                "explain --output=plaintext-openapiv2",
                ok(
                    &[
                        "explain",
                        "deployment.spec.strategy",
                        "--output=plaintext-openapiv2",
                    ],
                    &[
                        "KIND:     Deployment",
                        "RESOURCE: strategy <Object>",
                        "deployment strategy to use to replace existing pods",
                        "rollingUpdate",
                    ],
                ),
            ),
            row(
                "explain --output=plaintext-openapiv2 (a refused field)",
                fails(
                    &[
                        "explain",
                        "pods.spec.hostUsers",
                        "--output=plaintext-openapiv2",
                    ],
                    1,
                    &["field \"hostUsers\" does not exist"],
                ),
            ),
            row(
                "get --raw /openapi/v2 (JSON; protobuf with its ETag)",
                |fx| {
                    expect(
                        &k(fx, &["get", "--raw", "/openapi/v2"]),
                        0,
                        &[
                            "\"swagger\":\"2.0\"",
                            "\"io.k8s.api.apps.v1.Deployment\"",
                            "\"x-kubernetes-group-version-kind\"",
                        ],
                        &[],
                    )?;
                    // client-go's OpenAPISchema(): protobuf, cached by its ETag.
                    let token = kubeconfig_token(&fx.server.kubeconfig);
                    let url = format!("https://127.0.0.1:{}/openapi/v2", fx.server.api_port);
                    let curl = |extra: &[&str]| {
                        let o = std::process::Command::new("curl")
                        .args(["-sk", "-o", "/dev/null", "-D", "-", "--max-time", "20"])
                        .args(["-H", &format!("Authorization: Bearer {token}")])
                        .args([
                            "-H",
                            "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                        ])
                        .args(extra)
                        .arg(&url)
                        .output()
                        .unwrap();
                        String::from_utf8_lossy(&o.stdout).into_owned()
                    };
                    let first = curl(&[]);
                    let etag = first
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(h, _)| h.eq_ignore_ascii_case("etag"))
                        })
                        .map(|(_, e)| e.trim().to_string())
                        .ok_or(format!("no ETag: {first}"))?;
                    if !first.to_lowercase().contains(
                        "content-type: application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    ) {
                        return Err(format!("not protobuf: {first}"));
                    }
                    let again = curl(&["-H", &format!("If-None-Match: {etag}")]);
                    if !again.starts_with("HTTP/2 304") && !again.starts_with("HTTP/1.1 304") {
                        return Err(format!("If-None-Match {etag} did not answer 304: {again}"));
                    }
                    Ok(())
                },
            ),
            row(
                "auth whoami",
                ok(&["auth", "whoami"], &["Username", "system:admin"]),
            ),
            row(
                "auth can-i",
                ok(
                    &["auth", "can-i", "create", "pods", "-n", "other"],
                    &["yes"],
                ),
            ),
            row("auth can-i as a namespace token", |fx| {
                let (kc, _) = namespace_token(&fx.server, "tenant");
                let t = Kubectl::with_kubeconfig(&fx.server, &kc);
                let other = t.run(&["auth", "can-i", "create", "pods", "-n", "other"]);
                expect(&other, 1, &["no"], &[])?;
                expect(
                    &t.run(&["auth", "can-i", "create", "pods", "-n", "tenant"]),
                    0,
                    &["yes"],
                    &[],
                )
            }),
            row(
                "auth can-i --list",
                ok(&["auth", "can-i", "--list"], &["Resources", "*.*"]),
            ),
            row(
                "get --raw /healthz",
                ok(&["get", "--raw", "/healthz"], &["ok"]),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Containers: logs, exec, attach, cp, port-forward, proxy.

/// A pod whose container exits 1 at once and is restarted (for `logs --previous`).
const CRASHER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff-e2e-matrix:v1
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo run-of-crasher; sleep 1; exit 1\"]
";

#[test]
fn matrix_logs_exec_cp_and_forwarding() {
    run_group(
        "containers",
        vec![
            row("logs", ok(&["logs", "{pod}"], &["started", "tick 1\n"])),
            row(
                "logs deploy/NAME",
                ok(&["logs", "deploy/web"], &["started"]),
            ),
            row("logs --tail", |fx| {
                let o = k(fx, &["logs", &web_pod(fx), "--tail=2"]);
                expect(&o, 0, &["tick "], &[])?;
                (o.stdout.lines().count() == 2)
                    .then_some(())
                    .ok_or(format!("2 lines expected: {o}"))
            }),
            row("logs --since", |fx| {
                let pod = web_pod(fx);
                std::thread::sleep(Duration::from_secs(4));
                let o = k(fx, &["logs", &pod, "--since=2s"]);
                expect(&o, 0, &["tick "], &[])?;
                let n = o.stdout.lines().count();
                ((1..=3).contains(&n) && !o.stdout.contains("started"))
                    .then_some(())
                    .ok_or(format!("1 to 3 recent lines expected: {o}"))
            }),
            row(
                "logs -c",
                ok(&["logs", "{pod}", "-c", "main", "--tail=1"], &["tick "]),
            ),
            row(
                "logs -c (no such container)",
                fails(
                    &["logs", "{pod}", "-c", "nope"],
                    1,
                    &["container nope is not valid for pod web-"],
                ),
            ),
            row(
                "logs --timestamps",
                ok(&["logs", "{pod}", "--tail=1", "--timestamps"], &["Z tick "]),
            ),
            row("logs -f", |fx| {
                let pod = web_pod(fx);
                let mut f = fx.k.spawn(&["logs", "-f", &pod, "--tail=1"]);
                let first = f.wait_line(Duration::from_secs(10), |l| l.starts_with("tick "));
                let second = f.wait_line(Duration::from_secs(10), |l| l.starts_with("tick "));
                let d = f.describe();
                f.stop();
                (first.is_some() && second.is_some())
                    .then_some(())
                    .ok_or(format!("two tick lines expected as they come: {d}"))
            }),
            row("logs --previous", |fx| {
                let _ = Kubectl::run(
                    &fx.k,
                    &[
                        "delete",
                        "pod",
                        "crasher",
                        "--ignore-not-found",
                        "--grace-period=1",
                    ],
                );
                fx.k.apply(CRASHER, &[]);
                let restarted =
                    wait_until(Duration::from_secs(60), Duration::from_millis(500), || {
                        k(
                            fx,
                            &[
                                "get",
                                "pod",
                                "crasher",
                                "-o",
                                "jsonpath={.status.containerStatuses[0].restartCount}",
                            ],
                        )
                        .stdout
                        .trim()
                        .parse::<u32>()
                        .unwrap_or(0)
                            >= 1
                    });
                if !restarted {
                    return Err(format!(
                        "crasher never restarted: {}",
                        k(fx, &["describe", "pod", "crasher"])
                    ));
                }
                let o = k(fx, &["logs", "crasher", "--previous"]);
                let _ = fx.k.run(&["delete", "pod", "crasher", "--wait=false"]);
                expect(&o, 0, &["run-of-crasher"], &[])
            }),
            row(
                "logs --previous (never restarted)",
                fails(
                    &["logs", "{pod}", "--previous"],
                    1,
                    &["previous terminated container \"main\"", "not found"],
                ),
            ),
            row(
                "exec -- cmd",
                ok(
                    &["exec", "{pod}", "--", "cat", "/www/index.html"],
                    &["web-"],
                ),
            ),
            row("exec exit code", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "exec",
                            &web_pod(fx),
                            "--",
                            "sh",
                            "-c",
                            "echo out; echo err >&2; exit 3",
                        ],
                    ),
                    3,
                    &["out"],
                    &["err", "command terminated with exit code 3"],
                )
            }),
            row("exec -i with stdin", |fx| {
                let o = fx.k.run_stdin(
                    &["exec", "-i", &web_pod(fx), "--", "sh", "-c", "tr a-z A-Z"],
                    "shout\n",
                );
                expect(&o, 0, &["SHOUT"], &[])
            }),
            row(
                "exec deploy/NAME",
                ok(
                    &["exec", "deploy/web", "--", "echo", "via-deploy"],
                    &["via-deploy"],
                ),
            ),
            row(
                "attach (refused by name)",
                fails(
                    &["attach", "{pod}"],
                    1,
                    &[
                        "kubectl attach is not supported by skiff",
                        "kubectl logs -f",
                        "kubectl exec -it",
                    ],
                ),
            ),
            row(
                "debug (refused by name)",
                fails(
                    &[
                        "debug",
                        "{pod}",
                        "--image",
                        "skiff-e2e-matrix:v1",
                        "--",
                        "true",
                    ],
                    1,
                    &[
                        "ephemeral containers (kubectl debug) are not supported by skiff",
                        "kubectl exec -it",
                    ],
                ),
            ),
            row("cp into a pod", |fx| {
                let pod = web_pod(fx);
                let src = write(fx, "to-pod.txt", "copied-in\n");
                expect(
                    &k(
                        fx,
                        &["cp", &src, &format!("{pod}:/tmp/in.txt"), "-c", "main"],
                    ),
                    0,
                    &[],
                    &[],
                )?;
                expect(
                    &k(fx, &["exec", &pod, "--", "cat", "/tmp/in.txt"]),
                    0,
                    &["copied-in"],
                    &[],
                )
            }),
            row("cp out of a pod", |fx| {
                let pod = web_pod(fx);
                let dst = fx.dir.join("from-pod.txt");
                expect(
                    &k(
                        fx,
                        &[
                            "cp",
                            &format!("{pod}:/www/index.html"),
                            &dst.to_string_lossy(),
                        ],
                    ),
                    0,
                    &[],
                    &[],
                )?;
                let got = std::fs::read_to_string(&dst).map_err(|e| e.to_string())?;
                (got.trim() == pod).then_some(()).ok_or(format!(
                    "copied {got:?}, expected the pod's host name {pod}"
                ))
            }),
            row("port-forward", |fx| {
                let mut pf = fx.k.spawn(&["port-forward", "svc/web", "0:80"]);
                let line = pf.wait_line(Duration::from_secs(30), |l| {
                    l.starts_with("Forwarding from 127.0.0.1:")
                });
                let Some((_, line)) = line else {
                    return Err(format!("no port: {}", pf.describe()));
                };
                let port: u16 = line["Forwarding from 127.0.0.1:".len()..]
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or(line.clone())?;
                let r = http_get(port, "/index.html");
                pf.stop();
                let r = r.map_err(|e| format!("GET through the forward: {e}"))?;
                (r.status == 200 && r.body.contains("web-"))
                    .then_some(())
                    .ok_or(format!("{} {:?}", r.status, r.body))
            }),
            row("proxy", |fx| {
                let port = free_port();
                let mut p = fx.k.spawn(&["proxy", &format!("--port={port}")]);
                p.wait_line(Duration::from_secs(20), |l| {
                    l.starts_with("Starting to serve on")
                })
                .ok_or_else(|| format!("proxy did not start: {}", p.describe()))?;
                let v = http_get(port, "/version");
                let svc = http_get(
                    port,
                    "/api/v1/namespaces/default/services/web:80/proxy/index.html",
                );
                p.stop();
                let v = v.map_err(|e| e.to_string())?;
                if !(v.status == 200 && v.body.contains("\"minor\":\"32\"")) {
                    return Err(format!(
                        "/version through kubectl proxy: {} {}",
                        v.status, v.body
                    ));
                }
                // The API server's proxy to a Service is not served: refused by name.
                let svc = svc.map_err(|e| e.to_string())?;
                (svc.status == 404 && svc.body.contains("kubectl port-forward svc/NAME"))
                    .then_some(())
                    .ok_or(format!(
                        "services/web:80/proxy: {} {}",
                        svc.status, svc.body
                    ))
            }),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Writing: apply, diff, edit, patch, replace, label, annotate, set, scale.

#[test]
fn matrix_apply_edit_patch_set() {
    run_group(
        "write",
        vec![
            row("apply -f (unchanged)", |fx| {
                let f = write(fx, "web.yaml", &web_yaml(IMAGE));
                expect(
                    &k(fx, &["apply", "-f", &f]),
                    0,
                    &["deployment.apps/web unchanged", "service/web unchanged"],
                    &[],
                )
            }),
            row("apply --server-side", |fx| {
                let f = write(
                    fx,
                    "cm-ssa.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: '1'}\n",
                );
                expect(
                    &k(fx, &["apply", "--server-side", "-f", &f]),
                    0,
                    &["configmap/ssa serverside-applied"],
                    &[],
                )
            }),
            row("apply -k (kustomize)", |fx| {
                let d = fx.dir.join("kz");
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: prod}\n").unwrap();
                std::fs::write(
                    d.join("kustomization.yaml"),
                    "resources: [cm.yaml]\nnamePrefix: kz-\nlabels:\n- pairs: {env: kz}\n",
                )
                .unwrap();
                expect(
                    &k(fx, &["apply", "-k", &d.to_string_lossy()]),
                    0,
                    &["configmap/kz-settings created"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "cm", "-l", "env=kz", "-o", "name"]),
                    0,
                    &["configmap/kz-settings"],
                    &[],
                )?;
                expect(
                    &k(fx, &["delete", "-k", &d.to_string_lossy()]),
                    0,
                    &["configmap \"kz-settings\" deleted"],
                    &[],
                )
            }),
            row("diff (no change)", |fx| {
                let f = write(fx, "web.yaml", &web_yaml(IMAGE));
                expect(&k(fx, &["diff", "-f", &f]), 0, &[], &[])
            }),
            row("diff (a change)", |fx| {
                let f = write(
                    fx,
                    "web3.yaml",
                    &web_yaml(IMAGE).replacen("replicas: 1", "replicas: 3", 1),
                );
                expect(
                    &k(fx, &["diff", "-f", &f]),
                    1,
                    &["-  replicas: 1", "+  replicas: 3"],
                    &[],
                )
            }),
            row("edit (EDITOR script)", |fx| {
                expect(
                    &k(
                        fx,
                        &["create", "configmap", "edited", "--from-literal=v=before"],
                    ),
                    0,
                    &[],
                    &[],
                )?;
                let script = write(
                    fx,
                    "editor.sh",
                    "#!/bin/sh\nsed -i 's/v: before/v: after/' \"$1\"\n",
                );
                std::fs::set_permissions(
                    &script,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
                let mut c = std::process::Command::new(kubectl_bin());
                c.arg("--kubeconfig")
                    .arg(&fx.k.kubeconfig)
                    .arg("--cache-dir")
                    .arg(&fx.k.cache_dir)
                    .args(["edit", "configmap", "edited"])
                    .env("EDITOR", &script)
                    .env("KUBE_EDITOR", &script);
                let o = c.output().map_err(|e| e.to_string())?;
                let out = String::from_utf8_lossy(&o.stdout);
                if !(o.status.success() && out.contains("configmap/edited edited")) {
                    return Err(format!(
                        "{:?}: {out} {}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                    ));
                }
                expect(
                    &k(fx, &["get", "cm", "edited", "-o", "jsonpath={.data.v}"]),
                    0,
                    &["after"],
                    &[],
                )
            }),
            row("patch (strategic)", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "patch",
                            "deploy",
                            "web",
                            "-p",
                            r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"PATCHED","value":"strategic"}]}]}}}}"#,
                        ],
                    ),
                    0,
                    &["deployment.apps/web patched"],
                    &[],
                )?;
                expect(&k(fx, &["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].env[0].value} {.spec.template.spec.containers[0].image}"]), 0, &["strategic skiff-e2e-matrix:v1"], &[])
            }),
            row("patch --type=merge", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "patch",
                            "svc",
                            "web",
                            "--type=merge",
                            "-p",
                            r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
                        ],
                    ),
                    0,
                    &["service/web patched"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "svc", "web", "--show-labels"]),
                    0,
                    &["patched=merge"],
                    &[],
                )
            }),
            row("patch --type=json", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "patch",
                            "svc",
                            "web",
                            "--type=json",
                            "-p",
                            r#"[{"op":"replace","path":"/metadata/labels/patched","value":"json"}]"#,
                        ],
                    ),
                    0,
                    &["service/web patched"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "svc", "web", "--show-labels"]),
                    0,
                    &["patched=json"],
                    &[],
                )
            }),
            row("apply --validate=true (an unknown field refused)", |fx| {
                let deployment = web_yaml(IMAGE).split("---").next().unwrap().replacen(
                    "replicas: 1",
                    "replicas: 1\n  nope: 1",
                    1,
                );
                let f = write(fx, "unknown-field.yaml", &deployment);
                // One object: kubectl leaves validation to the server (fieldValidation=Strict).
                expect(
                    &k(fx, &["apply", "--validate=true", "-f", &f]),
                    1,
                    &[],
                    &["The Deployment \"web\" is invalid: spec.nope: unknown field \"nope\""],
                )?;
                // A `kind: List`: kubectl validates its items itself, with /openapi/v2.
                let items: String = deployment
                    .lines()
                    .map(|l| format!("    {l}\n"))
                    .collect::<String>()
                    .replacen("    apiVersion", "  - apiVersion", 1);
                let list = format!("apiVersion: v1\nkind: List\nitems:\n{items}");
                let f = write(fx, "unknown-field-list.yaml", &list);
                expect(
                    &k(fx, &["apply", "--validate=true", "-f", &f]),
                    1,
                    &[],
                    &["unknown field \"nope\" in io.k8s.api.apps.v1.DeploymentSpec"],
                )?;
                // The same List without the field validates and applies.
                let f = write(fx, "list.yaml", &list.replacen("\n      nope: 1", "", 1));
                expect(
                    &k(fx, &["apply", "--validate=true", "-f", &f]),
                    0,
                    &["deployment.apps/web unchanged"],
                    &[],
                )
            }),
            row(
                "patch (an unknown field refused)",
                fails(
                    &[
                        "patch",
                        "svc",
                        "web",
                        "--type=merge",
                        "-p",
                        r#"{"spec":{"nope":1}}"#,
                    ],
                    1,
                    &["nope"],
                ),
            ),
            row("replace -f", |fx| {
                let f = write(
                    fx,
                    "cm-replace.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: replaced}\n",
                );
                expect(
                    &k(fx, &["replace", "-f", &f]),
                    0,
                    &["configmap/ssa replaced"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "cm", "ssa", "-o", "jsonpath={.data.a}"]),
                    0,
                    &["replaced"],
                    &[],
                )
            }),
            row("label", |fx| {
                expect(
                    &k(fx, &["label", "deploy", "web", "tier=front"]),
                    0,
                    &["deployment.apps/web labeled"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "deploy", "-l", "tier=front", "-o", "name"]),
                    0,
                    &["deployment.apps/web"],
                    &[],
                )
            }),
            row(
                "label (exists, no --overwrite)",
                fails(
                    &["label", "deploy", "web", "tier=back"],
                    1,
                    &["'tier' already has a value (front), and --overwrite is false"],
                ),
            ),
            row(
                "label -",
                ok(
                    &["label", "deploy", "web", "tier-"],
                    &["deployment.apps/web unlabeled"],
                ),
            ),
            row("annotate", |fx| {
                expect(
                    &k(fx, &["annotate", "deploy", "web", "note=hello"]),
                    0,
                    &["deployment.apps/web annotated"],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "deploy",
                            "web",
                            "-o",
                            "jsonpath={.metadata.annotations.note}",
                        ],
                    ),
                    0,
                    &["hello"],
                    &[],
                )
            }),
            row("set image", |fx| {
                expect(
                    &k(
                        fx,
                        &["set", "image", "deploy/web", &format!("main={IMAGE2}")],
                    ),
                    0,
                    &["deployment.apps/web image updated"],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "pods",
                            "-l",
                            "app=web",
                            "-o",
                            "jsonpath={.items[*].spec.containers[0].image}",
                        ],
                    ),
                    0,
                    &[IMAGE2],
                    &[],
                )
            }),
            row(
                "set image (no such container)",
                fails(
                    &["set", "image", "deploy/web", "nope=x:1"],
                    1,
                    &["unable to find container named \"nope\""],
                ),
            ),
            row("set env", |fx| {
                expect(
                    &k(fx, &["set", "env", "deploy/web", "MODE=matrix"]),
                    0,
                    &["deployment.apps/web env updated"],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(
                    &k(
                        fx,
                        &["exec", "deploy/web", "--", "sh", "-c", "echo mode=$MODE"],
                    ),
                    0,
                    &["mode=matrix"],
                    &[],
                )
            }),
            row(
                "set env --list",
                ok(&["set", "env", "deploy/web", "--list"], &["MODE=matrix"]),
            ),
            row("set resources", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "set",
                            "resources",
                            "deploy/web",
                            "-c",
                            "main",
                            "--limits=cpu=200m,memory=64Mi",
                            "--requests=cpu=100m,memory=32Mi",
                        ],
                    ),
                    0,
                    &["resource requirements updated"],
                    &[],
                )?;
                rolled_out(fx)?;
                // Every pod, once the old ones (terminating after the rollout) are gone.
                let every = &["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.containers[0].resources.limits.memory} {.status.qosClass};{end}"];
                wait_for(Duration::from_secs(60), || {
                    let o = k(fx, every);
                    let pods: Vec<&str> = o.stdout.split(';').filter(|p| !p.is_empty()).collect();
                    (!pods.is_empty() && pods.iter().all(|p| *p == "64Mi Burstable")).then_some(())
                })
                .ok_or_else(|| format!("the pods' limits and QoS class: {}", k(fx, every)))
            }),
            row("scale", |fx| {
                expect(
                    &k(fx, &["scale", "deploy/web", "--replicas=2"]),
                    0,
                    &["deployment.apps/web scaled"],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(&k(fx, &["get", "deploy", "web"]), 0, &["2/2"], &[])?;
                expect(
                    &k(fx, &["scale", "deploy/web", "--replicas=1"]),
                    0,
                    &[],
                    &[],
                )
            }),
            row(
                "scale --current-replicas (mismatch)",
                fails(
                    &[
                        "scale",
                        "deploy/web",
                        "--current-replicas=5",
                        "--replicas=2",
                    ],
                    1,
                    &["Expected replicas to be 5, was 1"],
                ),
            ),
            row(
                "autoscale (refused by name)",
                fails(
                    &["autoscale", "deploy/web", "--max=3"],
                    1,
                    &[
                        "HorizontalPodAutoscalers (kubectl autoscale) are not supported by skiff",
                        "kubectl scale deployment NAME --replicas=N",
                    ],
                ),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Rollouts.

#[test]
fn matrix_rollout() {
    run_group(
        "rollout",
        vec![
            row(
                "rollout status",
                ok(
                    &["rollout", "status", "deploy/web", "--timeout=90s"],
                    &["deployment \"web\" successfully rolled out"],
                ),
            ),
            row("rollout restart", |fx| {
                let before = web_pod(fx);
                expect(
                    &k(fx, &["rollout", "restart", "deploy/web"]),
                    0,
                    &["deployment.apps/web restarted"],
                    &[],
                )?;
                rolled_out(fx)?;
                let after = web_pod(fx);
                (after != before)
                    .then_some(())
                    .ok_or(format!("the pod {before} was not replaced"))
            }),
            row("rollout history", |fx| {
                let o = k(fx, &["rollout", "history", "deploy/web"]);
                expect(&o, 0, &["REVISION  CHANGE-CAUSE", "1 "], &[])?;
                (o.stdout
                    .lines()
                    .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
                    .count()
                    >= 2)
                    .then_some(())
                    .ok_or(format!("two revisions or more expected: {o}"))
            }),
            row(
                "rollout history --revision",
                ok(
                    &["rollout", "history", "deploy/web", "--revision=1"],
                    &["revision #1", "Image:"],
                ),
            ),
            row("rollout undo", |fx| {
                expect(
                    &k(
                        fx,
                        &["set", "image", "deploy/web", &format!("main={IMAGE2}")],
                    ),
                    0,
                    &[],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(
                    &k(
                        fx,
                        &["set", "image", "deploy/web", &format!("main={IMAGE}")],
                    ),
                    0,
                    &[],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(
                    &k(fx, &["rollout", "undo", "deploy/web"]),
                    0,
                    &["deployment.apps/web rolled back"],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "deploy",
                            "web",
                            "-o",
                            "jsonpath={.spec.template.spec.containers[0].image}",
                        ],
                    ),
                    0,
                    &[IMAGE2],
                    &[],
                )
            }),
            row("rollout undo --to-revision", |fx| {
                expect(
                    &k(fx, &["rollout", "undo", "deploy/web", "--to-revision=1"]),
                    0,
                    &["deployment.apps/web rolled back"],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "deploy",
                            "web",
                            "-o",
                            "jsonpath={.spec.template.spec.containers[0].image}",
                        ],
                    ),
                    0,
                    &[IMAGE],
                    &[],
                )
            }),
            row("rollout pause", |fx| {
                expect(
                    &k(fx, &["rollout", "pause", "deploy/web"]),
                    0,
                    &["deployment.apps/web paused"],
                    &[],
                )?;
                expect(
                    &k(fx, &["set", "env", "deploy/web", "PAUSED=yes"]),
                    0,
                    &[],
                    &[],
                )?;
                std::thread::sleep(Duration::from_secs(3));
                let o = k(
                    fx,
                    &[
                        "get",
                        "pods",
                        "-l",
                        "app=web",
                        "-o",
                        "jsonpath={.items[*].spec.containers[0].env}",
                    ],
                );
                (!o.stdout.contains("PAUSED"))
                    .then_some(())
                    .ok_or(format!("a paused rollout went on: {o}"))
            }),
            row("rollout resume", |fx| {
                expect(
                    &k(fx, &["rollout", "resume", "deploy/web"]),
                    0,
                    &["deployment.apps/web resumed"],
                    &[],
                )?;
                rolled_out(fx)?;
                expect(
                    &k(
                        fx,
                        &[
                            "exec",
                            "deploy/web",
                            "--",
                            "sh",
                            "-c",
                            "echo paused=$PAUSED",
                        ],
                    ),
                    0,
                    &["paused=yes"],
                    &[],
                )
            }),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Creating: run, expose, create …, and deleting / waiting.

#[test]
fn matrix_create_run_expose() {
    let tls_dir = tempfile::tempdir().expect("a temp dir");
    let (crt, key) = (
        tls_dir.path().join("tls.crt"),
        tls_dir.path().join("tls.key"),
    );
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=matrix.example",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (crt, key) = (
        crt.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    run_group(
        "create",
        vec![
            row("run --restart=Never", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "run",
                            "once",
                            &format!("--image={IMAGE}"),
                            "--image-pull-policy=Never",
                            "--restart=Never",
                            "--",
                            "sh",
                            "-c",
                            "echo ran-once",
                        ],
                    ),
                    0,
                    &["pod/once created"],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &[
                            "wait",
                            "--for=jsonpath={.status.phase}=Succeeded",
                            "pod/once",
                            "--timeout=60s",
                        ],
                    ),
                    0,
                    &["pod/once condition met"],
                    &[],
                )?;
                expect(&k(fx, &["logs", "once"]), 0, &["ran-once"], &[])
            }),
            // A container's stdin (and so attach) is not supported: refused by name.
            row("run -i (refused by name)", |fx| {
                let o = fx.k.run_stdin(
                    &[
                        "run",
                        "interactive",
                        &format!("--image={IMAGE}"),
                        "--image-pull-policy=Never",
                        "--restart=Never",
                        "--rm",
                        "-i",
                        "--",
                        "sh",
                        "-c",
                        "read x; echo got-$x",
                    ],
                    "line\n",
                );
                expect(
                    &o,
                    1,
                    &[],
                    &[
                        "spec.containers[0].stdin: field is not supported by skiff",
                        "kubectl exec -it POD -- sh",
                    ],
                )
            }),
            row("expose", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "expose",
                            "deploy",
                            "web",
                            "--name=web2",
                            "--port=8081",
                            "--target-port=8080",
                        ],
                    ),
                    0,
                    &["service/web2 exposed"],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "endpointslices",
                            "-l",
                            "kubernetes.io/service-name=web2",
                        ],
                    ),
                    0,
                    &["8080"],
                    &[],
                )
            }),
            row(
                "create deployment",
                ok(
                    &[
                        "create",
                        "deployment",
                        "made",
                        "--image=skiff-e2e-matrix:v1",
                        "--replicas=1",
                        "--",
                        "sleep",
                        "3600",
                    ],
                    &["deployment.apps/made created"],
                ),
            ),
            row("create job", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "create",
                            "job",
                            "onejob",
                            &format!("--image={IMAGE}"),
                            "--",
                            "echo",
                            "job-done",
                        ],
                    ),
                    0,
                    &["job.batch/onejob created"],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &[
                            "wait",
                            "--for=condition=Complete",
                            "job/onejob",
                            "--timeout=60s",
                        ],
                    ),
                    0,
                    &["job.batch/onejob condition met"],
                    &[],
                )?;
                expect(&k(fx, &["logs", "job/onejob"]), 0, &["job-done"], &[])
            }),
            row(
                "create cronjob",
                ok(
                    &[
                        "create",
                        "cronjob",
                        "nightly",
                        "--image=skiff-e2e-matrix:v1",
                        "--schedule=0 3 * * *",
                        "--",
                        "echo",
                        "hi",
                    ],
                    &["cronjob.batch/nightly created"],
                ),
            ),
            row("create job --from=cronjob", |fx| {
                expect(
                    &k(fx, &["create", "job", "manual", "--from=cronjob/nightly"]),
                    0,
                    &["job.batch/manual created"],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &[
                            "wait",
                            "--for=condition=Complete",
                            "job/manual",
                            "--timeout=60s",
                        ],
                    ),
                    0,
                    &[],
                    &[],
                )
            }),
            row("create configmap --from-literal --from-file", |fx| {
                let f = write(fx, "app.properties", "color=blue\n");
                expect(
                    &k(
                        fx,
                        &[
                            "create",
                            "configmap",
                            "props",
                            "--from-literal=a=1",
                            &format!("--from-file={f}"),
                        ],
                    ),
                    0,
                    &["configmap/props created"],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "cm",
                            "props",
                            "-o",
                            "jsonpath={.data.a} {.data.app\\.properties}",
                        ],
                    ),
                    0,
                    &["1 color=blue"],
                    &[],
                )
            }),
            row("create secret generic", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "create",
                            "secret",
                            "generic",
                            "pw",
                            "--from-literal=password=s3cret",
                        ],
                    ),
                    0,
                    &["secret/pw created"],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &["get", "secret", "pw", "-o", "jsonpath={.data.password}"],
                    ),
                    0,
                    &["czNjcmV0"],
                    &[],
                )
            }),
            row("create secret tls", move |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "create",
                            "secret",
                            "tls",
                            "site-tls",
                            &format!("--cert={crt}"),
                            &format!("--key={key}"),
                        ],
                    ),
                    0,
                    &["secret/site-tls created"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "secret", "site-tls"]),
                    0,
                    &["kubernetes.io/tls", "2 "],
                    &[],
                )
            }),
            row(
                "create secret docker-registry",
                ok(
                    &[
                        "create",
                        "secret",
                        "docker-registry",
                        "regcred",
                        "--docker-server=registry.example",
                        "--docker-username=u",
                        "--docker-password=p",
                    ],
                    &["secret/regcred created"],
                ),
            ),
            row(
                "create namespace",
                ok(
                    &["create", "namespace", "matrix-ns"],
                    &["namespace/matrix-ns created"],
                ),
            ),
            row(
                "create serviceaccount",
                ok(
                    &["create", "serviceaccount", "robot"],
                    &["serviceaccount/robot created"],
                ),
            ),
            row(
                "create role",
                ok(
                    &[
                        "create",
                        "role",
                        "pod-reader",
                        "--verb=get,list",
                        "--resource=pods",
                    ],
                    &["role.rbac.authorization.k8s.io/pod-reader created"],
                ),
            ),
            row(
                "create rolebinding",
                ok(
                    &[
                        "create",
                        "rolebinding",
                        "robot-reads",
                        "--role=pod-reader",
                        "--serviceaccount=default:robot",
                    ],
                    &["rolebinding.rbac.authorization.k8s.io/robot-reads created"],
                ),
            ),
            // What kubectl sent as protobuf reads back whole.
            row("created Role and RoleBinding read back", |fx| {
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "role",
                            "pod-reader",
                            "-o",
                            "jsonpath={.rules[0].verbs} {.rules[0].resources} {.rules[0].apiGroups}",
                        ],
                    ),
                    0,
                    &[r#"["get","list"] ["pods"] [""]"#],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &[
                            "get",
                            "rolebinding",
                            "robot-reads",
                            "-o",
                            "jsonpath={.roleRef.kind}/{.roleRef.name} {.subjects[0].kind}/{.subjects[0].namespace}/{.subjects[0].name}",
                        ],
                    ),
                    0,
                    &["Role/pod-reader ServiceAccount/default/robot"],
                    &[],
                )
            }),
            row("auth can-i --as a ServiceAccount", |fx| {
                // Impersonation is not served: kubectl's --as is refused by name (it was
                // ignored, and the admin's "yes" printed as the ServiceAccount's).
                let o = k(
                    fx,
                    &[
                        "auth",
                        "can-i",
                        "list",
                        "pods",
                        "--as=system:serviceaccount:default:robot",
                    ],
                );
                expect(&o, 1, &[], &["impersonation (impersonate-user header; kubectl --as, --as-group, --as-uid) is not supported by skiff"])
            }),
            row(
                "create clusterrole",
                ok(
                    &[
                        "create",
                        "clusterrole",
                        "node-reader",
                        "--verb=get",
                        "--resource=nodes",
                    ],
                    &["clusterrole.rbac.authorization.k8s.io/node-reader created"],
                ),
            ),
            row(
                "create clusterrolebinding",
                ok(
                    &[
                        "create",
                        "clusterrolebinding",
                        "robot-nodes",
                        "--clusterrole=node-reader",
                        "--serviceaccount=default:robot",
                    ],
                    &["clusterrolebinding.rbac.authorization.k8s.io/robot-nodes created"],
                ),
            ),
            row(
                "create priorityclass",
                ok(
                    &["create", "priorityclass", "high", "--value=1000"],
                    &["priorityclass.scheduling.k8s.io/high created"],
                ),
            ),
            row(
                "created PriorityClass reads back",
                ok(
                    &["get", "priorityclass", "high", "-o", "jsonpath={.value}"],
                    &["1000"],
                ),
            ),
            row(
                "create ingress",
                ok(
                    &["create", "ingress", "site", "--rule=matrix.example/=web:80"],
                    &["ingress.networking.k8s.io/site created"],
                ),
            ),
            row(
                "create service clusterip",
                ok(
                    &["create", "service", "clusterip", "plain", "--tcp=80:8080"],
                    &["service/plain created"],
                ),
            ),
            row(
                "create service nodeport",
                ok(
                    &["create", "service", "nodeport", "np", "--tcp=80:8080"],
                    &["service/np created"],
                ),
            ),
            row(
                "create token (refused by name)",
                fails(
                    &["create", "token", "robot"],
                    1,
                    &[
                        "TokenRequest (kubectl create token) is not supported by skiff",
                        "skiff token create -n NAMESPACE",
                    ],
                ),
            ),
            row(
                "create poddisruptionbudget",
                ok(
                    &[
                        "create",
                        "pdb",
                        "web",
                        "--selector=app=web",
                        "--min-available=1",
                    ],
                    &["poddisruptionbudget.policy/web created"],
                ),
            ),
            row(
                "get pdb: its status from the pods (the disruption controller)",
                eventually(
                    &[
                        "get",
                        "pdb",
                        "web",
                        "-o",
                        "jsonpath={.status.desiredHealthy} {.status.conditions[0].type}",
                    ],
                    &["1 DisruptionAllowed"],
                ),
            ),
            row(
                "get pdb (columns)",
                ok(
                    &["get", "pdb"],
                    &[
                        "MIN AVAILABLE",
                        "MAX UNAVAILABLE",
                        "ALLOWED DISRUPTIONS",
                        "web",
                    ],
                ),
            ),
            row(
                "delete pdb",
                ok(
                    &["delete", "pdb", "web"],
                    &["poddisruptionbudget.policy \"web\" deleted"],
                ),
            ),
            row(
                "create quota (refused by name)",
                fails(
                    &["create", "quota", "q", "--hard=pods=3"],
                    1,
                    &[
                        "ResourceQuotas are not supported by skiff",
                        "resources.limits",
                    ],
                ),
            ),
            row(
                "certificate approve (refused by name)",
                fails(
                    &["certificate", "approve", "csr-1"],
                    1,
                    &["the server doesn't have a resource type \"certificatesigningrequests\""],
                ),
            ),
            row(
                "top pod (the Metrics API)",
                eventually(
                    &["top", "pod", "{pod}", "--containers"],
                    &["CPU(cores)", "web"],
                ),
            ),
            row(
                "top node (the Metrics API)",
                eventually(&["top", "node"], &["CPU(cores)", "MEMORY(%)", "{node}"]),
            ),
            row(
                "get --raw the Metrics API",
                ok(
                    &["get", "--raw", "/apis/metrics.k8s.io/v1beta1/pods"],
                    &["PodMetricsList"],
                ),
            ),
        ],
    );
}

#[test]
fn matrix_wait_delete_and_node() {
    run_group(
        "wait/delete/node",
        vec![
            row(
                "wait --for=condition",
                ok(
                    &[
                        "wait",
                        "--for=condition=Available",
                        "deploy/web",
                        "--timeout=60s",
                    ],
                    &["deployment.apps/web condition met"],
                ),
            ),
            row(
                "wait --for=jsonpath",
                ok(
                    &[
                        "wait",
                        "--for=jsonpath={.status.readyReplicas}=1",
                        "deploy/web",
                        "--timeout=60s",
                    ],
                    &["deployment.apps/web condition met"],
                ),
            ),
            row(
                "wait --for=condition (timeout)",
                fails(
                    &["wait", "--for=condition=Nope", "deploy/web", "--timeout=2s"],
                    1,
                    &["timed out waiting for the condition on deployments/web"],
                ),
            ),
            row("wait --for=delete", |fx| {
                expect(&k(fx, &["create", "configmap", "doomed"]), 0, &[], &[])?;
                expect(
                    &k(fx, &["delete", "configmap", "doomed", "--wait=false"]),
                    0,
                    &[],
                    &[],
                )?;
                expect(
                    &k(
                        fx,
                        &["wait", "--for=delete", "configmap/doomed", "--timeout=30s"],
                    ),
                    0,
                    &[],
                    &[],
                )
            }),
            row("delete --wait", |fx| {
                let f = write(
                    fx,
                    "gone.yaml",
                    &CRASHER
                        .replace("crasher", "gone")
                        .replace("exit 1", "sleep 3600"),
                );
                expect(&k(fx, &["apply", "-f", &f]), 0, &[], &[])?;
                expect(
                    &k(
                        fx,
                        &["wait", "--for=condition=Ready", "pod/gone", "--timeout=60s"],
                    ),
                    0,
                    &[],
                    &[],
                )?;
                expect(
                    &k(fx, &["delete", "pod", "gone", "--wait=true"]),
                    0,
                    &["pod \"gone\" deleted"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "pod", "gone"]),
                    1,
                    &[],
                    &["pods \"gone\" not found"],
                )
            }),
            row("delete -l", |fx| {
                for n in ["l1", "l2"] {
                    expect(&k(fx, &["create", "configmap", n]), 0, &[], &[])?;
                    expect(
                        &k(fx, &["label", "configmap", n, "batch=matrix"]),
                        0,
                        &[],
                        &[],
                    )?;
                }
                expect(
                    &k(fx, &["delete", "configmap", "-l", "batch=matrix"]),
                    0,
                    &["configmap \"l1\" deleted", "configmap \"l2\" deleted"],
                    &[],
                )
            }),
            row("delete -f", |fx| {
                let f = write(
                    fx,
                    "cm-del.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: by-file}\n",
                );
                expect(&k(fx, &["apply", "-f", &f]), 0, &[], &[])?;
                expect(
                    &k(fx, &["delete", "-f", &f]),
                    0,
                    &["configmap \"by-file\" deleted"],
                    &[],
                )
            }),
            row(
                "delete (missing)",
                fails(
                    &["delete", "configmap", "never-was"],
                    1,
                    &["configmaps \"never-was\" not found"],
                ),
            ),
            row("cordon", |fx| {
                expect(&k(fx, &["cordon", &fx.node]), 0, &["cordoned"], &[])?;
                expect(
                    &k(fx, &["get", "node", &fx.node]),
                    0,
                    &["SchedulingDisabled"],
                    &[],
                )
            }),
            row("uncordon", |fx| {
                expect(&k(fx, &["uncordon", &fx.node]), 0, &["uncordoned"], &[])?;
                let o = k(fx, &["get", "node", &fx.node]);
                (!o.stdout.contains("SchedulingDisabled"))
                    .then_some(())
                    .ok_or(format!("{o}"))
            }),
            row("taint node", |fx| {
                expect(
                    &k(fx, &["taint", "node", &fx.node, "matrix=yes:NoSchedule"]),
                    0,
                    &["tainted"],
                    &[],
                )?;
                let o = k(fx, &["describe", "node", &fx.node]);
                let back = k(fx, &["taint", "node", &fx.node, "matrix=yes:NoSchedule-"]);
                expect(&o, 0, &["matrix=yes:NoSchedule"], &[])?;
                expect(&back, 0, &["untainted"], &[])
            }),
            row("label node", |fx| {
                expect(
                    &k(fx, &["label", "node", &fx.node, "disk=ssd"]),
                    0,
                    &["labeled"],
                    &[],
                )?;
                expect(
                    &k(fx, &["get", "nodes", "-l", "disk=ssd", "-o", "name"]),
                    0,
                    &[&format!("node/{}", fx.node)],
                    &[],
                )?;
                expect(
                    &k(fx, &["label", "node", &fx.node, "disk-"]),
                    0,
                    &["unlabeled"],
                    &[],
                )
            }),
            row("drain --pod-selector", |fx| {
                let f = write(
                    fx,
                    "drainme.yaml",
                    &CRASHER
                        .replace("crasher", "drainme")
                        .replace("exit 1", "sleep 3600")
                        .replace(
                            "metadata:\n  name: drainme",
                            "metadata:\n  name: drainme\n  labels: {drain: me}",
                        ),
                );
                expect(&k(fx, &["apply", "-f", &f]), 0, &[], &[])?;
                expect(
                    &k(
                        fx,
                        &[
                            "wait",
                            "--for=condition=Ready",
                            "pod/drainme",
                            "--timeout=60s",
                        ],
                    ),
                    0,
                    &[],
                    &[],
                )?;
                let o = k(
                    fx,
                    &[
                        "drain",
                        &fx.node,
                        "--pod-selector=drain=me",
                        "--force",
                        "--timeout=60s",
                    ],
                );
                let _ = fx.k.run(&["uncordon", &fx.node]);
                expect(&o, 0, &["cordoned", "pod/drainme", "drained"], &[])?;
                expect(&k(fx, &["get", "pod", "drainme"]), 1, &[], &["not found"])
            }),
        ],
    );
}
