//! The reconcile loops. Each is an idempotent function of (declared objects, observed objects)
//! that writes what must change through the API, like a Kubernetes controller: they read the
//! [`View`]'s caches (kept by `kube`'s watcher over the in-process client) and write with API
//! requests. The Deployment, ReplicaSet, garbage-collection and volume reconcilers decide in
//! pure `plan` functions of the cached objects and perform the [`plan::Write`]s they return through
//! a thin executor; new reconcilers take the same shape.
//!
//! The loop here runs every reconciler over all of its objects whenever a relevant change is
//! seen (at once, and at most once per 10 ms within a burst), and every few seconds anyway (for time-based conditions such as
//! `minReadySeconds` and the progress deadline). At home-server scale — tens of objects — a
//! full pass costs microseconds; per-object work queues (`kube`'s `Controller`) would buy
//! nothing yet.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod gc;
pub mod helmchart;
pub mod job;
pub mod plan;
pub mod replicaset;
pub mod revisions;
pub mod scheduler;
pub mod serviceaccounts;
pub mod statefulset;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::client::view::{View, WriteError};

/// The least time between the starts of two passes. A change seen longer than this after the
/// previous pass started starts a pass at once (one Pod from the manifests folder, one
/// `kubectl apply`); one seen sooner — part of a burst still arriving (the previous pass's own
/// writes, the next objects of a multi-object apply) — waits for the rest of it, so a burst
/// is taken in a pass per this interval however long it lasts.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const RESYNC: Duration = Duration::from_secs(5);
/// How long after a CronJob's schedule time its pass runs: enough for the clock to be past it.
const CRON_MARGIN: Duration = Duration::from_millis(5);

/// The kinds the reconcilers read: their caches are kept by the view. Every namespaced kind
/// is among them, for the garbage collector; Events are not (the API server expires them).
pub const KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "PriorityClass",
    "Lease",
    "PodDisruptionBudget",
    "ConfigMap",
    "Secret",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "ControllerRevision",
    "CronJob",
    "Job",
    "Pod",
    "Service",
    "EndpointSlice",
    "IngressClass",
    "Ingress",
    "NetworkPolicy",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "HelmChart",
    "HelmChartConfig",
];

/// One pass of every reconciler.
pub async fn reconcile_all(view: &View, storage: &volumes::Storage) -> Result<(), WriteError> {
    gc::collect(view).await?;
    if let Err(e) = serviceaccounts::reconcile(view).await {
        tracing::warn!("service accounts: {e}");
    }
    if let Err(e) = volumes::reconcile(view, storage).await {
        tracing::warn!("volumes: {e}");
    }
    for d in view.list("Deployment", None) {
        if let Err(e) = deployment::reconcile(view, &d).await {
            tracing::warn!(deployment = %crate::model::store::ObjectKey::of(&d), "reconcile failed: {e}");
        }
    }
    if let Err(e) = endpoints::reconcile(view).await {
        tracing::warn!("endpoint slices: {e}");
    }
    for sts in view.list("StatefulSet", None) {
        if let Err(e) = statefulset::reconcile(view, &sts).await {
            tracing::warn!(statefulset = %crate::model::store::ObjectKey::of(&sts), "reconcile failed: {e}");
        }
    }
    for cj in view.list("CronJob", None) {
        if let Err(e) = cronjob::reconcile(view, &cj).await {
            tracing::warn!(cronjob = %crate::model::store::ObjectKey::of(&cj), "reconcile failed: {e}");
        }
    }
    for job in view.list("Job", None) {
        if let Err(e) = job::reconcile(view, &job).await {
            tracing::warn!(job = %crate::model::store::ObjectKey::of(&job), "reconcile failed: {e}");
        }
    }
    for ds in view.list("DaemonSet", None) {
        if let Err(e) = daemonset::reconcile(view, &ds).await {
            tracing::warn!(daemonset = %crate::model::store::ObjectKey::of(&ds), "reconcile failed: {e}");
        }
    }
    for rs in view.list("ReplicaSet", None) {
        if let Err(e) = replicaset::reconcile(view, &rs).await {
            tracing::warn!(replicaset = %crate::model::store::ObjectKey::of(&rs), "reconcile failed: {e}");
        }
    }
    if let Err(e) = disruption::reconcile(view).await {
        tracing::warn!("disruption budgets: {e}");
    }
    if let Err(e) = scheduler::reconcile(view).await {
        tracing::warn!("scheduler: {e}");
    }
    Ok(())
}

/// How long to sleep before the next pass when nothing changes: the resync period, or less
/// when a CronJob is due sooner (woken just after its time, so that the pass sees it as past).
fn next_wake(view: &View, now: jiff::Timestamp) -> Duration {
    view.list("CronJob", None)
        .iter()
        .filter_map(|cj| cronjob::next_time(cj, now))
        .filter_map(|t| Duration::try_from(now.duration_until(t)).ok())
        .map(|d| d + CRON_MARGIN)
        .fold(RESYNC, Duration::min)
}

