//! The agent's view of the control plane, as a client of the API server (architecture
//! decision 2): caches of Pods, Services, EndpointSlices, Secrets and ConfigMaps kept current by `kube`'s
//! `watcher` and reflector stores over the in-process client; status, deletions, Service
//! allocations and Events are API requests — the same path kubectl's requests take.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::json;
use skiff_agent::Write;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// The field manager of the node's writes.
const MANAGER: &str = "skiff-node";

/// Implements [`skiff_agent::Cluster`] over the API.
pub struct KubeCluster {
    client: kube::Client,
    pods: reflector::Store<Pod>,
    services: reflector::Store<Service>,
    slices: reflector::Store<EndpointSlice>,
    secrets: reflector::Store<Secret>,
    config_maps: reflector::Store<ConfigMap>,
    changes: broadcast::Sender<()>,
}

/// Keeps a cache of every `K` until `shutdown` flips; each change is announced on `changes`.
fn reflect<K>(
    client: &kube::Client,
    changes: Option<broadcast::Sender<()>>,
    mut shutdown: watch::Receiver<bool>,
) -> (reflector::Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                event = stream.next() => match event {
                    Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)) => {
                        if let Some(tx) = &changes {
                            let _ = tx.send(());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(kind = %K::kind(&()), "watch: {e}"),
                    None => return,
                },
            }
        }
    });
    (reader, task)
}

impl KubeCluster {
    /// Starts the caches and returns once each holds what the API holds: the agent must not
    /// act on a partial list (it would take running containers for orphans).
    pub async fn start(
        client: kube::Client,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        let (changes, _) = broadcast::channel(64);
        let (pods, a) = reflect(&client, Some(changes.clone()), shutdown.clone());
        let (services, b) = reflect(&client, Some(changes.clone()), shutdown.clone());
        let (slices, c) = reflect(&client, Some(changes.clone()), shutdown.clone());
        let (secrets, d) = reflect(&client, None, shutdown.clone());
        let (config_maps, e) = reflect(&client, None, shutdown);
        tokio::time::timeout(Duration::from_secs(60), async {
            pods.wait_until_ready().await?;
            services.wait_until_ready().await?;
            slices.wait_until_ready().await?;
            secrets.wait_until_ready().await?;
            config_maps.wait_until_ready().await
        })
        .await
        .context("the API's first lists took over a minute")?
        .context("the API's caches")?;
        let cluster = Arc::new(KubeCluster {
            client,
            pods,
            services,
            slices,
            secrets,
            config_maps,
            changes,
        });
        Ok((cluster, vec![a, b, c, d, e]))
    }

    fn pod_api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl skiff_agent::Cluster for KubeCluster {
    fn pods(&self) -> Vec<Pod> {
        self.pods.state().iter().map(|p| (**p).clone()).collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<()> {
        self.changes.subscribe()
    }

    fn set_pod_status<'a>(&'a self, pod: &'a Pod, status: PodStatus) -> Write<'a> {
        Box::pin(async move {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            // The uid makes it a write to this very pod (a re-created pod of the same name
            // has another); no resourceVersion: the status is the node's alone.
            let mut body = Pod {
                metadata: pod.metadata.clone(),
                spec: pod.spec.clone(),
                status: Some(status),
            };
            body.metadata.resource_version = None;
            body.metadata.managed_fields = None;
            match self
                .pod_api(pod)
                .replace_status(name, &PostParams::default(), &body)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn pod_gone<'a>(&'a self, pod: &'a Pod) -> Write<'a> {
        Box::pin(async move {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.pod_api(pod).delete(name, &params).await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| (*s).clone())
    }

    fn event(&self, namespace: &str, pod: &str, warning: bool, reason: &str, message: &str) {
        let Some(p) = self.pods.get(&ObjectRef::new(pod).within(namespace)) else {
            return;
        };
        let (client, reason, message) =
            (self.client.clone(), reason.to_string(), message.to_string());
        tokio::spawn(async move {
            let Ok(pod) = serde_json::to_value(&*p) else {
                return;
            };
            let ty = if warning {
                skiff_controller::events::Type::Warning
            } else {
                skiff_controller::events::Type::Normal
            };
            skiff_controller::events::record_via(
                &client,
                &pod,
                ty,
                &reason,
                &message,
                skiff_controller::events::Source::Kubelet,
            )
            .await;
        });
    }

    fn objects(&self, kind: &str) -> Vec<serde_json::Value> {
        fn values<K: serde::Serialize>(items: Vec<Arc<K>>) -> Vec<serde_json::Value> {
            items
                .iter()
                .filter_map(|o| serde_json::to_value(&**o).ok())
                .collect()
        }
        match kind {
            "Service" => values(self.services.state()),
            "EndpointSlice" => values(self.slices.state()),
            "Pod" => values(self.pods.state()),
            "ConfigMap" => values(self.config_maps.state()),
            other => {
                tracing::error!(kind = other, "the agent keeps no cache of this kind");
                Vec::new()
            }
        }
    }

    fn update_service<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        spec: Option<serde_json::Value>,
        status: Option<serde_json::Value>,
    ) -> Write<'a> {
        Box::pin(async move {
            let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
            let pp = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..PatchParams::default()
            };
            let r = async {
                if let Some(spec) = spec {
                    api.patch(name, &pp, &Patch::Merge(json!({ "spec": spec })))
                        .await?;
                }
                if let Some(status) = status {
                    api.patch_status(name, &pp, &Patch::Merge(json!({ "status": status })))
                        .await?;
                }
                Ok::<_, kube::Error>(())
            }
            .await;
            match r {
                Err(e) if is_not_found(&e) => Ok(()),
                r => r.map_err(Into::into),
            }
        })
    }
}
