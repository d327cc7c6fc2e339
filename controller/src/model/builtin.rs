//! The objects every cluster has from its first start: the `default` and `kube-system`
//! namespaces, and skiff's IngressClass (the default one).

use crate::model::store::{self, Store};

/// Makes sure the built-in namespaces and IngressClass exist.
pub fn ensure(store: &Store) -> Result<(), store::StoreError> {
    for ns in ["default", "kube-system"] {
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
    Ok(())
}
