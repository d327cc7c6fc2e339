//! The StatefulSet reconciler: Pods with stable names `<set>-<ordinal>` (hostname the pod's
//! name, subdomain the set's `serviceName`, so the headless Service gives each a DNS name), each
//! owned by the set; one ControllerRevision `<set>-<hash>` per template, holding the patch
//! `kubectl rollout undo` applies (`{"spec":{"template":{…,"$patch":"replace"}}}`).
//!
//! As Kubernetes' controller: `OrderedReady` creates ordinal i only once 0..i-1 are Running
//! and Ready (and available, with `minReadySeconds`) and removes from the highest ordinal, one
//! at a time; `Parallel` does both at once. `RollingUpdate` replaces pods of another revision
//! from the highest ordinal down to `partition`, within `maxUnavailable` (default 1: each
//! replacement waits for the previous to be ready); `OnDelete` replaces only pods deleted by
//! someone else. Each ordinal gets a claim per `volumeClaimTemplates` entry,
//! `<template>-<set>-<ordinal>`, made before its pod and mounted by it; claims outlive pod
//! replacement, scale-down and the set (`persistentVolumeClaimRetentionPolicy` Retain, the
//! default; `whenScaled: Delete` deletes a removed ordinal's claims, `whenDeleted: Delete`
//! makes the set their owner, for the garbage collector).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::plan::{execute_all, Event, Write};
use super::replicaset::{owned_pods, pod_available, pod_ready};
use super::revisions::{self, history, Scheme};
use crate::client::events;
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// The pod label naming its ControllerRevision.
pub const REVISION_LABEL: &str = "controller-revision-hash";
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// What one pass knows: the set, its revisions, the time.
struct Pass<'a> {
    sts: &'a Value,
    /// The revision of the current template.
    update: String,
    /// The revision the pods were at before the update began (the update's, when done).
    current: String,
    /// Each revision's pod template, by revision name.
    templates: BTreeMap<String, Value>,
    /// The namespace's PersistentVolumeClaims, by name.
    claims: BTreeMap<&'a str, &'a Value>,
    now: jiff::Timestamp,
}

/// One pass over a StatefulSet, from the Pods and ControllerRevisions it controls and the
/// namespace's claims (as cached): the revision of its template made (or raised to the
/// newest, after a rollback); Pods created (after the claims of their ordinal), deleted for
/// scale-down or replaced for an update, each with its Event, as the policies allow; old
/// revisions beyond `revisionHistoryLimit` deleted; then the status (counted from the pods as
/// given). Nothing for a set being deleted.
pub fn plan(
    sts: &Value,
    pods: &[Arc<Value>],
    revisions: &[Arc<Value>],
    claims: &[Arc<Value>],
    now: jiff::Timestamp,
) -> Vec<Write> {
    if meta::is_terminating(sts) {
        return Vec::new();
    }
    let (mut pass, mut writes) = revision_writes(sts, revisions, now);
    pass.claims = claims.iter().map(|c| (meta::name(c), &**c)).collect();
    writes.extend(pod_writes(&pass, pods));
    let mut live: BTreeSet<&str> = pods.iter().map(|p| revision_of(p)).collect();
    live.insert(&pass.update);
    live.insert(&pass.current);
    writes.extend(history(sts, revisions, &live));
    writes.push(Write::UpdateStatus(ObjectKey::of(sts), status(&pass, pods)));
    writes
}

/// Reconciles one StatefulSet: performs its plan, in order.
pub async fn reconcile(view: &View, sts: &Value) -> Result<(), WriteError> {
    if meta::is_terminating(sts) {
        return Ok(());
    }
    let ns = meta::namespace(sts);
    let pods = owned_pods(view, ns, meta::uid(sts));
    let revisions: Vec<_> = view
        .list("ControllerRevision", Some(ns))
        .into_iter()
        .filter(|r| meta::controller_uid(r) == Some(meta::uid(sts)))
        .collect();
    let claims = view.list("PersistentVolumeClaim", Some(ns));
    let now = jiff::Timestamp::now();
    execute_all(view, plan(sts, &pods, &revisions, &claims, now)).await
}

/// A pod's revision (its `controller-revision-hash` label).
fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap_or_default()
}

