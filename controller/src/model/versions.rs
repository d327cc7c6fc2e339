//! Object versions held once per process. The store publishes every version it commits; a
//! reader that decodes an object from the API (the watch caches of `client::view`, over the
//! in-process client) exchanges its decoded tree for the published one when the two are equal,
//! so the store, its watch history and the caches of the controllers and the node share one
//! `Arc<Value>` per object version instead of a tree each (issue 15: a small object's tree is
//! ~10 KB in memory, most of it `BTreeMap` nodes).
//!
//! Nothing is learnt through here that the API did not say: a version is shared only when it is
//! equal, field for field, to what the reader decoded, and a reader that finds none keeps its
//! own. A version is keyed by its `resourceVersion` (one global sequence: one version per
//! number in a store); the equality check also keeps two stores of one process (tests) apart.
//! Entries are weak: a version goes when its last holder drops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

struct Versions {
    by_rv: HashMap<u64, Weak<Value>>,
    /// Dead entries are swept when the map grows past this.
    sweep_at: usize,
}

static VERSIONS: Mutex<Option<Versions>> = Mutex::new(None);

const MIN_SWEEP: usize = 1024;

fn with<R>(f: impl FnOnce(&mut Versions) -> R) -> R {
    // A panic while holding the lock leaves at worst a stale entry, which the equality check
    // and the weak references make harmless.
    let mut guard = VERSIONS.lock().unwrap_or_else(|p| p.into_inner());
    let v = guard.get_or_insert_with(|| Versions {
        by_rv: HashMap::new(),
        sweep_at: MIN_SWEEP,
    });
    f(v)
}

/// The `metadata.resourceVersion` of an object as a number (0 when it has none).
pub fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Makes a committed version available to [`share`] (called by the store).
pub fn publish(obj: &Arc<Value>) {
    let rv = rv_of(obj);
    if rv == 0 {
        return;
    }
    with(|v| {
        v.by_rv.insert(rv, Arc::downgrade(obj));
        if v.by_rv.len() > v.sweep_at {
            v.by_rv.retain(|_, w| w.strong_count() > 0);
            v.sweep_at = (v.by_rv.len() * 2).max(MIN_SWEEP);
        }
    });
}

/// The published version equal to `obj` if one is alive, else `obj` itself.
pub fn share(obj: Value) -> Arc<Value> {
    let rv = rv_of(&obj);
    let held = with(|v| v.by_rv.get(&rv).and_then(Weak::upgrade));
    match held {
        // Compared outside the lock: the version is immutable.
        Some(held) if *held == obj => held,
        _ => Arc::new(obj),
    }
}

/// How many versions are published and alive (for tests and measurements).
pub fn alive() -> usize {
    with(|v| v.by_rv.values().filter(|w| w.strong_count() > 0).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_equal_version_is_shared_a_different_one_is_not() {
        let stored = Arc::new(json!({"kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "900001"}, "data": {"k": "v"}}));
        publish(&stored);
        let same = share((*stored).clone());
        assert!(Arc::ptr_eq(&same, &stored));
        // Another store's object at the same number: kept apart.
        let other = share(json!({"kind": "ConfigMap",
            "metadata": {"name": "b", "resourceVersion": "900001"}}));
        assert!(!Arc::ptr_eq(&other, &stored));
        assert_eq!(other["metadata"]["name"], "b");
        // Gone once its holders are.
        drop((stored, same));
        let again = share(json!({"kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "900001"}, "data": {"k": "v"}}));
        assert_eq!(Arc::strong_count(&again), 1);
    }
}
