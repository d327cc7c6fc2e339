//! The review APIs clients use to ask about themselves: `SelfSubjectAccessReview`
//! (`kubectl auth can-i`, CI pipelines checking a token's rights before they act) answered by
//! the same authorization every request goes through, and `SelfSubjectReview`
//! (`kubectl auth whoami`). Nothing is stored.

use serde_json::{json, Value};

use super::auth::Identity;
use super::protobuf::{envelope, Envelope};
use super::rest::{authorize, find_resource, Target};
use super::status::ApiError;

/// The groups a caller belongs to, as the API server's authenticators report them.
fn groups(who: &Identity) -> Vec<String> {
    match &who.namespace {
        None => vec!["system:masters".into(), "system:authenticated".into()],
        Some(ns) => vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    }
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: who the caller is.
pub(super) fn self_subject_review(who: &Identity) -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": who.user(), "groups": groups(who)}},
    })
}

/// The body of a review of kind `kind`, JSON or protobuf (kubectl sends protobuf).
fn review_body(content_type: &str, body: &[u8], kind: &str) -> Result<Value, ApiError> {
    if !content_type.contains("protobuf") {
        return serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")));
    }
    let (sent, raw) = match envelope(body)? {
        Envelope::Json(v) => return Ok(v),
        Envelope::Proto { kind, raw, .. } => (kind, raw),
    };
    if sent != kind {
        return Err(ApiError::bad_request(format!(
            "expected a {kind}, not a {sent}"
        )));
    }
    use k8s_pb::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectRulesReview};
    use prost::Message;
    let bad = |e: prost::DecodeError| ApiError::bad_request(format!("not a {kind}: {e}"));
    let mut out = json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": {}});
    if kind == "SelfSubjectRulesReview" {
        let r = SelfSubjectRulesReview::decode(&raw[..]).map_err(bad)?;
        out["spec"]["namespace"] = json!(r.spec.unwrap_or_default().namespace);
        return Ok(out);
    }
    let r = SelfSubjectAccessReview::decode(&raw[..]).map_err(bad)?;
    let spec = r.spec.unwrap_or_default();
    if let Some(a) = spec.resource_attributes {
        out["spec"]["resourceAttributes"] = json!({
            "namespace": a.namespace, "verb": a.verb, "group": a.group,
            "version": a.version, "resource": a.resource,
            "subresource": a.subresource, "name": a.name,
        });
    }
    if let Some(a) = spec.non_resource_attributes {
        out["spec"]["nonResourceAttributes"] = json!({"path": a.path, "verb": a.verb});
    }
    Ok(out)
}

/// The decision for one review: `(allowed, reason)`.
fn decide(store: &crate::model::store::Store, who: &Identity, spec: &Value) -> (bool, String) {
    if who.namespace.is_none() {
        return (true, String::new());
    }
    let a = &spec["resourceAttributes"];
    if !a.is_object() {
        return (
            false,
            "non-resource URLs are the admin's (only /version and the health checks are open)"
                .into(),
        );
    }
    let text = |f: &str| a[f].as_str().filter(|s| !s.is_empty());
    let verb = text("verb").unwrap_or("get");
    let group = text("group").unwrap_or("");
    let Some(resource) = text("resource") else {
        return (false, "no resource named".into());
    };
    let Some(kind) = find_resource(group, resource) else {
        return (
            false,
            format!("the server doesn't have a resource type {resource:?} in API group {group:?}"),
        );
    };
    let t = Target {
        kind,
        group: group.to_string(),
        namespace: if kind.namespaced {
            text("namespace").map(String::from)
        } else {
            None
        },
        name: text("name").map(String::from),
        sub: text("subresource").map(String::from),
    };
    // A denial carries no reason, as from Kubernetes' RBAC authorizer (`kubectl auth can-i`
    // prints a bare "no").
    (authorize(store, who, &t, verb).is_ok(), String::new())
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: may the caller do this?
pub(super) fn self_subject_access_review(
    store: &crate::model::store::Store,
    who: &Identity,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut review = review_body(content_type, body, "SelfSubjectAccessReview")?;
    let (allowed, reason) = decide(store, who, &review["spec"]);
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = json!({"allowed": allowed});
    if !reason.is_empty() {
        review["status"]["reason"] = json!(reason);
    }
    Ok(review)
}

/// The non-resource URLs any authenticated caller may `get` (`route` serves them before any
/// authorization): version, health checks, discovery and the OpenAPI documents.
pub(super) const OPEN_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
];

