//! The controllers' view of the cluster as an API client (architecture decision 2): one cache
//! per kind kept by `kube`'s [`watcher`] (list, then watch; re-list after a 410 or a broken
//! stream, with back-off) over the in-process client, and writes as API requests — the same
//! validation, defaulting, field ownership and watch events as kubectl's.
//!
//! The caches hold each object once as JSON, keyed like the store, so the reconcilers read
//! them as they would read the store — and the very version the store holds: a decoded object
//! equal to the store's version is exchanged for it (`model::versions`), so a cached object
//! costs no second tree. A write's result is remembered until the cache has seen
//! it ([`View::settled`]): a pass never runs on a cache that has not yet seen the previous
//! pass's own writes (the "expectations" of Kubernetes' controllers: without them a
//! ReplicaSet whose new pods are not yet cached would create them again).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DeleteParams, PostParams};
use kube::core::{DynamicResourceScope, GroupVersionKind, Request};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::model::kinds::{self, KindInfo};
use crate::model::object::Object;
use crate::model::store::{ObjectKey, Op};
use crate::model::versions;

/// Why a write through the API failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WriteError(#[from] pub kube::Error);

impl From<kube::core::request::Error> for WriteError {
    fn from(e: kube::core::request::Error) -> Self {
        WriteError(kube::Error::BuildRequest(e))
    }
}

impl WriteError {
    /// The HTTP status of an API error (409 for conflicts, 404…).
    pub fn code(&self) -> Option<u16> {
        match &self.0 {
            kube::Error::Api(s) => Some(s.code),
            _ => None,
        }
    }
}

type Cache = BTreeMap<ObjectKey, Object>;

/// Reading objects: the view's caches in the daemon, the store in unit tests of the pure
/// parts of a reconciler.
pub trait Objects: Send + Sync {
    /// One object.
    fn get(&self, key: &ObjectKey) -> Option<Arc<Value>>;
    /// Every object of a kind, in one namespace or all, ordered by namespace and name.
    fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>>;
}

/// The store's trees, as the view holds them (without `metadata.managedFields`).
impl Objects for crate::model::store::Store {
    fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        crate::model::store::Store::get_tree(self, key)
    }
    fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        crate::model::store::Store::list_trees(self, kind, namespace)
    }
}

impl Objects for View {
    fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        View::get(self, key)
    }
    fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        View::list(self, kind, namespace)
    }
}

/// Why the view did not start.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The caches' first lists did not all complete in time.
    #[error("the API's first lists took over a minute")]
    SlowFirstList,
}

/// Cached objects of the watched kinds, and writes through the API.
pub struct View {
    client: kube::Client,
    caches: BTreeMap<&'static str, Arc<RwLock<Cache>>>,
    /// Per kind, the highest resourceVersion its cache has taken in (every event of the kind
    /// up to it is reflected: resourceVersions are one global sequence, watched in order).
    seen: BTreeMap<&'static str, Arc<AtomicU64>>,
    /// Writes made through this view, until their kind's cache has taken them in:
    /// (key, the write's resourceVersion, when).
    pending: Mutex<Vec<(ObjectKey, u64, Instant)>>,
    changes: broadcast::Sender<&'static str>,
}

/// How long a write may stay unseen by its cache before the reconcilers stop waiting for it.
const PENDING_TTL: Duration = Duration::from_secs(60);

fn info(kind: &str) -> &'static KindInfo {
    kinds::by_kind(kind).expect("a served kind")
}

fn resource(kind: &str) -> ApiResource {
    let i = info(kind);
    let (group, version) = i
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", i.api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, i.kind), i.plural)
}

/// An object as a cache takes it from the API: decoded straight into JSON (no typed detour),
/// held as the store holds its kind and exchanged for the store's version when equal
/// ([`versions::share`]: a tree without `managedFields`, or the whole object's text), with the
/// metadata `kube`'s watcher reads (the resourceVersion it resumes from).
#[derive(Clone, Debug)]
struct Cached {
    object: Object,
    meta: ObjectMeta,
}

impl<'de> Deserialize<'de> for Cached {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let object = Value::deserialize(d)?;
        let m = &object["metadata"];
        let text = |k: &str| m[k].as_str().map(str::to_string);
        let meta = ObjectMeta {
            name: text("name"),
            namespace: text("namespace"),
            resource_version: text("resourceVersion"),
            uid: text("uid"),
            ..Default::default()
        };
        Ok(Cached {
            object: versions::share(object),
            meta,
        })
    }
}

/// A cached object's key, from the metadata its watch decoded.
fn key(kind: &str, meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::new(
        kind,
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or(""),
    )
}

