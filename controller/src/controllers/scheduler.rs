//! The scheduler: binds each pod without `spec.nodeName` to the node if it fits there, as the
//! Kubernetes scheduler's filter plugins decide, in their order — NodeUnschedulable, NodeName,
//! TaintToleration, NodeAffinity (`nodeSelector`, required node affinity), NodePorts,
//! NodeResourcesFit (requests against allocatable), PodTopologySpread, InterPodAffinity — the
//! first that fails gives the reasons. A pod that does not fit stays Pending with
//! `PodScheduled=False` (`Unschedulable`) and a `FailedScheduling` Event in the scheduler's
//! words; every pass looks at it again (a label or taint on the node, or another pod going,
//! lets it start). Preferences (`preferred…` affinities) cannot change the choice of the one
//! node and are accepted as such. No preemption.
//!
//! [`fit`] is the decision, a pure function of the pod, the node and the pods bound to it;
//! [`plan`] orders the pending pods (priority, then age) and decides them one after another,
//! each bound pod counting for the next.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::plan::{Event, Write};
use crate::client::events::{Source, Type};
use crate::client::view::{View, WriteError};
use crate::model::{meta, quantity, store::ObjectKey};

/// The taint of a cordoned node, as Kubernetes names it.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Why the node does not fit a pod: the reasons of the first filter that failed, in the
/// scheduler's words (`node(s) didn't match Pod's node affinity/selector`, `Insufficient cpu`).
pub type Reasons = Vec<String>;

/// Whether `pod` fits on `node` next to `bound` (the pods already bound to it; the pod itself
/// and finished pods among them are skipped).
pub fn fit(pod: &Value, node: &Value, bound: &[Arc<Value>]) -> Result<(), Reasons> {
    let spec = &pod["spec"];
    let others: Vec<&Value> = bound
        .iter()
        .map(|p| &**p)
        .filter(|p| meta::uid(p) != meta::uid(pod) && !is_finished(p))
        .collect();
    let one = |r: &str| Err(vec![r.to_string()]);
    // NodeUnschedulable: a cordoned node takes only pods that tolerate it.
    if node["spec"]["unschedulable"] == true {
        let taint = json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"});
        if !tolerated(spec, &taint) {
            return one("node(s) were unschedulable");
        }
    }
    // NodeName.
    if let Some(n) = spec["nodeName"].as_str().filter(|n| !n.is_empty()) {
        if n != meta::name(node) {
            return one("node(s) didn't match the requested node name");
        }
    }
    // TaintToleration: NoSchedule and NoExecute taints (PreferNoSchedule is a preference).
    for taint in items(&node["spec"]["taints"]) {
        let effect = taint["effect"].as_str().unwrap_or_default();
        if matches!(effect, "NoSchedule" | "NoExecute") && !tolerated(spec, taint) {
            return one(&format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default()
            ));
        }
    }
    // NodeAffinity.
    if !node_selector_matches(spec, node) {
        return one("node(s) didn't match Pod's node affinity/selector");
    }
    // NodePorts.
    let used: Vec<(String, i64)> = others.iter().flat_map(|p| host_ports(p)).collect();
    if host_ports(pod).iter().any(|hp| used.contains(hp)) {
        return one("node(s) didn't have free ports for the requested pod ports");
    }
    // NodeResourcesFit.
    let insufficient = resources(pod, node, &others);
    if !insufficient.is_empty() {
        return Err(insufficient);
    }
    // PodTopologySpread (DoNotSchedule): one node is one domain, so the skew is at most the
    // pod itself (1 ≤ maxSkew); only a node without the topology label fails.
    for c in items(&spec["topologySpreadConstraints"]) {
        if c["whenUnsatisfiable"] == "DoNotSchedule" {
            let key = c["topologyKey"].as_str().unwrap_or_default();
            if node["metadata"]["labels"][key].is_null() {
                return one(
                    "node(s) didn't match pod topology spread constraints (missing required label)",
                );
            }
            let domain = others
                .iter()
                .filter(|p| {
                    meta::namespace(p) == meta::namespace(pod)
                        && selector_matches(&c["labelSelector"], &p["metadata"]["labels"])
                })
                .count();
            let own = usize::from(selector_matches(
                &c["labelSelector"],
                &pod["metadata"]["labels"],
            ));
            // skew = (pods in this domain + the pod) - (pods in the emptiest domain: this one).
            let skew = (domain + own) - domain;
            if skew as i64 > c["maxSkew"].as_i64().unwrap_or(1) {
                return one("node(s) didn't match pod topology spread constraints");
            }
        }
    }
    inter_pod_affinity(pod, node, &others)
}

