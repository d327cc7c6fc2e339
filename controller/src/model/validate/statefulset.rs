//! The rules of a StatefulSet's own fields (the selector, replicas and the pod template are
//! checked as for every workload, in `semantics.rs`).

use serde_json::Value;

use super::semantics::{is_dns_label, one_of};
use super::{err, FieldError};

/// `spec` of a StatefulSet: names, policies, strategy, counts.
pub(super) fn spec(spec: &Value, out: &mut Vec<FieldError>) {
    if let Some(s) = spec["serviceName"].as_str() {
        // It becomes each pod's `subdomain`, a DNS label.
        if !s.is_empty() && !is_dns_label(s) {
            out.push(err(
                "spec.serviceName",
                format!("{s:?} must be a DNS-1123 label"),
            ));
        }
    }
    one_of(
        spec,
        "spec",
        "podManagementPolicy",
        // "" is Go's unset, defaulted to OrderedReady as Kubernetes does (Bitnami's charts).
        &["OrderedReady", "Parallel", ""],
        "is not OrderedReady or Parallel",
        out,
    );
    counts(spec, out);
    update_strategy(&spec["updateStrategy"], out);
    let policy = &spec["persistentVolumeClaimRetentionPolicy"];
    for field in ["whenDeleted", "whenScaled"] {
        one_of(
            policy,
            "spec.persistentVolumeClaimRetentionPolicy",
            field,
            &["Retain", "Delete"],
            "is not Retain or Delete",
            out,
        );
    }
    claim_templates(spec, out);
}

