//! Removing images: `skiff image rm`, `skiff image prune`, and kubelet-style garbage collection
//! when the disk holding the store fills up (above 85% used, unused images are removed, least
//! recently pulled first, until at most 80% is used).
//!
//! An image is in use while a container of this data directory was made from it (its
//! `containers/<id>/meta.json` names the image id) or a pod asked for it within the last ten
//! minutes (a container waiting to restart). Such images are never removed. Layers and blobs
//! are removed once no remaining image needs them. The work happens under the store's `gc.lock`
//! (exclusive), which imports and pulls hold shared from the moment they look at which layers
//! exist until they have recorded their image, so nothing they rely on disappears midway.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::fcntl::FlockArg;

use super::archive::Document;
use super::digest::{is_sha256_hex, sha256_hex};
use super::error::ImageError;
use super::reference::Reference;
use super::store::{ImageRecord, ImageStore};

/// Disk use (percent) above which garbage collection starts, and the level it brings use down
/// to: kubelet's `imageGCHighThresholdPercent` and `imageGCLowThresholdPercent`. The environment
/// variables `SKIFF_IMAGE_GC_HIGH_PERCENT` / `SKIFF_IMAGE_GC_LOW_PERCENT` override them.
pub const HIGH_PERCENT: u8 = 85;
/// See [`HIGH_PERCENT`].
pub const LOW_PERCENT: u8 = 80;
/// How often the daemon looks at disk use.
const INTERVAL: Duration = Duration::from_secs(60);

/// What a removal did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Image ids removed (records deleted).
    pub images: Vec<String>,
    /// Names removed from images that stay (untagged).
    pub untagged: Vec<String>,
    /// Unpacked layers removed.
    pub layers: usize,
    /// Blobs removed.
    pub blobs: usize,
}

/// The daemon's collector: every minute, if the store's filesystem is above the high
/// threshold, removes unused images until it is at or below the low one. `recently_wanted`
/// gives the images pods asked for recently (they count as in use).
pub async fn run(store: ImageStore, recently_wanted: impl Fn() -> Vec<String>) {
    let high = percent_from_env("SKIFF_IMAGE_GC_HIGH_PERCENT", HIGH_PERCENT);
    let low = percent_from_env("SKIFF_IMAGE_GC_LOW_PERCENT", LOW_PERCENT).min(high);
    let interval = std::env::var("SKIFF_IMAGE_GC_INTERVAL_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(INTERVAL);
    loop {
        let s = store.clone();
        let recent = recently_wanted();
        match tokio::task::spawn_blocking(move || collect_garbage(&s, high, low, &recent)).await {
            Ok(Ok(removed)) if !removed.images.is_empty() => {
                tracing::info!(images = ?removed.images, layers = removed.layers, blobs = removed.blobs,
                    "image garbage collection: disk use was above {high}%")
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "image garbage collection failed"),
            Err(error) => tracing::warn!(%error, "image garbage collection panicked"),
        }
        tokio::time::sleep(interval).await;
    }
}

fn percent_from_env(name: &str, default: u8) -> u8 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|v| *v <= 100)
        .unwrap_or(default)
}

/// Image ids in use: named by a container of this data directory, or in `recently_wanted`
/// (what pods of this daemon asked for recently: [`super::Puller::recently_wanted`]).
pub fn images_in_use(store: &ImageStore, recently_wanted: &[String]) -> HashSet<String> {
    let mut used: HashSet<String> = recently_wanted.iter().cloned().collect();
    let containers = store
        .root()
        .parent()
        .map(|d| d.join("containers"))
        .unwrap_or_default();
    if let Ok(entries) = fs::read_dir(containers) {
        for entry in entries.flatten() {
            if let Some(meta) = crate::runtime::read_json::<crate::runtime::ContainerMeta>(
                &entry.path().join("meta.json"),
            ) {
                used.insert(meta.image_id);
            }
        }
    }
    used
}

/// The filesystem holding the store: percent used, as `df` counts it.
pub fn disk_use_percent(store: &ImageStore) -> Result<f64, ImageError> {
    let st = nix::sys::statvfs::statvfs(store.root())
        .map_err(|e| ImageError::io("statvfs", store.root(), e.into()))?;
    let used = (st.blocks() - st.blocks_free()) as f64;
    let avail = st.blocks_available() as f64;
    Ok(if used + avail > 0.0 {
        100.0 * used / (used + avail)
    } else {
        0.0
    })
}

/// If disk use is above `high` percent, removes unused images (least recently pulled first)
/// until it is at most `low` percent or no unused image is left.
pub fn collect_garbage(
    store: &ImageStore,
    high: u8,
    low: u8,
    recently_wanted: &[String],
) -> Result<Removed, ImageError> {
    let mut removed = Removed::default();
    if disk_use_percent(store)? <= f64::from(high) {
        return Ok(removed);
    }
    let in_use = images_in_use(store, recently_wanted);
    let _gc = store.lock_file("gc.lock", FlockArg::LockExclusive)?;
    let mut candidates: Vec<(SystemTime, String)> = {
        let _lock = store.lock(FlockArg::LockShared)?;
        store
            .read_records()?
            .keys()
            .filter(|id| !in_use.contains(*id))
            .map(|id| (record_time(store, id), id.clone()))
            .collect()
    };
    candidates.sort();
    for (_, id) in candidates {
        if disk_use_percent(store)? <= f64::from(low) {
            break;
        }
        remove_records(store, std::slice::from_ref(&id))?;
        removed.images.push(id);
        let (layers, blobs) = remove_unreferenced(store)?;
        removed.layers += layers;
        removed.blobs += blobs;
    }
    Ok(removed)
}

