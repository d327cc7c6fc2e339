//! The REST handlers: routing, authorization by namespace, and every verb on objects,
//! collections and subresources.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, Request, Response, StatusCode};

use super::auth::Identity;
use super::read::{get, list, logs, metrics, watch};
use super::status::ApiError;
use super::write::{create, delete, read_body, scale_get, update_or_patch, Caller};
use super::ReqBody;
use super::{discovery, full, openapi, ApiState, Body};
use crate::model::kinds::{KindInfo, KINDS};
use crate::model::managed;
use crate::model::store::ObjectKey;

pub(super) const TABLE_CT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
/// How often a watch that allows bookmarks hears the current resourceVersion.
pub(super) const BOOKMARK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A `Status` response.
pub fn error(e: &ApiError) -> Response<Body> {
    respond(
        e.code,
        "application/json",
        serde_json::to_vec(&e.to_status()).expect("serializes"),
    )
}

pub(super) fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(full(body))
        .expect("valid response")
}

/// A JSON answer. Generic, so that a stored [`crate::model::object::Object`] is written whole
/// (its `managedFields` included) rather than as the tree it dereferences to.
pub(super) fn ok_json<T: serde::Serialize + ?Sized>(code: u16, v: &T) -> Response<Body> {
    respond(
        code,
        "application/json",
        serde_json::to_vec(v).expect("serializes"),
    )
}

pub(super) fn wants_table(req_accept: &str) -> bool {
    req_accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
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
    if let Some(h) = req
        .headers()
        .keys()
        .find(|h| h.as_str().starts_with("impersonate-"))
    {
        // Serving the request as the caller would answer for the wrong user (`kubectl auth
        // can-i --as=…` said "yes" for the admin).
        return error(&ApiError::forbidden(format!(
            "impersonation ({h} header; kubectl --as, --as-group, --as-uid) is not supported by skiff: use the kubeconfig of the user you mean (a namespace token from `skiff token create -n NAMESPACE`, or a ServiceAccount's token)"
        )));
    }
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
        ["apis", super::metrics_api::GROUP, super::metrics_api::VERSION, rest @ ..] => {
            super::metrics_api::serve(state, &who, &req, rest)
        }
        ["api"] if get => ok_json(200, &discovery::api_versions()),
        ["apis"] if get => ok_json(200, &discovery::api_groups()),
        ["api", v] if get => discovery::resource_list("", v)
            .map_or_else(|| error(&ApiError::no_route(&path)), |l| ok_json(200, &l)),
        ["apis", g, v] if get => discovery::resource_list(g, v)
            .map_or_else(|| error(&ApiError::no_route(&path)), |l| ok_json(200, &l)),
        ["openapi", "v2"] if get => match openapi::openapi_v2(&accept) {
            Some((content_type, d)) => openapi_response(&req, d, content_type),
            None => respond(
                406,
                "text/plain",
                format!(
                    "/openapi/v2 is served as application/json or {}, not {accept:?}",
                    openapi::OPENAPI_V2_PB
                ),
            ),
        },
        ["openapi", "v3"] if get => ok_json(200, &openapi::openapi_index()),
        ["openapi", "v3", rest @ ..] if get => match openapi::openapi_document(&rest.join("/")) {
            Some(d) => openapi_response(&req, d, "application/json"),
            None => error(&ApiError::no_route(&path)),
        },
        ["api", v, rest @ ..] => {
            let (v, rest) = (
                v.to_string(),
                rest.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            );
            resource(state, who, req, "", &v, &rest, &accept).await
        }
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]
            if req.method() == Method::POST =>
        {
            let store = state.store.clone();
            match read_body(req, state.max_body_bytes)
                .await
                .and_then(|(ct, body)| {
                    super::review::self_subject_access_review(&store, &who, &ct, &body)
                }) {
                Ok(v) => ok_json(201, &v),
                Err(e) => error(&e),
            }
        }
        ["apis", "authorization.k8s.io", "v1", "selfsubjectrulesreviews"]
            if req.method() == Method::POST =>
        {
            let store = state.store.clone();
            match read_body(req, state.max_body_bytes)
                .await
                .and_then(|(ct, body)| {
                    super::review::self_subject_rules_review(&store, &who, &ct, &body)
                }) {
                Ok(v) => ok_json(201, &v),
                Err(e) => error(&e),
            }
        }
        ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]
            if req.method() == Method::POST =>
        {
            ok_json(201, &super::review::self_subject_review(&who))
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

/// An OpenAPI document with its hash as ETag: 304 when the client has it; cached for good
/// when asked for by the hash the index names (as kube-apiserver does). `Vary: Accept`:
/// `/openapi/v2` answers JSON or protobuf, each with its own ETag.
fn openapi_response(
    req: &Request<ReqBody>,
    d: &super::openapi::Document,
    content_type: &str,
) -> Response<Body> {
    let etag = format!("\"{}\"", d.hash);
    let pinned = req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "hash" && v == d.hash)
    });
    let cache = if pinned {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let fresh = req
        .headers()
        .get(hyper::header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    Response::builder()
        .status(if fresh {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        })
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header(hyper::header::VARY, "Accept")
        .header(hyper::header::ETAG, etag)
        .header("Cache-Control", cache)
        .body(full(if fresh {
            bytes::Bytes::new()
        } else {
            d.body.clone()
        }))
        .expect("valid response")
}

/// A parsed resource path.
pub(super) struct Target {
    pub(super) kind: &'static KindInfo,
    pub(super) group: String,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) sub: Option<String>,
}

