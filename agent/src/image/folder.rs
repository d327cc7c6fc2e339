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
    let mut done: HashMap<String, String> = crate::runtime::read_json(&record).unwrap_or_default();
    let mut failed: HashMap<String, String> = HashMap::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::NonRecursive).map(|()| w))
    .map_err(|e| tracing::warn!(dir = %dir.display(), "cannot watch the images folder (re-scanning every {RESCAN:?}): {e}"))
    .ok();
    let mut sizes: HashMap<String, String> = HashMap::new();
    // Files present at start are taken as complete: import them without waiting.
    let mut first = true;
    loop {
        // Look at every file; import those whose version is new and stable since the last look.
        let mut unstable = false;
        let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        for path in entries {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if name.starts_with('.')
                || name.ends_with('~')
                || name.ends_with(".tmp")
                || name.ends_with(".part")
            {
                continue;
            }
            let Some(v) = version(&path) else { continue };
            if done.get(&name) == Some(&v) || failed.get(&name) == Some(&v) {
                continue;
            }
            if !first && sizes.get(&name) != Some(&v) {
                sizes.insert(name, v);
                unstable = true;
                continue;
            }
            let store = images.clone();
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
                    on_import.notify_one();
                    done.insert(name, v);
                    if let Err(e) = crate::runtime::write_json_durable(&record, &done) {
                        tracing::warn!("cannot record imported archives: {e}");
                    }
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), "image archive not imported: {e}");
                    failed.insert(name, v);
                }
            }
        }
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
