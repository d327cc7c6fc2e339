//! Field ownership — `metadata.managedFields` — and server-side apply, the subset of
//! Kubernetes' structured-merge-diff that the kinds skiff serves need.
//!
//! A field set is a set of paths in the `FieldsV1` vocabulary: `f:<field>` for a field of an
//! object or a map key, `k:{"<key>":<value>}` for an element of a list merged by key (with a `.`
//! path for the element itself), `v:<json>` for an element of a set of scalars (`finalizers`).
//! Lists without a merge key (`args`, `rules`…) are atomic: one leaf owns the whole list.
//!
//! - **Apply** (`application/apply-patch+yaml`, and the manifests folder): the manager's set is
//!   exactly what it applied. A field another manager owns with a different value is a conflict
//!   unless forced (then the other manager loses it). Fields the manager applied before and no
//!   longer applies are removed from the object unless another manager owns them.
//! - **Update** (POST, PUT, every other PATCH): the writer gains the fields whose values it
//!   changed, the other managers lose them; no conflicts, as in Kubernetes.
//! - A request that sets `managedFields` itself (kubectl's migration from client-side apply
//!   sends a JSON patch of it) is taken as given.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::model::meta;
use crate::model::patch;

/// One path of a field set.
pub type Path = Vec<String>;

/// A set of owned fields.
pub type FieldSet = BTreeSet<Path>;

/// `operation` of a managed fields entry.
pub const APPLY: &str = "Apply";
/// `operation` of a managed fields entry.
pub const UPDATE: &str = "Update";

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `manager`.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the manager wrote with.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str) -> bool {
        self.manager == manager && self.operation == operation
    }
}

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The API version it wrote with.
    pub api_version: String,
    /// The field, as Kubernetes prints it (`.spec.replicas`).
    pub field: String,
}

// ---- field sets --------------------------------------------------------------------------

/// The fields an object sets: everything but identity, server-owned metadata and `status`.
pub fn set_of(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for f in ["labels", "annotations", "ownerReferences", "finalizers"] {
                    if let Some(v) = v.get(f) {
                        walk(
                            v,
                            f,
                            &mut vec!["f:metadata".into(), format!("f:{f}")],
                            &mut out,
                        );
                    }
                }
            }
            _ => walk(v, k, &mut vec![format!("f:{k}")], &mut out),
        }
    }
    out
}

