//! The PodDisruptionBudget reconciler: each budget's status from the pods its selector matches,
//! as Kubernetes' disruption controller computes it — `expectedPods` (the matching pods that
//! are not finished or terminating), `currentHealthy` (those Ready), `desiredHealthy` (from
//! `minAvailable`, or `expectedPods − maxUnavailable`; percentages of `expectedPods`, rounded
//! up), `disruptionsAllowed` and the `DisruptionAllowed` condition. Kubernetes takes
//! `expectedPods` from the owning controllers' scale when a percentage is used; skiff counts
//! the matching pods, which is the same once a workload has all its replicas.
//!
//! skiff has no eviction API (`kubectl drain` is refused), so a budget guards nothing here; it
//! is served so that charts and manifests that carry one apply, and `kubectl get pdb` shows
//! what it would allow.

use serde_json::{json, Value};

use super::plan::{execute_all, Write};
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// An IntOrString of a budget as a count of `expected` pods (a percentage rounded up, as
/// Kubernetes' `GetScaledValueFromIntOrPercent(…, true)`).
fn scaled(v: &Value, expected: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some((pct * expected + 99) / 100)
        }
        _ => None,
    }
}

/// The status a budget should have, given the pods of its namespace; `now` for a condition
/// that changes.
pub fn status(pdb: &Value, pods: &[&Value], now: &str) -> Value {
    let spec = &pdb["spec"];
    let selector = &spec["selector"]["matchLabels"];
    // An empty or missing selector matches no pods in policy/v1.
    let selects = selector.as_object().is_some_and(|m| !m.is_empty());
    let matching: Vec<&&Value> = pods
        .iter()
        .filter(|p| selects && meta::labels_match(selector, &p["metadata"]["labels"]))
        .filter(|p| {
            let phase = p["status"]["phase"].as_str().unwrap_or("");
            phase != "Succeeded" && phase != "Failed" && !meta::is_terminating(p)
        })
        .collect();
    let expected = matching.len() as i64;
    let healthy = matching
        .iter()
        .filter(|p| super::replicaset::pod_ready(p))
        .count() as i64;
    let desired = if let Some(min) = scaled(&spec["minAvailable"], expected) {
        min
    } else if let Some(max) = scaled(&spec["maxUnavailable"], expected) {
        (expected - max).max(0)
    } else {
        0
    };
    let allowed = (healthy - desired).max(0);
    let (cond_status, reason, message) = if allowed > 0 {
        ("True", "SufficientPods", "")
    } else {
        ("False", "InsufficientPods", "")
    };
    let previous = pdb["status"]["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == "DisruptionAllowed" && c["status"] == cond_status)
    });
    json!({
        "observedGeneration": pdb["metadata"]["generation"],
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": cond_status,
            "reason": reason,
            "message": message,
            "observedGeneration": pdb["metadata"]["generation"],
            "lastTransitionTime": previous.map_or(json!(now), |p| p["lastTransitionTime"].clone()),
        }],
    })
}

/// One pass over every budget: a status write where it changed.
pub async fn reconcile(view: &View) -> Result<(), WriteError> {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut writes = Vec::new();
    for pdb in view.list("PodDisruptionBudget", None) {
        let pods = view.list("Pod", Some(meta::namespace(&pdb)));
        let refs: Vec<&Value> = pods.iter().map(|p| &**p).collect();
        let want = status(&pdb, &refs, &now);
        if pdb["status"] != want {
            writes.push(Write::UpdateStatus(ObjectKey::of(&pdb), want));
        }
    }
    execute_all(view, writes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
               "status": {"phase": "Running", "conditions": [
                   {"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn pdb(spec: Value) -> Value {
        json!({"metadata": {"name": "b", "namespace": "default", "generation": 2},
               "spec": spec})
    }

    #[test]
    fn budgets_count_healthy_pods_as_kubernetes_does() {
        let pods = [
            pod("a", "web", true),
            pod("b", "web", true),
            pod("c", "web", false),
            pod("d", "db", true),
        ];
        let refs: Vec<&Value> = pods.iter().collect();
        let s = status(
            &pdb(json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}})),
            &refs,
            "T",
        );
        assert_eq!(
            (
                &s["expectedPods"],
                &s["currentHealthy"],
                &s["desiredHealthy"],
                &s["disruptionsAllowed"]
            ),
            (&json!(3), &json!(2), &json!(1), &json!(1))
        );
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["observedGeneration"], 2);
        // maxUnavailable 34% of 3 rounds up to 2: desired 1.
        let s = status(
            &pdb(json!({"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}})),
            &refs,
            "T",
        );
        assert_eq!(s["desiredHealthy"], 1);
        // minAvailable 100%: no disruption allowed, and the condition says why.
        let s = status(
            &pdb(json!({"minAvailable": "100%", "selector": {"matchLabels": {"app": "web"}}})),
            &refs,
            "T",
        );
        assert_eq!(s["disruptionsAllowed"], 0);
        assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
        // An empty selector matches nothing (policy/v1).
        let s = status(&pdb(json!({"minAvailable": 1, "selector": {}})), &refs, "T");
        assert_eq!(s["expectedPods"], 0);
    }

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time() {
        let pods = [pod("a", "web", true), pod("b", "web", true)];
        let refs: Vec<&Value> = pods.iter().collect();
        let mut b = pdb(json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}));
        b["status"] = status(&b, &refs, "T1");
        assert_eq!(status(&b, &refs, "T2"), b["status"]);
        let one = [pod("a", "web", true)];
        let refs: Vec<&Value> = one.iter().collect();
        assert_eq!(
            status(&b, &refs, "T3")["conditions"][0]["lastTransitionTime"],
            "T3"
        );
    }
}
