//! The REST handlers: routing, authorization by namespace, and every verb on objects,
//! collections and subresources.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::auth::Identity;
use super::select::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::ReqBody;
use super::{discovery, full, table, ApiState, Body, LogOptions};
use crate::model::declared::{self, FOLDER_MANAGER, MANIFEST_ANNOTATION};
use crate::model::kinds::{KindInfo, KINDS};
use crate::model::store::{event_rv, EventType, ObjectKey, Op};
use crate::model::{defaults, managed, meta, patch, validate};

const TABLE_CT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const MAX_BODY: usize = 3 * 1024 * 1024;
/// How often a watch that allows bookmarks hears the current resourceVersion.
const BOOKMARK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A `Status` response.
pub fn error(e: &ApiError) -> Response<Body> {
    respond(
        e.code,
        "application/json",
        serde_json::to_vec(&e.to_status()).expect("serializes"),
    )
}

fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(full(body))
        .expect("valid response")
}

fn ok_json(code: u16, v: &Value) -> Response<Body> {
    respond(
        code,
        "application/json",
        serde_json::to_vec(v).expect("serializes"),
    )
}

fn wants_table(req_accept: &str) -> bool {
    req_accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// Prometheus metrics from the store: objects per kind, pods per phase, container restarts,
/// ready replicas of Deployments, the store's resourceVersion.
fn metrics(state: &ApiState) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP skiff_objects Objects in the store, by kind.\n# TYPE skiff_objects gauge"
    );
    for k in KINDS {
        let _ = writeln!(
            out,
            "skiff_objects{{kind=\"{}\"}} {}",
            k.kind,
            state.store.list(k.kind, None).len()
        );
    }
    let pods = state.store.list("Pod", None);
    let mut phases: std::collections::BTreeMap<String, usize> = Default::default();
    let mut restarts = 0i64;
    for p in &pods {
        *phases
            .entry(
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or("Pending")
                    .to_string(),
            )
            .or_default() += 1;
        restarts += p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .sum::<i64>();
    }
    let _ = writeln!(
        out,
        "# HELP skiff_pods Pods by phase.\n# TYPE skiff_pods gauge"
    );
    for phase in ["Pending", "Running", "Succeeded", "Failed"] {
        let _ = writeln!(
            out,
            "skiff_pods{{phase=\"{phase}\"}} {}",
            phases.get(phase).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(out, "# HELP skiff_container_restarts Container restarts of the pods that exist.\n# TYPE skiff_container_restarts gauge\nskiff_container_restarts {restarts}");
    let _ = writeln!(out, "# HELP skiff_deployment_replicas_available Available replicas per Deployment.\n# TYPE skiff_deployment_replicas_available gauge");
    for d in state.store.list("Deployment", None) {
        let _ = writeln!(
            out,
            "skiff_deployment_replicas_available{{namespace=\"{}\",deployment=\"{}\"}} {}",
            meta::namespace(&d),
            meta::name(&d),
            d["status"]["availableReplicas"].as_i64().unwrap_or(0)
        );
    }
    let _ = writeln!(out, "# HELP skiff_store_resource_version The store's newest resourceVersion.\n# TYPE skiff_store_resource_version counter\nskiff_store_resource_version {}", state.store.resource_version());
    out
}

/// Routes one authenticated request.
pub async fn route(state: &Arc<ApiState>, who: Identity, req: Request<ReqBody>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let aggregated = accept.contains("as=APIGroupDiscoveryList") && accept.contains("v=v2");
    let get = req.method() == Method::GET;
    match segs.as_slice() {
        ["version"] if get => ok_json(200, &discovery::version()),
        ["healthz" | "readyz" | "livez"] if get => respond(200, "text/plain", "ok"),
        ["metrics"] if get && who.namespace.is_none() => {
            respond(200, "text/plain; version=0.0.4", metrics(state))
        }
        ["metrics"] if get => error(&ApiError::forbidden(
            "metrics are for the admin token (they span every namespace)",
        )),
        ["api"] if get && aggregated => respond(
            200,
            discovery::AGGREGATED,
            serde_json::to_vec(&discovery::aggregated(true)).expect("json"),
        ),
        ["apis"] if get && aggregated => respond(
            200,
            discovery::AGGREGATED,
            serde_json::to_vec(&discovery::aggregated(false)).expect("json"),
        ),
        ["api"] if get => ok_json(200, &discovery::api_versions()),
        ["apis"] if get => ok_json(200, &discovery::api_groups()),
        ["api", v] if get => discovery::resource_list("", v)
            .map_or_else(|| error(&ApiError::no_route(&path)), |l| ok_json(200, &l)),
        ["apis", g, v] if get => discovery::resource_list(g, v)
            .map_or_else(|| error(&ApiError::no_route(&path)), |l| ok_json(200, &l)),
        ["openapi", "v2"] if get => respond(200, discovery::OPENAPI_V2, discovery::openapi_v2()),
        ["openapi", "v3"] if get => ok_json(200, &discovery::openapi_index()),
        ["openapi", "v3", rest @ ..] if get => discovery::openapi_document(&rest.join("/"))
            .map_or_else(|| error(&ApiError::no_route(&path)), |d| ok_json(200, &d)),
        ["api", v, rest @ ..] => {
            let (v, rest) = (
                v.to_string(),
                rest.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            );
            resource(state, who, req, "", &v, &rest, &accept).await
        }
        ["apis", g, v, rest @ ..] => {
            let (g, v, rest) = (
                g.to_string(),
                v.to_string(),
                rest.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            );
            resource(state, who, req, &g, &v, &rest, &accept).await
        }
        _ => error(&ApiError::no_route(&path)),
    }
}

/// A parsed resource path.
struct Target {
    kind: &'static KindInfo,
    group: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn find_kind(group: &str, version: &str, plural: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| discovery::group_version(k) == (group, version) && k.plural == plural)
}

fn parse_target(group: &str, version: &str, rest: &[String]) -> Option<Target> {
    let t =
        |kind, namespace: Option<&String>, name: Option<&String>, sub: Option<&String>| Target {
            kind,
            group: group.to_string(),
            namespace: namespace.cloned(),
            name: name.cloned(),
            sub: sub.cloned(),
        };
    match rest {
        [ns_word, ns, plural, tail @ ..]
            if ns_word == "namespaces"
                && find_kind(group, version, plural).is_some_and(|k| k.namespaced) =>
        {
            let kind = find_kind(group, version, plural)?;
            match tail {
                [] => Some(t(kind, Some(ns), None, None)),
                [name] => Some(t(kind, Some(ns), Some(name), None)),
                [name, sub] => Some(t(kind, Some(ns), Some(name), Some(sub))),
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let kind = find_kind(group, version, plural)?;
            match tail {
                [] => Some(t(kind, None, None, None)),
                [name] if !kind.namespaced => Some(t(kind, None, Some(name), None)),
                [name, sub] if !kind.namespaced => Some(t(kind, None, Some(name), Some(sub))),
                _ => None,
            }
        }
        [] => None,
    }
}

fn query(req: &Request<ReqBody>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn authorize(who: &Identity, t: &Target, verb: &str) -> Result<(), ApiError> {
    let Some(allowed) = &who.namespace else {
        return Ok(());
    };
    let scope_ok = if t.kind.namespaced {
        t.namespace.as_deref() == Some(allowed.as_str())
    } else {
        t.kind.kind == "Namespace" && t.name.as_deref() == Some(allowed.as_str()) && verb == "get"
    };
    if scope_ok {
        return Ok(());
    }
    let resource = match &t.sub {
        Some(s) => format!("{}/{s}", t.kind.plural),
        None => t.kind.plural.to_string(),
    };
    let scope = match &t.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".into(),
    };
    let name = t
        .name
        .as_deref()
        .map(|n| format!("{n:?} "))
        .unwrap_or_default();
    Err(ApiError::forbidden(format!(
        "{} {name}is forbidden: User {:?} cannot {verb} resource {resource:?} in API group {:?} {scope}",
        t.kind.plural,
        who.user(),
        t.group
    )))
}

async fn read_body(req: Request<ReqBody>) -> Result<(String, Bytes), ApiError> {
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    Ok((ct, body))
}

fn parse_body(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    if ct.contains("protobuf") {
        return super::protobuf::decode(body);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    serde_yaml_ng::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON or YAML: {e}")))
}

/// Validation and defaulting of an object about to be written. `strict` is
/// `fieldValidation=Strict` (kubectl's default); otherwise fields unknown to Kubernetes are
/// dropped (as the API server does), but fields skiff does not implement are still refused.
fn prepare(mut obj: Value, strict: bool) -> Result<Value, ApiError> {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.remove("managedFields");
            md.remove("selfLink");
        }
    }
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let name = meta::name(&obj).to_string();
    if !strict {
        if let Ok(clean) = validate::known_fields(&obj) {
            obj = clean;
        }
    }
    validate::validate(&obj).map_err(|errors| ApiError::invalid(&kind, &name, &errors))?;
    defaults::apply(&mut obj);
    Ok(obj)
}

fn strict(q: &HashMap<String, String>) -> bool {
    !matches!(
        q.get("fieldValidation").map(String::as_str),
        Some("Ignore" | "Warn")
    )
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

/// How a conflicting manager is named to the user: the manifests folder with its file.
fn manager_label(obj: &Value, manager: &str, api_version: &str) -> String {
    let mut label = format!("{manager:?}");
    if !api_version.is_empty() {
        label.push_str(&format!(" using {api_version}"));
    }
    if manager == FOLDER_MANAGER {
        if let Some(file) = meta::annotation(obj, MANIFEST_ANNOTATION) {
            label.push_str(&format!(" (file {file})"));
        }
    }
    label
}

/// Refuses a non-apply write that changes a field the manifests folder owns: the file is the
/// truth, and changing it there is the way (`kubectl apply --server-side --force-conflicts`
/// takes a field over explicitly).
fn guard_folder(existing: &Value, new: &Value) -> Result<(), ApiError> {
    if meta::annotation(existing, MANIFEST_ANNOTATION).is_none() {
        return Ok(());
    }
    let owned = declared::folder_fields(existing);
    let touched: Vec<(String, String)> = managed::changed(existing, new)
        .union(&managed::removed(existing, new))
        .filter(|p| owned.contains(*p))
        .take(10)
        .map(|p| {
            (
                manager_label(existing, FOLDER_MANAGER, ""),
                managed::display(p),
            )
        })
        .collect();
    if touched.is_empty() {
        return Ok(());
    }
    Err(ApiError::field_manager_conflict(
        existing["kind"].as_str().unwrap_or_default(),
        meta::name(existing),
        &touched,
    ))
}

async fn resource(
    state: &Arc<ApiState>,
    who: Identity,
    req: Request<ReqBody>,
    group: &str,
    version: &str,
    rest: &[String],
    accept: &str,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(t) = parse_target(group, version, rest) else {
        return error(&ApiError::no_route(&path));
    };
    let q = query(&req);
    let method = req.method().clone();
    let manager = managed::manager_name(
        q.get("fieldManager").map(String::as_str),
        req.headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let streaming = matches!(t.sub.as_deref(), Some("exec") | Some("portforward"));
    if t.kind.kind == "Pod" && streaming && (method == Method::GET || method == Method::POST) {
        if let Err(e) = authorize(&who, &t, "create") {
            return error(&e);
        }
        let name = t.name.clone().unwrap_or_default();
        let Some(pod) = state.store.get(&key_of(&t, &name)) else {
            return error(&not_found(&t, &name));
        };
        let params: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let answer = if t.sub.as_deref() == Some("exec") {
            super::exec::handle(state, &pod, &params, req)
        } else {
            super::portforward::handle(&*state.node, &pod, req)
        };
        return answer.unwrap_or_else(|e| error(&e));
    }
    let verb = match (&method, &t.name) {
        (&Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => return error(&ApiError::method_not_allowed(method.as_str())),
    };
    if let Err(e) = authorize(&who, &t, verb) {
        return error(&e);
    }
    let result = match (verb, t.name.clone(), t.sub.as_deref()) {
        ("watch", _, _) => return watch(state, &t, &q, wants_table(accept)),
        ("list", _, _) => list(state, &t, &q, accept),
        ("get", Some(name), None) => get(state, &t, &name, accept),
        ("get", Some(name), Some("status")) => get(state, &t, &name, ""),
        ("get", Some(name), Some("scale")) => scale_get(state, &t, &name),
        ("get", Some(name), Some("log")) if t.kind.kind == "Pod" => {
            return logs(state, &t, &name, &q)
        }
        ("create", None, None) => match read_body(req).await {
            Ok((ct, body)) => create(state, &t, &ct, &body, &q, &manager),
            Err(e) => Err(e),
        },
        ("update" | "patch", Some(name), sub)
            if sub.is_none() || sub == Some("status") || sub == Some("scale") =>
        {
            match read_body(req).await {
                Ok((ct, body)) => write(state, &t, &name, verb, (&ct, &body), &q, &manager),
                Err(e) => Err(e),
            }
        }
        ("delete", Some(name), None) => match read_body(req).await {
            Ok((_, body)) => delete(state, &t, &name, &body, &q),
            Err(e) => Err(e),
        },
        (_, Some(_), Some(sub @ ("attach" | "ephemeralcontainers" | "eviction" | "binding"))) => {
            let mut e = ApiError::method_not_allowed(method.as_str());
            e.message = match sub {
                "attach" => "kubectl attach is not supported by skiff: a container's output is in `kubectl logs -f`, and `kubectl exec -it` gives a shell".into(),
                "ephemeralcontainers" => "ephemeral containers (kubectl debug) are not supported by skiff: use `kubectl exec -it`".into(),
                other => format!("pods/{other} is not supported by skiff"),
            };
            Err(e)
        }
        _ => Err(ApiError::method_not_allowed(method.as_str())),
    };
    match result {
        Ok(r) => r,
        Err(e) => error(&e),
    }
}

fn key_of(t: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(t.kind.kind, t.namespace.as_deref().unwrap_or(""), name)
}

fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::not_found(t.kind.plural, &t.group, name)
}

fn get(state: &ApiState, t: &Target, name: &str, accept: &str) -> Result<Response<Body>, ApiError> {
    let obj = state
        .store
        .get(&key_of(t, name))
        .ok_or_else(|| not_found(t, name))?;
    if wants_table(accept) {
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        return Ok(respond(
            200,
            TABLE_CT,
            serde_json::to_vec(&table::table(t.kind.kind, &[&obj], &rv, "Metadata")).expect("json"),
        ));
    }
    Ok(ok_json(200, &obj))
}

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let bad = |e: super::select::SelectorError| ApiError::bad_request(e.to_string());
    let l = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str)).map_err(bad)?;
    let f = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str)).map_err(bad)?;
    Ok((l, f))
}

