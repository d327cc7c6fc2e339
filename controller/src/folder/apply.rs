//! Applying a set of declared objects as one unit, with pruning — the write path of the
//! manifests folder (each file is one unit, its "source").
//!
//! Every object of a source is validated and annotated with [`MANIFEST_ANNOTATION`] naming
//! the source, then server-side applied (the same [`crate::model::managed`] code as `kubectl apply
//! --server-side`) as the manager `skiff-manifests-folder` and defaulted; creations, updates
//! and the deletion of objects the source no longer declares are committed in **one** store
//! transaction. If any document is invalid, nothing of the source is applied.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::model::declared::{
    folder_fields, same_declared, FOLDER_MANAGER, MANIFEST_ANNOTATION, PROTECTED_NAMESPACES,
};
use crate::model::store::{ObjectKey, Op, Store, StoreError};
use crate::model::validate::{self, FieldError};
use crate::model::{defaults, kinds, managed, meta};

/// One document of a source, numbered from 1 as it appears.
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based position in the file.
    pub index: usize,
    /// The parsed object.
    pub object: Value,
}

/// Why a source was not applied. Each names the document and the object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The document failed validation.
    #[error("document {doc} ({what}): {}", join_errors(.errors))]
    Invalid {
        /// Document number.
        doc: usize,
        /// The object, as far as known.
        what: String,
        /// Every rejected field.
        errors: Vec<FieldError>,
    },
    /// The object's namespace does not exist and the source does not create it.
    #[error("document {doc} ({key}): namespace {namespace:?} does not exist")]
    MissingNamespace {
        /// Document number.
        doc: usize,
        /// The object.
        key: ObjectKey,
        /// The missing namespace.
        namespace: String,
    },
    /// The same object twice in one source.
    #[error("document {doc} ({key}): declared twice in this file (first in document {first})")]
    Duplicate {
        /// Document number.
        doc: usize,
        /// Where it first appeared.
        first: usize,
        /// The object.
        key: ObjectKey,
    },
    /// The object is declared by another file.
    #[error("document {doc} ({key}): already declared by manifest {other:?}")]
    DeclaredElsewhere {
        /// Document number.
        doc: usize,
        /// The object.
        key: ObjectKey,
        /// The other source.
        other: String,
    },
    /// The object exists and is controlled by another object (e.g. a Pod of a ReplicaSet).
    #[error("document {doc} ({key}): exists and is managed by a controller")]
    Controlled {
        /// Document number.
        doc: usize,
        /// The object.
        key: ObjectKey,
    },
    /// The store refused the transaction.
    #[error("the store refused the change: {0}")]
    Store(#[from] StoreError),
    /// An admission refused a new object (a pod naming a missing ServiceAccount).
    #[error("document {doc} ({key}): forbidden: {message}")]
    Forbidden {
        /// Document number.
        doc: usize,
        /// The object.
        key: ObjectKey,
        /// Why.
        message: String,
    },
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a successful apply did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Objects created.
    pub created: Vec<ObjectKey>,
    /// Objects whose declared content changed.
    pub updated: Vec<ObjectKey>,
    /// Objects already as declared.
    pub unchanged: Vec<ObjectKey>,
    /// Objects deleted because the source no longer declares them.
    pub deleted: Vec<ObjectKey>,
}

/// Normalizes and validates one document, with its namespace and the folder's annotation.
/// Returns what the folder applies (defaults come after the merge with what is stored).
pub fn prepare(doc: &Document, source: &str) -> Result<Value, ApplyError> {
    let mut obj = doc.object.clone();
    let what = describe(&obj);
    if !obj.is_object() {
        return Err(ApplyError::Invalid {
            doc: doc.index,
            what,
            errors: vec![FieldError {
                field: String::new(),
                message: "a document must be a mapping with apiVersion, kind and metadata".into(),
            }],
        });
    }
    if let Some(map) = obj.as_object_mut() {
        // Status is the server's: Kubernetes ignores it in what is applied, and so do we.
        map.remove("status");
    }
    validate::validate(&obj).map_err(|errors| ApplyError::Invalid {
        doc: doc.index,
        what: what.clone(),
        errors,
    })?;
    let info = kinds::by_kind(obj["kind"].as_str().unwrap_or_default()).expect("validated");
    if info.namespaced && obj["metadata"]["namespace"].as_str().is_none() {
        meta::metadata_mut(&mut obj).insert("namespace".into(), Value::String("default".into()));
    }
    meta::set_annotation(&mut obj, MANIFEST_ANNOTATION, source);
    Ok(obj)
}

