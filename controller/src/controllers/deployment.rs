//! The Deployment reconciler: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>` as Kubernetes names them; rolls from old ReplicaSets to
//! the new one within `maxSurge`/`maxUnavailable` (or all at once for `Recreate`); keeps
//! `revisionHistoryLimit` old ReplicaSets for history; reports status and the `Available` and
//! `Progressing` conditions that `kubectl rollout status` and `kubectl wait` read.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::plan::{execute, execute_all, Event, Write};
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// The `pod-template-hash` of a template: FNV-1a (32 bit) of its canonical JSON, rendered with
/// Kubernetes' `SafeEncodeString` of the decimal value.
pub fn pod_template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).expect("JSON values serialize");
    let mut h: u32 = 0x811c9dc5;
    for b in text.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h.to_string()
        .bytes()
        .map(|b| meta::ALPHANUMS[b as usize % meta::ALPHANUMS.len()] as char)
        .collect()
}

/// Resolves an int-or-percent against a total (`maxSurge` rounds up, `maxUnavailable` down);
/// absent is 0.
fn scaled(v: Option<&IntOrString>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(IntOrString::Int(n)) => i64::from(*n),
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            if round_up {
                (pct * total + 99) / 100
            } else {
                pct * total / 100
            }
        }
        None => 0,
    }
}

/// `spec.strategy`. Absent (never, once defaulted) it is a rolling update without bounds.
fn strategy(d: &Value) -> DeploymentStrategy {
    serde_json::from_value(d["spec"]["strategy"].clone()).unwrap_or_default()
}

fn is_recreate(strategy: &DeploymentStrategy) -> bool {
    strategy.type_.as_deref() == Some("Recreate")
}

/// `maxSurge` and `maxUnavailable` of a rolling update.
fn bounds(strategy: &DeploymentStrategy) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let ru = strategy.rolling_update.as_ref();
    (
        ru.and_then(|ru| ru.max_surge.as_ref()),
        ru.and_then(|ru| ru.max_unavailable.as_ref()),
    )
}

fn replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(0)
}

/// A ReplicaSet's `status`; none yet reads as no pods.
fn rs_status(rs: &Value) -> ReplicaSetStatus {
    serde_json::from_value(rs["status"].clone()).unwrap_or_default()
}

/// How many of a ReplicaSet's pods there are, and how many are ready and available.
fn counts(rs: &Value) -> (i64, i64, i64) {
    let s = rs_status(rs);
    (
        i64::from(s.replicas),
        i64::from(s.ready_replicas.unwrap_or(0)),
        i64::from(s.available_replicas.unwrap_or(0)),
    )
}

fn pods(rs: &Value) -> i64 {
    counts(rs).0
}

fn available(rs: &Value) -> i64 {
    counts(rs).2
}

fn revision(rs: &Value) -> i64 {
    meta::annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn build_replicaset(d: &Value, hash: &str, revision: i64) -> Value {
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let mut labels = d["spec"]["template"]["metadata"]["labels"].clone();
    labels["pod-template-hash"] = json!(hash);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{}", meta::name(d), hash),
            "namespace": meta::namespace(d),
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": d["spec"]["replicas"].as_i64().unwrap_or(1).to_string(),
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": meta::name(d),
                "uid": meta::uid(d),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    })
}

fn with_replicas(rs: &Value, n: i64) -> Value {
    let mut rs = rs.clone();
    rs["spec"]["replicas"] = json!(n);
    rs
}

/// The ReplicaSets a Deployment controls (from its namespace's, as cached), oldest first.
pub fn owned(d: &Value, replicasets: Vec<Arc<Value>>) -> Vec<Arc<Value>> {
    let mut owned: Vec<Arc<Value>> = replicasets
        .into_iter()
        .filter(|rs| meta::controller_uid(rs) == Some(meta::uid(d)))
        .collect();
    owned.sort_by_key(|rs| {
        rs["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            .to_string()
    });
    owned
}

/// The Deployment's ReplicaSet for its current template, as a pass finds it.
#[derive(Debug)]
pub enum NewReplicaSet {
    /// Cached, with the newest revision.
    Current(Arc<Value>),
    /// To be created (revision: the newest + 1, no replicas yet), or — rolling back to an older
    /// template — updated to the newest revision + 1. The rest of the pass is planned on the
    /// object the API answers with (its uid and resourceVersion go into the scaling writes).
    Make(Write),
}

/// A value with what says nothing left out — `null`, `{}`, `[]`, recursively — so that two
/// templates compare as Kubernetes' semantic equality compares them (a template patched back
/// by `kubectl rollout undo` carries Go's empty structs, `resources: {}` and the like).
fn semantic(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), semantic(x)))
                .filter(|(_, x)| !says_nothing(x))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

fn says_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether `rs` runs the Deployment's template, its `pod-template-hash` label aside
/// (Kubernetes' `EqualIgnoreHash`).
fn runs_template(rs: &Value, d: &Value) -> bool {
    let mut t = rs["spec"]["template"].clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    semantic(&t) == semantic(&d["spec"]["template"])
}

/// The ReplicaSet of the Deployment's template among `owned`, if there is one: the one named
/// `<deployment>-<pod-template-hash>`, else one whose template is semantically the same.
pub fn existing_replicaset<'a>(d: &Value, owned: &'a [Arc<Value>]) -> Option<&'a Arc<Value>> {
    let new_name = format!(
        "{}-{}",
        meta::name(d),
        pod_template_hash(&d["spec"]["template"])
    );
    owned
        .iter()
        .find(|rs| meta::name(rs) == new_name)
        .or_else(|| owned.iter().find(|rs| runs_template(rs, d)))
}

/// Whether the Deployment is paused (`kubectl rollout pause`).
pub fn paused(d: &Value) -> bool {
    d["spec"]["paused"].as_bool() == Some(true)
}

