//! One stored object version as the store holds it: its tree **without**
//! `metadata.managedFields`, and that field as its compact JSON text beside it (issue 15: two
//! `managedFields` entries are ~7 KB as `serde_json` maps — two thirds of a small object's tree —
//! and ~0.6 KB as text).
//!
//! The tree is what the watch caches share (`model::versions`: they drop `managedFields` as
//! they decode, as client-go's `TransformStripManagedFields` does, and no reconciler reads
//! them). The whole object — what the API answers, SQLite keeps and writes start from — is
//! the two together: [`Object`]'s `Serialize` writes the text into `metadata` where a sorted
//! map puts it (a `serde_json` map is a `BTreeMap`), token by token without building a tree,
//! so the bytes are those of the whole object's tree; [`Object::whole`] parses it back.
//!
//! Does not own: what `managedFields` mean (`model::managed`), when a version is written
//! (`model::store`).

use std::ops::Deref;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

const MANAGED: &str = "managedFields";

/// An object version: its tree without `metadata.managedFields` (what `Deref` gives), and the
/// field as JSON text. Cheap to clone (two `Arc`s).
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    tree: Arc<Value>,
    managed: Option<Arc<str>>,
}

impl Object {
    /// Splits a whole object: `metadata.managedFields`, if present (whatever its value), is
    /// taken out of the tree and kept as its JSON text.
    pub fn from_whole(mut whole: Value) -> Object {
        let managed = whole
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove(MANAGED))
            .map(|f| Arc::from(serde_json::to_string(&f).expect("JSON values serialize")));
        Object {
            tree: Arc::new(whole),
            managed,
        }
    }

    /// A new version with this one's `managedFields` and another tree (one that has no
    /// `metadata.managedFields` of its own: a change the store makes, such as a status or a
    /// deletion mark).
    pub fn with_tree(&self, tree: Value) -> Object {
        debug_assert!(tree["metadata"].get(MANAGED).is_none());
        Object {
            tree: Arc::new(tree),
            managed: self.managed.clone(),
        }
    }

    /// The tree without `metadata.managedFields` (shared with the watch caches).
    pub fn tree(&self) -> &Arc<Value> {
        &self.tree
    }

    /// `metadata.managedFields` as JSON text, if the object has the field.
    pub fn managed_fields_json(&self) -> Option<&str> {
        self.managed.as_deref()
    }

    /// The whole object as a tree of its own (a copy, with `managedFields` parsed): what a
    /// write starts from.
    pub fn whole(&self) -> Value {
        let mut whole = (*self.tree).clone();
        if let (Some(text), Some(m)) = (
            &self.managed,
            whole.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            m.insert(
                MANAGED.into(),
                serde_json::from_str(text).expect("the store's own JSON parses"),
            );
        }
        whole
    }

    /// [`Object::whole`] behind an `Arc`: the tree itself when there are no `managedFields`.
    pub fn whole_arc(&self) -> Arc<Value> {
        match self.managed {
            None => self.tree.clone(),
            Some(_) => Arc::new(self.whole()),
        }
    }
}

impl Deref for Object {
    type Target = Value;

    /// The tree without `metadata.managedFields`.
    fn deref(&self) -> &Value {
        &self.tree
    }
}

impl Serialize for Object {
    /// The whole object, as its tree with `managedFields` would serialize.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (Some(text), Value::Object(top)) = (&self.managed, &*self.tree) else {
            return self.tree.serialize(s);
        };
        let mut map = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match v {
                Value::Object(meta) if k == "metadata" => map.serialize_entry(
                    k,
                    &WithManaged {
                        meta,
                        managed: text,
                    },
                )?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

/// `metadata` with `managedFields` written in its sorted place.
struct WithManaged<'a> {
    meta: &'a serde_json::Map<String, Value>,
    managed: &'a str,
}

impl Serialize for WithManaged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.meta.len() + 1))?;
        let mut pending = true;
        for (k, v) in self.meta {
            if pending && k.as_str() > MANAGED {
                map.serialize_entry(MANAGED, &Raw(self.managed))?;
                pending = false;
            }
            map.serialize_entry(k, v)?;
        }
        if pending {
            map.serialize_entry(MANAGED, &Raw(self.managed))?;
        }
        map.end()
    }
}

/// JSON text written out value by value (no tree).
struct Raw<'a>(&'a str);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut de = serde_json::Deserializer::from_str(self.0);
        serde_transcode::transcode(&mut de, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whole() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default", "labels": {"x": "y"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\":1}\n"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply",
                    "apiVersion": "v1", "time": "2026-12-05T10:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {"f:k": {}, "f:n": {}}}, "n": 1.5e300, "m": -3,
                    "s": "é\"\\\u{1}"}],
                "resourceVersion": "7", "uid": "u"},
            "data": {"k": "v"}})
    }

    #[test]
    fn the_whole_object_serializes_to_the_same_bytes_and_parses_back() {
        let w = whole();
        let o = Object::from_whole(w.clone());
        assert!(o["metadata"].get(MANAGED).is_none());
        assert_eq!(o["metadata"]["name"], "a");
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            serde_json::to_string(&w).unwrap()
        );
        assert_eq!(
            serde_json::to_vec_pretty(&o).unwrap(),
            serde_json::to_vec_pretty(&w).unwrap()
        );
        assert_eq!(serde_json::to_value(&o).unwrap(), w);
        assert_eq!(o.whole(), w);
        assert_eq!(*o.whole_arc(), w);
    }

    #[test]
    fn managed_fields_go_where_a_sorted_map_puts_them_whatever_else_is_there() {
        for meta in [
            json!({}),
            json!({"name": "a"}),
            json!({"labels": {}}),
            json!({"managedFields": null, "name": "a"}),
            json!({"managedFields": [], "labels": {}}),
            json!({"managedFields": [{"manager": "m"}]}),
            json!({"managedFields": [{"manager": "m"}], "a": 1, "managedFieldz": 2, "m": 3}),
        ] {
            let w = json!({"kind": "X", "metadata": meta});
            let o = Object::from_whole(w.clone());
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                serde_json::to_string(&w).unwrap()
            );
            assert_eq!(o.whole(), w);
        }
        // Without metadata, or not an object: as it is.
        for w in [json!({"kind": "X"}), json!([1, 2]), json!({"metadata": 3})] {
            let o = Object::from_whole(w.clone());
            assert_eq!(serde_json::to_string(&o).unwrap(), w.to_string());
        }
    }

    #[test]
    fn a_new_tree_keeps_the_versions_managed_fields() {
        let o = Object::from_whole(whole());
        let mut t = (*o).clone();
        t["status"] = json!({"phase": "x"});
        let n = o.with_tree(t);
        let mut w = whole();
        w["status"] = json!({"phase": "x"});
        assert_eq!(n.whole(), w);
        assert_eq!(n.managed_fields_json(), o.managed_fields_json());
    }
}