/// Pods bound to the node that no longer hold anything.
fn is_finished(p: &Value) -> bool {
    matches!(
        p["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    )
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn strings(v: &Value) -> Vec<&str> {
    items(v).iter().filter_map(Value::as_str).collect()
}

/// Whether one of the pod's tolerations tolerates `taint` (Kubernetes' `ToleratesTaint`).
fn tolerated(spec: &Value, taint: &Value) -> bool {
    let (key, value, effect) = (
        taint["key"].as_str().unwrap_or_default(),
        taint["value"].as_str().unwrap_or_default(),
        taint["effect"].as_str().unwrap_or_default(),
    );
    items(&spec["tolerations"]).iter().any(|t| {
        let t_effect = t["effect"].as_str().unwrap_or_default();
        let t_key = t["key"].as_str().unwrap_or_default();
        if !t_effect.is_empty() && t_effect != effect {
            return false;
        }
        if !t_key.is_empty() && t_key != key {
            return false;
        }
        match t["operator"].as_str().unwrap_or("Equal") {
            "Exists" => true,
            _ => !t_key.is_empty() && t["value"].as_str().unwrap_or_default() == value,
        }
    })
}

/// `nodeSelector` and the required node affinity (terms ORed, expressions ANDed).
fn node_selector_matches(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels[k] == *v));
    let required =
        &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let affinity_ok = required.is_null()
        || items(&required["nodeSelectorTerms"]).iter().any(|term| {
            let exprs = items(&term["matchExpressions"]);
            let fields = items(&term["matchFields"]);
            // An empty term selects nothing.
            (!exprs.is_empty() || !fields.is_empty())
                && exprs.iter().all(|e| {
                    node_requirement(e, labels[e["key"].as_str().unwrap_or_default()].as_str())
                })
                && fields.iter().all(|e| {
                    let value = match e["key"].as_str() {
                        Some("metadata.name") => Some(meta::name(node)),
                        _ => None,
                    };
                    node_requirement(e, value)
                })
        });
    selector_ok && affinity_ok
}

/// One node selector requirement against a label's value (`None`: no such label).
fn node_requirement(e: &Value, value: Option<&str>) -> bool {
    let values = strings(&e["values"]);
    let number = |s: &str| s.parse::<i64>().ok();
    match e["operator"].as_str().unwrap_or_default() {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|b| number(b)),
            ) else {
                return false;
            };
            if e["operator"] == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// A label selector (`matchLabels`, `matchExpressions`) against labels; a missing selector
/// selects nothing, an empty one everything.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let labels_ok = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels[k] == *v));
    labels_ok
        && items(&selector["matchExpressions"]).iter().all(|e| {
            let value = labels[e["key"].as_str().unwrap_or_default()].as_str();
            let values = strings(&e["values"]);
            match e["operator"].as_str().unwrap_or_default() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// The host ports a pod asks for, with their protocols.
fn host_ports(pod: &Value) -> Vec<(String, i64)> {
    items(&pod["spec"]["containers"])
        .iter()
        .flat_map(|c| items(&c["ports"]))
        .filter_map(|p| {
            let port = p["hostPort"].as_i64().filter(|&n| n > 0)?;
            Some((p["protocol"].as_str().unwrap_or("TCP").to_string(), port))
        })
        .collect()
}

/// A quantity in its unit, or in thousandths (`milli`, for cpu).
fn amount(q: &str, milli: bool) -> Option<u128> {
    if milli {
        quantity::parse_milli(q)
    } else {
        quantity::parse(q)
    }
}

/// What a pod requests of one resource. As Kubernetes counts: the app containers' sum or
/// the largest init container, whichever is more; a limit without a request requests it.
fn request(pod: &Value, name: &str, milli: bool) -> u128 {
    let one = |c: &Value| -> u128 {
        let r = &c["resources"];
        let q = r["requests"][name].as_str().or(r["limits"][name].as_str());
        q.and_then(|q| amount(q, milli)).unwrap_or(0)
    };
    let sum = items(&pod["spec"]["containers"])
        .iter()
        .map(one)
        .sum::<u128>();
    let init = items(&pod["spec"]["initContainers"])
        .iter()
        .map(one)
        .max()
        .unwrap_or(0);
    sum.max(init)
}

/// The resources NodeResourcesFit counts: (name, counted in thousandths).
const FIT: [(&str, bool); 3] = [
    ("cpu", true),
    ("memory", false),
    ("ephemeral-storage", false),
];

/// NodeResourcesFit: requests of the pod plus those of the bound pods against allocatable.
fn resources(pod: &Value, node: &Value, others: &[&Value]) -> Reasons {
    let alloc = &node["status"]["allocatable"];
    let mut out = Vec::new();
    if let Some(max) = alloc["pods"].as_str().and_then(quantity::parse) {
        if others.len() as u128 + 1 > max {
            out.push("Too many pods".to_string());
        }
    }
    for (name, milli) in FIT {
        let want = request(pod, name, milli);
        let used: u128 = others.iter().map(|p| request(p, name, milli)).sum();
        if let Some(max) = alloc[name].as_str().and_then(|q| amount(q, milli)) {
            if want > 0 && used + want > max {
                out.push(format!("Insufficient {name}"));
            }
        }
    }
    out
}

/// The namespaces an affinity term looks in: its `namespaces`, else the pod's own.
fn term_namespaces<'a>(term: &'a Value, pod: &'a Value) -> Vec<&'a str> {
    let listed = strings(&term["namespaces"]);
    if listed.is_empty() {
        vec![meta::namespace(pod)]
    } else {
        listed
    }
}

/// Whether `other` is selected by an affinity term of `owner`.
fn term_selects(term: &Value, owner: &Value, other: &Value) -> bool {
    term_namespaces(term, owner).contains(&meta::namespace(other))
        && selector_matches(&term["labelSelector"], &other["metadata"]["labels"])
}

fn required_terms<'a>(pod: &'a Value, kind: &str) -> &'a [Value] {
    items(&pod["spec"]["affinity"][kind]["requiredDuringSchedulingIgnoredDuringExecution"])
}

/// InterPodAffinity, with one node as the only topology domain of every key it carries.
fn inter_pod_affinity(pod: &Value, node: &Value, others: &[&Value]) -> Result<(), Reasons> {
    let labels = &node["metadata"]["labels"];
    let has_key =
        |term: &Value| !labels[term["topologyKey"].as_str().unwrap_or_default()].is_null();
    // The bound pods' anti-affinity against this one.
    let refused_by_others = others.iter().any(|o| {
        required_terms(o, "podAntiAffinity")
            .iter()
            .any(|t| has_key(t) && term_selects(t, o, pod))
    });
    if refused_by_others {
        return Err(vec![
            "node(s) didn't satisfy existing pods anti-affinity rules".into(),
        ]);
    }
    // The pod's own affinity: a matching pod in the domain — or, for the first of a group, no
    // matching pod anywhere and the pod matching its own term (as Kubernetes allows).
    for t in required_terms(pod, "podAffinity") {
        let present = has_key(t) && others.iter().any(|o| term_selects(t, pod, o));
        let first_of_group =
            !others.iter().any(|o| term_selects(t, pod, o)) && term_selects(t, pod, pod);
        if !present && !first_of_group {
            return Err(vec!["node(s) didn't match pod affinity rules".into()]);
        }
    }
    for t in required_terms(pod, "podAntiAffinity") {
        if has_key(t) && others.iter().any(|o| term_selects(t, pod, o)) {
            return Err(vec!["node(s) didn't match pod anti-affinity rules".into()]);
        }
    }
    Ok(())
}

/// The scheduler's message for a pod that fits nowhere, as Kubernetes words it:
/// `0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: …`.
pub fn unschedulable_message(nodes: usize, reasons: &Reasons) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let list: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(
        "0/{nodes} nodes are available: {}. preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling.",
        list.join(", ")
    )
}

