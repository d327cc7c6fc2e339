//! The chart cache under the data directory, content-addressed:
//! `<data-dir>/chart-cache/sha256/<hex>.tgz` (0600, written to a temp file and renamed, so a
//! reader never sees half an archive), and `<data-dir>/chart-cache/resolved.json`, what each
//! remote source resolved to last — (repository URL, chart, version asked) or an OCI
//! reference → (digest, version) — so that a daemon restarted while a repository is down
//! still installs a chart it fetched before.
//!
//! Bounded by size, not by references (the cache does not know which HelmCharts exist):
//! past [`MAX_CACHE_BYTES`] the archives used longest ago (modification time, touched on
//! each use) are removed, and what resolved to them forgotten.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The cache's size bound.
pub(crate) const MAX_CACHE_BYTES: u64 = 1 << 30;

/// What a source resolved to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Resolved {
    /// `sha256:<hex>` of the archive.
    pub digest: String,
    /// The chart version picked.
    pub version: String,
}

#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// Serializes writers of `resolved.json` in this process.
    lock: Mutex<()>,
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Cache {
    /// The cache in `dir` (`<data-dir>/chart-cache`), created 0700 if missing.
    pub(crate) fn open(dir: &Path) -> Result<Cache, String> {
        let blobs = dir.join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
        for d in [dir, blobs.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            max_bytes: MAX_CACHE_BYTES,
            lock: Mutex::new(()),
        })
    }

    #[cfg(test)]
    fn with_max_bytes(mut self, max: u64) -> Cache {
        self.max_bytes = max;
        self
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| self.dir.join("sha256").join(format!("{hex}.tgz")))
    }

    /// The archive with `digest`, if the cache has it intact (a damaged one is removed).
    pub(crate) fn get(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = std::fs::read(&path).ok()?;
        if digest_of(&bytes) != digest {
            tracing::warn!(path = %path.display(), "a cached chart does not match its digest: removed");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Last use, for pruning.
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        Some(bytes)
    }

    /// Stores an archive; its digest.
    pub(crate) fn put(&self, bytes: &[u8]) -> Result<String, String> {
        let digest = digest_of(bytes);
        let path = self.blob_path(&digest).expect("a sha256 digest");
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        self.prune(&digest);
        Ok(digest)
    }

    fn resolved_path(&self) -> PathBuf {
        self.dir.join("resolved.json")
    }

    fn read_resolved(&self) -> BTreeMap<String, Resolved> {
        std::fs::read(self.resolved_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// What `key` resolved to last, if its archive is still here.
    pub(crate) fn recall(&self, key: &str) -> Option<(Resolved, Vec<u8>)> {
        let resolved = self.read_resolved().remove(key)?;
        let bytes = self.get(&resolved.digest)?;
        Some((resolved, bytes))
    }

    /// Remembers what `key` resolved to.
    pub(crate) fn remember(&self, key: &str, resolved: Resolved) -> Result<(), String> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| "the chart cache's lock".to_string())?;
        let mut all = self.read_resolved();
        if all.get(key) == Some(&resolved) {
            return Ok(());
        }
        all.insert(key.to_string(), resolved);
        let text = serde_json::to_vec_pretty(&all).map_err(|e| e.to_string())?;
        write_atomically(&self.resolved_path(), &text)
    }

    /// Removes the archives used longest ago until the cache is within its bound (never
    /// `keep`), and forgets what resolved to them.
    fn prune(&self, keep: &str) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("sha256")) else {
            return;
        };
        let mut blobs: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let name = e.file_name().to_string_lossy().into_owned();
                (meta.is_file() && name.ends_with(".tgz")).then(|| {
                    (
                        meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                        meta.len(),
                        e.path(),
                    )
                })
            })
            .collect();
        let mut total: u64 = blobs.iter().map(|(_, size, _)| size).sum();
        if total <= self.max_bytes {
            return;
        }
        blobs.sort();
        let keep_path = self.blob_path(keep);
        let mut removed = Vec::new();
        for (_, size, path) in blobs {
            if total <= self.max_bytes {
                break;
            }
            if Some(&path) == keep_path.as_ref() {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
                removed.push(path);
            }
        }
        if removed.is_empty() {
            return;
        }
        tracing::info!(
            removed = removed.len(),
            "pruned the chart cache to its size bound"
        );
        if let Ok(_guard) = self.lock.lock() {
            let mut all = self.read_resolved();
            all.retain(|_, r| self.blob_path(&r.digest).is_some_and(|p| p.exists()));
            if let Ok(text) = serde_json::to_vec_pretty(&all) {
                let _ = write_atomically(&self.resolved_path(), &text);
            }
        }
    }
}

/// Writes `path` as a whole: a 0600 temp file beside it, synced, renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().expect("a file in a folder");
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand_suffix()));
    let result = (|| {
        let mut f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| format!("writing {}: {e}", path.display()))
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:x}{:x}", N.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_digest_atomically_and_privately() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("charts")).unwrap();
        let digest = cache.put(b"chart bytes").unwrap();
        assert_eq!(digest, digest_of(b"chart bytes"));
        let path = cache.blob_path(&digest).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(cache.get(&digest).unwrap(), b"chart bytes");
        // No temp file left behind.
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![format!("{}.tgz", &digest[7..])]);
        // A damaged archive is not served.
        std::fs::write(&path, b"tampered").unwrap();
        assert!(cache.get(&digest).is_none());
        assert!(!path.exists());
        assert!(cache.get("sha256:../../etc/passwd").is_none());
    }

    #[test]
    fn remembers_resolutions_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let digest = {
            let cache = Cache::open(dir.path()).unwrap();
            let digest = cache.put(b"v1").unwrap();
            cache
                .remember(
                    "k",
                    Resolved {
                        digest: digest.clone(),
                        version: "1.0.0".into(),
                    },
                )
                .unwrap();
            digest
        };
        let cache = Cache::open(dir.path()).unwrap();
        let (resolved, bytes) = cache.recall("k").unwrap();
        assert_eq!(
            (resolved.digest, resolved.version, bytes),
            (digest, "1.0.0".to_string(), b"v1".to_vec())
        );
        assert!(cache.recall("other").is_none());
    }

    #[test]
    fn prunes_least_recently_used_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap().with_max_bytes(2500);
        let a = cache.put(&[1u8; 1000]).unwrap();
        let b = cache.put(&[2u8; 1000]).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for d in [&a, &b] {
            let f = std::fs::File::options()
                .write(true)
                .open(cache.blob_path(d).unwrap())
                .unwrap();
            f.set_modified(old).unwrap();
        }
        cache
            .remember(
                "a",
                Resolved {
                    digest: a.clone(),
                    version: "1".into(),
                },
            )
            .unwrap();
        // `b` used since: `a` is the oldest.
        cache.get(&b).unwrap();
        let c = cache.put(&[3u8; 1000]).unwrap();
        assert!(cache.get(&a).is_none(), "the least recently used is pruned");
        assert!(cache.get(&b).is_some() && cache.get(&c).is_some());
        assert!(cache.recall("a").is_none());
    }
}