/// Finds, or plans, the ReplicaSet of the Deployment's template among `owned`: the one named
/// `<deployment>-<pod-template-hash>`, else one whose template is semantically the same (a
/// rollback through `kubectl rollout undo` writes the old ReplicaSet's template back, with
/// Go's empty values, so its hash differs).
pub fn new_replicaset(d: &Value, owned: &[Arc<Value>]) -> NewReplicaSet {
    let hash = pod_template_hash(&d["spec"]["template"]);
    let max_revision = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0);
    match existing_replicaset(d, owned) {
        Some(rs) if revision(rs) < max_revision => {
            // Rolling back to an older template: it becomes the newest revision.
            let mut rs2 = (**rs).clone();
            meta::set_annotation(&mut rs2, REVISION, &(max_revision + 1).to_string());
            NewReplicaSet::Make(Write::Update(rs2))
        }
        Some(rs) => NewReplicaSet::Current(rs.clone()),
        None => NewReplicaSet::Make(Write::Create(build_replicaset(d, &hash, max_revision + 1))),
    }
}

/// The rest of a pass over a Deployment whose ReplicaSet for the current template is `new_rs`
/// (cached, or as the API answered its creation): the ReplicaSets scaled (new first, then the
/// old ones oldest first), drained old ones beyond `revisionHistoryLimit` deleted (lowest
/// revisions first), a `ScalingReplicaSet` Event per scaling, then the status.
pub fn plan(
    d: &Value,
    new_rs: &Arc<Value>,
    owned: &[Arc<Value>],
    now: jiff::Timestamp,
) -> Vec<Write> {
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let new_name = meta::name(new_rs);
    let old: Vec<Arc<Value>> = owned
        .iter()
        .filter(|rs| meta::name(rs) != new_name)
        .cloned()
        .collect();
    let (new_replicas, old_replicas) = target_replicas(d, new_rs, &old, desired);
    let mut writes = Vec::new();
    if new_replicas != replicas(new_rs) {
        writes.push(Write::Update(with_replicas(new_rs, new_replicas)));
    }
    for (rs, r) in old.iter().zip(&old_replicas) {
        if *r != replicas(rs) {
            writes.push(Write::Update(with_replicas(rs, *r)));
        }
    }
    writes.extend(beyond_history(d, &old, &old_replicas));
    let events = scaling_events(d, owned, &writes);
    writes.extend(events);
    writes.push(Write::UpdateStatus(
        ObjectKey::of(d),
        status(d, Some(new_rs), &old, desired, now),
    ));
    writes
}

/// A pass over a paused Deployment, as Kubernetes' `sync`: no ReplicaSet is made for a new
/// template (`new_rs` is the one of the current template if it exists) and none is drained
/// into another — only scaled to `spec.replicas`: the one active (or else the newest)
/// ReplicaSet to the count, several active ones proportionally within the surge. History is
/// kept; `Progressing` says `DeploymentPaused`.
pub fn plan_paused(
    d: &Value,
    new_rs: Option<&Arc<Value>>,
    owned: &[Arc<Value>],
    now: jiff::Timestamp,
) -> Vec<Write> {
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let new_name = new_rs.map(|rs| meta::name(rs));
    let old: Vec<Arc<Value>> = owned
        .iter()
        .filter(|rs| Some(meta::name(rs)) != new_name)
        .cloned()
        .collect();
    let targets = paused_replicas(d, new_rs, &old, desired);
    let mut writes: Vec<Write> = new_rs
        .into_iter()
        .chain(&old)
        .zip(&targets)
        .filter(|(rs, r)| replicas(rs) != **r)
        .map(|(rs, r)| Write::Update(with_replicas(rs, *r)))
        .collect();
    writes.extend(beyond_history(
        d,
        &old,
        &targets[targets.len() - old.len()..],
    ));
    let events = scaling_events(d, owned, &writes);
    writes.extend(events);
    writes.push(Write::UpdateStatus(
        ObjectKey::of(d),
        status(d, new_rs.map(|rs| &**rs), &old, desired, now),
    ));
    writes
}

/// Kubernetes' `scale` of a paused Deployment: the replicas of `new_rs` (if any) then each
/// of `old`, in that order.
fn paused_replicas(
    d: &Value,
    new_rs: Option<&Arc<Value>>,
    old: &[Arc<Value>],
    desired: i64,
) -> Vec<i64> {
    let all: Vec<&Arc<Value>> = new_rs.into_iter().chain(old).collect();
    let mut targets: Vec<i64> = all.iter().map(|rs| replicas(rs)).collect();
    let active: Vec<usize> = (0..all.len()).filter(|&i| targets[i] > 0).collect();
    match active.len() {
        0 => {
            // None active: the new one, else the newest.
            let newest =
                (0..all.len()).max_by_key(|&i| (new_rs.is_some() && i == 0, revision(all[i])));
            if let Some(i) = newest {
                targets[i] = desired;
            }
        }
        1 => targets[active[0]] = desired,
        _ => {
            // Several active (paused mid-rollout): the difference shared in proportion to
            // their sizes, what rounding leaves to the largest.
            let strategy = strategy(d);
            let surge = if is_recreate(&strategy) {
                0
            } else {
                scaled(bounds(&strategy).0, desired, true)
            };
            let total: i64 = active.iter().map(|&i| targets[i]).sum();
            let to_add = desired + surge - total;
            if to_add != 0 {
                let mut added = 0;
                for &i in &active {
                    let share = to_add * targets[i] / total;
                    targets[i] = (targets[i] + share).max(0);
                    added += share;
                }
                let largest = *active.iter().max_by_key(|&&i| targets[i]).expect("several");
                targets[largest] = (targets[largest] + to_add - added).max(0);
            }
        }
    }
    targets
}

