//! One stored object version as the store holds it, in one of two forms:
//!
//! - **a tree** without `metadata.managedFields`, and that field as its compact JSON text
//!   beside it (issue 15: two `managedFields` entries are ~7 KB as `serde_json` maps — two
//!   thirds of a small object's tree — and ~0.6 KB as text). The tree is what the watch
//!   caches share (`model::versions`: they drop `managedFields` as they decode, as client-go's
//!   `TransformStripManagedFields` does, and no reconciler reads them);
//! - **its JSON text**, whole and LZ4-compressed, for the kinds the reconcilers rarely read
//!   ([`KindInfo::held_as_text`]: ConfigMaps, Secrets, Events — most of a home lab's objects,
//!   read when a pod starts): a small ConfigMap is ~4 KB as a tree (a `BTreeMap` node of ~630
//!   bytes per JSON object however few its keys), ~0.6–1.5 KB as text and 1.2–3× less
//!   compressed (its keys repeat: `managedFields` name every field again); decompressing costs
//!   ~0.3 µs a KB, a parse ~5 µs. A reader that needs a tree gets one parsed for it
//!   ([`Object::tree`]).
//!
//! The whole object — what the API answers, SQLite keeps and writes start from — serializes
//! to the same bytes either way: [`Object`]'s `Serialize` writes a tree's `managedFields` text
//! into `metadata` where a sorted map puts it (a `serde_json` map is a `BTreeMap`), and a text
//! as it is, token by token without building a tree; [`Object::whole`] parses it back.
//!
//! Does not own: what `managedFields` mean (`model::managed`), when a version is written
//! (`model::store`), which kinds are held as text (`model::kinds`).

use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::model::kinds;
use crate::model::versions::rv_of;

const MANAGED: &str = "managedFields";

/// An object version. Cheap to clone (one or two `Arc`s).
#[derive(Clone, Debug)]
pub struct Object {
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// The tree without `metadata.managedFields`, and the field as JSON text.
    Tree {
        tree: Arc<Value>,
        managed: Option<Arc<str>>,
    },
    /// The whole object as compact JSON (sorted keys, as a tree serializes), LZ4-compressed
    /// with its length in front ([`pack`]), and its resourceVersion (read without a parse by
    /// the watch and the history).
    Text { packed: Arc<[u8]>, rv: u64 },
}

/// Whether objects of this kind are held as JSON text ([`KindInfo::held_as_text`]).
///
/// [`KindInfo::held_as_text`]: crate::model::kinds::KindInfo::held_as_text
pub(crate) fn text_kind(obj: &Value) -> bool {
    obj["kind"]
        .as_str()
        .and_then(kinds::by_kind)
        .is_some_and(kinds::KindInfo::held_as_text)
}

/// A tree with its `metadata.managedFields` (whatever its value) taken out.
fn strip(mut whole: Value) -> (Value, Option<Value>) {
    let managed = whole
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(MANAGED));
    (whole, managed)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the store's own JSON parses")
}

/// A text as held: LZ4 block-compressed, its length in front.
fn pack(text: &str) -> Arc<[u8]> {
    lz4_flex::compress_prepend_size(text.as_bytes()).into()
}

/// A held text back (the store's own bytes: a failure is a bug, not bad input).
fn unpack(packed: &[u8]) -> String {
    let bytes = lz4_flex::decompress_size_prepended(packed).expect("the store's own LZ4 text");
    String::from_utf8(bytes).expect("the store's own JSON is UTF-8")
}

impl Object {
    /// A whole object as the store holds it: as text if its kind is held so, else split —
    /// `metadata.managedFields`, if present, taken out of the tree and kept as its JSON text.
    pub fn from_whole(whole: Value) -> Object {
        if text_kind(&whole) {
            let rv = rv_of(&whole);
            let text = serde_json::to_string(&whole).expect("JSON values serialize");
            return Object::from_text(&text, rv);
        }
        let (tree, managed) = strip(whole);
        let managed =
            managed.map(|f| Arc::from(serde_json::to_string(&f).expect("JSON values serialize")));
        Object {
            repr: Repr::Tree {
                tree: Arc::new(tree),
                managed,
            },
        }
    }

    /// A tree without `managedFields` of its own (what a watch cache keeps).
    pub fn from_tree(tree: Arc<Value>) -> Object {
        Object {
            repr: Repr::Tree {
                tree,
                managed: None,
            },
        }
    }