impl kube::Resource for Cached {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn kind(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

impl View {
    /// Starts a cache per kind and returns once every one holds what the API holds.
    pub async fn start(
        client: kube::Client,
        kinds: &[&'static str],
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Arc<View>, Vec<JoinHandle<()>>), ViewError> {
        let (changes, _) = broadcast::channel(256);
        let mut caches = BTreeMap::new();
        let mut seen = BTreeMap::new();
        let mut tasks = Vec::new();
        let mut ready = Vec::new();
        for &kind in kinds {
            let cache = Arc::new(RwLock::new(Cache::new()));
            let kind_seen = Arc::new(AtomicU64::new(0));
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(keep(
                client.clone(),
                kind,
                cache.clone(),
                kind_seen.clone(),
                changes.clone(),
                ready_tx,
                shutdown.clone(),
            )));
            caches.insert(kind, cache);
            seen.insert(kind, kind_seen);
            ready.push(ready_rx);
        }
        tokio::time::timeout(Duration::from_secs(60), async {
            for r in ready {
                let _ = r.await;
            }
        })
        .await
        .map_err(|_| ViewError::SlowFirstList)?;
        let view = Arc::new(View {
            client,
            caches,
            seen,
            pending: Mutex::new(Vec::new()),
            changes,
        });
        Ok((view, tasks))
    }

    /// The client the view writes with.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The kind of every cache change, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<&'static str> {
        self.changes.subscribe()
    }

    fn cache(&self, kind: &str) -> Option<std::sync::RwLockReadGuard<'_, Cache>> {
        match self.caches.get(kind) {
            Some(c) => Some(c.read().unwrap_or_else(|p| p.into_inner())),
            None => {
                tracing::error!(kind, "the view keeps no cache of this kind");
                None
            }
        }
    }

    /// Every object of a kind, in one namespace or all, ordered by namespace and name.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(cache) = self.cache(kind) else {
            return Vec::new();
        };
        cache
            .iter()
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v.tree())
            .collect()
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.cache(&key.kind)?.get(key).map(Object::tree)
    }

    /// One object as the cache holds it (shared with the store when equal to its version).
    pub fn cached(&self, key: &ObjectKey) -> Option<Object> {
        self.cache(&key.kind)?.get(key).cloned()
    }

    /// What identifies every cached object and its owners ([`Object::identity`]: the whole
    /// tree of a kind held as one, no parse of the others' data): for the garbage collector.
    pub fn identities(&self) -> Vec<Arc<Value>> {
        let objects: Vec<Object> = self
            .caches
            .values()
            .flat_map(|c| {
                let c = c.read().unwrap_or_else(|p| p.into_inner());
                c.values().cloned().collect::<Vec<_>>()
            })
            .collect();
        // Read outside the caches' locks.
        objects.iter().map(Object::identity).collect()
    }

    /// The collection URL of the key's kind and namespace (kube's `Request` adds the name).
    fn path(key: &ObjectKey) -> String {
        let i = info(&key.kind);
        let base = if i.api_version.contains('/') {
            format!("/apis/{}", i.api_version)
        } else {
            format!("/api/{}", i.api_version)
        };
        if i.namespaced {
            format!("{base}/namespaces/{}/{}", key.namespace, i.plural)
        } else {
            format!("{base}/{}", i.plural)
        }
    }

    /// One object read from the API itself, not the cache (`None`: it does not exist) — for
    /// decisions that must not rest on a cache lagging behind another (the garbage collector).
    pub async fn get_live(&self, key: &ObjectKey) -> Result<Option<Value>, WriteError> {
        if kinds::by_kind(&key.kind).is_none() {
            return Ok(None);
        }
        let req = Request::new(Self::path(key)).get(&key.name, &Default::default())?;
        match self.send(req).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn send(&self, req: http::Request<Vec<u8>>) -> Result<Value, WriteError> {
        Ok(self.client.request::<Value>(req).await?)
    }

    fn expect(&self, key: ObjectKey, obj: &Value) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key, versions::rv_of(obj), Instant::now()));
    }

    /// Creates an object.
    pub async fn create(&self, obj: Value) -> Result<Value, WriteError> {
        let key = ObjectKey::of(&obj);
        let req = Request::new(Self::path(&key)).create(
            &PostParams::default(),
            serde_json::to_vec(&obj).expect("json"),
        )?;
        let created = self.send(req).await?;
        self.expect(ObjectKey::of(&created), &created);
        Ok(created)
    }

    /// Replaces an object (its `resourceVersion`, if set, must still be current: 409 if not).
    pub async fn update(&self, obj: Value) -> Result<Value, WriteError> {
        let key = ObjectKey::of(&obj);
        let req = Request::new(Self::path(&key)).replace(
            &key.name,
            &PostParams::default(),
            serde_json::to_vec(&obj).expect("json"),
        )?;
        let updated = self.send(req).await?;
        self.expect(key, &updated);
        Ok(updated)
    }

    /// Replaces an object's status.
    pub async fn update_status(&self, key: &ObjectKey, status: Value) -> Result<Value, WriteError> {
        if let Some(current) = self.get(key) {
            if current.get("status") == Some(&status) {
                return Ok((*current).clone());
            }
        }
        let i = info(&key.kind);
        let body = json!({
            "apiVersion": i.api_version, "kind": i.kind,
            "metadata": {"name": key.name, "namespace": key.namespace},
            "status": status,
        });
        let req = Request::new(Self::path(key)).replace_subresource(
            "status",
            &key.name,
            &PostParams::default(),
            serde_json::to_vec(&body).expect("json"),
        )?;
        let updated = self.send(req).await?;
        self.expect(key.clone(), &updated);
        Ok(updated)
    }

    /// Deletes an object (Pods gracefully). Gone already is fine.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), WriteError> {
        let req = Request::new(Self::path(key)).delete(&key.name, &DeleteParams::default())?;
        match self.send(req).await {
            Ok(v) => {
                self.expect(key.clone(), &v);
                Ok(())
            }
            Err(e) if e.code() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs store-style operations one after another (the API has no transactions; each
    /// reconciler is written so that a pass cut short is finished by the next one).
    pub async fn apply(&self, ops: Vec<Op>) -> Result<Vec<Value>, WriteError> {
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Create(o) => out.push(self.create(o).await?),
                Op::Update(o) => out.push(self.update(o).await?),
                Op::UpdateStatus(k, s) => out.push(self.update_status(&k, s).await?),
                Op::Delete(k) | Op::DeleteWithGrace(k, _) | Op::Remove(k) => {
                    self.delete(&k).await?;
                    out.push(Value::Null);
                }
            }
        }
        Ok(out)
    }

    /// Whether the caches show every write made through this view: its kind's cache has taken
    /// in events up to the write's resourceVersion (whatever happened to the object since).
    /// Forgets what they show, and writes older than a minute (a cache that stalls must not
    /// stop the reconcilers for good; it is logged).
    pub fn settled(&self) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|(key, want, since)| {
            let Some(seen) = self.seen.get(key.kind.as_str()) else {
                return false;
            };
            if seen.load(Ordering::Acquire) >= *want {
                return false;
            }
            if since.elapsed() > PENDING_TTL {
                tracing::warn!(object = %key, "the {} cache has not shown a write for a minute", key.kind);
                return false;
            }
            true
        });
        pending.is_empty()
    }

    /// Waits (up to `limit`) until [`View::settled`].
    pub async fn wait_settled(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.subscribe();
        loop {
            if self.settled() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changes.recv())
                .await
                .is_err()
            {
                return self.settled();
            }
        }
    }
}