/// One resource rule being gathered: (group, resource names, verbs) → resources.
type Grouped = Vec<((String, Vec<String>, Vec<&'static str>), Vec<String>)>;

/// What `who` may do with every resource and subresource discovery serves in `namespace`
/// (cluster-scoped ones at the cluster scope), asked of `authorize` — the check every request
/// goes through — verb by verb, so the list cannot drift from what is enforced. `names`: the
/// object names to ask about too (rules limited by `resourceNames`).
fn probe(
    store: &crate::model::store::Store,
    who: &Identity,
    namespace: &str,
    names: &[(String, String, String)],
    out: &mut Grouped,
) {
    use crate::model::kinds::KINDS;
    let mut add = |group: &str, resource: String, names: Vec<String>, verbs: Vec<&'static str>| {
        if verbs.is_empty() {
            return;
        }
        let key = (group.to_string(), names, verbs);
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, resources)) => resources.push(resource),
            None => out.push((key, vec![resource])),
        }
    };
    for kind in KINDS {
        let group = super::discovery::group_version(kind).0;
        let mut resources = vec![(None, super::discovery::VERBS.to_vec())];
        for (sub, _, verbs) in super::discovery::subresources(kind) {
            resources.push((Some(sub), verbs));
        }
        let object_names = names
            .iter()
            .filter(|(g, r, _)| g == group && r == kind.plural)
            .map(|(_, _, n)| Some(n.clone()));
        // A namespace token may get its own Namespace.
        let own_namespace = (kind.kind == "Namespace").then(|| Some(namespace.to_string()));
        let all_names: Vec<Option<String>> = std::iter::once(None)
            .chain(object_names)
            .chain(own_namespace)
            .collect();
        for (sub, verbs) in resources {
            let resource = match sub {
                Some(sub) => format!("{}/{sub}", kind.plural),
                None => kind.plural.to_string(),
            };
            let mut unnamed: Vec<&'static str> = Vec::new();
            for name in &all_names {
                let t = Target {
                    kind,
                    group: group.to_string(),
                    namespace: kind.namespaced.then(|| namespace.to_string()),
                    name: name.clone(),
                    sub: sub.map(String::from),
                };
                let allowed: Vec<&'static str> = verbs
                    .iter()
                    .copied()
                    .filter(|verb| !unnamed.contains(verb))
                    .filter(|verb| authorize(store, who, &t, verb).is_ok())
                    .collect();
                match name {
                    None => unnamed = allowed.clone(),
                    Some(n) => {
                        add(group, resource.clone(), vec![n.clone()], allowed);
                        continue;
                    }
                }
                add(group, resource.clone(), Vec::new(), allowed);
            }
        }
    }
}

