//! The volume reconciler's decisions, as a pure function of the cached claims, volumes,
//! classes and pods: binding (claims to fitting volumes, `spec.volumeName` and `claimRef`,
//! the phases of both), provisioning for the `rancher.io/local-path` provisioner (at once, or
//! once a pod uses the claim for `WaitForFirstConsumer`), reclaiming released volumes
//! (Delete removes the directory skiff made, Retain keeps it), and the protection finalizers
//! (a claim a pod uses, a volume a claim is bound to, stay until they are not).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::client::events::{Source, Type};
use crate::controllers::plan::{Event, Write};
use crate::model::builtin::LOCAL_PATH_PROVISIONER;
use crate::model::meta;
use crate::model::quantity;
use crate::model::store::ObjectKey;
use crate::model::validate::storage::{PVC_PROTECTION, PV_PROTECTION};

/// The annotation naming the provisioner that made a volume.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The annotation of a claim whose binding is complete.
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// The annotation of a claim the controller bound (rather than pre-bound by its author).
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

/// What the plan reads.
pub struct Inputs<'a> {
    /// PersistentVolumeClaims, every namespace.
    pub claims: &'a [Arc<Value>],
    /// PersistentVolumes.
    pub volumes: &'a [Arc<Value>],
    /// StorageClasses.
    pub classes: &'a [Arc<Value>],
    /// Pods, every namespace.
    pub pods: &'a [Arc<Value>],
    /// This node's name (volumes' node affinity is matched against it).
    pub node: &'a str,
    /// `<data-dir>/volumes`: where provisioned directories live.
    pub volumes_dir: &'a Path,
    /// Why a claim's capacity is not enforced (shown on every bound claim).
    pub capacity_note: &'a str,
    /// The time, RFC 3339, for transition times.
    pub now: &'a str,
}

/// One step of the plan, performed in order.
#[derive(Debug)]
pub enum Action {
    /// Make a new volume's directory (mode 0777, as local-path does), then create its PV.
    Provision {
        /// The directory, `<volumes_dir>/<pv>_<namespace>_<claim>`.
        dir: PathBuf,
        /// The PersistentVolume to create.
        volume: Value,
    },
    /// Reclaim a released volume skiff provisioned: once the API confirms its claim is gone,
    /// remove its directory (only inside the volumes folder, never through a symlink), then
    /// delete the PV.
    Reclaim {
        /// The PersistentVolume.
        volume: ObjectKey,
        /// Its directory.
        dir: PathBuf,
        /// The claim it was bound to, and that claim's uid.
        claim: (ObjectKey, String),
    },
    /// A write through the API.
    Write(Write),
}

/// Every action of one pass, in order: finalizers, reclaiming, binding and provisioning,
/// then the volumes' phases.
pub fn plan(i: &Inputs) -> Vec<Action> {
    let mut out = Vec::new();
    for c in i.claims {
        release_claim(i, c, &mut out);
    }
    for v in i.volumes {
        release_volume(i, v, &mut out);
        reclaim(i, v, &mut out);
    }
    for c in i.claims {
        if !meta::is_terminating(c) {
            claim(i, c, &mut out);
        }
    }
    for v in i.volumes {
        volume_phase(i, v, &mut out);
    }
    out
}

fn write(w: Write) -> Action {
    Action::Write(w)
}

fn event(about: &Value, kind: Type, reason: &'static str, message: String) -> Action {
    Action::Write(Write::Event(Event {
        about: about.clone(),
        kind,
        reason,
        message,
        source: Source::VolumeController,
    }))
}

/// The object without one finalizer.
fn without_finalizer(obj: &Value, finalizer: &str) -> Value {
    let mut o = obj.clone();
    if let Some(list) = o["metadata"]["finalizers"].as_array_mut() {
        list.retain(|f| f != finalizer);
    }
    o
}

fn has_finalizer(obj: &Value, finalizer: &str) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|l| l.iter().any(|f| f == finalizer))
}

