//! Garbage collection: objects whose owners are all gone (by `ownerReferences[].uid`) are
//! deleted — deleting a Deployment removes its ReplicaSets, and theirs, their Pods — and so are
//! namespaced objects whose Namespace is gone. Pods go through graceful deletion. (Events are
//! the API server's: it expires them, see `events::expire`.)

use std::collections::HashSet;

use crate::meta;
use crate::store::{ObjectKey, Op};
use crate::view::{View, WriteError};

/// One collection pass.
pub async fn collect(view: &View) -> Result<(), WriteError> {
    let all = view.all();
    let uids: HashSet<&str> = all.iter().map(|o| meta::uid(o)).collect();
    let namespaces: HashSet<&str> = all
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .map(|o| meta::name(o))
        .collect();
    let mut ops = Vec::new();
    for obj in &all {
        if meta::is_terminating(obj) || obj["kind"] == "Event" {
            continue;
        }
        let orphan = obj["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| {
                !refs.is_empty()
                    && refs
                        .iter()
                        .all(|r| !uids.contains(r["uid"].as_str().unwrap_or("")))
            });
        let ns = meta::namespace(obj);
        let homeless = !ns.is_empty() && !namespaces.contains(ns);
        if orphan || homeless {
            ops.push(Op::Delete(ObjectKey::of(obj)));
        }
    }
    if !ops.is_empty() {
        view.apply(ops).await?;
    }
    Ok(())
}