/// The `resourceRules` and `nonResourceRules` of `who` in `namespace`.
fn rules(
    store: &crate::model::store::Store,
    who: &Identity,
    namespace: &str,
) -> (Vec<Value>, Vec<Value>) {
    let Some(own) = &who.namespace else {
        // The admin: everything, as Kubernetes shows `cluster-admin`.
        return (
            vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        );
    };
    // The object names RBAC rules single out (resolved against the served resources).
    let mut names = Vec::new();
    if who.service_account {
        let account = super::rbac::Account {
            namespace: own,
            name: &who.id,
        };
        for (rule, _) in super::rbac::bound_rules(store, &account, Some(namespace)) {
            let list = |f: &str| -> Vec<String> {
                rule[f]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            };
            for kind in crate::model::kinds::KINDS {
                let group = super::discovery::group_version(kind).0;
                let groups = list("apiGroups");
                let resources = list("resources");
                let matches = groups.iter().any(|g| g == "*" || g == group)
                    && resources
                        .iter()
                        .any(|r| r == "*" || r.split('/').next() == Some(kind.plural));
                if matches {
                    for n in list("resourceNames") {
                        names.push((group.to_string(), kind.plural.to_string(), n));
                    }
                }
            }
        }
    }
    let mut grouped = Grouped::new();
    probe(store, who, namespace, &names, &mut grouped);
    let resource_rules = grouped
        .into_iter()
        .map(|((group, names, verbs), resources)| {
            let mut r = json!({"verbs": verbs, "apiGroups": [group], "resources": resources});
            if !names.is_empty() {
                r["resourceNames"] = json!(names);
            }
            r
        })
        .collect();
    (
        resource_rules,
        vec![json!({"verbs": ["get"], "nonResourceURLs": OPEN_URLS})],
    )
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews`: what may the caller do in a
/// namespace (`kubectl auth can-i --list`)?
pub(super) fn self_subject_rules_review(
    store: &crate::model::store::Store,
    who: &Identity,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut review = review_body(content_type, body, "SelfSubjectRulesReview")?;
    let Some(namespace) = review["spec"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(String::from)
    else {
        return Err(ApiError::invalid(
            "SelfSubjectRulesReview",
            "",
            &[crate::model::validate::err(
                "spec.namespace",
                "Required value: the namespace to list the rules of",
            )],
        ));
    };
    let (resource_rules, non_resource_rules) = rules(store, who, &namespace);
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, crate::model::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::model::store::Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn review(ns: Option<&str>, verb: &str, resource: &str) -> Value {
        json!({"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}})
    }

    #[test]
    fn namespace_tokens_may_act_in_their_namespace_only() {
        let (_d, store) = store();
        let token = Identity {
            id: "ci".into(),
            namespace: Some("apps".into()),
            service_account: false,
        };
        assert!(decide(&store, &token, &review(Some("apps"), "create", "pods")).0);
        assert!(!decide(&store, &token, &review(Some("other"), "create", "pods")).0);
        assert!(!decide(&store, &token, &review(None, "list", "nodes")).0);
        assert!(!decide(&store, &token, &review(Some("apps"), "get", "nosuch")).0);
        let admin = Identity {
            id: "admin".into(),
            namespace: None,
            service_account: false,
        };
        assert!(decide(&store, &admin, &review(None, "delete", "nodes")).0);
    }

    #[test]
    fn a_service_account_without_a_binding_may_do_nothing() {
        let (_d, store) = store();
        let sa = Identity {
            id: "default".into(),
            namespace: Some("apps".into()),
            service_account: true,
        };
        assert!(!decide(&store, &sa, &review(Some("apps"), "list", "pods")).0);
        let who = self_subject_review(&sa);
        assert_eq!(
            who["status"]["userInfo"]["username"],
            "system:serviceaccount:apps:default"
        );
    }

    /// The rules as (resource.group, names, verbs), one per resource.
    fn flat(rules: &[Value]) -> Vec<(String, Vec<String>, Vec<String>)> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let mut out = Vec::new();
        for r in rules {
            let group = r["apiGroups"][0].as_str().unwrap();
            for res in strings(&r["resources"]) {
                let name = match res.split_once('/') {
                    _ if group.is_empty() => res,
                    Some((r, sub)) => format!("{r}.{group}/{sub}"),
                    None => format!("{res}.{group}"),
                };
                out.push((name, strings(&r["resourceNames"]), strings(&r["verbs"])));
            }
        }
        out
    }

    fn find<'a>(
        rules: &'a [(String, Vec<String>, Vec<String>)],
        resource: &str,
    ) -> Vec<&'a (String, Vec<String>, Vec<String>)> {
        rules.iter().filter(|r| r.0 == resource).collect()
    }

    #[test]
    fn rules_of_a_namespace_token_are_what_authorize_allows() {
        let (_d, store) = store();
        let token = Identity {
            id: "ci".into(),
            namespace: Some("apps".into()),
            service_account: false,
        };
        let (rules_in, non_resource) = rules(&store, &token, "apps");
        let all = flat(&rules_in);
        let verbs = |r: &str| find(&all, r).first().map(|r| r.2.join(" "));
        let every = Some("create delete get list patch update watch".to_string());
        assert_eq!(verbs("pods"), every);
        assert_eq!(verbs("deployments.apps"), every);
        assert_eq!(verbs("pods/log"), Some("get".to_string()));
        assert_eq!(
            verbs("deployments.apps/scale"),
            Some("get patch update".to_string())
        );
        // Nothing at the cluster scope but a get of its own Namespace.
        assert_eq!(verbs("nodes"), None);
        assert_eq!(
            find(&all, "namespaces"),
            [&(
                "namespaces".to_string(),
                vec!["apps".to_string()],
                vec!["get".to_string()]
            )]
        );
        // Every rule listed is one `authorize` grants, and vice versa.
        for kind in crate::model::kinds::KINDS {
            let group = crate::api::discovery::group_version(kind).0;
            let name = if group.is_empty() {
                kind.plural.to_string()
            } else {
                format!("{}.{group}", kind.plural)
            };
            let t = Target {
                kind,
                group: group.into(),
                namespace: kind.namespaced.then(|| "apps".to_string()),
                name: None,
                sub: None,
            };
            let allowed = authorize(&store, &token, &t, "list").is_ok();
            let listed = find(&all, &name)
                .iter()
                .any(|r| r.1.is_empty() && r.2.iter().any(|v| v == "list"));
            assert_eq!(allowed, listed, "{name}");
        }
        assert_eq!(non_resource[0]["verbs"], json!(["get"]));
        // In another namespace: nothing.
        let (elsewhere, _) = rules(&store, &token, "other");
        assert!(elsewhere.is_empty(), "{elsewhere:?}");
        // The admin: everything.
        let admin = Identity {
            id: "admin".into(),
            namespace: None,
            service_account: false,
        };
        let (everything, _) = rules(&store, &admin, "other");
        assert_eq!(
            flat(&everything),
            [("*.*".to_string(), vec![], vec!["*".to_string()])]
        );
    }

    #[test]
    fn rules_of_a_service_account_are_its_rbac_rules() {
        let (_d, store) = store();
        let put = |v: Value| {
            let key = crate::model::store::ObjectKey::of(&v);
            store
                .transaction(vec![crate::model::store::Op::Create(v)])
                .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        };
        put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": "apps"},
            "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
                      {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"],
                       "verbs": ["get", "update"]}]}),
        );
        put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": "apps"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "apps"}]}),
        );
        let sa = Identity {
            id: "bot".into(),
            namespace: Some("apps".into()),
            service_account: true,
        };
        let (rules_in, _) = rules(&store, &sa, "apps");
        let mut all = flat(&rules_in);
        all.sort();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            all,
            [
                (
                    "configmaps".to_string(),
                    s(&["settings"]),
                    s(&["get", "update"])
                ),
                ("pods".to_string(), s(&[]), s(&["get", "list"])),
                ("pods/log".to_string(), s(&[]), s(&["get"])),
            ]
        );
        let (elsewhere, _) = rules(&store, &sa, "other");
        assert!(elsewhere.is_empty(), "{elsewhere:?}");
    }
}
