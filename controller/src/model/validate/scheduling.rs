//! The scheduling fields' semantics, as Kubernetes validates them: node selector operators and
//! their values, tolerations, pod (anti-)affinity terms, topology spread constraints, a
//! Node's taints and PriorityClasses.

use serde_json::Value;

use super::semantics::{items, one_of};
use super::{err, FieldError};

const NODE_OPERATORS: &[&str] = &["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"];
const LABEL_OPERATORS: &[&str] = &["DoesNotExist", "Exists", "In", "NotIn"];
const EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];

fn supported(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("supported values: {}", quoted.join(", "))
}

/// One requirement's operator and values (`node`: the node selector's operators).
fn requirement(e: &Value, path: &str, node: bool, out: &mut Vec<FieldError>) {
    let ops = if node {
        NODE_OPERATORS
    } else {
        LABEL_OPERATORS
    };
    let op = e["operator"].as_str().unwrap_or_default();
    let values = items(&e["values"]);
    if e["key"].as_str().unwrap_or_default().is_empty() {
        out.push(err(format!("{path}.key"), "Required value"));
    }
    match op {
        "In" | "NotIn" if values.is_empty() => out.push(err(
            format!("{path}.values"),
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => out.push(err(
            format!("{path}.values"),
            "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "Gt" | "Lt" if values.len() != 1 || values[0].as_str().and_then(|v| v.parse::<i64>().ok()).is_none() => {
            out.push(err(
                format!("{path}.values"),
                "Required value: must be specified single value when `operator` is 'Lt' or 'Gt', an integer",
            ))
        }
        o if !ops.contains(&o) => out.push(err(
            format!("{path}.operator"),
            format!("Unsupported value: {o:?}: {}", supported(ops)),
        )),
        _ => {}
    }
}

fn label_selector(sel: &Value, path: &str, out: &mut Vec<FieldError>) {
    for (i, e) in items(&sel["matchExpressions"]).iter().enumerate() {
        requirement(e, &format!("{path}.matchExpressions[{i}]"), false, out);
    }
}

/// A pod spec's scheduling fields.
pub(super) fn pod_spec(spec: &Value, path: &str, out: &mut Vec<FieldError>) {
    let required =
        format!("{path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution");
    let node_required =
        &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    if node_required.is_object() && items(&node_required["nodeSelectorTerms"]).is_empty() {
        out.push(err(
            format!("{required}.nodeSelectorTerms"),
            "Required value: must have at least one node selector term",
        ));
    }
    for (i, term) in items(&node_required["nodeSelectorTerms"])
        .iter()
        .enumerate()
    {
        let tp = format!("{required}.nodeSelectorTerms[{i}]");
        for (j, e) in items(&term["matchExpressions"]).iter().enumerate() {
            requirement(e, &format!("{tp}.matchExpressions[{j}]"), true, out);
        }
        for (j, e) in items(&term["matchFields"]).iter().enumerate() {
            let fp = format!("{tp}.matchFields[{j}]");
            if e["key"] != "metadata.name" {
                out.push(err(
                    format!("{fp}.key"),
                    "Invalid value: not a valid field selector key (only metadata.name)",
                ));
            }
            if !matches!(e["operator"].as_str(), Some("In" | "NotIn"))
                || items(&e["values"]).len() != 1
            {
                out.push(err(fp, "must be In or NotIn with exactly one value"));
            }
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let terms = &spec["affinity"][kind]["requiredDuringSchedulingIgnoredDuringExecution"];
        for (i, t) in items(terms).iter().enumerate() {
            let tp = format!(
                "{path}.affinity.{kind}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"
            );
            if t["topologyKey"].as_str().unwrap_or_default().is_empty() {
                out.push(err(
                    format!("{tp}.topologyKey"),
                    "Required value: can not be empty",
                ));
            }
            label_selector(&t["labelSelector"], &format!("{tp}.labelSelector"), out);
        }
    }
    for (i, t) in items(&spec["tolerations"]).iter().enumerate() {
        let tp = format!("{path}.tolerations[{i}]");
        let op = match t["operator"].as_str() {
            None => Some("Equal"),
            Some(_) => one_of(
                t,
                &tp,
                "operator",
                &["Equal", "Exists"],
                "is not Equal or Exists",
                out,
            ),
        };
        let key_empty = t["key"].as_str().unwrap_or_default().is_empty();
        if key_empty && op != Some("Exists") {
            out.push(err(format!("{tp}.operator"), "Invalid value: operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        if op == Some("Exists") && !t["value"].as_str().unwrap_or_default().is_empty() {
            out.push(err(
                format!("{tp}.operator"),
                "Invalid value: value must be empty when `operator` is 'Exists'",
            ));
        }
        one_of(
            t,
            &tp,
            "effect",
            EFFECTS,
            "is not NoSchedule, PreferNoSchedule or NoExecute",
            out,
        );
        if !t["tolerationSeconds"].is_null() && t["effect"] != "NoExecute" {
            out.push(err(
                format!("{tp}.effect"),
                "Invalid value: effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
    for (i, c) in items(&spec["topologySpreadConstraints"]).iter().enumerate() {
        let cp = format!("{path}.topologySpreadConstraints[{i}]");
        if c["maxSkew"].as_i64().unwrap_or(0) <= 0 {
            out.push(err(
                format!("{cp}.maxSkew"),
                "Invalid value: must be greater than zero",
            ));
        }
        if c["topologyKey"].as_str().unwrap_or_default().is_empty() {
            out.push(err(
                format!("{cp}.topologyKey"),
                "Required value: can not be empty",
            ));
        }
        let when = ["DoNotSchedule", "ScheduleAnyway"];
        if !c["whenUnsatisfiable"]
            .as_str()
            .is_some_and(|w| when.contains(&w))
        {
            out.push(err(
                format!("{cp}.whenUnsatisfiable"),
                format!("Unsupported value: {}", supported(&when)),
            ));
        }
        label_selector(&c["labelSelector"], &format!("{cp}.labelSelector"), out);
    }
}

/// A Node's taints.
pub(super) fn node(obj: &Value, out: &mut Vec<FieldError>) {
    for (i, t) in items(&obj["spec"]["taints"]).iter().enumerate() {
        let tp = format!("spec.taints[{i}]");
        if t["key"].as_str().unwrap_or_default().is_empty() {
            out.push(err(format!("{tp}.key"), "Required value"));
        }
        if !t["effect"].as_str().is_some_and(|e| EFFECTS.contains(&e)) {
            out.push(err(
                format!("{tp}.effect"),
                format!("Unsupported value: {}", supported(EFFECTS)),
            ));
        }
    }
}

/// A PriorityClass: user classes at most one billion; `system-` names are reserved.
pub(super) fn priority_class(obj: &Value, out: &mut Vec<FieldError>) {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let value = obj["value"].as_i64().unwrap_or(0);
    let builtin = matches!(name, "system-node-critical" | "system-cluster-critical");
    if name.starts_with("system-") && !builtin {
        out.push(err(
            "metadata.name",
            "Forbidden: priority class names with 'system-' prefix are reserved",
        ));
    }
    if !builtin && value > 1_000_000_000 {
        out.push(err(
            "value",
            "Forbidden: maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    if let Some(p) = obj["preemptionPolicy"].as_str() {
        if p != "Never" && p != "PreemptLowerPriority" {
            out.push(err("preemptionPolicy", format!("Unsupported value: {p:?}: supported values: \"Never\", \"PreemptLowerPriority\"")));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::validate::validate;

    fn pod(spec: serde_json::Value) -> serde_json::Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "x:1"}]);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    fn fields(v: serde_json::Value) -> Vec<String> {
        validate(&v)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn scheduling_fields_are_accepted_and_checked() {
        let good = pod(json!({
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}, {"key": "n", "operator": "Gt", "values": ["3"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]},
              "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]}},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}],
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}],
            "priorityClassName": "system-node-critical",
        }));
        assert_eq!(validate(&good), Ok(()));
        let bad = pod(json!({
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "a", "operator": "Near"}, {"key": "b", "operator": "In"},
                                      {"key": "c", "operator": "Exists", "values": ["x"]}]}]}},
              "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {}}]}},
            "tolerations": [{"value": "v"}, {"key": "k", "operator": "Exists", "value": "v"}, {"key": "k", "effect": "Sometimes"}],
            "topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "", "whenUnsatisfiable": "Maybe"}],
        }));
        let f = fields(bad);
        let p = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions";
        for want in [
            format!("{p}[0].operator"),
            format!("{p}[1].values"),
            format!("{p}[2].values"),
            "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey".into(),
            "spec.tolerations[0].operator".into(),
            "spec.tolerations[1].operator".into(),
            "spec.tolerations[2].effect".into(),
            "spec.topologySpreadConstraints[0].maxSkew".into(),
            "spec.topologySpreadConstraints[0].topologyKey".into(),
            "spec.topologySpreadConstraints[0].whenUnsatisfiable".into(),
        ] {
            assert!(f.contains(&want), "{want} not in {f:?}");
        }
        // What skiff does not implement is still refused by name.
        let f = fields(pod(
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {}, "topologyKey": "k", "namespaceSelector": {"matchLabels": {"a": "b"}}}]}}}),
        ));
        assert_eq!(f, ["spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaceSelector"]);
    }

    #[test]
    fn nodes_and_priority_classes() {
        let node = |taints| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "box"}, "spec": {"taints": taints}});
        assert_eq!(
            validate(&node(
                json!([{"key": "a", "value": "b", "effect": "NoSchedule"}])
            )),
            Ok(())
        );
        assert_eq!(
            fields(node(json!([{"key": "", "effect": "Sometimes"}]))),
            ["spec.taints[0].key", "spec.taints[0].effect"]
        );
        let class = |name: &str, value: i64| {
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value})
        };
        assert_eq!(validate(&class("high", 1000)), Ok(()));
        assert_eq!(fields(class("high", 2_000_000_000)), ["value"]);
        assert_eq!(fields(class("system-mine", 1)), ["metadata.name"]);
    }
}
