//! The rules of a DaemonSet's own fields (the selector and the pod template are checked as
//! for every workload, in `semantics.rs`; the update strategy as a StatefulSet's).

use serde_json::Value;

use super::{err, FieldError};

/// `spec` of a DaemonSet: counts and the update strategy. `maxSurge` may only say 0: on one
/// node the pod is replaced (deleted, then made again), never doubled.
pub(super) fn spec(spec: &Value, out: &mut Vec<FieldError>) {
    super::statefulset::counts(spec, out);
    let strategy = &spec["updateStrategy"];
    // Unlike a StatefulSet's, a DaemonSet's `rollingUpdate` may stay under OnDelete (Kubernetes
    // ignores it there; `kubectl apply` switching the type leaves the defaulted one behind).
    let mut checked = strategy.clone();
    if checked["type"] == "OnDelete" {
        if let Some(m) = checked.as_object_mut() {
            m.remove("rollingUpdate");
        }
    }
    super::statefulset::update_strategy(&checked, out);
    let surge = &strategy["rollingUpdate"]["maxSurge"];
    if !(surge.is_null() || *surge == 0 || *surge == "0%" || *surge == "0") {
        out.push(err(
            "spec.updateStrategy.rollingUpdate.maxSurge",
            format!("{surge} is not supported by skiff (only 0: the one node's pod is replaced)"),
        ));
    }
}

/// A change of a DaemonSet: its selector is immutable, as in Kubernetes.
pub(super) fn update(old: &Value, new: &Value, out: &mut Vec<FieldError>) {
    if old["kind"] == "DaemonSet" && old["spec"]["selector"] != new["spec"]["selector"] {
        out.push(err("spec.selector", "field is immutable"));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::model::validate::{validate, validate_update};

    fn ds() -> Value {
        json!({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agent"},
          "spec":{"selector":{"matchLabels":{"app":"agent"}},"minReadySeconds":2,
            "revisionHistoryLimit":3,
            "updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"50%","maxSurge":0}},
            "template":{"metadata":{"labels":{"app":"agent"}},
              "spec":{"tolerations":[{"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"}],
                "containers":[{"name":"agent","image":"demo"}]}}}})
    }

    fn field_of(d: &Value) -> String {
        validate(d).unwrap_err()[0].field.clone()
    }

    #[test]
    fn a_supported_daemonset_passes() {
        validate(&ds()).unwrap();
        let mut on_delete = ds();
        on_delete["spec"]["updateStrategy"]["type"] = json!("OnDelete");
        validate(&on_delete).unwrap();
    }

    #[test]
    fn wrong_and_unsupported_values_are_named() {
        let cases: [(&str, Value, &str); 6] = [
            ("minReadySeconds", json!(-1), "spec.minReadySeconds"),
            (
                "updateStrategy",
                json!({"type": "Recreate"}),
                "spec.updateStrategy.type",
            ),
            (
                "updateStrategy",
                json!({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":0}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
            ),
            (
                "updateStrategy",
                json!({"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}),
                "spec.updateStrategy.rollingUpdate.maxSurge",
            ),
            (
                "updateStrategy",
                json!({"type":"RollingUpdate","rollingUpdate":{"partition":1}}),
                "spec.updateStrategy.rollingUpdate.partition",
            ),
            ("replicas", json!(2), "spec.replicas"),
        ];
        for (field, value, path) in cases {
            let mut d = ds();
            d["spec"][field] = value;
            assert_eq!(field_of(&d), path, "{field}");
        }
        let mut d = ds();
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(field_of(&d), "spec.template.spec.restartPolicy");
        let mut d = ds();
        d["spec"]["template"]["spec"]["tolerations"][0]["operator"] = json!("Maybe");
        assert_eq!(field_of(&d), "spec.template.spec.tolerations[0].operator");
    }

    #[test]
    fn the_selector_is_immutable() {
        let old = ds();
        let mut new = ds();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("demo:2");
        validate_update(&old, &new).unwrap();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "x": "y"}});
        new["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let e = validate_update(&old, &new).unwrap_err();
        assert_eq!(e[0].field, "spec.selector");
    }
}
