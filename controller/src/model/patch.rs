//! Patches: JSON merge patch (RFC 7386) and JSON patch (RFC 6902) through the `json-patch`
//! crate, and Kubernetes' strategic merge patch — what `kubectl apply` (client-side),
//! `kubectl scale` and `kubectl rollout restart` send: `null` deletes, lists of objects merge by
//! their key (containers by `name`, ports by `containerPort`…), `$patch: replace|delete`,
//! `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and `$retainKeys` directives.
//! Server-side apply merges the applied object the same way, after [`crate::model::managed`] has
//! checked conflicts and removed what the manager stopped applying.

use serde_json::{Map, Value};

/// The merge key of a list field, from the field's name and its elements (the Kubernetes API's
/// `patchMergeKey` for the kinds skiff serves).
pub(crate) fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ports" => match sample {
            Some(v) if v.get("containerPort").is_some() => Some("containerPort"),
            _ => Some("port"),
        },
        _ => None,
    }
}

/// The identity of an element of a list merged by `key`. Ports are told apart by their
/// protocol too (53/TCP and 53/UDP are two ports), as the API's list-map keys say; a missing
/// protocol is TCP, its default.
pub(crate) fn item_id(key: &str, item: &Value) -> Value {
    let id = item.get(key).cloned().unwrap_or(Value::Null);
    if key == "port" || key == "containerPort" {
        let proto = item
            .get("protocol")
            .cloned()
            .unwrap_or_else(|| "TCP".into());
        return Value::Array(vec![id, proto]);
    }
    id
}

/// Lists of scalars that merge as sets rather than being replaced.
pub(crate) fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to `target` in place.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, pv) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(order) = pv.as_array() {
                orders.push((field.to_string(), order.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (target[field].as_array_mut(), pv.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let t = target.as_object_mut().expect("made an object");
        match pv {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(pm) if pm.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(slot, pv);
            }
            Value::Array(items) => {
                let merged = merge_list(k, t.get(k).and_then(Value::as_array).cloned(), items);
                t.insert(k.clone(), Value::Array(merged));
            }
            scalar => {
                t.insert(k.clone(), scalar.clone());
            }
        }
    }
    if let Some(Value::Array(retain)) = p.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        if let Some(t) = target.as_object_mut() {
            t.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    for (field, order) in orders {
        if let Some(list) = target[&field].as_array() {
            let sorted = in_order(&field, list, &order);
            target[&field] = Value::Array(sorted);
        }
    }
}

/// A list field patched: lists with a merge key merge element by element (`$patch: delete`
/// removes one), sets of scalars gain new elements, other lists are replaced.
fn merge_list(field: &str, existing: Option<Vec<Value>>, items: &[Value]) -> Vec<Value> {
    let key = merge_key(
        field,
        items.first().or(existing.as_ref().and_then(|e| e.first())),
    );
    let objects = items.iter().all(Value::is_object);
    match (key, existing) {
        (Some(key), Some(mut list)) if objects => {
            for item in items {
                let id = item_id(key, item);
                let pos = list.iter().position(|e| item_id(key, e) == id);
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        list.remove(i);
                    }
                } else if let Some(i) = pos {
                    strategic_merge(&mut list[i], item);
                } else {
                    list.push(strip_directives(item));
                }
            }
            list
        }
        (_, Some(mut list)) if merges_primitives(field) => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
            list
        }
        _ => items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect(),
    }
}

/// `list` sorted as `$setElementOrder` says; elements it does not name keep their order after.
fn in_order(field: &str, list: &[Value], order: &[Value]) -> Vec<Value> {
    let key = merge_key(field, list.first());
    let id = |v: &Value| match key {
        Some(k) if v.is_object() => item_id(k, v),
        _ => v.clone(),
    };
    let mut sorted: Vec<Value> = Vec::with_capacity(list.len());
    for o in order {
        let want = id(o);
        if let Some(e) = list.iter().find(|e| id(e) == want) {
            sorted.push(e.clone());
        }
    }
    for e in list {
        if !sorted.iter().any(|s| id(s) == id(e)) {
            sorted.push(e.clone());
        }
    }
    sorted
}

/// Applies a JSON merge patch (RFC 7386).
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// The most operations a JSON patch may have (kube-apiserver's `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a JSON patch was refused.
#[derive(Debug, thiserror::Error)]
pub enum JsonPatchError {
    /// The body is not a JSON patch.
    #[error("invalid JSON patch: {0}")]
    Invalid(#[from] serde_json::Error),
    /// More than [`MAX_JSON_PATCH_OPERATIONS`] operations.
    #[error(
        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {0}"
    )]
    TooManyOperations(usize),
    /// The `copy` operations together would copy more than the limit.
    #[error("Unable to complete the copy, the accumulated size increase of copy is {accumulated}, exceeding the limit {limit}")]
    CopiesTooLarge {
        /// Bytes (as JSON) the copies up to the refused one would add.
        accumulated: usize,
        /// The limit.
        limit: usize,
    },
    /// An operation failed on the object.
    #[error("the JSON patch does not apply: {0}")]
    DoesNotApply(#[from] json_patch::PatchError),
}

