//! Garbage collection: objects whose owners are all gone (by `ownerReferences[].uid`) are
//! deleted — deleting a Deployment removes its ReplicaSets, and theirs, their Pods — and so are
//! namespaced objects whose Namespace is gone. Pods go through graceful deletion. (Events are
//! the API server's: it expires them, see `api/housekeeping.rs`.)
//!
//! Generic by nature (every kind, read through `metadata` only), so it reads JSON.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::plan::{execute, Write};
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// An object the caches show to be collectable, and why; it is deleted once the API confirms.
#[derive(Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The object to delete.
    pub key: ObjectKey,
    /// What the caches show gone.
    pub gone: Gone,
}

/// What a [`Candidate`]'s caches show gone.
#[derive(Debug, PartialEq, Eq)]
pub enum Gone {
    /// Its Namespace (by name).
    Namespace(String),
    /// Every one of its owners (by uid): the owner references, keyed in the object's namespace.
    Owners(Vec<Owner>),
}

/// One `ownerReferences` entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Owner {
    /// The owner's kind, and name in the dependent's namespace.
    pub key: ObjectKey,
    /// The owner's uid.
    pub uid: String,
}

/// The candidates among every cached object (in their order): namespaced objects whose
/// Namespace is not cached, and objects none of whose owners' uids is cached. Objects being
/// deleted and Events are left alone.
pub fn plan(all: &[Arc<Value>]) -> Vec<Candidate> {
    let uids: HashSet<&str> = all.iter().map(|o| meta::uid(o)).collect();
    let namespaces: HashSet<&str> = all
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .map(|o| meta::name(o))
        .collect();
    let mut candidates = Vec::new();
    for obj in all {
        if meta::is_terminating(obj) || obj["kind"] == "Event" {
            continue;
        }
        let refs = obj["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let orphan = !refs.is_empty()
            && refs
                .iter()
                .all(|r| !uids.contains(r["uid"].as_str().unwrap_or("")));
        let ns = meta::namespace(obj);
        let homeless = !ns.is_empty() && !namespaces.contains(ns);
        let gone = if homeless {
            Gone::Namespace(ns.to_string())
        } else if orphan {
            Gone::Owners(
                refs.iter()
                    .map(|r| Owner {
                        key: ObjectKey::new(
                            r["kind"].as_str().unwrap_or_default(),
                            ns,
                            r["name"].as_str().unwrap_or_default(),
                        ),
                        uid: r["uid"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect(),
            )
        } else {
            continue;
        };
        candidates.push(Candidate {
            key: ObjectKey::of(obj),
            gone,
        });
    }
    candidates
}

/// Whether the API confirms what the caches show gone: the Namespace is missing or being
/// deleted; no owner exists with the referenced uid.
async fn confirmed(view: &View, gone: &Gone) -> Result<bool, WriteError> {
    match gone {
        Gone::Namespace(ns) => Ok(view
            .get_live(&ObjectKey::new("Namespace", "", ns))
            .await?
            .is_none_or(|n| meta::is_terminating(&n))),
        Gone::Owners(owners) => {
            for owner in owners {
                if view
                    .get_live(&owner.key)
                    .await?
                    .is_some_and(|o| meta::uid(&o) == owner.uid)
                {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}

/// One collection pass. Candidates come from the caches; each is confirmed against the API
/// before it is deleted, since the caches of different kinds are kept by separate watches and
/// one may lag behind another (a Deployment seen before its new Namespace must not go).
pub async fn collect(view: &View) -> Result<(), WriteError> {
    for candidate in plan(&view.identities()) {
        if confirmed(view, &candidate.gone).await? {
            execute(view, Write::Delete(candidate.key)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, ns: &str, name: &str, owners: &[(&str, &str, &str)]) -> Arc<Value> {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(kind, name, uid)| json!({"kind": kind, "name": name, "uid": uid}))
            .collect();
        let mut o = json!({"kind": kind, "metadata": {"name": name, "uid": format!("{name}-uid")}});
        if !ns.is_empty() {
            o["metadata"]["namespace"] = json!(ns);
        }
        if !refs.is_empty() {
            o["metadata"]["ownerReferences"] = json!(refs);
        }
        Arc::new(o)
    }

    fn owner(kind: &str, name: &str, uid: &str) -> Owner {
        Owner {
            key: ObjectKey::new(kind, "default", name),
            uid: uid.into(),
        }
    }

    #[test]
    fn dependents_whose_owners_are_all_missing_are_candidates() {
        let all = [
            obj("Namespace", "", "default", &[]),
            obj("ReplicaSet", "default", "live", &[]),
            obj(
                "Pod",
                "default",
                "kept",
                &[("ReplicaSet", "live", "live-uid")],
            ),
            // One owner left is enough.
            obj(
                "Pod",
                "default",
                "half",
                &[
                    ("ReplicaSet", "gone", "gone-uid"),
                    ("ReplicaSet", "live", "live-uid"),
                ],
            ),
            // An owner of the same name but another uid is another object.
            obj(
                "Pod",
                "default",
                "orphan",
                &[("ReplicaSet", "live", "old-uid")],
            ),
            obj(
                "ReplicaSet",
                "default",
                "web-1",
                &[("Deployment", "web", "web-uid")],
            ),
        ];
        assert_eq!(
            plan(&all),
            [
                Candidate {
                    key: ObjectKey::new("Pod", "default", "orphan"),
                    gone: Gone::Owners(vec![owner("ReplicaSet", "live", "old-uid")]),
                },
                Candidate {
                    key: ObjectKey::new("ReplicaSet", "default", "web-1"),
                    gone: Gone::Owners(vec![owner("Deployment", "web", "web-uid")]),
                },
            ]
        );
    }

    #[test]
    fn objects_of_a_missing_namespace_are_candidates() {
        let all = [
            obj("Namespace", "", "default", &[]),
            obj("ConfigMap", "default", "kept", &[]),
            obj("ConfigMap", "gone", "settings", &[]),
            // Its namespace decides, whatever its owners.
            obj("Pod", "gone", "p", &[("ReplicaSet", "rs", "rs-uid")]),
            obj("IngressClass", "", "cluster-scoped", &[]),
        ];
        assert_eq!(
            plan(&all),
            [
                Candidate {
                    key: ObjectKey::new("ConfigMap", "gone", "settings"),
                    gone: Gone::Namespace("gone".into()),
                },
                Candidate {
                    key: ObjectKey::new("Pod", "gone", "p"),
                    gone: Gone::Namespace("gone".into()),
                },
            ]
        );
    }

    #[test]
    fn objects_being_deleted_and_events_are_left_alone() {
        let mut terminating = (*obj("Pod", "gone", "p", &[])).clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T12:00:00Z");
        let all = [
            Arc::new(terminating),
            obj("Event", "gone", "e", &[("Pod", "p", "x")]),
        ];
        assert!(plan(&all).is_empty());
    }
}
