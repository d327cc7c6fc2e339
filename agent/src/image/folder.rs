//! The images folder (default `<data-dir>/images`): `docker save` and OCI archives dropped here
//! are imported — at start and when they appear — like k3s's air-gap images folder. A file is
//! imported once per version (size, mtime, inode), remembered in `<data-dir>/run/images-folder.json`;
//! a file still being written (its size changes between two looks) waits for the next look.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use tokio::sync::{mpsc, watch};

use super::ImageStore;

const SETTLE: Duration = Duration::from_millis(300);
const RESCAN: Duration = Duration::from_secs(10);

fn version(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| {
        format!(
            "{}:{}:{}",
            m.len(),
            m.mtime_nsec() + m.mtime() * 1_000_000_000,
            m.ino()
        )
    })
}

/// Imports new archives from `dir` until `shutdown` flips. `on_import` is notified after every
/// import (the agent then retries pods waiting for an image); `first_pass` is sent once the
/// archives present at start are imported.
pub async fn run(
    images: Arc<ImageStore>,
    dir: PathBuf,
    record: PathBuf,
    on_import: Arc<tokio::sync::Notify>,
    first_pass: tokio::sync::oneshot::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut first_pass = Some(first_pass);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), "cannot create the images folder: {e}");
    }
    let mut folder = Folder {
        done: crate::runtime::read_json(&record).unwrap_or_default(),
        images,
        record,
        on_import,
        failed: HashMap::new(),
        sizes: HashMap::new(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::NonRecursive).map(|()| w))
    .map_err(|e| tracing::warn!(dir = %dir.display(), "cannot watch the images folder (re-scanning every {RESCAN:?}): {e}"))
    .ok();
    // Files present at start are taken as complete: import them without waiting.
    let mut first = true;
    loop {
        let unstable = folder.scan(&dir, first).await;
        first = false;
        if let Some(tx) = first_pass.take() {
            let _ = tx.send(());
        }
        let wait = if unstable { SETTLE } else { RESCAN };
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
            Some(()) = rx.recv() => {
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
            }
        }
    }
}

/// What the folder's loop knows of its files.
struct Folder {
    images: Arc<ImageStore>,
    /// Where `done` is recorded.
    record: PathBuf,
    on_import: Arc<tokio::sync::Notify>,
    /// Imported versions by file name.
    done: HashMap<String, String>,
    /// Versions that failed to import, by file name.
    failed: HashMap<String, String>,
    /// Versions seen at the last look, by file name.
    sizes: HashMap<String, String>,
}

impl Folder {
    /// Looks at every file; imports those whose version is new and stable since the last look
    /// (or, at the `first` look, every new one). Whether a file is still changing.
    async fn scan(&mut self, dir: &Path, first: bool) -> bool {
        let mut unstable = false;
        let entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        for path in entries {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if ignored(&name) {
                continue;
            }
            let Some(v) = version(&path) else { continue };
            if self.done.get(&name) == Some(&v) || self.failed.get(&name) == Some(&v) {
                continue;
            }
            if !first && self.sizes.get(&name) != Some(&v) {
                self.sizes.insert(name, v);
                unstable = true;
                continue;
            }
            self.import(path, name, v).await;
        }
        unstable
    }

    /// Imports one archive and records the outcome.
    async fn import(&mut self, path: PathBuf, name: String, v: String) {
        let store = self.images.clone();
        let p = path.clone();
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || store.import_archive(&p))
            .await
            .expect("import does not panic")
        {
            Ok(imported) => {
                for image in &imported {
                    tracing::info!(file = %path.display(), id = %image.id, names = ?image.names, took = ?started.elapsed(), "image imported");
                }
                self.on_import.notify_one();
                self.done.insert(name, v);
                if let Err(e) = crate::runtime::write_json_durable(&self.record, &self.done) {
                    tracing::warn!("cannot record imported archives: {e}");
                }
            }
            Err(e) => {
                tracing::error!(file = %path.display(), "image archive not imported: {e}");
                self.failed.insert(name, v);
            }
        }
    }
}

/// Hidden, backup and partial files are not archives to import.
fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
}