fn list(
    state: &ApiState,
    t: &Target,
    q: &HashMap<String, String>,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let (ls, fs) = selectors(q)?;
    let rv = state.store.resource_version().to_string();
    let items: Vec<Arc<Value>> = state
        .store
        .list(t.kind.kind, t.namespace.as_deref())
        .into_iter()
        .filter(|o| ls.matches(o) && fs.matches(o))
        .collect();
    if wants_table(accept) {
        let refs: Vec<&Value> = items.iter().map(|o| &**o).collect();
        let include = q.get("includeObject").map_or("Metadata", String::as_str);
        return Ok(respond(
            200,
            TABLE_CT,
            serde_json::to_vec(&table::table(t.kind.kind, &refs, &rv, include)).expect("json"),
        ));
    }
    let items: Vec<&Value> = items.iter().map(|o| &**o).collect();
    Ok(ok_json(
        200,
        &json!({"kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version, "metadata": {"resourceVersion": rv}, "items": items}),
    ))
}

fn namespace_exists(state: &ApiState, ns: &str) -> Result<(), ApiError> {
    match state.store.get(&ObjectKey::new("Namespace", "", ns)) {
        Some(n) if !meta::is_terminating(&n) => Ok(()),
        _ => Err(ApiError::not_found("namespaces", "", ns)),
    }
}

fn create(
    state: &ApiState,
    t: &Target,
    ct: &str,
    body: &[u8],
    q: &HashMap<String, String>,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    let mut obj = parse_body(ct, body)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body must be an object"));
    }
    if obj["kind"].is_null() {
        obj["kind"] = json!(t.kind.kind);
    }
    if obj["apiVersion"].is_null() {
        obj["apiVersion"] = json!(t.kind.api_version);
    }
    if obj["kind"] != t.kind.kind {
        return Err(ApiError::bad_request(format!(
            "the body is a {} but the request is for {}",
            obj["kind"], t.kind.plural
        )));
    }
    if let Some(ns) = &t.namespace {
        match obj["metadata"]["namespace"].as_str() {
            Some(given) if given != ns => {
                return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"))
            }
            _ => {
                meta::metadata_mut(&mut obj).insert("namespace".into(), json!(ns));
            }
        }
        namespace_exists(state, ns)?;
    }
    if meta::name(&obj).is_empty() {
        if let Some(prefix) = obj["metadata"]["generateName"].as_str().map(String::from) {
            let name = format!("{prefix}{}", meta::random_suffix());
            meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
        }
    }
    let requested = obj.clone();
    let mut obj = prepare(obj, strict(q))?;
    managed::update(None, &requested, &mut obj, manager);
    if dry_run(q) {
        return Ok(ok_json(201, &obj));
    }
    let created = state.store.create(obj)?;
    Ok(ok_json(201, &created))
}

/// Server-side apply of `applied` onto `existing` (`None`: it creates), validated and defaulted.
fn server_side_apply(
    existing: Option<&Value>,
    applied: &Value,
    manager: &str,
    q: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let force = q.get("force").is_some_and(|f| f == "true");
    // The applied object may be partial; what it sets is validated (unknown fields refused by
    // name) as part of the merged object below.
    let merged = managed::apply(existing, applied, manager, force).map_err(|conflicts| {
        let on = existing.unwrap_or(applied);
        ApiError::field_manager_conflict(
            on["kind"].as_str().unwrap_or_default(),
            meta::name(on),
            &conflicts
                .iter()
                .map(|c| {
                    (
                        manager_label(on, &c.manager, &c.api_version),
                        c.field.clone(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    })?;
    let fields = merged["metadata"]["managedFields"].clone();
    let mut obj = prepare(merged, strict(q))?;
    if !fields.is_null() {
        meta::metadata_mut(&mut obj).insert("managedFields".into(), fields);
    }
    Ok(obj)
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn scale_get(state: &ApiState, t: &Target, name: &str) -> Result<Response<Body>, ApiError> {
    if !matches!(t.kind.kind, "Deployment" | "ReplicaSet") {
        return Err(ApiError::no_route("scale"));
    }
    let obj = state
        .store
        .get(&key_of(t, name))
        .ok_or_else(|| not_found(t, name))?;
    Ok(ok_json(200, &scale_of(&obj)))
}

/// PUT and PATCH of an object or its `status`/`scale`.
fn write(
    state: &ApiState,
    t: &Target,
    name: &str,
    verb: &str,
    (ct, body): (&str, &[u8]),
    q: &HashMap<String, String>,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    // Another write may slip in between reading the object and writing it (a controller's
    // status, a node allocation): then the write is made again on the new version, as the API
    // server's GuaranteedUpdate does — unless the client named the version it wrote against,
    // for which the conflict is the answer.
    let pinned = serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty())
    });
    let mut attempts = 0;
    loop {
        match write_once(state, t, name, verb, (ct, body), q, manager) {
            Err(e) if !pinned && attempts < 5 && super::status::is_modified_conflict(&e) => {
                attempts += 1;
            }
            r => return r,
        }
    }
}

/// One attempt of [`write`].
fn write_once(
    state: &ApiState,
    t: &Target,
    name: &str,
    verb: &str,
    (ct, body): (&str, &[u8]),
    q: &HashMap<String, String>,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    let key = key_of(t, name);
    let sub = t.sub.as_deref();
    let is_apply = ct.starts_with("application/apply-patch");
    let existing = state.store.get(&key);
    if is_apply && sub.is_none() {
        let mut applied = parse_body(ct, body)?;
        if !applied.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        if let Some(ns) = &t.namespace {
            meta::metadata_mut(&mut applied).insert("namespace".into(), json!(ns));
            if existing.is_none() {
                namespace_exists(state, ns)?;
            }
        }
        if meta::name(&applied) != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if applied["kind"].as_str() != Some(t.kind.kind) {
            return Err(ApiError::bad_request(format!(
                "the body's kind {:?} does not match the resource {:?}",
                applied["kind"].as_str().unwrap_or_default(),
                t.kind.plural
            )));
        }
        let obj = server_side_apply(existing.as_deref(), &applied, manager, q)?;
        let Some(existing) = existing else {
            if dry_run(q) {
                return Ok(ok_json(201, &obj));
            }
            let created = state.store.create(obj)?;
            return Ok(ok_json(201, &created));
        };
        if declared::same_declared(&obj, &existing) || dry_run(q) {
            return Ok(ok_json(200, &obj));
        }
        let updated = state.store.update(obj)?;
        return Ok(ok_json(200, &updated));
    }
    let Some(existing) = existing else {
        return Err(not_found(t, name));
    };
    if sub == Some("status") && ct.contains("protobuf") {
        // The protobuf decoder maps what clients declare and drops `status`.
        let mut e = ApiError::unsupported_media_type(ct);
        e.message = "the status subresource takes JSON bodies, not protobuf".to_string();
        return Err(e);
    }
    let patch_body = parse_body(ct, body)?;
    if verb == "update" {
        let uid = json!({"uid": patch_body["metadata"]["uid"]});
        precondition(&existing, &uid, t, name)?;
    }
    // The document the patch or replacement applies to.
    let base = if sub == Some("scale") {
        scale_of(&existing)
    } else {
        (*existing).clone()
    };
    let mut updated = base.clone();
    match verb {
        "update" => updated = patch_body.clone(),
        _ if ct.starts_with("application/merge-patch+json") => {
            patch::merge(&mut updated, &patch_body)
        }
        _ if ct.starts_with("application/json-patch+json") => {
            patch::json(&mut updated, &patch_body)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        _ if ct.starts_with("application/strategic-merge-patch+json") => {
            patch::strategic_merge(&mut updated, &patch_body)
        }
        _ => return Err(ApiError::unsupported_media_type(ct)),
    }
    match sub {
        Some("status") => {
            if dry_run(q) {
                return Ok(ok_json(200, &updated));
            }
            let r = state.store.update_status(&key, updated["status"].clone())?;
            Ok(ok_json(200, &r))
        }
        Some("scale") => {
            let replicas = updated["spec"]["replicas"].as_i64().ok_or_else(|| {
                ApiError::invalid(
                    "Scale",
                    name,
                    &[validate::FieldError {
                        field: "spec.replicas".into(),
                        message: "is required".into(),
                    }],
                )
            })?;
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "Scale",
                    name,
                    &[validate::FieldError {
                        field: "spec.replicas".into(),
                        message: "must be greater than or equal to 0".into(),
                    }],
                ));
            }
            let mut obj = (*existing).clone();
            obj["spec"]["replicas"] = json!(replicas);
            // kubectl scale retries 409s until its timeout: refuse a folder-declared scale as
            // 403, which it reports at once, with the same explanation.
            guard_folder(&existing, &obj).map_err(|e| ApiError::forbidden(e.message))?;
            managed::update(Some(&existing), &obj.clone(), &mut obj, manager);
            if dry_run(q) {
                return Ok(ok_json(200, &scale_of(&obj)));
            }
            let r = state.store.update(obj)?;
            Ok(ok_json(200, &scale_of(&r)))
        }
        _ => {
            if updated["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n != name)
            {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            if updated["kind"].is_null() {
                updated["kind"] = json!(t.kind.kind);
            }
            if updated["apiVersion"].is_null() {
                updated["apiVersion"] = json!(t.kind.api_version);
            }
            if let Some(ns) = &t.namespace {
                meta::metadata_mut(&mut updated).insert("namespace".into(), json!(ns));
            }
            if verb == "patch" {
                // A patch applies to the current version, unless it names the version it was
                // made against (then it is a precondition: 409 if the object changed since).
                let rv = match patch_body["metadata"]["resourceVersion"].as_str() {
                    Some(given) if !given.is_empty() => json!(given),
                    _ => existing["metadata"]["resourceVersion"].clone(),
                };
                meta::metadata_mut(&mut updated).insert("resourceVersion".into(), rv);
            }
            // The manifests folder's own annotation stays with the object.
            if let Some(file) = meta::annotation(&existing, MANIFEST_ANNOTATION) {
                let file = file.to_string();
                meta::set_annotation(&mut updated, MANIFEST_ANNOTATION, &file);
            }
            let requested = updated.clone();
            let mut obj = prepare(updated, strict(q))?;
            guard_folder(&existing, &obj)?;
            managed::update(Some(&existing), &requested, &mut obj, manager);
            if declared::same_declared(&obj, &existing) {
                return Ok(ok_json(200, &existing));
            }
            if dry_run(q) {
                return Ok(ok_json(200, &obj));
            }
            let updated = state.store.update(obj)?;
            Ok(ok_json(200, &updated))
        }
    }
}

/// `preconditions` of a delete, or the `uid`/`resourceVersion` of a replacement: the write
/// is for that very object (409 otherwise, in the API server's words).
fn precondition(existing: &Value, pre: &Value, t: &Target, name: &str) -> Result<(), ApiError> {
    for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(want) = pre[field].as_str().filter(|w| !w.is_empty()) {
            let have = existing["metadata"][field].as_str().unwrap_or_default();
            if want != have {
                return Err(ApiError::conflict(
                    t.kind.plural,
                    &t.group,
                    name,
                    &format!("Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"),
                ));
            }
        }
    }
    Ok(())
}

fn delete(
    state: &ApiState,
    t: &Target,
    name: &str,
    body: &[u8],
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let key = key_of(t, name);
    let existing = state.store.get(&key).ok_or_else(|| not_found(t, name))?;
    if let Some(file) = meta::annotation(&existing, MANIFEST_ANNOTATION) {
        return Err(ApiError::conflict(
            t.kind.plural,
            &t.group,
            name,
            &format!("it is declared by the manifests folder file {file:?}; remove it from that file instead"),
        ));
    }
    if t.kind.kind == "Namespace" && declared::PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "namespaces {name:?} is forbidden: this namespace may not be deleted"
        )));
    }
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).unwrap_or(json!({}))
    };
    let grace = options["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    precondition(&existing, &options["preconditions"], t, name)?;
    if dry_run(q) {
        return Ok(ok_json(200, &existing));
    }
    let op = match grace {
        // A grace period of 0 removes at once: `kubectl delete --force --grace-period=0`, and
        // the node's last word on a pod it has stopped.
        Some(0) => Op::Remove(key),
        Some(g) if t.kind.kind == "Pod" => Op::DeleteWithGrace(key, g),
        _ => Op::Delete(key),
    };
    let r = state.store.transaction(vec![op])?;
    Ok(ok_json(200, &r[0]))
}

