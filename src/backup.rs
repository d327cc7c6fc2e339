//! `skiff backup FILE` and `skiff restore FILE`: one archive holding what a data directory
//! cannot make again — the store, the API's CA, keys and admin token, the ACME account, the
//! seccomp profiles and every PersistentVolume directory.
//!
//! The archive is a tar in zstd frames. Its first entry is `manifest.json` (skiff's version,
//! the store's schema version, the time, the parts with their sizes and hashes, and every entry
//! with its mode, owner and, for files, size and SHA-256); then `state.db` (a snapshot taken with
//! SQLite's online backup API: one read transaction, so whole transactions only, while the
//! daemon keeps writing), then `tls/`, `acme/`, `seccomp/`, `volumes/` and `charts/` (local charts) as they are on disk,
//! symlinks kept as symlinks (never followed), modes and numeric owners kept.
//!
//! The body is written first into a private scratch folder beside FILE, hashing every file
//! exactly as its bytes go into the archive; the manifest frame is then written, the body's
//! frames copied after it (zstd frames concatenate), and the whole renamed to FILE (mode 0600:
//! it holds every Secret and key).
//!
//! Restore refuses a data directory that is not empty, unpacks into a scratch folder inside
//! it, checks every entry against the manifest (each file's size and hash, each symlink's
//! target, nothing missing, nothing extra), and only then moves the parts into place; a
//! failure removes the scratch folder, leaving the directory as it was.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use skiff_controller::model::store::{schema_version, SCHEMA_VERSION};

use crate::DataDirArg;

/// The archive format this code writes and reads.
const FORMAT: &str = "skiff-backup/1";
/// The first entry of every backup.
const MANIFEST: &str = "manifest.json";
/// The data directory's folders a backup holds besides the store, in archive order.
const FOLDERS: &[&str] = &["tls", "acme", "seccomp", "volumes", "charts"];
/// A manifest larger than this is refused (it lists every file: ~200 bytes each).
const MAX_MANIFEST: u64 = 512 << 20;
/// The scratch folder a restore unpacks into, inside the data directory.
const RESTORE_SCRATCH: &str = ".skiff-restore-partial";

/// Arguments of `skiff backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// The archive to write (tar in zstd, mode 0600: it holds every Secret and key). It must
    /// not exist yet.
    file: PathBuf,
    #[command(flatten)]
    data: DataDirArg,
}

/// Arguments of `skiff restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The archive `skiff backup` wrote.
    file: PathBuf,
    /// The data directory to restore into: it must be empty or not exist.
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
}

/// What a backup holds, its first entry.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    format: String,
    /// The skiff that wrote it.
    skiff_version: String,
    /// The store's schema version (`PRAGMA user_version` of `state.db`).
    schema_version: u32,
    /// When the store was snapshotted (RFC 3339).
    created: String,
    /// The data directory it was taken from, and that directory's mode.
    data_dir: String,
    data_dir_mode: u32,
    /// The names of the Node objects in the store: pods stay bound to their node.
    nodes: Vec<String>,
    /// Per part (`store`, then each folder present): entries, bytes of file content, and the
    /// SHA-256 of the part's entries as listed here (one JSON line each).
    parts: Vec<Part>,
    /// Every entry after the manifest, in archive order.
    entries: Vec<Entry>,
    /// What was not archived: sockets, FIFOs and device files in volumes, files that vanished
    /// while the backup ran.
    #[serde(default)]
    skipped: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Part {
    name: String,
    entries: u64,
    bytes: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    File,
    Dir,
    Symlink,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// Relative to the data directory.
    path: Name,
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// A symlink's target, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<Name>,
}

/// A file name as text, or as hex bytes when it is not UTF-8.
#[derive(Serialize, Deserialize, Clone)]
#[serde(untagged)]
enum Name {
    Text(String),
    Bytes { hex: String },
}

impl Name {
    fn of(p: &OsStr) -> Name {
        match p.to_str() {
            Some(s) => Name::Text(s.to_string()),
            None => Name::Bytes {
                hex: hex::encode(p.as_bytes()),
            },
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Text(s) => s.as_bytes().to_vec(),
            Name::Bytes { hex } => hex::decode(hex).unwrap_or_default(),
        }
    }

