//! The content-addressed store on disk and its public face, [`ImageStore`]. Owns everything
//! under `<data_dir>/store/` and writes nothing anywhere else:
//!
//! ```text
//! store/
//!   lock                  flock: shared to read records, exclusive to change them
//!   blobs/sha256/<hex>    configs, manifests, indexes, and layer blobs as found in archives
//!   layers/<diffid-hex>/  an unpacked layer (an overlayfs lowerdir); appears complete or not at all
//!   layers/.tmp-*/        a layer being unpacked (renamed into place when verified)
//!   images/<id-hex>.json  one record per image: its names, manifest digests, diff ids
//!   tmp/import-*/         an archive being imported
//! ```
//!
//! Layers are unpacked once, keyed by diff id, and shared by every image that has them. Records
//! are replaced atomically (temp file, fsync, rename, fsync of the directory). An import unpacks
//! and verifies everything before it records anything, so a refused archive leaves no image behind.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::archive::{self, read_limited, ArchiveImage, BlobSource};
use super::digest::{is_sha256_hex, sha256_hex, sha256_of, HashingReader};
use super::error::ImageError;
use super::reference::Reference;
use super::unpack::unpack_layer;

/// How old unlocked scratch must be before [`ImageStore::open`] removes it.
const SCRATCH_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// Limits that keep hostile archives from exhausting the disk or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// The most a single layer may unpack to (uncompressed stream and file content), in bytes.
    pub max_layer_bytes: u64,
    /// The most an archive's files may add up to when extracted, in bytes.
    pub max_archive_bytes: u64,
    /// The largest JSON document (manifest, index, config) read, in bytes.
    pub max_json_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_layer_bytes: 32 << 30,
            max_archive_bytes: 256 << 30,
            max_json_bytes: 16 << 20,
        }
    }
}

/// The image store under `<data_dir>/store`. Cheap to open; safe to use from several processes
/// at once (a CLI import while the daemon resolves images).
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    limits: ImportLimits,
}

/// An image an import brought into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// Normalized references, e.g. "docker.io/library/demo:latest" (empty for an unnamed image).
    pub names: Vec<String>,
    /// `"sha256:<config digest hex>"`.
    pub id: String,
}

/// An image in the store, ready to run.
#[derive(Debug, Clone)]
pub struct Image {
    /// `"sha256:<config digest hex>"`.
    pub id: String,
    /// Normalized references, e.g. "docker.io/library/demo:latest".
    pub names: Vec<String>,
    /// Manifest (and index) digests the image was imported or pulled under.
    pub digests: Vec<String>,
    /// The image config (Entrypoint, Cmd, Env, WorkingDir, User…).
    pub config: ImageConfiguration,
    /// Unpacked layer directories, bottom → top (overlayfs lists lowerdirs top → bottom).
    pub layers: Vec<PathBuf>,
}

impl Image {
    /// The `imageID` a container status reports for this image run as `reference`, as kubelet
    /// with containerd does: the reference's repository at the digest the image came under
    /// (`docker.io/library/nginx@sha256:…`) — the reference's own digest if it pins one; for a
    /// tag, the first (outermost) digest recorded, but only while the image has that one name,
    /// since the store does not keep which name came with which digest. Otherwise its id.
    pub fn status_id(&self, reference: &str) -> String {
        let parsed = super::Reference::parse(reference).or_else(|e| {
            self.names
                .first()
                .map_or(Err(e), |n| super::Reference::parse(n))
        });
        let Ok(parsed) = parsed else {
            return self.id.clone();
        };
        let digest = match &parsed.digest {
            Some(pinned) => self.digests.iter().find(|d| *d == pinned),
            None if self.names.len() == 1 => self.digests.first(),
            None => None,
        };
        match digest {
            Some(digest) => format!("{}@{digest}", parsed.repository()),
            None => self.id.clone(),
        }
    }
}

