//! Server-side printing: the `meta.k8s.io/v1` `Table` kubectl asks for (`Accept: …;as=Table`),
//! with the columns a real cluster shows (priority 1 columns appear with `-o wide`).
//! `skiff get` renders the same tables.

use serde_json::{json, Value};

/// Columns of a kind: (name, type, priority). (Long: a table, one arm per kind.)
pub fn columns(kind: &str) -> Vec<(&'static str, &'static str, u8)> {
    match kind {
        "Pod" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        "Deployment" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "ReplicaSet" => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "StatefulSet" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        "Job" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "CronJob" => vec![
            ("Name", "string", 0),
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "date", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "DaemonSet" => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "ControllerRevision" => vec![
            ("Name", "string", 0),
            ("Controller", "string", 0),
            ("Revision", "integer", 0),
            ("Age", "string", 0),
        ],
        "ConfigMap" => vec![
            ("Name", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        "Secret" => vec![
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        "Namespace" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        "Node" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        "Lease" => vec![
            ("Name", "string", 0),
            ("Holder", "string", 0),
            ("Age", "string", 0),
        ],
        "HelmChart" => vec![
            ("Name", "string", 0),
            ("Chart", "string", 0),
            ("Version", "string", 0),
            ("Status", "string", 0),
            ("Revision", "integer", 0),
            ("Age", "string", 0),
            ("Target Namespace", "string", 1),
            ("Repo", "string", 1),
        ],
        "PodDisruptionBudget" => vec![
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        "PriorityClass" => vec![
            ("Name", "string", 0),
            ("Value", "integer", 0),
            ("Global-Default", "boolean", 0),
            ("Age", "string", 0),
            ("PreemptionPolicy", "string", 0),
        ],
        "Service" => vec![
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        "EndpointSlice" => vec![
            ("Name", "string", 0),
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ],
        "Ingress" => vec![
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ],
        "NetworkPolicy" => vec![
            ("Name", "string", 0),
            ("Pod-Selector", "string", 0),
            ("Age", "string", 0),
        ],
        "IngressClass" => vec![
            ("Name", "string", 0),
            ("Controller", "string", 0),
            ("Parameters", "string", 0),
            ("Age", "string", 0),
        ],
        "PersistentVolumeClaim" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Volume", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ],
        "PersistentVolume" => vec![
            ("Name", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("Reclaim Policy", "string", 0),
            ("Status", "string", 0),
            ("Claim", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Reason", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ],
        "StorageClass" => vec![
            ("Name", "string", 0),
            ("Provisioner", "string", 0),
            ("ReclaimPolicy", "string", 0),
            ("VolumeBindingMode", "string", 0),
            ("AllowVolumeExpansion", "string", 0),
            ("Age", "string", 0),
        ],
        "Event" => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _ => vec![("Name", "string", 0), ("Age", "string", 0)],
    }
}

/// A duration the way kubectl prints ages (`45s`, `3m12s`, `5h`, `2d3h`).
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => {
            if s % 60 == 0 {
                format!("{}m", s / 60)
            } else {
                format!("{}m{}s", s / 60, s % 60)
            }
        }
        600..=10_799 => format!("{}m", s / 60),
        10_800..=28_799 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m}m")
            }
        }
        28_800..=172_799 => format!("{}h", s / 3600),
        _ => {
            let (d, h) = (s / 86400, (s % 86400) / 3600);
            if h == 0 || d >= 8 {
                format!("{d}d")
            } else {
                format!("{d}d{h}h")
            }
        }
    }
}

fn since(ts: Option<&str>) -> String {
    match ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value) -> String {
    since(obj["metadata"]["creationTimestamp"].as_str())
}

/// The STATUS column of a pod, as kubectl computes it.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = pod["status"]["reason"]
        .as_str()
        .or(pod["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    let initializing = match init_status(pod) {
        Some(r) => {
            reason = r;
            true
        }
        None => false,
    };
    let initialized = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    let app = (!initializing || initialized).then(|| pod["status"]["containerStatuses"].as_array());
    for c in app.flatten().into_iter().flatten() {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            reason = r.into();
        } else if let Some(t) = c["state"]["terminated"].as_object() {
            reason = match t.get("reason").and_then(Value::as_str) {
                Some(r) => r.into(),
                None => format!(
                    "ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                ),
            };
        } else if c["ready"] == true && c["state"]["running"].is_object() {
            // keep
        }
    }
    if pod["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return "Terminating".into();
    }
    reason
}

/// What kubectl's `printPod` (1.29+) reads from a pod's init containers.
#[derive(Debug, Default, PartialEq)]
struct InitScan {
    /// The STATUS while they have not all completed (`Init:N/M`, `Init:<reason>`).
    status: Option<String>,
    /// Sidecars (`restartPolicy: Always`) started and ready: READY counts them.
    ready_sidecars: usize,
    /// Restarts of the init containers looked at, and of the sidecars among them.
    restarts: i64,
    sidecar_restarts: i64,
    /// The latest `lastState.terminated.finishedAt` of those, and of a sidecar.
    last_restart: Option<String>,
    sidecar_last_restart: Option<String>,
}

/// The init containers as kubectl's `printPod` walks them: in order, a completed one or a
/// started sidecar passes (a ready sidecar counts toward READY); the first other one gives
/// the STATUS.
fn init_scan(pod: &Value) -> InitScan {
    let specs = pod["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = specs.len();
    let sidecar = |name: &Value| {
        specs
            .iter()
            .any(|c| &c["name"] == name && c["restartPolicy"] == "Always")
    };
    let mut scan = InitScan::default();
    let statuses = pod["status"]["initContainerStatuses"].as_array();
    for (i, c) in statuses.into_iter().flatten().enumerate() {
        let restarts = c["restartCount"].as_i64().unwrap_or(0);
        let is_sidecar = sidecar(&c["name"]);
        scan.restarts += restarts;
        let finished = c["lastState"]["terminated"]["finishedAt"].as_str();
        if finished > scan.last_restart.as_deref() {
            scan.last_restart = finished.map(String::from);
        }
        if is_sidecar {
            scan.sidecar_restarts += restarts;
            if finished > scan.sidecar_last_restart.as_deref() {
                scan.sidecar_last_restart = finished.map(String::from);
            }
        }
        let t = &c["state"]["terminated"];
        let waiting = c["state"]["waiting"]["reason"].as_str().unwrap_or_default();
        if t.is_object() && t["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if is_sidecar && c["started"] == true {
            scan.ready_sidecars += usize::from(c["ready"] == true);
            continue;
        }
        scan.status = Some(if t.is_object() {
            match t["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None if t["signal"].as_i64().unwrap_or(0) != 0 => {
                    format!("Init:Signal:{}", t["signal"].as_i64().unwrap_or(0))
                }
                None => format!("Init:ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{total}")
        });
        break;
    }
    scan
}

/// The STATUS of a pod whose init containers have not all completed, as kubectl's `printPod`
/// has it (`Init:N/M`, `Init:<reason>`), or `None`.
fn init_status(pod: &Value) -> Option<String> {
    init_scan(pod).status
}

fn containers_and_images(spec: &Value) -> (String, String) {
    let cs = spec["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

/// A Job's STATUS column, as kubectl 1.32's printJob decides it.
fn job_status(o: &Value) -> &'static str {
    let has = |ty: &str| {
        o["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if !o["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// A Job's COMPLETIONS column: `succeeded/completions`, or for a work queue `n/1 of <parallelism>`.
fn job_completions(o: &Value) -> String {
    let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
    match o["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match o["spec"]["parallelism"].as_i64().unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// A Job's DURATION column: start to completion, or to now while it runs; empty before it
/// started.
fn job_duration(o: &Value, now: jiff::Timestamp) -> String {
    let t = |v: &Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
    match (
        t(&o["status"]["startTime"]),
        t(&o["status"]["completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.as_second() - s.as_second()),
        (Some(s), Some(e)) => human_duration(e.as_second() - s.as_second()),
    }
}

/// The controlling owner as kubectl prints it, `<kind>.<group>/<name>` (`<none>` without one).
fn controller_of(o: &Value) -> String {
    o["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
        .map(|r| {
            let kind = r["kind"].as_str().unwrap_or_default().to_ascii_lowercase();
            let api = r["apiVersion"].as_str().unwrap_or_default();
            match api.rsplit_once('/') {
                Some((group, _)) => {
                    format!("{kind}.{group}/{}", r["name"].as_str().unwrap_or_default())
                }
                None => format!("{kind}/{}", r["name"].as_str().unwrap_or_default()),
            }
        })
        .unwrap_or_else(|| "<none>".to_string())
}

/// A label selector as Kubernetes writes one (`k=v,k in (a,b),!k`, requirements sorted by
/// key) — kubectl's column, the scale subresource's.
pub(super) fn selector(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "DoesNotExist" => format!("!{key}"),
            _ => key.to_string(),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// The cells of one row. (Long: a table, one arm per kind, each as kubectl prints it —
/// splitting it would scatter what one kind's row says.)
pub fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"].as_str().unwrap_or_default());
    let int = |v: &Value| json!(v.as_i64().unwrap_or(0));
    match kind {
        "Pod" => {
            let cs = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            // READY counts sidecars; while initializing, RESTARTS counts the init
            // containers' restarts, else the app containers' and the sidecars'.
            let scan = init_scan(o);
            let initialized = o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Initialized" && c["status"] == "True");
            let sidecars = o["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["restartPolicy"] == "Always")
                .count();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len) + sidecars;
            let ready = cs.iter().filter(|c| c["ready"] == true).count() + scan.ready_sidecars;
            let (restarts, last_restart) = if scan.status.is_none() || initialized {
                let restarts: i64 = cs
                    .iter()
                    .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                    .sum();
                let last = cs
                    .iter()
                    .filter_map(|c| c["lastState"]["terminated"]["finishedAt"].as_str())
                    .chain(scan.sidecar_last_restart.as_deref())
                    .max()
                    .map(String::from);
                (restarts + scan.sidecar_restarts, last)
            } else {
                (scan.restarts, scan.last_restart.clone())
            };
            let last_restart = last_restart.map(|t| format!(" ({} ago)", since(Some(&t))));
            let restarts = match (restarts, last_restart) {
                (0, _) | (_, None) => restarts.to_string(),
                (n, Some(ago)) => format!("{n}{ago}"),
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts),
                json!(age(o)),
                json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        "Deployment" => {
            let (c, i) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(0)
                )),
                int(&o["status"]["updatedReplicas"]),
                int(&o["status"]["availableReplicas"]),
                json!(age(o)),
                json!(c),
                json!(i),
                json!(selector(&o["spec"]["selector"])),
            ]
        }
        "ReplicaSet" => {
            let (c, i) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                int(&o["spec"]["replicas"]),
                int(&o["status"]["replicas"]),
                int(&o["status"]["readyReplicas"]),
                json!(age(o)),
                json!(c),
                json!(i),
                json!(selector(&o["spec"]["selector"])),
            ]
        }
        "StatefulSet" => {
            let (c, i) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(0)
                )),
                json!(age(o)),
                json!(c),
                json!(i),
            ]
        }
        "Job" => {
            let (c, i) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(job_status(o)),
                json!(job_completions(o)),
                json!(job_duration(o, jiff::Timestamp::now())),
                json!(age(o)),
                json!(c),
                json!(i),
                json!(selector(&o["spec"]["selector"])),
            ]
        }
        "DaemonSet" => {
            let (c, i) = containers_and_images(&o["spec"]["template"]["spec"]);
            let st = &o["status"];
            let node_selector =
                selector(&json!({"matchLabels": o["spec"]["template"]["spec"]["nodeSelector"]}));
            vec![
                name,
                int(&st["desiredNumberScheduled"]),
                int(&st["currentNumberScheduled"]),
                int(&st["numberReady"]),
                int(&st["updatedNumberScheduled"]),
                int(&st["numberAvailable"]),
                json!(if node_selector.is_empty() {
                    "<none>".to_string()
                } else {
                    node_selector
                }),
                json!(age(o)),
                json!(c),
                json!(i),
                json!(selector(&o["spec"]["selector"])),
            ]
        }
        "CronJob" => {
            let spec = &o["spec"];
            let (c, i) = containers_and_images(&spec["jobTemplate"]["spec"]["template"]["spec"]);
            vec![
                name,
                json!(spec["schedule"].as_str().unwrap_or_default()),
                json!(spec["timeZone"].as_str().unwrap_or("<none>")),
                json!(match spec["suspend"].as_bool() {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                }),
                json!(o["status"]["active"].as_array().map_or(0, Vec::len)),
                json!(match o["status"]["lastScheduleTime"].as_str() {
                    Some(t) => since(Some(t)),
                    None => "<none>".to_string(),
                }),
                json!(age(o)),
                json!(c),
                json!(i),
                json!(selector(&spec["jobTemplate"]["spec"]["selector"])),
            ]
        }
        "ControllerRevision" => vec![
            name,
            json!(controller_of(o)),
            int(&o["revision"]),
            json!(age(o)),
        ],
        "ConfigMap" => vec![
            name,
            json!(
                o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len())
            ),
            json!(age(o)),
        ],
        "Secret" => vec![
            name,
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            json!(age(o)),
        ],
        "Namespace" => vec![
            name,
            json!(o["status"]["phase"].as_str().unwrap_or("Active")),
            json!(age(o)),
        ],
        "Node" => node_cells(name, o),
        "Lease" => vec![
            name,
            json!(o["spec"]["holderIdentity"].as_str().unwrap_or_default()),
            json!(age(o)),
        ],
        "HelmChart" => {
            let spec = &o["spec"];
            let chart = match spec["chart"].as_str().unwrap_or_default() {
                "" if spec["chartContent"].is_string() => "(chartContent)",
                c => c,
            };
            // The condition that is True (Installed or Failed), else Pending.
            let status = o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["status"] == "True")
                .and_then(|c| c["type"].as_str())
                .unwrap_or("Pending");
            vec![
                name,
                json!(chart),
                json!(o["status"]["chartVersion"].as_str().unwrap_or_default()),
                json!(status),
                int(&o["status"]["revision"]),
                json!(age(o)),
                json!(spec["targetNamespace"].as_str().unwrap_or_default()),
                json!(spec["repo"].as_str().unwrap_or_default()),
            ]
        }
        "PodDisruptionBudget" => {
            let int_or_string = |v: &Value| match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => "N/A".to_string(),
            };
            vec![
                name,
                json!(int_or_string(&o["spec"]["minAvailable"])),
                json!(int_or_string(&o["spec"]["maxUnavailable"])),
                json!(o["status"]["disruptionsAllowed"].as_i64().unwrap_or(0)),
                json!(age(o)),
            ]
        }
        "PriorityClass" => vec![
            name,
            json!(o["value"].as_i64().unwrap_or(0)),
            json!(o["globalDefault"].as_bool().unwrap_or(false)),
            json!(age(o)),
            json!(o["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")),
        ],
        "Service" => {
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let node = p["nodePort"]
                        .as_i64()
                        .map(|n| format!(":{n}"))
                        .unwrap_or_default();
                    format!(
                        "{}{node}/{}",
                        p["port"].as_i64().unwrap_or(0),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            let external: Vec<String> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().map(String::from))
                .collect();
            let ty = o["spec"]["type"].as_str().unwrap_or("ClusterIP");
            let external = if !external.is_empty() {
                external.join(",")
            } else if ty == "LoadBalancer" {
                "<pending>".into()
            } else {
                "<none>".into()
            };
            let selector = o["spec"]["selector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(ty),
                json!(o["spec"]["clusterIP"].as_str().unwrap_or("<none>")),
                json!(external),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                json!(age(o)),
                json!(selector),
            ]
        }
        "EndpointSlice" => {
            let ports: Vec<String> = o["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["port"].as_i64().map(|n| n.to_string()))
                .collect();
            let eps: Vec<String> = o["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["addresses"][0].as_str().map(String::from))
                .collect();
            vec![
                name,
                json!(o["addressType"].as_str().unwrap_or("IPv4")),
                json!(if ports.is_empty() {
                    "<unset>".to_string()
                } else {
                    ports.join(",")
                }),
                json!(if eps.is_empty() {
                    "<unset>".to_string()
                } else {
                    eps.join(",")
                }),
                json!(age(o)),
            ]
        }
        "Ingress" => {
            let hosts: Vec<&str> = o["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["host"].as_str())
                .collect();
            let address: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str())
                .collect();
            let tls = o["spec"]["tls"].as_array().is_some_and(|t| !t.is_empty());
            vec![
                name,
                json!(o["spec"]["ingressClassName"].as_str().unwrap_or("<none>")),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(address.join(",")),
                json!(if tls { "80, 443" } else { "80" }),
                json!(age(o)),
            ]
        }
        "NetworkPolicy" => {
            let sel = selector(&o["spec"]["podSelector"]);
            vec![
                name,
                json!(if sel.is_empty() { "<none>".into() } else { sel }),
                json!(age(o)),
            ]
        }
        "IngressClass" => vec![
            name,
            json!(o["spec"]["controller"].as_str().unwrap_or_default()),
            json!("<none>"),
            json!(age(o)),
        ],
        "PersistentVolumeClaim" | "PersistentVolume" | "StorageClass" => storage_cells(kind, o),
        "Event" => {
            let last = o["lastTimestamp"]
                .as_str()
                .or(o["eventTime"].as_str())
                .or(o["metadata"]["creationTimestamp"].as_str());
            let obj = &o["involvedObject"];
            vec![
                json!(since(last)),
                json!(o["type"].as_str().unwrap_or("Normal")),
                json!(o["reason"].as_str().unwrap_or_default()),
                json!(format!(
                    "{}/{}",
                    obj["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    obj["name"].as_str().unwrap_or_default()
                )),
                json!(o["message"].as_str().unwrap_or_default()),
            ]
        }
        _ => vec![name, json!(age(o))],
    }
}

/// Access modes as kubectl abbreviates them (`RWO,ROX`).
/// A Node's row, as kubectl's `printNode`: STATUS from the Ready condition (and
/// `SchedulingDisabled` when cordoned), ROLES from the `node-role.kubernetes.io/*` labels.
fn node_cells(name: Value, o: &Value) -> Vec<Value> {
    let conditions = o["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = vec![match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(c) if c["status"] == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if o["spec"]["unschedulable"] == true {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<String> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role.to_string()),
            _ if k == "kubernetes.io/role" => v.as_str().map(String::from),
            _ => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    let address = |ty: &str| {
        o["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == ty)
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = &o["status"]["nodeInfo"];
    let text = |v: &Value, none: &str| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or(none)
            .to_string()
    };
    vec![
        name,
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        }),
        json!(age(o)),
        json!(text(&info["kubeletVersion"], "")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(text(&info["osImage"], "<unknown>")),
        json!(text(&info["kernelVersion"], "<unknown>")),
        json!(text(&info["containerRuntimeVersion"], "<unknown>")),
    ]
}

fn access_modes(modes: &Value) -> String {
    modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The rows of claims, volumes and classes, as kubectl's printers fill them.
fn storage_cells(kind: &str, o: &Value) -> Vec<Value> {
    let s = |v: &Value| json!(v.as_str().unwrap_or_default());
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    let terminating = o["metadata"]["deletionTimestamp"].is_string();
    let phase = |default: &str| {
        json!(if terminating {
            "Terminating"
        } else {
            o["status"]["phase"].as_str().unwrap_or(default)
        })
    };
    let mode = json!(o["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"));
    match kind {
        "PersistentVolumeClaim" => {
            let bound = o["status"]["phase"] == "Bound";
            vec![
                json!(name),
                phase("Pending"),
                s(&o["spec"]["volumeName"]),
                json!(if bound {
                    o["status"]["capacity"]["storage"]
                        .as_str()
                        .unwrap_or_default()
                } else {
                    ""
                }),
                json!(if bound {
                    access_modes(&o["status"]["accessModes"])
                } else {
                    String::new()
                }),
                s(&o["spec"]["storageClassName"]),
                json!("<unset>"),
                json!(age(o)),
                mode,
            ]
        }
        "PersistentVolume" => {
            let claim = &o["spec"]["claimRef"];
            let claim = match (claim["namespace"].as_str(), claim["name"].as_str()) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => String::new(),
            };
            vec![
                json!(name),
                s(&o["spec"]["capacity"]["storage"]),
                json!(access_modes(&o["spec"]["accessModes"])),
                s(&o["spec"]["persistentVolumeReclaimPolicy"]),
                phase("Pending"),
                json!(claim),
                s(&o["spec"]["storageClassName"]),
                json!("<unset>"),
                s(&o["status"]["reason"]),
                json!(age(o)),
                mode,
            ]
        }
        _ => {
            let default = o["metadata"]["annotations"]
                [crate::model::defaults::DEFAULT_CLASS_ANNOTATION]
                == "true";
            vec![
                json!(if default {
                    format!("{name} (default)")
                } else {
                    name.to_string()
                }),
                s(&o["provisioner"]),
                json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
                json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
                json!(o["allowVolumeExpansion"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string()),
                json!(age(o)),
            ]
        }
    }
}

/// `PartialObjectMetadata` of an object (what a Table row carries by default).
pub fn partial_metadata(o: &Value) -> Value {
    // Without managedFields: kubectl never prints them from a Table, and they are a third of
    // a pod's metadata.
    let mut metadata = o["metadata"].clone();
    if let Some(m) = metadata.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
}

/// A Table of objects of one kind.
pub fn table(
    kind: &str,
    objects: &[&Value],
    resource_version: &str,
    include_object: &str,
) -> Value {
    let defs: Vec<Value> = columns(kind)
        .into_iter()
        .map(|(name, ty, priority)| {
            json!({
                "name": name,
                "type": ty,
                "format": if name == "Name" { "name" } else { "" },
                "description": "",
                "priority": priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include_object {
                "Object" => (*o).clone(),
                "None" => Value::Null,
                _ => partial_metadata(o),
            };
            json!({"cells": cells(kind, o), "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// Renders a table as text, kubectl-style (upper-case headers, 3-space gaps).
pub fn render(kind: &str, objects: &[&Value], wide: bool, with_namespace: bool) -> String {
    let cols = columns(kind);
    let keep: Vec<usize> = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| wide || c.2 == 0)
        .map(|(i, _)| i)
        .collect();
    let mut head: Vec<String> = keep
        .iter()
        .map(|&i| cols[i].0.to_ascii_uppercase())
        .collect();
    let mut rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            let cells = cells(kind, o);
            keep.iter()
                .map(|&i| match &cells[i] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect()
        })
        .collect();
    if with_namespace {
        head.insert(0, "NAMESPACE".into());
        for (r, o) in rows.iter_mut().zip(objects) {
            r.insert(
                0,
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            );
        }
    }
    let mut widths: Vec<usize> = head.iter().map(String::len).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_columns_print_like_kubectl() {
        let job = json!({"kind":"Job","metadata":{"name":"pi"},
          "spec":{"completions":3,"parallelism":2},
          "status":{"succeeded":3,"startTime":"2026-01-01T12:00:00Z",
            "completionTime":"2026-01-01T12:01:05Z",
            "conditions":[{"type":"SuccessCriteriaMet","status":"True"},
                          {"type":"Complete","status":"True"}]}});
        assert_eq!(job_status(&job), "Complete");
        assert_eq!(job_completions(&job), "3/3");
        assert_eq!(job_duration(&job, jiff::Timestamp::now()), "65s");
        let queue = json!({"spec":{"parallelism":4},"status":{"succeeded":1,
          "startTime":"2026-01-01T12:00:00Z",
          "conditions":[{"type":"FailureTarget","status":"True"}]}});
        assert_eq!(job_completions(&queue), "1/1 of 4");
        assert_eq!(job_status(&queue), "FailureTarget");
        assert_eq!(
            job_duration(&queue, "2026-01-01T12:03:00Z".parse().unwrap()),
            "3m"
        );
        assert_eq!(job_duration(&json!({}), jiff::Timestamp::now()), "");
        let cells = cells(
            "CronJob",
            &json!({"metadata":{"name":"b"},
          "spec":{"schedule":"@hourly","suspend":false,"jobTemplate":{"spec":{"template":{"spec":
            {"containers":[{"name":"c","image":"i"}]}}}}},
          "status":{"active":[{"name":"b-1"}]}}),
        );
        assert_eq!(
            cells[..6],
            [
                json!("b"),
                json!("@hourly"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(2 * 86400 + 3 * 3600), "2d3h");
    }

    fn pod(inits: Value, apps: Value, initialized: bool) -> Value {
        let init = if initialized { "True" } else { "False" };
        json!({"metadata":{"name":"p"},
          "spec":{"initContainers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"c"}]},
          "status":{"phase":"Pending","conditions":[{"type":"Initialized","status":init}],
            "initContainerStatuses":inits,"containerStatuses":apps}})
    }

    #[test]
    fn init_status_prints_like_kubectl() {
        let waiting = |r: &str| json!({"state":{"waiting":{"reason":r}}});
        let running = json!({"state":{"running":{}}});
        let done = json!({"state":{"terminated":{"exitCode":0,"reason":"Completed"}}});
        let failed = json!({"state":{"terminated":{"exitCode":1,"reason":"Error"}}});
        let app = json!([waiting("PodInitializing")]);
        let cases = [
            (
                json!([waiting("PodInitializing"), waiting("PodInitializing")]),
                false,
                "Init:0/2",
            ),
            (
                json!([running, waiting("PodInitializing")]),
                false,
                "Init:0/2",
            ),
            (json!([done, running]), false, "Init:1/2"),
            (json!([done, failed]), false, "Init:Error"),
            (
                json!([failed, waiting("PodInitializing")]),
                false,
                "Init:Error",
            ),
            (
                json!([waiting("CrashLoopBackOff"), waiting("PodInitializing")]),
                false,
                "Init:CrashLoopBackOff",
            ),
            (
                json!([done, {"state":{"terminated":{"exitCode":2}}}]),
                false,
                "Init:ExitCode:2",
            ),
            (json!([done, done]), true, "PodInitializing"),
        ];
        for (inits, initialized, want) in cases {
            assert_eq!(pod_status(&pod(inits, app.clone(), initialized)), want);
        }
        let mut p = pod(
            json!([done, done]),
            json!([{"ready":true,"state":{"running":{}}}]),
            true,
        );
        p["status"]["phase"] = json!("Running");
        assert_eq!(pod_status(&p), "Running");
    }

    #[test]
    fn sidecars_count_in_ready_and_pass_once_started() {
        let mut p = pod(
            json!([{"name":"a","started":true,"ready":true,"restartCount":2,
                    "state":{"running":{}}},
                   {"name":"b","state":{"running":{}}}]),
            json!([{"name":"c","state":{"waiting":{"reason":"PodInitializing"}}}]),
            false,
        );
        p["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
        // The started sidecar passes; the second init container runs.
        assert_eq!(pod_status(&p), "Init:1/2");
        let row = cells("Pod", &p);
        assert_eq!(row[1], json!("1/2"));
        assert_eq!(row[3], json!("2"));
        // Not started yet (startup probe): it is the step.
        p["status"]["initContainerStatuses"][0]["started"] = json!(false);
        assert_eq!(pod_status(&p), "Init:0/2");
        assert_eq!(cells("Pod", &p)[1], json!("0/2"));
        // Initialized: READY counts the ready sidecar and app container, RESTARTS both.
        p["status"]["initContainerStatuses"] = json!([
            {"name":"a","started":true,"ready":true,"restartCount":2,"state":{"running":{}}},
            {"name":"b","restartCount":1,"state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]);
        p["status"]["containerStatuses"] = json!([
            {"name":"c","ready":true,"restartCount":1,"state":{"running":{}}}]);
        p["status"]["conditions"][0]["status"] = json!("True");
        p["status"]["phase"] = json!("Running");
        assert_eq!(pod_status(&p), "Running");
        let row = cells("Pod", &p);
        assert_eq!((&row[1], &row[3]), (&json!("2/2"), &json!("3")));
    }
}