    /// A whole object's compact JSON (sorted keys) and its resourceVersion.
    pub fn from_text(text: &str, rv: u64) -> Object {
        Object::from_packed(pack(text), rv)
    }

    /// A text as [`Object::packed`] gives it (shared, not copied).
    pub(crate) fn from_packed(packed: Arc<[u8]>, rv: u64) -> Object {
        Object {
            repr: Repr::Text { packed, rv },
        }
    }

    /// A new version with this one's `managedFields` and another tree (one that has no
    /// `metadata.managedFields` of its own: a change the store makes, such as a status or a
    /// deletion mark).
    pub fn with_tree(&self, mut tree: Value) -> Object {
        debug_assert!(tree["metadata"].get(MANAGED).is_none());
        match &self.repr {
            Repr::Tree { managed, .. } => Object {
                repr: Repr::Tree {
                    tree: Arc::new(tree),
                    managed: managed.clone(),
                },
            },
            Repr::Text { packed, .. } => {
                if let (Some(f), Some(m)) = (
                    strip(parse(&unpack(packed))).1,
                    tree.get_mut("metadata").and_then(Value::as_object_mut),
                ) {
                    m.insert(MANAGED.into(), f);
                }
                Object::from_whole(tree)
            }
        }
    }

    /// The tree without `metadata.managedFields`: shared with the watch caches when the object
    /// is held as a tree, parsed for this reader when it is held as text.
    pub fn tree(&self) -> Arc<Value> {
        match &self.repr {
            Repr::Tree { tree, .. } => tree.clone(),
            Repr::Text { packed, .. } => Arc::new(strip(parse(&unpack(packed))).0),
        }
    }

    /// What identifies the object and its owners, as a tree: the object's own tree when it is
    /// held as one; for one held as text, only `apiVersion`, `kind` and `metadata.name`,
    /// `namespace`, `uid`, `deletionTimestamp`, `ownerReferences` and `annotations`, read
    /// without building the rest (~4× cheaper than a whole tree): for the garbage collector,
    /// which looks at every object in every pass, and the manifests folder's pruning.
    pub fn identity(&self) -> Arc<Value> {
        #[derive(serde::Deserialize, Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Identity {
            #[serde(skip_serializing_if = "Option::is_none")]
            api_version: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            kind: Option<String>,
            #[serde(default)]
            metadata: IdentityMeta,
        }
        #[derive(Default, serde::Deserialize, Serialize)]
        #[serde(rename_all = "camelCase")]
        struct IdentityMeta {
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            namespace: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            uid: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            deletion_timestamp: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            owner_references: Option<Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            annotations: Option<Value>,
        }
        match &self.repr {
            Repr::Tree { tree, .. } => tree.clone(),
            Repr::Text { packed, .. } => {
                let id: Identity =
                    serde_json::from_str(&unpack(packed)).expect("the store's own JSON parses");
                Arc::new(serde_json::to_value(id).expect("JSON values serialize"))
            }
        }
    }

    /// The tree if the object is held as one (no parse), `None` if it is held as text.
    pub fn shared_tree(&self) -> Option<&Arc<Value>> {
        match &self.repr {
            Repr::Tree { tree, .. } => Some(tree),
            Repr::Text { .. } => None,
        }
    }

    /// The whole object's JSON if the object is held as text.
    pub fn text(&self) -> Option<String> {
        self.packed().map(|p| unpack(p))
    }

    /// Whether the object is held as text.
    pub fn is_text(&self) -> bool {
        matches!(self.repr, Repr::Text { .. })
    }

    /// The held text as stored (compressed), if the object is held as text.
    pub fn packed(&self) -> Option<&Arc<[u8]>> {
        match &self.repr {
            Repr::Text { packed, .. } => Some(packed),
            Repr::Tree { .. } => None,
        }
    }

    /// Whether two objects are the same version held once (not merely equal).
    pub fn same(&self, other: &Object) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Tree { tree: a, .. }, Repr::Tree { tree: b, .. }) => Arc::ptr_eq(a, b),
            (Repr::Text { packed: a, .. }, Repr::Text { packed: b, .. }) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// `metadata.resourceVersion` as a number (0 when absent).
    pub fn rv(&self) -> u64 {
        match &self.repr {
            Repr::Tree { tree, .. } => rv_of(tree),
            Repr::Text { rv, .. } => *rv,
        }
    }

    /// `metadata.managedFields` as JSON text, if the object has the field.
    pub fn managed_fields_json(&self) -> Option<Cow<'_, str>> {
        match &self.repr {
            Repr::Tree { managed, .. } => managed.as_deref().map(Cow::Borrowed),
            Repr::Text { packed, .. } => strip(parse(&unpack(packed)))
                .1
                .map(|f| Cow::Owned(serde_json::to_string(&f).expect("JSON values serialize"))),
        }
    }

    /// The whole object as a tree of its own (a copy, with `managedFields` parsed): what a
    /// write starts from.
    pub fn whole(&self) -> Value {
        let (tree, managed) = match &self.repr {
            Repr::Text { packed, .. } => return parse(&unpack(packed)),
            Repr::Tree { tree, managed } => (tree, managed),
        };
        let mut whole = (**tree).clone();
        if let (Some(text), Some(m)) = (
            managed,
            whole.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            m.insert(MANAGED.into(), parse(text));
        }
        whole
    }

    /// [`Object::whole`] behind an `Arc`: the tree itself when there are no `managedFields`.
    pub fn whole_arc(&self) -> Arc<Value> {
        match &self.repr {
            Repr::Tree {
                tree,
                managed: None,
            } => tree.clone(),
            _ => Arc::new(self.whole()),
        }
    }
}