fn walk(v: &Value, field: &str, path: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(format!("f:{k}"));
                walk(child, k, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let key = patch::merge_key(field, items.first());
            if let Some(key) = key.filter(|_| items.iter().all(Value::is_object)) {
                for item in items {
                    path.push(key_element(key, item));
                    path.push(".".into());
                    out.insert(path.clone());
                    path.pop();
                    walk_fields(item, path, out);
                    path.pop();
                }
            } else if patch::merges_primitives(field) {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            } else {
                out.insert(path.clone());
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The fields of a keyed list element (the element itself is `.`).
fn walk_fields(item: &Value, path: &mut Path, out: &mut FieldSet) {
    if let Some(m) = item.as_object() {
        for (k, child) in m {
            path.push(format!("f:{k}"));
            walk(child, k, path, out);
            path.pop();
        }
    }
}

/// `k:{"name":"web"}`; ports are keyed with their protocol, `k:{"port":53,"protocol":"UDP"}`.
fn key_element(key: &str, item: &Value) -> String {
    let mut m = Map::new();
    match patch::item_id(key, item) {
        Value::Array(parts) if parts.len() == 2 => {
            m.insert(key.to_string(), parts[0].clone());
            m.insert("protocol".into(), parts[1].clone());
        }
        id => {
            m.insert(key.to_string(), id);
        }
    }
    format!("k:{}", Value::Object(m))
}

/// The `FieldsV1` document of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut node = &mut root;
        for el in path {
            node = node
                .as_object_mut()
                .expect("nodes are objects")
                .entry(el.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// The set of a `FieldsV1` document. Every node without children is a path; `.` marks an
/// element that is owned as a whole.
pub fn from_fields_v1(doc: &Value) -> FieldSet {
    fn go(node: &Value, path: &mut Path, out: &mut FieldSet) {
        match node.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    go(child, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = FieldSet::new();
    go(doc, &mut Vec::new(), &mut out);
    out
}

/// Kubernetes' printed form of a path: `.spec.template.spec.containers[name="web"].image`.
pub fn display(path: &Path) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let parsed: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let inner = parsed
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            s.push_str(&format!("[{inner}]"));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

// ---- navigating objects by path ----------------------------------------------------------

fn find_item(list: &[Value], el: &str) -> Option<usize> {
    if let Some(k) = el.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(k).ok()?;
        let tcp = Value::from("TCP");
        list.iter().position(|item| {
            want.iter().all(|(k, v)| match item.get(k) {
                None if k == "protocol" => *v == tcp,
                have => have == Some(v),
            })
        })
    } else if let Some(v) = el.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        list.iter().position(|item| *item == want)
    } else {
        None
    }
}

/// The value a path names, if the object has it.
pub fn value_at<'a>(obj: &'a Value, path: &Path) -> Option<&'a Value> {
    let mut node = obj;
    for el in path {
        if el == "." {
            continue;
        }
        node = match el.strip_prefix("f:") {
            Some(f) => node.as_object()?.get(f)?,
            None => {
                let list = node.as_array()?;
                &list[find_item(list, el)?]
            }
        };
    }
    Some(node)
}

/// Removes what a path names; empty objects left behind by the removal go too.
pub fn remove_at(obj: &mut Value, path: &Path) {
    let path: Vec<&String> = path.iter().filter(|e| *e != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    fn parent<'a>(obj: &'a mut Value, path: &[&String]) -> Option<&'a mut Value> {
        let mut node = obj;
        for el in path {
            node = match el.strip_prefix("f:") {
                Some(f) => node.as_object_mut()?.get_mut(f)?,
                None => {
                    let i = find_item(node.as_array()?, el)?;
                    &mut node.as_array_mut()?[i]
                }
            };
        }
        Some(node)
    }
    let Some(p) = parent(obj, parents) else {
        return;
    };
    let removed = match last.strip_prefix("f:") {
        Some(f) => p.as_object_mut().and_then(|m| m.remove(f)).is_some(),
        None => match p.as_array().and_then(|l| find_item(l, last)) {
            Some(i) => {
                p.as_array_mut().expect("array").remove(i);
                true
            }
            None => false,
        },
    };
    let emptied = match p {
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    if removed && emptied && parents.last().is_some_and(|e| e.starts_with("f:")) {
        let up: Path = parents.iter().map(|s| (*s).clone()).collect();
        remove_at(obj, &up);
    }
}

// ---- entries -----------------------------------------------------------------------------

/// The entries of `metadata.managedFields` (entries of subresources are kept aside by
/// [`set_entries`] callers: skiff writes status without managers).
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|e| e.get("subresource").is_none())
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or(UPDATE).to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the entries into `metadata.managedFields` (none: the field goes).
pub fn set_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                // Always a valid timestamp: clients decode it as one (a bad one would make
                // a list of the kind undecodable for every watcher).
                "time": if e.time.parse::<jiff::Timestamp>().is_ok() {
                    e.time.clone()
                } else {
                    crate::model::store::now_rfc3339()
                },
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            })
        })
        .collect();
    let m = meta::metadata_mut(obj);
    if list.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(list));
    }
}

/// The set a manager owns (of either operation).
pub fn owned_by(obj: &Value, manager: &str) -> FieldSet {
    entries(obj)
        .into_iter()
        .filter(|e| e.manager == manager)
        .flat_map(|e| e.fields)
        .collect()
}

/// Whether the path is a key field of a list element (`…/k:{"name":"web"}/f:name`): it goes
/// with its element (the element's `.`), never on its own — an element another manager keeps
/// must keep its key.
fn is_key_field(p: &Path) -> bool {
    let [.., element, field] = p.as_slice() else {
        return false;
    };
    let (Some(key), Some(field)) = (element.strip_prefix("k:"), field.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(field))
}

fn is_leaf(p: &Path) -> bool {
    p.last().is_some_and(|e| e != ".")
}

// ---- apply -------------------------------------------------------------------------------