/// The pods that use a claim and have not terminated (phase neither Succeeded nor Failed).
pub fn users<'a>(pods: &'a [Arc<Value>], claim: &Value) -> Vec<&'a Arc<Value>> {
    pods.iter()
        .filter(|p| meta::namespace(p) == meta::namespace(claim))
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .filter(|p| {
            p["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == meta::name(claim))
        })
        .collect()
}

/// A claim being deleted keeps its protection finalizer while a pod uses it.
fn release_claim(i: &Inputs, c: &Value, out: &mut Vec<Action>) {
    if !meta::is_terminating(c) || !has_finalizer(c, PVC_PROTECTION) {
        return;
    }
    // A pod the node holds back for want of its claims (PodScheduled=False) never started:
    // it does not hold the claim (else a Deployment's replacement pods would keep it forever).
    let started = |p: &&Arc<Value>| {
        !p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["type"] == "PodScheduled" && k["status"] == "False")
    };
    if !users(i.pods, c).iter().any(started) {
        out.push(write(Write::Update(without_finalizer(c, PVC_PROTECTION))));
    }
}

/// The claim a volume's `claimRef` names, if it exists and is that very claim (uid).
fn bound_claim<'a>(i: &'a Inputs, v: &Value) -> Option<&'a Arc<Value>> {
    let r = &v["spec"]["claimRef"];
    let uid = r["uid"].as_str()?;
    i.claims.iter().find(|c| {
        meta::namespace(c) == r["namespace"].as_str().unwrap_or_default()
            && meta::name(c) == r["name"].as_str().unwrap_or_default()
            && meta::uid(c) == uid
    })
}

/// A volume being deleted keeps its protection finalizer while a claim is bound to it.
fn release_volume(i: &Inputs, v: &Value, out: &mut Vec<Action>) {
    if !meta::is_terminating(v) || !has_finalizer(v, PV_PROTECTION) {
        return;
    }
    if bound_claim(i, v).is_none() {
        out.push(write(Write::Update(without_finalizer(v, PV_PROTECTION))));
    }
}

/// Whether skiff provisioned this volume's directory (and may remove it): annotated as
/// local-path's, a hostPath directly inside the volumes folder.
pub fn provisioned_dir(volumes_dir: &Path, v: &Value) -> Option<PathBuf> {
    if meta::annotation(v, PROVISIONED_BY) != Some(LOCAL_PATH_PROVISIONER) {
        return None;
    }
    let path = Path::new(v["spec"]["hostPath"]["path"].as_str()?);
    let name = path.file_name()?;
    (path.parent() == Some(volumes_dir) && name != "." && name != "..").then(|| path.to_path_buf())
}

/// A volume whose claim is gone is Released; then Delete removes it (if skiff made its
/// directory; otherwise it is Failed, and nothing is removed) and Retain keeps it.
fn reclaim(i: &Inputs, v: &Value, out: &mut Vec<Action>) {
    let r = &v["spec"]["claimRef"];
    let Some(uid) = r["uid"].as_str() else {
        return;
    };
    if bound_claim(i, v).is_some() || meta::is_terminating(v) {
        return;
    }
    let key = ObjectKey::of(v);
    let claim = ObjectKey::new(
        "PersistentVolumeClaim",
        r["namespace"].as_str().unwrap_or_default(),
        r["name"].as_str().unwrap_or_default(),
    );
    let policy = v["spec"]["persistentVolumeReclaimPolicy"]
        .as_str()
        .unwrap_or("Retain");
    match (policy, provisioned_dir(i.volumes_dir, v)) {
        ("Delete", Some(dir)) => out.push(Action::Reclaim {
            volume: key,
            dir,
            claim: (claim, uid.to_string()),
        }),
        ("Delete", None) => {
            let message = "skiff deletes only the directories it provisioned under its data directory; this volume's data is kept".to_string();
            let status = phase_status(i, v, "Failed", Some(("VolumeFailedDelete", &message)));
            if v.get("status") != Some(&status) {
                out.push(event(v, Type::Warning, "VolumeFailedDelete", message));
            }
            out.push(write(Write::UpdateStatus(key, status)));
        }
        _ => out.push(write(Write::UpdateStatus(
            key,
            phase_status(i, v, "Released", None),
        ))),
    }
}

