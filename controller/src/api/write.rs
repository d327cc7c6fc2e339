//! The writing verbs: create (with `generateName`), update and the patches (strategic merge,
//! merge, JSON patch, server-side apply) of objects and their `status`/`scale`, delete with
//! preconditions — each through validation, defaults and field ownership, with the manifests
//! folder's fields guarded.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::admission::{admit, with_warnings};
use super::auth::Identity;
use super::rest::{key_of, not_found, ok_json, Target};
use super::status::ApiError;
use super::{ApiState, Body, ReqBody};
use crate::model::declared::{self, FOLDER_MANAGER, MANIFEST_ANNOTATION};
use crate::model::store::{ObjectKey, Op};
use crate::model::{defaults, managed, meta, patch, validate};

/// Who writes: the field manager's name and the token's identity.
pub(super) struct Caller<'a> {
    /// `fieldManager` (or the client's name).
    pub manager: &'a str,
    /// The token.
    pub who: &'a Identity,
}

/// How much of a body past the limit is read (and thrown away) before the 413 is sent: a client
/// still sending when the answer comes sees its connection reset instead of the 413 (HTTP/2
/// resets the stream, HTTP/1 closes). A body declaring more, or still coming after this or
/// after [`DRAIN_TIME`], gets the 413 at once.
const DRAIN_BYTES: u64 = 32 * 1024 * 1024;
/// See [`DRAIN_BYTES`].
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The request's content type and body, at most `limit` bytes: a larger body (by its
/// `Content-Length`, or as it arrives) is a 413 naming the limit, as kube-apiserver answers.
/// Only `limit` bytes are ever kept.
pub(super) async fn read_body(
    req: Request<ReqBody>,
    limit: usize,
) -> Result<(String, Bytes), ApiError> {
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64 + DRAIN_BYTES) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = req.into_body();
    if declared.is_none_or(|n| n <= limit as u64) {
        let mut kept = bytes::BytesMut::new();
        loop {
            let Some(frame) = body.frame().await else {
                return Ok((ct, kept.freeze()));
            };
            let frame = frame
                .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if kept.len() + data.len() > limit {
                break;
            }
            kept.extend_from_slice(&data);
        }
    }
    // Over the limit: the rest is read and thrown away, within bounds, then the 413.
    let drain = async {
        let mut thrown = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            thrown += frame.data_ref().map_or(0, |d| d.len() as u64);
            if thrown > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Err(ApiError::too_large(limit))
}