/// The manager kubectl uses for `apply --server-side`; like the API server, skiff lets it take
/// over fields recorded in the client-side apply annotation without a conflict.
const KUBECTL: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Server-side apply of `applied` (as sent, before defaults) onto `live` (`None`: a create).
/// Returns the merged object (not yet defaulted) with its managed fields, or the conflicts.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let empty = json!({});
    let live_obj = live.unwrap_or(&empty);
    let mut others = entries(live_obj);
    let mine_before = others
        .iter()
        .position(|e| e.is(manager, APPLY))
        .map(|i| others.remove(i));
    let applying = set_of(applied);

    let conflicts = conflicts(live_obj, applied, &applying, &others, manager);
    if !conflicts.is_empty() && !force {
        let refused = refused(live_obj, manager, &conflicts, &others);
        if !refused.is_empty() {
            return Err(refused);
        }
    }
    for (i, p) in &conflicts {
        others[*i].fields.remove(p);
    }

    let mut obj = live.cloned().unwrap_or_else(|| json!({}));
    if let Some(before) = &mine_before {
        let owned_elsewhere = |p: &Path| {
            others.iter().any(|e| {
                e.fields.contains(p)
                    || (p.last().is_some_and(|l| l == ".")
                        && e.fields.iter().any(|q| q.starts_with(&p[..p.len() - 1])))
            })
        };
        for p in before.fields.difference(&applying) {
            if !owned_elsewhere(p) && !is_key_field(p) {
                remove_at(&mut obj, p);
            }
        }
    }
    let mut body = applied.clone();
    if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    patch::strategic_merge(&mut obj, &body);

    let time = match &mine_before {
        Some(b) if b.fields == applying && live.map(strip_managed) == Some(strip_managed(&obj)) => {
            b.time.clone()
        }
        _ => crate::model::store::now_rfc3339(),
    };
    let mut all = others;
    all.push(Entry {
        manager: manager.to_string(),
        operation: APPLY.into(),
        api_version: applied["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        time,
        fields: applying,
    });
    set_entries(&mut obj, &all);
    Ok(obj)
}

/// The leaf fields `applied` sets that another manager owns with a different value: (index of
/// the other manager's entry, field).
fn conflicts(
    live: &Value,
    applied: &Value,
    applying: &FieldSet,
    others: &[Entry],
    manager: &str,
) -> Vec<(usize, Path)> {
    let mut conflicts = Vec::new();
    for (i, e) in others.iter().enumerate() {
        if e.manager == manager {
            continue;
        }
        for p in applying.intersection(&e.fields).filter(|p| is_leaf(p)) {
            if let Some(have) = value_at(live, p) {
                if Some(have) != value_at(applied, p) {
                    conflicts.push((i, p.clone()));
                }
            }
        }
    }
    conflicts
}

/// The conflicts that refuse an unforced apply. kubectl's move from client-side to server-side
/// apply is exempt for the fields it declared in the last-applied annotation: they are its own.
fn refused(
    live: &Value,
    manager: &str,
    conflicts: &[(usize, Path)],
    others: &[Entry],
) -> Vec<Conflict> {
    let allowed = (manager == KUBECTL)
        .then(|| meta::annotation(live, LAST_APPLIED))
        .flatten()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .map(|v| set_of(&v))
        .unwrap_or_default();
    conflicts
        .iter()
        .filter(|(_, p)| !allowed.contains(p))
        .map(|(i, p)| Conflict {
            manager: others[*i].manager.clone(),
            api_version: others[*i].api_version.clone(),
            field: display(p),
        })
        .collect()
}

fn strip_managed(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    o
}

// ---- update ------------------------------------------------------------------------------

/// The fields an update changes: those `new` sets with a value `old` does not have.
pub fn changed(old: &Value, new: &Value) -> FieldSet {
    set_of(new)
        .into_iter()
        .filter(|p| {
            if is_leaf(p) {
                value_at(old, p) != value_at(new, p)
            } else {
                value_at(old, p).is_none()
            }
        })
        .collect()
}

/// The fields `old` sets that `new` no longer has.
pub fn removed(old: &Value, new: &Value) -> FieldSet {
    let now = set_of(new);
    set_of(old)
        .into_iter()
        .filter(|p| !now.contains(p))
        .collect()
}

