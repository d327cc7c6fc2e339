//! Garbage collection: objects whose owners are all gone (by `ownerReferences[].uid`) are
//! deleted — deleting a Deployment removes its ReplicaSets, and theirs, their Pods — and so are
//! namespaced objects whose Namespace is gone. Pods go through graceful deletion. (Events are
//! the API server's: it expires them, see `events::expire`.)

use std::collections::HashSet;

use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// One collection pass. Candidates come from the caches; each is confirmed against the API
/// before it is deleted, since the caches of different kinds are kept by separate watches and
/// one may lag behind another (a Deployment seen before its new Namespace must not go).
pub async fn collect(view: &View) -> Result<(), WriteError> {
    let all = view.all();
    let uids: HashSet<&str> = all.iter().map(|o| meta::uid(o)).collect();
    let namespaces: HashSet<&str> = all
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .map(|o| meta::name(o))
        .collect();
    for obj in &all {
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
        if !(orphan || homeless) {
            continue;
        }
        let confirmed = if homeless {
            view.get_live(&ObjectKey::new("Namespace", "", ns))
                .await?
                .is_none_or(|n| meta::is_terminating(&n))
        } else {
            let mut all_gone = true;
            for r in &refs {
                let owner = ObjectKey::new(
                    r["kind"].as_str().unwrap_or_default(),
                    ns,
                    r["name"].as_str().unwrap_or_default(),
                );
                if view
                    .get_live(&owner)
                    .await?
                    .is_some_and(|o| meta::uid(&o) == r["uid"].as_str().unwrap_or_default())
                {
                    all_gone = false;
                    break;
                }
            }
            all_gone
        };
        if confirmed {
            view.delete(&ObjectKey::of(obj)).await?;
        }
    }
    Ok(())
}
