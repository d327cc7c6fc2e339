//! Reading the manifests folder without mistaking "cannot see" for "gone": what a pass found,
//! what it could not read (so the files under it are not pruned), and which directory the
//! folder is (so an empty mount point before the disk is mounted, or a folder moved away and
//! replaced, does not prune every app).

use std::path::{Path, PathBuf};

use super::is_manifest_name;

/// What one scan of the folder found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Manifest files, relative to the folder, minus those disabled by a `.skip` sibling.
    pub files: Vec<PathBuf>,
    /// Paths (relative to the folder) that exist but could not be read — a directory whose
    /// listing failed, an entry whose metadata failed (a symlink to an unmounted disk): what
    /// the store holds from files under them is kept.
    pub unreadable: Vec<PathBuf>,
}

impl Listing {
    /// Whether `source` (a file path relative to the folder) may be under an unreadable path.
    pub fn hides(&self, source: &str) -> bool {
        let source = Path::new(source);
        self.unreadable.iter().any(|u| source.starts_with(u))
    }
}

/// Scans `dir`. Dot-directories are not entered. An error means the folder itself cannot be
/// listed (missing, unmounted, not a directory, no permission).
pub fn scan(dir: &Path) -> std::io::Result<Listing> {
    fn walk(root: &Path, dir: &Path, out: &mut Listing, skips: &mut Vec<PathBuf>) {
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(_) => {
                out.unreadable.push(rel(dir));
                return;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else {
                out.unreadable.push(rel(dir));
                continue;
            };
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let ft = match std::fs::metadata(&path) {
                Ok(m) => m.file_type(),
                Err(_) => {
                    out.unreadable.push(rel(&path));
                    continue;
                }
            };
            if ft.is_dir() {
                walk(root, &path, out, skips);
            } else if ft.is_file() {
                if let Some(base) = name.strip_suffix(".skip") {
                    skips.push(rel(&path).with_file_name(base));
                } else if is_manifest_name(&name) {
                    out.files.push(rel(&path));
                }
            }
        }
    }
    std::fs::read_dir(dir)?;
    let mut out = Listing::default();
    let mut skips = Vec::new();
    walk(dir, dir, &mut out, &mut skips);
    out.files.retain(|p| !skips.contains(p));
    out.files.sort();
    Ok(out)
}

/// Which directory the folder is: its device and inode. An empty mount point, or a folder
/// created in place of one moved away, is another directory than the one the store's objects
/// came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// The identity of `dir` now.
    pub fn of(dir: &Path) -> std::io::Result<Identity> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir)?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Reads a recorded identity (`None` if there is none or it does not parse).
    pub fn load(path: &Path) -> Option<Identity> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>());
        match (it.next(), it.next()) {
            (Some(Ok(dev)), Some(Ok(ino))) => Some(Identity { dev, ino }),
            _ => None,
        }
    }

    /// Records this identity durably at `path`.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::files::write_private(path, format!("{} {}\n", self.dev, self.ino).as_bytes())
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "device {}, inode {}", self.dev, self.ino)
    }
}
