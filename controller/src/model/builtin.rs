//! The objects every cluster has from its first start: the `default` and `kube-system`
//! namespaces, skiff's IngressClass and the `local-path` StorageClass (the default ones).

use crate::model::store::{self, Store};

/// Makes sure the built-in namespaces, IngressClass and StorageClass exist.
pub fn ensure(store: &Store) -> Result<(), store::StoreError> {
    // `kube-node-lease` holds the node's Lease (its heartbeat, as kubelet's).
    for ns in ["default", "kube-system", "kube-node-lease"] {
        let key = store::ObjectKey::new("Namespace", "", ns);
        if store.get(&key).is_none() {
            store.create(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
            }))?;
        }
    }
    // The default IngressClass: Ingresses without a class are skiff's.
    let class = store::ObjectKey::new("IngressClass", "", "skiff");
    if store.get(&class).is_none() {
        store.create(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "skiff", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "skiff.io/ingress"}
        }))?;
    }
    // The default StorageClass, named and provisioned as k3s's: a directory per claim under
    // `<data-dir>/volumes` (controllers/volumes.rs).
    let class = store::ObjectKey::new("StorageClass", "", LOCAL_PATH);
    if store.get(&class).is_none() {
        store.create(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": LOCAL_PATH, "annotations": {crate::model::defaults::DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": LOCAL_PATH_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        }))?;
    }
    // The built-in PriorityClasses, as the API server creates them.
    for (name, value, description) in [
        ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
        ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
    ] {
        let key = store::ObjectKey::new("PriorityClass", "", name);
        if store.get(&key).is_none() {
            store.create(serde_json::json!({
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
                "preemptionPolicy": "PreemptLowerPriority",
            }))?;
        }
    }
    Ok(())
}

/// The built-in StorageClass's name.
pub const LOCAL_PATH: &str = "local-path";
/// The provisioner skiff implements (k3s's name for it).
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";