/// The StatefulSet's revisions: labelled with `controller.kubernetes.io/hash`.
const REVISIONS: Scheme = Scheme {
    kind: "StatefulSet",
    hash_label: HASH_LABEL,
};

fn owner_reference(sts: &Value) -> Value {
    revisions::owner_reference(sts, "StatefulSet")
}

/// The pass's revisions, and the write that makes the update revision.
fn revision_writes<'a>(
    sts: &'a Value,
    revisions: &[Arc<Value>],
    now: jiff::Timestamp,
) -> (Pass<'a>, Vec<Write>) {
    let (revs, write) = REVISIONS.update(sts, revisions);
    let current = sts["status"]["currentRevision"]
        .as_str()
        .filter(|c| revs.templates.contains_key(*c))
        .unwrap_or(&revs.update)
        .to_string();
    let pass = Pass {
        sts,
        update: revs.update,
        current,
        templates: revs.templates,
        claims: BTreeMap::new(),
        now,
    };
    (pass, write.into_iter().collect())
}

/// A pod's ordinal, from its name `<set>-<ordinal>`.
fn ordinal(sts: &Value, pod: &Value) -> Option<usize> {
    let rest = meta::name(pod)
        .strip_prefix(meta::name(sts))?
        .strip_prefix('-')?;
    if rest.starts_with('0') && rest != "0" {
        return None;
    }
    rest.parse().ok()
}

fn finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod_ready(pod)
}

impl Pass<'_> {
    fn spec(&self) -> &Value {
        &self.sts["spec"]
    }

    fn replicas(&self) -> usize {
        self.spec()["replicas"].as_i64().unwrap_or(1).max(0) as usize
    }

    /// Running, Ready for `minReadySeconds`, and not going away.
    fn healthy(&self, pod: &Value) -> bool {
        let min_ready = self.spec()["minReadySeconds"].as_i64().unwrap_or(0);
        running_and_ready(pod)
            && pod_available(pod, min_ready, self.now)
            && !meta::is_terminating(pod)
    }

    fn monotonic(&self) -> bool {
        self.spec()["podManagementPolicy"] != "Parallel"
    }

    fn rolling(&self) -> bool {
        self.spec()["updateStrategy"]["type"] != "OnDelete"
    }

    fn partition(&self) -> usize {
        let p = &self.spec()["updateStrategy"]["rollingUpdate"]["partition"];
        p.as_i64().unwrap_or(0).max(0) as usize
    }

    /// `maxUnavailable` against the replicas (a percentage rounds down), at least 1.
    fn max_unavailable(&self) -> usize {
        let v = &self.spec()["updateStrategy"]["rollingUpdate"]["maxUnavailable"];
        let n = match v {
            Value::String(p) => {
                let pct: usize = p.trim_end_matches('%').parse().unwrap_or(0);
                pct * self.replicas() / 100
            }
            v => v.as_u64().unwrap_or(1) as usize,
        };
        n.max(1)
    }

    /// The revision a new pod of `ordinal` takes: below the partition of a rolling update the
    /// current one, else the update's.
    fn revision_for(&self, ordinal: usize) -> &str {
        if self.rolling() && ordinal < self.partition() {
            &self.current
        } else {
            &self.update
        }
    }

    fn event(&self, reason: &'static str, verb: &str, pod: &str) -> Write {
        Write::Event(Event {
            about: self.sts.clone(),
            kind: events::Type::Normal,
            reason,
            message: format!(
                "{verb} Pod {pod} in StatefulSet {} successful",
                meta::name(self.sts)
            ),
            source: events::Source::StatefulSetController,
        })
    }

    /// Pod `ordinal`, after the claims it mounts (none while one of them is going away).
    fn create(&self, ordinal: usize, out: &mut Vec<Write>) {
        let pod_name = format!("{}-{ordinal}", meta::name(self.sts));
        let mut claim_going = false;
        for t in claim_templates(self.sts) {
            let name = claim_name(self.sts, t, ordinal);
            match self.claims.get(name.as_str()) {
                None => {
                    out.push(Write::Create(new_claim(self.sts, t, &name)));
                    out.push(self.claim_event(&name, &pod_name));
                }
                Some(c) => claim_going |= meta::is_terminating(c),
            }
        }
        if claim_going {
            return;
        }
        let revision = self.revision_for(ordinal);
        let template = self
            .templates
            .get(revision)
            .unwrap_or(&self.sts["spec"]["template"]);
        let pod = new_pod(self.sts, template, revision, ordinal);
        out.push(Write::Create(pod));
        out.push(self.event("SuccessfulCreate", "create", &pod_name));
    }

    fn claim_event(&self, claim: &str, pod: &str) -> Write {
        Write::Event(Event {
            about: self.sts.clone(),
            kind: events::Type::Normal,
            reason: "SuccessfulCreate",
            message: format!(
                "create Claim {claim} Pod {pod} in StatefulSet {} success",
                meta::name(self.sts)
            ),
            source: events::Source::StatefulSetController,
        })
    }

    fn delete(&self, pod: &Value, out: &mut Vec<Write>) {
        out.push(Write::Delete(ObjectKey::of(pod)));
        out.push(self.event("SuccessfulDelete", "delete", meta::name(pod)));
    }

    /// A pod beyond `replicas`; its claims too under `whenScaled: Delete` (the claims'
    /// protection keeps them until the pod is gone).
    fn delete_condemned(&self, ordinal: usize, pod: &Value, out: &mut Vec<Write>) {
        self.delete(pod, out);
        let policy = &self.spec()["persistentVolumeClaimRetentionPolicy"]["whenScaled"];
        if policy != "Delete" {
            return;
        }
        for t in claim_templates(self.sts) {
            let name = claim_name(self.sts, t, ordinal);
            if let Some(c) = self.claims.get(name.as_str()) {
                if !meta::is_terminating(c) {
                    out.push(Write::Delete(ObjectKey::of(c)));
                }
            }
        }
    }
}

