//! The manifests folder: every `*.yaml`, `*.yml` and `*.json` file under it (multi-document)
//! is applied as one unit when it appears or its content changes, and what leaves a file — or a
//! deleted file — is deleted. Watched with `notify`: a pass runs as soon as every file written
//! is complete (closed after writing, or renamed into place); only while a file is still being
//! written (modified, not yet closed) does it wait for the folder to be quiet. Each pass
//! re-scans the whole folder, so partial writes and missed events both converge.
//!
//! Content hash, not mtime, decides whether a file changed. Dotfiles, editor temp files and
//! anything else are ignored; `X.yaml.skip` disables `X.yaml`. A file that fails to parse or
//! validate changes nothing, and the log names the file, the document and the field.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

pub mod apply;
pub mod scan;

use crate::model::store::Store;
use apply::{ApplyError, Document};
use scan::{Identity, Listing};

/// How long the folder must be quiet before acting while a file is still open for writing
/// (modified, not closed: a writer holding it open, or a write in progress). Files closed
/// after writing or renamed into place are acted on at once. An unfinished file that happens
/// to parse is corrected by the events its remaining writes raise.
const DEBOUNCE: Duration = Duration::from_millis(30);
/// A re-scan even without events, in case the watcher missed one.
const RESCAN: Duration = Duration::from_secs(10);

/// Why a file could not be read as manifests.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not valid YAML/JSON.
    #[error("document {doc}: {message}")]
    Syntax {
        /// The document number (1-based).
        doc: usize,
        /// The parser's message, with line and column.
        message: String,
    },
}

/// Parses a file's text into documents, YAML 1.1 octals read as kubectl reads them
/// (`model/yaml.rs`). Empty documents are skipped (but counted, so numbers
/// match what an editor shows). A `kind: List` document contributes its `items`.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ParseError> {
    let mut docs = Vec::new();
    let text = crate::model::yaml::as_kubectl_reads(text).map_err(|e| ParseError::Syntax {
        doc: e.doc,
        message: e.message,
    })?;
    for (i, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let index = i + 1;
        let value = Value::deserialize(de).map_err(|e| ParseError::Syntax {
            doc: index,
            message: e.to_string(),
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(items) = m.get("items").and_then(Value::as_array) {
                    for item in items {
                        docs.push(Document {
                            index,
                            object: item.clone(),
                        });
                    }
                }
            }
            object => docs.push(Document { index, object }),
        }
    }
    Ok(docs)
}

/// Whether a file name is a manifest skiff reads (before `.skip` handling).
pub fn is_manifest_name(name: &str) -> bool {
    if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
        return false;
    }
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

/// Lists the manifest files under `dir` as paths relative to it, minus those disabled by
/// a `.skip` sibling (none if the folder cannot be read). Dot-directories are not entered.
pub fn list_manifests(dir: &Path) -> Vec<PathBuf> {
    scan::scan(dir).map(|l| l.files).unwrap_or_default()
}

/// Watches and applies one folder.
pub struct ManifestsFolder {
    dir: PathBuf,
    store: Arc<Store>,
    /// Content hash of the last version of each file that was applied.
    applied: HashMap<String, String>,
    /// Content hash of the last version of each file that failed, to log each failure once.
    failed: HashMap<String, String>,
    /// Where the folder's identity is recorded (in the data directory), if anywhere.
    identity_file: Option<PathBuf>,
    /// The folder's identity when its files were last read (loaded from `identity_file`).
    identity: Option<Identity>,
    /// Why pruning is held, as last logged (so that it is logged once, not every pass).
    held: Option<String>,
    /// Where Events about files go (`None`: nowhere, only the log).
    events: Option<kube::Client>,
    /// Events of the last pass, to be recorded.
    outbox: Vec<FileEvent>,
    /// Where each file's last apply result is published (`/metrics`).
    results: FileResults,
}

/// An Event about a file: what [`ManifestsFolder::run`] records after a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct FileEvent {
    /// The file, relative to the folder.
    pub file: String,
    /// Where the Event goes: the namespace of the object the file declares first if it
    /// exists, else `kube-system`.
    pub namespace: String,
    /// What the Event is about: that object, or the Node.
    pub object: Value,
    /// `Warning` for a failure, `Normal` for an apply after one.
    pub warning: bool,
    /// `FailedApply` or `Applied`.
    pub reason: &'static str,
    /// Names the file and the error.
    pub message: String,
}