/// The length of `v` as JSON, without writing it anywhere.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Applies a JSON patch (RFC 6902), bounded as kube-apiserver bounds it: at most
/// [`MAX_JSON_PATCH_OPERATIONS`] operations, and `copy` operations adding at most `copy_limit`
/// bytes (as JSON) together — a patch copying a value onto itself again and again would
/// otherwise double the object with every operation. Everything else a patch adds is in its
/// own body, which the body limit bounds. On an error `target` is left part-patched: callers
/// patch a copy.
pub fn json(target: &mut Value, patch: &Value, copy_limit: usize) -> Result<(), JsonPatchError> {
    if let Some(n) = patch.as_array().map(Vec::len) {
        if n > MAX_JSON_PATCH_OPERATIONS {
            return Err(JsonPatchError::TooManyOperations(n));
        }
    }
    let p: json_patch::Patch = serde_json::from_value(patch.clone())?;
    let mut accumulated = 0usize;
    for (i, op) in p.0.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(c) = op {
            let size = target.pointer(c.from.as_str()).map_or(0, json_len);
            accumulated = accumulated.saturating_add(size);
            if accumulated > copy_limit {
                return Err(JsonPatchError::CopiesTooLarge {
                    accumulated,
                    limit: copy_limit,
                });
            }
        }
        json_patch::patch_unsafe(target, std::slice::from_ref(op)).map_err(|mut e| {
            e.operation = i;
            e
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_null_deletes() {
        let mut d = json!({"spec":{"replicas":1,"template":{"spec":{"containers":[
            {"name":"a","image":"x:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]},
            {"name":"b","image":"y:1"}]}}}});
        let patch = json!({"spec":{"replicas":null,"template":{"spec":{
            "$setElementOrder/containers":[{"name":"b"},{"name":"a"}],
            "containers":[{"name":"a","image":"x:2","env":[{"name":"B","$patch":"delete"}]}]}}}});
        strategic_merge(&mut d, &patch);
        assert!(d["spec"].get("replicas").is_none());
        let cs = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["name"], "b");
        assert_eq!(cs[1]["image"], "x:2");
        assert_eq!(cs[1]["env"], json!([{"name":"A","value":"1"}]));
    }

    #[test]
    fn rollout_restart_annotation_patch() {
        let mut d = json!({"spec":{"template":{"metadata":{"labels":{"app":"w"}}}}});
        strategic_merge(
            &mut d,
            &json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}}}}}),
        );
        assert_eq!(
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "now"
        );
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "w");
    }

    #[test]
    fn ports_are_told_apart_by_protocol() {
        let mut svc = json!({"ports":[{"port":53,"protocol":"UDP","nodePort":30053},{"port":53,"nodePort":30054}]});
        strategic_merge(
            &mut svc,
            &json!({"ports":[{"port":53,"protocol":"UDP","name":"dns"},{"port":53,"protocol":"TCP","name":"dns-tcp"}]}),
        );
        assert_eq!(svc["ports"][0]["nodePort"], 30053);
        assert_eq!(svc["ports"][0]["name"], "dns");
        assert_eq!(svc["ports"][1]["nodePort"], 30054);
        assert_eq!(svc["ports"][1]["name"], "dns-tcp");
    }

    #[test]
    fn scalar_lists_are_replaced_and_finalizers_merged() {
        let mut d = json!({"args":["a","b"],"finalizers":["x"]});
        strategic_merge(&mut d, &json!({"args":["c"],"finalizers":["y"]}));
        assert_eq!(d, json!({"args":["c"],"finalizers":["x","y"]}));
    }

    #[test]
    fn json_patches_are_bounded_in_operations_and_copies() {
        // 20000 operations: refused before any is applied.
        let ops: Vec<Value> = (0..20_000)
            .map(|i| json!({"op": "add", "path": format!("/k{i}"), "value": 1}))
            .collect();
        let mut d = json!({});
        let e = json(&mut d, &Value::Array(ops), 1 << 20).unwrap_err();
        assert!(
            matches!(e, JsonPatchError::TooManyOperations(20_000)),
            "{e}"
        );
        assert_eq!(d, json!({}));
        assert!(e
            .to_string()
            .contains("maximum operations in a JSON patch is 10000, got 20000"));

        // Doubling by copy: 40 copies would make 1 KiB into a terabyte; refused at the limit.
        let mut d = json!({"a": ["x".repeat(1024)]});
        let doubling: Vec<Value> = (0..40)
            .map(|_| json!({"op": "copy", "from": "/a", "path": "/a/-"}))
            .collect();
        let e = json(&mut d, &Value::Array(doubling.clone()), 3 << 20).unwrap_err();
        assert!(
            matches!(e, JsonPatchError::CopiesTooLarge { limit, .. } if limit == 3 << 20),
            "{e}"
        );
        assert!(json_len(&d) < 8 << 20);

        // Within the limits, a patch applies, and an error names its operation's index.
        let mut d = json!({"a": [1]});
        json(&mut d, &Value::Array(doubling[..3].to_vec()), 3 << 20).unwrap();
        assert_eq!(d["a"].as_array().unwrap().len(), 4);
        let e = json(
            &mut d,
            &json!([{"op": "add", "path": "/b", "value": 1}, {"op": "remove", "path": "/nope"}]),
            1024,
        )
        .unwrap_err();
        assert!(e.to_string().contains("operation '/1' failed"), "{e}");
    }
}
