//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! turned into the JSON object skiff handles everywhere else.
//!
//! kubectl's typed generators (`kubectl create configmap|secret|deployment|namespace|service|
//! ingress`) send their object this way, and do not retry a 415 as JSON (`kubectl run` and
//! `kubectl expose` send JSON). Answers stay JSON: kubectl accepts either.
//!
//! The envelope is the four bytes `k8s\0` and a `runtime.Unknown` message (typeMeta, the object's
//! own message as `raw`). The object's message is decoded by `k8s-pb` (the prost types kube-rs
//! generates from Kubernetes' `.proto` files); that crate has no JSON mapping, so the mapping to
//! Kubernetes JSON is written here, one function per message, for the kinds skiff serves (the
//! functions are as long as their messages have fields — field-by-field tables by nature):
//!
//! - field names are the Go json tags (camelCase);
//! - `IntOrString` becomes a number or a string, `Quantity` its string, `Time` an RFC 3339 string
//!   (seconds), `MicroTime` one with microseconds, `bytes` (Secret data, ConfigMap binaryData)
//!   base64;
//! - Go writes every non-pointer field, zero or not, so a zero string, number or false is left
//!   out (what `omitempty` does in JSON); fields that are pointers in Go (`replicas`,
//!   `terminationGracePeriodSeconds`, `optional`, `maxUnavailable`…) are kept when zero, since
//!   there zero is a value and absence means "default"; an empty non-pointer struct is left out,
//!   an empty pointer struct (`emptyDir: {}`) is kept;
//! - `status`, `metadata.managedFields` and `metadata.selfLink` are dropped (every write drops
//!   them anyway).
//!
//! Every field of every message mapped here is either mapped or, for structures skiff does not
//! implement at all (affinity, tolerations, lifecycle hooks, most volume types…), refused when
//! set with the same "field is not supported by skiff" error validation gives a JSON body. Fields
//! that are mapped go on to the ordinary validation, which refuses the unsupported ones by name.
//! The destructuring below is exhaustive, so a `k8s-pb` upgrade that adds a field fails to
//! compile until the field is mapped or refused. A field newer than `k8s-pb`'s protos is
//! skipped by prost unseen, as protobuf's unknown fields are.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::discovery::v1 as discovery;
use k8s_pb::api::networking::v1 as networking;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::api::scheduling::v1 as scheduling;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

use super::base64_encode;
use super::status::ApiError;
use crate::model::kinds;
use crate::model::validate::FieldError;

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// A request body in Kubernetes' protobuf envelope: raw JSON inside it, or a typed message.
pub(super) enum Envelope {
    /// `runtime.Unknown` carrying JSON.
    Json(Value),
    /// A protobuf message of `kind`.
    Proto {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
        /// The message.
        raw: Vec<u8>,
    },
}

/// Opens the `k8s\0` + `runtime.Unknown` envelope of a protobuf request body.
pub(super) fn envelope(body: &[u8]) -> Result<Envelope, ApiError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(ApiError::bad_request(
            "the protobuf body does not start with the Kubernetes magic bytes \"k8s\\x00\"",
        ));
    };
    let unknown = Unknown::decode(envelope).map_err(|e| {
        ApiError::bad_request(format!("the protobuf body is not a runtime.Unknown: {e}"))
    })?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "the protobuf body's contentEncoding {encoding:?} is not supported"
        )));
    }
    let raw = unknown.raw.unwrap_or_default();
    if let Some(ct) = unknown.content_type.filter(|c| !c.is_empty()) {
        if ct.contains("json") {
            return serde_json::from_slice(&raw)
                .map(Envelope::Json)
                .map_err(|e| {
                    ApiError::bad_request(format!("the protobuf body's raw JSON is invalid: {e}"))
                });
        }
        if !ct.contains("protobuf") {
            return Err(ApiError::unsupported_media_type(&ct));
        }
    }
    if kind.is_empty() {
        return Err(ApiError::bad_request(
            "the protobuf body names no kind (runtime.Unknown typeMeta.kind)",
        ));
    }
    Ok(Envelope::Proto {
        api_version,
        kind,
        raw,
    })
}

/// Decodes a Kubernetes protobuf body into the object's JSON form.
///
/// Errors: 400 for a body that is not Kubernetes protobuf; 415 for a kind skiff does not serve
/// (naming it); 422 naming the fields skiff does not implement.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let (api_version, kind, raw) = match envelope(body)? {
        Envelope::Json(v) => return Ok(v),
        Envelope::Proto {
            api_version,
            kind,
            raw,
        } => (api_version, kind, raw),
    };
    let served = kinds::by_kind(&kind).is_some_and(|k| k.api_version == api_version)
        && MAPPED.contains(&kind.as_str());
    if !served {
        return Err(unsupported_kind(&api_version, &kind));
    }
    let bad = |e: prost::DecodeError| {
        ApiError::bad_request(format!("the protobuf body is not a valid {kind}: {e}"))
    };
    let mut cx = Cx::default();
    let (metadata, fields) = match kind.as_str() {
        "Namespace" => namespace(core::Namespace::decode(&raw[..]).map_err(bad)?),
        "ConfigMap" => config_map(core::ConfigMap::decode(&raw[..]).map_err(bad)?),
        "Secret" => secret(core::Secret::decode(&raw[..]).map_err(bad)?),
        "Pod" => pod(&mut cx, core::Pod::decode(&raw[..]).map_err(bad)?),
        "Deployment" => deployment(&mut cx, apps::Deployment::decode(&raw[..]).map_err(bad)?),
        "ReplicaSet" => replica_set(&mut cx, apps::ReplicaSet::decode(&raw[..]).map_err(bad)?),
        "Job" => job(&mut cx, batch::Job::decode(&raw[..]).map_err(bad)?),
        "CronJob" => cron_job(&mut cx, batch::CronJob::decode(&raw[..]).map_err(bad)?),
        "Service" => service(core::Service::decode(&raw[..]).map_err(bad)?),
        "EndpointSlice" => endpoint_slice(discovery::EndpointSlice::decode(&raw[..]).map_err(bad)?),
        "Ingress" => ingress(&mut cx, networking::Ingress::decode(&raw[..]).map_err(bad)?),
        "IngressClass" => ingress_class(
            &mut cx,
            networking::IngressClass::decode(&raw[..]).map_err(bad)?,
        ),
        "Event" => event(core::Event::decode(&raw[..]).map_err(bad)?),
        "ServiceAccount" => service_account(core::ServiceAccount::decode(&raw[..]).map_err(bad)?),
        "Role" => {
            let rbac::Role { metadata, rules } = rbac::Role::decode(&raw[..]).map_err(bad)?;
            rbac_role(metadata, rules, None)
        }
        "ClusterRole" => {
            let rbac::ClusterRole {
                metadata,
                rules,
                aggregation_rule,
            } = rbac::ClusterRole::decode(&raw[..]).map_err(bad)?;
            rbac_role(metadata, rules, aggregation_rule)
        }
        "RoleBinding" => {
            let rbac::RoleBinding {
                metadata,
                subjects,
                role_ref,
            } = rbac::RoleBinding::decode(&raw[..]).map_err(bad)?;
            rbac_binding(metadata, subjects, role_ref)
        }
        "ClusterRoleBinding" => {
            let rbac::ClusterRoleBinding {
                metadata,
                subjects,
                role_ref,
            } = rbac::ClusterRoleBinding::decode(&raw[..]).map_err(bad)?;
            rbac_binding(metadata, subjects, role_ref)
        }
        "PriorityClass" => {
            priority_class(scheduling::PriorityClass::decode(&raw[..]).map_err(bad)?)
        }
        "PodDisruptionBudget" => {
            disruption_budget(policy::PodDisruptionBudget::decode(&raw[..]).map_err(bad)?)
        }
        _ => return Err(unsupported_kind(&api_version, &kind)),
    };
    let name = metadata
        .map
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), api_version.into());
    obj.insert("kind".into(), kind.clone().into());
    obj.insert("metadata".into(), Value::Object(metadata.map));
    obj.extend(fields.map);
    if !cx.errors.is_empty() {
        return Err(ApiError::invalid(&kind, &name, &cx.errors));
    }
    Ok(Value::Object(obj))
}