/// A volume's status in `phase`, keeping the transition time if the phase is unchanged.
fn phase_status(i: &Inputs, v: &Value, phase: &str, failure: Option<(&str, &str)>) -> Value {
    let since = if v["status"]["phase"] == phase {
        v["status"]["lastPhaseTransitionTime"]
            .as_str()
            .unwrap_or(i.now)
    } else {
        i.now
    };
    let mut s = json!({"phase": phase, "lastPhaseTransitionTime": since});
    if let Some((reason, message)) = failure {
        s["reason"] = json!(reason);
        s["message"] = json!(message);
    }
    s
}

/// Available (no claim, or reserved for one not yet bound) or Bound; Released and Failed
/// are [`reclaim`]'s.
fn volume_phase(i: &Inputs, v: &Value, out: &mut Vec<Action>) {
    let r = &v["spec"]["claimRef"];
    let phase = if r["uid"].is_string() {
        match bound_claim(i, v) {
            Some(c) if c["spec"]["volumeName"] == meta::name(v) => "Bound",
            Some(_) => "Pending",
            None => return,
        }
    } else {
        "Available"
    };
    out.push(write(Write::UpdateStatus(
        ObjectKey::of(v),
        phase_status(i, v, phase, None),
    )));
}

/// The storage class a claim asks for ("" for none).
fn class_of(obj: &Value) -> &str {
    obj["spec"]["storageClassName"].as_str().unwrap_or_default()
}

fn find_class<'a>(i: &'a Inputs, name: &str) -> Option<&'a Arc<Value>> {
    i.classes.iter().find(|c| meta::name(c) == name)
}

/// Whether a volume's `claimRef` reserves it for this claim.
fn reserved_for(v: &Value, c: &Value) -> bool {
    let r = &v["spec"]["claimRef"];
    r["namespace"] == meta::namespace(c)
        && r["name"] == meta::name(c)
        && r["uid"].as_str().is_none_or(|u| u == meta::uid(c))
}

/// One claim: bound already (its status kept up), bound now, provisioned for, or waiting.
fn claim(i: &Inputs, c: &Value, out: &mut Vec<Action>) {
    let named = c["spec"]["volumeName"].as_str().filter(|n| !n.is_empty());
    if let Some(name) = named {
        match i.volumes.iter().find(|v| meta::name(v) == name) {
            Some(v) if reserved_for(v, c) || v["spec"]["claimRef"].is_null() => {
                return bind(i, v, c, out)
            }
            Some(_) => {
                let message = format!("volume {name:?} already bound to a different claim.");
                return pending(c, Type::Warning, "FailedBinding", message, out);
            }
            None if meta::annotation(c, BIND_COMPLETED) == Some("yes") => {
                out.push(write(Write::UpdateStatus(
                    ObjectKey::of(c),
                    json!({"phase": "Lost"}),
                )));
                if c["status"]["phase"] != "Lost" {
                    let message =
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
                    out.push(event(c, Type::Warning, "ClaimLost", message.into()));
                }
                return;
            }
            None => {
                let message = format!("volume {name:?} not found");
                return pending(c, Type::Warning, "FailedBinding", message, out);
            }
        }
    }
    if let Some(v) = i.volumes.iter().find(|v| {
        reserved_for(v, c) && !matches!(v["status"]["phase"].as_str(), Some("Released" | "Failed"))
    }) {
        return bind(i, v, c, out);
    }
    let class = find_class(i, class_of(c));
    let waits = class.is_some_and(|k| k["volumeBindingMode"] == "WaitForFirstConsumer");
    if waits && users(i.pods, c).is_empty() {
        let message = "waiting for first consumer to be created before binding".to_string();
        return pending(c, Type::Normal, "WaitForFirstConsumer", message, out);
    }
    if let Some(v) = best_fit(i, c) {
        return bind(i, v, c, out);
    }
    provision(i, c, class, out);
}