/// The kind served as `plural` in `group`, whatever the version (what a review names).
pub(super) fn find_resource(group: &str, plural: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| discovery::group_version(k).0 == group && k.plural == plural)
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

/// Resources a Kubernetes user reaches for that skiff does not serve, each refused by name with
/// what to use instead (rather than a bare "could not find the requested resource"):
/// `(group, plural, subresource, message)`; `subresource` `None` matches the resource itself.
const NOT_SERVED: &[(&str, &str, Option<&str>, &str)] = &[
    ("autoscaling", "horizontalpodautoscalers", None,
     "HorizontalPodAutoscalers (kubectl autoscale) are not supported by skiff: it has no autoscaler; set the replica count with `kubectl scale deployment NAME --replicas=N`"),
    ("", "resourcequotas", None,
     "ResourceQuotas are not supported by skiff: bound what a namespace's pods use with resources.limits on their containers"),
    ("", "limitranges", None,
     "LimitRanges are not supported by skiff: set resources.requests and resources.limits on each container"),
    ("certificates.k8s.io", "certificatesigningrequests", None,
     "CertificateSigningRequests are not supported by skiff: clients authenticate with bearer tokens (`skiff token create -n NAMESPACE` makes a namespace's kubeconfig)"),
    ("", "services", Some("proxy"),
     "the API server's proxy to Services (services/proxy, kubectl proxy's /api/v1/.../services/NAME/proxy) is not supported by skiff: use `kubectl port-forward svc/NAME LOCAL:PORT`"),
    ("", "pods", Some("proxy"),
     "the API server's proxy to pods (pods/proxy) is not supported by skiff: use `kubectl port-forward pod/NAME LOCAL:PORT`"),
    ("", "nodes", Some("proxy"),
     "the API server's proxy to the node (nodes/proxy) is not supported by skiff: pod logs and exec are served as pods/log and pods/exec"),
    ("", "serviceaccounts", Some("token"),
     "TokenRequest (kubectl create token) is not supported by skiff: a pod gets its ServiceAccount's token mounted at /var/run/secrets/kubernetes.io/serviceaccount/token, and `skiff token create -n NAMESPACE` makes a namespace's kubeconfig"),
];

/// The refusal for a request to a resource skiff does not serve ([`NOT_SERVED`]), if it is one.
fn not_served(group: &str, rest: &[String]) -> Option<String> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let (plural, sub) = match rest.as_slice() {
        ["namespaces", _, plural, tail @ ..] => (*plural, tail.get(1).copied()),
        [plural, tail @ ..] => (*plural, tail.get(1).copied()),
        [] => return None,
    };
    NOT_SERVED
        .iter()
        .find(|(g, p, s, _)| *g == group && *p == plural && *s == sub)
        .map(|(.., why)| why.to_string())
}

