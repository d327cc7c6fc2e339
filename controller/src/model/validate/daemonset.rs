//! The rules of a DaemonSet's own fields (the selector and the pod template are checked as
//! for every workload, in `semantics.rs`; the update strategy as a StatefulSet's).

use serde_json::Value;

use super::{err, FieldError};

/// `spec` of a DaemonSet: counts and the update strategy — `maxUnavailable` and `maxSurge` as
/// Kubernetes' ValidateRollingUpdateDaemonSet: each a count or a percentage up to 100%, and
/// exactly one of them non-zero. (Upstream does not refuse `maxSurge` with a hostPort; the
/// controller says why such a pod cannot surge, `controllers/daemonset.rs`.)
pub(super) fn spec(spec: &Value, out: &mut Vec<FieldError>) {
    super::statefulset::counts(spec, out);
    let strategy = &spec["updateStrategy"];
    // Unlike a StatefulSet's, a DaemonSet's `rollingUpdate` may stay under OnDelete (Kubernetes
    // ignores it there; `kubectl apply` switching the type leaves the defaulted one behind).
    // Its two maxima are checked here, since a DaemonSet's maxUnavailable may be 0.
    let mut checked = strategy.clone();
    if let Some(m) = checked.as_object_mut() {
        if m.get("type").is_some_and(|t| t == "OnDelete") {
            m.remove("rollingUpdate");
        } else if let Some(ru) = m.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
            ru.remove("maxUnavailable");
            ru.remove("maxSurge");
        }
    }
    super::statefulset::update_strategy(&checked, out);
    if strategy["type"] == "OnDelete" {
        return;
    }
    const RU: &str = "spec.updateStrategy.rollingUpdate";
    let ru = &strategy["rollingUpdate"];
    let unavailable = int_or_percent(
        &ru["maxUnavailable"],
        1,
        &format!("{RU}.maxUnavailable"),
        out,
    );
    let surge = int_or_percent(&ru["maxSurge"], 0, &format!("{RU}.maxSurge"), out);
    match (unavailable, surge) {
        (Some(u), Some(s)) if u != 0 && s != 0 => out.push(err(
            format!("{RU}.maxSurge"),
            format!(
                "Invalid value: {}: may not be set when maxUnavailable is non-zero",
                ru["maxSurge"]
            ),
        )),
        (Some(0), Some(0)) => out.push(err(
            format!("{RU}.maxUnavailable"),
            "Required value: cannot be 0 when maxSurge is 0",
        )),
        _ => {}
    }
}

/// An IntOrString maximum (`default` when unset): its value (a percentage's number), or
/// `None` with the error said.
fn int_or_percent(v: &Value, default: u64, field: &str, out: &mut Vec<FieldError>) -> Option<u64> {
    let n = match v {
        Value::Null => return Some(default),
        Value::Number(n) => n.as_i64(),
        Value::String(p) => match p.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(n)) if n > 100 => {
                out.push(err(
                    field,
                    format!("Invalid value: {v}: must not be greater than 100%"),
                ));
                return None;
            }
            Some(Ok(n)) => Some(n),
            _ => {
                out.push(err(
                    field,
                    format!("Invalid value: {v}: a valid percent string must be a numeric string followed by an ending '%'"),
                ));
                return None;
            }
        },
        _ => None,
    };
    match n {
        Some(n) if n >= 0 => Some(n as u64),
        _ => {
            out.push(err(
                field,
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
            None
        }
    }
}

/// A PodDisruptionBudget's spec, as Kubernetes' ValidatePodDisruptionBudgetSpec: at most one
/// of `minAvailable` and `maxUnavailable`, each a count or a percentage up to 100%.
pub(super) fn disruption_budget(spec: &Value, out: &mut Vec<FieldError>) {
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        out.push(err(
            "spec",
            "Invalid value: minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for f in ["minAvailable", "maxUnavailable"] {
        int_or_percent(&spec[f], 0, &format!("spec.{f}"), out);
    }
    match &spec["unhealthyPodEvictionPolicy"] {
        Value::Null => {}
        v if v == "IfHealthyBudget" || v == "AlwaysAllow" => {}
        v => out.push(err(
            "spec.unhealthyPodEvictionPolicy",
            format!(
                "Unsupported value: {v}: supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
            ),
        )),
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
        // Surging: maxUnavailable 0, as Kubernetes wants it (a hostPort included).
        for surge in [json!(1), json!("100%")] {
            let mut d = ds();
            d["spec"]["updateStrategy"]["rollingUpdate"] =
                json!({"maxSurge": surge, "maxUnavailable": 0});
            d["spec"]["template"]["spec"]["containers"][0]["ports"] =
                json!([{"containerPort": 80, "hostPort": 8080}]);
            validate(&d).unwrap();
        }
    }

    #[test]
    fn wrong_and_unsupported_values_are_named() {
        let cases: [(&str, Value, &str); 9] = [
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
                json!({"type":"RollingUpdate","rollingUpdate":{"maxSurge":"101%","maxUnavailable":0}}),
                "spec.updateStrategy.rollingUpdate.maxSurge",
            ),
            (
                "updateStrategy",
                json!({"type":"RollingUpdate","rollingUpdate":{"maxSurge":0,"maxUnavailable":"0%"}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
            ),
            (
                "updateStrategy",
                json!({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":-1}}),
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
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