/// A claim that waits, with an Event saying for what.
fn pending(c: &Value, kind: Type, reason: &'static str, message: String, out: &mut Vec<Action>) {
    out.push(write(Write::UpdateStatus(
        ObjectKey::of(c),
        json!({"phase": "Pending"}),
    )));
    out.push(event(c, kind, reason, message));
}

/// The smallest Available volume that fits the claim: same class, the access modes asked
/// for, at least the size asked for, the labels of the claim's selector, usable on this node.
fn best_fit<'a>(i: &'a Inputs, c: &Value) -> Option<&'a Arc<Value>> {
    let want = quantity::parse(c["spec"]["resources"]["requests"]["storage"].as_str()?)?;
    let modes = |o: &Value| -> Vec<String> {
        o["spec"]["accessModes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(String::from))
            .collect()
    };
    let asked = modes(c);
    i.volumes
        .iter()
        .filter(|v| v["spec"]["claimRef"].is_null() && !meta::is_terminating(v))
        .filter(|v| class_of(v) == class_of(c))
        .filter(|v| {
            let has = modes(v);
            asked.iter().all(|m| has.contains(m))
        })
        .filter(|v| {
            meta::labels_match(
                &c["spec"]["selector"]["matchLabels"],
                &v["metadata"]["labels"],
            )
        })
        .filter(|v| node_matches(v, i.node))
        .filter_map(|v| {
            let size = quantity::parse(v["spec"]["capacity"]["storage"].as_str()?)?;
            (size >= want).then_some((size, v))
        })
        .min_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| meta::name(a.1).cmp(meta::name(b.1)))
        })
        .map(|(_, v)| v)
}

/// Whether a volume's required node affinity admits this node (labels
/// `kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`).
pub fn node_matches(v: &Value, node: &str) -> bool {
    let terms = &v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"];
    let Some(terms) = terms.as_array() else {
        return true;
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let label = |key: &str| match key {
        "kubernetes.io/hostname" => Some(node),
        "kubernetes.io/os" => Some("linux"),
        "kubernetes.io/arch" => Some(arch),
        _ => None,
    };
    terms.iter().any(|t| {
        t["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let have = label(e["key"].as_str().unwrap_or_default());
                let listed = |x: &str| e["values"].as_array().into_iter().flatten().any(|v| v == x);
                match e["operator"].as_str().unwrap_or_default() {
                    "In" => have.is_some_and(listed),
                    "NotIn" => !have.is_some_and(listed),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
    })
}

/// Makes a volume for a claim if its class is local-path's; otherwise says what it waits for.
fn provision(i: &Inputs, c: &Value, class: Option<&Arc<Value>>, out: &mut Vec<Action>) {
    let asked = class_of(c);
    let Some(class) = class else {
        let message = if asked.is_empty() {
            "no persistent volumes available for this claim and no storage class is set".into()
        } else {
            format!("storageclass.storage.k8s.io {asked:?} not found")
        };
        let kind = if asked.is_empty() {
            Type::Normal
        } else {
            Type::Warning
        };
        let reason = if asked.is_empty() {
            "FailedBinding"
        } else {
            "ProvisioningFailed"
        };
        return pending(c, kind, reason, message, out);
    };
    let provisioner = class["provisioner"].as_str().unwrap_or_default();
    if provisioner != LOCAL_PATH_PROVISIONER {
        let message = format!("Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.");
        return pending(c, Type::Normal, "ExternalProvisioning", message, out);
    }
    if c["spec"]["selector"].is_object() {
        let message = "failed to provision volume with StorageClass \"".to_string()
            + asked
            + "\": claim.Spec.Selector is not supported";
        return pending(c, Type::Warning, "ProvisioningFailed", message, out);
    }
    let name = format!("pvc-{}", meta::uid(c));
    let dir = i
        .volumes_dir
        .join(format!("{name}_{}_{}", meta::namespace(c), meta::name(c)));
    let volume = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: LOCAL_PATH_PROVISIONER}},
        "spec": {
            "capacity": {"storage": c["spec"]["resources"]["requests"]["storage"]},
            "accessModes": c["spec"]["accessModes"],
            "persistentVolumeReclaimPolicy": class["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": asked,
            "volumeMode": "Filesystem",
            "hostPath": {"path": dir.to_string_lossy(), "type": "DirectoryOrCreate"},
            "claimRef": claim_ref(c),
        },
    });
    out.push(write(Write::UpdateStatus(
        ObjectKey::of(c),
        json!({"phase": "Pending"}),
    )));
    out.push(event(
        c,
        Type::Normal,
        "Provisioning",
        format!(
            "External provisioner is provisioning volume for claim \"{}/{}\"",
            meta::namespace(c),
            meta::name(c)
        ),
    ));
    out.push(Action::Provision { dir, volume });
    out.push(event(
        c,
        Type::Normal,
        "ProvisioningSucceeded",
        format!("Successfully provisioned volume {name}"),
    ));
}

