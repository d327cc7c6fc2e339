//! The ServiceAccount admission, as Kubernetes' `ServiceAccount` admission plugin does it when a
//! pod is created: the pod's ServiceAccount must exist (`default` is made in every namespace by
//! the control plane), its `imagePullSecrets` are copied to a pod that has none, and unless
//! `automountServiceAccountToken` is false (on the pod, else on the ServiceAccount) the pod gets
//! the projected volume `kube-api-access-<5 chars>` — token, the cluster's CA, the namespace —
//! mounted read-only at [`TOKEN_MOUNT`] in every container. The volume is in the stored spec,
//! as on Kubernetes, so `kubectl get pod -o yaml` shows what the pod mounts.

use serde_json::{json, Value};

use crate::model::meta;
use crate::model::store::{ObjectKey, Store};

/// Where a pod's ServiceAccount credentials are mounted.
pub const TOKEN_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap with the cluster's CA certificate, in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The token lifetime kubelet asks for (the API server extends such tokens, see `api/sa_token.rs`).
pub const KUBELET_TOKEN_SECONDS: i64 = 3607;

static ROOT_CA: std::sync::RwLock<String> = std::sync::RwLock::new(String::new());

/// Sets the CA certificate (PEM) every namespace's `kube-root-ca.crt` holds (the API server's,
/// once its certificates are loaded).
pub fn set_root_ca(pem: &str) {
    *ROOT_CA.write().unwrap_or_else(|p| p.into_inner()) = pem.to_string();
}

/// The CA certificate every namespace's `kube-root-ca.crt` holds (empty before the API starts).
pub fn root_ca() -> String {
    ROOT_CA.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The ServiceAccount a pod runs as (its `serviceAccountName`, defaulted to `default`).
pub fn of_pod(pod: &Value) -> &str {
    pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// The admission of a new pod. `declared`: objects created in the same transaction (a
/// manifest file may declare the ServiceAccount with the pod). The error is Kubernetes'
/// message after `pods "<name>" is forbidden: `.
pub fn admit_pod(pod: &mut Value, store: &Store, declared: &[&Value]) -> Result<(), String> {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = of_pod(pod).to_string();
    let stored = store.get(&ObjectKey::new("ServiceAccount", &ns, &name));
    let sa = stored.as_deref().cloned().or_else(|| {
        declared
            .iter()
            .find(|o| {
                o["kind"] == "ServiceAccount"
                    && o["metadata"]["namespace"].as_str().unwrap_or("default") == ns
                    && meta::name(o) == name
            })
            .map(|o| (*o).clone())
    });
    let sa = match sa {
        Some(sa) => sa,
        // The namespace's `default` ServiceAccount is made by the control plane right after
        // the namespace; a pod created in that moment is not refused for it.
        None if name == "default" => json!({}),
        None => {
            return Err(format!(
                "error looking up service account {ns}/{name}: serviceaccount {name:?} not found"
            ))
        }
    };
    let spec = &mut pod["spec"];
    if spec["imagePullSecrets"]
        .as_array()
        .is_none_or(|a| a.is_empty())
        && sa["imagePullSecrets"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    {
        spec["imagePullSecrets"] = sa["imagePullSecrets"].clone();
    }
    let automount = spec["automountServiceAccountToken"]
        .as_bool()
        .or(sa["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if automount {
        mount_token(spec);
    }
    Ok(())
}

/// The volume kube-apiserver's admission adds, and a mount of it in every container that does
/// not already mount something at [`TOKEN_MOUNT`].
fn mount_token(spec: &mut Value) {
    let volume = format!("kube-api-access-{}", meta::random_suffix());
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            let mounts = c
                .as_object_mut()
                .expect("a container is an object")
                .entry("volumeMounts")
                .or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts.iter().any(|m| m["mountPath"] == TOKEN_MOUNT) {
                continue;
            }
            mounts.push(json!({"name": volume, "mountPath": TOKEN_MOUNT, "readOnly": true}));
            mounted = true;
        }
    }
    if !mounted {
        return;
    }
    let volumes = spec
        .as_object_mut()
        .expect("a pod spec is an object")
        .entry("volumes")
        .or_insert_with(|| json!([]));
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": KUBELET_TOKEN_SECONDS, "path": "token"}},
                    {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: Value) -> Value {
        let mut p = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ns"},
            "spec":{"containers":[{"name":"a","image":"x"}],"initContainers":[{"name":"i","image":"x"}]}});
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                p["spec"][k] = v.clone();
            }
        }
        p
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.create(json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns"}}))
            .unwrap();
        (dir, s)
    }

    #[test]
    fn a_missing_service_account_is_refused_in_kubernetes_words_but_default_waits() {
        let (_d, s) = store();
        let mut p = pod(json!({"serviceAccountName": "robot"}));
        assert_eq!(
            admit_pod(&mut p, &s, &[]).unwrap_err(),
            "error looking up service account ns/robot: serviceaccount \"robot\" not found"
        );
        let sa = json!({"kind":"ServiceAccount","metadata":{"name":"robot","namespace":"ns"}});
        admit_pod(&mut p, &s, &[&sa]).unwrap();
        let mut p = pod(json!({}));
        admit_pod(&mut p, &s, &[]).unwrap();
    }

    #[test]
    fn the_token_volume_is_mounted_in_every_container_unless_automount_is_off() {
        let (_d, s) = store();
        let mut p = pod(json!({}));
        admit_pod(&mut p, &s, &[]).unwrap();
        let v = &p["spec"]["volumes"][0];
        let name = v["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(
            v["projected"]["sources"][0]["serviceAccountToken"]["path"],
            "token"
        );
        for list in ["containers", "initContainers"] {
            assert_eq!(
                p["spec"][list][0]["volumeMounts"][0]["mountPath"],
                TOKEN_MOUNT
            );
            assert_eq!(p["spec"][list][0]["volumeMounts"][0]["name"], name);
        }
        // Off on the ServiceAccount, on again on the pod.
        s.create(json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"quiet","namespace":"ns"},
            "automountServiceAccountToken": false, "imagePullSecrets": [{"name": "reg"}]}))
            .unwrap();
        let mut p = pod(json!({"serviceAccountName": "quiet"}));
        admit_pod(&mut p, &s, &[]).unwrap();
        assert!(p["spec"]["volumes"].is_null());
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        let mut p =
            pod(json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true}));
        admit_pod(&mut p, &s, &[]).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
    }
}
