//! The API server's own housekeeping, as etcd's TTLs and the kube-apiserver's loops are
//! Kubernetes': Events expire an hour after their last occurrence, and with their namespace.

use std::time::Duration;

use tokio::sync::watch;

use crate::model::meta;
use crate::model::store::{ObjectKey, Store, StoreError};

/// How long events are kept.
pub const TTL_SECONDS: i64 = 3600;

/// Runs the housekeeping every 10 seconds until `shutdown`.
pub async fn run(store: std::sync::Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = expire(&store) {
                    tracing::warn!("expiring events: {e}");
                }
            }
        }
    }
}

/// Deletes events whose last occurrence is older than [`TTL_SECONDS`], and those of deleted
/// namespaces (the API server's own housekeeping, as etcd's TTL is Kubernetes').
pub fn expire(store: &Store) -> Result<(), StoreError> {
    let now = jiff::Timestamp::now().as_second();
    let namespaces: std::collections::HashSet<String> = store
        .list("Namespace", None)
        .iter()
        .map(|n| meta::name(n).to_string())
        .collect();
    let old: Vec<ObjectKey> = store
        .list("Event", None)
        .iter()
        .filter(|e| {
            !namespaces.contains(meta::namespace(e))
                || e["lastTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| now - t.as_second() > TTL_SECONDS)
        })
        .map(|e| ObjectKey::of(e))
        .collect();
    for key in old {
        store.remove(&key)?;
    }
    Ok(())
}
