//! The object store: every object is a Kubernetes object kept as JSON in embedded SQLite
//! (`<data-dir>/state.db`, WAL, `synchronous=FULL`), with an in-memory copy for reads and a
//! broadcast of changes for watchers.
//!
//! Owns: object identity (uid), `resourceVersion` (one global, monotonic sequence that survives
//! restarts), `generation` (bumped when `spec` changes), `creationTimestamp`, graceful deletion of
//! Pods (`deletionTimestamp`), and finalizers for the kinds that have them (a deletion marks
//! the object; it goes when an update leaves its `metadata.finalizers` empty). A write is acknowledged only after its transaction committed.
//! Does not own: validation or defaulting (see `validate`, `defaults`) — callers hand it valid objects.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::model::kinds::{self, KindInfo};
use crate::model::meta;
use crate::model::object::Object;
use crate::model::versions;

/// A key naming one object: kind, namespace ("" for cluster-scoped kinds), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The object's kind, e.g. `Deployment`.
    pub kind: String,
    /// The namespace, empty for cluster-scoped kinds.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The key of an object (reads `kind`, `metadata.namespace`, `metadata.name`).
    pub fn of(obj: &Value) -> Self {
        ObjectKey::new(
            obj["kind"].as_str().unwrap_or_default(),
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default(),
        )
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed (including status and the start of a graceful deletion).
    Modified,
    /// Gone from the store.
    Deleted,
}

/// One committed change, as watchers see it.
#[derive(Clone, Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// Which object.
    pub key: ObjectKey,
    /// The object after the change (for `Deleted`, its last state).
    pub object: Object,
}

/// One write inside a transaction.
#[derive(Clone, Debug)]
pub enum Op {
    /// Create an object; fails if it exists.
    Create(Value),
    /// Replace an object's declared content (metadata labels/annotations/ownerReferences,
    /// everything but `status`); fails if it does not exist. If the object carries a
    /// `resourceVersion`, it must match the stored one.
    Update(Value),
    /// Replace an object's `status` only.
    UpdateStatus(ObjectKey, Value),
    /// Delete an object. Pods are deleted gracefully: they get a `deletionTimestamp` and stay
    /// until the agent has stopped them and calls [`Op::Remove`]. Objects of kinds with
    /// finalizers ([`KindInfo::has_finalizers`]) that carry some get a `deletionTimestamp` and
    /// stay until an [`Op::Update`] empties their `metadata.finalizers`.
    Delete(ObjectKey),
    /// Delete a Pod with this grace period (seconds) instead of its spec's.
    DeleteWithGrace(ObjectKey, i64),
    /// Remove an object at once (the end of a graceful deletion).
    Remove(ObjectKey),
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("the state database failed: {0}")]
    Database(#[from] rusqlite::Error),
    /// `state.db` could not be made the owner's only.
    #[error("cannot make state.db readable by its owner only: {0}")]
    Permissions(std::io::Error),
    /// Creating an object that exists.
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    /// Changing an object that does not exist.
    #[error("{0} not found")]
    NotFound(ObjectKey),
    /// The caller's resourceVersion is stale.
    #[error(
        "{key} was changed by someone else (resourceVersion {expected} is stale, now {actual})"
    )]
    Conflict {
        /// The object.
        key: ObjectKey,
        /// The version the caller had.
        expected: String,
        /// The stored version.
        actual: String,
    },
    /// The kind is not one skiff serves.
    #[error("kind {0} is not served by skiff")]
    UnknownKind(String),
    /// A stored object could not be decoded.
    #[error("stored object {0} is corrupt: {1}")]
    Corrupt(String, serde_json::Error),
    /// The store was written by a newer skiff (its schema version is beyond [`SCHEMA_VERSION`]).
    #[error(
        "state.db has schema version {found}, newer than this skiff knows ({known}): it was \
         written by a newer skiff. Run that version, or restore a backup made before the upgrade"
    )]
    TooNew {
        /// The store's `PRAGMA user_version`.
        found: u32,
        /// The newest version this binary knows.
        known: u32,
    },
}

struct Inner {
    conn: Connection,
    objects: BTreeMap<ObjectKey, Object>,
    resource_version: u64,
    /// The most recent events, for watches that resume from a resourceVersion, in
    /// resourceVersion order.
    history: std::collections::VecDeque<Retained>,
    /// Events at or before this resourceVersion are no longer retained.
    history_floor: u64,
}

/// One event of the watch history. A version the store still holds is shared with it (no
/// copy); a version it no longer holds — superseded, removed, a deletion's last state — is kept
/// as its JSON text, several times smaller than the tree (a `BTreeMap` node per JSON object),
/// and parsed again only for a watch that resumes before it. An object held as text is shared
/// as it is, whatever became of it.
struct Retained {
    kind: EventType,
    key: ObjectKey,
    rv: u64,
    object: Held,
}