/// Records a non-apply write by `manager`: `new` (defaulted, about to be stored) replaces
/// `old` (`None`: a create, where `requested` — the object as sent, before defaults — says
/// what the writer set). A `managedFields` the request itself changed is kept as given.
pub fn update(old: Option<&Value>, requested: &Value, new: &mut Value, manager: &str) {
    // The entries the write starts from: the stored ones, or — as the API server does — those
    // the request sets itself (kubectl's migration from client-side apply patches them): an
    // empty list keeps the stored ones, `[{}]` clears them. Either way they are parsed and
    // written anew, so only well-formed entries are stored.
    let given = &requested["metadata"]["managedFields"];
    let before = old.map(|o| &o["metadata"]["managedFields"]);
    let mut all = match given.as_array() {
        Some(list) if Some(given) != before && !list.is_empty() => {
            if list.iter().all(|e| e == &json!({})) {
                Vec::new()
            } else {
                entries(requested)
            }
        }
        _ => old.map(entries).unwrap_or_default(),
    };
    let present = set_of(new);
    let changes = match old {
        Some(old) => changed(old, new),
        None => set_of(requested).intersection(&present).cloned().collect(),
    };
    let now = crate::model::store::now_rfc3339();
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_string();
    for e in all.iter_mut() {
        let keep: FieldSet = e
            .fields
            .iter()
            .filter(|p| present.contains(*p) && !(is_leaf(p) && changes.contains(*p)))
            .cloned()
            .collect();
        if keep != e.fields {
            e.fields = keep;
        }
    }
    if !changes.is_empty() {
        match all.iter_mut().find(|e| e.is(manager, UPDATE)) {
            Some(e) => {
                e.fields.extend(changes);
                e.time = now;
                e.api_version = api_version;
            }
            None => all.push(Entry {
                manager: manager.to_string(),
                operation: UPDATE.into(),
                api_version,
                time: now,
                fields: changes,
            }),
        }
    }
    set_entries(new, &all);
}