/// The kinds whose protobuf bodies are mapped here (the storage kinds are not: kubectl's
/// typed generators make none of them).
const MAPPED: &[&str] = &[
    "Namespace",
    "Job",
    "CronJob",
    "ConfigMap",
    "Secret",
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Service",
    "EndpointSlice",
    "Ingress",
    "IngressClass",
    "Event",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "PriorityClass",
    "PodDisruptionBudget",
];

fn unsupported_kind(api_version: &str, kind: &str) -> ApiError {
    let mut e = ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf");
    e.message = format!(
        "skiff decodes protobuf bodies for {}; not for kind {kind:?} (apiVersion {api_version:?}): send it as JSON",
        kinds::KINDS
            .iter()
            .filter(|k| MAPPED.contains(&k.kind))
            .map(|k| format!("{} {}", k.api_version, k.kind))
            .collect::<Vec<_>>()
            .join(", ")
    );
    e
}

// ---------------------------------------------------------------------------------------------
// Building JSON objects the way Go's encoding/json writes Kubernetes types.

/// A JSON object under construction.
#[derive(Default)]
struct Obj {
    map: Map<String, Value>,
}

impl Obj {
    fn put(&mut self, key: &str, value: impl Into<Value>) {
        self.map.insert(key.to_string(), value.into());
    }

    /// A Go `string` (`omitempty`): left out when empty.
    fn str(&mut self, key: &str, v: Option<String>) {
        if let Some(s) = v.filter(|s| !s.is_empty()) {
            self.put(key, s);
        }
    }

    /// A Go integer (`omitempty`): left out when zero.
    fn int<T: Into<i64>>(&mut self, key: &str, v: Option<T>) {
        if let Some(n) = v.map(Into::into).filter(|n| *n != 0) {
            self.put(key, n);
        }
    }

    /// A Go `bool` (`omitempty`): left out when false.
    fn flag(&mut self, key: &str, v: Option<bool>) {
        if v == Some(true) {
            self.put(key, true);
        }
    }

    /// A Go pointer to a scalar (`*int32`, `*bool`, `*string`): kept whenever it was sent.
    fn ptr<T: Into<Value>>(&mut self, key: &str, v: Option<T>) {
        if let Some(v) = v {
            self.put(key, v);
        }
    }

    fn strings(&mut self, key: &str, v: Vec<String>) {
        if !v.is_empty() {
            self.put(key, v);
        }
    }

    fn map(&mut self, key: &str, v: BTreeMap<String, String>) {
        if !v.is_empty() {
            self.put(
                key,
                Map::from_iter(v.into_iter().map(|(k, v)| (k, v.into()))),
            );
        }
    }

    /// `map[string][]byte`: values base64, as Go's JSON writes `[]byte`.
    fn bytes_map(&mut self, key: &str, v: BTreeMap<String, Vec<u8>>) {
        if !v.is_empty() {
            let m = v
                .into_iter()
                .map(|(k, b)| (k, Value::from(base64_encode(&b))));
            self.put(key, Map::from_iter(m));
        }
    }

    /// `map[string]resource.Quantity` (`resources.limits`).
    fn quantities(&mut self, key: &str, v: BTreeMap<String, Quantity>) {
        if !v.is_empty() {
            let m = v
                .into_iter()
                .map(|(k, q)| (k, Value::from(q.string.unwrap_or_default())));
            self.put(key, Map::from_iter(m));
        }
    }

    fn list(&mut self, key: &str, v: Vec<Obj>) {
        if !v.is_empty() {
            self.put(
                key,
                v.into_iter()
                    .map(|o| Value::Object(o.map))
                    .collect::<Vec<_>>(),
            );
        }
    }

    /// A non-pointer struct: left out when it has nothing (it then means the defaults).
    fn obj(&mut self, key: &str, v: Obj) {
        if !v.map.is_empty() {
            self.put(key, v.map);
        }
    }

    /// A pointer to a struct: kept whenever it was sent, even empty (`emptyDir: {}`).
    fn some(&mut self, key: &str, v: Option<Obj>) {
        if let Some(o) = v {
            self.put(key, o.map);
        }
    }

    /// A non-pointer `IntOrString` (`targetPort`, probe ports): left out when zero.
    fn int_or_string(&mut self, key: &str, v: Option<IntOrString>) {
        if let Some(v) = v.and_then(int_or_string).filter(|v| *v != 0 && v != "") {
            self.put(key, v);
        }
    }

    /// A `*IntOrString` (`maxSurge`, `maxUnavailable`): kept when sent, zero included.
    fn int_or_string_ptr(&mut self, key: &str, v: Option<IntOrString>) {
        if let Some(v) = v.and_then(int_or_string) {
            self.put(key, v);
        }
    }

    fn quantity(&mut self, key: &str, v: Option<Quantity>) {
        if let Some(s) = v.and_then(|q| q.string) {
            self.put(key, s);
        }
    }

    /// `metav1.Time`: RFC 3339 in seconds; the zero time (an empty message) is left out.
    fn time(&mut self, key: &str, v: Option<meta::Time>) {
        if let Some(s) = v.and_then(|t| timestamp(t.seconds, t.nanos, false)) {
            self.put(key, s);
        }
    }

    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    fn micro_time(&mut self, key: &str, v: Option<meta::MicroTime>) {
        if let Some(s) = v.and_then(|t| timestamp(t.seconds, t.nanos, true)) {
            self.put(key, s);
        }
    }
}

fn int_or_string(v: IntOrString) -> Option<Value> {
    // type 0 is an int, 1 a string (k8s.io/apimachinery/pkg/util/intstr).
    match v.r#type.unwrap_or(0) {
        0 => Some(v.int_val.unwrap_or(0).into()),
        1 => Some(v.str_val.unwrap_or_default().into()),
        _ => None,
    }
}