/// Keeps one kind's cache with `kube`'s watcher until `shutdown` flips.
async fn keep(
    client: kube::Client,
    kind: &'static str,
    cache: Arc<RwLock<Cache>>,
    seen: Arc<AtomicU64>,
    changes: broadcast::Sender<&'static str>,
    ready: tokio::sync::oneshot::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api = kube::Api::<Cached>::all_with(client, &resource(kind));
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut ready = Some(ready);
    let mut relisting: Option<Cache> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            e = stream.next() => e,
        };
        let event = match event {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(kind, "watch: {e}");
                continue;
            }
            Some(Ok(e)) => e,
        };
        let write = |f: &mut dyn FnMut(&mut Cache)| {
            f(&mut cache.write().unwrap_or_else(|p| p.into_inner()));
        };
        match event {
            watcher::Event::Init => relisting = Some(Cache::new()),
            watcher::Event::InitApply(o) => {
                if let Some(buf) = relisting.as_mut() {
                    buf.insert(key(kind, &o.meta), o.object);
                }
            }
            watcher::Event::InitDone => {
                let fresh = relisting.take().unwrap_or_default();
                let newest = fresh.values().map(Object::rv).max().unwrap_or(0);
                write(&mut |c| *c = fresh.clone());
                seen.fetch_max(newest, Ordering::AcqRel);
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                let _ = changes.send(kind);
            }
            watcher::Event::Apply(o) => {
                let (k, v) = (key(kind, &o.meta), o.object);
                let rv = v.rv();
                write(&mut |c| {
                    c.insert(k.clone(), v.clone());
                });
                seen.fetch_max(rv, Ordering::AcqRel);
                let _ = changes.send(kind);
            }
            watcher::Event::Delete(o) => {
                let k = key(kind, &o.meta);
                write(&mut |c| {
                    c.remove(&k);
                });
                seen.fetch_max(o.object.rv(), Ordering::AcqRel);
                let _ = changes.send(kind);
            }
        }
    }
}