/// Pod `<set>-<ordinal>` from `template` at `revision`.
fn new_pod(sts: &Value, template: &Value, revision: &str, ordinal: usize) -> Value {
    let name = format!("{}-{ordinal}", meta::name(sts));
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[REVISION_LABEL] = json!(revision);
    labels[POD_NAME_LABEL] = json!(name);
    labels[POD_INDEX_LABEL] = json!(ordinal.to_string());
    let mut metadata = json!({
        "name": name,
        "namespace": meta::namespace(sts),
        "labels": labels,
        "ownerReferences": [owner_reference(sts)],
    });
    if template["metadata"]["annotations"].is_object() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(name);
    if let Some(service) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(service);
    }
    for t in claim_templates(sts) {
        claim_volume(&mut spec, t, &claim_name(sts, t, ordinal));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

fn claim_templates(sts: &Value) -> impl Iterator<Item = &Value> {
    sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
}

/// The claim of `template` for `ordinal`: `<template>-<set>-<ordinal>`.
fn claim_name(sts: &Value, template: &Value, ordinal: usize) -> String {
    let t = template["metadata"]["name"].as_str().unwrap_or_default();
    format!("{t}-{}-{ordinal}", meta::name(sts))
}

/// A claim from its template, labelled with the set's selector; owned by the set only under
/// `whenDeleted: Delete` (Kubernetes' default, Retain, keeps claims when the set goes).
fn new_claim(sts: &Value, template: &Value, name: &str) -> Value {
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    if let Some(sel) = sts["spec"]["selector"]["matchLabels"].as_object() {
        for (k, v) in sel {
            labels[k] = v.clone();
        }
    }
    let mut metadata = json!({"name": name, "namespace": meta::namespace(sts), "labels": labels});
    if template["metadata"]["annotations"].is_object() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    if sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete" {
        let mut owner = owner_reference(sts);
        owner["controller"] = json!(false);
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
        "spec": template["spec"]})
}

/// The pod's volume named like the claim template (replacing one of that name) mounting the
/// ordinal's claim.
fn claim_volume(spec: &mut Value, template: &Value, claim: &str) {
    let name = &template["metadata"]["name"];
    let volume = json!({"name": name, "persistentVolumeClaim": {"claimName": claim}});
    if !spec["volumes"].is_array() {
        spec["volumes"] = json!([]);
    }
    let volumes = spec["volumes"].as_array_mut().expect("just made");
    match volumes.iter_mut().find(|v| v["name"] == *name) {
        Some(v) => *v = volume,
        None => volumes.push(volume),
    }
}