/// Removes every image no container uses (`skiff image prune`).
pub fn prune(store: &ImageStore) -> Result<Removed, ImageError> {
    let in_use = images_in_use(store, &[]);
    let _gc = store.lock_file("gc.lock", FlockArg::LockExclusive)?;
    let unused: Vec<String> = {
        let _lock = store.lock(FlockArg::LockShared)?;
        store
            .read_records()?
            .keys()
            .filter(|id| !in_use.contains(*id))
            .cloned()
            .collect()
    };
    remove_records(store, &unused)?;
    let (layers, blobs) = remove_unreferenced(store)?;
    Ok(Removed {
        images: unused,
        untagged: Vec::new(),
        layers,
        blobs,
    })
}

/// `skiff image rm REF`: removes a name from its image, or the image itself when that was
/// its last name (or REF is an id or digest). Refused while a container uses the image.
pub fn remove(store: &ImageStore, reference: &str) -> Result<Removed, ImageError> {
    let image = store
        .resolve(reference)?
        .ok_or_else(|| ImageError::NotFound {
            reference: reference.to_owned(),
        })?;
    let _gc = store.lock_file("gc.lock", FlockArg::LockExclusive)?;
    let by_name = !reference.starts_with("sha256:")
        && !is_sha256_hex(reference)
        && Reference::parse(reference).is_ok_and(|r| r.digest.is_none());
    let name = Reference::parse(reference).map(|r| r.to_string()).ok();
    if by_name && image.names.len() > 1 {
        let _lock = store.lock(FlockArg::LockExclusive)?;
        let mut records = store.read_records()?;
        if let Some(record) = records.get_mut(&image.id) {
            record.names.retain(|n| Some(n) != name.as_ref());
            store.write_record(record)?;
        }
        return Ok(Removed {
            untagged: name.into_iter().collect(),
            ..Default::default()
        });
    }
    if images_in_use(store, &[]).contains(&image.id) {
        let container = container_using(store, &image.id).unwrap_or_default();
        return Err(ImageError::InUse {
            image: reference.to_owned(),
            container,
        });
    }
    remove_records(store, std::slice::from_ref(&image.id))?;
    let (layers, blobs) = remove_unreferenced(store)?;
    Ok(Removed {
        images: vec![image.id],
        untagged: Vec::new(),
        layers,
        blobs,
    })
}

fn container_using(store: &ImageStore, id: &str) -> Option<String> {
    let containers = store.root().parent()?.join("containers");
    fs::read_dir(containers).ok()?.flatten().find_map(|e| {
        let meta = crate::runtime::read_json::<crate::runtime::ContainerMeta>(
            &e.path().join("meta.json"),
        )?;
        (meta.image_id == id).then_some(meta.id)
    })
}

fn record_time(store: &ImageStore, id: &str) -> SystemTime {
    sha256_hex(id)
        .ok()
        .and_then(|hex| fs::metadata(store.root().join("images").join(format!("{hex}.json"))).ok())
        .and_then(|m| m.modified().ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn remove_records(store: &ImageStore, ids: &[String]) -> Result<(), ImageError> {
    let _lock = store.lock(FlockArg::LockExclusive)?;
    let dir = store.root().join("images");
    for id in ids {
        let path = dir.join(format!("{}.json", sha256_hex(id)?));
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!(%id, "removed image"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io("remove", &path, e)),
        }
    }
    super::store::sync_dir(&dir)
}

/// Removes layers and blobs no image record needs. Caller holds `gc.lock` exclusively.
fn remove_unreferenced(store: &ImageStore) -> Result<(usize, usize), ImageError> {
    let records: BTreeMap<String, ImageRecord> = {
        let _lock = store.lock(FlockArg::LockShared)?;
        store.read_records()?
    };
    let mut layers_kept = HashSet::new();
    let mut blobs_kept = HashSet::new();
    for record in records.values() {
        for diff_id in &record.diff_ids {
            layers_kept.insert(sha256_hex(diff_id)?.to_owned());
        }
        blobs_kept.insert(sha256_hex(&record.id)?.to_owned());
        for digest in &record.digests {
            blobs_kept.insert(sha256_hex(digest)?.to_owned());
            // Manifests name the layer blobs (kept to share with later pulls).
            let Ok(bytes) = fs::read(store.blob_path(sha256_hex(digest)?)) else {
                continue;
            };
            if let Ok(doc) = serde_json::from_slice::<Document>(&bytes) {
                for d in doc.layers.iter().flatten().chain(doc.config.iter()) {
                    if let Ok(hex) = sha256_hex(&d.digest) {
                        blobs_kept.insert(hex.to_owned());
                    }
                }
            }
        }
    }
    let layers = remove_unlisted(&store.root().join("layers"), &layers_kept, true)?;
    let blobs = remove_unlisted(&store.root().join("blobs/sha256"), &blobs_kept, false)?;
    Ok((layers, blobs))
}

/// Removes the entries of `dir` named by a sha256 hex not in `keep`.
fn remove_unlisted(dir: &Path, keep: &HashSet<String>, dirs: bool) -> Result<usize, ImageError> {
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(|e| ImageError::io("list", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_sha256_hex(&name) || keep.contains(&name) {
            continue;
        }
        let path = entry.path();
        let result = if dirs {
            // Out of the way first (a half-removed layer must never look complete).
            let doomed = dir.join(format!(".tmp-gc-{name}"));
            fs::rename(&path, &doomed).and_then(|()| fs::remove_dir_all(&doomed))
        } else {
            fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) => return Err(ImageError::io("remove", &path, e)),
        }
    }
    Ok(removed)
}
