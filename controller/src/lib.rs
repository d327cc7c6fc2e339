//! skiff's control plane: the object store, validation and defaulting, apply semantics, the
//! manifests folder, and the reconcilers that turn Deployments into ReplicaSets into Pods.
//!
//! Start reading at [`start`]: it is handed the [`store::Store`] and starts the manifests
//! folder and the controllers as tasks.

pub mod acme;
pub mod api;
pub mod apply;
pub mod controllers;
pub mod defaults;
pub mod events;
pub mod folder;
pub mod kinds;
pub mod managed;
pub mod meta;
pub mod store;
pub mod validate;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

/// Makes sure the namespaces every cluster has exist.
pub fn ensure_builtin_namespaces(store: &store::Store) -> Result<(), store::StoreError> {
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

/// Starts the control plane's tasks: the manifests folder (writing to the store in one
/// transaction per file), the reconcilers (API clients reading `view`), and the API server's
/// housekeeping (expired Events). They stop when `shutdown` flips to true.
pub fn start(
    store: Arc<store::Store>,
    view: Arc<view::View>,
    manifests_dir: PathBuf,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let folder = folder::ManifestsFolder::new(manifests_dir, store.clone());
    let controllers = controllers::run(view, shutdown.clone());
    let housekeeping = {
        let mut shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tick.tick() => {
                        if let Err(e) = events::expire(&store) {
                            tracing::warn!("expiring events: {e}");
                        }
                    }
                }
            }
        }
    };
    vec![
        tokio::spawn(folder.run(shutdown)),
        tokio::spawn(controllers),
        tokio::spawn(housekeeping),
    ]
}