/// Runs the reconcilers until `shutdown` flips: a pass after every burst of relevant changes
/// (once the caches show the previous pass's own writes), and every few seconds anyway (for
/// time-based conditions such as `minReadySeconds` and the progress deadline).
pub async fn run(view: Arc<View>, storage: volumes::Storage, mut shutdown: watch::Receiver<bool>) {
    let mut events = view.subscribe();
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = reconcile_all(&view, &storage).await {
            tracing::warn!("controllers: {e}");
        }
        if !view.wait_settled(Duration::from_secs(10)).await {
            tracing::warn!("the caches did not show the controllers' writes within 10 s");
        }
        // Wait for a relevant change, the resync period, or the next CronJob schedule time.
        let mut relevant = false;
        let resync = tokio::time::sleep(next_wake(&view, jiff::Timestamp::now()));
        tokio::pin!(resync);
        while !relevant {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = &mut resync => break,
                e = events.recv() => match e {
                    Ok(kind) => relevant = matches!(
                        kind,
                        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ControllerRevision" | "Job" | "CronJob" | "Pod" | "Namespace" | "Service" | "ServiceAccount" | "Node"
                            | "PersistentVolumeClaim" | "PersistentVolume" | "StorageClass" | "PodDisruptionBudget"
                    ),
                    Err(broadcast::error::RecvError::Lagged(_)) => relevant = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
        // Within a burst, one pass per MIN_INTERVAL; otherwise at once.
        if relevant {
            tokio::time::sleep_until(started + MIN_INTERVAL).await;
        }
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::apply::{apply_source, Document};
    use crate::model::meta;
    use crate::model::store::{ObjectKey, Store};
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

    /// Passes of the reconcilers (through the API) and of the fake kubelet (on the store)
    /// until nothing changes.
    async fn settle(store: &Store, view: &View) {
        for _ in 0..20 {
            reconcile_all(view, &storage(store)).await.unwrap();
            assert!(view.wait_settled(Duration::from_secs(5)).await);
            kubelet(store);
            // Until the caches have seen the kubelet's writes too.
            let rvs = |pods: Vec<Arc<Value>>| -> Vec<Value> {
                pods.iter()
                    .map(|p| p["metadata"]["resourceVersion"].clone())
                    .collect()
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while rvs(view.list("Pod", None)) != rvs(store.list("Pod", None))
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reconcile_all(view, &storage(store)).await.unwrap();
        assert!(view.wait_settled(Duration::from_secs(5)).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    fn storage(_: &Store) -> volumes::Storage {
        volumes::Storage {
            volumes_dir: std::env::temp_dir().join("skiff-unused-volumes"),
            capacity_note: String::new(),
        }
    }

    fn pods(store: &Store) -> Vec<Value> {
        store
            .list("Pod", None)
            .iter()
            .map(|p| (**p).clone())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deployment_rolls_out_scales_and_is_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        crate::model::builtin::ensure(&store).unwrap();
        let client = crate::api::local::client_for(store.clone(), dir.path()).unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let (view, _watches) = View::start(client, KINDS, shutdown).await.unwrap();
        let view = &*view;
        apply_source(&store, "web.yaml", &deployment("v1", 2)).unwrap();
        settle(&store, view).await;
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
        settle(&store, view).await;
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
        settle(&store, view).await;
        assert_eq!(pods(&store).len(), 3);
        apply_source(&store, "web.yaml", &deployment("v2", 1)).unwrap();
        settle(&store, view).await;
        assert_eq!(pods(&store).len(), 1);

        // Deleting the file deletes the Deployment, and the collector takes the rest.
        apply_source(&store, "web.yaml", &[]).unwrap();
        settle(&store, view).await;
        assert!(store.list("ReplicaSet", None).is_empty());
        assert!(pods(&store).is_empty());
    }

    fn statefulset(image: &str, replicas: i64) -> Vec<Document> {
        vec![Document {
            index: 1,
            object: json!({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},
              "spec":{"replicas":replicas,"serviceName":"db","selector":{"matchLabels":{"app":"db"}},
                "template":{"metadata":{"labels":{"app":"db"}},
                  "spec":{"containers":[{"name":"db","image":image}]}}}}),
        }]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statefulset_creates_updates_scales_and_is_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        crate::model::builtin::ensure(&store).unwrap();
        let client = crate::api::local::client_for(store.clone(), dir.path()).unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let (view, _watches) = View::start(client, KINDS, shutdown).await.unwrap();
        let view = &*view;
        let names = |store: &Store| {
            let mut n: Vec<String> = pods(store)
                .iter()
                .map(|p| meta::name(p).to_string())
                .collect();
            n.sort();
            n
        };
        apply_source(&store, "db.yaml", &statefulset("db:1", 3)).unwrap();
        settle(&store, view).await;
        assert_eq!(names(&store), ["db-0", "db-1", "db-2"]);
        let key = ObjectKey::new("StatefulSet", "default", "db");
        let s = store.get(&key).unwrap();
        assert_eq!(s["status"]["readyReplicas"], 3);
        assert_eq!(
            s["status"]["currentRevision"],
            s["status"]["updateRevision"]
        );
        assert_eq!(store.list("ControllerRevision", None).len(), 1);

        apply_source(&store, "db.yaml", &statefulset("db:2", 3)).unwrap();
        settle(&store, view).await;
        assert!(pods(&store)
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "db:2"));
        let s = store.get(&key).unwrap();
        assert_eq!(s["status"]["updatedReplicas"], 3);
        assert_eq!(
            s["status"]["currentRevision"],
            s["status"]["updateRevision"]
        );
        assert_eq!(store.list("ControllerRevision", None).len(), 2);

        apply_source(&store, "db.yaml", &statefulset("db:2", 1)).unwrap();
        settle(&store, view).await;
        assert_eq!(names(&store), ["db-0"]);

        apply_source(&store, "db.yaml", &[]).unwrap();
        settle(&store, view).await;
        assert!(pods(&store).is_empty());
        assert!(store.list("ControllerRevision", None).is_empty());
    }
}
