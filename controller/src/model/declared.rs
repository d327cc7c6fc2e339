//! What a manifest file declares, as the object model sees it: the manifests folder's field
//! manager and annotation, the fields it owns in a stored object, and whether two versions of
//! an object declare the same. The folder writes with these; the API server guards the folder's
//! fields with them — so both depend on this module, and neither on the other.

use serde_json::Value;

use crate::model::managed;

/// The field manager name of the manifests folder, as conflicts report it.
pub const FOLDER_MANAGER: &str = "skiff-manifests-folder";

/// The annotation naming the manifests-folder file an object came from.
pub const MANIFEST_ANNOTATION: &str = "skiff.io/manifest-file";

/// The annotation skiff puts on certificate Secrets it issued (value: the ACME directory);
/// such a Secret is skiff's to renew and overwrite.
pub const ISSUER_ANNOTATION: &str = "skiff.io/certificate-issuer";

/// skiff's own annotations, as a request may not set or change them: the manifests folder's
/// (only the folder, which writes the store directly, sets it) always; the certificate issuer's
/// for any caller but the admin (skiff's own controllers write as the admin).
pub fn internal_annotations(admin: bool) -> &'static [&'static str] {
    if admin {
        &[MANIFEST_ANNOTATION]
    } else {
        &[MANIFEST_ANNOTATION, ISSUER_ANNOTATION]
    }
}

/// Namespaces that are never deleted by pruning.
pub const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The declared part of an object: what apply compares and replaces.
pub fn declared_view(obj: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(map) = obj.as_object() {
        for (k, v) in map {
            if k != "metadata" && k != "status" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert("labels".into(), obj["metadata"]["labels"].clone());
    out.insert("annotations".into(), obj["metadata"]["annotations"].clone());
    Value::Object(out)
}

/// Whether two versions of an object declare the same (spec, labels, annotations, owners,
/// finalizers, managers): a write of one over the other would change nothing.
pub fn same_declared(a: &Value, b: &Value) -> bool {
    let md = |o: &Value, f: &str| o["metadata"].get(f).cloned();
    declared_view(a) == declared_view(b)
        && ["managedFields", "ownerReferences", "finalizers"]
            .iter()
            .all(|f| md(a, f) == md(b, f))
}

/// Fields the node fills in, never the folder's (path elements of a field set).
const NODE_ALLOCATED: &[&str] = &[
    "f:clusterIP",
    "f:clusterIPs",
    "f:nodePort",
    "f:kubectl.kubernetes.io/last-applied-configuration",
];

/// The fields the manifests folder owns in a stored object: its managed fields entry, or for an
/// object stored before skiff tracked managers, what the object declares but what the node
/// allocated.
pub fn folder_fields(obj: &Value) -> managed::FieldSet {
    let owned = managed::owned_by(obj, FOLDER_MANAGER);
    if !owned.is_empty() {
        return owned;
    }
    managed::set_of(obj)
        .into_iter()
        .filter(|p| !p.iter().any(|e| NODE_ALLOCATED.contains(&e.as_str())))
        .collect()
}

/// The prefix of the sources the HelmChart reconciler applies (`helmchart/<ns>/<name>`): its
/// objects carry [`MANIFEST_ANNOTATION`] like a file's, but no file stands for them, so the
/// manifests folder never prunes them.
pub const HELMCHART_SOURCE_PREFIX: &str = "helmchart/";