fn timestamp(seconds: Option<i64>, nanos: Option<i32>, micro: bool) -> Option<String> {
    let (seconds, nanos) = (seconds.unwrap_or(0), nanos.unwrap_or(0));
    if seconds == 0 && nanos == 0 {
        return None;
    }
    let ts = jiff::Timestamp::from_second(seconds).ok()?;
    let whole = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Some(if micro {
        format!("{whole}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000)
    } else {
        format!("{whole}Z")
    })
}

// ---------------------------------------------------------------------------------------------
// Fields skiff does not implement.

/// Collects the fields refused while mapping.
#[derive(Default)]
struct Cx {
    errors: Vec<FieldError>,
}

impl Cx {
    /// Refuses `path.field` when it carries anything.
    fn refuse(&mut self, path: &str, field: &str, value: &impl Sent) {
        if value.sent() {
            self.errors.push(FieldError {
                field: join(path, field),
                message: "field is not supported by skiff".to_string(),
            });
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether a field was sent. Every field refused is a Go pointer, slice or map, which Go
/// writes only when set (unlike non-pointer fields, written at their zero value too).
trait Sent {
    fn sent(&self) -> bool;
}

impl<T> Sent for Option<T> {
    fn sent(&self) -> bool {
        self.is_some()
    }
}

impl<T> Sent for Vec<T> {
    fn sent(&self) -> bool {
        !self.is_empty()
    }
}

impl<K, V> Sent for BTreeMap<K, V> {
    fn sent(&self) -> bool {
        !self.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata.

fn object_meta(m: Option<meta::ObjectMeta>) -> Obj {
    let meta::ObjectMeta {
        name,
        generate_name,
        namespace,
        self_link: _,
        uid,
        resource_version,
        generation,
        creation_timestamp,
        deletion_timestamp,
        deletion_grace_period_seconds,
        labels,
        annotations,
        owner_references,
        finalizers,
        managed_fields: _,
    } = m.unwrap_or_default();
    let mut o = Obj::default();
    o.str("name", name);
    o.str("generateName", generate_name);
    o.str("namespace", namespace);
    o.str("uid", uid);
    o.str("resourceVersion", resource_version);
    o.int("generation", generation);
    o.time("creationTimestamp", creation_timestamp);
    o.time("deletionTimestamp", deletion_timestamp);
    o.ptr("deletionGracePeriodSeconds", deletion_grace_period_seconds);
    o.map("labels", labels);
    o.map("annotations", annotations);
    o.list(
        "ownerReferences",
        owner_references.into_iter().map(owner_reference).collect(),
    );
    o.strings("finalizers", finalizers);
    o
}

fn owner_reference(r: meta::OwnerReference) -> Obj {
    let meta::OwnerReference {
        api_version,
        kind,
        name,
        uid,
        controller,
        block_owner_deletion,
    } = r;
    let mut o = Obj::default();
    o.str("apiVersion", api_version);
    o.str("kind", kind);
    o.str("name", name);
    o.str("uid", uid);
    o.ptr("controller", controller);
    o.ptr("blockOwnerDeletion", block_owner_deletion);
    o
}

fn label_selector(s: meta::LabelSelector) -> Obj {
    let meta::LabelSelector {
        match_labels,
        match_expressions,
    } = s;
    let mut o = Obj::default();
    o.map("matchLabels", match_labels);
    let exprs = match_expressions
        .into_iter()
        .map(|r| {
            let meta::LabelSelectorRequirement {
                key,
                operator,
                values,
            } = r;
            let mut e = Obj::default();
            e.str("key", key);
            e.str("operator", operator);
            e.strings("values", values);
            e
        })
        .collect();
    o.list("matchExpressions", exprs);
    o
}

fn object_reference(r: core::ObjectReference) -> Obj {
    let core::ObjectReference {
        kind,
        namespace,
        name,
        uid,
        api_version,
        resource_version,
        field_path,
    } = r;
    let mut o = Obj::default();
    o.str("kind", kind);
    o.str("namespace", namespace);
    o.str("name", name);
    o.str("uid", uid);
    o.str("apiVersion", api_version);
    o.str("resourceVersion", resource_version);
    o.str("fieldPath", field_path);
    o
}

fn local_name(r: Option<core::LocalObjectReference>) -> Option<String> {
    r.and_then(|r| r.name)
}

// ---------------------------------------------------------------------------------------------
// Kinds. Each returns (metadata, the other top-level fields).

type Parts = (Obj, Obj);

fn namespace(n: core::Namespace) -> Parts {
    let core::Namespace {
        metadata,
        spec,
        status: _,
    } = n;
    let core::NamespaceSpec { finalizers } = spec.unwrap_or_default();
    let mut spec = Obj::default();
    spec.strings("finalizers", finalizers);
    let mut o = Obj::default();
    o.obj("spec", spec);
    (object_meta(metadata), o)
}

/// `kubectl create serviceaccount`.
fn service_account(a: core::ServiceAccount) -> Parts {
    let core::ServiceAccount {
        metadata,
        secrets,
        image_pull_secrets,
        automount_service_account_token,
    } = a;
    let mut o = Obj::default();
    o.list(
        "secrets",
        secrets.into_iter().map(object_reference).collect(),
    );
    let pull = image_pull_secrets
        .into_iter()
        .map(|r| {
            let mut n = Obj::default();
            n.str("name", r.name);
            n
        })
        .collect();
    o.list("imagePullSecrets", pull);
    o.ptr(
        "automountServiceAccountToken",
        automount_service_account_token,
    );
    (object_meta(metadata), o)
}

/// `kubectl create role|clusterrole`: the rules (and a ClusterRole's aggregation rule).
fn rbac_role(
    metadata: Option<meta::ObjectMeta>,
    rules: Vec<rbac::PolicyRule>,
    aggregation: Option<rbac::AggregationRule>,
) -> Parts {
    let rules = rules
        .into_iter()
        .map(|r| {
            let rbac::PolicyRule {
                verbs,
                api_groups,
                resources,
                resource_names,
                non_resource_ur_ls,
            } = r;
            let mut o = Obj::default();
            // `verbs` and `apiGroups` are not omitempty in Go: an empty list is written.
            o.put("verbs", verbs);
            if !api_groups.is_empty() {
                o.put("apiGroups", api_groups);
            }
            o.strings("resources", resources);
            o.strings("resourceNames", resource_names);
            o.strings("nonResourceURLs", non_resource_ur_ls);
            o
        })
        .collect();
    let mut o = Obj::default();
    o.list("rules", rules);
    o.some(
        "aggregationRule",
        aggregation.map(|a| {
            let mut r = Obj::default();
            let selectors = a
                .cluster_role_selectors
                .into_iter()
                .map(label_selector)
                .collect();
            r.list("clusterRoleSelectors", selectors);
            r
        }),
    );
    (object_meta(metadata), o)
}

/// `kubectl create rolebinding|clusterrolebinding`.
fn rbac_binding(
    metadata: Option<meta::ObjectMeta>,
    subjects: Vec<rbac::Subject>,
    role_ref: Option<rbac::RoleRef>,
) -> Parts {
    let subjects = subjects
        .into_iter()
        .map(|s| {
            let rbac::Subject {
                kind,
                api_group,
                name,
                namespace,
            } = s;
            let mut o = Obj::default();
            o.str("kind", kind);
            o.str("apiGroup", api_group);
            o.str("name", name);
            o.str("namespace", namespace);
            o
        })
        .collect();
    let rbac::RoleRef {
        api_group,
        kind,
        name,
    } = role_ref.unwrap_or_default();
    let mut r = Obj::default();
    r.str("apiGroup", api_group);
    r.str("kind", kind);
    r.str("name", name);
    let mut o = Obj::default();
    o.list("subjects", subjects);
    o.obj("roleRef", r);
    (object_meta(metadata), o)
}

/// `kubectl create priorityclass`.
fn priority_class(p: scheduling::PriorityClass) -> Parts {
    let scheduling::PriorityClass {
        metadata,
        value,
        global_default,
        description,
        preemption_policy,
    } = p;
    let mut o = Obj::default();
    // `value` is a non-pointer int32 in Go but required: zero is written.
    o.put("value", value.unwrap_or(0));
    o.flag("globalDefault", global_default);
    o.str("description", description);
    o.ptr("preemptionPolicy", preemption_policy);
    (object_meta(metadata), o)
}

/// `kubectl create poddisruptionbudget` (the status is the server's).
fn disruption_budget(p: policy::PodDisruptionBudget) -> Parts {
    let policy::PodDisruptionBudget { metadata, spec, .. } = p;
    let mut o = Obj::default();
    if let Some(s) = spec {
        let policy::PodDisruptionBudgetSpec {
            min_available,
            selector,
            max_unavailable,
            unhealthy_pod_eviction_policy,
        } = s;
        let mut so = Obj::default();
        so.int_or_string_ptr("minAvailable", min_available);
        if let Some(sel) = selector {
            so.obj("selector", label_selector(sel));
        }
        so.int_or_string_ptr("maxUnavailable", max_unavailable);
        so.ptr("unhealthyPodEvictionPolicy", unhealthy_pod_eviction_policy);
        o.obj("spec", so);
    }
    (object_meta(metadata), o)
}

fn config_map(c: core::ConfigMap) -> Parts {
    let core::ConfigMap {
        metadata,
        immutable,
        data,
        binary_data,
    } = c;
    let mut o = Obj::default();
    o.map("data", data);
    o.bytes_map("binaryData", binary_data);
    o.ptr("immutable", immutable);
    (object_meta(metadata), o)
}

fn secret(s: core::Secret) -> Parts {
    let core::Secret {
        metadata,
        immutable,
        data,
        string_data,
        r#type,
    } = s;
    let mut o = Obj::default();
    o.bytes_map("data", data);
    o.map("stringData", string_data);
    o.str("type", r#type);
    o.ptr("immutable", immutable);
    (object_meta(metadata), o)
}

fn pod(cx: &mut Cx, p: core::Pod) -> Parts {
    let core::Pod {
        metadata,
        spec,
        status: _,
    } = p;
    let mut o = Obj::default();
    o.obj("spec", pod_spec(cx, "spec", spec.unwrap_or_default()));
    (object_meta(metadata), o)
}

fn deployment(cx: &mut Cx, d: apps::Deployment) -> Parts {
    let apps::Deployment {
        metadata,
        spec,
        status: _,
    } = d;
    let apps::DeploymentSpec {
        replicas,
        selector,
        template,
        strategy,
        min_ready_seconds,
        revision_history_limit,
        paused,
        progress_deadline_seconds,
    } = spec.unwrap_or_default();
    let mut s = Obj::default();
    s.ptr("replicas", replicas);
    s.some("selector", selector.map(label_selector));
    s.obj("template", pod_template(cx, "spec.template", template));
    s.obj("strategy", deployment_strategy(strategy));
    s.int("minReadySeconds", min_ready_seconds);
    s.ptr("revisionHistoryLimit", revision_history_limit);
    s.flag("paused", paused);
    s.ptr("progressDeadlineSeconds", progress_deadline_seconds);
    let mut o = Obj::default();
    o.obj("spec", s);
    (object_meta(metadata), o)
}

fn deployment_strategy(s: Option<apps::DeploymentStrategy>) -> Obj {
    let apps::DeploymentStrategy {
        r#type,
        rolling_update,
    } = s.unwrap_or_default();
    let mut o = Obj::default();
    o.str("type", r#type);
    o.some(
        "rollingUpdate",
        rolling_update.map(|r| {
            let apps::RollingUpdateDeployment {
                max_unavailable,
                max_surge,
            } = r;
            let mut o = Obj::default();
            o.int_or_string_ptr("maxUnavailable", max_unavailable);
            o.int_or_string_ptr("maxSurge", max_surge);
            o
        }),
    );
    o
}

fn replica_set(cx: &mut Cx, r: apps::ReplicaSet) -> Parts {
    let apps::ReplicaSet {
        metadata,
        spec,
        status: _,
    } = r;
    let apps::ReplicaSetSpec {
        replicas,
        min_ready_seconds,
        selector,
        template,
    } = spec.unwrap_or_default();
    let mut s = Obj::default();
    s.ptr("replicas", replicas);
    s.int("minReadySeconds", min_ready_seconds);
    s.some("selector", selector.map(label_selector));
    s.obj("template", pod_template(cx, "spec.template", template));
    let mut o = Obj::default();
    o.obj("spec", s);
    (object_meta(metadata), o)
}

fn job(cx: &mut Cx, j: batch::Job) -> Parts {
    let batch::Job {
        metadata,
        spec,
        status: _,
    } = j;
    let mut o = Obj::default();
    o.obj("spec", job_spec(cx, "spec", spec.unwrap_or_default()));
    (object_meta(metadata), o)
}

fn job_spec(cx: &mut Cx, path: &str, s: batch::JobSpec) -> Obj {
    let batch::JobSpec {
        parallelism,
        completions,
        active_deadline_seconds,
        pod_failure_policy,
        success_policy,
        backoff_limit,
        backoff_limit_per_index,
        max_failed_indexes,
        selector,
        manual_selector,
        template,
        ttl_seconds_after_finished,
        completion_mode,
        suspend,
        pod_replacement_policy,
        managed_by,
    } = s;
    cx.refuse(path, "podFailurePolicy", &pod_failure_policy);
    cx.refuse(path, "successPolicy", &success_policy);
    cx.refuse(path, "backoffLimitPerIndex", &backoff_limit_per_index);
    cx.refuse(path, "maxFailedIndexes", &max_failed_indexes);
    cx.refuse(path, "podReplacementPolicy", &pod_replacement_policy);
    cx.refuse(path, "managedBy", &managed_by);
    let mut o = Obj::default();
    o.ptr("parallelism", parallelism);
    o.ptr("completions", completions);
    o.ptr("activeDeadlineSeconds", active_deadline_seconds);
    o.ptr("backoffLimit", backoff_limit);
    o.some("selector", selector.map(label_selector));
    o.ptr("manualSelector", manual_selector);
    o.obj(
        "template",
        pod_template(cx, &join(path, "template"), template),
    );
    o.ptr("ttlSecondsAfterFinished", ttl_seconds_after_finished);
    o.ptr("completionMode", completion_mode);
    o.ptr("suspend", suspend);
    o
}

fn cron_job(cx: &mut Cx, c: batch::CronJob) -> Parts {
    let batch::CronJob {
        metadata,
        spec,
        status: _,
    } = c;
    let batch::CronJobSpec {
        schedule,
        time_zone,
        starting_deadline_seconds,
        concurrency_policy,
        suspend,
        job_template,
        successful_jobs_history_limit,
        failed_jobs_history_limit,
    } = spec.unwrap_or_default();
    let batch::JobTemplateSpec {
        metadata: tm,
        spec: ts,
    } = job_template.unwrap_or_default();
    let mut t = Obj::default();
    t.obj("metadata", object_meta(tm));
    t.obj(
        "spec",
        job_spec(cx, "spec.jobTemplate.spec", ts.unwrap_or_default()),
    );
    let mut s = Obj::default();
    s.str("schedule", schedule);
    s.ptr("timeZone", time_zone);
    s.ptr("startingDeadlineSeconds", starting_deadline_seconds);
    s.str("concurrencyPolicy", concurrency_policy);
    s.ptr("suspend", suspend);
    s.obj("jobTemplate", t);
    s.ptr("successfulJobsHistoryLimit", successful_jobs_history_limit);
    s.ptr("failedJobsHistoryLimit", failed_jobs_history_limit);
    let mut o = Obj::default();
    o.obj("spec", s);
    (object_meta(metadata), o)
}

fn service(s: core::Service) -> Parts {
    let core::Service {
        metadata,
        spec,
        status: _,
    } = s;
    let core::ServiceSpec {
        ports,
        selector,
        cluster_ip,
        cluster_ips,
        r#type,
        external_ips,
        session_affinity,
        load_balancer_ip,
        load_balancer_source_ranges,
        external_name,
        external_traffic_policy,
        health_check_node_port,
        publish_not_ready_addresses,
        session_affinity_config,
        ip_families,
        ip_family_policy,
        allocate_load_balancer_node_ports,
        load_balancer_class,
        internal_traffic_policy,
        traffic_distribution,
    } = spec.unwrap_or_default();
    let mut sp = Obj::default();
    let ports = ports
        .into_iter()
        .map(|p| {
            let core::ServicePort {
                name,
                protocol,
                app_protocol,
                port,
                target_port,
                node_port,
            } = p;
            let mut o = Obj::default();
            o.str("name", name);
            o.str("protocol", protocol);
            o.ptr("appProtocol", app_protocol);
            o.int("port", port);
            o.int_or_string("targetPort", target_port);
            o.int("nodePort", node_port);
            o
        })
        .collect();
    sp.list("ports", ports);
    sp.map("selector", selector);
    sp.str("clusterIP", cluster_ip);
    sp.strings("clusterIPs", cluster_ips);
    sp.str("type", r#type);
    sp.strings("externalIPs", external_ips);
    sp.str("sessionAffinity", session_affinity);
    sp.str("loadBalancerIP", load_balancer_ip);
    sp.strings("loadBalancerSourceRanges", load_balancer_source_ranges);
    sp.str("externalName", external_name);
    sp.str("externalTrafficPolicy", external_traffic_policy);
    sp.int("healthCheckNodePort", health_check_node_port);
    sp.flag("publishNotReadyAddresses", publish_not_ready_addresses);
    sp.some(
        "sessionAffinityConfig",
        session_affinity_config.map(|c| {
            let mut o = Obj::default();
            o.some(
                "clientIP",
                c.client_ip.map(|ip| {
                    let mut o = Obj::default();
                    o.ptr("timeoutSeconds", ip.timeout_seconds);
                    o
                }),
            );
            o
        }),
    );
    sp.strings("ipFamilies", ip_families);
    sp.ptr("ipFamilyPolicy", ip_family_policy);
    sp.ptr(
        "allocateLoadBalancerNodePorts",
        allocate_load_balancer_node_ports,
    );
    sp.ptr("loadBalancerClass", load_balancer_class);
    sp.ptr("internalTrafficPolicy", internal_traffic_policy);
    sp.ptr("trafficDistribution", traffic_distribution);
    let mut o = Obj::default();
    o.obj("spec", sp);
    (object_meta(metadata), o)
}

fn endpoint_slice(e: discovery::EndpointSlice) -> Parts {
    let discovery::EndpointSlice {
        metadata,
        address_type,
        endpoints,
        ports,
    } = e;
    let mut o = Obj::default();
    o.str("addressType", address_type);
    let endpoints = endpoints
        .into_iter()
        .map(|e| {
            let discovery::Endpoint {
                addresses,
                conditions,
                hostname,
                target_ref,
                deprecated_topology,
                node_name,
                zone,
                hints,
            } = e;
            let mut o = Obj::default();
            o.strings("addresses", addresses);
            let discovery::EndpointConditions {
                ready,
                serving,
                terminating,
            } = conditions.unwrap_or_default();
            let mut c = Obj::default();
            c.ptr("ready", ready);
            c.ptr("serving", serving);
            c.ptr("terminating", terminating);
            o.obj("conditions", c);
            o.ptr("hostname", hostname);
            o.some("targetRef", target_ref.map(object_reference));
            o.map("deprecatedTopology", deprecated_topology);
            o.ptr("nodeName", node_name);
            o.ptr("zone", zone);
            o.some(
                "hints",
                hints.map(|h| {
                    let discovery::EndpointHints {
                        for_zones,
                        for_nodes,
                    } = h;
                    let named = |name: Option<String>| {
                        let mut o = Obj::default();
                        o.str("name", name);
                        o
                    };
                    let mut o = Obj::default();
                    o.list(
                        "forZones",
                        for_zones.into_iter().map(|z| named(z.name)).collect(),
                    );
                    o.list(
                        "forNodes",
                        for_nodes.into_iter().map(|n| named(n.name)).collect(),
                    );
                    o
                }),
            );
            o
        })
        .collect();
    o.list("endpoints", endpoints);
    let ports = ports
        .into_iter()
        .map(|p| {
            let discovery::EndpointPort {
                name,
                protocol,
                port,
                app_protocol,
            } = p;
            let mut o = Obj::default();
            o.ptr("name", name);
            o.ptr("protocol", protocol);
            o.ptr("port", port);
            o.ptr("appProtocol", app_protocol);
            o
        })
        .collect();
    o.list("ports", ports);
    (object_meta(metadata), o)
}

fn ingress(cx: &mut Cx, i: networking::Ingress) -> Parts {
    let networking::Ingress {
        metadata,
        spec,
        status: _,
    } = i;
    let networking::IngressSpec {
        ingress_class_name,
        default_backend,
        tls,
        rules,
    } = spec.unwrap_or_default();
    let mut s = Obj::default();
    s.ptr("ingressClassName", ingress_class_name);
    s.some(
        "defaultBackend",
        default_backend.map(|b| ingress_backend(cx, "spec.defaultBackend", b)),
    );
    let tls = tls
        .into_iter()
        .map(|t| {
            let networking::IngressTls { hosts, secret_name } = t;
            let mut o = Obj::default();
            o.strings("hosts", hosts);
            o.str("secretName", secret_name);
            o
        })
        .collect();
    s.list("tls", tls);
    let rules = rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let networking::IngressRule {
                host,
                ingress_rule_value,
            } = r;
            let mut o = Obj::default();
            o.str("host", host);
            let networking::IngressRuleValue { http } = ingress_rule_value.unwrap_or_default();
            o.some(
                "http",
                http.map(|h| {
                    let networking::HttpIngressRuleValue { paths } = h;
                    let paths = paths
                        .into_iter()
                        .enumerate()
                        .map(|(j, p)| {
                            let networking::HttpIngressPath {
                                path,
                                path_type,
                                backend,
                            } = p;
                            let mut o = Obj::default();
                            o.str("path", path);
                            o.ptr("pathType", path_type);
                            let at = format!("spec.rules[{i}].http.paths[{j}].backend");
                            o.obj(
                                "backend",
                                ingress_backend(cx, &at, backend.unwrap_or_default()),
                            );
                            o
                        })
                        .collect();
                    let mut o = Obj::default();
                    o.list("paths", paths);
                    o
                }),
            );
            o
        })
        .collect();
    s.list("rules", rules);
    let mut o = Obj::default();
    o.obj("spec", s);
    (object_meta(metadata), o)
}

fn ingress_backend(cx: &mut Cx, path: &str, b: networking::IngressBackend) -> Obj {
    let networking::IngressBackend { service, resource } = b;
    cx.refuse(path, "resource", &resource);
    let mut o = Obj::default();
    o.some(
        "service",
        service.map(|s| {
            let networking::IngressServiceBackend { name, port } = s;
            let networking::ServiceBackendPort {
                name: port_name,
                number,
            } = port.unwrap_or_default();
            let mut p = Obj::default();
            p.str("name", port_name);
            p.int("number", number);
            let mut o = Obj::default();
            o.str("name", name);
            o.obj("port", p);
            o
        }),
    );
    o
}

fn ingress_class(cx: &mut Cx, c: networking::IngressClass) -> Parts {
    let networking::IngressClass { metadata, spec } = c;
    let networking::IngressClassSpec {
        controller,
        parameters,
    } = spec.unwrap_or_default();
    cx.refuse("spec", "parameters", &parameters);
    let mut s = Obj::default();
    s.str("controller", controller);
    let mut o = Obj::default();
    o.obj("spec", s);
    (object_meta(metadata), o)
}

fn event(e: core::Event) -> Parts {
    let core::Event {
        metadata,
        involved_object,
        reason,
        message,
        source,
        first_timestamp,
        last_timestamp,
        count,
        r#type,
        event_time,
        series,
        action,
        related,
        reporting_component,
        reporting_instance,
    } = e;
    let mut o = Obj::default();
    o.obj(
        "involvedObject",
        object_reference(involved_object.unwrap_or_default()),
    );
    o.str("reason", reason);
    o.str("message", message);
    let core::EventSource { component, host } = source.unwrap_or_default();
    let mut src = Obj::default();
    src.str("component", component);
    src.str("host", host);
    o.obj("source", src);
    o.time("firstTimestamp", first_timestamp);
    o.time("lastTimestamp", last_timestamp);
    o.int("count", count);
    o.str("type", r#type);
    o.micro_time("eventTime", event_time);
    o.some(
        "series",
        series.map(|s| {
            let core::EventSeries {
                count,
                last_observed_time,
            } = s;
            let mut o = Obj::default();
            o.int("count", count);
            o.micro_time("lastObservedTime", last_observed_time);
            o
        }),
    );
    o.str("action", action);
    o.some("related", related.map(object_reference));
    o.str("reportingComponent", reporting_component);
    o.str("reportingInstance", reporting_instance);
    (object_meta(metadata), o)
}

// ---------------------------------------------------------------------------------------------
// Pods.

fn pod_template(cx: &mut Cx, path: &str, t: Option<core::PodTemplateSpec>) -> Obj {
    let core::PodTemplateSpec { metadata, spec } = t.unwrap_or_default();
    let mut o = Obj::default();
    o.obj("metadata", object_meta(metadata));
    o.obj(
        "spec",
        pod_spec(cx, &join(path, "spec"), spec.unwrap_or_default()),
    );
    o
}

fn pod_spec(cx: &mut Cx, path: &str, s: core::PodSpec) -> Obj {
    let core::PodSpec {
        volumes,
        init_containers,
        containers,
        ephemeral_containers,
        restart_policy,
        termination_grace_period_seconds,
        active_deadline_seconds,
        dns_policy,
        node_selector,
        service_account_name,
        service_account,
        automount_service_account_token,
        node_name,
        host_network,
        host_pid,
        host_ipc,
        share_process_namespace,
        security_context,
        image_pull_secrets,
        hostname,
        subdomain,
        affinity,
        scheduler_name,
        tolerations,
        host_aliases,
        priority_class_name,
        priority,
        dns_config,
        readiness_gates,
        runtime_class_name,
        enable_service_links,
        preemption_policy,
        overhead,
        topology_spread_constraints,
        set_hostname_as_fqdn,
        os,
        host_users,
        scheduling_gates,
        resource_claims,
        resources,
        hostname_override,
        workload_ref,
    } = s;
    let mut o = Obj::default();
    let volumes = volumes
        .into_iter()
        .enumerate()
        .map(|(i, v)| volume(cx, &format!("{path}.volumes[{i}]"), v))
        .collect();
    o.list("volumes", volumes);
    let inits = init_containers
        .into_iter()
        .enumerate()
        .map(|(i, c)| container(cx, &format!("{path}.initContainers[{i}]"), c))
        .collect();
    o.list("initContainers", inits);
    let containers = containers
        .into_iter()
        .enumerate()
        .map(|(i, c)| container(cx, &format!("{path}.containers[{i}]"), c))
        .collect();
    o.list("containers", containers);
    cx.refuse(path, "ephemeralContainers", &ephemeral_containers);
    o.str("restartPolicy", restart_policy);
    o.ptr(
        "terminationGracePeriodSeconds",
        termination_grace_period_seconds,
    );
    o.ptr("activeDeadlineSeconds", active_deadline_seconds);
    o.str("dnsPolicy", dns_policy);
    o.map("nodeSelector", node_selector);
    o.str("serviceAccountName", service_account_name);
    o.str("serviceAccount", service_account);
    o.ptr(
        "automountServiceAccountToken",
        automount_service_account_token,
    );
    o.str("nodeName", node_name);
    o.flag("hostNetwork", host_network);
    o.flag("hostPID", host_pid);
    o.flag("hostIPC", host_ipc);
    o.ptr("shareProcessNamespace", share_process_namespace);
    cx.refuse(path, "securityContext", &security_context);
    let secrets = image_pull_secrets
        .into_iter()
        .map(|r| {
            let mut o = Obj::default();
            o.str("name", r.name);
            o
        })
        .collect();
    o.list("imagePullSecrets", secrets);
    o.str("hostname", hostname);
    o.str("subdomain", subdomain);
    cx.refuse(path, "affinity", &affinity);
    o.str("schedulerName", scheduler_name);
    cx.refuse(path, "tolerations", &tolerations);
    cx.refuse(path, "hostAliases", &host_aliases);
    o.str("priorityClassName", priority_class_name);
    o.ptr("priority", priority);
    cx.refuse(path, "dnsConfig", &dns_config);
    cx.refuse(path, "readinessGates", &readiness_gates);
    o.ptr("runtimeClassName", runtime_class_name);
    o.ptr("enableServiceLinks", enable_service_links);
    o.ptr("preemptionPolicy", preemption_policy);
    o.quantities("overhead", overhead);
    cx.refuse(
        path,
        "topologySpreadConstraints",
        &topology_spread_constraints,
    );
    o.ptr("setHostnameAsFQDN", set_hostname_as_fqdn);
    cx.refuse(path, "os", &os);
    o.ptr("hostUsers", host_users);
    cx.refuse(path, "schedulingGates", &scheduling_gates);
    cx.refuse(path, "resourceClaims", &resource_claims);
    cx.refuse(path, "resources", &resources);
    o.ptr("hostnameOverride", hostname_override);
    cx.refuse(path, "workloadRef", &workload_ref);
    o
}

fn container(cx: &mut Cx, path: &str, c: core::Container) -> Obj {
    let core::Container {
        name,
        image,
        command,
        args,
        working_dir,
        ports,
        env_from,
        env,
        resources,
        resize_policy,
        restart_policy,
        restart_policy_rules,
        volume_mounts,
        volume_devices,
        liveness_probe,
        readiness_probe,
        startup_probe,
        lifecycle,
        termination_message_path,
        termination_message_policy,
        image_pull_policy,
        security_context,
        stdin,
        stdin_once,
        tty,
    } = c;
    let mut o = Obj::default();
    o.str("name", name);
    o.str("image", image);
    o.strings("command", command);
    o.strings("args", args);
    o.str("workingDir", working_dir);
    let ports = ports
        .into_iter()
        .map(|p| {
            let core::ContainerPort {
                name,
                host_port,
                container_port,
                protocol,
                host_ip,
            } = p;
            let mut o = Obj::default();
            o.str("name", name);
            o.int("hostPort", host_port);
            o.int("containerPort", container_port);
            o.str("protocol", protocol);
            o.str("hostIP", host_ip);
            o
        })
        .collect();
    o.list("ports", ports);
    let env_from = env_from
        .into_iter()
        .map(|e| {
            let core::EnvFromSource {
                prefix,
                config_map_ref,
                secret_ref,
            } = e;
            let mut o = Obj::default();
            o.str("prefix", prefix);
            o.some(
                "configMapRef",
                config_map_ref.map(|r| {
                    let core::ConfigMapEnvSource {
                        local_object_reference,
                        optional,
                    } = r;
                    named_optional(local_name(local_object_reference), optional)
                }),
            );
            o.some(
                "secretRef",
                secret_ref.map(|r| {
                    let core::SecretEnvSource {
                        local_object_reference,
                        optional,
                    } = r;
                    named_optional(local_name(local_object_reference), optional)
                }),
            );
            o
        })
        .collect();
    o.list("envFrom", env_from);
    let env = env
        .into_iter()
        .enumerate()
        .map(|(i, e)| env_var(cx, &format!("{path}.env[{i}]"), e))
        .collect();
    o.list("env", env);
    let core::ResourceRequirements {
        limits,
        requests,
        claims,
    } = resources.unwrap_or_default();
    cx.refuse(&join(path, "resources"), "claims", &claims);
    let mut r = Obj::default();
    r.quantities("limits", limits);
    r.quantities("requests", requests);
    o.obj("resources", r);
    cx.refuse(path, "resizePolicy", &resize_policy);
    o.ptr("restartPolicy", restart_policy);
    cx.refuse(path, "restartPolicyRules", &restart_policy_rules);
    let mounts = volume_mounts
        .into_iter()
        .map(|m| {
            let core::VolumeMount {
                name,
                read_only,
                recursive_read_only,
                mount_path,
                sub_path,
                mount_propagation,
                sub_path_expr,
            } = m;
            let mut o = Obj::default();
            o.str("name", name);
            o.flag("readOnly", read_only);
            o.ptr("recursiveReadOnly", recursive_read_only);
            o.str("mountPath", mount_path);
            o.str("subPath", sub_path);
            o.ptr("mountPropagation", mount_propagation);
            o.str("subPathExpr", sub_path_expr);
            o
        })
        .collect();
    o.list("volumeMounts", mounts);
    cx.refuse(path, "volumeDevices", &volume_devices);
    for (key, p) in [
        ("livenessProbe", liveness_probe),
        ("readinessProbe", readiness_probe),
        ("startupProbe", startup_probe),
    ] {
        let at = join(path, key);
        o.some(key, p.map(|p| probe(cx, &at, p)));
    }
    cx.refuse(path, "lifecycle", &lifecycle);
    o.str("terminationMessagePath", termination_message_path);
    o.str("terminationMessagePolicy", termination_message_policy);
    o.str("imagePullPolicy", image_pull_policy);
    o.some(
        "securityContext",
        security_context.map(|s| security(cx, &join(path, "securityContext"), s)),
    );
    o.flag("stdin", stdin);
    o.flag("stdinOnce", stdin_once);
    o.flag("tty", tty);
    o
}

fn named_optional(name: Option<String>, optional: Option<bool>) -> Obj {
    let mut o = Obj::default();
    o.str("name", name);
    o.ptr("optional", optional);
    o
}

fn env_var(cx: &mut Cx, path: &str, e: core::EnvVar) -> Obj {
    let core::EnvVar {
        name,
        value,
        value_from,
    } = e;
    let mut o = Obj::default();
    o.str("name", name);
    o.str("value", value);
    o.some(
        "valueFrom",
        value_from.map(|v| {
            let core::EnvVarSource {
                field_ref,
                resource_field_ref,
                config_map_key_ref,
                secret_key_ref,
                file_key_ref,
            } = v;
            let at = join(path, "valueFrom");
            cx.refuse(&at, "resourceFieldRef", &resource_field_ref);
            cx.refuse(&at, "fileKeyRef", &file_key_ref);
            let mut o = Obj::default();
            o.some(
                "fieldRef",
                field_ref.map(|f| {
                    let core::ObjectFieldSelector {
                        api_version,
                        field_path,
                    } = f;
                    let mut o = Obj::default();
                    o.str("apiVersion", api_version);
                    o.str("fieldPath", field_path);
                    o
                }),
            );
            o.some(
                "configMapKeyRef",
                config_map_key_ref.map(|k| {
                    let core::ConfigMapKeySelector {
                        local_object_reference,
                        key,
                        optional,
                    } = k;
                    let mut o = named_optional(local_name(local_object_reference), optional);
                    o.str("key", key);
                    o
                }),
            );
            o.some(
                "secretKeyRef",
                secret_key_ref.map(|k| {
                    let core::SecretKeySelector {
                        local_object_reference,
                        key,
                        optional,
                    } = k;
                    let mut o = named_optional(local_name(local_object_reference), optional);
                    o.str("key", key);
                    o
                }),
            );
            o
        }),
    );
    o
}

fn security(cx: &mut Cx, path: &str, s: core::SecurityContext) -> Obj {
    let core::SecurityContext {
        capabilities,
        privileged,
        se_linux_options,
        windows_options,
        run_as_user,
        run_as_group,
        run_as_non_root,
        read_only_root_filesystem,
        allow_privilege_escalation,
        proc_mount,
        seccomp_profile,
        app_armor_profile,
    } = s;
    cx.refuse(path, "capabilities", &capabilities);
    cx.refuse(path, "seLinuxOptions", &se_linux_options);
    cx.refuse(path, "windowsOptions", &windows_options);
    cx.refuse(path, "seccompProfile", &seccomp_profile);
    cx.refuse(path, "appArmorProfile", &app_armor_profile);
    let mut o = Obj::default();
    o.ptr("privileged", privileged);
    o.ptr("runAsUser", run_as_user);
    o.ptr("runAsGroup", run_as_group);
    o.ptr("runAsNonRoot", run_as_non_root);
    o.ptr("readOnlyRootFilesystem", read_only_root_filesystem);
    o.ptr("allowPrivilegeEscalation", allow_privilege_escalation);
    o.ptr("procMount", proc_mount);
    o
}

fn probe(cx: &mut Cx, path: &str, p: core::Probe) -> Obj {
    let core::Probe {
        handler,
        initial_delay_seconds,
        timeout_seconds,
        period_seconds,
        success_threshold,
        failure_threshold,
        termination_grace_period_seconds,
    } = p;
    let core::ProbeHandler {
        exec,
        http_get,
        tcp_socket,
        grpc,
    } = handler.unwrap_or_default();
    cx.refuse(path, "grpc", &grpc);
    let mut o = Obj::default();
    o.some(
        "exec",
        exec.map(|e| {
            let mut o = Obj::default();
            o.strings("command", e.command);
            o
        }),
    );
    o.some(
        "httpGet",
        http_get.map(|h| {
            let core::HttpGetAction {
                path,
                port,
                host,
                scheme,
                http_headers,
            } = h;
            let mut o = Obj::default();
            o.str("path", path);
            o.int_or_string("port", port);
            o.str("host", host);
            o.str("scheme", scheme);
            let headers = http_headers
                .into_iter()
                .map(|h| {
                    let core::HttpHeader { name, value } = h;
                    let mut o = Obj::default();
                    o.str("name", name);
                    o.str("value", value);
                    o
                })
                .collect();
            o.list("httpHeaders", headers);
            o
        }),
    );
    o.some(
        "tcpSocket",
        tcp_socket.map(|t| {
            let core::TcpSocketAction { port, host } = t;
            let mut o = Obj::default();
            o.int_or_string("port", port);
            o.str("host", host);
            o
        }),
    );
    o.int("initialDelaySeconds", initial_delay_seconds);
    o.int("timeoutSeconds", timeout_seconds);
    o.int("periodSeconds", period_seconds);
    o.int("successThreshold", success_threshold);
    o.int("failureThreshold", failure_threshold);
    o.ptr(
        "terminationGracePeriodSeconds",
        termination_grace_period_seconds,
    );
    o
}

fn key_to_paths(items: Vec<core::KeyToPath>) -> Vec<Obj> {
    items
        .into_iter()
        .map(|k| {
            let core::KeyToPath { key, path, mode } = k;
            let mut o = Obj::default();
            o.str("key", key);
            o.str("path", path);
            o.ptr("mode", mode);
            o
        })
        .collect()
}

fn volume(cx: &mut Cx, path: &str, v: core::Volume) -> Obj {
    let core::Volume {
        name,
        volume_source,
    } = v;
    let core::VolumeSource {
        host_path,
        empty_dir,
        gce_persistent_disk,
        aws_elastic_block_store,
        git_repo,
        secret,
        nfs,
        iscsi,
        glusterfs,
        persistent_volume_claim,
        rbd,
        flex_volume,
        cinder,
        cephfs,
        flocker,
        downward_api,
        fc,
        azure_file,
        config_map,
        vsphere_volume,
        quobyte,
        azure_disk,
        photon_persistent_disk,
        projected,
        portworx_volume,
        scale_io,
        storageos,
        csi,
        ephemeral,
        image,
    } = volume_source.unwrap_or_default();
    let mut o = Obj::default();
    o.str("name", name);
    o.some(
        "hostPath",
        host_path.map(|h| {
            let core::HostPathVolumeSource { path, r#type } = h;
            let mut o = Obj::default();
            o.str("path", path);
            o.ptr("type", r#type);
            o
        }),
    );
    o.some(
        "emptyDir",
        empty_dir.map(|e| {
            let core::EmptyDirVolumeSource { medium, size_limit } = e;
            let mut o = Obj::default();
            o.str("medium", medium);
            o.quantity("sizeLimit", size_limit);
            o
        }),
    );
    o.some(
        "secret",
        secret.map(|s| {
            let core::SecretVolumeSource {
                secret_name,
                items,
                default_mode,
                optional,
            } = s;
            let mut o = Obj::default();
            o.str("secretName", secret_name);
            o.list("items", key_to_paths(items));
            o.ptr("defaultMode", default_mode);
            o.ptr("optional", optional);
            o
        }),
    );
    o.some(
        "configMap",
        config_map.map(|c| {
            let core::ConfigMapVolumeSource {
                local_object_reference,
                items,
                default_mode,
                optional,
            } = c;
            let mut o = named_optional(local_name(local_object_reference), optional);
            o.list("items", key_to_paths(items));
            o.ptr("defaultMode", default_mode);
            o
        }),
    );
    cx.refuse(path, "gcePersistentDisk", &gce_persistent_disk);
    cx.refuse(path, "awsElasticBlockStore", &aws_elastic_block_store);
    cx.refuse(path, "gitRepo", &git_repo);
    cx.refuse(path, "nfs", &nfs);
    cx.refuse(path, "iscsi", &iscsi);
    cx.refuse(path, "glusterfs", &glusterfs);
    cx.refuse(path, "persistentVolumeClaim", &persistent_volume_claim);
    cx.refuse(path, "rbd", &rbd);
    cx.refuse(path, "flexVolume", &flex_volume);
    cx.refuse(path, "cinder", &cinder);
    cx.refuse(path, "cephfs", &cephfs);
    cx.refuse(path, "flocker", &flocker);
    cx.refuse(path, "downwardAPI", &downward_api);
    cx.refuse(path, "fc", &fc);
    cx.refuse(path, "azureFile", &azure_file);
    cx.refuse(path, "vsphereVolume", &vsphere_volume);
    cx.refuse(path, "quobyte", &quobyte);
    cx.refuse(path, "azureDisk", &azure_disk);
    cx.refuse(path, "photonPersistentDisk", &photon_persistent_disk);
    cx.refuse(path, "projected", &projected);
    cx.refuse(path, "portworxVolume", &portworx_volume);
    cx.refuse(path, "scaleIO", &scale_io);
    cx.refuse(path, "storageos", &storageos);
    cx.refuse(path, "csi", &csi);
    cx.refuse(path, "ephemeral", &ephemeral);
    cx.refuse(path, "image", &image);
    o
}

#[cfg(test)]
mod tests {
    //! The fixtures in `controller/testdata/protobuf/` are real bodies: `NAME.bin` is what
    //! kubectl 1.32 POSTed for a `kubectl create …` command (captured by a logging HTTP
    //! server), `NAME.json` what the same command prints with `--dry-run=client -o json`.

    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> (Vec<u8>, Value) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/protobuf");
        let bin = std::fs::read(format!("{dir}/{name}.bin")).unwrap();
        let json = std::fs::read(format!("{dir}/{name}.json")).unwrap();
        (bin, serde_json::from_slice(&json).unwrap())
    }

    /// kubectl's JSON without what the decoder leaves out on purpose: `status`, nulls
    /// (`creationTimestamp: null`) and empty non-pointer structs (`resources: {}`).
    fn without_zero_values(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| k != "status")
                    .map(|(k, v)| (k, without_zero_values(v)))
                    .filter(|(_, v)| !v.is_null() && v != &json!({}))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(without_zero_values).collect())
            }
            v => v,
        }
    }

    #[test]
    fn kubectl_generators_decode_to_what_they_print_as_json() {
        for name in [
            "configmap",
            "configmap-file",
            "configmap-env",
            "configmap-bin",
            "secret-generic",
            "secret-docker",
            "deployment",
            "deployment-full",
            "deployment-multi",
            "deployment-port",
            "namespace",
            "svc-clusterip",
            "svc-headless",
            "svc-nodeport",
            "svc-lb",
            "svc-extname",
            "ingress",
        ] {
            let (bin, printed) = fixture(name);
            let decoded = decode(&bin).unwrap_or_else(|e| panic!("{name}: {}", e.message));
            assert_eq!(decoded, without_zero_values(printed), "{name}");
            // What is decoded passes validation as the JSON does; skiff has no ExternalName
            // Services, and says so by the field's name either way.
            let mut obj = decoded;
            crate::model::defaults::apply(&mut obj);
            let verdict = crate::model::validate::validate(&obj);
            if name == "svc-extname" {
                assert_eq!(verdict.unwrap_err()[0].field, "spec.externalName");
            } else {
                verdict.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
        }
    }

    #[test]
    fn zero_values_are_dropped_but_zero_pointers_kept() {
        // `--replicas=0`: a *int32 set to 0 stays; minReadySeconds, paused, the ObjectMeta
        // strings Go wrote empty, and the zero creationTimestamp do not appear.
        let (bin, _) = fixture("deployment-full");
        let d = decode(&bin).unwrap();
        assert_eq!(d["spec"]["replicas"], json!(0));
        assert!(d["spec"].get("minReadySeconds").is_none());
        assert!(d["spec"].get("paused").is_none());
        assert!(d["spec"].get("strategy").is_none());
        assert_eq!(
            d["metadata"],
            json!({"name": "web2", "labels": {"app": "web2"}})
        );
    }

    #[test]
    fn secret_and_binary_data_become_base64() {
        let (bin, _) = fixture("secret-generic");
        let s = decode(&bin).unwrap();
        assert_eq!(s["data"]["password"], json!("aHVudGVyMg=="));
        assert_eq!(s["type"], json!("Opaque"));
        let (bin, _) = fixture("configmap-bin");
        let c = decode(&bin).unwrap();
        assert_eq!(c["binaryData"]["bin"], json!("AP/+IGJpbmFyeQE="));
        assert_eq!(c["data"]["text"], json!("hi"));
    }

    #[test]
    fn int_or_string_ports() {
        let (bin, _) = fixture("svc-lb");
        let s = decode(&bin).unwrap();
        assert_eq!(s["spec"]["ports"][0]["port"], json!(443));
        assert_eq!(s["spec"]["ports"][0]["targetPort"], json!("https"));
        let (bin, _) = fixture("svc-clusterip");
        let s = decode(&bin).unwrap();
        assert_eq!(s["spec"]["ports"][0]["targetPort"], json!(8080));
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn named(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        })
    }

    #[test]
    fn kinds_not_served_are_415_naming_the_kind() {
        let body = envelope("v1", "LimitRange", vec![]);
        let e = decode(&body).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("\"LimitRange\""), "{}", e.message);
        // A served kind under another version is not decoded either.
        let e = decode(&envelope("extensions/v1beta1", "Deployment", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        // Served kinds this mapping does not cover: 415 naming the kind, and not listed as
        // decoded.
        let e = decode(&envelope("v1", "PersistentVolumeClaim", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(
            e.message.contains("\"PersistentVolumeClaim\""),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains("v1 PersistentVolumeClaim,"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bodies_that_are_not_kubernetes_protobuf_are_400() {
        assert_eq!(decode(b"{\"kind\":\"Pod\"}").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\0\xff\xff").unwrap_err().code, 400);
        let bad = envelope("v1", "ConfigMap", vec![0x0a, 0x05, 0x01]);
        let e = decode(&bad).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("ConfigMap"), "{}", e.message);
    }

    #[test]
    fn unsupported_structures_are_refused_by_path() {
        let pod = core::Pod {
            metadata: named("p"),
            spec: Some(core::PodSpec {
                containers: vec![core::Container {
                    name: Some("c".into()),
                    image: Some("busybox".into()),
                    lifecycle: Some(Default::default()),
                    ..Default::default()
                }],
                affinity: Some(Default::default()),
                ..Default::default()
            }),
            status: None,
        };
        let e = decode(&envelope("v1", "Pod", pod.encode_to_vec())).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("spec.containers[0].lifecycle: field is not supported by skiff"),
            "{}",
            e.message
        );
        assert!(e.message.contains("spec.affinity"), "{}", e.message);
    }

    #[test]
    fn a_pod_with_what_skiff_supports_decodes_whole() {
        let port = |p: i32| IntOrString {
            r#type: Some(0),
            int_val: Some(p),
            str_val: Some(String::new()),
        };
        let pod = core::Pod {
            metadata: Some(meta::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                labels: [("app".to_string(), "p".to_string())].into(),
                creation_timestamp: Some(meta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            spec: Some(core::PodSpec {
                containers: vec![core::Container {
                    name: Some("c".into()),
                    image: Some("busybox".into()),
                    env: vec![core::EnvVar {
                        name: Some("K".into()),
                        value: None,
                        value_from: Some(core::EnvVarSource {
                            secret_key_ref: Some(core::SecretKeySelector {
                                local_object_reference: Some(core::LocalObjectReference {
                                    name: Some("s".into()),
                                }),
                                key: Some("k".into()),
                                optional: Some(false),
                            }),
                            ..Default::default()
                        }),
                    }],
                    resources: Some(core::ResourceRequirements {
                        limits: [(
                            "memory".to_string(),
                            Quantity {
                                string: Some("64Mi".into()),
                            },
                        )]
                        .into(),
                        ..Default::default()
                    }),
                    readiness_probe: Some(core::Probe {
                        handler: Some(core::ProbeHandler {
                            http_get: Some(core::HttpGetAction {
                                path: Some("/".into()),
                                port: Some(port(8080)),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        period_seconds: Some(5),
                        initial_delay_seconds: Some(0),
                        ..Default::default()
                    }),
                    volume_mounts: vec![core::VolumeMount {
                        name: Some("scratch".into()),
                        mount_path: Some("/scratch".into()),
                        read_only: Some(false),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                volumes: vec![core::Volume {
                    name: Some("scratch".into()),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(Default::default()),
                        ..Default::default()
                    }),
                }],
                termination_grace_period_seconds: Some(0),
                host_network: Some(false),
                ..Default::default()
            }),
            status: None,
        };
        let decoded = decode(&envelope("v1", "Pod", pod.encode_to_vec())).unwrap();
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "p",
                    "namespace": "default",
                    "labels": {"app": "p"},
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                },
                "spec": {
                    "containers": [{
                        "name": "c",
                        "image": "busybox",
                        "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": false}}}],
                        "resources": {"limits": {"memory": "64Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5},
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                    }],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "terminationGracePeriodSeconds": 0,
                },
            })
        );
        crate::model::validate::validate(&decoded).unwrap();
    }

    #[test]
    fn micro_time_keeps_microseconds() {
        assert_eq!(
            timestamp(Some(1_700_000_000), Some(123_456_789), true).unwrap(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(timestamp(None, None, false), None);
    }
}
