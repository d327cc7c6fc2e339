//! Persistent volumes: the reconciler that binds claims to volumes, provisions `local-path`
//! volumes as directories under `<data-dir>/volumes`, reclaims released volumes and keeps the
//! protection finalizers. It decides in [`plan::plan`] (pure, unit-tested) and performs the
//! [`plan::Action`]s here: API writes through the view, and the directories themselves.
//!
//! The directories are the controller's job, not the node's: it runs in the same process on
//! the one node and knows the data directory, and making the directory before the PV exists
//! means a volume the agent sees always has its directory. Removal is guarded: only a volume
//! skiff provisioned (annotated as local-path's, a path directly inside the volumes folder),
//! only after the API confirms its claim is gone, never through a symlink.

pub mod plan;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::view::{View, WriteError};
use crate::controllers::plan::{execute, Write};
use plan::{Action, Inputs};

/// Where provisioned volumes live and what is said of their capacity.
#[derive(Clone, Debug)]
pub struct Storage {
    /// `<data-dir>/volumes`.
    pub volumes_dir: PathBuf,
    /// Why a claim's size is not enforced here (shown on every bound claim).
    pub capacity_note: String,
}

impl Storage {
    /// The settings for a data directory; looks at its filesystem once.
    pub fn new(data_dir: &Path) -> Self {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let at = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        Storage {
            volumes_dir: data_dir.join("volumes"),
            capacity_note: capacity_note(&mountinfo, &at),
        }
    }
}

/// Why capacity is not enforced for volumes under `path`, from `/proc/self/mountinfo`: skiff
/// sets no quotas (project quotas would need ext4/xfs mounted with `prjquota` and a project
/// id per directory); the note says which filesystem the data directory is on and whether
/// it could.
pub fn capacity_note(mountinfo: &str, path: &Path) -> String {
    // Fields: id parent major:minor root mount-point options ... - fstype source super-options
    let mount = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let (fstype, source, options) = (r.next()?, r.next()?, r.next().unwrap_or(""));
            path.starts_with(point).then(|| {
                (
                    point.to_string(),
                    fstype.to_string(),
                    source.to_string(),
                    options.to_string(),
                )
            })
        })
        .max_by_key(|(point, ..)| point.len());
    let Some((point, fstype, source, options)) = mount else {
        return "skiff sets no quotas, and the data directory's filesystem is unknown".into();
    };
    let quota = options
        .split(',')
        .any(|o| matches!(o, "prjquota" | "pquota" | "pqnoenforce"));
    let what = format!("the data directory is on {fstype} ({source} mounted at {point})");
    match (fstype.as_str(), quota) {
        ("ext4" | "xfs", true) => format!("{what} with project quotas, but skiff does not set them yet; a volume may grow past its size"),
        ("ext4" | "xfs", false) => format!("{what} without project quotas (mount option prjquota); a volume may grow past its size"),
        _ => format!("{what}, which has no per-directory quotas skiff can use; a volume may grow past its size"),
    }
}

/// Events already recorded, by (object uid, reason) → (message, when): a claim that waits
/// says so once every ten minutes, not at every pass.
static RECORDED: Mutex<Option<Recorded>> = Mutex::new(None);
type Recorded = HashMap<(String, &'static str), (String, Instant)>;
const REPEAT: Duration = Duration::from_secs(600);

/// Whether an event is new (or due again); remembers it.
fn is_news(e: &crate::controllers::plan::Event) -> bool {
    let mut seen = RECORDED.lock().unwrap_or_else(|p| p.into_inner());
    let seen = seen.get_or_insert_with(HashMap::new);
    if seen.len() > 10_000 {
        seen.clear();
    }
    let key = (crate::model::meta::uid(&e.about).to_string(), e.reason);
    match seen.get(&key) {
        Some((m, at)) if *m == e.message && at.elapsed() < REPEAT => false,
        _ => {
            seen.insert(key, (e.message.clone(), Instant::now()));
            true
        }
    }
}

/// One pass: plan from the caches, then perform the actions in order, stopping at the first
/// that fails (the next pass finishes the work).
pub async fn reconcile(view: &View, storage: &Storage) -> Result<(), VolumeError> {
    let (claims, volumes) = (
        view.list("PersistentVolumeClaim", None),
        view.list("PersistentVolume", None),
    );
    let (classes, pods) = (view.list("StorageClass", None), view.list("Pod", None));
    let now = crate::model::store::now_rfc3339();
    let inputs = Inputs {
        claims: &claims,
        volumes: &volumes,
        classes: &classes,
        pods: &pods,
        node: crate::model::node::name(),
        volumes_dir: &storage.volumes_dir,
        capacity_note: &storage.capacity_note,
        now: &now,
    };
    for action in plan::plan(&inputs) {
        match action {
            Action::Write(Write::Event(e)) => {
                if is_news(&e) {
                    execute(view, Write::Event(e)).await?;
                }
            }
            Action::Write(w) => {
                execute(view, w).await?;
            }
            Action::Provision { dir, volume } => {
                make_dir(&storage.volumes_dir, &dir).map_err(|e| io_error(&dir, e))?;
                execute(view, Write::Create(volume)).await?;
            }
            Action::Reclaim { volume, dir, claim } => {
                // The caches may lag: the claim must be gone in the store itself.
                if let Some(live) = view.get_live(&claim.0).await? {
                    if crate::model::meta::uid(&live) == claim.1 {
                        continue;
                    }
                }
                remove_dir(&storage.volumes_dir, &dir).map_err(|e| io_error(&dir, e))?;
                tracing::info!(volume = %volume, dir = %dir.display(), "reclaimed: directory removed");
                execute(view, Write::Delete(volume)).await?;
            }
        }
    }
    Ok(())
}

fn io_error(dir: &Path, e: std::io::Error) -> VolumeError {
    VolumeError::Dir(dir.to_path_buf(), e)
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// An API write failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A volume's directory could not be made or removed.
    #[error("volume directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
}

/// Makes `<volumes_dir>/<name>` (and the volumes folder, 0700): 0777, as local-path makes
/// them, so a container running as any user can write; the folder above keeps other users of
/// the host out.
pub fn make_dir(volumes_dir: &Path, dir: &Path) -> std::io::Result<()> {
    if !volumes_dir.exists() {
        std::fs::create_dir_all(volumes_dir)?;
        std::fs::set_permissions(volumes_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(std::io::Error::other(
                "exists and is not a directory (a symlink is never followed)",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

/// Removes a provisioned volume's directory: only a real directory directly inside the
/// volumes folder (itself not a symlink); a symlink is refused, not followed. The removal
/// itself never follows symlinks inside (std's `remove_dir_all` opens with `O_NOFOLLOW`).
pub fn remove_dir(volumes_dir: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.parent() != Some(volumes_dir) {
        return Err(std::io::Error::other(
            "not directly inside the volumes folder",
        ));
    }
    if std::fs::symlink_metadata(volumes_dir)?
        .file_type()
        .is_symlink()
    {
        return Err(std::io::Error::other("the volumes folder is a symlink"));
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(dir),
        Ok(_) => Err(std::io::Error::other(
            "not a directory (a symlink is never followed)",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