/// The last apply result of each file: succeeded, and when (Unix seconds).
pub type FileResults = Arc<std::sync::Mutex<BTreeMap<String, (bool, i64)>>>;

/// The longest Event message (Kubernetes' event recorder truncates at 1024 bytes too).
const MAX_EVENT_MESSAGE: usize = 1024;

impl ManifestsFolder {
    /// A folder applier for `dir`.
    pub fn new(dir: PathBuf, store: Arc<Store>) -> Self {
        ManifestsFolder {
            dir,
            store,
            applied: HashMap::new(),
            failed: HashMap::new(),
            identity_file: None,
            identity: None,
            held: None,
            events: None,
            outbox: Vec::new(),
            results: Default::default(),
        }
    }

    /// Publishes each file's last apply result in `results`.
    pub fn with_results(mut self, results: FileResults) -> Self {
        self.results = results;
        self
    }

    fn record_result(&self, source: &str, success: bool) {
        let now = jiff::Timestamp::now().as_second();
        let mut results = self.results.lock().expect("not poisoned");
        results.insert(source.to_string(), (success, now));
    }

    /// Records an Event through `client` for every failing pass of a file (`FailedApply`,
    /// Warning; a repeat of the same error bumps its count) and when a file applies after
    /// failing (`Applied`, Normal).
    pub fn with_events(mut self, client: kube::Client) -> Self {
        self.events = Some(client);
        self
    }

    /// The Events of the passes so far (and forgets them).
    pub fn take_events(&mut self) -> Vec<FileEvent> {
        std::mem::take(&mut self.outbox)
    }