fn logs(state: &ApiState, t: &Target, name: &str, q: &HashMap<String, String>) -> Response<Body> {
    let Some(pod) = state.store.get(&key_of(t, name)) else {
        return error(&not_found(t, name));
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let container = match q.get("container") {
        Some(c) if !c.is_empty() => c.clone(),
        _ if containers.len() == 1 => containers[0].clone(),
        _ => {
            return error(&ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    if !containers.contains(&container) {
        return error(&ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true");
    let options = LogOptions {
        container,
        follow: flag("follow"),
        tail_lines: q.get("tailLines").and_then(|v| v.parse().ok()),
        timestamps: flag("timestamps"),
        previous: flag("previous"),
        since_seconds: q.get("sinceSeconds").and_then(|v| v.parse().ok()),
        limit_bytes: q.get("limitBytes").and_then(|v| v.parse().ok()),
    };
    match state.node.logs(&pod, options) {
        Ok(rx) => {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
            });
            Response::builder()
                .status(200)
                .header(hyper::header::CONTENT_TYPE, "text/plain")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .expect("valid response")
        }
        Err(e) => error(&ApiError::bad_request(e.0)),
    }
}

fn watch(
    state: &ApiState,
    t: &Target,
    q: &HashMap<String, String>,
    as_table: bool,
) -> Response<Body> {
    let (ls, fs) = match selectors(q) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let rv: Option<u64> = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse().ok());
    let kind = t.kind.kind;
    let api_version = t.kind.api_version;
    let namespace = t.namespace.clone();
    let timeout = q.get("timeoutSeconds").and_then(|v| v.parse::<u64>().ok());
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let (initial, mut last_rv, mut rx) = match rv {
        None => {
            let (items, at, rx) = state.store.list_and_watch(kind);
            let initial: Vec<(EventType, Arc<Value>)> =
                items.into_iter().map(|o| (EventType::Added, o)).collect();
            (initial, at, rx)
        }
        Some(rv) => match state.store.watch_from(rv) {
            Ok((past, rx)) => (
                past.into_iter().map(|e| (e.kind, e.object)).collect(),
                rv,
                rx,
            ),
            Err(oldest) => {
                // Kubernetes answers a too-old watch with an ERROR event carrying 410.
                let status = ApiError::expired(rv, oldest).to_status();
                let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
                return respond(200, "application/json", line);
            }
        },
    };
    let matches = move |o: &Value| {
        o["kind"] == kind
            && namespace
                .as_deref()
                .is_none_or(|ns| meta::namespace(o) == ns)
            && ls.matches(o)
            && fs.matches(o)
    };
    let render = move |ty: EventType, o: &Value| -> Bytes {
        let ty = match ty {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        };
        let object = if as_table {
            let rv = o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string();
            table::table(kind, &[o], &rv, "Metadata")
        } else {
            o.clone()
        };
        let mut line = serde_json::to_vec(&json!({"type": ty, "object": object})).expect("json");
        line.push(b'\n');
        Bytes::from(line)
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for (ty, o) in initial {
            if matches(&o) && tx.send(render(ty, &o)).await.is_err() {
                return;
            }
            last_rv = last_rv.max(
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            );
        }
        let deadline =
            timeout.map(|s| tokio::time::Instant::now() + std::time::Duration::from_secs(s));
        // Every event up to here has been seen (sent or filtered out): what a bookmark says.
        let mut seen_rv = last_rv;
        let mut bookmark =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            tokio::select! {
                _ = tx.closed() => return,
                _ = bookmark.tick(), if bookmarks && !as_table => {
                    let line = json!({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": seen_rv.to_string()},
                    }});
                    let mut line = serde_json::to_vec(&line).expect("json");
                    line.push(b'\n');
                    if tx.send(Bytes::from(line)).await.is_err() {
                        return;
                    }
                }
                ev = next => match ev {
                    None => return,
                    Some(Ok(e)) => {
                        let rv = event_rv(&e);
                        seen_rv = seen_rv.max(rv);
                        if rv <= last_rv || !matches(&e.object) {
                            continue;
                        }
                        last_rv = rv;
                        if tx.send(render(e.kind, &e.object)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        let status = ApiError::expired(last_rv, last_rv).to_status();
                        let _ = tx.send(Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status})))).await;
                        return;
                    }
                    Some(Err(_)) => return,
                },
            }
        }
    });
    let stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    });
    Response::builder()
        .status(200)
        .header(
            hyper::header::CONTENT_TYPE,
            if as_table {
                TABLE_CT
            } else {
                "application/json"
            },
        )
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}
