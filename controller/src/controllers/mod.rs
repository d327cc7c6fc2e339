//! The reconcile loops. Each is an idempotent function of (declared objects, observed objects)
//! that writes what must change through the store, like a Kubernetes controller.
//!
//! The loop here runs every reconciler over all of its objects whenever a relevant change is
//! committed (debounced), and every few seconds anyway (for time-based conditions such as
//! `minReadySeconds` and the progress deadline). At home-server scale — tens of objects — a
//! full pass costs microseconds; per-object work queues would buy nothing yet.

pub mod deployment;
pub mod endpoints;
pub mod gc;
pub mod ingress;
pub mod replicaset;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::store::{Store, StoreError};

const DEBOUNCE: Duration = Duration::from_millis(10);
const RESYNC: Duration = Duration::from_secs(5);

/// One pass of every reconciler.
pub fn reconcile_all(store: &Store) -> Result<(), StoreError> {
    gc::collect(store)?;
    for d in store.list("Deployment", None) {
        if let Err(e) = deployment::reconcile(store, &d) {
            tracing::warn!(deployment = %crate::store::ObjectKey::of(&d), "reconcile failed: {e}");
        }
    }
    if let Err(e) = endpoints::reconcile(store) {
        tracing::warn!("endpoint slices: {e}");
    }
    for rs in store.list("ReplicaSet", None) {
        if let Err(e) = replicaset::reconcile(store, &rs) {
            tracing::warn!(replicaset = %crate::store::ObjectKey::of(&rs), "reconcile failed: {e}");
        }
    }
    Ok(())
}

/// Runs the reconcilers until `shutdown` flips.
pub async fn run(store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    let mut events = store.subscribe();
    loop {
        if let Err(e) = reconcile_all(&store) {
            tracing::warn!("controllers: {e}");
        }
        // Wait for a relevant change or the resync period.
        let mut relevant = false;
        let resync = tokio::time::sleep(RESYNC);
        tokio::pin!(resync);
        while !relevant {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = &mut resync => break,
                e = events.recv() => match e {
                    Ok(ev) => relevant = matches!(ev.object["kind"].as_str(), Some("Deployment" | "ReplicaSet" | "Pod" | "Namespace" | "Service")),
                    Err(broadcast::error::RecvError::Lagged(_)) => relevant = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
        // Let a burst of changes settle into one pass.
        tokio::time::sleep(DEBOUNCE).await;
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply_source, Document};
    use crate::meta;
    use crate::store::ObjectKey;
    use serde_json::{json, Value};

    fn deployment(args: &str, replicas: i64) -> Vec<Document> {
        vec![Document {
            index: 1,
            object: json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
              "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"web"}},
                "template":{"metadata":{"labels":{"app":"web"}},
                  "spec":{"containers":[{"name":"web","image":"demo:1","args":[args]}]}}}}),
        }]
    }

    /// Plays the agent: every pod that exists becomes Running and Ready; terminating pods go.
    fn kubelet(store: &Store) {
        for p in store.list("Pod", None) {
            let key = ObjectKey::of(&p);
            if meta::is_terminating(&p) {
                store.remove(&key).unwrap();
            } else {
                store
                    .update_status(
                        &key,
                        json!({"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}),
                    )
                    .unwrap();
            }
        }
    }

    fn settle(store: &Store) {
        for _ in 0..20 {
            reconcile_all(store).unwrap();
            kubelet(store);
        }
        reconcile_all(store).unwrap();
    }

    fn pods(store: &Store) -> Vec<Value> {
        store
            .list("Pod", None)
            .iter()
            .map(|p| (**p).clone())
            .collect()
    }

    #[test]
    fn deployment_rolls_out_scales_and_is_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        crate::ensure_builtin_namespaces(&store).unwrap();
        apply_source(&store, "web.yaml", &deployment("v1", 2)).unwrap();
        settle(&store);
        let rs = store.list("ReplicaSet", None);
        assert_eq!(rs.len(), 1);
        let first_rs = meta::name(&rs[0]).to_string();
        assert!(first_rs.starts_with("web-"), "{first_rs}");
        assert_eq!(pods(&store).len(), 2);
        assert!(pods(&store)
            .iter()
            .all(|p| meta::name(p).starts_with(&format!("{first_rs}-"))));
        let d = store
            .get(&ObjectKey::new("Deployment", "default", "web"))
            .unwrap();
        assert_eq!(d["status"]["availableReplicas"], 2);
        assert_eq!(
            d["status"]["conditions"][1]["reason"],
            "NewReplicaSetAvailable"
        );

        // A template change replaces every pod through a new ReplicaSet; the old one stays, empty.
        apply_source(&store, "web.yaml", &deployment("v2", 2)).unwrap();
        settle(&store);
        let ps = pods(&store);
        assert_eq!(ps.len(), 2);
        assert!(ps
            .iter()
            .all(|p| p["spec"]["containers"][0]["args"][0] == "v2"));
        assert!(ps
            .iter()
            .all(|p| !meta::name(p).starts_with(&format!("{first_rs}-"))));
        let rs = store.list("ReplicaSet", None);
        assert_eq!(rs.len(), 2);
        let d = store
            .get(&ObjectKey::new("Deployment", "default", "web"))
            .unwrap();
        assert_eq!(d["metadata"]["generation"], 2);
        assert_eq!(d["status"]["observedGeneration"], 2);
        assert_eq!(d["status"]["updatedReplicas"], 2);

        // Scale up and down.
        apply_source(&store, "web.yaml", &deployment("v2", 3)).unwrap();
        settle(&store);
        assert_eq!(pods(&store).len(), 3);
        apply_source(&store, "web.yaml", &deployment("v2", 1)).unwrap();
        settle(&store);
        assert_eq!(pods(&store).len(), 1);

        // Deleting the file deletes the Deployment, and the collector takes the rest.
        apply_source(&store, "web.yaml", &[]).unwrap();
        settle(&store);
        assert!(store.list("ReplicaSet", None).is_empty());
        assert!(pods(&store).is_empty());
    }
}