/// The manager of a non-apply write: `?fieldManager=`, else the client's name from its
/// User-Agent (`kubectl/v1.32.0 (linux/amd64) …` → `kubectl`), as the API server does.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    user_agent
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str, extra_env: bool) -> Value {
        let mut env = vec![json!({"name":"A","value":"1"})];
        if extra_env {
            env.push(json!({"name":"B","value":"2"}));
        }
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"app":"web"}},
          "spec":{"replicas":replicas,"template":{"spec":{"containers":[
            {"name":"web","image":image,"args":["a","b"],"env":env}]}}}})
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let set = set_of(&deploy(1, "x", true));
        assert!(set.contains(&vec![
            "f:spec".to_string(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            r#"k:{"name":"web"}"#.into(),
            "f:args".into()
        ]));
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        let v1 = to_fields_v1(&set);
        assert!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"web"}"#]["."]
                .is_object()
        );
    }

    #[test]
    fn apply_conflicts_forces_and_removes_what_it_stops_applying() {
        let first = apply(None, &deploy(2, "x:1", true), "folder", false).unwrap();
        // Same values from another manager: shared, no conflict.
        let shared = apply(Some(&first), &deploy(2, "x:1", false), "ci", false).unwrap();
        // A different image: a conflict naming the field and the owner.
        let err = apply(Some(&shared), &deploy(2, "x:2", false), "ci", false).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].manager, "folder");
        assert_eq!(
            err[0].field,
            r#".spec.template.spec.containers[name="web"].image"#
        );
        // Forced: the image changes, the folder loses it.
        let forced = apply(Some(&shared), &deploy(2, "x:2", false), "ci", true).unwrap();
        assert_eq!(
            forced["spec"]["template"]["spec"]["containers"][0]["image"],
            "x:2"
        );
        assert!(!owned_by(&forced, "folder")
            .iter()
            .any(|p| p.ends_with(&["f:image".to_string()])));
        // The folder stops declaring env B: only it owned it, so it goes; A (shared) stays.
        let again = apply(Some(&forced), &deploy(2, "x:2", false), "folder", false).unwrap();
        let env = &again["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env, &json!([{"name":"A","value":"1"}]));
        // The folder stops declaring the labels; ci still applies them, so they stay.
        let mut no_labels = deploy(2, "x:2", false);
        no_labels["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let after = apply(Some(&again), &no_labels, "folder", false).unwrap();
        assert_eq!(after["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn updates_take_ownership_without_conflicts() {
        let applied = apply(None, &deploy(2, "x:1", false), "folder", false).unwrap();
        let mut scaled = applied.clone();
        scaled["spec"]["replicas"] = json!(5);
        update(
            Some(&applied),
            &scaled.clone(),
            &mut scaled,
            "kubectl-scale",
        );
        let replicas: Path = vec!["f:spec".into(), "f:replicas".into()];
        assert!(owned_by(&scaled, "kubectl-scale").contains(&replicas));
        assert!(!owned_by(&scaled, "folder").contains(&replicas));
        // Now the folder's apply of 2 conflicts with kubectl-scale.
        let err = apply(Some(&scaled), &deploy(2, "x:1", false), "folder", false).unwrap_err();
        assert_eq!(err[0].field, ".spec.replicas");
        assert_eq!(err[0].manager, "kubectl-scale");
    }

    #[test]
    fn kubectl_takes_over_what_client_side_apply_declared() {
        let mut csa = deploy(2, "x:1", false);
        let last = serde_json::to_string(&csa).unwrap();
        meta::set_annotation(&mut csa, LAST_APPLIED, &last);
        let mut live = csa.clone();
        update(None, &csa, &mut live, "kubectl-client-side-apply");
        let mut changed = deploy(3, "x:1", false);
        meta::set_annotation(&mut changed, LAST_APPLIED, &last);
        let r = apply(Some(&live), &changed, "kubectl", false).unwrap();
        assert_eq!(r["spec"]["replicas"], 3);
        assert!(apply(Some(&live), &changed, "someone", false).is_err());
    }

    #[test]
    fn an_element_kept_for_another_manager_keeps_its_key() {
        let applied = apply(None, &deploy(1, "x:1", false), "ci", false).unwrap();
        let mut patched = applied.clone();
        patched["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        update(
            Some(&applied),
            &patched.clone(),
            &mut patched,
            "kubectl-set",
        );
        // ci renames its container: the old element stays for kubectl-set's image, with its name.
        let mut renamed = deploy(1, "x:2", false);
        renamed["spec"]["template"]["spec"]["containers"][0]["name"] = json!("app");
        let r = apply(Some(&patched), &renamed, "ci", true).unwrap();
        let cs = r["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert!(cs.iter().all(|c| c["name"].is_string()), "{cs:?}");
    }

    #[test]
    fn given_managed_fields_are_normalized_and_empty_keeps_the_stored() {
        let applied = apply(None, &deploy(1, "x:1", false), "ci", false).unwrap();
        let mut req = applied.clone();
        req["metadata"]["managedFields"] = json!([]);
        let mut new = req.clone();
        update(Some(&applied), &req, &mut new, "someone");
        assert_eq!(owned_by(&new, "ci"), owned_by(&applied, "ci"));
        req["metadata"]["managedFields"] = json!([{"manager":"x","operation":"Update","time":"not a time","fieldsV1":{"f:spec":{"f:replicas":{}}}}]);
        let mut new = req.clone();
        update(Some(&applied), &req, &mut new, "someone");
        let t = new["metadata"]["managedFields"][0]["time"]
            .as_str()
            .unwrap();
        assert!(t.parse::<jiff::Timestamp>().is_ok(), "{t}");
        req["metadata"]["managedFields"] = json!([{}]);
        let mut new = req.clone();
        update(Some(&applied), &req, &mut new, "someone");
        assert!(new["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn remove_at_prunes_emptied_parents() {
        let mut o = json!({"metadata":{"labels":{"a":"1"}},"spec":{"x":1}});
        remove_at(
            &mut o,
            &vec!["f:metadata".into(), "f:labels".into(), "f:a".into()],
        );
        assert_eq!(o, json!({"spec":{"x":1}}));
    }
}