fn claim_ref(c: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "namespace": meta::namespace(c), "name": meta::name(c), "uid": meta::uid(c),
        "resourceVersion": c["metadata"]["resourceVersion"],
    })
}

/// Binds volume and claim (each only where not yet done) and keeps the claim's status.
fn bind(i: &Inputs, v: &Value, c: &Value, out: &mut Vec<Action>) {
    if v["spec"]["claimRef"]["uid"].as_str() != Some(meta::uid(c)) {
        let mut v = v.clone();
        v["spec"]["claimRef"] = claim_ref(c);
        out.push(write(Write::Update(v)));
    }
    if c["spec"]["volumeName"] != meta::name(v) || meta::annotation(c, BIND_COMPLETED).is_none() {
        let mut c = c.clone();
        if c["spec"]["volumeName"] != meta::name(v) {
            meta::set_annotation(&mut c, BOUND_BY_CONTROLLER, "yes");
            c["spec"]["volumeName"] = json!(meta::name(v));
        }
        meta::set_annotation(&mut c, BIND_COMPLETED, "yes");
        out.push(write(Write::Update(c)));
    }
    let condition = capacity_condition(i, c);
    if !c["status"]["conditions"]
        .as_array()
        .is_some_and(|l| l.contains(&condition))
    {
        out.push(event(
            c,
            Type::Warning,
            "CapacityNotEnforced",
            format!("capacity not enforced: {}", i.capacity_note),
        ));
    }
    out.push(write(Write::UpdateStatus(
        ObjectKey::of(c),
        json!({
            "phase": "Bound",
            "accessModes": v["spec"]["accessModes"],
            "capacity": {"storage": v["spec"]["capacity"]["storage"]},
            "conditions": [condition],
        }),
    )));
    expansion(i, v, c, out);
}

/// The condition saying why the claim's size is not a limit (its time kept once set).
fn capacity_condition(i: &Inputs, c: &Value) -> Value {
    let message = format!("capacity not enforced: {}", i.capacity_note);
    let since = c["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["type"] == "CapacityEnforced" && k["message"] == message.as_str())
        .and_then(|k| k["lastTransitionTime"].as_str())
        .unwrap_or(i.now);
    json!({
        "type": "CapacityEnforced", "status": "False", "reason": "NoQuota",
        "message": message, "lastTransitionTime": since,
    })
}

/// A bound claim asking for more than its volume has: a volume skiff provisioned, of a class
/// that allows expansion, grows (its size is a number only, as capacity is not enforced);
/// anything else is refused with an Event.
fn expansion(i: &Inputs, v: &Value, c: &Value, out: &mut Vec<Action>) {
    let size = |q: &Value| q.as_str().and_then(quantity::parse).unwrap_or(0);
    let asked = &c["spec"]["resources"]["requests"]["storage"];
    if size(asked) <= size(&v["spec"]["capacity"]["storage"]) {
        return;
    }
    let allowed = find_class(i, class_of(c)).is_some_and(|k| k["allowVolumeExpansion"] == true);
    if allowed && provisioned_dir(i.volumes_dir, v).is_some() {
        let mut v = v.clone();
        v["spec"]["capacity"]["storage"] = asked.clone();
        out.push(write(Write::Update(v)));
    } else {
        let message = "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize".to_string();
        out.push(event(c, Type::Warning, "VolumeResizeFailed", message));
    }
}