/// What `images/<id-hex>.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: String,
    pub names: Vec<String>,
    /// Manifest (and index) digests the image was imported under.
    #[serde(default)]
    pub digests: Vec<String>,
    pub diff_ids: Vec<String>,
    /// Increases with every change that gave this image a name: if a crash ever leaves a name in
    /// two records, the newer wins.
    #[serde(default)]
    generation: u64,
}

/// A verified layer unpacked into a scratch directory, waiting to be moved into place.
struct PendingLayer {
    scratch: tempfile::TempDir,
    /// Tells [`ImageStore::remove_stale_scratch`] that the scratch directory is in use.
    _in_use: Flock<File>,
    dest: PathBuf,
    /// The layer's blob in the extracted archive, and where the store keeps it.
    source: PathBuf,
    blob: PathBuf,
}

/// An image whose config and layers are verified and in the store, waiting to be recorded.
struct Prepared {
    id: String,
    names: Vec<String>,
    digests: Vec<String>,
    diff_ids: Vec<String>,
    config: Vec<u8>,
    documents: Vec<(String, Vec<u8>)>,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `<data_dir>/store`.
    pub fn open(data_dir: &Path) -> Result<Self, ImageError> {
        Self::open_with_limits(data_dir, ImportLimits::default())
    }

    /// Like [`ImageStore::open`], with other import limits.
    pub fn open_with_limits(data_dir: &Path, limits: ImportLimits) -> Result<Self, ImageError> {
        let root = data_dir.join("store");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|e| ImageError::io("create the image store", &root, e))?;
        for dir in ["blobs/sha256", "layers", "images", "tmp"] {
            let path = root.join(dir);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|e| ImageError::io("create", &path, e))?;
        }
        let store = ImageStore { root, limits };
        store.remove_stale_scratch();
        Ok(store)
    }

    /// The store's root directory, `<data_dir>/store`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The limits imports are held to.
    pub fn limits(&self) -> ImportLimits {
        self.limits
    }

    /// Imports every image of a `docker save` archive (classic manifest.json layout, and the OCI
    /// layout Docker 25+ writes next to it) or an OCI image-layout archive (index.json + blobs/,
    /// no manifest.json). The archive may be plain tar or gzip/zstd-compressed tar.
    /// Idempotent: importing the same archive again changes nothing. Refused as a whole (no image
    /// recorded) when anything in it is unsafe or fails verification.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<ImportedImage>, ImageError> {
        let tmp = self.root.join("tmp");
        let scratch = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(&tmp)
            .map_err(|e| ImageError::io("create a scratch directory in", &tmp, e))?;
        let _in_use = lock_scratch(scratch.path())?;
        let extracted = archive::extract(
            path,
            scratch.path(),
            self.limits.max_archive_bytes,
            self.limits.max_json_bytes,
        )?;
        let images = extracted.images()?;
        let guard = self.ingest_guard()?;
        let imported = self.ingest(images, &guard)?;
        drop(scratch);
        for image in &imported {
            tracing::info!(id = %image.id, names = ?image.names, archive = %path.display(), "imported image");
        }
        Ok(imported)
    }

    /// Keeps garbage collection away while an import or a pull decides which layers the store
    /// already has and records its images: take it before looking, drop it after [`Self::ingest`].
    pub(crate) fn ingest_guard(&self) -> Result<Flock<File>, ImageError> {
        self.lock_file("gc.lock", FlockArg::LockShared)
    }

    /// The one way images enter the store, whether from an archive or a registry: verifies each
    /// image's config and layer blobs (digests, sizes, diff ids), unpacks the layers the store
    /// lacks into scratch directories, moves them into place, keeps their blobs, then records the
    /// images. Everything is verified and unpacked before anything is recorded, so a refused
    /// image leaves nothing behind. The caller holds [`Self::ingest_guard`].
    pub(crate) fn ingest(
        &self,
        images: Vec<ArchiveImage>,
        _guard: &Flock<File>,
    ) -> Result<Vec<ImportedImage>, ImageError> {
        let mut pending = BTreeMap::new();
        let mut prepared = Vec::with_capacity(images.len());
        for image in images {
            prepared.push(self.prepare(image, &mut pending)?);
        }
        self.install_layers(pending)?;
        self.commit(&prepared)
    }

    /// True when the layer with this diff id is unpacked in the store.
    pub(crate) fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_path(diff_id)
            .is_ok_and(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
    }

    /// Where the store keeps the blob with this digest (whether or not it is there).
    pub(crate) fn blob_file(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blob_path(sha256_hex(digest)?))
    }

    /// A new scratch directory under `tmp/`, locked while the returned guard lives.
    pub(crate) fn scratch(
        &self,
        prefix: &str,
    ) -> Result<(tempfile::TempDir, Flock<File>), ImageError> {
        let tmp = self.root.join("tmp");
        let scratch = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(|e| ImageError::io("create a scratch directory in", &tmp, e))?;
        let lock = lock_scratch(scratch.path())?;
        Ok((scratch, lock))
    }

    /// Resolves a reference as written in a pod spec ("demo", "demo:1",
    /// "docker.io/library/demo:1", "registry.lan:5000/x/y:tag", "name@sha256:…", or an image id
    /// `"sha256:<config digest>"`) to a local image, or `Ok(None)` when it is not present.
    pub fn resolve(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let records = self.read_records()?;
        if let Some(hex) = reference.strip_prefix("sha256:") {
            if !is_sha256_hex(hex) {
                return Err(ImageError::InvalidDigest {
                    digest: reference.to_owned(),
                });
            }
            return records.get(reference).map(|r| self.image(r)).transpose();
        }
        if is_sha256_hex(reference) {
            if let Some(record) = records.get(&format!("sha256:{reference}")) {
                return self.image(record).map(Some);
            }
        }
        let parsed = Reference::parse(reference)?;
        let wanted = parsed.to_string();
        let found = records
            .values()
            .filter(|r| match &parsed.digest {
                Some(digest) => r.names.contains(&wanted) || r.digests.contains(digest),
                None => r.names.contains(&wanted),
            })
            .max_by_key(|r| r.generation);
        found.map(|r| self.image(r)).transpose()
    }

    /// Every image in the store, ordered by id.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        self.read_records()?
            .values()
            .map(|r| self.image(r))
            .collect()
    }

    /// The directory a layer with this diff id is unpacked into (whether or not it is there).
    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("layers").join(sha256_hex(diff_id)?))
    }

    /// Removes scratch that imports killed mid-way left behind: scratch directories nobody holds
    /// locked, and temporary files, once older than a grace period (which also covers the instant
    /// between creating a scratch directory and locking it). Best effort: failures are logged.
    fn remove_stale_scratch(&self) {
        for (dir, prefix) in [
            ("tmp", "import-"),
            ("tmp", "pull-"),
            ("layers", ".tmp-"),
            ("images", ".tmp-"),
            ("blobs/sha256", ".tmp-"),
        ] {
            let Ok(entries) = fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_name().to_string_lossy().starts_with(prefix) {
                    continue;
                }
                let path = entry.path();
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    continue;
                };
                let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
                if age.is_none_or(|age| age < SCRATCH_GRACE) {
                    continue;
                }
                let removed = if meta.is_dir() {
                    let Ok(dir) = File::open(&path) else { continue };
                    // Held by a running import: leave it alone.
                    let Ok(_held) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) else {
                        continue;
                    };
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed scratch left by an interrupted import")
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "could not remove stale scratch")
                    }
                }
            }
        }
    }

    pub(crate) fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    pub(crate) fn lock(&self, mode: FlockArg) -> Result<Flock<File>, ImageError> {
        self.lock_file("lock", mode)
    }

    pub(crate) fn lock_file(&self, name: &str, mode: FlockArg) -> Result<Flock<File>, ImageError> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::Lock {
                path: path.clone(),
                source: e,
            })?;
        Flock::lock(file, mode).map_err(|(_, errno)| ImageError::Lock {
            path,
            source: errno.into(),
        })
    }

    /// Verifies an image's config and unpacks (into scratch directories) the layers the store
    /// does not have yet; `pending` collects them, keyed by diff id.
    fn prepare(
        &self,
        image: ArchiveImage,
        pending: &mut BTreeMap<String, PendingLayer>,
    ) -> Result<Prepared, ImageError> {
        let config = read_limited(
            &image.config.path,
            self.limits.max_json_bytes,
            "image config",
            &image.config.label,
        )?;
        let id = sha256_of(&config);
        check_blob(&image.config, &id, config.len() as u64)?;
        let parsed: ImageConfiguration =
            serde_json::from_slice(&config).map_err(|source| ImageError::InvalidJson {
                what: "image config",
                file: format!("{} ({id})", image.config.label),
                source,
            })?;
        let diff_ids = parsed.rootfs().diff_ids().clone();
        if diff_ids.len() != image.layers.len() {
            return Err(ImageError::LayerCountMismatch {
                config: id,
                layers: image.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
            let dest = self.layer_path(diff_id)?;
            if pending.contains_key(diff_id)
                || fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir())
            {
                continue;
            }
            let unpacked = self.unpack(layer, diff_id, dest)?;
            pending.insert(diff_id.clone(), unpacked);
        }
        Ok(Prepared {
            id,
            names: image.names,
            digests: image.digests,
            diff_ids,
            config,
            documents: image.documents,
        })
    }

    /// Verifies a layer blob and unpacks it into a scratch directory beside its destination.
    fn unpack(
        &self,
        source: &BlobSource,
        diff_id: &str,
        dest: PathBuf,
    ) -> Result<PendingLayer, ImageError> {
        let (blob_digest, size) = HashingReader::new(
            File::open(&source.path).map_err(|e| ImageError::io("open", &source.path, e))?,
        )
        .finish()
        .map_err(|e| ImageError::io("read", &source.path, e))?;
        check_blob(source, &blob_digest, size)?;

        let layers = self.root.join("layers");
        let scratch = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&layers)
            .map_err(|e| ImageError::io("create a scratch directory in", &layers, e))?;
        let in_use = lock_scratch(scratch.path())?;
        fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| ImageError::io("set the mode of", scratch.path(), e))?;
        let actual = unpack_layer(
            &source.path,
            scratch.path(),
            &source.label,
            self.limits.max_layer_bytes,
        )?;
        if actual != diff_id {
            return Err(ImageError::DiffIdMismatch {
                file: source.label.clone(),
                expected: diff_id.to_owned(),
                actual,
            });
        }
        let blob = self.blob_path(sha256_hex(&blob_digest)?);
        Ok(PendingLayer {
            scratch,
            _in_use: in_use,
            dest,
            source: source.path.clone(),
            blob,
        })
    }

    /// Moves verified layers into place (each appears complete or not at all) and keeps their blobs.
    fn install_layers(&self, pending: BTreeMap<String, PendingLayer>) -> Result<(), ImageError> {
        let layers = self.root.join("layers");
        if pending.is_empty() {
            return Ok(());
        }
        // Everything unpacked must be durable before a layer looks complete.
        let dir = File::open(&layers).map_err(|e| ImageError::io("open", &layers, e))?;
        nix::unistd::syncfs(dir.as_raw_fd())
            .map_err(|e| ImageError::io("sync the filesystem of", &layers, e.into()))?;
        for layer in pending.into_values() {
            match fs::rename(layer.scratch.path(), &layer.dest) {
                Ok(()) => {}
                // Another import installed the same layer first: keep theirs, drop ours.
                Err(_) if layer.dest.is_dir() => {}
                Err(e) => {
                    return Err(ImageError::io(
                        format!("rename {} to", layer.scratch.path().display()),
                        &layer.dest,
                        e,
                    ))
                }
            }
            if !layer.blob.exists() {
                fs::rename(&layer.source, &layer.blob).map_err(|e| {
                    ImageError::io(
                        format!("move {} to", layer.source.display()),
                        &layer.blob,
                        e,
                    )
                })?;
            }
        }
        sync_dir(&layers)
    }

    /// Records the prepared images (configs, documents, names) under the exclusive lock.
    fn commit(&self, prepared: &[Prepared]) -> Result<Vec<ImportedImage>, ImageError> {
        let _lock = self.lock(FlockArg::LockExclusive)?;
        for image in prepared {
            self.write_blob(&image.id, &image.config)?;
            for (digest, bytes) in &image.documents {
                self.write_blob(digest, bytes)?;
            }
        }

        let mut records = self.read_records()?;
        let mut generation = records.values().map(|r| r.generation).max().unwrap_or(0);
        let mut gained = Vec::new();
        let mut lost = Vec::new();
        for image in prepared {
            let record = records
                .entry(image.id.clone())
                .or_insert_with(|| ImageRecord {
                    id: image.id.clone(),
                    names: Vec::new(),
                    digests: Vec::new(),
                    diff_ids: image.diff_ids.clone(),
                    generation: 0,
                });
            let mut changed = record.generation == 0;
            for name in &image.names {
                if !record.names.contains(name) {
                    record.names.push(name.clone());
                    changed = true;
                }
            }
            for digest in &image.digests {
                if !record.digests.contains(digest) {
                    record.digests.push(digest.clone());
                    changed = true;
                }
            }
            if changed {
                generation += 1;
                record.generation = generation;
                gained.push(image.id.clone());
            }
            // A name belongs to one image: the one imported last.
            let names: HashSet<&String> = image.names.iter().collect();
            for (id, other) in records.iter_mut() {
                if *id != image.id && other.names.iter().any(|n| names.contains(n)) {
                    other.names.retain(|n| !names.contains(n));
                    lost.push(id.clone());
                }
            }
        }
        // The images that gain names first: a crash in between leaves a name twice, never lost.
        let mut written = HashSet::new();
        for id in gained.iter().chain(&lost) {
            if written.insert(id.clone()) {
                self.write_record(&records[id])?;
            }
        }

        Ok(prepared
            .iter()
            .map(|image| ImportedImage {
                names: image.names.clone(),
                id: image.id.clone(),
            })
            .collect())
    }

    /// Writes a small blob atomically unless it is already there.
    fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let hex = sha256_hex(digest)?;
        if self.blob_path(hex).exists() {
            return Ok(());
        }
        write_atomic(&self.root.join("blobs/sha256"), hex, bytes)
    }

    pub(crate) fn write_record(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let hex = sha256_hex(&record.id)?;
        let mut bytes = serde_json::to_vec_pretty(record).expect("a record always serializes");
        bytes.push(b'\n');
        write_atomic(&self.root.join("images"), &format!("{hex}.json"), &bytes)
    }

    pub(crate) fn read_records(&self) -> Result<BTreeMap<String, ImageRecord>, ImageError> {
        let dir = self.root.join("images");
        let mut records = BTreeMap::new();
        let entries = fs::read_dir(&dir).map_err(|e| ImageError::io("list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("list", &dir, e))?;
            let file_name = entry.file_name();
            let Some(hex) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !is_sha256_hex(hex) {
                continue;
            }
            let path = entry.path();
            let bytes = fs::read(&path).map_err(|e| ImageError::io("read", &path, e))?;
            let record: ImageRecord =
                serde_json::from_slice(&bytes).map_err(|e| ImageError::CorruptRecord {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if record.id != format!("sha256:{hex}") {
                return Err(ImageError::CorruptRecord {
                    path,
                    reason: format!("it is for image {}", record.id),
                });
            }
            records.insert(record.id.clone(), record);
        }
        Ok(records)
    }

    fn image(&self, record: &ImageRecord) -> Result<Image, ImageError> {
        let config_path = self.blob_path(sha256_hex(&record.id)?);
        let bytes = fs::read(&config_path).map_err(|e| ImageError::io("read", &config_path, e))?;
        let config: ImageConfiguration =
            serde_json::from_slice(&bytes).map_err(|source| ImageError::InvalidJson {
                what: "image config",
                file: config_path.display().to_string(),
                source,
            })?;
        let layers = record
            .diff_ids
            .iter()
            .map(|diff_id| {
                let path = self.layer_path(diff_id)?;
                if !path.is_dir() {
                    return Err(ImageError::LayerMissing {
                        image: record.id.clone(),
                        diff_id: diff_id.clone(),
                    });
                }
                Ok(path)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Image {
            id: record.id.clone(),
            names: record.names.clone(),
            digests: record.digests.clone(),
            config,
            layers,
        })
    }
}

/// Locks a scratch directory for as long as the returned guard lives.
fn lock_scratch(dir: &Path) -> Result<Flock<File>, ImageError> {
    let file = File::open(dir).map_err(|e| ImageError::io("open", dir, e))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| ImageError::Lock {
        path: dir.to_owned(),
        source: errno.into(),
    })
}

/// Checks a blob's digest and size against what its source says they must be.
fn check_blob(source: &BlobSource, actual: &str, size: u64) -> Result<(), ImageError> {
    if let Some(expected) = &source.digest {
        if expected != actual {
            return Err(ImageError::BlobDigestMismatch {
                file: source.label.clone(),
                expected: expected.clone(),
                actual: actual.to_owned(),
            });
        }
    }
    if let Some(expected) = source.size {
        if expected != size {
            return Err(ImageError::BlobSizeMismatch {
                digest: actual.to_owned(),
                expected,
                actual: size,
            });
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` atomically and durably.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ImageError> {
    let dest = dir.join(name);
    crate::runtime::protocol::write_durable(&dest, bytes)
        .map_err(|e| ImageError::io("replace", &dest, e))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    crate::runtime::protocol::sync_dir(dir)
        .map_err(|e| ImageError::io("sync the directory", dir, e))
}

#[cfg(test)]
mod status_id_tests {
    use super::*;

    fn image(names: &[&str], digests: &[&str]) -> Image {
        Image {
            id: "sha256:c0ffee".into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            digests: digests.iter().map(|s| s.to_string()).collect(),
            config: ImageConfiguration::default(),
            layers: Vec::new(),
        }
    }

    #[test]
    fn the_status_id_is_the_repository_at_its_digest() {
        let d = "sha256:abc";
        let i = image(&["docker.io/library/nginx:1.27"], &[d, "sha256:def"]);
        assert_eq!(
            i.status_id("nginx:1.27"),
            "docker.io/library/nginx@sha256:abc"
        );
        // A pinned digest is the one reported.
        let pinned = format!("sha256:{}", "0".repeat(64));
        let i = image(&["registry.local:5000/team/app:v1"], &[d, &pinned]);
        assert_eq!(
            i.status_id(&format!("registry.local:5000/team/app@{pinned}")),
            format!("registry.local:5000/team/app@{pinned}")
        );
        // Two names: which digest came with which is not known, so the image's id.
        let i = image(&["docker.io/library/a:1", "docker.io/library/b:1"], &[d]);
        assert_eq!(i.status_id("a:1"), "sha256:c0ffee");
        // No manifest digest: the image's id.
        assert_eq!(
            image(&["docker.io/library/demo:v1"], &[]).status_id("demo:v1"),
            "sha256:c0ffee"
        );
    }
}
