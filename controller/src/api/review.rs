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

/// The body of a SelfSubjectAccessReview, JSON or protobuf (kubectl sends protobuf).
fn review_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if !content_type.contains("protobuf") {
        return serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")));
    }
    let (kind, raw) = match envelope(body)? {
        Envelope::Json(v) => return Ok(v),
        Envelope::Proto { kind, raw, .. } => (kind, raw),
    };
    if kind != "SelfSubjectAccessReview" {
        return Err(ApiError::bad_request(format!(
            "expected a SelfSubjectAccessReview, not a {kind}"
        )));
    }
    use k8s_pb::api::authorization::v1::SelfSubjectAccessReview;
    use prost::Message;
    let r = SelfSubjectAccessReview::decode(&raw[..])
        .map_err(|e| ApiError::bad_request(format!("not a SelfSubjectAccessReview: {e}")))?;
    let spec = r.spec.unwrap_or_default();
    let mut out = json!({"apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview", "spec": {}});
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
    let mut review = review_body(content_type, body)?;
    let (allowed, reason) = decide(store, who, &review["spec"]);
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = json!({"allowed": allowed});
    if !reason.is_empty() {
        review["status"]["reason"] = json!(reason);
    }
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
}
