//! A container's log file with kubelet's rotation (`containerLogMaxSize`,
//! `containerLogMaxFiles`), written by the shim.
//!
//! kubelet's container log manager renames `N.log` to `N.log.<timestamp>` once it is larger than
//! the maximum size, asks the runtime to reopen the log, gzips the rotated files but the newest,
//! and deletes the oldest so that at most `MaxFiles` files remain (the current one included).
//! Here the writer itself rotates — it is the one process that writes the file, so no line is
//! lost or split between files, and a file never grows past the maximum (kubelet's grows until
//! its next 10-second check). A rotated file is named `N.log.<UTC yyyymmdd-hhmmss.nanoseconds>`
//! (kubelet's name with sub-second precision, since a fast writer rotates more than once a
//! second), `.gz` once compressed.
//!
//! When instance N of a container starts, the files of instances before N − 1 and the rotated
//! files of N − 1 are deleted: `kubectl logs --previous` reads `(N − 1).log` only.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// kubelet's `containerLogMaxSize` default: 10 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// kubelet's `containerLogMaxFiles` default.
pub const DEFAULT_MAX_FILES: u32 = 5;

/// How a container's log is rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Largest size of one file, bytes.
    pub max_size: u64,
    /// Most files of one container instance, the current one included (at least 2).
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// An open container log.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl LogFile {
    /// Opens (appending, creating it and its directory) the log at `path`, `<dir>/<N>.log`,
    /// and deletes the files of older instances that `--previous` no longer needs.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            if let Some(n) = restart_of(path) {
                remove_older_instances(dir, n);
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        })
    }

    /// Appends one whole record, rotating first when it would make the file larger than the
    /// maximum. Errors are the caller's to ignore: a full disk must not stop the container.
    pub fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + record.len() as u64 > self.rotation.max_size {
            if let Err(e) = self.rotate() {
                eprintln!("skiff shim: rotating {}: {e}", self.path.display());
            }
        }
        self.file.write_all(record)?;
        self.size += record.len() as u64;
        Ok(())
    }

    /// Flushes the file to disk.
    pub fn sync(&self) {
        let _ = self.file.sync_all();
    }

    /// Renames the current file aside, opens a new one, and keeps at most `max_files` files:
    /// the oldest rotated ones are deleted, all but the newest rotated one compressed.
    fn rotate(&mut self) -> std::io::Result<()> {
        let stamp = rotation_stamp(jiff::Timestamp::now());
        let rotated = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        std::fs::rename(&self.path, &rotated)?;
        // A reader following the file notices the new inode at the path and reopens it.
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        let mut old = rotated_files(&self.path);
        let keep = self.rotation.max_files.saturating_sub(1).max(1) as usize;
        while old.len() > keep {
            let _ = std::fs::remove_file(old.remove(0));
        }
        // The newest rotated file stays as it is (kubelet's too), the older ones are gzipped.
        for f in old.iter().rev().skip(1) {
            if f.extension().is_some_and(|e| e == "gz") {
                continue;
            }
            if let Err(e) = compress(f) {
                eprintln!("skiff shim: compressing {}: {e}", f.display());
            }
        }
        Ok(())
    }
}

/// The stamp of a file rotated at `t`: `yyyymmdd-hhmmss.nnnnnnnnn` (UTC, fixed width, so that
/// stamps sort as times do).
pub fn rotation_stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y%m%d-%H%M%S.%9f").to_string()
}

/// The restart number of `<dir>/<N>.log`.
fn restart_of(path: &Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// The rotated files of the log at `path` (`<path>.<stamp>[.gz]`), oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.to_string();
                    let stamp = n.strip_prefix(&prefix)?;
                    // A compression in progress (`.gz.tmp`) is not a log file yet.
                    (!stamp.ends_with(".tmp")).then(|| (stamp.to_string(), e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Deletes, in a container's log directory, the files of instances before `n - 1` and the
/// rotated files of `n - 1`.
fn remove_older_instances(dir: &Path, n: u32) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((restart, rest)) = name.split_once(".log") else {
            continue;
        };
        let Ok(restart) = restart.parse::<u32>() else {
            continue;
        };
        let older = restart + 1 < n;
        let previous_rotated = restart + 1 == n && !rest.is_empty();
        if older || previous_rotated {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Gzips `path` into `path.gz` (through a `.tmp` file) and deletes `path`.
fn compress(path: &Path) -> std::io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let mut input = File::open(path)?;
    let mut encoder =
        flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::fast());
    std::io::copy(&mut input, &mut encoder)?;
    encoder.finish()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_compresses_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let rotation = Rotation {
            max_size: 1000,
            max_files: 3,
        };
        let mut log = LogFile::open(&path, rotation).unwrap();
        let record = [b'x'; 99];
        let mut all = Vec::new();
        for i in 0..100u32 {
            let mut r = format!("{i:04} ").into_bytes();
            r.extend_from_slice(&record);
            r.push(b'\n');
            log.write_record(&r).unwrap();
            all.extend_from_slice(&r);
        }
        let names = files(&dir.path().join("c"));
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names.iter().filter(|n| n.ends_with(".gz")).count(), 1);
        assert!(names.contains(&"0.log".to_string()));
        for f in std::fs::read_dir(dir.path().join("c")).unwrap().flatten() {
            assert!(f.metadata().unwrap().len() <= 1000);
        }
        // Oldest first, the files hold the end of what was written, no line lost or split.
        let mut kept = Vec::new();
        for f in rotated_files(&path) {
            let mut bytes = Vec::new();
            if f.extension().is_some_and(|e| e == "gz") {
                use std::io::Read;
                flate2::read::GzDecoder::new(File::open(&f).unwrap())
                    .read_to_end(&mut bytes)
                    .unwrap();
            } else {
                bytes = std::fs::read(&f).unwrap();
            }
            kept.extend_from_slice(&bytes);
        }
        kept.extend_from_slice(&std::fs::read(&path).unwrap());
        assert!(
            all.ends_with(&kept),
            "the kept files are the newest records in order"
        );
        assert_eq!(kept.len() % 105, 0);
        assert!(kept.len() >= 2 * 1000 - 105);
    }

    #[test]
    fn stamps_sort_as_times() {
        let t: jiff::Timestamp = "2026-01-02T03:04:05.5Z".parse().unwrap();
        assert_eq!(rotation_stamp(t), "20260102-030405.500000000");
        let later: jiff::Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert!(rotation_stamp(later) < rotation_stamp(t));
    }

    #[test]
    fn a_new_instance_removes_what_previous_does_not_need() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "0.log",
            "0.log.20260101-000000.000000001.gz",
            "1.log",
            "1.log.20260101-000000.000000002",
            "1.log.20260101-000000.000000001.gz",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let _log = LogFile::open(&dir.path().join("2.log"), Rotation::default()).unwrap();
        assert_eq!(files(dir.path()), ["1.log", "2.log", "notes.txt"]);
    }
}