/// The replicas the new ReplicaSet and each old one should have after this pass.
fn target_replicas(d: &Value, new_rs: &Value, old: &[Arc<Value>], desired: i64) -> (i64, Vec<i64>) {
    let strategy = strategy(d);
    let mut new_replicas = replicas(new_rs);
    let mut old_replicas: Vec<i64> = old.iter().map(|rs| replicas(rs)).collect();
    if is_recreate(&strategy) {
        if old_replicas.iter().any(|&r| r > 0) {
            old_replicas.iter_mut().for_each(|r| *r = 0);
        } else if old.iter().all(|rs| pods(rs) == 0) {
            new_replicas = desired;
        }
        return (new_replicas, old_replicas);
    }
    let (surge, unavailable) = bounds(&strategy);
    let max_surge = scaled(surge, desired, true);
    let mut max_unavailable = scaled(unavailable, desired, false);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    // Scale the new ReplicaSet up within the surge.
    if new_replicas > desired {
        new_replicas = desired;
    } else {
        let total: i64 = new_replicas + old_replicas.iter().sum::<i64>();
        let room = desired + max_surge - total;
        if room > 0 {
            new_replicas = desired.min(new_replicas + room);
        }
    }
    // Scale old ReplicaSets down while enough pods stay available.
    let min_available = desired - max_unavailable;
    let available_now: i64 = available(new_rs) + old.iter().map(|rs| available(rs)).sum::<i64>();
    let mut can_remove = (available_now - min_available).max(0);
    for (rs, r) in old.iter().zip(old_replicas.iter_mut()) {
        // Unavailable old pods help nobody: remove them first.
        let unhealthy = (*r - available(rs)).max(0);
        *r -= unhealthy;
    }
    for r in old_replicas.iter_mut() {
        let take = can_remove.min(*r);
        *r -= take;
        can_remove -= take;
    }
    if old.is_empty() {
        new_replicas = desired;
    }
    (new_replicas, old_replicas)
}

/// History: the drained old ReplicaSets beyond `revisionHistoryLimit`, lowest revisions first.
fn beyond_history(d: &Value, old: &[Arc<Value>], old_replicas: &[i64]) -> Vec<Write> {
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let drained: Vec<&Arc<Value>> = old
        .iter()
        .zip(old_replicas)
        .filter(|(rs, r)| **r == 0 && pods(rs) == 0)
        .map(|(rs, _)| rs)
        .collect();
    if drained.len() <= limit {
        return Vec::new();
    }
    let mut by_revision = drained.clone();
    by_revision.sort_by_key(|rs| revision(rs));
    by_revision[..drained.len() - limit]
        .iter()
        .map(|rs| Write::Delete(ObjectKey::of(rs)))
        .collect()
}

/// A `ScalingReplicaSet` Event about the Deployment for each ReplicaSet update among `writes`
/// (from its replicas in `owned`, 0 for one this pass created).
fn scaling_events(d: &Value, owned: &[Arc<Value>], writes: &[Write]) -> Vec<Write> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Update(rs) => {
                let before = owned
                    .iter()
                    .find(|o| meta::name(o) == meta::name(rs))
                    .map_or(0, |o| replicas(o));
                let (name, after) = (meta::name(rs), replicas(rs));
                let how = if after > before { "up" } else { "down" };
                Some(Write::Event(Event {
                    about: d.clone(),
                    kind: crate::client::events::Type::Normal,
                    reason: "ScalingReplicaSet",
                    message: format!("Scaled {how} replica set {name} from {before} to {after}"),
                    source: crate::client::events::Source::DeploymentController,
                }))
            }
            _ => None,
        })
        .collect()
}

/// The Deployment's own `deployment.kubernetes.io/revision` annotation brought to its new
/// ReplicaSet's, as the Kubernetes controller keeps it: `kubectl rollout undo` replaces
/// `/metadata/annotations` with a JSON patch, which fails on a Deployment without any.
pub fn revision_annotation(d: &Value, new_rs: &Value) -> Option<Write> {
    let rev = revision(new_rs).to_string();
    if meta::annotation(d, REVISION) == Some(rev.as_str()) {
        return None;
    }
    let mut d2 = d.clone();
    meta::set_annotation(&mut d2, REVISION, &rev);
    Some(Write::Update(d2))
}

/// Reconciles one Deployment: makes its ReplicaSet for the current template if needed, brings
/// its revision annotation up to date, then performs the rest of the plan, in order. A paused
/// one is only scaled (`plan_paused`).
pub async fn reconcile(view: &View, d: &Value) -> Result<(), WriteError> {
    let now = jiff::Timestamp::now();
    let owned = owned(d, view.list("ReplicaSet", Some(meta::namespace(d))));
    if paused(d) {
        let new_rs = existing_replicaset(d, &owned).cloned();
        return execute_all(view, plan_paused(d, new_rs.as_ref(), &owned, now)).await;
    }
    let new_rs = match new_replicaset(d, &owned) {
        NewReplicaSet::Current(rs) => rs,
        NewReplicaSet::Make(write) => Arc::new(
            execute(view, write)
                .await?
                .expect("a creation or an update answers with the object"),
        ),
    };
    if let Some(w) = revision_annotation(d, &new_rs) {
        execute(view, w).await?;
    }
    execute_all(view, plan(d, &new_rs, &owned, now)).await
}

/// `now` as the API writes times: RFC 3339, whole seconds.
fn rfc3339(now: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// The Deployment's condition of type `t`, as last written.
fn previous_condition<'a>(d: &'a Value, t: &str) -> Option<&'a Value> {
    d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
}

/// A condition; `lastTransitionTime` is kept from the previous one of its type while the
/// status stays, `lastUpdateTime` while status and reason stay.
fn condition(d: &Value, t: &str, status: &str, reason: &str, message: String, now: &str) -> Value {
    let previous = previous_condition(d, t);
    let same = previous.filter(|p| p["status"] == status);
    let same_reason = same.filter(|p| p["reason"] == reason);
    json!({
        "type": t,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": same.map_or(json!(now), |p| p["lastTransitionTime"].clone()),
        "lastUpdateTime": same_reason.map_or(json!(now), |p| p["lastUpdateTime"].clone()),
    })
}