/// Whether a pod is the scheduler's to place: not bound, not being deleted.
fn pending(pod: &Value) -> bool {
    pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
        && !meta::is_terminating(pod)
}

fn scheduled_condition(pod: &Value) -> Option<&Value> {
    items(&pod["status"]["conditions"])
        .iter()
        .find(|c| c["type"] == "PodScheduled")
}

/// A decision for one pending pod.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Bind it to the node.
    Bind(ObjectKey),
    /// Leave it Pending: the status to write and, when the reason is new, the Event.
    Unschedulable(ObjectKey, String),
}

/// One pass: the pending pods (highest `spec.priority` first, then oldest) decided one after
/// another against `node` and the pods bound to it, each bound pod counting for the next.
pub fn plan(node: &Value, pods: &[Arc<Value>]) -> Vec<Decision> {
    let name = meta::name(node);
    let mut bound: Vec<Arc<Value>> = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"] == name)
        .cloned()
        .collect();
    let mut queue: Vec<&Arc<Value>> = pods.iter().filter(|p| pending(p)).collect();
    queue.sort_by_key(|p| {
        (
            -p["spec"]["priority"].as_i64().unwrap_or(0),
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            meta::name(p).to_string(),
        )
    });
    let mut out = Vec::new();
    for p in queue {
        let key = ObjectKey::of(p);
        match fit(p, node, &bound) {
            Ok(()) => {
                let mut placed = (**p).clone();
                placed["spec"]["nodeName"] = json!(name);
                bound.push(Arc::new(placed));
                out.push(Decision::Bind(key));
            }
            Err(reasons) => out.push(Decision::Unschedulable(
                key,
                unschedulable_message(1, &reasons),
            )),
        }
    }
    out
}

