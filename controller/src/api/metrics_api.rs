//! The Metrics API, `metrics.k8s.io/v1beta1` (what metrics-server serves, what `kubectl top`
//! reads): `NodeMetrics` (`/nodes`, `/nodes/NAME`) and `PodMetrics` (`/pods`,
//! `/namespaces/NS/pods`, `/namespaces/NS/pods/NAME`), get and list with `labelSelector` and
//! `fieldSelector`, from the [`Node`](super::Node)'s usage report: CPU as a rate over the last
//! sampling window, memory as the working set.
//!
//! Authorization: the admin reads everything; a namespace token or a ServiceAccount (through
//! its RBAC rules on `pods` in `metrics.k8s.io`) reads the PodMetrics of its own namespace
//! only, never NodeMetrics (the node's figures span every namespace).

use std::time::Duration;

use hyper::{Method, Request, Response};
use serde_json::{json, Value};

use super::auth::Identity;
use super::rest::{error, ok_json};
use super::select::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::{ApiState, Body, ReqBody};
use crate::model::meta;

/// The group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its version.
pub const VERSION: &str = "v1beta1";

/// Usage of a node or a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// CPU, nanocores.
    pub cpu_nanocores: u64,
    /// Memory working set, bytes.
    pub memory_bytes: u64,
}

/// One container's usage.
#[derive(Clone, Debug)]
pub struct ContainerUsage {
    /// Its pod's uid.
    pub pod_uid: String,
    /// The container's name.
    pub container: String,
    /// The usage.
    pub usage: Usage,
}

/// The node's usage report over one sampling window.
#[derive(Clone, Debug)]
pub struct UsageReport {
    /// When the window ended (RFC 3339).
    pub timestamp: String,
    /// Its length.
    pub window: Duration,
    /// The node's usage.
    pub node: Option<Usage>,
    /// The running containers' usage.
    pub containers: Vec<ContainerUsage>,
}

/// The `APIResourceList` of `/apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// The group's entry in aggregated discovery (`/apis`, `apidiscovery.k8s.io/v2`).
pub fn aggregated_group() -> Value {
    let resource = |plural: &str, kind: &str, scope: &str| {
        json!({
            "resource": plural,
            "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
            "scope": scope,
            "singularResource": "",
            "verbs": ["get", "list"],
        })
    };
    json!({
        "metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{"version": VERSION, "freshness": "Current", "resources": [
            resource("nodes", "NodeMetrics", "Cluster"),
            resource("pods", "PodMetrics", "Namespaced"),
        ]}],
    })
}

/// The group's entry in `/apis` (`APIGroupList`).
pub fn group() -> Value {
    let gv = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

/// Serves `/apis/metrics.k8s.io/v1beta1/<rest>`.
pub(super) fn serve(
    state: &ApiState,
    who: &Identity,
    req: &Request<ReqBody>,
    rest: &[&str],
) -> Response<Body> {
    match answer(state, who, req, rest) {
        Ok(v) => ok_json(200, &v),
        Err(e) => error(&e),
    }
}

fn answer(
    state: &ApiState,
    who: &Identity,
    req: &Request<ReqBody>,
    rest: &[&str],
) -> Result<Value, ApiError> {
    let path = req.uri().path();
    let (namespace, plural, name) = match rest {
        [] => return method(req).map(|_| resource_list()),
        ["nodes"] => (None, "nodes", None),
        ["nodes", name] => (None, "nodes", Some(*name)),
        ["pods"] => (None, "pods", None),
        ["namespaces", ns, "pods"] => (Some(*ns), "pods", None),
        ["namespaces", ns, "pods", name] => (Some(*ns), "pods", Some(*name)),
        _ => return Err(ApiError::no_route(path)),
    };
    method(req)?;
    let verb = if name.is_some() { "get" } else { "list" };
    authorize(state, who, namespace, plural, name, verb)?;
    let q: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if q.get("watch").is_some_and(|w| super::query_bool(w)) {
        return Err(ApiError::method_not_allowed("watch"));
    }
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let report = state.node.usage();
    let items: Vec<Value> = if plural == "nodes" {
        state
            .store
            .list("Node", None)
            .iter()
            .filter(|n| name.is_none_or(|want| meta::name(n) == want))
            .filter_map(|n| node_metrics(n, report.as_ref()?))
            .collect()
    } else {
        state
            .store
            .list("Pod", namespace)
            .iter()
            .filter(|p| name.is_none_or(|want| meta::name(p) == want))
            .filter_map(|p| pod_metrics(p, report.as_ref()?))
            .collect()
    };
    let items: Vec<Value> = items
        .into_iter()
        .filter(|m| labels.matches(m) && fields.matches(m))
        .collect();
    let list_kind = if plural == "nodes" {
        "NodeMetricsList"
    } else {
        "PodMetricsList"
    };
    match name {
        Some(name) => items
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found(plural, GROUP, name)),
        None => Ok(json!({
            "kind": list_kind,
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {},
            "items": items,
        })),
    }
}