fn query(req: &Request<ReqBody>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The kinds whose writes could grant rights: ServiceAccounts may not write them (skiff does
/// not implement RBAC's escalation check, which would compare the rights granted with the
/// writer's own).
const RBAC_KINDS: &[&str] = &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];

/// Whether a request writes the `kubernetes` Service or EndpointSlice in `default`, which
/// every pod's in-cluster client uses: only the admin may (a tenant of `default` re-pointing
/// it would take every namespace's API access).
fn writes_api_service(t: &Target, verb: &str) -> bool {
    matches!(t.kind.kind, "Service" | "EndpointSlice")
        && t.namespace.as_deref() == Some("default")
        && t.name.as_deref() == Some("kubernetes")
        && !matches!(verb, "get" | "list" | "watch")
}

/// Whether `who` may `verb` the target: the admin anything; a namespace token what is in its
/// namespace (and a `get` of that Namespace); a ServiceAccount token what RBAC grants.
pub(super) fn authorize(
    store: &crate::model::store::Store,
    who: &Identity,
    t: &Target,
    verb: &str,
) -> Result<(), ApiError> {
    let Some(allowed) = &who.namespace else {
        return Ok(());
    };
    if writes_api_service(t, verb) {
        return Err(ApiError::forbidden(format!(
            "{} \"kubernetes\" is forbidden: User {:?} cannot {verb} it: the API server's own Service and EndpointSlice are the admin's",
            t.kind.plural,
            who.user()
        )));
    }
    if matches!(t.kind.kind, "HelmChart" | "HelmChartConfig")
        && !matches!(verb, "get" | "list" | "watch")
    {
        // A chart installs what it renders with the reconciler's (the admin's) rights, and
        // rendering has no total budget yet: see docs/security.md.
        return Err(ApiError::forbidden(format!(
            "{} is forbidden: User {:?} cannot {verb} it: HelmCharts and HelmChartConfigs are the admin's in skiff (what a chart renders is installed with the admin's rights, and rendering has no step or size budget yet)",
            t.kind.plural,
            who.user()
        )));
    }
    if t.kind.kind == "Pod"
        && t.sub.as_deref() == Some("status")
        && !who.service_account
        && !matches!(verb, "get" | "list" | "watch")
    {
        // A pod's status is the node's report: a forged podIP would have the node's Service
        // rules, proxy and port-forward connect where the tenant says. (Kubernetes' edit and
        // admin roles do not grant pods/status either.)
        return Err(ApiError::forbidden(format!(
            "pods/status {}is forbidden: User {:?} cannot {verb} it: a pod's status is written by the node",
            t.name.as_deref().map(|n| format!("{n:?} ")).unwrap_or_default(),
            who.user()
        )));
    }
    let scope_ok = if who.service_account {
        let writes = !matches!(verb, "get" | "list" | "watch");
        if writes && RBAC_KINDS.contains(&t.kind.kind) {
            return Err(ApiError::forbidden(format!(
                "{} is forbidden: User {:?} cannot {verb} {}: ServiceAccount tokens may not write RBAC objects in skiff (it does not implement RBAC's escalation check); the admin or a namespace token writes them",
                t.kind.plural,
                who.user(),
                t.kind.plural
            )));
        }
        // A Namespace's own requests are in that namespace, as Kubernetes' request info says.
        let namespace = match (t.kind.kind, &t.namespace) {
            ("Namespace", _) => t.name.as_deref(),
            (_, ns) => ns.as_deref(),
        };
        super::rbac::allows(
            store,
            &super::rbac::Account {
                namespace: allowed,
                name: &who.id,
            },
            &super::rbac::Attributes {
                verb,
                group: &t.group,
                resource: t.kind.plural,
                subresource: t.sub.as_deref(),
                name: t.name.as_deref(),
                namespace,
            },
        )
    } else if t.kind.namespaced {
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
    if let Some(why) = not_served(group, rest) {
        let mut e = ApiError::no_route(&path);
        e.message = why;
        return error(&e);
    }
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
        return stream(state, &who, &t, req).unwrap_or_else(|e| error(&e));
    }
    let verb = match (&method, &t.name) {
        (&Method::GET, None) if q.get("watch").is_some_and(|w| super::query_bool(w)) => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => return error(&ApiError::method_not_allowed(method.as_str())),
    };
    if let Err(e) = authorize(&state.store, &who, &t, verb) {
        return error(&e);
    }
    let caller = Caller {
        manager: &manager,
        who: &who,
    };
    let result = match (verb, t.name.clone(), t.sub.as_deref()) {
        ("watch", _, _) => return watch(state, &t, &q, wants_table(accept)),
        ("list", _, _) => list(state, &t, &q, accept),
        ("get", Some(name), None) => get(state, &t, &name, accept),
        ("get", Some(name), Some("status")) => get(state, &t, &name, ""),
        ("get", Some(name), Some("scale")) => scale_get(state, &t, &name),
        ("get", Some(name), Some("log")) if t.kind.kind == "Pod" => {
            return logs(state, &t, &name, &q)
        }
        ("create", None, None) => match read_body(req, state.max_body_bytes).await {
            Ok((ct, body)) => create(state, &t, &ct, &body, &q, &caller),
            Err(e) => Err(e),
        },
        ("update" | "patch", Some(name), sub)
            if sub.is_none() || sub == Some("status") || sub == Some("scale") =>
        {
            match read_body(req, state.max_body_bytes).await {
                Ok((ct, body)) => {
                    update_or_patch(state, &t, &name, verb, (&ct, &body), &q, &caller)
                }
                Err(e) => Err(e),
            }
        }
        ("delete", Some(name), None) => match read_body(req, state.max_body_bytes).await {
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

/// `pods/exec` and `pods/portforward`: a WebSocket (or SPDY) session with the pod.
fn stream(
    state: &Arc<ApiState>,
    who: &Identity,
    t: &Target,
    req: Request<ReqBody>,
) -> Result<Response<Body>, ApiError> {
    authorize(&state.store, who, t, "create")?;
    let name = t.name.clone().unwrap_or_default();
    let pod = state
        .store
        .get(&key_of(t, &name))
        .ok_or_else(|| not_found(t, &name))?;
    let params: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if t.sub.as_deref() == Some("exec") {
        super::exec::handle(state, &pod, &params, req)
    } else {
        super::portforward::handle(&*state.node, &pod, req)
    }
}

pub(super) fn key_of(t: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(t.kind.kind, t.namespace.as_deref().unwrap_or(""), name)
}

pub(super) fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::not_found(t.kind.plural, &t.group, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('/').map(String::from).collect()
    }

    #[test]
    fn resources_not_served_are_named_with_what_to_use() {
        let hpa = not_served(
            "autoscaling",
            &path("namespaces/x/horizontalpodautoscalers"),
        );
        assert!(hpa.unwrap().contains("kubectl scale"));
        let token = not_served("", &path("namespaces/x/serviceaccounts/robot/token"));
        assert!(token.unwrap().contains("skiff token create"));
        let proxy = not_served("", &path("namespaces/x/services/web:80/proxy/index.html"));
        assert!(proxy.unwrap().contains("kubectl port-forward"));
        // What is served is not caught: a ServiceAccount, a Service, the pods of a namespace.
        assert_eq!(
            not_served("", &path("namespaces/x/serviceaccounts/robot")),
            None
        );
        assert_eq!(not_served("", &path("namespaces/x/services/web")), None);
        assert_eq!(not_served("", &path("namespaces/x/pods")), None);
        assert_eq!(not_served("apps", &path("deployments")), None);
    }

    #[test]
    fn boolean_parameters_read_as_go_does() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert!(super::super::query_bool(t), "{t}");
        }
        for f in ["0", "false", "False", "yes", ""] {
            assert!(!super::super::query_bool(f), "{f}");
        }
    }
}