    /// Where an Event about `source` goes and what it is about: the first object the file
    /// declares, when its namespace exists (or it is cluster-scoped: then in kube-system);
    /// otherwise the Node, in kube-system.
    fn event_target(&self, text: &str) -> (String, Value) {
        let node = serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": crate::model::node::name()},
        });
        let first = parse_documents(text)
            .ok()
            .and_then(|docs| docs.into_iter().next())
            .map(|d| d.object);
        let Some(first) = first else {
            return ("kube-system".into(), node);
        };
        let (Some(kind), Some(name)) = (first["kind"].as_str(), first["metadata"]["name"].as_str())
        else {
            return ("kube-system".into(), node);
        };
        let Some(info) = crate::model::kinds::by_kind(kind) else {
            return ("kube-system".into(), node);
        };
        let namespace = if info.namespaced {
            first["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let exists = |kind: &str, ns: &str, name: &str| {
            self.store
                .get(&crate::model::store::ObjectKey::new(kind, ns, name))
        };
        if info.namespaced && exists("Namespace", "", &namespace).is_none() {
            return ("kube-system".into(), node);
        }
        let mut object = serde_json::json!({
            "apiVersion": info.api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
        });
        if let Some(current) = exists(kind, &namespace, name) {
            object["metadata"]["uid"] = current["metadata"]["uid"].clone();
        }
        let event_ns = if info.namespaced {
            namespace
        } else {
            "kube-system".into()
        };
        (event_ns, object)
    }

    fn queue_event(&mut self, source: &str, text: &str, warning: bool, message: String) {
        let (namespace, object) = self.event_target(text);
        let mut message = message;
        if message.len() > MAX_EVENT_MESSAGE {
            let mut end = MAX_EVENT_MESSAGE - 3;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
        self.outbox.push(FileEvent {
            file: source.to_string(),
            namespace,
            object,
            warning,
            reason: if warning { "FailedApply" } else { "Applied" },
            message,
        });
    }

    /// Records the folder's identity at `path` (in the data directory), so that after a
    /// restart an empty mount point is told from the folder the store's objects came from.
    pub fn with_identity_file(mut self, path: PathBuf) -> Self {
        self.identity = Identity::load(&path);
        self.identity_file = Some(path);
        self
    }

    /// One full pass: apply new and changed files, prune sources whose file is gone.
    /// What cannot be read is never taken for gone: if the folder cannot be listed, or is
    /// empty and another directory than the one the store's objects came from (an unmounted
    /// disk, a folder moved away), nothing is pruned; nor is anything under an unreadable
    /// subfolder or entry.
    pub fn reconcile(&mut self) {
        let listing = match scan::scan(&self.dir) {
            Ok(l) => l,
            Err(e) => {
                self.hold(format!(
                    "the manifests folder {} cannot be read ({e}): everything it declared is kept until it can be",
                    self.dir.display()
                ));
                return;
            }
        };
        let files = &listing.files;
        let mut pending: BTreeMap<String, (String, String)> = BTreeMap::new();
        for rel in files {
            let source = rel.to_string_lossy().to_string();
            let path = self.dir.join(rel);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "cannot read manifest: {e}");
                    continue;
                }
            };
            let hash = hex::encode(Sha256::digest(&bytes));
            if self.applied.get(&source) == Some(&hash) {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes).to_string();
            pending.insert(source, (hash, text));
        }
        // Apply until no progress: a file may need a namespace another file creates.
        loop {
            let mut progressed = false;
            let mut waiting_for_namespace = BTreeMap::new();
            for (source, (hash, text)) in std::mem::take(&mut pending) {
                match self.apply_file(&source, &text) {
                    Ok(()) => {
                        if self.failed.remove(&source).is_some() {
                            self.queue_event(
                                &source,
                                &text,
                                false,
                                format!("manifest file {source} applied (it had failed before)"),
                            );
                        }
                        self.record_result(&source, true);
                        self.applied.insert(source, hash);
                        progressed = true;
                    }
                    Err(FileError::Apply(errors))
                        if errors
                            .iter()
                            .all(|e| matches!(e, ApplyError::MissingNamespace { .. })) =>
                    {
                        waiting_for_namespace.insert(source, (hash, text, errors));
                    }
                    Err(e) => self.report(&source, hash, &text, &e),
                }
            }
            if !progressed || waiting_for_namespace.is_empty() {
                for (source, (hash, text, errors)) in waiting_for_namespace {
                    self.report(&source, hash, &text, &FileError::Apply(errors));
                }
                break;
            }
            pending = waiting_for_namespace
                .into_iter()
                .map(|(s, (h, t, _))| (s, (h, t)))
                .collect();
        }
        // Prune what belongs to files that are gone (or disabled with .skip).
        let present: std::collections::HashSet<String> = files
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        // The HelmChart reconciler's sources are no files.
        let sources: std::collections::HashSet<String> = apply::sources_in_store(&self.store)
            .into_iter()
            .filter(|s| !s.starts_with(crate::model::declared::HELMCHART_SOURCE_PREFIX))
            .collect();
        if let Some(reason) = self.prune_hold(&listing, &sources) {
            self.hold(reason);
            return;
        }
        if let Some(reason) = self.held.take() {
            tracing::info!(dir = %self.dir.display(), "the manifests folder can be read again (was: {reason})");
        }
        for u in &listing.unreadable {
            tracing::warn!(path = %self.dir.join(u).display(), "cannot read this part of the manifests folder: what its files declared is kept");
        }
        let mut gone: Vec<String> = sources
            .into_iter()
            .filter(|s| !present.contains(s) && !listing.hides(s))
            .collect();
        gone.sort();
        for source in gone {
            match apply::apply_source(&self.store, &source, &[]) {
                Ok(done) => {
                    self.applied.remove(&source);
                    if !done.deleted.is_empty() {
                        tracing::info!(file = %source, deleted = ?keys(&done.deleted), "manifest removed: deleted its objects");
                    }
                }
                Err(errors) => {
                    tracing::error!(file = %source, "pruning failed: {}", FileError::Apply(errors))
                }
            }
        }
        self.applied.retain(|s, _| present.contains(s));
        self.failed.retain(|s, _| present.contains(s));
        self.results
            .lock()
            .expect("not poisoned")
            .retain(|s, _| present.contains(s));
    }

    /// Why this pass must not prune, if it must not: the folder lists no file while the store
    /// holds objects from it, and it is not the directory they came from (or that is not
    /// known). Otherwise the folder's identity is recorded as the one its objects come from.
    fn prune_hold(
        &mut self,
        listing: &Listing,
        sources: &std::collections::HashSet<String>,
    ) -> Option<String> {
        let current = match Identity::of(&self.dir) {
            Ok(i) => i,
            Err(e) => {
                return Some(format!(
                    "the manifests folder {} cannot be read ({e}): everything it declared is kept until it can be",
                    self.dir.display()
                ))
            }
        };
        if Some(current) == self.identity {
            return None;
        }
        if listing.files.is_empty() && !sources.is_empty() {
            let before = self
                .identity
                .map_or("not recorded".to_string(), |i| i.to_string());
            return Some(format!(
                "the manifests folder {} is empty and is not the directory its objects came from \
                 (now {current}; before: {before}) — a disk not mounted yet, or the folder moved away? \
                 Nothing is pruned; to delete objects, delete their files rather than the folder",
                self.dir.display()
            ));
        }
        if let Some(path) = &self.identity_file {
            if let Err(e) = current.save(path) {
                tracing::warn!(file = %path.display(), "cannot record the manifests folder's identity: {e}");
            }
        }
        self.identity = Some(current);
        None
    }

    /// Logs why pruning is held, once per reason.
    fn hold(&mut self, reason: String) {
        if self.held.as_ref() != Some(&reason) {
            tracing::warn!("{reason}");
            self.held = Some(reason);
        }
    }

    /// A file that failed: logged once per content version; an Event at every pass (a repeat
    /// of the same error counts up on one Event).
    fn report(&mut self, source: &str, hash: String, text: &str, error: &FileError) {
        if self.failed.get(source) != Some(&hash) {
            tracing::error!(file = %source, "manifest not applied, nothing changed: {error}");
            self.failed.insert(source.to_string(), hash);
        }
        self.record_result(source, false);
        self.queue_event(
            source,
            text,
            true,
            format!("manifest file {source} not applied, nothing changed: {error}"),
        );
    }

    fn apply_file(&self, source: &str, text: &str) -> Result<(), FileError> {
        let docs = parse_documents(text)?;
        // A file with no objects at all is most likely one being written (truncated, not yet
        // filled) — pruning everything it declared would be the wrong guess. kubectl refuses
        // an empty apply too; deleting the file is how its objects are deleted.
        if docs.is_empty() && apply::sources_in_store(&self.store).contains(source) {
            return Err(FileError::NoObjects);
        }
        let done = apply::apply_source(&self.store, source, &docs).map_err(FileError::Apply)?;
        if !(done.created.is_empty() && done.updated.is_empty() && done.deleted.is_empty()) {
            tracing::info!(
                file = %source,
                created = ?keys(&done.created),
                updated = ?keys(&done.updated),
                deleted = ?keys(&done.deleted),
                "manifest applied"
            );
        }
        Ok(())
    }

    /// Runs until `shutdown` flips: an initial pass, then a pass after every quiet burst of
    /// file events and every [`RESCAN`]. The watch is set again whenever the folder is
    /// another directory than the one watched (created late, moved back, a disk mounted on it).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::error!(dir = %self.dir.display(), "cannot create the manifests folder: {e}");
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watched = None;
        let mut _watcher = None;
        tracing::info!(dir = %self.dir.display(), "watching the manifests folder");
        loop {
            let now = Identity::of(&self.dir).ok();
            if now.is_some() && now != watched {
                _watcher = watch_folder(&self.dir, tx.clone());
                watched = now;
            }
            self.reconcile();
            let events = self.take_events();
            if let Some(client) = self.events.clone() {
                for e in events {
                    use crate::client::events::{record_for_file, Type};
                    let ty = if e.warning {
                        Type::Warning
                    } else {
                        Type::Normal
                    };
                    record_for_file(
                        &client,
                        &e.file,
                        &e.namespace,
                        &e.object,
                        ty,
                        e.reason,
                        &e.message,
                    )
                    .await;
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(RESCAN) => {}
                Some(first) = rx.recv() => {
                    // Act once no file is left half-written; while one is, wait for the
                    // folder to be quiet for a moment.
                    let mut writing = std::collections::HashSet::new();
                    first.apply(&mut writing);
                    loop {
                        while let Ok(e) = rx.try_recv() {
                            e.apply(&mut writing);
                        }
                        if writing.is_empty() {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(DEBOUNCE) => break,
                            Some(e) = rx.recv() => e.apply(&mut writing),
                        }
                    }
                }
            }
        }
    }
}

