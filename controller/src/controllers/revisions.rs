//! ControllerRevisions, as the StatefulSet and DaemonSet controllers keep them: one revision
//! `<owner>-<hash>` per pod template, owned by the workload and labelled like its pods (kubectl
//! finds a workload's history by its selector and owner), its `data` the strategic merge patch
//! `kubectl rollout undo` applies (`{"spec":{"template":{…,"$patch":"replace"}}}`) and its
//! `revision` number rising with each template; going back to an older template raises that
//! revision to the newest number. Old revisions beyond `revisionHistoryLimit` are deleted,
//! never one still in use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::deployment::pod_template_hash;
use super::plan::Write;
use crate::model::meta;
use crate::model::store::ObjectKey;

/// A revision's number.
pub fn revision_number(cr: &Value) -> i64 {
    cr["revision"].as_i64().unwrap_or(0)
}

/// The template a ControllerRevision holds (its data without the patch directive).
pub fn revision_template(cr: &Value) -> Value {
    let mut t = cr["data"]["spec"]["template"].clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

/// The controller owner reference to an apps/v1 workload of `kind`.
pub fn owner_reference(owner: &Value, kind: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": meta::name(owner),
        "uid": meta::uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// How one controller names and labels its revisions.
#[derive(Debug, Clone, Copy)]
pub struct Scheme {
    /// The owner's kind (`StatefulSet`, `DaemonSet`).
    pub kind: &'static str,
    /// The label carrying the template hash on each revision.
    pub hash_label: &'static str,
}

/// The revisions of one pass: the update revision (the current template's), and every
/// revision's template by name.
#[derive(Debug)]
pub struct Revisions {
    /// `<owner>-<hash>` of the current template.
    pub update: String,
    /// The current template's hash.
    pub hash: String,
    /// Each revision's pod template, by revision name (the update's included).
    pub templates: BTreeMap<String, Value>,
}

impl Scheme {
    /// A ControllerRevision for the owner's current template, numbered `number`.
    pub fn new_revision(&self, owner: &Value, name: &str, hash: &str, number: i64) -> Value {
        let template = &owner["spec"]["template"];
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels[self.hash_label] = json!(hash);
        let mut patch = template.clone();
        patch["$patch"] = json!("replace");
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": name,
                "namespace": meta::namespace(owner),
                "labels": labels,
                "ownerReferences": [owner_reference(owner, self.kind)],
            },
            "data": {"spec": {"template": patch}},
            "revision": number,
        })
    }

    /// The pass's revisions, and the write that makes the update revision (created, or
    /// raised to the newest number when an older revision's template is back).
    pub fn update(&self, owner: &Value, revisions: &[Arc<Value>]) -> (Revisions, Option<Write>) {
        let template = &owner["spec"]["template"];
        let hash = pod_template_hash(template);
        let update = format!("{}-{hash}", meta::name(owner));
        let newest = revisions
            .iter()
            .map(|r| revision_number(r))
            .max()
            .unwrap_or(0);
        let mut templates: BTreeMap<String, Value> = revisions
            .iter()
            .map(|r| (meta::name(r).to_string(), revision_template(r)))
            .collect();
        let write = match revisions.iter().find(|r| meta::name(r) == update) {
            None => {
                templates.insert(update.clone(), template.clone());
                Some(Write::Create(self.new_revision(
                    owner,
                    &update,
                    &hash,
                    newest + 1,
                )))
            }
            Some(r) if revision_number(r) < newest => {
                let mut r = (**r).clone();
                r["revision"] = json!(newest + 1);
                Some(Write::Update(r))
            }
            Some(_) => None,
        };
        let revs = Revisions {
            update,
            hash,
            templates,
        };
        (revs, write)
    }
}

/// Revisions beyond the owner's `revisionHistoryLimit` (default 10) deleted, oldest first;
/// never one named in `live` (used by a pod, current or the update's).
pub fn history(owner: &Value, revisions: &[Arc<Value>], live: &BTreeSet<&str>) -> Vec<Write> {
    let limit = owner["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let mut old: Vec<&Arc<Value>> = revisions
        .iter()
        .filter(|r| !live.contains(meta::name(r)))
        .collect();
    old.sort_by_key(|r| revision_number(r));
    let excess = old.len().saturating_sub(limit);
    old[..excess]
        .iter()
        .map(|r| Write::Delete(ObjectKey::of(r)))
        .collect()
}