/// The writes of an unschedulable pod: its `PodScheduled=False` condition and, unless the
/// status already says so, a `FailedScheduling` Event.
fn unschedulable_writes(pod: &Value, message: &str, now: &str) -> Vec<Write> {
    let said =
        scheduled_condition(pod).is_some_and(|c| c["status"] == "False" && c["message"] == message);
    if said {
        return Vec::new();
    }
    let mut status = pod["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    status["phase"] = json!("Pending");
    let mut conditions: Vec<Value> = items(&status["conditions"])
        .iter()
        .filter(|c| c["type"] != "PodScheduled")
        .cloned()
        .collect();
    conditions.push(json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": now,
    }));
    status["conditions"] = json!(conditions);
    vec![
        Write::UpdateStatus(ObjectKey::of(pod), status),
        Write::Event(Event {
            about: pod.clone(),
            kind: Type::Warning,
            reason: "FailedScheduling",
            message: message.to_string(),
            source: Source::Scheduler,
        }),
    ]
}

/// One pass of the scheduler over the cached pods and the node.
pub async fn reconcile(view: &View) -> Result<(), WriteError> {
    // Until the daemon has registered the node, pods wait.
    let Some(node) = view.get(&ObjectKey::new("Node", "", crate::model::node::name())) else {
        return Ok(());
    };
    let pods = view.list("Pod", None);
    if !pods.iter().any(|p| pending(p)) {
        return Ok(());
    }
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string();
    for d in plan(&node, &pods) {
        match d {
            Decision::Bind(key) => {
                bind(view, &key).await?;
                if let Some(p) = view.get(&key) {
                    let event = Write::Event(Event {
                        about: (*p).clone(),
                        kind: Type::Normal,
                        reason: "Scheduled",
                        message: format!(
                            "Successfully assigned {}/{} to {}",
                            key.namespace,
                            key.name,
                            crate::model::node::name()
                        ),
                        source: Source::Scheduler,
                    });
                    super::plan::execute(view, event).await?;
                }
            }
            Decision::Unschedulable(key, message) => {
                if let Some(p) = view.get(&key) {
                    super::plan::execute_all(view, unschedulable_writes(&p, &message, &now))
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// Binds a pod to this node: `spec.nodeName`, as a merge patch (what the binding subresource
/// writes); the caller records `Scheduled`. The agent then reports `PodScheduled=True` and
/// starts it.
async fn bind(view: &View, key: &ObjectKey) -> Result<(), WriteError> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<Pod> = Api::namespaced(view.client().clone(), &key.namespace);
    let patch = json!({"spec": {"nodeName": crate::model::node::name()}});
    match api
        .patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(WriteError::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Value {
        json!({"kind": "Node", "metadata": {"name": "box", "labels": {
            "kubernetes.io/hostname": "box", "kubernetes.io/arch": "amd64", "cores": "4"}},
          "spec": {},
          "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "3",
                                     "ephemeral-storage": "10Gi"}}})
    }

    fn pod(name: &str, spec: Value) -> Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "x"}]);
        json!({"kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": name,
            "labels": {"app": name}}, "spec": spec})
    }

    fn bound(pods: Vec<Value>) -> Vec<Arc<Value>> {
        pods.into_iter()
            .map(|mut p| {
                p["spec"]["nodeName"] = json!("box");
                Arc::new(p)
            })
            .collect()
    }

    fn reason(r: Result<(), Reasons>) -> String {
        r.err().map(|r| r.join(", ")).unwrap_or_default()
    }

    #[test]
    fn node_selector_and_required_node_affinity() {
        let n = node();
        assert_eq!(fit(&pod("a", json!({})), &n, &[]), Ok(()));
        let p = pod(
            "a",
            json!({"nodeSelector": {"kubernetes.io/arch": "amd64"}}),
        );
        assert_eq!(fit(&p, &n, &[]), Ok(()));
        let p = pod("a", json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(
            reason(fit(&p, &n, &[])),
            "node(s) didn't match Pod's node affinity/selector"
        );
        let affinity = |exprs: Value| {
            pod(
                "a",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [exprs]}}}}),
            )
        };
        let ok = |e: Value| fit(&affinity(e), &n, &[]).is_ok();
        assert!(ok(
            json!({"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64", "amd64"]}]})
        ));
        assert!(!ok(
            json!({"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["amd64"]}]})
        ));
        assert!(ok(
            json!({"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]})
        ));
        assert!(ok(
            json!({"matchExpressions": [{"key": "cores", "operator": "Exists"}]})
        ));
        assert!(!ok(
            json!({"matchExpressions": [{"key": "cores", "operator": "DoesNotExist"}]})
        ));
        assert!(ok(
            json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["2"]}]})
        ));
        assert!(!ok(
            json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]})
        ));
        assert!(ok(
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["box"]}]})
        ));
        assert!(!ok(
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["other"]}]})
        ));
        // An empty term selects nothing; terms are ORed.
        assert!(!ok(json!({})));
        let two = pod(
            "a",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "Exists"}]},
                                   {"matchExpressions": [{"key": "cores", "operator": "Exists"}]}]}}}}),
        );
        assert!(fit(&two, &n, &[]).is_ok());
        // Another node's name.
        let p = pod("a", json!({"nodeName": "other"}));
        assert_eq!(
            reason(fit(&p, &n, &[])),
            "node(s) didn't match the requested node name"
        );
    }

    #[test]
    fn taints_tolerations_and_cordon() {
        let mut n = node();
        n["spec"]["taints"] = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                                     {"key": "soft", "effect": "PreferNoSchedule"}]);
        let plain = pod("a", json!({}));
        assert_eq!(
            reason(fit(&plain, &n, &[])),
            "node(s) had untolerated taint {dedicated: db}"
        );
        let tolerate = |t: Value| fit(&pod("a", json!({"tolerations": [t]})), &n, &[]).is_ok();
        assert!(tolerate(
            json!({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"})
        ));
        assert!(tolerate(json!({"key": "dedicated", "operator": "Exists"})));
        assert!(tolerate(json!({"operator": "Exists"})));
        assert!(!tolerate(json!({"key": "dedicated", "value": "web"})));
        assert!(!tolerate(
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})
        ));
        // Cordoned: only a pod tolerating node.kubernetes.io/unschedulable.
        let mut n = node();
        n["spec"]["unschedulable"] = json!(true);
        assert_eq!(reason(fit(&plain, &n, &[])), "node(s) were unschedulable");
        let p = pod(
            "a",
            json!({"tolerations": [{"key": UNSCHEDULABLE_TAINT, "operator": "Exists"}]}),
        );
        assert!(fit(&p, &n, &[]).is_ok());
    }

    #[test]
    fn requests_against_allocatable_and_host_ports() {
        let n = node();
        let big = |name: &str, cpu: &str, mem: &str| {
            let mut p = pod(name, json!({}));
            p["spec"]["containers"][0]["resources"] =
                json!({"requests": {"cpu": cpu, "memory": mem}});
            p
        };
        let others = bound(vec![big("x", "1500m", "512Mi")]);
        assert!(fit(&big("a", "500m", "512Mi"), &n, &others).is_ok());
        assert_eq!(
            reason(fit(&big("a", "600m", "600Mi"), &n, &others)),
            "Insufficient cpu, Insufficient memory"
        );
        // A limit without a request requests it.
        let mut p = pod("a", json!({}));
        p["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
        assert_eq!(reason(fit(&p, &n, &others)), "Insufficient cpu");
        // Local ephemeral storage counts as kube-scheduler counts it.
        let disk = |name: &str| {
            let mut p = pod(name, json!({}));
            p["spec"]["containers"][0]["resources"] =
                json!({"limits": {"ephemeral-storage": "8Gi"}});
            p
        };
        assert!(fit(&disk("d"), &n, &[]).is_ok());
        assert_eq!(
            reason(fit(&disk("d"), &n, &bound(vec![disk("e")]))),
            "Insufficient ephemeral-storage"
        );
        // Finished pods hold nothing; pods count against `pods`.
        let mut done = big("y", "2", "1Gi");
        done["status"]["phase"] = json!("Succeeded");
        assert!(fit(&big("a", "2", "1Gi"), &n, &bound(vec![done])).is_ok());
        let three = bound(vec![
            pod("x", json!({})),
            pod("y", json!({})),
            pod("z", json!({})),
        ]);
        assert_eq!(
            reason(fit(&pod("a", json!({})), &n, &three)),
            "Too many pods"
        );
        let port = |name: &str| {
            let mut p = pod(name, json!({}));
            p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
            p
        };
        assert_eq!(
            reason(fit(&port("a"), &n, &bound(vec![port("x")]))),
            "node(s) didn't have free ports for the requested pod ports"
        );
    }

    #[test]
    fn pod_affinity_anti_affinity_and_topology_spread() {
        let n = node();
        let anti = |name: &str| {
            let mut p = pod(
                name,
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
            );
            p["metadata"]["labels"] = json!({"app": "web"});
            p
        };
        assert!(fit(&anti("a"), &n, &[]).is_ok());
        assert_eq!(
            reason(fit(&anti("b"), &n, &bound(vec![anti("a")]))),
            "node(s) didn't satisfy existing pods anti-affinity rules"
        );
        // The pod's own rule against a pod without one.
        let mut web = pod("w", json!({}));
        web["metadata"]["labels"] = json!({"app": "web"});
        assert_eq!(
            reason(fit(&anti("b"), &n, &bound(vec![web.clone()]))),
            "node(s) didn't match pod anti-affinity rules"
        );
        // Another namespace is not looked at; a key the node lacks is no domain.
        web["metadata"]["namespace"] = json!("other");
        assert!(fit(&anti("b"), &n, &bound(vec![web.clone()])).is_ok());
        let affine = |key: &str| {
            pod(
                "a",
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}, "topologyKey": key}]}}}),
            )
        };
        let mut db = pod("d", json!({}));
        db["metadata"]["labels"] = json!({"app": "db"});
        assert!(fit(
            &affine("kubernetes.io/hostname"),
            &n,
            &bound(vec![db.clone()])
        )
        .is_ok());
        assert_eq!(
            reason(fit(&affine("kubernetes.io/hostname"), &n, &[])),
            "node(s) didn't match pod affinity rules"
        );
        assert_eq!(
            reason(fit(&affine("zone"), &n, &bound(vec![db]))),
            "node(s) didn't match pod affinity rules"
        );
        // Spread: one domain, skew 1; a node without the key fails DoNotSchedule only.
        let spread = |key: &str, when: &str| {
            pod(
                "a",
                json!({"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "a"}}}]}),
            )
        };
        assert!(fit(
            &spread("kubernetes.io/hostname", "DoNotSchedule"),
            &n,
            &bound(vec![pod("a2", json!({}))])
        )
        .is_ok());
        assert!(fit(&spread("zone", "ScheduleAnyway"), &n, &[]).is_ok());
        assert_eq!(
            reason(fit(&spread("zone", "DoNotSchedule"), &n, &[])),
            "node(s) didn't match pod topology spread constraints (missing required label)"
        );
    }

    #[test]
    fn plan_orders_by_priority_and_counts_each_binding() {
        let n = node();
        let mut low = pod("low", json!({}));
        low["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut high = pod("high", json!({"priority": 1000}));
        high["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:01Z");
        let mut sel = pod("sel", json!({}));
        sel["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:02Z");
        let pods: Vec<Arc<Value>> = vec![
            Arc::new(low),
            Arc::new(high),
            Arc::new(sel),
            bound(vec![pod("x", json!({})), pod("y", json!({}))]).remove(0),
        ];
        // allocatable pods = 3: one bound already, so two more fit: high first, then low.
        let d = plan(&n, &pods);
        assert_eq!(
            d[0],
            Decision::Bind(ObjectKey::new("Pod", "default", "high"))
        );
        assert_eq!(
            d[1],
            Decision::Bind(ObjectKey::new("Pod", "default", "low"))
        );
        match &d[2] {
            Decision::Unschedulable(k, m) => {
                assert_eq!(k.name, "sel");
                assert_eq!(m, "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unschedulable_pod_is_reported_once() {
        let p = pod("a", json!({}));
        let w = unschedulable_writes(&p, "0/1 nodes are available: x.", "2026-01-01T00:00:00Z");
        assert_eq!(
            super::super::plan::describe(&w),
            [
                "status Pod default/a",
                "event FailedScheduling: 0/1 nodes are available: x."
            ]
        );
        let mut said = p.clone();
        said["status"] = json!({"conditions": [{"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available: x."}]});
        assert!(unschedulable_writes(&said, "0/1 nodes are available: x.", "t").is_empty());
    }
}
