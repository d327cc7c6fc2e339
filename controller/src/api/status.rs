//! Kubernetes `Status` errors: every failure the API serves is one, so kubectl prints its usual
//! messages (`Error from server (NotFound): deployments.apps "x" not found`).

use serde_json::{json, Value};

use crate::model::validate::FieldError;

/// An API error, rendered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`…).
    pub reason: &'static str,
    /// Human message.
    pub message: String,
    /// `details`, if any.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 for an object: `<plural>.<group> "<name>" not found`.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        let qualified = qualified(resource, group);
        let mut e = Self::new(404, "NotFound", format!("{qualified} {name:?} not found"));
        e.details = Some(json!({"name": name, "group": group, "kind": resource}));
        e
    }

    /// 413: the request body is larger than `limit` bytes (kube-apiserver's wording).
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 413 for a request too large in another way than its bytes (a JSON patch's operations).
    pub fn too_large_because(why: impl std::fmt::Display) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: {why}"),
        )
    }

    /// 422 for a request that cannot be processed as asked (as kube-apiserver's
    /// `NewGenericServerResponse(422, …)`).
    pub fn unprocessable(why: impl std::fmt::Display) -> Self {
        Self::new(422, "Invalid", why.to_string())
    }

    /// 404 for a path nobody serves.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(resource, group)),
        );
        e.details = Some(json!({"name": name, "group": group, "kind": resource}));
        e
    }

    /// 409 Conflict.
    pub fn conflict(resource: &str, group: &str, name: &str, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(resource, group)
            ),
        );
        e.details = Some(json!({"name": name, "group": group, "kind": resource}));
        e
    }

    /// 409 Conflict of field managers (server-side apply): `(manager, field)` pairs, printed
    /// as the API server does (`conflict with "kubectl-edit" using apps/v1: .spec.replicas`).
    pub fn field_manager_conflict(kind: &str, name: &str, conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": f}))
            .collect();
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts
                    .iter()
                    .map(|(m, f)| format!("conflict with {m}: {f}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        );
        e.details = Some(json!({"name": name, "kind": kind, "causes": causes}));
        e
    }

    /// 422 Invalid, with one cause per field.
    pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> = errors
            .iter()
            .map(|f| json!({"reason": reason_of(f), "message": f.message, "field": f.field}))
            .collect();
        let list = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let group = group_of_kind(kind);
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{qualified_kind} {name:?} is invalid: {list}"),
        );
        e.details = Some(json!({"name": name, "kind": kind, "causes": causes}));
        e
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 410 Expired (a watch from a resourceVersion older than the retained window).
    pub fn expired(rv: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {rv} ({oldest})"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/strategic-merge-patch+json, application/merge-patch+json, application/json-patch+json, application/apply-patch+yaml, application/vnd.kubernetes.protobuf (got {ct:?})"))
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn reason_of(f: &FieldError) -> &'static str {
    if f.message.starts_with("unknown field") {
        "FieldValueInvalid"
    } else if f.message.contains("not supported") {
        "FieldValueNotSupported"
    } else if f.message.contains("required") {
        "FieldValueRequired"
    } else {
        "FieldValueInvalid"
    }
}

fn group_of_kind(kind: &str) -> &'static str {
    crate::model::kinds::by_kind(kind)
        .map_or("", |k| k.api_version.split_once('/').map_or("", |(g, _)| g))
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Why a write against an outdated resourceVersion fails (Kubernetes' words).
const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// Whether the error is a write against an outdated resourceVersion.
pub fn is_modified_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.message.ends_with(MODIFIED)
}

impl From<crate::model::store::StoreError> for ApiError {
    fn from(e: crate::model::store::StoreError) -> Self {
        use crate::model::store::StoreError as E;
        match &e {
            E::AlreadyExists(k) | E::NotFound(k) | E::Conflict { key: k, .. } => {
                let info = crate::model::kinds::by_kind(&k.kind);
                let plural = info.map_or("", |i| i.plural);
                let group =
                    info.map_or("", |i| i.api_version.split_once('/').map_or("", |(g, _)| g));
                match e {
                    E::AlreadyExists(_) => ApiError::already_exists(plural, group, &k.name),
                    E::NotFound(_) => ApiError::not_found(plural, group, &k.name),
                    _ => ApiError::conflict(plural, group, &k.name, MODIFIED),
                }
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}
