//! Small helpers for reading and writing `metadata` of objects kept as JSON.

use serde_json::{Map, Value};

/// `metadata` as a mutable map, created if missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("just made an object")
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// `metadata.uid`.
pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

/// One annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// Removes one annotation (and an `annotations` map left empty).
/// Never panics, whatever `obj` is: a `metadata` that is not a mapping is left for validation
/// to name.
pub fn remove_annotation(obj: &mut Value, key: &str) {
    let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(a) = md.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove(key);
        if a.is_empty() {
            md.remove("annotations");
        }
    }
}

/// Sets one annotation.
pub fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    let m = metadata_mut(obj);
    let a = m
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !a.is_object() {
        *a = Value::Object(Map::new());
    }
    a.as_object_mut()
        .expect("object")
        .insert(key.to_string(), Value::String(value.to_string()));
}

/// Whether the object is being deleted gracefully.
pub fn is_terminating(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The uid of the controlling owner (`ownerReferences[].controller == true`), if any.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .and_then(|r| r["uid"].as_str())
}

/// Whether every `key: value` of `selector` is among `labels`.
pub fn labels_match(selector: &Value, labels: &Value) -> bool {
    match selector.as_object() {
        Some(sel) => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        None => true,
    }
}

/// The alphabet Kubernetes uses for generated name suffixes and `SafeEncodeString` (no vowels,
/// no look-alikes).
pub const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random 5-character suffix, as Kubernetes' `generateName` makes.
pub fn random_suffix() -> String {
    (0..5)
        .map(|_| ALPHANUMS[rand::random::<usize>() % ALPHANUMS.len()] as char)
        .collect()
}