#[derive(Clone)]
enum Held {
    Shared(Object),
    Json(Arc<str>),
}

impl Held {
    fn json(obj: &Object) -> Held {
        Held::Json(
            serde_json::to_string(obj)
                .expect("JSON values serialize")
                .into(),
        )
    }
}

/// How many recent events are kept for resuming watches. Each is a version of an object
/// (~1–2 KB as JSON when the store no longer holds it): 1,000 bound the window to a few MB.
/// Watchers that ask for bookmarks hear the current resourceVersion every minute, so a quiet
/// watch resumes within the window; beyond it, a resume gets 410 and re-lists, as from
/// Kubernetes.
const HISTORY: usize = 1_000;

/// The resourceVersion carried by an event's object.
pub fn event_rv(e: &Event) -> u64 {
    e.object.rv()
}

impl Inner {
    /// `old` is no longer the store's: its history event, if retained, keeps its JSON instead
    /// of its tree (an object held as text is kept as it is), and it is withdrawn from sharing.
    fn superseded(&mut self, old: &Object) {
        versions::withdraw(old);
        if old.is_text() {
            return;
        }
        let rv = old.rv();
        if let Ok(i) = self.history.binary_search_by_key(&rv, |r| r.rv) {
            if matches!(self.history[i].object, Held::Shared(_)) {
                self.history[i].object = Held::json(old);
            }
        }
    }

    /// Retains a committed event (the oldest goes beyond [`HISTORY`]).
    fn retain(&mut self, e: &Event) {
        if self.history.len() >= HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.rv;
            }
        }
        let held = match self.objects.get(&e.key) {
            Some(now) if e.kind != EventType::Deleted && now.same(&e.object) => {
                Held::Shared(e.object.clone())
            }
            // Held as text already: shared as it is.
            _ if e.object.is_text() => Held::Shared(e.object.clone()),
            // A deletion's last state, or a version the same transaction replaced again.
            _ => Held::json(&e.object),
        };
        self.history.push_back(Retained {
            kind: e.kind,
            key: e.key.clone(),
            rv: event_rv(e),
            object: held,
        });
    }
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
}

/// The store's schema version, kept in SQLite's `PRAGMA user_version`. Version 0 is a store
/// made before the version was recorded (skiff up to commit 8ff55c6); a store newer than this
/// is refused ([`StoreError::TooNew`]), an older one migrated in one transaction ([`migrate`]).
pub const SCHEMA_VERSION: u32 = 1;

/// `MIGRATIONS[i]` takes a store from schema version `i` to `i + 1`. An empty (new) database
/// is version 0 and runs them all.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the tables of version 0, made if missing — `objects` and `counters` (the store's)
    // and `tokens` (made by `api::auth` until then) — and the version recorded.
    "
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    namespace TEXT,
    created TEXT NOT NULL
);
",
];

/// The schema version of an open store database.
pub fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?)
}