/// The pod writes of a pass: missing ordinals created (failed pods deleted, to be created
/// again), then ordinals beyond `replicas` deleted from the highest, then — once every
/// ordinal exists — the rolling update. `OrderedReady` stops at the first write or at the
/// first pod that is not yet healthy.
fn pod_writes(pass: &Pass, pods: &[Arc<Value>]) -> Vec<Write> {
    let by_ordinal: BTreeMap<usize, &Value> = pods
        .iter()
        .filter_map(|p| ordinal(pass.sts, p).map(|o| (o, &**p)))
        .collect();
    let replicas = pass.replicas();
    let monotonic = pass.monotonic();
    let mut writes = Vec::new();
    for o in 0..replicas {
        let waiting = match by_ordinal.get(&o) {
            None => {
                pass.create(o, &mut writes);
                true
            }
            Some(p) if finished(p) && !meta::is_terminating(p) => {
                pass.delete(p, &mut writes);
                true
            }
            Some(p) => !pass.healthy(p),
        };
        if monotonic && waiting {
            return writes;
        }
    }
    for (o, p) in by_ordinal.range(replicas..).rev() {
        if !meta::is_terminating(p) {
            pass.delete_condemned(*o, p, &mut writes);
        }
        if monotonic {
            return writes;
        }
    }
    if !writes.is_empty() || !pass.rolling() {
        return writes;
    }
    rolling_update(pass, &by_ordinal)
}

/// Pods of another revision replaced from the highest ordinal down to the partition: an
/// unhealthy one at once, a healthy one while fewer than `maxUnavailable` are unavailable.
fn rolling_update(pass: &Pass, by_ordinal: &BTreeMap<usize, &Value>) -> Vec<Write> {
    let replicas = pass.replicas();
    let unavailable = (0..replicas)
        .filter(|o| by_ordinal.get(o).is_none_or(|p| !pass.healthy(p)))
        .count();
    let mut budget = pass.max_unavailable().saturating_sub(unavailable);
    let mut writes = Vec::new();
    for o in (pass.partition()..replicas).rev() {
        let Some(p) = by_ordinal.get(&o) else {
            continue;
        };
        if revision_of(p) == pass.update || meta::is_terminating(p) {
            continue;
        }
        if !pass.healthy(p) {
            pass.delete(p, &mut writes);
        } else if budget > 0 {
            budget -= 1;
            pass.delete(p, &mut writes);
        } else {
            break;
        }
    }
    writes
}