/// The Deployment's status from its ReplicaSets' (`new_rs` as the API answered, the old ones as
/// cached).
fn status(
    d: &Value,
    new_rs: Option<&Value>,
    old: &[Arc<Value>],
    desired: i64,
    now: jiff::Timestamp,
) -> Value {
    let all = new_rs.into_iter().chain(old.iter().map(|rs| &**rs));
    let (mut total, mut ready, mut available) = (0, 0, 0);
    for rs in all {
        let (rs_pods, rs_ready, rs_available) = counts(rs);
        total += rs_pods;
        ready += rs_ready;
        available += rs_available;
    }
    let updated = new_rs.map_or(0, pods);
    let strategy = strategy(d);
    let max_unavailable = if is_recreate(&strategy) {
        0
    } else {
        scaled(bounds(&strategy).1, desired, false)
    };
    let now_text = rfc3339(now);
    let available_cond = if available >= desired - max_unavailable {
        condition(
            d,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            &now_text,
        )
    } else {
        condition(
            d,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            &now_text,
        )
    };
    let progressing = match new_rs {
        _ if paused(d) => paused_condition(d, &now_text),
        Some(new_rs) => {
            let complete = updated == desired
                && total == desired
                && available == desired
                && rs_status(new_rs).observed_generation.unwrap_or(0)
                    >= new_rs["metadata"]["generation"].as_i64().unwrap_or(0);
            progressing(d, meta::name(new_rs), complete, updated, available, now)
        }
        None => unreachable!("only a paused Deployment is planned without its ReplicaSet"),
    };
    json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": [available_cond, progressing],
    })
}

/// `Progressing` of a paused Deployment, as Kubernetes' `checkPausedConditions` writes it
/// (a reported lack of progress is kept).
fn paused_condition(d: &Value, now: &str) -> Value {
    match previous_condition(d, "Progressing") {
        Some(p) if p["reason"] == "ProgressDeadlineExceeded" => p.clone(),
        _ => condition(
            d,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            now,
        ),
    }
}