/// `minReadySeconds` and `revisionHistoryLimit` (of a StatefulSet or a DaemonSet): not negative.
pub(super) fn counts(spec: &Value, out: &mut Vec<FieldError>) {
    for field in ["minReadySeconds", "revisionHistoryLimit"] {
        if spec[field].as_i64().is_some_and(|n| n < 0) {
            out.push(err(
                format!("spec.{field}"),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// `spec.volumeClaimTemplates`: names unique DNS labels, each spec a valid claim's (the
/// claims are made from them, `<template>-<set>-<ordinal>`).
fn claim_templates(spec: &Value, out: &mut Vec<FieldError>) {
    let mut seen = std::collections::HashSet::new();
    let templates = spec["volumeClaimTemplates"].as_array();
    for (i, t) in templates.into_iter().flatten().enumerate() {
        let path = format!("spec.volumeClaimTemplates[{i}]");
        let name = t["metadata"]["name"].as_str().unwrap_or_default();
        if !is_dns_label(name) {
            out.push(err(
                format!("{path}.metadata.name"),
                format!("{name:?} must be a DNS-1123 label"),
            ));
        } else if !seen.insert(name) {
            out.push(err(
                format!("{path}.metadata.name"),
                format!("duplicate claim template {name:?}"),
            ));
        }
        let mut errors = Vec::new();
        super::storage::claim(&t["spec"], &mut errors);
        out.extend(errors.into_iter().map(|e| FieldError {
            field: e.field.replacen("spec.", &format!("{path}.spec."), 1),
            message: e.message,
        }));
    }
}

/// The pod template's spec with a volume for each claim template it does not already name
/// (what the pods will have), for the pod checks.
pub(super) fn with_claim_volumes(spec: &Value) -> Value {
    let mut pod = spec["template"]["spec"].clone();
    let templates = spec["volumeClaimTemplates"].as_array();
    for t in templates.into_iter().flatten() {
        let name = t["metadata"]["name"].clone();
        let volumes = pod["volumes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if name.is_string() && !volumes.iter().any(|v| v["name"] == name) {
            let volume = serde_json::json!({"name": name,
                "persistentVolumeClaim": {"claimName": "claim"}});
            if !pod["volumes"].is_array() {
                pod["volumes"] = Value::Array(Vec::new());
            }
            pod["volumes"]
                .as_array_mut()
                .expect("just made")
                .push(volume);
        }
    }
    pod
}

/// The fields of a StatefulSet's spec that may change after creation (Kubernetes' list).
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// A change of a StatefulSet: only the mutable fields of its spec (both sides compared with
/// Kubernetes' defaults filled, so that leaving a defaulted field out is no change).
pub(super) fn update(old: &Value, new: &Value, out: &mut Vec<FieldError>) {
    if old["kind"] != "StatefulSet" {
        return;
    }
    let fixed = |o: &Value| {
        let mut o = o.clone();
        crate::model::defaults::apply(&mut o);
        let mut spec = o["spec"].take();
        if let Some(m) = spec.as_object_mut() {
            m.retain(|k, _| !MUTABLE.contains(&k.as_str()));
        }
        spec
    };
    if fixed(old) != fixed(new) {
        out.push(err(
            "spec",
            "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
             'template', 'updateStrategy', 'revisionHistoryLimit', \
             'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// `spec.updateStrategy`: RollingUpdate (partition ≥ 0, maxUnavailable ≥ 1 or a percentage)
/// or OnDelete (a StatefulSet's or a DaemonSet's: the DaemonSet's allowlist has no partition).
pub(super) fn update_strategy(s: &Value, out: &mut Vec<FieldError>) {
    let ty = one_of(
        s,
        "spec.updateStrategy",
        "type",
        &["RollingUpdate", "OnDelete"],
        "is not RollingUpdate or OnDelete",
        out,
    );
    let ru = &s["rollingUpdate"];
    if ty == Some("OnDelete") && !ru.is_null() {
        out.push(err(
            "spec.updateStrategy.rollingUpdate",
            "only allowed for updateStrategy 'RollingUpdate'",
        ));
    }
    if ru["partition"].as_i64().is_some_and(|n| n < 0) {
        out.push(err(
            "spec.updateStrategy.rollingUpdate.partition",
            "must be greater than or equal to 0",
        ));
    }
    let bad_max = match &ru["maxUnavailable"] {
        Value::Null => false,
        Value::Number(n) => n.as_i64().is_none_or(|n| n < 1),
        Value::String(p) => p
            .strip_suffix('%')
            .and_then(|n| n.parse::<u32>().ok())
            .is_none_or(|n| n == 0 || n > 100),
        _ => true,
    };
    if bad_max {
        out.push(err(
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            "must be at least 1, or a percentage from 1% to 100%",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::model::validate::validate;

    fn sts() -> Value {
        json!({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"web"},
          "spec":{"replicas":3,"serviceName":"web","selector":{"matchLabels":{"app":"web"}},
            "podManagementPolicy":"Parallel",
            "updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":1,"maxUnavailable":2}},
            "persistentVolumeClaimRetentionPolicy":{"whenDeleted":"Retain","whenScaled":"Delete"},
            "template":{"metadata":{"labels":{"app":"web"}},
              "spec":{"containers":[{"name":"web","image":"demo"}]}}}})
    }

    fn field_of(s: &Value) -> String {
        let e = validate(s).unwrap_err();
        e[0].field.clone()
    }

    #[test]
    fn a_supported_statefulset_passes() {
        validate(&sts()).unwrap();
    }

    #[test]
    fn wrong_values_are_named() {
        let cases: [(&str, Value, &str); 6] = [
            ("replicas", json!(-1), "spec.replicas"),
            (
                "podManagementPolicy",
                json!("Random"),
                "spec.podManagementPolicy",
            ),
            ("serviceName", json!("Web_1"), "spec.serviceName"),
            (
                "updateStrategy",
                json!({"type":"OnDelete","rollingUpdate":{"partition":0}}),
                "spec.updateStrategy.rollingUpdate",
            ),
            (
                "updateStrategy",
                json!({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":0}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
            ),
            (
                "volumeClaimTemplates",
                json!([{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"]}}]),
                "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
            ),
        ];
        for (field, value, path) in cases {
            let mut s = sts();
            s["spec"][field] = value;
            assert_eq!(field_of(&s), path, "{field}");
        }
    }

    #[test]
    fn claim_templates_are_claims_and_volumes_of_the_pods() {
        let mut s = sts();
        s["spec"]["volumeClaimTemplates"] = json!([{"metadata":{"name":"data"},
            "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]);
        s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name":"data","mountPath":"/data"}]);
        validate(&s).unwrap();
        s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("nope");
        assert_eq!(
            field_of(&s),
            "spec.template.spec.containers[0].volumeMounts[0].name"
        );
        s["spec"]["volumeClaimTemplates"][0]["spec"]["bogus"] = json!(1);
        assert_eq!(field_of(&s), "spec.volumeClaimTemplates[0].spec.bogus");
    }

    #[test]
    fn only_kubernetes_mutable_fields_change() {
        use crate::model::validate::validate_update;
        let old = sts();
        let mut new = sts();
        new["spec"]["replicas"] = json!(5);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("demo:2");
        validate_update(&old, &new).unwrap();
        let mut defaulted = old.clone();
        crate::model::defaults::apply(&mut defaulted);
        validate_update(&defaulted, &old).unwrap();
        new["spec"]["serviceName"] = json!("other");
        let e = validate_update(&old, &new).unwrap_err();
        assert_eq!(e[0].field, "spec");
        assert!(e[0].message.contains("Forbidden"), "{}", e[0]);
    }

    #[test]
    fn template_rules_are_a_workloads() {
        let mut s = sts();
        s["spec"]["template"]["metadata"]["labels"] = json!({"app":"other"});
        assert_eq!(field_of(&s), "spec.template.metadata.labels");
        let mut s = sts();
        s["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(field_of(&s), "spec.template.spec.restartPolicy");
    }

    #[test]
    fn unimplemented_fields_are_refused_by_name() {
        let mut s = sts();
        s["spec"]["ordinals"] = json!({"start": 1});
        let e = validate(&s).unwrap_err();
        assert_eq!(e[0].field, "spec.ordinals");
        assert!(e[0].message.contains("not supported"), "{}", e[0]);
    }
}