/// What a file event says about the folder.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// A file is being written (created or modified, not yet closed): wait for it.
    Writing(PathBuf),
    /// A file is complete (closed after writing, `IN_CLOSE_WRITE`) or gone (removed, renamed
    /// away or into place — `IN_MOVED_TO` names a complete file).
    Done(Vec<PathBuf>),
    /// Something else changed: metadata, a directory; or the watcher lost events. Act on it.
    Other,
}

impl Change {
    /// What `event` means for the folder; `None` for what changes nothing (a file opened or
    /// read — the folder's own reads among them).
    fn of(event: &notify::Event) -> Option<Change> {
        use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
        let path = || event.paths.first().cloned().unwrap_or_default();
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(_)) => Some(Change::Done(event.paths.clone())),
            EventKind::Access(_) => None,
            EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => {
                Some(Change::Writing(path()))
            }
            _ => Some(Change::Other),
        }
    }

    /// Tracks the files still being written.
    fn apply(self, writing: &mut std::collections::HashSet<PathBuf>) {
        match self {
            Change::Writing(p) => {
                writing.insert(p);
            }
            Change::Done(paths) => {
                for p in &paths {
                    writing.remove(p);
                }
            }
            Change::Other => {}
        }
    }
}

/// A recursive watch of `dir` sending each [`Change`]; `None` (logged) if it cannot be set —
/// the periodic re-scan still converges.
fn watch_folder(
    dir: &Path,
    tx: mpsc::UnboundedSender<Change>,
) -> Option<notify::RecommendedWatcher> {
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let change = match res {
            Ok(e) => Change::of(&e),
            Err(_) => Some(Change::Other),
        };
        if let Some(c) = change {
            let _ = tx.send(c);
        }
    });
    match watcher {
        Ok(mut w) => match w.watch(dir, notify::RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::error!(dir = %dir.display(), "cannot watch the manifests folder (re-scanning every {RESCAN:?}): {e}");
                None
            }
        },
        Err(e) => {
            tracing::error!("cannot create a file watcher: {e}");
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Apply(Vec<ApplyError>),
    #[error("the file declares no objects (still being written, or emptied); what it declared before stays — delete the file to delete its objects")]
    NoObjects,
}