/// The set's status, counted from its pods as given: the update is complete — the current
/// revision becomes the update's — once every pod is updated and ready.
fn status(pass: &Pass, pods: &[Arc<Value>]) -> Value {
    let min_ready = pass.spec()["minReadySeconds"].as_i64().unwrap_or(0);
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for p in pods.iter().filter(|p| !finished(p)) {
        replicas += 1;
        if running_and_ready(p) {
            ready += 1;
            if pod_available(p, min_ready, pass.now) {
                available += 1;
            }
        }
        if !meta::is_terminating(p) {
            current += usize::from(revision_of(p) == pass.current);
            updated += usize::from(revision_of(p) == pass.update);
        }
    }
    let mut current_revision = &pass.current;
    if updated == replicas && ready == replicas {
        current_revision = &pass.update;
        current = updated;
    }
    json!({
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": pass.update,
        "observedGeneration": pass.sts["metadata"]["generation"],
        "collisionCount": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::plan::describe;

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    fn sts(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
          "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 3},
          "spec": {"replicas": replicas, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "podManagementPolicy": "OrderedReady", "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
              "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    fn revision_name(sts: &Value) -> String {
        format!(
            "web-{}",
            crate::controllers::deployment::pod_template_hash(&sts["spec"]["template"])
        )
    }

    /// The set's revision as the controller would have stored it, numbered `n`.
    fn revision(sts: &Value, n: i64) -> Arc<Value> {
        let name = revision_name(sts);
        let hash = name.trim_start_matches("web-").to_string();
        let mut r = REVISIONS.new_revision(sts, &name, &hash, n);
        r["metadata"]["uid"] = json!(format!("rev-{n}"));
        Arc::new(r)
    }

    /// Pod `web-<ordinal>` of `sts`'s template, Running; Ready if `ready`.
    fn pod(sts: &Value, ordinal: usize, ready: bool) -> Arc<Value> {
        let mut p = new_pod(sts, &sts["spec"]["template"], &revision_name(sts), ordinal);
        p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready",
            "status": if ready { "True" } else { "False" },
            "lastTransitionTime": "2026-01-01T11:00:00Z"}]});
        Arc::new(p)
    }

    fn terminating(p: &Arc<Value>) -> Arc<Value> {
        let mut p = (**p).clone();
        p["metadata"]["deletionTimestamp"] = json!(NOW);
        Arc::new(p)
    }

    /// The plan's lines without Events and the status.
    fn pod_lines(writes: &[Write]) -> Vec<String> {
        describe(writes)
            .into_iter()
            .filter(|l| !l.starts_with("event") && !l.starts_with("status"))
            .collect()
    }

    fn status_of(writes: &[Write]) -> &Value {
        match writes.last() {
            Some(Write::UpdateStatus(_, s)) => s,
            w => panic!("no status last: {w:?}"),
        }
    }

    #[test]
    fn the_first_pass_makes_the_revision_and_pod_zero_only() {
        let s = sts(3, "demo:1");
        let writes = plan(&s, &[], &[], &[], now());
        let rev = revision_name(&s);
        assert_eq!(
            describe(&writes),
            [
                format!("create ControllerRevision default/{rev}"),
                "create Pod default/web-0".to_string(),
                "event SuccessfulCreate: create Pod web-0 in StatefulSet web successful"
                    .to_string(),
                "status StatefulSet default/web".to_string(),
            ]
        );
        let Write::Create(r) = &writes[0] else {
            unreachable!()
        };
        assert_eq!(r["revision"], 1);
        assert_eq!(r["metadata"]["labels"]["app"], "web");
        assert_eq!(r["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(meta::controller_uid(r), Some("sts-uid"));
        let Write::Create(p) = &writes[1] else {
            unreachable!()
        };
        let labels = &p["metadata"]["labels"];
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[REVISION_LABEL], json!(rev));
        assert_eq!(labels[POD_NAME_LABEL], "web-0");
        assert_eq!(labels[POD_INDEX_LABEL], "0");
        assert_eq!(p["spec"]["hostname"], "web-0");
        assert_eq!(p["spec"]["subdomain"], "web");
        assert_eq!(meta::controller_uid(p), Some("sts-uid"));
    }

    #[test]
    fn ordered_ready_waits_for_each_pod_before_the_next() {
        let s = sts(3, "demo:1");
        let revs = [revision(&s, 1)];
        let not_ready = plan(&s, &[pod(&s, 0, false)], &revs, &[], now());
        assert!(
            pod_lines(&not_ready).is_empty(),
            "{:?}",
            describe(&not_ready)
        );
        let ready = plan(&s, &[pod(&s, 0, true)], &revs, &[], now());
        assert_eq!(pod_lines(&ready), ["create Pod default/web-1"]);
        // A missing middle ordinal comes back first.
        let gap = plan(&s, &[pod(&s, 0, true), pod(&s, 2, true)], &revs, &[], now());
        assert_eq!(pod_lines(&gap), ["create Pod default/web-1"]);
    }

    #[test]
    fn min_ready_seconds_hold_the_next_ordinal() {
        let mut s = sts(2, "demo:1");
        s["spec"]["minReadySeconds"] = json!(7200);
        let writes = plan(&s, &[pod(&s, 0, true)], &[revision(&s, 1)], &[], now());
        assert!(pod_lines(&writes).is_empty());
        assert_eq!(status_of(&writes)["readyReplicas"], 1);
        assert_eq!(status_of(&writes)["availableReplicas"], 0);
    }

    #[test]
    fn parallel_creates_and_deletes_all_at_once() {
        let mut s = sts(3, "demo:1");
        s["spec"]["podManagementPolicy"] = json!("Parallel");
        let revs = [revision(&s, 1)];
        let writes = plan(&s, &[], &revs, &[], now());
        assert_eq!(
            pod_lines(&writes),
            [
                "create Pod default/web-0",
                "create Pod default/web-1",
                "create Pod default/web-2"
            ]
        );
        s["spec"]["replicas"] = json!(1);
        let pods: Vec<_> = (0..3).map(|o| pod(&s, o, false)).collect();
        let writes = plan(&s, &pods, &revs, &[], now());
        assert_eq!(
            pod_lines(&writes),
            ["delete Pod default/web-2", "delete Pod default/web-1"]
        );
    }

    #[test]
    fn scale_down_goes_from_the_highest_ordinal_one_at_a_time() {
        let s = sts(1, "demo:1");
        let revs = [revision(&s, 1)];
        let pods: Vec<_> = (0..3).map(|o| pod(&s, o, true)).collect();
        let writes = plan(&s, &pods, &revs, &[], now());
        assert_eq!(pod_lines(&writes), ["delete Pod default/web-2"]);
        assert!(describe(&writes).contains(
            &"event SuccessfulDelete: delete Pod web-2 in StatefulSet web successful".to_string()
        ));
        let waiting = [pods[0].clone(), pods[1].clone(), terminating(&pods[2])];
        assert!(pod_lines(&plan(&s, &waiting, &revs, &[], now())).is_empty());
        // Not while a remaining pod is unhealthy.
        let unhealthy = [pod(&s, 0, false), pods[1].clone()];
        assert!(pod_lines(&plan(&s, &unhealthy, &revs, &[], now())).is_empty());
    }

    #[test]
    fn a_failed_pod_is_deleted_to_be_made_again() {
        let s = sts(1, "demo:1");
        let mut failed = (*pod(&s, 0, false)).clone();
        failed["status"]["phase"] = json!("Failed");
        let writes = plan(&s, &[Arc::new(failed)], &[revision(&s, 1)], &[], now());
        assert_eq!(pod_lines(&writes), ["delete Pod default/web-0"]);
    }

    #[test]
    fn a_rolling_update_replaces_from_the_highest_ordinal_waiting_for_each() {
        let old = sts(3, "demo:1");
        let mut new = sts(3, "demo:2");
        new["status"]["currentRevision"] = json!(revision_name(&old));
        let revs = [revision(&old, 1), revision(&new, 2)];
        let mut pods: Vec<_> = (0..3).map(|o| pod(&old, o, true)).collect();
        let writes = plan(&new, &pods, &revs, &[], now());
        assert_eq!(pod_lines(&writes), ["delete Pod default/web-2"]);
        // web-2 is gone: it comes back from the new template.
        pods.pop();
        let writes = plan(&new, &pods, &revs, &[], now());
        assert_eq!(pod_lines(&writes), ["create Pod default/web-2"]);
        let Write::Create(p) = &writes[0] else {
            unreachable!()
        };
        assert_eq!(p["spec"]["containers"][0]["image"], "demo:2");
        // Not ready yet: wait; ready: next is web-1.
        pods.push(pod(&new, 2, false));
        assert!(pod_lines(&plan(&new, &pods, &revs, &[], now())).is_empty());
        pods[2] = pod(&new, 2, true);
        let writes = plan(&new, &pods, &revs, &[], now());
        assert_eq!(pod_lines(&writes), ["delete Pod default/web-1"]);
        let st = status_of(&writes);
        assert_eq!(st["updatedReplicas"], 1);
        assert_eq!(st["currentReplicas"], 2);
        assert_eq!(st["updateRevision"], json!(revision_name(&new)));
    }

    #[test]
    fn the_current_revision_follows_once_every_pod_is_updated_and_ready() {
        let old = sts(2, "demo:1");
        let mut new = sts(2, "demo:2");
        new["status"]["currentRevision"] = json!(revision_name(&old));
        let revs = [revision(&old, 1), revision(&new, 2)];
        let pods = [pod(&old, 0, true), pod(&new, 1, true)];
        let st = status_of(&plan(&new, &pods, &revs, &[], now())).clone();
        assert_eq!(st["currentRevision"], json!(revision_name(&old)));
        let pods = [pod(&new, 0, true), pod(&new, 1, true)];
        let st = status_of(&plan(&new, &pods, &revs, &[], now())).clone();
        assert_eq!(
            st,
            json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                "currentReplicas": 2, "updatedReplicas": 2,
                "currentRevision": revision_name(&new), "updateRevision": revision_name(&new),
                "observedGeneration": 3, "collisionCount": 0})
        );
    }

    #[test]
    fn the_partition_keeps_lower_ordinals_at_the_current_revision() {
        let old = sts(3, "demo:1");
        let mut new = sts(3, "demo:2");
        new["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        new["status"]["currentRevision"] = json!(revision_name(&old));
        let revs = [revision(&old, 1), revision(&new, 2)];
        let pods = [pod(&old, 0, true), pod(&old, 1, true), pod(&new, 2, true)];
        assert!(pod_lines(&plan(&new, &pods, &revs, &[], now())).is_empty());
        // A deleted pod below the partition comes back at the current revision.
        let writes = plan(&new, &pods[1..], &revs, &[], now());
        let Write::Create(p) = &writes[0] else {
            panic!("{:?}", describe(&writes))
        };
        assert_eq!(p["spec"]["containers"][0]["image"], "demo:1");
        assert_eq!(
            p["metadata"]["labels"][REVISION_LABEL],
            json!(revision_name(&old))
        );
    }

    #[test]
    fn max_unavailable_replaces_several_at_once() {
        let old = sts(3, "demo:1");
        let mut new = sts(3, "demo:2");
        new["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(2);
        let revs = [revision(&old, 1), revision(&new, 2)];
        let pods: Vec<_> = (0..3).map(|o| pod(&old, o, true)).collect();
        assert_eq!(
            pod_lines(&plan(&new, &pods, &revs, &[], now())),
            ["delete Pod default/web-2", "delete Pod default/web-1"]
        );
    }

    #[test]
    fn on_delete_replaces_only_deleted_pods() {
        let old = sts(2, "demo:1");
        let mut new = sts(2, "demo:2");
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        let revs = [revision(&old, 1), revision(&new, 2)];
        let pods = [pod(&old, 0, true), pod(&old, 1, true)];
        assert!(pod_lines(&plan(&new, &pods, &revs, &[], now())).is_empty());
        let writes = plan(&new, &pods[..1], &revs, &[], now());
        let Write::Create(p) = &writes[0] else {
            panic!("{:?}", describe(&writes))
        };
        assert_eq!(p["spec"]["containers"][0]["image"], "demo:2");
    }

    #[test]
    fn a_template_back_to_an_older_revision_raises_its_number() {
        let old = sts(1, "demo:1");
        let new = sts(1, "demo:2");
        let revs = [revision(&old, 1), revision(&new, 2)];
        let writes = plan(&old, &[pod(&new, 0, true)], &revs, &[], now());
        let Write::Update(r) = &writes[0] else {
            panic!("{:?}", describe(&writes))
        };
        assert_eq!(meta::name(r), revision_name(&old));
        assert_eq!(r["revision"], 3);
        assert_eq!(pod_lines(&writes)[1], "delete Pod default/web-0");
    }

    #[test]
    fn history_beyond_the_limit_goes_oldest_first_but_never_a_used_revision() {
        let mut s = sts(1, "demo:9");
        s["spec"]["revisionHistoryLimit"] = json!(1);
        let revs: Vec<_> = (1..=4)
            .map(|n| revision(&sts(1, &format!("demo:{n}")), n))
            .chain([revision(&s, 5)])
            .collect();
        // A pod still runs revision 1.
        let pods = [pod(&sts(1, "demo:1"), 0, true)];
        let writes = plan(&s, &pods, &revs, &[], now());
        let deleted: Vec<_> = pod_lines(&writes)
            .into_iter()
            .filter(|l| l.starts_with("delete ControllerRevision"))
            .collect();
        let name = |n: i64| revision_name(&sts(1, &format!("demo:{n}")));
        assert_eq!(
            deleted,
            [
                format!("delete ControllerRevision default/{}", name(2)),
                format!("delete ControllerRevision default/{}", name(3)),
            ]
        );
    }

    #[test]
    fn only_names_with_an_ordinal_are_the_sets_pods() {
        let s = sts(1, "demo:1");
        let named = |n: &str| Arc::new(json!({"metadata": {"name": n}}));
        assert_eq!(ordinal(&s, &named("web-12")), Some(12));
        assert_eq!(ordinal(&s, &named("web-01")), None);
        assert_eq!(ordinal(&s, &named("web-x")), None);
        assert_eq!(ordinal(&s, &named("webby-1")), None);
    }

    #[test]
    fn a_set_being_deleted_plans_nothing() {
        let mut s = sts(2, "demo:1");
        s["metadata"]["deletionTimestamp"] = json!(NOW);
        assert!(plan(&s, &[], &[], &[], now()).is_empty());
    }

    fn with_claims(mut s: Value, when_deleted: &str, when_scaled: &str) -> Value {
        s["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data",
            "labels": {"tier": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]);
        s["spec"]["template"]["spec"]["volumes"] =
            json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]);
        s["spec"]["persistentVolumeClaimRetentionPolicy"] =
            json!({"whenDeleted": when_deleted, "whenScaled": when_scaled});
        s
    }

    fn claim(name: &str) -> Arc<Value> {
        Arc::new(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"}}))
    }

    #[test]
    fn each_ordinal_gets_its_claim_before_its_pod_and_mounts_it() {
        let s = with_claims(sts(2, "demo:1"), "Retain", "Retain");
        let writes = plan(&s, &[], &[revision(&s, 1)], &[], now());
        assert_eq!(
            describe(&writes),
            [
                "create PersistentVolumeClaim default/data-web-0",
                "event SuccessfulCreate: create Claim data-web-0 Pod web-0 in StatefulSet web success",
                "create Pod default/web-0",
                "event SuccessfulCreate: create Pod web-0 in StatefulSet web successful",
                "status StatefulSet default/web",
            ]
        );
        let Write::Create(c) = &writes[0] else {
            unreachable!()
        };
        assert_eq!(c["metadata"]["labels"], json!({"tier": "db", "app": "web"}));
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert!(c["metadata"].get("ownerReferences").is_none(), "{c}");
        let Write::Create(p) = &writes[2] else {
            unreachable!()
        };
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                   {"name": "tmp", "emptyDir": {}}])
        );
        // The claim kept from an earlier pod is used again, not made anew.
        let writes = plan(&s, &[], &[revision(&s, 1)], &[claim("data-web-0")], now());
        assert_eq!(pod_lines(&writes), ["create Pod default/web-0"]);
    }

    #[test]
    fn a_pod_waits_while_its_claim_is_going_away() {
        let s = with_claims(sts(1, "demo:1"), "Retain", "Retain");
        let mut going = (*claim("data-web-0")).clone();
        going["metadata"]["deletionTimestamp"] = json!(NOW);
        let writes = plan(&s, &[], &[revision(&s, 1)], &[Arc::new(going)], now());
        assert!(pod_lines(&writes).is_empty(), "{:?}", describe(&writes));
    }

    #[test]
    fn claims_stay_on_scale_down_unless_when_scaled_is_delete() {
        let keep = with_claims(sts(1, "demo:1"), "Retain", "Retain");
        let pods = [pod(&keep, 0, true), pod(&keep, 1, true)];
        let claims = [claim("data-web-0"), claim("data-web-1")];
        let writes = plan(&keep, &pods, &[revision(&keep, 1)], &claims, now());
        assert_eq!(pod_lines(&writes), ["delete Pod default/web-1"]);
        let drop = with_claims(sts(1, "demo:1"), "Retain", "Delete");
        let writes = plan(&drop, &pods, &[revision(&drop, 1)], &claims, now());
        assert_eq!(
            pod_lines(&writes),
            [
                "delete Pod default/web-1",
                "delete PersistentVolumeClaim default/data-web-1"
            ]
        );
    }

    #[test]
    fn when_deleted_delete_makes_the_set_an_owner_of_its_claims() {
        let s = with_claims(sts(1, "demo:1"), "Delete", "Retain");
        let writes = plan(&s, &[], &[revision(&s, 1)], &[], now());
        let Write::Create(c) = &writes[0] else {
            unreachable!()
        };
        let owner = &c["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], "sts-uid");
        assert_eq!(owner["controller"], false);
    }
}