    fn show(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

// ---- backup -------------------------------------------------------------------------------

/// `skiff backup FILE`.
pub fn backup(args: &BackupArgs) -> Result<()> {
    let data_dir = &args.data.data_dir;
    let db = data_dir.join("state.db");
    if !db.is_file() {
        bail!(
            "{} is not a skiff data directory: it has no state.db",
            data_dir.display()
        );
    }
    if fs::symlink_metadata(&args.file).is_ok() {
        bail!(
            "{} exists: a backup never overwrites a file; remove it or choose another name",
            args.file.display()
        );
    }
    let parent = match args.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Private (0700) scratch beside FILE: the store's snapshot and the body hold secrets, and
    // the finished archive is renamed from here.
    let scratch = tempfile::Builder::new()
        .prefix(".skiff-backup-")
        .tempdir_in(&parent)
        .with_context(|| format!("making a scratch folder in {}", parent.display()))?;

    let snapshot = scratch.path().join("state.db");
    let (schema, nodes) = snapshot_store(&db, &snapshot)?;
    let created = skiff_controller::model::store::now_rfc3339();

    let body_path = scratch.path().join("body");
    let mut body = Body::new(&body_path)?;
    body.add_file(&snapshot, "state.db", Some(0o600), "store")?;
    for folder in FOLDERS {
        let root = data_dir.join(folder);
        match fs::symlink_metadata(&root) {
            Ok(m) if m.is_dir() => body.add_tree(data_dir, &root, folder)?,
            Ok(_) => bail!(
                "{} is not a directory: the data directory is damaged",
                root.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
        }
    }
    let (entries, parts, skipped) = body.finish()?;

    let manifest = Manifest {
        format: FORMAT.into(),
        skiff_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: schema,
        created,
        data_dir: fs::canonicalize(data_dir)?.display().to_string(),
        data_dir_mode: fs::metadata(data_dir)?.mode() & 0o7777,
        nodes,
        parts,
        entries,
        skipped,
    };
    let archive = scratch.path().join("archive");
    write_archive(&archive, &manifest, &body_path)?;
    if fs::symlink_metadata(&args.file).is_ok() {
        bail!(
            "{} appeared while the backup ran: not overwritten",
            args.file.display()
        );
    }
    fs::rename(&archive, &args.file)
        .with_context(|| format!("moving the archive to {}", args.file.display()))?;
    File::open(&parent)?.sync_all()?;

    let size = fs::metadata(&args.file)?.len();
    println!(
        "wrote {} ({}, mode 0600: it holds every Secret and key of the cluster)",
        args.file.display(),
        human(size)
    );
    println!(
        "  skiff {}, store schema version {}, taken {}",
        manifest.skiff_version, manifest.schema_version, manifest.created
    );
    for p in &manifest.parts {
        println!(
            "  {:<8} {:>6} entries {:>10}",
            p.name,
            p.entries,
            human(p.bytes)
        );
    }
    for s in &manifest.skipped {
        eprintln!("skiff: not in the backup: {s}");
    }
    Ok(())
}

/// Copies the live store into `out` with SQLite's online backup API, all pages in one step
/// (one read transaction: a consistent snapshot while the daemon writes; WAL readers do not
/// block it). Returns the schema version and the Node names.
fn snapshot_store(db: &Path, out: &Path) -> Result<(u32, Vec<String>)> {
    use rusqlite::backup::{Backup, StepResult};
    use rusqlite::{Connection, OpenFlags};
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} read-only", db.display()))?;
    src.busy_timeout(Duration::from_secs(10))?;
    // Made 0600 before SQLite writes into it.
    fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(out)?;
    let mut dst = Connection::open(out)?;
    {
        let backup = Backup::new(&src, &mut dst).context("starting the store's backup")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match backup.step(-1).context("copying the store")? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    if Instant::now() > deadline {
                        bail!("the store stayed locked for 60 s: no snapshot taken");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {}
            }
        }
    }
    // One self-contained file: no WAL beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("the store's snapshot fails SQLite's check: {check}");
    }
    let version = schema_version(&dst)?;
    let nodes = if version == 0 && !has_table(&dst, "objects")? {
        Vec::new()
    } else {
        let mut stmt = dst.prepare("SELECT name FROM objects WHERE kind = 'Node' ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        names
    };
    drop(dst);
    File::open(out)?.sync_all()?;
    Ok((version, nodes))
}

fn has_table(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The archive's body (everything after the manifest), written into a scratch file while the
/// manifest's entries are collected.
struct Body {
    tar: tar::Builder<zstd::Encoder<'static, File>>,
    entries: Vec<Entry>,
    /// Per part: first entry index, bytes.
    parts: Vec<(String, usize, u64)>,
    skipped: Vec<String>,
}

impl Body {
    fn new(path: &Path) -> Result<Body> {
        let file = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(path)?;
        let mut tar = tar::Builder::new(zstd::Encoder::new(file, 3)?);
        tar.follow_symlinks(false);
        Ok(Body {
            tar,
            entries: Vec::new(),
            parts: Vec::new(),
            skipped: Vec::new(),
        })
    }

    fn part(&mut self, name: &str) {
        if self.parts.last().map(|p| p.0.as_str()) != Some(name) {
            self.parts.push((name.to_string(), self.entries.len(), 0));
        }
    }

    /// Adds one regular file at `rel` (mode and owner forced when `mode` is given).
    fn add_file(&mut self, path: &Path, rel: &str, mode: Option<u32>, part: &str) -> Result<()> {
        self.part(part);
        let file = open_no_follow(path).with_context(|| format!("reading {}", path.display()))?;
        let meta = file.metadata()?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if let Some(m) = mode {
            header.set_mode(m);
            header.set_uid(0);
            header.set_gid(0);
        }
        self.append_file(file, &meta, header, Path::new(rel))
    }

    fn append_file(
        &mut self,
        file: File,
        meta: &fs::Metadata,
        mut header: tar::Header,
        rel: &Path,
    ) -> Result<()> {
        let size = meta.len();
        header.set_size(size);
        let mut reader = Exact::new(file, size);
        self.tar
            .append_data(&mut header, rel, &mut reader)
            .with_context(|| format!("archiving {}", rel.display()))?;
        if reader.changed() {
            eprintln!(
                "skiff: {} changed while it was read: archived as read (stop or dump a database for a consistent copy)",
                rel.display()
            );
        }
        let sha = hex::encode(reader.hasher.finalize_reset());
        if let Some(p) = self.parts.last_mut() {
            p.2 += size;
        }
        self.entries.push(Entry {
            path: Name::of(rel.as_os_str()),
            kind: Kind::File,
            mode: header.mode()?,
            uid: header.uid()? as u32,
            gid: header.gid()? as u32,
            size: Some(size),
            sha256: Some(sha),
            target: None,
        });
        Ok(())
    }

    /// Adds a folder of the data directory and everything under it, never following a symlink.
    fn add_tree(&mut self, data_dir: &Path, root: &Path, part: &str) -> Result<()> {
        self.part(part);
        for item in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
        {
            let item = match item {
                Ok(i) => i,
                // Removed while the backup ran (a pod deleting a file): it is not in it.
                Err(e) if e.io_error().map(|e| e.kind()) == Some(io::ErrorKind::NotFound) => {
                    if let Some(p) = e.path() {
                        self.skipped
                            .push(format!("{} (removed while read)", p.display()));
                    }
                    continue;
                }
                Err(e) => return Err(e).context("walking the data directory"),
            };
            let path = item.path();
            let rel = path
                .strip_prefix(data_dir)
                .expect("walked under the data dir");
            let meta = match item.metadata() {
                Ok(m) => m,
                Err(e) if e.io_error().map(|e| e.kind()) == Some(io::ErrorKind::NotFound) => {
                    self.skipped
                        .push(format!("{} (removed while read)", rel.display()));
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let ft = meta.file_type();
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            if ft.is_dir() {
                header.set_size(0);
                self.tar
                    .append_data(&mut header, rel, io::empty())
                    .with_context(|| format!("archiving {}", rel.display()))?;
                self.push_plain(rel, Kind::Dir, &header, None)?;
            } else if ft.is_symlink() {
                let target =
                    fs::read_link(path).with_context(|| format!("reading {}", path.display()))?;
                header.set_size(0);
                self.tar
                    .append_link(&mut header, rel, &target)
                    .with_context(|| format!("archiving {}", rel.display()))?;
                self.push_plain(rel, Kind::Symlink, &header, Some(&target))?;
            } else if ft.is_file() {
                let file = match open_no_follow(path) {
                    Ok(f) => f,
                    Err(e)
                        if e.kind() == io::ErrorKind::NotFound
                            || e.raw_os_error() == Some(libc::ELOOP) =>
                    {
                        self.skipped.push(format!(
                            "{} (removed or replaced while read)",
                            rel.display()
                        ));
                        continue;
                    }
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                // The opened file's own metadata: what is read is what is described.
                let meta = file.metadata()?;
                let mut header = tar::Header::new_gnu();
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                self.append_file(file, &meta, header, rel)?;
            } else {
                self.skipped.push(format!(
                    "{} (a socket, FIFO or device file: made again by its program)",
                    rel.display()
                ));
            }
        }
        Ok(())
    }

    fn push_plain(
        &mut self,
        rel: &Path,
        kind: Kind,
        header: &tar::Header,
        target: Option<&Path>,
    ) -> Result<()> {
        self.entries.push(Entry {
            path: Name::of(rel.as_os_str()),
            kind,
            mode: header.mode()?,
            uid: header.uid()? as u32,
            gid: header.gid()? as u32,
            size: None,
            sha256: None,
            target: target.map(|t| Name::of(t.as_os_str())),
        });
        Ok(())
    }

    fn finish(self) -> Result<(Vec<Entry>, Vec<Part>, Vec<String>)> {
        let encoder = self.tar.into_inner()?;
        encoder.finish()?.sync_all()?;
        let mut parts = Vec::new();
        for (i, (name, start, bytes)) in self.parts.iter().enumerate() {
            let end = self.parts.get(i + 1).map_or(self.entries.len(), |p| p.1);
            parts.push(Part {
                name: name.clone(),
                entries: (end - start) as u64,
                bytes: *bytes,
                sha256: part_hash(&self.entries[*start..end])?,
            });
        }
        Ok((self.entries, parts, self.skipped))
    }
}

/// The SHA-256 of a part's entries, one JSON line each.
fn part_hash(entries: &[Entry]) -> Result<String> {
    let mut h = Sha256::new();
    for e in entries {
        h.update(serde_json::to_vec(e)?);
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// Opens a file for reading without following a symlink in its last component.
fn open_no_follow(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Yields exactly `size` bytes of a file (zeros if it shrank while read; what it grew by is
/// left out), hashing what it yields: the archive's content and its hash always agree.
struct Exact {
    file: File,
    left: u64,
    hasher: Sha256,
    shrank: bool,
}

impl Exact {
    fn new(file: File, size: u64) -> Exact {
        Exact {
            file,
            left: size,
            hasher: Sha256::new(),
            shrank: false,
        }
    }

    /// Whether the file's length changed while it was read.
    fn changed(&mut self) -> bool {
        let mut one = [0u8; 1];
        self.shrank || matches!(self.file.read(&mut one), Ok(1))
    }
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(1 << 20) as usize);
        let mut n = if self.shrank {
            0
        } else {
            self.file.read(&mut buf[..want])?
        };
        if n == 0 {
            self.shrank = true;
            buf[..want].fill(0);
            n = want;
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes the archive: a zstd frame with the manifest's tar entry, then the body's frames.
fn write_archive(path: &Path, manifest: &Manifest, body: &Path) -> Result<()> {
    let json = serde_json::to_vec_pretty(manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_path(MANIFEST)?;
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(jiff::Timestamp::now().as_second().max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut first = header.as_bytes().to_vec();
    first.extend_from_slice(&json);
    first.resize(first.len().div_ceil(512) * 512, 0);

    let mut out = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    out.write_all(&zstd::stream::encode_all(&first[..], 3)?)?;
    io::copy(&mut File::open(body)?, &mut out)?;
    out.sync_all()?;
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

// ---- restore ------------------------------------------------------------------------------

/// `skiff restore FILE --data-dir D`.
pub fn restore(args: &RestoreArgs) -> Result<()> {
    let dir = &args.data_dir;
    let made = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut names: Vec<String> = fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !names.is_empty() {
                names.sort();
                let more = names.len().saturating_sub(5);
                names.truncate(5);
                bail!(
                    "the data directory {} is not empty (it holds {}{}): restore only into an empty or new directory; nothing was changed",
                    dir.display(),
                    names.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                );
            }
            false
        }
        Ok(_) => bail!("{} exists and is not a directory", dir.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("making {}", dir.display()))?;
            true
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let scratch = dir.join(RESTORE_SCRATCH);
    // Unpacked and checked, then the provisioned volumes' paths (they name the data
    // directory) made this one's; on any failure the directory is left as it was.
    let prepared = unpack_verified(&args.file, &scratch).and_then(|manifest| {
        let moved = relocate_volumes(
            &scratch.join("state.db"),
            Path::new(&manifest.data_dir),
            dir,
        )?;
        Ok((manifest, moved))
    });
    let (manifest, moved) = match prepared {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_dir_all(&scratch);
            if made {
                let _ = fs::remove_dir(dir);
            }
            return Err(e);
        }
    };
    // Move the parts into place.
    for item in fs::read_dir(&scratch)? {
        let item = item?;
        fs::rename(item.path(), dir.join(item.file_name()))?;
    }
    fs::remove_dir(&scratch)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(manifest.data_dir_mode))?;
    File::open(dir)?.sync_all()?;

    let files = manifest
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .count();
    println!(
        "restored {} into {}: {} entries ({} files), store schema version {} (skiff {}, taken {})",
        args.file.display(),
        dir.display(),
        manifest.entries.len(),
        files,
        manifest.schema_version,
        manifest.skiff_version,
        manifest.created
    );
    if moved > 0 {
        println!(
            "{moved} PersistentVolume path(s) moved from {}/volumes to {}/volumes",
            manifest.data_dir,
            dir.display()
        );
    }
    let host = skiff_controller::model::node::hostname().to_lowercase();
    if let Some(node) = manifest.nodes.iter().find(|n| **n != host) {
        if !manifest.nodes.contains(&host) {
            println!(
                "the pods are bound to node {node:?} and this machine is {host:?}: start skiff server with --node-name {node} (or node-name: {node} in config.yaml)"
            );
        }
    }
    println!(
        "images are not in a backup: put their archives in the images folder (or let them be pulled again) before the pods need them; then start skiff server --data-dir {}",
        dir.display()
    );
    Ok(())
}

/// Points the PersistentVolumes provisioned in `<from>/volumes/` at `<to>/volumes/`, in the
/// restored (not yet started) store. A volume's source is immutable through the API; this is
/// the store moving with its data directory. Returns how many changed.
fn relocate_volumes(db: &Path, from: &Path, to: &Path) -> Result<usize> {
    let to = fs::canonicalize(to)?;
    let restored = db.with_file_name("volumes");
    let (old, new) = (from.join("volumes"), to.join("volumes"));
    let mut conn = rusqlite::Connection::open(db)?;
    let tx = conn.transaction()?;
    let mut changed = 0;
    {
        let mut read = tx
            .prepare("SELECT namespace, name, body FROM objects WHERE kind = 'PersistentVolume'")?;
        let rows = read
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut write =
            tx.prepare("UPDATE objects SET body = ?1 WHERE kind = 'PersistentVolume' AND namespace = ?2 AND name = ?3")?;
        for (namespace, name, body) in rows {
            let mut pv: serde_json::Value = serde_json::from_str(&body)
                .with_context(|| format!("the restored PersistentVolume {name} does not parse"))?;
            let Some(path) = pv["spec"]["hostPath"]["path"].as_str().map(PathBuf::from) else {
                continue;
            };
            let Some(leaf) = path.file_name() else {
                continue;
            };
            // The daemon writes the path as configured, which may name the data directory
            // through a symlink: a directory of the backup's `volumes/` under any `volumes`.
            let ours = path.parent() == Some(old.as_path())
                || (path.parent().and_then(Path::file_name) == Some(OsStr::new("volumes"))
                    && restored.join(leaf).is_dir());
            if !ours || path == new.join(leaf) {
                continue;
            }
            pv["spec"]["hostPath"]["path"] = new.join(leaf).to_string_lossy().into_owned().into();
            write.execute(rusqlite::params![pv.to_string(), namespace, name])?;
            changed += 1;
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// Unpacks the archive into `scratch` and checks it against its manifest.
fn unpack_verified(file: &Path, scratch: &Path) -> Result<Manifest> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let decoder = zstd::Decoder::new(f)?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(false);
    let not_backup = || format!("{} is not a skiff backup", file.display());
    let mut entries = archive.entries().with_context(not_backup)?;
    let mut first = entries
        .next()
        .context("the archive is empty")
        .with_context(not_backup)?
        .with_context(not_backup)?;
    if first.path_bytes().as_ref() != MANIFEST.as_bytes() {
        bail!(
            "{}: its first entry is {:?}, not {MANIFEST}",
            not_backup(),
            String::from_utf8_lossy(&first.path_bytes())
        );
    }
    let mut json = Vec::new();
    (&mut first).take(MAX_MANIFEST).read_to_end(&mut json)?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .with_context(|| format!("{}: its {MANIFEST} does not parse", not_backup()))?;
    if manifest.format != FORMAT {
        bail!(
            "{} is a backup in format {:?}; this skiff reads {FORMAT:?}",
            file.display(),
            manifest.format
        );
    }
    if manifest.schema_version > SCHEMA_VERSION {
        bail!(
            "{} was made by skiff {} with store schema version {}; this skiff knows up to {SCHEMA_VERSION}: restore it with that skiff or a newer one",
            file.display(),
            manifest.skiff_version,
            manifest.schema_version
        );
    }
    for part in &manifest.parts {
        let start: usize = manifest
            .parts
            .iter()
            .take_while(|p| p.name != part.name)
            .map(|p| p.entries as usize)
            .sum();
        let end = start + part.entries as usize;
        if end > manifest.entries.len() || part_hash(&manifest.entries[start..end])? != part.sha256
        {
            bail!(
                "{}: the manifest's part {} does not match its entries: the manifest is damaged",
                file.display(),
                part.name
            );
        }
    }
    let expected: HashMap<Vec<u8>, &Entry> = manifest
        .entries
        .iter()
        .map(|e| (e.path.bytes(), e))
        .collect();

    fs::DirBuilder::new()
        .mode(0o700)
        .create(scratch)
        .with_context(|| format!("making {}", scratch.display()))?;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for item in entries {
        let mut item = item.context("reading the archive (truncated or damaged?)")?;
        let path = item.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&path).into_owned();
        let Some(want) = expected.get(&path) else {
            bail!(
                "the archive holds {shown:?}, which its manifest does not list: damaged or altered"
            );
        };
        if !seen.insert(path.clone()) {
            bail!("the archive holds {shown:?} twice: damaged or altered");
        }
        let kind = item.header().entry_type();
        let kind_ok = match want.kind {
            Kind::File => kind.is_file(),
            Kind::Dir => kind.is_dir(),
            Kind::Symlink => kind.is_symlink(),
        };
        if !kind_ok {
            bail!(
                "{shown:?} is a {kind:?} in the archive but a {:?} in its manifest",
                want.kind
            );
        }
        if !item
            .unpack_in(scratch)
            .with_context(|| format!("restoring {shown}"))?
        {
            bail!("{shown:?} would land outside the data directory: refused");
        }
        verify(&scratch.join(OsStr::from_bytes(&path)), want)
            .with_context(|| format!("checking {shown}"))?;
    }
    let missing: Vec<String> = manifest
        .entries
        .iter()
        .filter(|e| !seen.contains(&e.path.bytes()))
        .map(|e| e.path.show())
        .collect();
    if let Some(first) = missing.first() {
        bail!(
            "the archive lacks {} entr{} its manifest lists (first: {first}): it is truncated or damaged",
            missing.len(),
            if missing.len() == 1 { "y" } else { "ies" }
        );
    }
    // Directories' modes again, now that nothing more is unpacked into them.
    for e in manifest.entries.iter().filter(|e| e.kind == Kind::Dir) {
        fs::set_permissions(
            scratch.join(OsStr::from_bytes(&e.path.bytes())),
            fs::Permissions::from_mode(e.mode),
        )?;
    }
    Ok(manifest)
}

/// Checks one unpacked entry against the manifest.
fn verify(path: &Path, want: &Entry) -> Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.uid() != want.uid || meta.gid() != want.gid {
        bail!(
            "owner {}:{} instead of {}:{}",
            meta.uid(),
            meta.gid(),
            want.uid,
            want.gid
        );
    }
    match want.kind {
        Kind::Dir if !meta.is_dir() => bail!("not a directory"),
        Kind::Dir => {}
        Kind::Symlink => {
            let target = fs::read_link(path)?;
            let want_target = want.target.as_ref().map(Name::bytes).unwrap_or_default();
            if target.as_os_str().as_bytes() != want_target.as_slice() {
                bail!("the symlink's target differs from its manifest's");
            }
        }
        Kind::File => {
            if !meta.is_file() {
                bail!("not a regular file");
            }
            if meta.mode() & 0o7777 != want.mode & 0o7777 {
                bail!("mode {:o} instead of {:o}", meta.mode() & 0o7777, want.mode);
            }
            let mut f = open_no_follow(path)?;
            let mut h = Sha256::new();
            let n = io::copy(&mut f, &mut h)?;
            if Some(n) != want.size {
                bail!("{n} bytes, its manifest says {:?}", want.size);
            }
            if Some(hex::encode(h.finalize())) != want.sha256 {
                bail!("its SHA-256 differs from its manifest's: the archive is damaged");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_controller::model::store::{ObjectKey, Store};

    const PV: &str = "pvc-1_default_data";

    /// A data directory with a store (a ConfigMap, a provisioned PersistentVolume), keys, and a
    /// volume holding what volumes hold: a database file, a private subfolder, symlinks out of
    /// the volume, a name that is not UTF-8, a file of another owner and a FIFO.
    fn data_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let store = Store::open(root).unwrap();
        store
            .create(json!({"apiVersion":"v1","kind":"ConfigMap",
                "metadata":{"name":"kept","namespace":"default"},"data":{"k":"v"}}))
            .unwrap();
        store
            .create(
                json!({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pvc-1"},
                "spec":{"hostPath":{"path": root.join("volumes").join(PV).to_string_lossy()}}}),
            )
            .unwrap();
        drop(store);
        fs::create_dir(root.join("tls")).unwrap();
        skiff_controller::files::write_private(&root.join("tls/ca.key"), b"KEY").unwrap();
        let vol = root.join("volumes").join(PV);
        fs::create_dir_all(vol.join("private")).unwrap();
        fs::set_permissions(&vol, fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(vol.join("private"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(vol.join("app.db"), vec![7u8; 100_000]).unwrap();
        fs::write(vol.join("private/secret"), b"inside").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", vol.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../tls/ca.key", vol.join("relative")).unwrap();
        fs::write(vol.join(OsStr::from_bytes(b"caf\xe9")), b"latin-1").unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(vol.join("app.db"), Some(1234), Some(5678)).unwrap();
        }
        nix::unistd::mkfifo(
            &vol.join("pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        d
    }

    fn take(data: &Path, file: &Path) {
        backup(&BackupArgs {
            file: file.to_path_buf(),
            data: DataDirArg {
                data_dir: data.to_path_buf(),
            },
        })
        .unwrap();
    }

    fn put(file: &Path, dir: &Path) -> Result<()> {
        restore(&RestoreArgs {
            file: file.to_path_buf(),
            data_dir: dir.to_path_buf(),
        })
    }

    #[test]
    fn a_backup_restores_elsewhere_as_it_was_without_following_symlinks() {
        let data = data_dir();
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("b.backup");
        take(data.path(), &file);
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        // Only the archive is left beside it: the scratch folder is gone.
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);

        let new = out.path().join("restored");
        put(&file, &new).unwrap();
        let (a, b) = (
            data.path().join("volumes").join(PV),
            new.join("volumes").join(PV),
        );
        for f in ["app.db", "private/secret"] {
            assert_eq!(
                fs::read(a.join(f)).unwrap(),
                fs::read(b.join(f)).unwrap(),
                "{f}"
            );
        }
        assert_eq!(
            fs::read(b.join(OsStr::from_bytes(b"caf\xe9"))).unwrap(),
            b"latin-1"
        );
        assert_eq!(
            fs::read_link(b.join("escape")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::read_link(b.join("relative")).unwrap(),
            Path::new("../../tls/ca.key")
        );
        assert!(!b.join("pipe").exists(), "a FIFO is not archived");
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&b), 0o777);
        assert_eq!(mode(&b.join("private")), 0o750);
        assert_eq!(mode(&new.join("tls/ca.key")), 0o600);
        assert_eq!(mode(&new.join("state.db")), 0o600);
        if nix::unistd::geteuid().is_root() {
            let m = fs::metadata(b.join("app.db")).unwrap();
            assert_eq!((m.uid(), m.gid()), (1234, 5678));
        }
        // The store: its objects, and the provisioned volume pointed at the new directory.
        let store = Store::open(&new).unwrap();
        assert_eq!(
            store
                .get(&ObjectKey::new("ConfigMap", "default", "kept"))
                .unwrap()["data"]["k"],
            "v"
        );
        let pv = store
            .get(&ObjectKey::new("PersistentVolume", "", "pvc-1"))
            .unwrap();
        assert_eq!(
            pv["spec"]["hostPath"]["path"],
            fs::canonicalize(&new)
                .unwrap()
                .join("volumes")
                .join(PV)
                .to_string_lossy()
                .as_ref()
        );
    }

    #[test]
    fn a_restore_refuses_a_non_empty_directory_and_an_altered_archive() {
        let data = data_dir();
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("b.backup");
        take(data.path(), &file);

        let full = out.path().join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("x"), b"mine").unwrap();
        let err = put(&file, &full).unwrap_err().to_string();
        assert!(err.contains("is not empty (it holds x)"), "{err}");
        assert_eq!(fs::read_dir(&full).unwrap().count(), 1);

        // The same body under a manifest whose hash of app.db differs.
        let bytes = fs::read(&file).unwrap();
        let first = zstd::zstd_safe::find_frame_compressed_size(&bytes).unwrap();
        let mut manifest: Manifest = {
            let mut ar = tar::Archive::new(zstd::Decoder::new(&bytes[..first]).unwrap());
            let entry = ar.entries().unwrap().next().unwrap().unwrap();
            serde_json::from_reader(entry).unwrap()
        };
        let body = out.path().join("body");
        fs::write(&body, &bytes[first..]).unwrap();
        let db = manifest
            .entries
            .iter_mut()
            .find(|e| e.path.show().ends_with("/app.db"))
            .unwrap();
        db.sha256 = Some("0".repeat(64));
        let altered = out.path().join("altered.backup");
        write_archive(&altered, &manifest, &body).unwrap();
        let new = out.path().join("new");
        let err = format!("{:#}", put(&altered, &new).unwrap_err());
        assert!(
            err.contains("manifest's part volumes does not match"),
            "{err}"
        );
        assert!(!new.exists());
        // With the part's hash made to agree, the file's own hash is what catches it.
        let start = manifest
            .parts
            .iter()
            .take_while(|p| p.name != "volumes")
            .map(|p| p.entries as usize)
            .sum::<usize>();
        let part = manifest
            .parts
            .iter()
            .position(|p| p.name == "volumes")
            .unwrap();
        let end = start + manifest.parts[part].entries as usize;
        manifest.parts[part].sha256 = part_hash(&manifest.entries[start..end]).unwrap();
        fs::remove_file(&altered).unwrap();
        write_archive(&altered, &manifest, &body).unwrap();
        let err = format!("{:#}", put(&altered, &new).unwrap_err());
        assert!(err.contains("SHA-256 differs"), "{err}");
        assert!(!new.exists(), "a failed restore leaves nothing");
        // The untouched archive restores.
        put(&file, &new).unwrap();
    }
}
