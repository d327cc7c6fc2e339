//! Semantics of the storage kinds — PersistentVolumeClaim, PersistentVolume, StorageClass —
//! and what may change once a claim or a volume exists.

use serde_json::Value;

use super::semantics::{is_dns_subdomain, items};
use super::{err, FieldError};
use crate::model::quantity;

/// The access modes Kubernetes knows; on one node every one of them holds.
pub const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// The finalizer that keeps a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while a claim is bound to it.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

pub(super) fn check(obj: &Value, out: &mut Vec<FieldError>) {
    match obj["kind"].as_str().unwrap_or_default() {
        "PersistentVolumeClaim" => claim(&obj["spec"], out),
        "PersistentVolume" => volume(&obj["spec"], out),
        "StorageClass" => class(obj, out),
        _ => {}
    }
}

fn access_modes(spec: &Value, out: &mut Vec<FieldError>) {
    let modes = items(&spec["accessModes"]);
    if modes.is_empty() {
        out.push(err(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for (i, m) in modes.iter().enumerate() {
        let m = m.as_str().unwrap_or_default();
        if !ACCESS_MODES.contains(&m) {
            out.push(err(
                format!("spec.accessModes[{i}]"),
                format!(
                    "Unsupported value: {m:?}: supported values: {}",
                    ACCESS_MODES.join(", ")
                ),
            ));
        }
    }
}

fn storage_size(v: &Value, field: &str, out: &mut Vec<FieldError>) {
    match v.as_str() {
        None => out.push(err(field, "Required value")),
        Some(q) => match quantity::parse(q) {
            Some(0) => out.push(err(field, "must be greater than zero")),
            Some(_) => {}
            None => out.push(err(
                field,
                format!("{q:?} is not a quantity (e.g. 1Gi, 500Mi)"),
            )),
        },
    }
}

fn volume_mode(spec: &Value, out: &mut Vec<FieldError>) {
    if let Some(mode) = spec["volumeMode"].as_str() {
        if mode != "Filesystem" {
            out.push(err(
                "spec.volumeMode",
                format!("{mode:?} is not supported by skiff (Filesystem)"),
            ));
        }
    }
}

fn class_name(spec: &Value, out: &mut Vec<FieldError>) {
    if let Some(c) = spec["storageClassName"].as_str() {
        if !c.is_empty() && !is_dns_subdomain(c) {
            out.push(err(
                "spec.storageClassName",
                format!("{c:?} must be a DNS-1123 subdomain"),
            ));
        }
    }
}

pub(super) fn claim(spec: &Value, out: &mut Vec<FieldError>) {
    access_modes(spec, out);
    storage_size(
        &spec["resources"]["requests"]["storage"],
        "spec.resources.requests.storage",
        out,
    );
    volume_mode(spec, out);
    class_name(spec, out);
}

fn volume(spec: &Value, out: &mut Vec<FieldError>) {
    access_modes(spec, out);
    storage_size(&spec["capacity"]["storage"], "spec.capacity.storage", out);
    volume_mode(spec, out);
    class_name(spec, out);
    let sources: Vec<&str> = ["hostPath", "local"]
        .into_iter()
        .filter(|s| spec[*s].is_object())
        .collect();
    match sources.as_slice() {
        [source] => {
            let field = format!("spec.{source}.path");
            if !spec[*source]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with('/'))
            {
                out.push(err(field, "must be an absolute path"));
            }
        }
        _ => out.push(err(
            "spec",
            "exactly one volume source is required (hostPath or local)",
        )),
    }
    if let Some(p) = spec["persistentVolumeReclaimPolicy"].as_str() {
        if p != "Delete" && p != "Retain" {
            out.push(err(
                "spec.persistentVolumeReclaimPolicy",
                format!("{p:?} is not supported by skiff (Delete, Retain)"),
            ));
        }
    }
    let claim = &spec["claimRef"];
    if claim.is_object() {
        for f in ["name", "namespace"] {
            if claim[f].as_str().is_none_or(str::is_empty) {
                out.push(err(format!("spec.claimRef.{f}"), "Required value"));
            }
        }
    }
    for (i, term) in items(&spec["nodeAffinity"]["required"]["nodeSelectorTerms"])
        .iter()
        .enumerate()
    {
        for (j, e) in items(&term["matchExpressions"]).iter().enumerate() {
            let op = e["operator"].as_str().unwrap_or_default();
            if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&op) {
                out.push(err(
                    format!("spec.nodeAffinity.required.nodeSelectorTerms[{i}].matchExpressions[{j}].operator"),
                    format!("{op:?} is not supported by skiff (In, NotIn, Exists, DoesNotExist)"),
                ));
            }
        }
    }
}

fn class(obj: &Value, out: &mut Vec<FieldError>) {
    if obj["provisioner"].as_str().is_none_or(str::is_empty) {
        out.push(err("provisioner", "Required value"));
    }
    if let Some(p) = obj["reclaimPolicy"].as_str() {
        if p != "Delete" && p != "Retain" {
            out.push(err(
                "reclaimPolicy",
                format!("Unsupported value: {p:?}: supported values: \"Delete\", \"Retain\""),
            ));
        }
    }
    if let Some(m) = obj["volumeBindingMode"].as_str() {
        if m != "Immediate" && m != "WaitForFirstConsumer" {
            out.push(err(
                "volumeBindingMode",
                format!("Unsupported value: {m:?}: supported values: \"Immediate\", \"WaitForFirstConsumer\""),
            ));
        }
    }
}

/// What may change in an existing object of a storage kind, as Kubernetes allows: a claim's
/// spec only in `resources.requests` and a `volumeName` it did not have; a volume's source,
/// and a class's parameters, never.
pub(super) fn update(old: &Value, new: &Value, out: &mut Vec<FieldError>) {
    let strip = |o: &Value, fields: &[&[&str]]| {
        let mut o = o.clone();
        for path in fields {
            let (last, parents) = path.split_last().expect("non-empty path");
            let mut at = &mut o;
            for p in parents {
                at = &mut at[*p];
            }
            if let Some(m) = at.as_object_mut() {
                m.remove(*last);
            }
        }
        o
    };
    match old["kind"].as_str().unwrap_or_default() {
        "PersistentVolumeClaim" => {
            let mut fields: Vec<&[&str]> = vec![&["resources", "requests"]];
            if old["spec"]["volumeName"].is_null() {
                fields.push(&["volumeName"]);
            }
            if strip(&old["spec"], &fields) != strip(&new["spec"], &fields) {
                out.push(err(
                    "spec",
                    "Forbidden: spec is immutable after creation except resources.requests",
                ));
            }
        }
        "PersistentVolume" => {
            let fields: Vec<&[&str]> = vec![
                &["claimRef"],
                &["capacity"],
                &["persistentVolumeReclaimPolicy"],
                &["accessModes"],
                &["storageClassName"],
            ];
            if strip(&old["spec"], &fields) != strip(&new["spec"], &fields) {
                out.push(err(
                    "spec.persistentvolumesource",
                    "Forbidden: spec.persistentvolumesource is immutable after creation",
                ));
            }
        }
        "StorageClass" => {
            for f in ["provisioner", "reclaimPolicy", "volumeBindingMode"] {
                if old[f] != new[f] {
                    out.push(err(f, "Forbidden: updates to this field are forbidden"));
                }
            }
        }
        _ => {}
    }
}