/// Only GET is served (the Metrics API is read-only).
fn method(req: &Request<ReqBody>) -> Result<(), ApiError> {
    if req.method() == Method::GET {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(req.method().as_str()))
    }
}

fn authorize(
    state: &ApiState,
    who: &Identity,
    namespace: Option<&str>,
    plural: &str,
    name: Option<&str>,
    verb: &str,
) -> Result<(), ApiError> {
    let Some(allowed) = &who.namespace else {
        return Ok(());
    };
    let in_own = plural == "pods" && namespace == Some(allowed.as_str());
    let granted = in_own
        && (!who.service_account
            || super::rbac::allows(
                &state.store,
                &super::rbac::Account {
                    namespace: allowed,
                    name: &who.id,
                },
                &super::rbac::Attributes {
                    verb,
                    group: GROUP,
                    resource: plural,
                    subresource: None,
                    name,
                    namespace,
                },
            ));
    if granted {
        return Ok(());
    }
    let scope = match namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".into(),
    };
    let name = name.map(|n| format!("{n:?} ")).unwrap_or_default();
    Err(ApiError::forbidden(format!(
        "{plural}.{GROUP} {name}is forbidden: User {:?} cannot {verb} resource {plural:?} in API group {GROUP:?} {scope}",
        who.user()
    )))
}

/// CPU as metrics-server writes it (nanocores), memory in Ki when whole.
fn quantities(u: &Usage) -> Value {
    let memory = if u.memory_bytes.is_multiple_of(1024) {
        format!("{}Ki", u.memory_bytes / 1024)
    } else {
        u.memory_bytes.to_string()
    };
    json!({"cpu": format!("{}n", u.cpu_nanocores), "memory": memory})
}

/// A window as Go's `time.Duration` prints it, to the millisecond (`10.003s`).
fn window(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", (ms as f64 / 1000.0))
    }
}

fn metadata(obj: &Value, timestamp: &str) -> Value {
    let mut m = json!({
        "name": meta::name(obj),
        "creationTimestamp": timestamp,
        "labels": obj["metadata"]["labels"].clone(),
    });
    if let Some(ns) = obj["metadata"]["namespace"].as_str() {
        m["namespace"] = json!(ns);
    }
    if m["labels"].is_null() {
        m.as_object_mut().expect("object").remove("labels");
    }
    m
}

fn node_metrics(node: &Value, report: &UsageReport) -> Option<Value> {
    let usage = report.node.as_ref()?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": metadata(node, &report.timestamp),
        "timestamp": report.timestamp,
        "window": window(report.window),
        "usage": quantities(usage),
    }))
}

/// A pod's metrics: its containers measured over the window (none measured: no metrics, as
/// metrics-server leaves out a pod it has no figures for yet).
fn pod_metrics(pod: &Value, report: &UsageReport) -> Option<Value> {
    let uid = pod["metadata"]["uid"].as_str()?;
    let containers: Vec<Value> = report
        .containers
        .iter()
        .filter(|c| c.pod_uid == uid)
        .map(|c| json!({"name": c.container, "usage": quantities(&c.usage)}))
        .collect();
    if containers.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": metadata(pod, &report.timestamp),
        "timestamp": report.timestamp,
        "window": window(report.window),
        "containers": containers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_windows_as_metrics_server_writes_them() {
        let u = Usage {
            cpu_nanocores: 1_500_000,
            memory_bytes: 52_428_800,
        };
        assert_eq!(
            quantities(&u),
            json!({"cpu": "1500000n", "memory": "51200Ki"})
        );
        let odd = Usage {
            cpu_nanocores: 0,
            memory_bytes: 1000,
        };
        assert_eq!(quantities(&odd), json!({"cpu": "0n", "memory": "1000"}));
        assert_eq!(window(Duration::from_secs(10)), "10s");
        assert_eq!(window(Duration::from_millis(10_003)), "10.003s");
    }

    #[test]
    fn pods_without_measured_containers_have_no_metrics() {
        let report = UsageReport {
            timestamp: "2026-01-01T00:00:00Z".into(),
            window: Duration::from_secs(10),
            node: None,
            containers: vec![ContainerUsage {
                pod_uid: "u1".into(),
                container: "main".into(),
                usage: Usage {
                    cpu_nanocores: 5,
                    memory_bytes: 2048,
                },
            }],
        };
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}}});
        let m = pod_metrics(&pod, &report).unwrap();
        assert_eq!(m["metadata"]["namespace"], "ns");
        assert_eq!(m["metadata"]["labels"]["app"], "x");
        assert_eq!(m["containers"][0]["usage"]["memory"], "2Ki");
        let other = json!({"metadata": {"name": "q", "namespace": "ns", "uid": "u2"}});
        assert!(pod_metrics(&other, &report).is_none());
        assert!(node_metrics(&json!({"metadata": {"name": "n"}}), &report).is_none());
    }
}