/// The folder's server-side apply of `applied` onto `live`: the folder is the truth, so it
/// takes its fields back from any kubectl manager that changed them (said in the log).
fn folder_apply(live: Option<&Value>, applied: &Value) -> Value {
    let mut live = live.cloned();
    if let Some(l) = live.as_mut() {
        if managed::owned_by(l, FOLDER_MANAGER).is_empty() {
            let mut entries = managed::entries(l);
            entries.push(managed::Entry {
                manager: FOLDER_MANAGER.into(),
                operation: managed::APPLY.into(),
                api_version: l["apiVersion"].as_str().unwrap_or_default().into(),
                time: crate::model::store::now_rfc3339(),
                fields: folder_fields(l),
            });
            managed::set_entries(l, &entries);
        }
    }
    let merged = match managed::apply(live.as_ref(), applied, FOLDER_MANAGER, false) {
        Ok(m) => m,
        Err(conflicts) => {
            for c in &conflicts {
                tracing::warn!(
                    object = %ObjectKey::of(applied),
                    field = %c.field,
                    manager = %c.manager,
                    "the manifests folder takes back a field another manager changed"
                );
            }
            managed::apply(live.as_ref(), applied, FOLDER_MANAGER, true).expect("forced")
        }
    };
    let mut obj = merged;
    defaults::apply(&mut obj);
    obj
}

/// [`folder_apply`] for the fuzz targets in `fuzz/`: what the folder stores for a prepared
/// document over `live` (`None`: a create).
#[doc(hidden)]
pub fn fuzz_folder_apply(live: Option<&Value>, applied: &Value) -> Value {
    folder_apply(live, applied)
}