fn keys(keys: &[crate::model::store::ObjectKey]) -> Vec<String> {
    keys.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The changes the watcher sends within `wait`.
    fn changes(rx: &mut mpsc::UnboundedReceiver<Change>, wait: Duration) -> Vec<Change> {
        let deadline = std::time::Instant::now() + wait;
        let mut got = Vec::new();
        while std::time::Instant::now() < deadline {
            match rx.try_recv() {
                Ok(c) => got.push(c),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        got
    }

    /// A file open for writing is waited for, a closed or renamed one is complete at once, and
    /// reading the folder's files (as every pass does) changes nothing.
    #[test]
    fn files_are_complete_when_closed_or_moved_and_reads_are_not_changes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watcher = watch_folder(dir.path(), tx).expect("a watch");
        let path = dir.path().join("a.yaml");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"a: 1\n").unwrap();
        let mut writing = std::collections::HashSet::new();
        for c in changes(&mut rx, Duration::from_millis(200)) {
            c.apply(&mut writing);
        }
        assert!(writing.contains(&path), "{writing:?}");
        drop(f);
        let got = changes(&mut rx, Duration::from_millis(200));
        assert_eq!(got, [Change::Done(vec![path.clone()])]);
        for c in got {
            c.apply(&mut writing);
        }
        assert!(writing.is_empty(), "{writing:?}");

        std::fs::read(&path).unwrap();
        assert_eq!(changes(&mut rx, Duration::from_millis(200)), []);

        // Written elsewhere, renamed into place.
        let outside = tempfile::tempdir().unwrap();
        let tmp = outside.path().join("b.yaml");
        std::fs::write(&tmp, "b: 1\n").unwrap();
        std::fs::rename(&tmp, dir.path().join("b.yaml")).unwrap();
        let got = changes(&mut rx, Duration::from_millis(200));
        assert_eq!(got, [Change::Done(vec![dir.path().join("b.yaml")])]);
    }

    #[test]
    fn parses_multi_document_yaml_and_json_and_lists() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 3);
        let docs = parse_documents(r#"{"kind":"List","items":[{"a":1},{"b":2}]}"#).unwrap();
        assert_eq!(docs.len(), 2);
        let e = parse_documents("a: 1\n---\nb: [\n").unwrap_err();
        assert!(e.to_string().starts_with("document 2"), "{e}");
    }

    #[test]
    fn failing_files_become_events_in_the_objects_namespace_or_kube_system() {
        let d = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(d.path()).unwrap());
        crate::model::builtin::ensure(&store).unwrap();
        let dir = d.path().join("manifests");
        std::fs::create_dir_all(&dir).unwrap();
        let mut folder = ManifestsFolder::new(dir.clone(), store.clone());
        let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: kube-node-lease}\ndata: {k: 1}\n";
        std::fs::write(dir.join("bad.yaml"), bad).unwrap();
        std::fs::write(dir.join("broken.yaml"), "a: [\n").unwrap();
        folder.reconcile();
        folder.reconcile();
        let events = folder.take_events();
        assert_eq!(events.len(), 4, "{events:?}");
        let bad_events: Vec<&FileEvent> = events.iter().filter(|e| e.file == "bad.yaml").collect();
        assert_eq!(bad_events.len(), 2);
        // The same error twice: the same Event (its count goes up).
        assert_eq!(bad_events[0], bad_events[1]);
        let e = bad_events[0];
        assert!(e.warning && e.reason == "FailedApply");
        assert_eq!(e.namespace, "kube-node-lease");
        assert_eq!(e.object["kind"], "ConfigMap");
        assert!(
            e.message.contains("bad.yaml") && e.message.contains("data.k"),
            "{}",
            e.message
        );
        let broken = events.iter().find(|e| e.file == "broken.yaml").unwrap();
        assert_eq!(broken.namespace, "kube-system");
        assert_eq!(broken.object["kind"], "Node");
        assert!(broken.message.contains("document 1"), "{}", broken.message);
        // Fixed: one Normal event, then nothing more.
        std::fs::write(dir.join("bad.yaml"), bad.replace("k: 1", "k: '1'")).unwrap();
        std::fs::remove_file(dir.join("broken.yaml")).unwrap();
        folder.reconcile();
        folder.reconcile();
        let events = folder.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(!events[0].warning && events[0].reason == "Applied");
        assert!(events[0].object["metadata"]["uid"].is_string());
    }

    #[test]
    fn a_file_emptied_while_being_written_prunes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(d.path()).unwrap());
        crate::model::builtin::ensure(&store).unwrap();
        let folder = ManifestsFolder::new(d.path().join("manifests"), store.clone());
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\ndata: {k: v}\n";
        folder.apply_file("app.yaml", cm).unwrap();
        let key = crate::model::store::ObjectKey::new("ConfigMap", "default", "kept");
        for partial in ["", "\n", "# my app\n"] {
            let e = folder.apply_file("app.yaml", partial).unwrap_err();
            assert!(matches!(e, FileError::NoObjects), "{e}");
            assert!(store.get(&key).is_some(), "pruned by {partial:?}");
        }
        // A new empty file is nothing to do; a complete file applies.
        folder.apply_file("new.yaml", "").unwrap();
        folder
            .apply_file("app.yaml", &cm.replace("k: v", "k: w"))
            .unwrap();
        assert_eq!(store.get(&key).unwrap()["data"]["k"], "w");
    }

    fn configmap(name: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n")
    }

    fn has(store: &Store, name: &str) -> bool {
        store
            .get(&crate::model::store::ObjectKey::new(
                "ConfigMap",
                "default",
                name,
            ))
            .is_some()
    }

    /// A store, a folder with `a.yaml` and `sub/b.yaml` applied, and its identity file.
    fn applied_folder(d: &Path) -> (Arc<Store>, PathBuf, PathBuf) {
        let store = Arc::new(Store::open(d).unwrap());
        crate::model::builtin::ensure(&store).unwrap();
        let dir = d.join("manifests");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.yaml"), configmap("a")).unwrap();
        std::fs::write(dir.join("sub/b.yaml"), configmap("b")).unwrap();
        let id = d.join("manifests-folder.id");
        let mut folder =
            ManifestsFolder::new(dir.clone(), store.clone()).with_identity_file(id.clone());
        folder.reconcile();
        assert!(has(&store, "a") && has(&store, "b"));
        (store, dir, id)
    }

    #[test]
    fn a_folder_moved_away_or_replaced_by_an_empty_one_prunes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (store, dir, id) = applied_folder(d.path());
        let mut folder =
            ManifestsFolder::new(dir.clone(), store.clone()).with_identity_file(id.clone());
        // Moved away: missing.
        std::fs::rename(&dir, d.path().join("moved")).unwrap();
        folder.reconcile();
        assert!(
            has(&store, "a") && has(&store, "b"),
            "pruned a missing folder"
        );
        // An empty directory in its place (an unmounted disk's mount point) — also after a
        // restart, which reads the recorded identity.
        std::fs::create_dir(&dir).unwrap();
        folder.reconcile();
        let mut restarted =
            ManifestsFolder::new(dir.clone(), store.clone()).with_identity_file(id.clone());
        restarted.reconcile();
        assert!(
            has(&store, "a") && has(&store, "b"),
            "pruned an empty mount point"
        );
        // The folder back: nothing lost; a file really deleted is pruned.
        std::fs::remove_dir(&dir).unwrap();
        std::fs::rename(d.path().join("moved"), &dir).unwrap();
        restarted.reconcile();
        assert!(has(&store, "a") && has(&store, "b"));
        std::fs::remove_file(dir.join("a.yaml")).unwrap();
        restarted.reconcile();
        assert!(!has(&store, "a") && has(&store, "b"));
        // Every file deleted from the same folder: really gone.
        std::fs::remove_file(dir.join("sub/b.yaml")).unwrap();
        restarted.reconcile();
        assert!(!has(&store, "b"), "the last file deleted was not pruned");
    }

    #[test]
    fn a_new_folder_with_files_is_adopted_and_what_it_lacks_pruned() {
        let d = tempfile::tempdir().unwrap();
        let (store, dir, id) = applied_folder(d.path());
        std::fs::rename(&dir, d.path().join("old")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), configmap("a")).unwrap();
        let mut folder = ManifestsFolder::new(dir.clone(), store.clone()).with_identity_file(id);
        folder.reconcile();
        assert!(has(&store, "a") && !has(&store, "b"));
    }

    #[test]
    fn what_is_under_an_unreadable_path_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let (store, dir, id) = applied_folder(d.path());
        // `sub` becomes a symlink to a disk that is not mounted.
        std::fs::rename(dir.join("sub"), d.path().join("sub-elsewhere")).unwrap();
        std::os::unix::fs::symlink(d.path().join("not-mounted"), dir.join("sub")).unwrap();
        let mut folder = ManifestsFolder::new(dir.clone(), store.clone()).with_identity_file(id);
        folder.reconcile();
        assert!(has(&store, "b"), "pruned what an unreadable path declared");
        let listing = scan::scan(&dir).unwrap();
        assert!(listing.hides("sub/b.yaml") && !listing.hides("a.yaml"));
        std::fs::remove_file(dir.join("sub")).unwrap();
        folder.reconcile();
        assert!(!has(&store, "b"), "a subfolder really gone was not pruned");
    }

    #[test]
    fn lists_manifests_skipping_dotfiles_temp_files_and_skipped() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "a.yaml",
            "b.yml",
            "c.json",
            ".hidden.yaml",
            "d.yaml~",
            "e.txt",
            "f.yaml",
            "f.yaml.skip",
            ".#g.yaml",
        ] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/h.yaml"), "").unwrap();
        let got: Vec<String> = list_manifests(d.path())
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        assert_eq!(got, vec!["a.yaml", "b.yml", "c.json", "sub/h.yaml"]);
    }
}
