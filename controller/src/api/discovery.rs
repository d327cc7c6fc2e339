//! Discovery: `/version`, aggregated discovery (`apidiscovery.k8s.io/v2`, what kubectl 1.32
//! asks first) and the older `APIVersions`/`APIGroupList`/`APIResourceList` documents, and the
//! OpenAPI v3 documents kubectl reads before `apply` (they advertise the `fieldValidation`
//! parameter, so kubectl leaves validation to the server).

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

const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

fn subresources(k: &KindInfo) -> Vec<(&'static str, Value, Vec<&'static str>)> {
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
        | "DaemonSet" => {
            vec![("status", own, vec!["get", "patch", "update"])]
        }
        _ => vec![],
    }
}

fn categories(k: &KindInfo) -> Vec<&'static str> {
    match k.kind {
        "Pod" | "Deployment" | "ReplicaSet" | "StatefulSet" | "Job" | "CronJob" | "DaemonSet" => {
            vec!["all"]
        }
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

fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The content type of `/openapi/v2` (gnostic's protobuf `openapi.v2.Document`).
pub const OPENAPI_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Clone, PartialEq, prost::Message)]
struct OpenApiV2Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<OpenApiV2Info>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OpenApiV2Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `/openapi/v2`, which kubectl reads (as protobuf) only to validate a `kind: List` file on the
/// client side — for Lists it never asks whether the server validates. The document has no
/// definitions: kubectl then leaves the items' validation to the server, which validates each
/// one strictly (unknown fields refused by name), as it does every other object.
pub fn openapi_v2() -> Vec<u8> {
    use prost::Message;
    OpenApiV2Document {
        swagger: "2.0".into(),
        info: Some(OpenApiV2Info {
            title: "skiff".into(),
            version: format!("v1.32.0+skiff.{}", env!("CARGO_PKG_VERSION")),
        }),
    }
    .encode_to_vec()
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions() {
        let p = openapi_path(g, v);
        let hash = format!("{}-{}", env!("CARGO_PKG_VERSION"), p.replace('/', "-"));
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// `/openapi/v3/<path>`: an OpenAPI 3 document whose operations carry
/// `x-kubernetes-group-version-kind` and the `fieldValidation`, `fieldManager`, `dryRun` and
/// `force` parameters. Schemas are objects open to any field: the server validates.
pub fn openapi_document(path: &str) -> Option<Value> {
    let (g, v) = group_versions()
        .into_iter()
        .find(|(g, v)| openapi_path(g, v) == path)?;
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for k in KINDS.iter().filter(|k| group_version(k) == (g, v)) {
        let gvk = json!([{"group": g, "version": v, "kind": k.kind}]);
        let schema_name = format!(
            "io.k8s.skiff.{}.{}",
            if g.is_empty() { "core" } else { g },
            k.kind
        );
        schemas.insert(
            schema_name.clone(),
            json!({"type": "object", "x-kubernetes-group-version-kind": gvk, "additionalProperties": true}),
        );
        let body = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}});
        let write_params = vec![
            param("dryRun"),
            param("fieldManager"),
            param("fieldValidation"),
        ];
        let mut patch_params = write_params.clone();
        patch_params.push(param("force"));
        let op = |verb: &str, params: &Vec<Value>| {
            json!({
                "operationId": format!("{verb}{}", k.kind),
                "parameters": params,
                "requestBody": body,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk[0],
            })
        };
        let prefix = if g.is_empty() {
            format!("/api/{v}")
        } else {
            format!("/apis/{g}/{v}")
        };
        let (collection, object) = if k.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", k.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", k.plural),
            )
        } else {
            (
                format!("{prefix}/{}", k.plural),
                format!("{prefix}/{}/{{name}}", k.plural),
            )
        };
        paths.insert(
            collection,
            json!({"post": op("post", &write_params), "get": op("list", &vec![])}),
        );
        paths.insert(
            object,
            json!({"get": op("get", &vec![]), "put": op("put", &write_params), "patch": op("patch", &patch_params), "delete": op("delete", &vec![])}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "skiff", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