/// The `Progressing` condition: complete; resumed (the pass after a pause, until progress); progressing (a change in the counts or the
/// generation restarts the deadline); or past `progressDeadlineSeconds` without a change.
fn progressing(
    d: &Value,
    rs_name: &str,
    complete: bool,
    updated: i64,
    available: i64,
    now: jiff::Timestamp,
) -> Value {
    let now_text = rfc3339(now);
    if complete {
        return condition(
            d,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {rs_name:?} has successfully progressed."),
            &now_text,
        );
    }
    if previous_condition(d, "Progressing").is_some_and(|p| p["reason"] == "DeploymentPaused") {
        return condition(
            d,
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            &now_text,
        );
    }
    let old_status = &d["status"];
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
    let prev = previous_condition(d, "Progressing");
    let counts_changed = old_status["updatedReplicas"].as_i64().unwrap_or(-1) != updated
        || old_status["availableReplicas"].as_i64().unwrap_or(-1) != available
        || old_status["observedGeneration"] != d["metadata"]["generation"];
    let since = prev
        .filter(|p| p["reason"] == "ReplicaSetUpdated" && !counts_changed)
        .and_then(|p| p["lastUpdateTime"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let overdue = since.is_some_and(|t| now.as_second() - t.as_second() > deadline);
    let already_overdue =
        prev.is_some_and(|p| p["reason"] == "ProgressDeadlineExceeded") && !counts_changed;
    if overdue || already_overdue {
        return condition(
            d,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet {rs_name:?} has timed out progressing."),
            &now_text,
        );
    }
    let mut c = condition(
        d,
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        format!("ReplicaSet {rs_name:?} is progressing."),
        &now_text,
    );
    if counts_changed || prev.is_none_or(|p| p["reason"] != "ReplicaSetUpdated") {
        // Progress was made: a fresh lastUpdateTime restarts the deadline.
        c["lastUpdateTime"] = json!(now_text);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::plan::describe;

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    fn rolling(max_surge: Value, max_unavailable: Value) -> Value {
        json!({"type": "RollingUpdate",
               "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable}})
    }

    /// A Deployment `web` as the API serves it (defaults filled in).
    fn deployment(replicas: i64, strategy: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
          "spec": {"replicas": replicas, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
            "template": {"metadata": {"labels": {"app": "web"}},
              "spec": {"containers": [{"name": "web", "image": "demo:1"}]}}}})
    }

    fn hash(d: &Value) -> String {
        pod_template_hash(&d["spec"]["template"])
    }

    /// A ReplicaSet of `web`: `spec.replicas`, and `status` with that many pods of which
    /// `available` are available (and ready).
    fn rs(name: &str, revision: i64, replicas: i64, available: i64, created: &str) -> Arc<Value> {
        Arc::new(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
            "generation": 1, "creationTimestamp": created, "resourceVersion": "7",
            "annotations": {REVISION: revision.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
              "uid": "d-uid", "controller": true, "blockOwnerDeletion": true}]},
          "spec": {"replicas": replicas},
          "status": {"replicas": replicas, "readyReplicas": available,
            "availableReplicas": available, "observedGeneration": 1}}))
    }

    /// The ReplicaSet of the Deployment's current template.
    fn current(d: &Value, revision: i64, replicas: i64, available: i64) -> Arc<Value> {
        rs(
            &format!("web-{}", hash(d)),
            revision,
            replicas,
            available,
            "2026-01-01T11:00:00Z",
        )
    }

    /// The writes, with each ReplicaSet update as its new replica count.
    #[test]
    fn a_template_written_back_with_empty_values_finds_its_replicaset() {
        let d = deployment(2, json!({}));
        let mut old = (*current(&d, 1, 0, 0)).clone();
        old["spec"]["template"] = d["spec"]["template"].clone();
        old["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] = json!(hash(&d));
        let old = Arc::new(old);
        let newer = rs("web-other", 2, 2, 2, "2026-01-01T12:00:00Z");
        let mut back = d.clone();
        // What `kubectl rollout undo` patches in: the old ReplicaSet's template, Go-serialized.
        back["spec"]["template"] = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "demo:1", "resources": {}}],
                     "securityContext": {}}});
        assert_ne!(hash(&back), hash(&d), "the hash differs");
        let NewReplicaSet::Make(Write::Update(raised)) = new_replicaset(&back, &[old, newer])
        else {
            panic!("the old ReplicaSet is raised to the newest revision");
        };
        assert_eq!(meta::name(&raised), format!("web-{}", hash(&d)));
        assert_eq!(meta::annotation(&raised, REVISION), Some("3"));
    }

    #[test]
    fn the_deployment_carries_its_new_replicasets_revision() {
        let d = deployment(3, json!({}));
        let rs = current(&d, 4, 3, 3);
        let Some(Write::Update(d2)) = revision_annotation(&d, &rs) else {
            panic!("an annotation to write");
        };
        assert_eq!(meta::annotation(&d2, REVISION), Some("4"));
        assert_eq!(d2["spec"], d["spec"], "only the annotation changes");
        assert!(revision_annotation(&d2, &rs).is_none(), "written once");
    }

    fn lines(writes: &[Write]) -> Vec<String> {
        describe(writes)
            .into_iter()
            .zip(writes)
            .map(|(line, w)| match w {
                Write::Update(o) => format!("scale {} to {}", meta::name(o), replicas(o)),
                _ => line,
            })
            .collect()
    }

    fn status_of(writes: &[Write]) -> &Value {
        match writes.last() {
            Some(Write::UpdateStatus(k, s)) if k.kind == "Deployment" => s,
            other => panic!("the last write is not the status: {other:?}"),
        }
    }

    fn condition_of<'a>(status: &'a Value, t: &str) -> &'a Value {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()
    }

    #[test]
    fn pod_template_hash_is_stable() {
        // ReplicaSets are found by this name: a change would replace every pod on upgrade.
        // (FNV-1a of {"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"demo:1","name":"web"}]}}.)
        let d = deployment(1, rolling(json!("25%"), json!("25%")));
        assert_eq!(hash(&d), "59b8cdcd9c");
    }

    #[test]
    fn a_new_template_creates_its_replicaset_with_the_next_revision_and_no_replicas() {
        let d = deployment(3, rolling(json!("25%"), json!("25%")));
        let old = rs("web-old", 4, 3, 3, "2026-01-01T10:00:00Z");
        let NewReplicaSet::Make(Write::Create(made)) = new_replicaset(&d, &[old]) else {
            panic!("no creation");
        };
        let h = hash(&d);
        assert_eq!(meta::name(&made), format!("web-{h}"));
        assert_eq!(meta::namespace(&made), "default");
        assert_eq!(meta::annotation(&made, REVISION), Some("5"));
        assert_eq!(
            meta::annotation(&made, "deployment.kubernetes.io/desired-replicas"),
            Some("3")
        );
        assert_eq!(made["spec"]["replicas"], 0);
        assert_eq!(
            made["spec"]["selector"]["matchLabels"]["pod-template-hash"],
            h
        );
        assert_eq!(
            made["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
            h
        );
        assert_eq!(made["metadata"]["labels"]["app"], "web");
        assert_eq!(meta::controller_uid(&made), Some("d-uid"));
    }

    #[test]
    fn the_current_templates_replicaset_is_used_as_cached() {
        let d = deployment(3, rolling(json!("25%"), json!("25%")));
        let cur = current(&d, 2, 3, 3);
        let old = rs("web-old", 1, 0, 0, "2026-01-01T10:00:00Z");
        match new_replicaset(&d, &[old, cur.clone()]) {
            NewReplicaSet::Current(found) => assert_eq!(found, cur),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rolling_back_to_an_older_template_raises_its_revision() {
        let d = deployment(3, rolling(json!("25%"), json!("25%")));
        let back = current(&d, 1, 0, 0);
        let newer = rs("web-newer", 2, 3, 3, "2026-01-01T11:30:00Z");
        let NewReplicaSet::Make(Write::Update(raised)) = new_replicaset(&d, &[back, newer]) else {
            panic!("no update");
        };
        assert_eq!(meta::annotation(&raised, REVISION), Some("3"));
        assert_eq!(raised["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn owned_keeps_the_deployments_replicasets_oldest_first() {
        let d = deployment(1, rolling(json!(1), json!(0)));
        let mut foreign = (*rs("other", 1, 1, 1, "2026-01-01T09:00:00Z")).clone();
        foreign["metadata"]["ownerReferences"][0]["uid"] = json!("other-uid");
        let found = owned(
            &d,
            vec![
                rs("web-b", 2, 1, 1, "2026-01-01T11:00:00Z"),
                Arc::new(foreign),
                rs("web-a", 1, 0, 0, "2026-01-01T10:00:00Z"),
            ],
        );
        let names: Vec<&str> = found.iter().map(|rs| meta::name(rs)).collect();
        assert_eq!(names, ["web-a", "web-b"]);
    }

    #[test]
    fn a_first_replicaset_scales_to_the_desired_count_at_once() {
        let d = deployment(3, rolling(json!("25%"), json!("25%")));
        let made = current(&d, 1, 0, 0);
        let writes = plan(&d, &made, &[], now());
        let name = meta::name(&made);
        assert_eq!(
            lines(&writes),
            [
                format!("scale {name} to 3"),
                format!("event ScalingReplicaSet: Scaled up replica set {name} from 0 to 3"),
                "status Deployment default/web".to_string(),
            ]
        );
    }

    #[test]
    fn a_replicaset_without_status_yet_counts_no_pods() {
        // As the API answers a creation: no status.
        let d = deployment(2, rolling(json!("25%"), json!("25%")));
        let mut made = (*current(&d, 1, 0, 0)).clone();
        made.as_object_mut().unwrap().remove("status");
        let made = Arc::new(made);
        let writes = plan(&d, &made, std::slice::from_ref(&made), now());
        assert_eq!(
            lines(&writes)[0],
            format!("scale {} to 2", meta::name(&made))
        );
        let status = status_of(&writes);
        assert_eq!(status["replicas"], 0);
        assert_eq!(status["availableReplicas"], 0);
        assert_eq!(status["unavailableReplicas"], 2);
    }

    #[test]
    fn without_a_strategy_a_rollout_allows_one_unavailable_pod_and_no_surge() {
        let mut d = deployment(2, json!(null));
        d["spec"].as_object_mut().unwrap().remove("strategy");
        let old = rs("web-old", 1, 2, 2, "2026-01-01T10:00:00Z");
        let new = current(&d, 2, 0, 0);
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(
            lines(&writes)[..2],
            [
                "scale web-old to 1",
                "event ScalingReplicaSet: Scaled down replica set web-old from 2 to 1"
            ]
        );
    }

    #[test]
    fn a_rolling_update_surges_and_drains_within_its_bounds() {
        let d = deployment(4, rolling(json!(1), json!(1)));
        let old = rs("web-old", 1, 4, 4, "2026-01-01T10:00:00Z");
        let new = current(&d, 2, 0, 0);
        let name = meta::name(&new).to_string();
        // One pod above the desired count, one below the available minimum.
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(
            lines(&writes),
            [
                format!("scale {name} to 1"),
                "scale web-old to 3".to_string(),
                format!("event ScalingReplicaSet: Scaled up replica set {name} from 0 to 1"),
                "event ScalingReplicaSet: Scaled down replica set web-old from 4 to 3".into(),
                "status Deployment default/web".into(),
            ]
        );
        // The new pod is not available yet: the surge grows, the old pods stay.
        let old = rs("web-old", 1, 3, 3, "2026-01-01T10:00:00Z");
        let new = current(&d, 2, 1, 0);
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(
            lines(&writes),
            [
                format!("scale {name} to 2"),
                format!("event ScalingReplicaSet: Scaled up replica set {name} from 1 to 2"),
                "status Deployment default/web".into(),
            ]
        );
        // Both new pods available: two old ones may go.
        let old = rs("web-old", 1, 3, 3, "2026-01-01T10:00:00Z");
        let new = current(&d, 2, 2, 2);
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(lines(&writes)[0], "scale web-old to 1");
    }

    #[test]
    fn rolling_percentages_round_the_surge_up_and_unavailability_down() {
        // 25% of 3: a surge of 1, no unavailability — the old pods wait for the new one.
        let d = deployment(3, rolling(json!("25%"), json!("25%")));
        let old = rs("web-old", 1, 3, 3, "2026-01-01T10:00:00Z");
        let new = current(&d, 2, 0, 0);
        let writes = plan(&d, &new, &[old, new.clone()], now());
        let name = meta::name(&new);
        assert_eq!(lines(&writes)[0], format!("scale {name} to 1"));
        assert!(!lines(&writes)
            .iter()
            .any(|l| l.starts_with("scale web-old")));
    }

    #[test]
    fn no_surge_and_no_unavailability_still_allow_one_unavailable() {
        let d = deployment(2, rolling(json!(0), json!(0)));
        let old = rs("web-old", 1, 2, 2, "2026-01-01T10:00:00Z");
        let new = current(&d, 2, 0, 0);
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(lines(&writes)[0], "scale web-old to 1");
    }

    #[test]
    fn unavailable_old_pods_go_first_whatever_the_bounds() {
        let d = deployment(3, rolling(json!(0), json!(1)));
        // Three old pods, one available: the two others help nobody.
        let old = rs("web-old", 1, 3, 1, "2026-01-01T10:00:00Z");
        let new = current(&d, 2, 0, 0);
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(lines(&writes)[0], "scale web-old to 1");
    }

    #[test]
    fn recreate_drains_the_old_pods_before_any_new_one() {
        let recreate = json!({"type": "Recreate"});
        let d = deployment(2, recreate);
        let new = current(&d, 2, 0, 0);
        let name = meta::name(&new).to_string();
        let old = rs("web-old", 1, 2, 2, "2026-01-01T10:00:00Z");
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(
            lines(&writes),
            [
                "scale web-old to 0".to_string(),
                "event ScalingReplicaSet: Scaled down replica set web-old from 2 to 0".into(),
                "status Deployment default/web".into(),
            ]
        );
        // Scaled to 0, but its pods are still terminating: nothing yet.
        let mut terminating = (*rs("web-old", 1, 0, 0, "2026-01-01T10:00:00Z")).clone();
        terminating["status"]["replicas"] = json!(2);
        let writes = plan(&d, &new, &[Arc::new(terminating), new.clone()], now());
        assert_eq!(lines(&writes), ["status Deployment default/web"]);
        // Gone: the new ReplicaSet gets every pod at once.
        let old = rs("web-old", 1, 0, 0, "2026-01-01T10:00:00Z");
        let writes = plan(&d, &new, &[old, new.clone()], now());
        assert_eq!(lines(&writes)[0], format!("scale {name} to 2"));
    }

    #[test]
    fn scaling_moves_the_current_replicaset_up_and_down() {
        let up = deployment(5, rolling(json!("25%"), json!("25%")));
        let new = current(&up, 1, 3, 3);
        let name = meta::name(&new).to_string();
        let writes = plan(&up, &new, std::slice::from_ref(&new), now());
        assert_eq!(
            lines(&writes)[..2],
            [
                format!("scale {name} to 5"),
                format!("event ScalingReplicaSet: Scaled up replica set {name} from 3 to 5"),
            ]
        );
        let down = deployment(1, rolling(json!("25%"), json!("25%")));
        let writes = plan(&down, &new, std::slice::from_ref(&new), now());
        assert_eq!(
            lines(&writes)[..2],
            [
                format!("scale {name} to 1"),
                format!("event ScalingReplicaSet: Scaled down replica set {name} from 3 to 1"),
            ]
        );
        // At the count: only the status.
        let at = deployment(3, rolling(json!("25%"), json!("25%")));
        let writes = plan(&at, &new, std::slice::from_ref(&new), now());
        assert_eq!(lines(&writes), ["status Deployment default/web"]);
    }

    #[test]
    fn drained_replicasets_beyond_the_history_limit_are_deleted_oldest_revision_first() {
        let mut d = deployment(1, rolling(json!("25%"), json!("25%")));
        d["spec"]["revisionHistoryLimit"] = json!(1);
        let new = current(&d, 5, 1, 1);
        let owned = [
            rs("web-r3", 3, 0, 0, "2026-01-01T09:00:00Z"),
            rs("web-r1", 1, 0, 0, "2026-01-01T09:30:00Z"),
            rs("web-r2", 2, 0, 0, "2026-01-01T10:00:00Z"),
            // Still has pods: not history yet.
            rs("web-r4", 4, 1, 1, "2026-01-01T10:30:00Z"),
            new.clone(),
        ];
        let writes = plan(&d, &new, &owned, now());
        let deletes: Vec<String> = lines(&writes)
            .into_iter()
            .filter(|l| l.starts_with("delete"))
            .collect();
        assert_eq!(
            deletes,
            [
                "delete ReplicaSet default/web-r1",
                "delete ReplicaSet default/web-r2"
            ]
        );
        // The writes come in order: scaling, deletions, events, status.
        assert_eq!(
            lines(&writes),
            [
                "scale web-r4 to 0",
                "delete ReplicaSet default/web-r1",
                "delete ReplicaSet default/web-r2",
                "event ScalingReplicaSet: Scaled down replica set web-r4 from 1 to 0",
                "status Deployment default/web",
            ]
        );
    }

    #[test]
    fn a_complete_rollout_reports_counts_and_both_conditions_true() {
        let mut d = deployment(2, rolling(json!("25%"), json!("25%")));
        d["metadata"]["generation"] = json!(3);
        let new = current(&d, 2, 2, 2);
        let old = rs("web-old", 1, 0, 0, "2026-01-01T10:00:00Z");
        let writes = plan(&d, &new, &[old, new.clone()], now());
        let status = status_of(&writes);
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(status["replicas"], 2);
        assert_eq!(status["updatedReplicas"], 2);
        assert_eq!(status["readyReplicas"], 2);
        assert_eq!(status["availableReplicas"], 2);
        assert_eq!(status["unavailableReplicas"], 0);
        let available = condition_of(status, "Available");
        assert_eq!(available["status"], "True");
        assert_eq!(available["reason"], "MinimumReplicasAvailable");
        assert_eq!(available["lastTransitionTime"], NOW);
        let progressing = condition_of(status, "Progressing");
        assert_eq!(progressing["status"], "True");
        assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            progressing["message"],
            format!(
                "ReplicaSet \"{}\" has successfully progressed.",
                meta::name(&new)
            )
        );
    }

    #[test]
    fn below_the_available_minimum_the_deployment_is_unavailable_and_progressing() {
        let d = deployment(4, rolling(json!(1), json!(1)));
        let new = current(&d, 2, 4, 2);
        let writes = plan(&d, &new, std::slice::from_ref(&new), now());
        let status = status_of(&writes);
        assert_eq!(status["unavailableReplicas"], 2);
        let available = condition_of(status, "Available");
        assert_eq!(available["status"], "False");
        assert_eq!(available["reason"], "MinimumReplicasUnavailable");
        let progressing = condition_of(status, "Progressing");
        assert_eq!(progressing["reason"], "ReplicaSetUpdated");
        assert_eq!(progressing["lastUpdateTime"], NOW);
    }

    #[test]
    fn condition_times_are_kept_while_status_and_reason_stay() {
        let mut d = deployment(2, rolling(json!("25%"), json!("25%")));
        d["status"] = json!({"conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "lastTransitionTime": "2025-12-01T00:00:00Z", "lastUpdateTime": "2025-12-02T00:00:00Z"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
             "lastTransitionTime": "2025-12-03T00:00:00Z", "lastUpdateTime": "2025-12-04T00:00:00Z"}]});
        let new = current(&d, 1, 2, 2);
        let writes = plan(&d, &new, std::slice::from_ref(&new), now());
        let status = status_of(&writes);
        let available = condition_of(status, "Available");
        assert_eq!(available["lastTransitionTime"], "2025-12-01T00:00:00Z");
        assert_eq!(available["lastUpdateTime"], "2025-12-02T00:00:00Z");
        // Same status, new reason: the transition stays, the update is now.
        let progressing = condition_of(status, "Progressing");
        assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
        assert_eq!(progressing["lastTransitionTime"], "2025-12-03T00:00:00Z");
        assert_eq!(progressing["lastUpdateTime"], NOW);
    }

    /// A Deployment mid-rollout whose last status showed the same counts, progressing since
    /// `since`.
    fn stalled(since: &str, reason: &str) -> (Value, Arc<Value>) {
        let mut d = deployment(2, rolling(json!(1), json!(0)));
        d["status"] = json!({"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 0,
          "conditions": [{"type": "Progressing", "status": "True", "reason": reason,
            "lastTransitionTime": since, "lastUpdateTime": since}]});
        let new = current(&d, 1, 1, 0);
        (d, new)
    }

    #[test]
    fn no_progress_past_the_deadline_is_reported_as_exceeded() {
        // 601 s without a change in the counts: past the 600 s deadline.
        let (d, new) = stalled("2026-01-01T11:49:59Z", "ReplicaSetUpdated");
        let writes = plan(&d, &new, std::slice::from_ref(&new), now());
        let progressing = condition_of(status_of(&writes), "Progressing");
        assert_eq!(progressing["status"], "False");
        assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
        // Within the deadline: still progressing, and its time is kept.
        let (d, new) = stalled("2026-01-01T11:50:00Z", "ReplicaSetUpdated");
        let writes = plan(&d, &new, std::slice::from_ref(&new), now());
        let progressing = condition_of(status_of(&writes), "Progressing");
        assert_eq!(progressing["reason"], "ReplicaSetUpdated");
        assert_eq!(progressing["lastUpdateTime"], "2026-01-01T11:50:00Z");
    }

    #[test]
    fn progress_after_the_deadline_restarts_it() {
        let (mut d, _) = stalled("2026-01-01T10:00:00Z", "ProgressDeadlineExceeded");
        // Unchanged counts: still exceeded.
        let new = current(&d, 1, 1, 0);
        let writes = plan(&d, &new, std::slice::from_ref(&new), now());
        let progressing = condition_of(status_of(&writes), "Progressing");
        assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
        // One more pod available: progressing again, from now.
        d["status"]["conditions"][0]["status"] = json!("False");
        let new = current(&d, 1, 1, 1);
        let writes = plan(&d, &new, std::slice::from_ref(&new), now());
        let progressing = condition_of(status_of(&writes), "Progressing");
        assert_eq!(progressing["status"], "True");
        assert_eq!(progressing["reason"], "ReplicaSetUpdated");
        assert_eq!(progressing["lastUpdateTime"], NOW);
    }

    #[test]
    fn a_paused_deployment_makes_no_replicaset_for_a_new_template_and_says_paused() {
        let mut d = deployment(2, rolling(json!("25%"), json!("25%")));
        let running = rs("web-old", 1, 2, 2, "2026-01-01T10:00:00Z");
        d["spec"]["paused"] = json!(true);
        // `kubectl set image` while paused: no ReplicaSet of this template exists.
        assert!(existing_replicaset(&d, std::slice::from_ref(&running)).is_none());
        let writes = plan_paused(&d, None, std::slice::from_ref(&running), now());
        assert_eq!(lines(&writes), ["status Deployment default/web"]);
        let status = status_of(&writes);
        // What `kubectl rollout status` reads: none of the new template's pods.
        assert_eq!(status["updatedReplicas"], 0);
        assert_eq!(status["replicas"], 2);
        assert_eq!(status["availableReplicas"], 2);
        let progressing = condition_of(status, "Progressing");
        assert_eq!(progressing["status"], "Unknown");
        assert_eq!(progressing["reason"], "DeploymentPaused");
        assert_eq!(progressing["message"], "Deployment is paused");
        assert_eq!(condition_of(status, "Available")["status"], "True");
    }

    #[test]
    fn a_paused_deployment_still_scales() {
        let mut d = deployment(4, rolling(json!("25%"), json!("25%")));
        d["spec"]["paused"] = json!(true);
        // The one active ReplicaSet (an older template's) goes to the count.
        let running = rs("web-old", 1, 2, 2, "2026-01-01T10:00:00Z");
        let writes = plan_paused(&d, None, std::slice::from_ref(&running), now());
        assert_eq!(
            lines(&writes)[..2],
            [
                "scale web-old to 4",
                "event ScalingReplicaSet: Scaled up replica set web-old from 2 to 4"
            ]
        );
        // Paused mid-rollout (3 old + 1 new of 4): scaled to 8, in proportion, up to the
        // surge of 2.
        d["spec"]["replicas"] = json!(8);
        let new = current(&d, 2, 1, 1);
        let old = rs("web-old", 1, 3, 3, "2026-01-01T10:00:00Z");
        let owned = [old.clone(), new.clone()];
        let writes = plan_paused(&d, Some(&new), &owned, now());
        let scaled: Vec<String> = lines(&writes)
            .into_iter()
            .filter(|l| l.starts_with("scale"))
            .collect();
        let new_name = meta::name(&new);
        // 6 to add: 1/4 of it to the new one, 3/4 to the old one, the rounding to the old.
        assert_eq!(
            scaled,
            [
                format!("scale {new_name} to 2"),
                "scale web-old to 8".to_string()
            ]
        );
        assert_eq!(status_of(&writes)["updatedReplicas"], 1);
    }

    #[test]
    fn a_resumed_deployment_rolls_its_template_and_says_resumed() {
        let mut d = deployment(2, rolling(json!("25%"), json!("25%")));
        d["status"] = json!({"observedGeneration": 1, "updatedReplicas": 0,
            "availableReplicas": 2, "conditions": [{"type": "Progressing", "status": "Unknown",
            "reason": "DeploymentPaused", "message": "Deployment is paused",
            "lastTransitionTime": "2026-01-01T11:00:00Z",
            "lastUpdateTime": "2026-01-01T11:00:00Z"}]});
        let old = rs("web-old", 1, 2, 2, "2026-01-01T10:00:00Z");
        // Not paused any more: the pending template gets its ReplicaSet…
        let NewReplicaSet::Make(Write::Create(made)) =
            new_replicaset(&d, std::slice::from_ref(&old))
        else {
            panic!("the pending template's ReplicaSet is made on resume");
        };
        assert_eq!(revision(&made), 2);
        let mut made = made;
        made["metadata"]["creationTimestamp"] = json!("2026-01-01T12:00:00Z");
        let made = Arc::new(made);
        let writes = plan(&d, &made, &[old, made.clone()], now());
        assert_eq!(
            lines(&writes)[0],
            format!("scale {} to 1", meta::name(&made))
        );
        let progressing = condition_of(status_of(&writes), "Progressing");
        assert_eq!(progressing["status"], "Unknown");
        assert_eq!(progressing["reason"], "DeploymentResumed");
        assert_eq!(progressing["message"], "Deployment is resumed");
        // …and the pass after that reports progress as usual.
        d["status"]["conditions"] = json!([progressing]);
        let writes = plan(&d, &made, std::slice::from_ref(&made), now());
        assert_eq!(
            condition_of(status_of(&writes), "Progressing")["reason"],
            "ReplicaSetUpdated"
        );
    }
}