impl PartialEq for Object {
    /// The same whole object, however each is held.
    fn eq(&self, other: &Object) -> bool {
        self.same(other) || self.whole() == other.whole()
    }
}

impl Serialize for Object {
    /// The whole object, as its tree with `managedFields` would serialize.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (tree, text) = match &self.repr {
            Repr::Text { packed, .. } => return Raw(&unpack(packed)).serialize(s),
            Repr::Tree { tree, managed } => (tree, managed),
        };
        let (Some(text), Value::Object(top)) = (text, &**tree) else {
            return tree.serialize(s);
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

    /// A whole object of a kind held as text (ConfigMap) or as a tree (Lease: the object need
    /// not be valid here).
    fn whole(kind: &str) -> Value {
        json!({"apiVersion": "v1", "kind": kind,
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
        for (kind, as_text) in [("ConfigMap", true), ("Lease", false)] {
            let w = whole(kind);
            let o = Object::from_whole(w.clone());
            assert_eq!(o.is_text(), as_text, "{kind}");
            if as_text {
                let text = serde_json::to_string(&w).unwrap();
                assert_eq!(o.text().unwrap(), text);
                let packed = o.packed().unwrap().len();
                assert!(
                    packed < text.len(),
                    "{packed} bytes held for {}",
                    text.len()
                );
            }
            assert_eq!(o.shared_tree().is_some(), !as_text, "{kind}");
            assert_eq!(o.rv(), 7);
            assert!(o.tree()["metadata"].get(MANAGED).is_none());
            assert_eq!(o.tree()["metadata"]["name"], "a");
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
            let id = o.identity();
            assert_eq!(id["metadata"]["uid"], "u");
            assert_eq!(id["metadata"]["namespace"], "default");
            assert_eq!(id["kind"], kind);
            if as_text {
                let mut want = w.clone();
                want.as_object_mut().unwrap().remove("data");
                let m = want["metadata"].as_object_mut().unwrap();
                for f in ["labels", "resourceVersion", MANAGED] {
                    m.remove(f);
                }
                assert_eq!(*id, want);
            }
            let f = serde_json::to_string(&w["metadata"][MANAGED]).unwrap();
            assert_eq!(o.managed_fields_json().as_deref(), Some(f.as_str()));
            // One version, held once: clones are the same, a parse of it is only equal.
            assert!(o.same(&o.clone()));
            let again = Object::from_whole(w);
            assert!(!o.same(&again) && o == again);
        }
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
        for kind in ["ConfigMap", "Lease"] {
            let o = Object::from_whole(whole(kind));
            let mut t = (*o.tree()).clone();
            t["status"] = json!({"phase": "x"});
            let n = o.with_tree(t);
            let mut w = whole(kind);
            w["status"] = json!({"phase": "x"});
            assert_eq!(n.whole(), w);
            assert_eq!(n.managed_fields_json(), o.managed_fields_json());
            assert_eq!(n.is_text(), o.is_text());
        }
    }
}
