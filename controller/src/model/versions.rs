//! Object versions held once per process. The store publishes every version it commits; a
//! reader that decodes an object from the API (the watch caches of `client::view`, over the
//! in-process client) exchanges its decoded tree for the published one when the two are equal,
//! so the store, its watch history and the caches of the controllers and the node share one
//! `Arc<Value>` per object version instead of a tree each (issue 15: a small object's tree is
//! ~4 KB in memory, most of it `BTreeMap` nodes) — or, for the kinds held as JSON text
//! (`model::object`), one `Arc<str>`.
//!
//! Nothing is learnt through here that the API did not say: a version is shared only when it is
//! equal, field for field, to what the reader decoded, and a reader that finds none keeps its
//! own. A version is keyed by its `resourceVersion` (one global sequence: one version per
//! number in a store); the equality check also keeps two stores of one process (tests) apart.
//! Entries are weak: a version goes when its last holder drops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

use crate::model::object::Object;

/// A published version, held weakly: a tree (without `managedFields`) or a whole object's
/// JSON text (`model::object`).
enum Published {
    Tree(Weak<Value>),
    Text(Weak<[u8]>),
}

impl Published {
    fn alive(&self) -> bool {
        match self {
            Published::Tree(w) => w.strong_count() > 0,
            Published::Text(w) => w.strong_count() > 0,
        }
    }
}

struct Versions {
    by_rv: HashMap<u64, Published>,
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
pub fn publish(obj: &Object) {
    let rv = obj.rv();
    if rv == 0 {
        return;
    }
    let held = match (obj.shared_tree(), obj.packed()) {
        (Some(tree), _) => Published::Tree(Arc::downgrade(tree)),
        (None, Some(text)) => Published::Text(Arc::downgrade(text)),
        (None, None) => return,
    };
    with(|v| {
        v.by_rv.insert(rv, held);
        if v.by_rv.len() > v.sweep_at {
            v.by_rv.retain(|_, p| p.alive());
            v.sweep_at = (v.by_rv.len() * 2).max(MIN_SWEEP);
        }
    });
}

/// Withdraws a version the store no longer holds (superseded or removed), so that a weak
/// entry does not keep its allocation: a `Weak<[u8]>` keeps the whole text allocated, where a
/// `Weak<Value>` keeps only the `Arc`'s header. A reader that decodes it afterwards keeps its
/// own copy until the next version reaches it.
pub fn withdraw(obj: &Object) {
    let rv = obj.rv();
    with(|v| {
        let ours = match (v.by_rv.get(&rv), obj.shared_tree(), obj.packed()) {
            (Some(Published::Tree(w)), Some(t), _) => std::ptr::eq(w.as_ptr(), Arc::as_ptr(t)),
            (Some(Published::Text(w)), _, Some(t)) => {
                std::ptr::eq(w.as_ptr().cast::<u8>(), Arc::as_ptr(t).cast::<u8>())
            }
            _ => false,
        };
        if ours {
            v.by_rv.remove(&rv);
        }
    });
}

enum Strong {
    Tree(Arc<Value>),
    Text(Arc<[u8]>),
}

/// An object as a reader decoded it from the API (whole, `managedFields` included), held as
/// the store holds its kind and exchanged for the published version when equal: a tree
/// without `managedFields` (they are dropped here, as client-go's
/// `TransformStripManagedFields` does), or the whole object's JSON text.
pub fn share(decoded: Value) -> Object {
    let rv = rv_of(&decoded);
    let held = with(|v| match v.by_rv.get(&rv)? {
        Published::Tree(w) => w.upgrade().map(Strong::Tree),
        Published::Text(w) => w.upgrade().map(Strong::Text),
    });
    // Compared outside the lock: a version is immutable.
    if crate::model::object::text_kind(&decoded) {
        let text = serde_json::to_string(&decoded).expect("JSON values serialize");
        if let Some(Strong::Text(t)) = held {
            let stored = Object::from_packed(t, rv);
            if stored.text().as_deref() == Some(text.as_str()) {
                return stored;
            }
        }
        return Object::from_text(&text, rv);
    }
    let mut tree = decoded;
    if let Some(m) = tree.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    match held {
        Some(Strong::Tree(t)) if *t == tree => Object::from_tree(t),
        _ => Object::from_tree(Arc::new(tree)),
    }
}

/// How many versions are published and alive (for tests and measurements).
pub fn alive() -> usize {
    with(|v| v.by_rv.values().filter(|p| p.alive()).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_equal_version_is_shared_a_different_one_is_not() {
        let stored = Object::from_whole(json!({"kind": "Service",
            "metadata": {"name": "a", "resourceVersion": "900001",
                "managedFields": [{"manager": "m"}]}, "spec": {"k": "v"}}));
        publish(&stored);
        let decoded = stored.whole();
        let same = share(decoded.clone());
        assert!(same.same(&stored));
        assert!(same.managed_fields_json().is_none());
        // Another store's object at the same number: kept apart.
        let other = share(json!({"kind": "Service",
            "metadata": {"name": "b", "resourceVersion": "900001"}}));
        assert!(!other.same(&stored));
        assert_eq!(other.tree()["metadata"]["name"], "b");
        // Gone once its holders are.
        drop((stored, same));
        let again = share(decoded);
        assert_eq!(Arc::strong_count(&again.tree()), 2);
    }

    #[test]
    fn a_version_held_as_text_is_shared_as_text_whole() {
        let whole = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "900002",
                "managedFields": [{"manager": "m"}]}, "data": {"k": "v"}});
        let stored = Object::from_whole(whole.clone());
        assert!(stored.is_text());
        publish(&stored);
        let same = share(whole.clone());
        assert!(same.same(&stored));
        assert_eq!(same.whole(), whole);
        let mut changed = whole;
        changed["data"]["k"] = json!("w");
        let other = share(changed.clone());
        assert!(!other.same(&stored));
        assert_eq!(other.whole(), changed);
    }
}