fn describe(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("object");
    let name = obj["metadata"]["name"].as_str().unwrap_or("<no name>");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Applies a source's documents as one unit and prunes what it no longer declares.
/// `available_namespaces` may add namespaces declared elsewhere that are about to exist.
pub fn apply_source(
    store: &Store,
    source: &str,
    docs: &[Document],
) -> Result<Applied, Vec<ApplyError>> {
    let mut errors = Vec::new();
    let mut prepared: Vec<(usize, Value)> = Vec::new();
    for doc in docs {
        match prepare(doc, source) {
            Ok(obj) => prepared.push((doc.index, obj)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Namespaces first, then the rest in the order of `kinds::KINDS`, then by document.
    prepared.sort_by_key(|(doc, obj)| {
        let kind = obj["kind"].as_str().unwrap_or_default();
        (
            kinds::KINDS
                .iter()
                .position(|k| k.kind == kind)
                .unwrap_or(usize::MAX),
            *doc,
        )
    });
    let mut seen: BTreeMap<ObjectKey, usize> = BTreeMap::new();
    let declared_namespaces: HashSet<String> = prepared
        .iter()
        .filter(|(_, o)| o["kind"] == "Namespace")
        .map(|(_, o)| meta::name(o).to_string())
        .collect();
    // A pod may name a ServiceAccount the same file declares.
    let accounts: Vec<Value> = prepared
        .iter()
        .filter(|(_, o)| o["kind"] == "ServiceAccount")
        .map(|(_, o)| o.clone())
        .collect();
    let accounts: Vec<&Value> = accounts.iter().collect();
    let mut ops = Vec::new();
    let mut applied = Applied::default();
    for (doc, obj) in prepared {
        let key = ObjectKey::of(&obj);
        if let Some(first) = seen.insert(key.clone(), doc) {
            errors.push(ApplyError::Duplicate { doc, first, key });
            continue;
        }
        if !key.namespace.is_empty()
            && !declared_namespaces.contains(&key.namespace)
            && store
                .get(&ObjectKey::new("Namespace", "", &key.namespace))
                .is_none()
        {
            errors.push(ApplyError::MissingNamespace {
                doc,
                namespace: key.namespace.clone(),
                key,
            });
            continue;
        }
        match one(
            store,
            store.get(&key).as_deref(),
            (source, doc, &accounts),
            key,
            &obj,
        ) {
            Ok((outcome, key, op)) => {
                applied.record(outcome, key);
                ops.extend(op);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for key in pruned(store, source, &seen) {
        applied.deleted.push(key.clone());
        ops.push(Op::Delete(key));
    }
    if !ops.is_empty() {
        store
            .transaction(ops)
            .map_err(|e| vec![ApplyError::Store(e)])?;
    }
    Ok(applied)
}

/// What applying one object does.
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Applied {
    fn record(&mut self, outcome: Outcome, key: ObjectKey) {
        match outcome {
            Outcome::Created => self.created.push(key),
            Outcome::Updated => self.updated.push(key),
            Outcome::Unchanged => self.unchanged.push(key),
        }
    }
}

/// One declared object against what is stored: the write it needs, or why it is refused.
fn one(
    store: &Store,
    existing: Option<&Value>,
    (source, doc, declared): (&str, usize, &[&Value]),
    key: ObjectKey,
    obj: &Value,
) -> Result<(Outcome, ObjectKey, Option<Op>), ApplyError> {
    let Some(existing) = existing else {
        let mut obj = folder_apply(None, obj);
        if let Err(defaults::Refused(message)) = defaults::on_create(&mut obj, store, declared) {
            return Err(ApplyError::Forbidden { doc, key, message });
        }
        return Ok((Outcome::Created, key, Some(Op::Create(obj))));
    };
    if let Some(other) = meta::annotation(existing, MANIFEST_ANNOTATION) {
        if other != source {
            return Err(ApplyError::DeclaredElsewhere {
                doc,
                key,
                other: other.to_string(),
            });
        }
    } else if meta::controller_uid(existing).is_some() {
        return Err(ApplyError::Controlled { doc, key });
    }
    if meta::is_terminating(existing) {
        // A Pod (or a claim or volume held by its finalizer) on its way out: it is re-created
        // once gone (the next pass).
        return Ok((Outcome::Unchanged, key, None));
    }
    // What the file does not declare stays: addresses and node ports the node allocated,
    // fields other managers own.
    let merged = folder_apply(Some(existing), obj);
    validate::validate_update(existing, &merged).map_err(|errors| ApplyError::Invalid {
        doc,
        what: describe(&merged),
        errors,
    })?;
    if same_declared(existing, &merged) {
        Ok((Outcome::Unchanged, key, None))
    } else {
        Ok((Outcome::Updated, key, Some(Op::Update(merged))))
    }
}

/// The objects `source` declared before and declares no more (protected namespaces stay).
fn pruned(store: &Store, source: &str, seen: &BTreeMap<ObjectKey, usize>) -> Vec<ObjectKey> {
    store
        .identities()
        .iter()
        .filter(|obj| meta::annotation(obj, MANIFEST_ANNOTATION) == Some(source))
        .filter(|obj| !meta::is_terminating(obj))
        .map(|obj| ObjectKey::of(obj))
        .filter(|key| !seen.contains_key(key))
        .filter(|key| {
            !(key.kind == "Namespace" && PROTECTED_NAMESPACES.contains(&key.name.as_str()))
        })
        .collect()
}

/// Every source named by an object's [`MANIFEST_ANNOTATION`] in the store.
pub fn sources_in_store(store: &Store) -> HashSet<String> {
    store
        .identities()
        .iter()
        .filter_map(|o| meta::annotation(o, MANIFEST_ANNOTATION).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs(objs: Vec<Value>) -> Vec<Document> {
        objs.into_iter()
            .enumerate()
            .map(|(i, object)| Document {
                index: i + 1,
                object,
            })
            .collect()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.create(json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"}}))
            .unwrap();
        (dir, s)
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name},"data":{"a":"1"}})
    }

    #[test]
    fn apply_update_and_prune() {
        let (_d, s) = store();
        let a = apply_source(&s, "f.yaml", &docs(vec![cm("a"), cm("b")])).unwrap();
        assert_eq!(a.created.len(), 2);
        let a = apply_source(&s, "f.yaml", &docs(vec![cm("a"), cm("b")])).unwrap();
        assert_eq!(a.unchanged.len(), 2);
        let mut changed = cm("a");
        changed["data"]["a"] = json!("2");
        let a = apply_source(&s, "f.yaml", &docs(vec![changed])).unwrap();
        assert_eq!(a.updated, vec![ObjectKey::new("ConfigMap", "default", "a")]);
        assert_eq!(a.deleted, vec![ObjectKey::new("ConfigMap", "default", "b")]);
        assert_eq!(
            s.get(&ObjectKey::new("ConfigMap", "default", "a")).unwrap()["data"]["a"],
            "2"
        );
        let a = apply_source(&s, "f.yaml", &[]).unwrap();
        assert_eq!(a.deleted.len(), 1);
        assert!(s.list("ConfigMap", None).is_empty());
    }

    #[test]
    fn one_bad_document_applies_nothing() {
        let (_d, s) = store();
        let mut bad = cm("b");
        bad["bogus"] = json!(true);
        let e = apply_source(&s, "f.yaml", &docs(vec![cm("a"), bad])).unwrap_err();
        let msg = e[0].to_string();
        assert!(msg.contains("document 2") && msg.contains("bogus"), "{msg}");
        assert!(s.list("ConfigMap", None).is_empty());
    }

    #[test]
    fn another_file_cannot_take_an_object_over_and_namespaces_must_exist() {
        let (_d, s) = store();
        apply_source(&s, "a.yaml", &docs(vec![cm("x")])).unwrap();
        let e = apply_source(&s, "b.yaml", &docs(vec![cm("x")])).unwrap_err();
        assert!(e[0].to_string().contains("a.yaml"), "{}", e[0]);
        let mut other = cm("y");
        other["metadata"]["namespace"] = json!("apps");
        let e = apply_source(&s, "b.yaml", &docs(vec![other.clone()])).unwrap_err();
        assert!(matches!(e[0], ApplyError::MissingNamespace { .. }));
        let ns = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"apps"}});
        apply_source(&s, "b.yaml", &docs(vec![other, ns])).unwrap();
    }
}
