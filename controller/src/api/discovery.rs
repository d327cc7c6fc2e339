//! Discovery: `/version`, aggregated discovery (`apidiscovery.k8s.io/v2`, what kubectl 1.32
//! asks first) and the older `APIVersions`/`APIGroupList`/`APIResourceList` documents. The
//! OpenAPI documents are `openapi.rs`'s.

use serde_json::{json, Value};

use crate::model::kinds::{KindInfo, KINDS};

/// The content type of aggregated discovery.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// (group, version) of a kind.
pub fn group_version(k: &KindInfo) -> (&'static str, &'static str) {
    match k.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", k.api_version),
    }
}

/// Every (group, version) served, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in KINDS {
        let gv = group_version(k);
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

pub(super) const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

pub(super) fn subresources(k: &KindInfo) -> Vec<(&'static str, Value, Vec<&'static str>)> {
    let (g, v) = group_version(k);
    let own = json!({"group": g, "version": v, "kind": k.kind});
    match k.kind {
        "Pod" => vec![
            ("status", own, vec!["get", "patch", "update"]),
            (
                "log",
                json!({"group": "", "version": "v1", "kind": "Pod"}),
                vec!["get"],
            ),
            (
                "exec",
                json!({"group": "", "version": "v1", "kind": "PodExecOptions"}),
                vec!["create", "get"],
            ),
            (
                "portforward",
                json!({"group": "", "version": "v1", "kind": "PodPortForwardOptions"}),
                vec!["create", "get"],
            ),
        ],
        "Deployment" | "ReplicaSet" | "StatefulSet" => vec![
            ("status", own, vec!["get", "patch", "update"]),
            (
                "scale",
                json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                vec!["get", "patch", "update"],
            ),
        ],
        "Namespace"
        | "Node"
        | "PersistentVolumeClaim"
        | "PersistentVolume"
        | "Job"
        | "CronJob"
        | "DaemonSet"
        | "PodDisruptionBudget"
        | "HelmChart" => {
            vec![("status", own, vec!["get", "patch", "update"])]
        }
        _ => vec![],
    }
}

/// The categories kube-apiserver gives a kind: `kubectl get all` lists the `all` category
/// (Services included, as Kubernetes has it).
fn categories(k: &KindInfo) -> Vec<&'static str> {
    match k.kind {
        "Pod" | "Service" | "Deployment" | "ReplicaSet" | "StatefulSet" | "Job" | "CronJob"
        | "DaemonSet" => vec!["all"],
        _ => vec![],
    }
}

/// The aggregated discovery document for the core group (`/api`) or the named groups (`/apis`).
pub fn aggregated(core: bool) -> Value {
    let mut items = Vec::new();
    for (g, v) in group_versions() {
        if g.is_empty() != core {
            continue;
        }
        let resources: Vec<Value> = KINDS
            .iter()
            .filter(|k| group_version(k) == (g, v))
            .map(|k| {
                let subs: Vec<Value> = subresources(k)
                    .into_iter()
                    .map(|(name, kind, verbs)| json!({"subresource": name, "responseKind": kind, "verbs": verbs}))
                    .collect();
                json!({
                    "resource": k.plural,
                    "responseKind": {"group": g, "version": v, "kind": k.kind},
                    "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": k.kind.to_ascii_lowercase(),
                    "verbs": VERBS,
                    "shortNames": k.short_names,
                    "categories": categories(k),
                    "subresources": subs,
                })
            })
            .collect();
        items.push(json!({
            "metadata": {"name": g, "creationTimestamp": null},
            "versions": [{"version": v, "resources": resources, "freshness": "Current"}],
        }));
    }
    if !core {
        items.push(super::metrics_api::aggregated_group());
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `/api` (APIVersions).
pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
}

/// `/apis` (APIGroupList).
pub fn api_groups() -> Value {
    let groups: Vec<Value> = group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .chain([super::metrics_api::group()])
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1`, `/apis/<g>/<v>` (APIResourceList), or `None` if not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&KindInfo> = KINDS
        .iter()
        .filter(|k| group_version(k) == (group, version))
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in kinds {
        resources.push(json!({
            "name": k.plural,
            "singularName": k.kind.to_ascii_lowercase(),
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
            "shortNames": k.short_names,
            "categories": categories(k),
        }));
        for (sub, kind, verbs) in subresources(k) {
            resources.push(json!({
                "name": format!("{}/{sub}", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": kind["kind"],
                "verbs": verbs,
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/version`: kubectl's dispatcher picks its build by `minor`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("v1.32.0+skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_all_category_is_kubernetes_own() {
        let in_all: Vec<&str> = KINDS
            .iter()
            .filter(|k| categories(k).contains(&"all"))
            .map(|k| k.kind)
            .collect();
        for kind in [
            "Pod",
            "Service",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "Job",
            "CronJob",
            "DaemonSet",
        ] {
            assert!(in_all.contains(&kind), "{kind} is in `kubectl get all`");
        }
        for kind in ["ConfigMap", "Secret", "Ingress", "PersistentVolumeClaim"] {
            assert!(
                !in_all.contains(&kind),
                "{kind} is not in `kubectl get all`"
            );
        }
    }
}
