//! Validation of declared objects, before anything is stored.
//!
//! Three layers, each naming the field it rejects:
//! 1. **Kubernetes schema**: the object must deserialize into its `k8s-openapi` type (types,
//!    enums of shape), and every field must be one Kubernetes knows — found by serializing the
//!    typed value back and looking for what got lost ("unknown field").
//! 2. **skiff's support**: a field Kubernetes knows but skiff does not implement is rejected by
//!    name ("not supported by skiff"), never silently ignored. The allowlist (`allow.rs`) is the
//!    one place that says what skiff implements.
//! 3. **Semantics** (`semantics.rs`): names, selectors matching template labels, unique
//!    container names, ranges.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::model::kinds;

mod allow;
pub mod rbac;
mod semantics;
mod statefulset;
pub mod storage;

use allow::allowlist;
use semantics::semantics;
pub use semantics::{is_dns_label, is_dns_subdomain};

/// One rejected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

pub(crate) fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates one declared object. `status`, if present, must already be removed.
pub fn validate(obj: &Value) -> Result<(), Vec<FieldError>> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return Err(vec![err("kind", "is required")]);
    }
    if api_version.is_empty() {
        return Err(vec![err("apiVersion", "is required")]);
    }
    let Some(info) = kinds::by_kind(kind) else {
        return Err(vec![err(
            "kind",
            format!(
                "unknown kind {kind:?} (apiVersion {api_version:?}); skiff serves {}",
                kinds::KINDS
                    .iter()
                    .map(|k| k.kind)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]);
    };
    if info.api_version != api_version {
        return Err(vec![err(
            "apiVersion",
            format!(
                "{kind} is served as apiVersion {:?}, not {api_version:?}",
                info.api_version
            ),
        )]);
    }
    let roundtrip = typed_roundtrip(kind, obj)
        .expect("every served kind has a type")
        .map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    unknown_fields(obj, &roundtrip, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    allowlist(kind).check(obj, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    semantics(obj, info.namespaced, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates a change of an existing object (`new` already passed [`validate`]): the fields
/// Kubernetes makes immutable stay as they are.
pub fn validate_update(old: &Value, new: &Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    storage::update(old, new, &mut errors);
    statefulset::update(old, new, &mut errors);
    rbac::update(old, new, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The object with every field Kubernetes does not know removed (what the API server keeps
/// when asked for `fieldValidation=Ignore`).
pub fn known_fields(obj: &Value) -> Result<Value, FieldError> {
    typed_roundtrip(obj["kind"].as_str().unwrap_or_default(), obj)
        .unwrap_or_else(|| Ok(obj.clone()))
}

/// `obj` through its kind's `k8s-openapi` type and back (`None` for a kind skiff does not
/// serve): the one table of the kinds' types.
fn typed_roundtrip(kind: &str, obj: &Value) -> Option<Result<Value, FieldError>> {
    use k8s_openapi::api::{apps, core, discovery, networking, rbac, storage};
    Some(match kind {
        "Namespace" => roundtrip::<core::v1::Namespace>(obj),
        "ConfigMap" => roundtrip::<core::v1::ConfigMap>(obj),
        "Secret" => roundtrip::<core::v1::Secret>(obj),
        "Pod" => roundtrip::<core::v1::Pod>(obj),
        "Deployment" => roundtrip::<apps::v1::Deployment>(obj),
        "ReplicaSet" => roundtrip::<apps::v1::ReplicaSet>(obj),
        "StatefulSet" => roundtrip::<apps::v1::StatefulSet>(obj),
        "ControllerRevision" => roundtrip::<apps::v1::ControllerRevision>(obj),
        "Event" => roundtrip::<core::v1::Event>(obj),
        "Service" => roundtrip::<core::v1::Service>(obj),
        "EndpointSlice" => roundtrip::<discovery::v1::EndpointSlice>(obj),
        "Ingress" => roundtrip::<networking::v1::Ingress>(obj),
        "IngressClass" => roundtrip::<networking::v1::IngressClass>(obj),
        "PersistentVolumeClaim" => roundtrip::<core::v1::PersistentVolumeClaim>(obj),
        "PersistentVolume" => roundtrip::<core::v1::PersistentVolume>(obj),
        "StorageClass" => roundtrip::<storage::v1::StorageClass>(obj),
        "ServiceAccount" => roundtrip::<core::v1::ServiceAccount>(obj),
        "Role" => roundtrip::<rbac::v1::Role>(obj),
        "ClusterRole" => roundtrip::<rbac::v1::ClusterRole>(obj),
        "RoleBinding" => roundtrip::<rbac::v1::RoleBinding>(obj),
        "ClusterRoleBinding" => roundtrip::<rbac::v1::ClusterRoleBinding>(obj),
        _ => return None,
    })
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, FieldError> {
    let typed: T = serde_path_to_error::deserialize(obj.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        err(path, e.into_inner().to_string())
    })?;
    Ok(serde_json::to_value(typed).expect("k8s-openapi types serialize"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown_fields(orig: &Value, known: &Value, path: &str, out: &mut Vec<FieldError>) {
    match (orig, known) {
        (Value::Object(o), Value::Object(k)) => {
            for (key, v) in o {
                if v.is_null() {
                    continue;
                }
                match k.get(key) {
                    None => out.push(err(join(path, key), format!("unknown field {key:?}"))),
                    Some(kv) => unknown_fields(v, kv, &join(path, key), out),
                }
            }
        }
        (Value::Array(o), Value::Array(k)) => {
            for (i, (v, kv)) in o.iter().zip(k).enumerate() {
                unknown_fields(v, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
          "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web"}},
              "spec":{"hostNetwork":true,"containers":[{"name":"web","image":"demo","args":["a"],
                "ports":[{"containerPort":8080}],"env":[{"name":"A","value":"b"}]}]}}}})
    }

    #[test]
    fn a_supported_deployment_passes() {
        validate(&deployment()).unwrap();
    }

    #[test]
    fn unknown_fields_are_named() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["bogus"] = json!(1);
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.spec.containers[0].bogus");
        assert!(e[0].message.contains("unknown field"), "{}", e[0]);
    }

    #[test]
    fn empty_values_of_unsupported_fields_say_nothing() {
        let mut d = deployment();
        let pod = &mut d["spec"]["template"]["spec"];
        pod["securityContext"] = json!({});
        pod["affinity"] = json!({"nodeAffinity": {}});
        pod["tolerations"] = json!([]);
        pod["containers"][0]["securityContext"] = json!({"capabilities": {}});
        assert_eq!(validate(&d), Ok(()));
        // `privileged: false` asks for nothing either; `true` is refused by name.
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
            json!({"privileged": false});
        assert_eq!(validate(&d), Ok(()));
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
            json!({"privileged": true});
        let errs = validate(&d).unwrap_err();
        assert_eq!(
            errs[0].field,
            "spec.template.spec.containers[0].securityContext.privileged"
        );
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({});
        // Something said is still refused by name.
        d["spec"]["template"]["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        let errs = validate(&d).unwrap_err();
        assert_eq!(errs[0].field, "spec.template.spec.tolerations");
    }

    #[test]
    fn unsupported_fields_are_named() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["lifecycle"] =
            json!({"preStop":{"exec":{"command":["x"]}}});
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.spec.containers[0].lifecycle");
        assert!(e[0].message.contains("not supported"), "{}", e[0]);
    }

    #[test]
    fn type_errors_name_the_path() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("three");
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.replicas", "{:?}", e);
    }

    #[test]
    fn unknown_kinds_and_versions_are_named() {
        let e = validate(&json!({"apiVersion":"v1","kind":"Gizmo","metadata":{"name":"x"}}))
            .unwrap_err();
        assert!(e[0].message.contains("unknown kind \"Gizmo\""), "{}", e[0]);
        let mut d = deployment();
        d["apiVersion"] = json!("extensions/v1beta1");
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "apiVersion");
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app":"other"});
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn init_containers_allow_what_containers_allow_but_probes_and_restart_policy() {
        let mut d = deployment();
        let pod = &mut d["spec"]["template"]["spec"];
        pod["volumes"] = json!([{"name":"w","emptyDir":{}}]);
        pod["initContainers"] = json!([{"name":"init","image":"demo","command":["sh"],
          "env":[{"name":"A","value":"b"}],"volumeMounts":[{"name":"w","mountPath":"/w"}],
          "securityContext":{"runAsUser":1000}}]);
        assert_eq!(validate(&d), Ok(()));
        let field = |d: &Value| validate(d).unwrap_err()[0].to_string();
        let mut dup = d.clone();
        dup["spec"]["template"]["spec"]["initContainers"][0]["name"] = json!("web");
        assert!(
            field(&dup).contains("duplicate container name"),
            "{}",
            field(&dup)
        );
        let mut sidecar = d.clone();
        sidecar["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
        let e = field(&sidecar);
        assert!(
            e.contains("initContainers[0].restartPolicy")
                && e.contains("not supported by skiff yet"),
            "{e}"
        );
        let mut probe = d.clone();
        probe["spec"]["template"]["spec"]["initContainers"][0]["readinessProbe"] =
            json!({"exec":{"command":["true"]}});
        let e = field(&probe);
        assert!(
            e.contains("initContainers[0].readinessProbe") && e.contains("Forbidden"),
            "{e}"
        );
        let mut hook = d.clone();
        hook["spec"]["template"]["spec"]["initContainers"][0]["lifecycle"] =
            json!({"preStop":{"exec":{"command":["x"]}}});
        assert!(
            field(&hook).contains("initContainers[0].lifecycle"),
            "{}",
            field(&hook)
        );
        let mut mount = d;
        mount["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["name"] =
            json!("x");
        assert!(
            field(&mount).contains("initContainers[0].volumeMounts[0].name"),
            "{}",
            field(&mount)
        );
    }
}