pub(super) fn parse_body(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    if ct.contains("protobuf") {
        return super::protobuf::decode(body);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let text = crate::model::yaml::as_kubectl_reads(text)
        .map_err(|e| ApiError::bad_request(format!("the body is refused: {e}")))?;
    serde_yaml_ng::from_str::<Value>(&text)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON or YAML: {e}")))
}

/// Validation and defaulting of an object about to be written. `strict` is
/// `fieldValidation=Strict` (kubectl's default); otherwise fields unknown to Kubernetes are
/// dropped (as the API server does), but fields skiff does not implement are still refused.
pub(super) fn prepare(mut obj: Value, strict: bool) -> Result<Value, ApiError> {
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

pub(super) fn strict(q: &HashMap<String, String>) -> bool {
    !matches!(
        q.get("fieldValidation").map(String::as_str),
        Some("Ignore" | "Warn")
    )
}

pub(super) fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

/// How a conflicting manager is named to the user: the manifests folder with its file.
pub(super) fn manager_label(obj: &Value, manager: &str, api_version: &str) -> String {
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

/// skiff's own annotations ([`declared::internal_annotations`]) stay as the stored object has
/// them (or absent), whatever the request says: a client cannot make the manifests folder
/// think it declared an object, nor (unless it is the admin) make skiff renew and overwrite a
/// Secret as a certificate it issued.
pub(super) fn keep_skiff_annotations(existing: Option<&Value>, obj: &mut Value, who: &Identity) {
    for &key in declared::internal_annotations(who.namespace.is_none()) {
        match existing.and_then(|e| meta::annotation(e, key)) {
            Some(v) => {
                let v = v.to_string();
                meta::set_annotation(obj, key, &v);
            }
            None => meta::remove_annotation(obj, key),
        }
    }
}

/// Refuses a non-apply write that changes a field the manifests folder owns: the file is the
/// truth, and changing it there is the way (`kubectl apply --server-side --force-conflicts`
/// takes a field over explicitly).
pub(super) fn guard_folder(existing: &Value, new: &Value) -> Result<(), ApiError> {
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

pub(super) fn namespace_exists(state: &ApiState, ns: &str) -> Result<(), ApiError> {
    match state.store.get_tree(&ObjectKey::new("Namespace", "", ns)) {
        Some(n) if !meta::is_terminating(&n) => Ok(()),
        _ => Err(ApiError::not_found("namespaces", "", ns)),
    }
}

pub(super) fn create(
    state: &ApiState,
    t: &Target,
    ct: &str,
    body: &[u8],
    q: &HashMap<String, String>,
    caller: &Caller<'_>,
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
    keep_skiff_annotations(None, &mut obj, caller.who);
    let requested = obj.clone();
    let mut obj = prepare(obj, strict(q))?;
    managed::update(None, &requested, &mut obj, caller.manager);
    on_create(&mut obj, state)?;
    let warnings = admit(state, caller.who, &plural_of(t), &obj, None)?;
    if dry_run(q) {
        return Ok(with_warnings(ok_json(201, &obj), &warnings));
    }
    let created = state.store.create(obj)?;
    Ok(with_warnings(ok_json(201, &created), &warnings))
}

/// The admission plugins' work on an object being created (`defaults::on_create`: storage
/// defaults and protection, ServiceAccount, Priority); a refusal is 403, in Kubernetes'
/// words (`pods "web" is forbidden: no PriorityClass with name x was found`).
fn on_create(obj: &mut Value, state: &ApiState) -> Result<(), ApiError> {
    defaults::on_create(obj, &state.store, &[]).map_err(|defaults::Refused(why)| {
        let plural = crate::model::kinds::by_kind(obj["kind"].as_str().unwrap_or_default())
            .map_or("objects", |k| k.plural);
        ApiError::forbidden(format!(
            "{plural} {:?} is forbidden: {why}",
            meta::name(obj)
        ))
    })
}

/// Server-side apply of `applied` onto `existing` (`None`: it creates), validated and defaulted.
pub(super) fn server_side_apply(
    existing: Option<&Value>,
    applied: &Value,
    manager: &str,
    q: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let force = q.get("force").is_some_and(|f| super::query_bool(f));
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

pub(super) fn scale_of(obj: &Value) -> Value {
    let selector = super::table::selector(&obj["spec"]["selector"]);
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

pub(super) fn scale_get(
    state: &ApiState,
    t: &Target,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    if !matches!(t.kind.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
        return Err(ApiError::no_route("scale"));
    }
    let obj = state
        .store
        .get(&key_of(t, name))
        .ok_or_else(|| not_found(t, name))?;
    Ok(ok_json(200, &scale_of(&obj)))
}

/// PUT and PATCH of an object or its `status`/`scale`.
pub(super) fn update_or_patch(
    state: &ApiState,
    t: &Target,
    name: &str,
    verb: &str,
    (ct, body): (&str, &[u8]),
    q: &HashMap<String, String>,
    caller: &Caller<'_>,
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
        match write_once(state, t, name, verb, (ct, body), q, caller) {
            Err(e) if !pinned && attempts < 5 && super::status::is_modified_conflict(&e) => {
                attempts += 1;
            }
            r => return r,
        }
    }
}

/// One attempt of [`update_or_patch`].
fn write_once(
    state: &ApiState,
    t: &Target,
    name: &str,
    verb: &str,
    (ct, body): (&str, &[u8]),
    q: &HashMap<String, String>,
    caller: &Caller<'_>,
) -> Result<Response<Body>, ApiError> {
    let sub = t.sub.as_deref();
    let existing = state.store.get(&key_of(t, name));
    if ct.starts_with("application/apply-patch") && sub.is_none() {
        return apply_object(state, t, name, existing.as_deref(), (ct, body), q, caller);
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
    let updated = patched(base, verb, ct, &patch_body, state.max_body_bytes)?;
    match sub {
        Some("status") => {
            if dry_run(q) {
                return Ok(ok_json(200, &updated));
            }
            let r = state
                .store
                .update_status(&key_of(t, name), updated["status"].clone())?;
            Ok(ok_json(200, &r))
        }
        Some("scale") => write_scale(state, name, &existing, &updated, q, caller.manager),
        _ => {
            let whole = Whole {
                existing: &existing,
                updated,
                patch_body: &patch_body,
            };
            write_whole(state, t, name, verb, whole, q, caller)
        }
    }
}

/// Server-side apply of a whole object (`application/apply-patch+yaml`): creates it if absent.
fn apply_object(
    state: &ApiState,
    t: &Target,
    name: &str,
    existing: Option<&Value>,
    (ct, body): (&str, &[u8]),
    q: &HashMap<String, String>,
    caller: &Caller<'_>,
) -> Result<Response<Body>, ApiError> {
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
    keep_skiff_annotations(existing, &mut applied, caller.who);
    let mut obj = server_side_apply(existing, &applied, caller.manager, q)?;
    keep_skiff_annotations(existing, &mut obj, caller.who);
    let Some(existing) = existing else {
        on_create(&mut obj, state)?;
        let warnings = admit(state, caller.who, &plural_of(t), &obj, None)?;
        if dry_run(q) {
            return Ok(with_warnings(ok_json(201, &obj), &warnings));
        }
        let created = state.store.create(obj)?;
        return Ok(with_warnings(ok_json(201, &created), &warnings));
    };
    immutable(existing, &obj)?;
    let warnings = admit(state, caller.who, &plural_of(t), &obj, Some(existing))?;
    if declared::same_declared(&obj, existing) || dry_run(q) {
        return Ok(with_warnings(ok_json(200, &obj), &warnings));
    }
    let updated = state.store.update(obj)?;
    Ok(with_warnings(ok_json(200, &updated), &warnings))
}

/// `base` replaced (PUT) or patched by `patch_body` as the content type says.
fn patched(
    mut base: Value,
    verb: &str,
    ct: &str,
    patch_body: &Value,
    copy_limit: usize,
) -> Result<Value, ApiError> {
    match verb {
        "update" => base = patch_body.clone(),
        _ if ct.starts_with("application/merge-patch+json") => patch::merge(&mut base, patch_body),
        _ if ct.starts_with("application/json-patch+json") => {
            patch::json(&mut base, patch_body, copy_limit).map_err(|e| match e {
                patch::JsonPatchError::TooManyOperations(_) => ApiError::too_large_because(e),
                patch::JsonPatchError::CopiesTooLarge { .. } => ApiError::unprocessable(e),
                _ => ApiError::bad_request(e.to_string()),
            })?
        }
        _ if ct.starts_with("application/strategic-merge-patch+json") => {
            patch::strategic_merge(&mut base, patch_body)
        }
        _ => return Err(ApiError::unsupported_media_type(ct)),
    }
    // A patch (or body) may make the document anything: an array, a string. Every later step
    // reads it as an object (found by fuzzing: a strategic merge patch `[]` panicked).
    if !base.is_object() {
        return Err(ApiError::bad_request(match verb {
            "update" => "the body must be an object",
            _ => "the patched document is not an object",
        }));
    }
    Ok(base)
}

/// A write of the `scale` subresource: the object's `spec.replicas`.
fn write_scale(
    state: &ApiState,
    name: &str,
    existing: &Value,
    updated: &Value,
    q: &HashMap<String, String>,
    manager: &str,
) -> Result<Response<Body>, ApiError> {
    let invalid = |message: &str| {
        ApiError::invalid(
            "Scale",
            name,
            &[validate::FieldError {
                field: "spec.replicas".into(),
                message: message.into(),
            }],
        )
    };
    let replicas = updated["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| invalid("is required"))?;
    if replicas < 0 {
        return Err(invalid("must be greater than or equal to 0"));
    }
    let mut obj = existing.clone();
    obj["spec"]["replicas"] = json!(replicas);
    // kubectl scale retries 409s until its timeout: refuse a folder-declared scale as
    // 403, which it reports at once, with the same explanation.
    guard_folder(existing, &obj).map_err(|e| ApiError::forbidden(e.message))?;
    managed::update(Some(existing), &obj.clone(), &mut obj, manager);
    if dry_run(q) {
        return Ok(ok_json(200, &scale_of(&obj)));
    }
    let r = state.store.update(obj)?;
    Ok(ok_json(200, &scale_of(&r.tree())))
}

/// A replaced or patched whole object, with what it was made from.
struct Whole<'a> {
    existing: &'a Value,
    updated: Value,
    patch_body: &'a Value,
}

/// A write of a whole object (PUT or a patch): validated, defaulted, the folder's fields
/// guarded, field ownership updated.
fn write_whole(
    state: &ApiState,
    t: &Target,
    name: &str,
    verb: &str,
    w: Whole<'_>,
    q: &HashMap<String, String>,
    caller: &Caller<'_>,
) -> Result<Response<Body>, ApiError> {
    let Whole {
        existing,
        mut updated,
        patch_body,
    } = w;
    if updated["metadata"]["name"]
        .as_str()
        .is_some_and(|n| n != name)
    {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if updated["kind"].as_str().is_some_and(|k| k != t.kind.kind) {
        return Err(ApiError::bad_request(format!(
            "the body's kind {:?} does not match the resource {:?}",
            updated["kind"].as_str().unwrap_or_default(),
            t.kind.plural
        )));
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
    keep_skiff_annotations(Some(existing), &mut updated, caller.who);
    let requested = updated.clone();
    let mut obj = prepare(updated, strict(q))?;
    guard_folder(existing, &obj)?;
    immutable(existing, &obj)?;
    managed::update(Some(existing), &requested, &mut obj, caller.manager);
    let warnings = admit(state, caller.who, &plural_of(t), &obj, Some(existing))?;
    if declared::same_declared(&obj, existing) {
        return Ok(with_warnings(ok_json(200, existing), &warnings));
    }
    if dry_run(q) {
        return Ok(with_warnings(ok_json(200, &obj), &warnings));
    }
    let updated = state.store.update(obj)?;
    Ok(with_warnings(ok_json(200, &updated), &warnings))
}

/// The resource as Kubernetes names it in messages: `pods`, `deployments.apps`.
fn plural_of(t: &Target) -> String {
    if t.group.is_empty() {
        t.kind.plural.to_string()
    } else {
        format!("{}.{}", t.kind.plural, t.group)
    }
}

/// Refuses a change of a field Kubernetes makes immutable (a claim's spec, a volume's source).
fn immutable(existing: &Value, new: &Value) -> Result<(), ApiError> {
    validate::validate_update(existing, new).map_err(|errors| {
        ApiError::invalid(
            existing["kind"].as_str().unwrap_or_default(),
            meta::name(existing),
            &errors,
        )
    })
}

/// `preconditions` of a delete, or the `uid`/`resourceVersion` of a replacement: the write
/// is for that very object (409 otherwise, in the API server's words).
pub(super) fn precondition(
    existing: &Value,
    pre: &Value,
    t: &Target,
    name: &str,
) -> Result<(), ApiError> {
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

pub(super) fn delete(
    state: &ApiState,
    t: &Target,
    name: &str,
    body: &[u8],
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let key = key_of(t, name);
    let existing = state.store.get(&key).ok_or_else(|| not_found(t, name))?;
    // An object the folder already deletes (a Pod being stopped) may be finished off: the
    // node's last word on a pod it has stopped.
    let folder_file = meta::annotation(&existing, MANIFEST_ANNOTATION)
        .filter(|_| !meta::is_terminating(&existing));
    if let Some(file) = folder_file {
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
        return Ok(ok_json(200, &*existing));
    }
    let op = match grace {
        // A grace period of 0 removes at once: `kubectl delete --force --grace-period=0`, and
        // the node's last word on a pod it has stopped. Finalizers hold even then.
        Some(0) if !t.kind.has_finalizers() => Op::Remove(key),
        Some(g) if t.kind.kind == "Pod" => Op::DeleteWithGrace(key, g),
        _ => Op::Delete(key),
    };
    let r = state.store.transaction(vec![op])?;
    Ok(ok_json(200, &r[0]))
}

/// An object as a create by the admin would store it (parsed, validated, defaulted, its
/// managed fields), for the fuzz targets in `fuzz/`: the `stored` of [`fuzz_write`].
#[doc(hidden)]
pub fn fuzz_stored(body: &[u8]) -> Result<Value, ApiError> {
    let requested = parse_body("application/json", body)?;
    let mut obj = prepare(requested.clone(), true)?;
    managed::update(None, &requested, &mut obj, "fuzz");
    let md = meta::metadata_mut(&mut obj);
    md.insert("uid".into(), json!("00000000-0000-0000-0000-000000000001"));
    md.insert("resourceVersion".into(), json!("1"));
    Ok(obj)
}

/// The object-level steps of a write (the parts that read the request body), without the
/// store, for the fuzz targets in `fuzz/`: `body` as `op` says (0 JSON patch, 1 merge patch,
/// 2 strategic merge patch, 3 server-side apply, 4 replace) onto `stored` by a namespace
/// token, through the same functions as [`update_or_patch`]: parse, patch, skiff's own
/// annotations, validation and defaults, the folder's guard, immutable fields, managed fields.
/// The written object, or the error the API would answer.
#[doc(hidden)]
pub fn fuzz_write(stored: &Value, op: u8, body: &[u8]) -> Result<Value, ApiError> {
    let who = Identity {
        id: "fuzz".into(),
        namespace: Some(meta::namespace(stored).to_string()),
        service_account: false,
    };
    let q = HashMap::new();
    let (verb, ct) = match op % 5 {
        0 => ("patch", "application/json-patch+json"),
        1 => ("patch", "application/merge-patch+json"),
        2 => ("patch", "application/strategic-merge-patch+json"),
        3 => ("patch", "application/apply-patch+yaml"),
        _ => ("update", "application/json"),
    };
    let body = parse_body(ct, body)?;
    if ct.starts_with("application/apply-patch") {
        let mut applied = body;
        if !applied.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        keep_skiff_annotations(Some(stored), &mut applied, &who);
        let mut obj = server_side_apply(Some(stored), &applied, "fuzz", &q)?;
        keep_skiff_annotations(Some(stored), &mut obj, &who);
        immutable(stored, &obj)?;
        return Ok(obj);
    }
    let mut updated = patched(stored.clone(), verb, ct, &body, super::MAX_BODY_BYTES)?;
    keep_skiff_annotations(Some(stored), &mut updated, &who);
    let requested = updated.clone();
    let mut obj = prepare(updated, strict(&q))?;
    guard_folder(stored, &obj)?;
    immutable(stored, &obj)?;
    managed::update(Some(stored), &requested, &mut obj, "fuzz");
    declared::same_declared(&obj, stored);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/ `patch`): a strategic merge or merge patch that is an array, or
    /// a JSON patch replacing the whole document, made the object an array, and the next step
    /// (skiff's own annotations) panicked indexing it.
    #[test]
    fn a_patch_that_makes_the_object_no_object_is_refused() {
        let stored = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ci"}});
        let cases: [(&str, &str, Value); 4] = [
            (
                "patch",
                "application/strategic-merge-patch+json",
                json!([{"op": "x"}]),
            ),
            ("patch", "application/merge-patch+json", json!("text")),
            (
                "patch",
                "application/json-patch+json",
                json!([{"op": "replace", "path": "", "value": 1}]),
            ),
            ("update", "application/json", json!([])),
        ];
        for (verb, ct, body) in cases {
            let e =
                patched(stored.clone(), verb, ct, &body, crate::api::MAX_BODY_BYTES).expect_err(ct);
            assert_eq!(e.code, 400, "{ct}: {}", e.message);
            assert!(e.message.contains("not an object") || e.message.contains("must be an object"));
        }
    }

    /// Found by fuzzing: `metadata` that is not a mapping made skiff's annotation guard panic
    /// (on create as on every write); it is now left for validation to name.
    #[test]
    fn a_metadata_that_is_no_mapping_is_refused_by_name() {
        let who = Identity {
            id: "t".into(),
            namespace: Some("ci".into()),
            service_account: false,
        };
        for metadata in [json!("x"), json!([1]), json!(7)] {
            let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata});
            keep_skiff_annotations(None, &mut obj, &who);
            let e = prepare(obj, true).expect_err("refused");
            assert_eq!(e.code, 422, "{}", e.message);
            assert!(e.message.contains("metadata"), "{}", e.message);
        }
    }
}