/// Brings the database to [`SCHEMA_VERSION`]: refuses a newer one, runs the missing
/// migrations and records the version in one transaction (all or nothing). Returns the
/// version found.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let found = schema_version(conn)?;
    if found == SCHEMA_VERSION {
        return Ok(found);
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Another process may have migrated it meanwhile: read again under the write lock.
    let found = schema_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for step in &MIGRATIONS[found as usize..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    if found != 0 || has_objects(conn)? {
        tracing::info!(
            from = found,
            to = SCHEMA_VERSION,
            "migrated the store's schema"
        );
    }
    Ok(found)
}

fn has_objects(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM objects LIMIT 1", [], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The current time in Kubernetes' RFC 3339 form (seconds precision, `Z`).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Makes `state.db` (created empty if absent) and its WAL files readable by the owner only
/// before SQLite opens them: the store holds every Secret. SQLite gives new `-wal`/`-shm` files
/// the database file's mode.
fn owner_only(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let db = data_dir.join("state.db");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&db)?;
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        match std::fs::set_permissions(data_dir.join(f), std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir/state.db` and loads every object.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        owner_only(data_dir).map_err(StoreError::Permissions)?;
        let mut conn = Connection::open(data_dir.join("state.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Every object is held in memory (`objects`) and read from there; SQLite's page cache
        // only serves writes (the B-tree's interior pages and the leaves written), so 256 KiB
        // instead of the default 2 MiB, which filled as the store grew (issue 15: daemon memory).
        conn.pragma_update(None, "cache_size", -256)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate(&mut conn)?;
        let resource_version: u64 = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'resourceVersion'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0) as u64;
        let mut objects = BTreeMap::new();
        {
            let mut stmt = conn.prepare("SELECT kind, namespace, name, body FROM objects")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            for row in rows {
                let (kind, namespace, name, body) = row?;
                let key = ObjectKey::new(&kind, &namespace, &name);
                let value: Value = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(key.to_string(), e))?;
                let value = Object::from_whole(value);
                versions::publish(&value);
                objects.insert(key, value);
            }
        }
        let (events, _) = broadcast::channel(4096);
        Ok(Store {
            inner: Mutex::new(Inner {
                conn,
                objects,
                resource_version,
                history: std::collections::VecDeque::new(),
                history_floor: resource_version,
            }),
            events,
        })
    }

    /// Opens a read-only view for command-line inspection (`skiff get`), safe while the daemon runs.
    pub fn open_read_only(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("state.db");
        if !path.exists() {
            return Err(StoreError::Database(rusqlite::Error::InvalidPath(path)));
        }
        Self::open(data_dir)
    }

    /// Subscribes to committed changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Subscribes to changes after `rv`: the retained events newer than `rv`, then live ones,
    /// with nothing lost or repeated in between. `Err(oldest)` when events after `rv` are no
    /// longer retained (the watcher must list again: HTTP 410).
    pub fn watch_from(&self, rv: u64) -> Result<(Vec<Event>, broadcast::Receiver<Event>), u64> {
        let inner = self.lock();
        if rv < inner.history_floor {
            return Err(inner.history_floor);
        }
        let rx = self.events.subscribe();
        let past: Vec<(EventType, ObjectKey, Held)> = inner
            .history
            .iter()
            .filter(|e| e.rv > rv)
            .map(|e| (e.kind, e.key.clone(), e.object.clone()))
            .collect();
        drop(inner);
        // Parsed outside the lock: writers need not wait for a resuming watch.
        let past = past
            .into_iter()
            .map(|(kind, key, held)| Event {
                kind,
                key,
                object: match held {
                    Held::Shared(o) => o,
                    Held::Json(j) => Object::from_whole(
                        serde_json::from_str(&j).expect("the store's own JSON parses"),
                    ),
                },
            })
            .collect();
        Ok((past, rx))
    }

    /// A consistent snapshot of a kind (all namespaces) with the resourceVersion it is at, and a
    /// subscription to every change after it.
    pub fn list_and_watch(
        &self,
        kind: &str,
    ) -> (Vec<(ObjectKey, Object)>, u64, broadcast::Receiver<Event>) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        let items = inner
            .objects
            .range(ObjectKey::new(kind, "", "")..)
            .take_while(|(k, _)| k.kind == kind)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (items, inner.resource_version, rx)
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (every mutation is
        // applied after the commit, in one step), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One object as stored (its tree and its `managedFields` text), if present: what the
    /// API's reads serialize.
    pub fn get_object(&self, key: &ObjectKey) -> Option<Object> {
        self.lock().objects.get(key).cloned()
    }

    /// One object's tree without `metadata.managedFields` (shared, no copy — parsed for a
    /// kind held as text), if present: for readers that do not need them.
    pub fn get_tree(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.get_object(key).map(|o| o.tree())
    }

    /// [`Store::list_objects`] as trees without `metadata.managedFields` (shared, no copies;
    /// parsed for a kind held as text).
    pub fn list_trees(&self, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let objects = self.list_objects(kind, namespace);
        objects.iter().map(Object::tree).collect()
    }

    /// One whole object, if present (a tree of its own when it has `managedFields`).
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.get_object(key).map(|o| o.whole_arc())
    }

    /// All objects of a kind as stored, optionally in one namespace, ordered by namespace and
    /// name.
    pub fn list_objects(&self, kind: &str, namespace: Option<&str>) -> Vec<Object> {
        let inner = self.lock();
        let start = ObjectKey::new(kind, namespace.unwrap_or(""), "");
        inner
            .objects
            .range(start..)
            .take_while(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// [`Store::list_objects`] as whole objects.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let objects = self.list_objects(kind, namespace);
        objects.iter().map(Object::whole_arc).collect()
    }

    /// What identifies every object, its owners and its annotations ([`Object::identity`]:
    /// the shared tree of a kind held as one): for the folder's pruning, which reads
    /// annotations and deletion marks only.
    pub fn identities(&self) -> Vec<Arc<Value>> {
        let objects: Vec<Object> = self.lock().objects.values().cloned().collect();
        objects.iter().map(Object::identity).collect()
    }

    /// Creates one object.
    pub fn create(&self, obj: Value) -> Result<Object, StoreError> {
        Ok(self.transaction(vec![Op::Create(obj)])?.remove(0))
    }

    /// Updates one object's declared content.
    pub fn update(&self, obj: Value) -> Result<Object, StoreError> {
        Ok(self.transaction(vec![Op::Update(obj)])?.remove(0))
    }

    /// Replaces one object's status. A status equal to the stored one writes nothing.
    pub fn update_status(&self, key: &ObjectKey, status: Value) -> Result<Object, StoreError> {
        if let Some(current) = self.get_object(key) {
            if current.tree().get("status") == Some(&status) {
                return Ok(current);
            }
        }
        Ok(self
            .transaction(vec![Op::UpdateStatus(key.clone(), status)])?
            .remove(0))
    }

    /// Deletes one object (gracefully for Pods).
    pub fn delete(&self, key: &ObjectKey) -> Result<Object, StoreError> {
        Ok(self.transaction(vec![Op::Delete(key.clone())])?.remove(0))
    }

    /// Removes one object at once.
    pub fn remove(&self, key: &ObjectKey) -> Result<Object, StoreError> {
        Ok(self.transaction(vec![Op::Remove(key.clone())])?.remove(0))
    }

    /// Applies all operations atomically: either every one is committed durably, or none is.
    /// Returns the resulting objects, in order (for deletions, the last state).
    pub fn transaction(&self, ops: Vec<Op>) -> Result<Vec<Object>, StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut stage = Staging::new(&inner.objects, ops.len());
        let mut rv = inner.resource_version;
        for op in ops {
            rv += 1;
            if !stage.apply(op, rv)? {
                // Nothing changed (a pod already terminating): no version used.
                rv -= 1;
            }
        }
        let Staging {
            staged,
            events,
            results,
            ..
        } = stage;
        if staged.is_empty() {
            return Ok(results);
        }
        // Commit durably, then publish.
        commit(&mut inner.conn, &staged, rv)?;
        inner.resource_version = rv;
        for (key, value) in staged {
            let old = match value {
                Some(obj) => inner.objects.insert(key, obj),
                None => inner.objects.remove(&key),
            };
            if let Some(old) = old {
                inner.superseded(&old);
            }
        }
        for e in events {
            // Published for sharing while the store holds it (not a deletion's last state, nor a
            // version the same transaction replaced again).
            if e.kind != EventType::Deleted
                && inner.objects.get(&e.key).is_some_and(|o| o.same(&e.object))
            {
                versions::publish(&e.object);
            }
            inner.retain(&e);
            // No receivers is fine.
            let _ = self.events.send(e);
        }
        Ok(results)
    }
}

/// The changes of one transaction before it commits: a private overlay over the stored
/// objects, so that a failure leaves memory untouched.
struct Staging<'a> {
    stored: &'a BTreeMap<ObjectKey, Object>,
    staged: BTreeMap<ObjectKey, Option<Object>>,
    events: Vec<Event>,
    results: Vec<Object>,
}

impl<'a> Staging<'a> {
    fn new(stored: &'a BTreeMap<ObjectKey, Object>, ops: usize) -> Self {
        Staging {
            stored,
            staged: BTreeMap::new(),
            events: Vec::with_capacity(ops),
            results: Vec::with_capacity(ops),
        }
    }

    /// The object as this transaction sees it so far.
    fn current(&self, key: &ObjectKey) -> Option<Object> {
        match self.staged.get(key) {
            Some(v) => v.clone(),
            None => self.stored.get(key).cloned(),
        }
    }

    fn existing(&self, key: &ObjectKey) -> Result<Object, StoreError> {
        self.current(key)
            .ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    /// Stages a new version of an object.
    fn put(&mut self, key: ObjectKey, obj: Object, kind: EventType) {
        self.staged.insert(key.clone(), Some(obj.clone()));
        self.events.push(Event {
            kind,
            key,
            object: obj.clone(),
        });
        self.results.push(obj);
    }

    /// Stages the removal of an object; its last version carries the removal's version.
    fn remove(&mut self, key: ObjectKey, old: &Object, rv: u64) {
        self.staged.insert(key.clone(), None);
        let mut obj = (*old.tree()).clone();
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = old.with_tree(obj);
        self.events.push(Event {
            kind: EventType::Deleted,
            key,
            object: obj.clone(),
        });
        self.results.push(obj);
    }

    /// Stages one operation at version `rv`; false if it changed nothing.
    fn apply(&mut self, op: Op, rv: u64) -> Result<bool, StoreError> {
        match op {
            Op::Create(obj) => {
                let key = ObjectKey::of(&obj);
                let info = kind_info(&key.kind)?;
                if self.current(&key).is_some() {
                    return Err(StoreError::AlreadyExists(key));
                }
                self.put(
                    key,
                    Object::from_whole(created(obj, info, rv)),
                    EventType::Added,
                );
            }
            Op::Update(obj) => {
                let key = ObjectKey::of(&obj);
                let info = kind_info(&key.kind)?;
                let old = self.existing(&key)?;
                let obj = Object::from_whole(updated(&key, &old.tree(), obj, info, rv)?);
                if info.has_finalizers() && {
                    let tree = obj.tree();
                    meta::is_terminating(&tree) && finalizers(&tree) == 0
                } {
                    // The last finalizer of an object being deleted is gone: so is the object.
                    self.remove(key, &obj, rv);
                } else {
                    self.put(key, obj, EventType::Modified);
                }
            }
            Op::UpdateStatus(key, status) => {
                let old = self.existing(&key)?;
                let mut obj = (*old.tree()).clone();
                obj["status"] = status;
                meta::metadata_mut(&mut obj)
                    .insert("resourceVersion".into(), json!(rv.to_string()));
                self.put(key, old.with_tree(obj), EventType::Modified);
            }
            Op::Delete(key) => return self.delete(key, None, rv),
            Op::DeleteWithGrace(key, grace) => return self.delete(key, Some(grace), rv),
            Op::Remove(key) => {
                let old = self.existing(&key)?;
                self.remove(key, &old, rv);
            }
        }
        Ok(true)
    }

    /// A deletion: Pods are marked (`deletionTimestamp`, grace) for the node to stop them;
    /// objects of kinds with finalizers that still carry some are marked and stay until the
    /// last is removed (an update); everything else goes at once.
    fn delete(&mut self, key: ObjectKey, grace: Option<i64>, rv: u64) -> Result<bool, StoreError> {
        let old = self.existing(&key)?;
        let tree = old.tree();
        let held = kind_info(&key.kind)?.has_finalizers() && finalizers(&tree) > 0;
        // A pod not bound to this node has nothing running to stop: it goes at once (as
        // Kubernetes deletes unscheduled pods).
        let unbound = key.kind == "Pod" && tree["spec"]["nodeName"] != crate::model::node::name();
        if (key.kind != "Pod" && !held) || unbound {
            self.remove(key, &old, rv);
            return Ok(true);
        }
        if tree["metadata"].get("deletionTimestamp").is_some() {
            self.results.push(old);
            return Ok(false);
        }
        if held {
            let mut obj = (*tree).clone();
            let m = meta::metadata_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.insert("resourceVersion".into(), json!(rv.to_string()));
            self.put(key, old.with_tree(obj), EventType::Modified);
            return Ok(true);
        }
        let mut obj = (*tree).clone();
        let grace = grace
            .unwrap_or_else(|| {
                obj["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            })
            .max(0);
        let m = meta::metadata_mut(&mut obj);
        m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        self.put(key, old.with_tree(obj), EventType::Modified);
        Ok(true)
    }
}

/// How many `metadata.finalizers` an object carries.
fn finalizers(obj: &Value) -> usize {
    obj["metadata"]["finalizers"].as_array().map_or(0, Vec::len)
}

/// A new object as stored: identity, version, creation time, generation 1.
fn created(mut obj: Value, info: &KindInfo, rv: u64) -> Value {
    let m = meta::metadata_mut(&mut obj);
    m.insert("uid".into(), json!(new_uid()));
    m.insert("resourceVersion".into(), json!(rv.to_string()));
    m.insert("creationTimestamp".into(), json!(now_rfc3339()));
    if info.has_generation() {
        m.insert("generation".into(), json!(1));
    }
    m.remove("deletionTimestamp");
    if !info.namespaced {
        m.remove("namespace");
    }
    crate::model::defaults::on_identity(&mut obj);
    obj
}

/// A replacement of `old` as stored: the server's metadata and the status stay `old`'s, the
/// generation moves when the spec changed; a given resourceVersion must be `old`'s.
fn updated(
    key: &ObjectKey,
    old: &Value,
    mut obj: Value,
    info: &KindInfo,
    rv: u64,
) -> Result<Value, StoreError> {
    let old_rv = old["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if let Some(given) = obj["metadata"]["resourceVersion"].as_str() {
        if given != old_rv {
            return Err(StoreError::Conflict {
                key: key.clone(),
                expected: given.to_string(),
                actual: old_rv.to_string(),
            });
        }
    }
    let old_meta = &old["metadata"];
    // A pod's binding is the scheduler's: a replacement that does not name the node keeps it.
    if key.kind == "Pod" && obj["spec"]["nodeName"].is_null() && old["spec"]["nodeName"].is_string()
    {
        obj["spec"]["nodeName"] = old["spec"]["nodeName"].clone();
    }
    let spec_changed = info.has_generation() && old.get("spec") != obj.get("spec");
    let m = meta::metadata_mut(&mut obj);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old_meta.get(field) {
            Some(v) => m.insert(field.into(), v.clone()),
            None => m.remove(field),
        };
    }
    m.insert("resourceVersion".into(), json!(rv.to_string()));
    if info.has_generation() {
        let g = old_meta["generation"].as_i64().unwrap_or(1);
        m.insert(
            "generation".into(),
            json!(if spec_changed { g + 1 } else { g }),
        );
    }
    match old.get("status") {
        Some(s) => obj["status"] = s.clone(),
        None => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
    }
    Ok(obj)
}

/// Writes the staged changes and the new resourceVersion in one SQLite transaction.
fn commit(
    conn: &mut Connection,
    staged: &BTreeMap<ObjectKey, Option<Object>>,
    rv: u64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for (key, value) in staged {
        match value {
            Some(obj) => {
                // The whole object: its tree with `managedFields` written in, or its text.
                let body = match obj.text() {
                    Some(text) => text,
                    None => serde_json::to_string(obj).expect("JSON values serialize"),
                };
                let uid = obj.identity()["metadata"]["uid"]
                    .as_str()
                    .map(str::to_string);
                tx.execute(
                    "INSERT INTO objects (kind, namespace, name, uid, resource_version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (kind, namespace, name) DO UPDATE SET
                       uid = excluded.uid, resource_version = excluded.resource_version, body = excluded.body",
                    params![
                        key.kind,
                        key.namespace,
                        key.name,
                        uid.unwrap_or_default(),
                        obj.rv() as i64,
                        body
                    ],
                )?;
            }
            None => {
                tx.execute(
                    "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                    params![key.kind, key.namespace, key.name],
                )?;
            }
        }
    }
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ('resourceVersion', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![rv as i64],
    )?;
    tx.commit()?;
    Ok(())
}

fn kind_info(kind: &str) -> Result<&'static KindInfo, StoreError> {
    kinds::by_kind(kind).ok_or_else(|| StoreError::UnknownKind(kind.to_string()))
}

/// A random RFC 4122 version-4 UUID, as Kubernetes uses for `metadata.uid`.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, v: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default"},"data":{"k":v}})
    }

    #[test]
    fn writes_survive_reopen_and_resource_version_keeps_growing() {
        let dir = tempfile::tempdir().unwrap();
        let rv1;
        {
            let s = Store::open(dir.path()).unwrap();
            let o = s.create(cm("a", "1")).unwrap();
            rv1 = o.rv();
            s.delete(&ObjectKey::new("ConfigMap", "default", "a"))
                .unwrap();
            s.create(cm("b", "2")).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s
            .get(&ObjectKey::new("ConfigMap", "default", "a"))
            .is_none());
        let b = s.get(&ObjectKey::new("ConfigMap", "default", "b")).unwrap();
        assert_eq!(b["data"]["k"], "2");
        let o = s.create(cm("c", "3")).unwrap();
        let rv3 = o.rv();
        assert!(rv3 > rv1 + 2, "{rv3} vs {rv1}");
    }

    /// A store as skiff wrote it before the schema version (8ff55c6): the same tables, no
    /// `user_version`, no `tokens` table until `skiff token` or the API server made it.
    fn version_0_store(dir: &Path) {
        let conn = Connection::open(dir.join("state.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE objects (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                 uid TEXT NOT NULL, resource_version INTEGER NOT NULL, body TEXT NOT NULL,
                 PRIMARY KEY (kind, namespace, name));
             CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO counters VALUES ('resourceVersion', 41);",
        )
        .unwrap();
        let mut o = cm("old", "kept");
        o["metadata"]["uid"] = json!("u-1");
        o["metadata"]["resourceVersion"] = json!("41");
        conn.execute(
            "INSERT INTO objects VALUES ('ConfigMap', 'default', 'old', 'u-1', 41, ?1)",
            params![o.to_string()],
        )
        .unwrap();
    }

    #[test]
    fn a_version_0_store_is_migrated_and_keeps_its_objects() {
        let dir = tempfile::tempdir().unwrap();
        version_0_store(dir.path());
        let s = Store::open(dir.path()).unwrap();
        let old = s
            .get(&ObjectKey::new("ConfigMap", "default", "old"))
            .unwrap();
        assert_eq!(old["data"]["k"], "kept");
        assert_eq!(s.resource_version(), 41);
        drop(s);
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        // Version 1 has the tokens table.
        let tokens: i64 = conn
            .query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tokens, 0);
        // Opening again migrates nothing.
        let mut conn = conn;
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_store_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = Store::open(dir.path())
            .err()
            .expect("a newer store is refused");
        let text = err.to_string();
        assert!(
            text.contains(&format!("schema version {}", SCHEMA_VERSION + 1))
                && text.contains("newer skiff"),
            "{text}"
        );
        let err = crate::api::auth::Tokens::open(dir.path())
            .err()
            .expect("the token table refuses it too");
        assert!(err.to_string().contains("newer skiff"), "{err}");
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION + 1);
    }

    /// An object of a kind held as a tree (the store does not validate: any served kind).
    fn lease(name: &str, v: &str) -> Value {
        let mut o = cm(name, v);
        o["kind"] = json!("Lease");
        o["apiVersion"] = json!("coordination.k8s.io/v1");
        o
    }

    #[test]
    fn a_resumed_watch_gets_every_version_as_it_was_and_the_current_one_shared() {
        for (kind, make) in [
            ("ConfigMap", cm as fn(&str, &str) -> Value),
            ("Lease", lease),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(dir.path()).unwrap();
            let first = s.create(make("a", "1")).unwrap();
            assert_eq!(first.is_text(), kind == "ConfigMap");
            let start = first.rv() - 1;
            let second = s.update(make("a", "2")).unwrap();
            let gone = s.delete(&ObjectKey::new(kind, "default", "a")).unwrap();
            let kept = s.create(make("b", "1")).unwrap();
            // Two versions of one object in one transaction: the first is only history's.
            let both = s
                .transaction(vec![Op::Create(make("c", "1")), Op::Update(make("c", "2"))])
                .unwrap();
            let (past, _rx) = s.watch_from(start).unwrap();
            let seen: Vec<(EventType, Value)> =
                past.iter().map(|e| (e.kind, e.object.whole())).collect();
            assert_eq!(
                seen,
                [
                    (EventType::Added, first.whole()),
                    (EventType::Modified, second.whole()),
                    (EventType::Deleted, gone.whole()),
                    (EventType::Added, kept.whole()),
                    (EventType::Added, both[0].whole()),
                    (EventType::Modified, both[1].whole()),
                ]
            );
            let keys: Vec<String> = past.iter().map(|e| e.key.to_string()).collect();
            assert_eq!(
                keys,
                ["a", "a", "a", "b", "c", "c"].map(|n| format!("{kind} default/{n}"))
            );
            // What the store holds is not copied for the history.
            assert!(past[3]
                .object
                .same(&s.get_object(&ObjectKey::of(&kept.tree())).unwrap()));
            assert!(past[5]
                .object
                .same(&s.get_object(&ObjectKey::of(&both[1].tree())).unwrap()));
            // Superseded versions are kept as their JSON, not as a tree of their own.
            let inner = s.lock();
            let held: Vec<bool> = inner
                .history
                .iter()
                .map(|r| matches!(r.object, Held::Shared(_)))
                .collect();
            if kind == "ConfigMap" {
                assert_eq!(held, [true; 6]);
            } else {
                assert_eq!(held, [false, false, false, true, false, true]);
            }
        }
    }

    /// Issue 15 part 3: `managedFields` are held as text beside the tree (or in the object's
    /// text), and every whole object — SQLite's body, a read, a watch resumed from the history
    /// — is as it was written.
    #[test]
    fn managed_fields_are_held_apart_and_every_whole_object_keeps_them() {
        for (kind, make) in [
            ("ConfigMap", cm as fn(&str, &str) -> Value),
            ("Lease", lease),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(dir.path()).unwrap();
            let fields = json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}}]);
            let mut o = make("a", "1");
            o["metadata"]["managedFields"] = fields.clone();
            let created = s.create(o).unwrap();
            let start = created.rv() - 1;
            assert!(created.tree()["metadata"].get("managedFields").is_none());
            assert_eq!(created.whole()["metadata"]["managedFields"], fields);
            // The store's changes (status, a deletion's last state) keep them.
            let key = ObjectKey::new(kind, "default", "a");
            let status = s.update_status(&key, json!({"x": 1})).unwrap();
            assert_eq!(status.whole()["status"], json!({"x": 1}));
            assert_eq!(s.get(&key).unwrap()["metadata"]["managedFields"], fields);
            assert!(s.get_tree(&key).unwrap()["metadata"]
                .get("managedFields")
                .is_none());
            let body: String = s
                .lock()
                .conn
                .query_row("SELECT body FROM objects WHERE name = 'a'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(body, serde_json::to_string(&status.whole()).unwrap());
            assert_eq!(body, serde_json::to_string(&status).unwrap());
            let gone = s.delete(&key).unwrap();
            assert_eq!(gone.whole()["metadata"]["managedFields"], fields);
            let (past, _rx) = s.watch_from(start).unwrap();
            for e in &past {
                assert_eq!(e.object.whole()["metadata"]["managedFields"], fields);
            }
            assert_eq!(past.len(), 3);
            // Reopened: read back whole from SQLite, held as before.
            let mut o = make("b", "1");
            o["metadata"]["managedFields"] = fields.clone();
            s.create(o).unwrap();
            drop(s);
            let s = Store::open(dir.path()).unwrap();
            let b = s.get_object(&ObjectKey::new(kind, "default", "b")).unwrap();
            assert_eq!(b.is_text(), kind == "ConfigMap");
            assert!(b.tree()["metadata"].get("managedFields").is_none());
            assert_eq!(b.whole()["metadata"]["managedFields"], fields);
        }
    }

    #[test]
    fn failed_transaction_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.create(cm("a", "1")).unwrap();
        let err = s
            .transaction(vec![Op::Create(cm("b", "1")), Op::Create(cm("a", "2"))])
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)));
        assert!(s
            .get(&ObjectKey::new("ConfigMap", "default", "b"))
            .is_none());
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert!(s
            .get(&ObjectKey::new("ConfigMap", "default", "b"))
            .is_none());
    }

    #[test]
    fn generation_bumps_only_on_spec_change_and_pods_delete_gracefully() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},
            "spec":{"containers":[{"name":"c","image":"x"}]}});
        let p = s.create(pod.clone()).unwrap().tree();
        assert_eq!(p["metadata"]["generation"], 1);
        let mut changed = pod.clone();
        changed["metadata"]["labels"] = json!({"a":"b"});
        let p = s.update(changed.clone()).unwrap().tree();
        assert_eq!(p["metadata"]["generation"], 1);
        changed["spec"]["containers"][0]["image"] = json!("y");
        let p = s.update(changed).unwrap().tree();
        assert_eq!(p["metadata"]["generation"], 2);
        // Not bound to this node: nothing runs for it, it goes at once.
        let key = ObjectKey::new("Pod", "default", "p");
        s.delete(&key).unwrap();
        assert!(s.get(&key).is_none());
        // Bound: marked for the agent, which removes it once stopped.
        let mut bound = pod.clone();
        bound["spec"]["nodeName"] = json!(crate::model::node::name());
        s.create(bound).unwrap();
        let p = s.delete(&key).unwrap().tree();
        assert!(p["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(&key).is_some());
        // A replacement that does not name the node keeps the binding.
        let mut replaced = (*p).clone();
        replaced["spec"].as_object_mut().unwrap().remove("nodeName");
        let kept = s.update(replaced).unwrap().tree();
        assert_eq!(kept["spec"]["nodeName"], crate::model::node::name());
        s.remove(&key).unwrap();
        assert!(s.get(&key).is_none());
    }

    #[test]
    fn finalizers_hold_a_deletion_until_the_last_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let claim = json!({"apiVersion":"v1","kind":"PersistentVolumeClaim",
            "metadata":{"name":"data","namespace":"default","finalizers":["kubernetes.io/pvc-protection"]},
            "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}});
        s.create(claim).unwrap();
        let key = ObjectKey::new("PersistentVolumeClaim", "default", "data");
        let marked = s.delete(&key).unwrap().tree();
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        // A second deletion changes nothing; an update keeps the mark.
        let rv = s.resource_version();
        s.delete(&key).unwrap();
        assert_eq!(s.resource_version(), rv);
        let mut o = (*s.get(&key).unwrap()).clone();
        o["metadata"]["labels"] = json!({"a": "b"});
        let o = s.update(o).unwrap().tree();
        assert!(o["metadata"]["deletionTimestamp"].is_string());
        // Removing the last finalizer removes the object.
        let mut o = (*o).clone();
        o["metadata"]["finalizers"] = json!([]);
        s.update(o).unwrap();
        assert!(s.get(&key).is_none());
        // Without finalizers a deletion is immediate, and other kinds never wait.
        let mut bare = json!({"apiVersion":"v1","kind":"PersistentVolumeClaim",
            "metadata":{"name":"bare","namespace":"default"},"spec":{}});
        s.create(bare.clone()).unwrap();
        s.delete(&ObjectKey::of(&bare)).unwrap();
        assert!(s.get(&ObjectKey::of(&bare)).is_none());
        bare["kind"] = json!("ConfigMap");
        bare["metadata"]["finalizers"] = json!(["x"]);
        s.create(bare.clone()).unwrap();
        s.delete(&ObjectKey::of(&bare)).unwrap();
        assert!(s.get(&ObjectKey::of(&bare)).is_none());
    }
}
