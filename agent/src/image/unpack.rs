//! Safe layer extraction — a security boundary. Turns one layer blob (plain, gzip or zstd tar)
//! into a directory usable as an overlayfs lower layer, and computes the layer's diff id on the way.
//!
//! It writes only inside the destination directory it is given, and refuses the layer when an
//! entry tries to leave it: absolute paths and `..` components, entries below a symbolic link
//! (`x -> /etc` followed by `x/passwd`), and hard links to anything but a regular file already in
//! the layer, reached without symbolic links. Symbolic links themselves may point anywhere: they are
//! resolved inside the container's root later, never followed here. Whiteouts are converted to the
//! overlayfs format (`.wh.NAME` → a 0:0 character device `NAME`; `.wh..wh..opq` → the
//! `trusted.overlay.opaque=y` xattr on the directory). A size limit stops decompression bombs.
//! Cleaning up after a refusal is the caller's job (it unpacks into a scratch directory).

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::compression::decompress;
use super::digest::HashingReader;
use super::error::ImageError;

/// The xattr overlayfs reads to treat a directory of a lower layer as opaque.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The prefix of AUFS-style whiteout file names in layer tars.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The whiteout file that marks its directory opaque.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Other `.wh..wh.` names are AUFS bookkeeping, never content.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// Unpacks the layer blob at `blob` into the existing, empty directory `dest` and returns the
/// layer's diff id (`sha256:` of its uncompressed tar stream). `layer` names the layer in errors.
/// At most `max_bytes` of uncompressed stream and of file content are accepted.
pub(crate) fn unpack_layer(
    blob: &Path,
    dest: &Path,
    layer: &str,
    max_bytes: u64,
) -> Result<String, ImageError> {
    let file = File::open(blob).map_err(|e| ImageError::io("open the layer blob", blob, e))?;
    let exceeded = Rc::new(Cell::new(false));
    let too_large = || ImageError::LayerTooLarge {
        layer: layer.to_owned(),
        limit: max_bytes,
    };
    let stream_error = |source: io::Error, exceeded: &Cell<bool>| {
        if exceeded.get() {
            too_large()
        } else {
            ImageError::LayerRead {
                layer: layer.to_owned(),
                source,
            }
        }
    };
    let decompressed = decompress(BufReader::with_capacity(256 * 1024, file))
        .map_err(|e| stream_error(e, &exceeded))?;
    let limited = LimitedReader {
        inner: decompressed,
        remaining: max_bytes,
        exceeded: exceeded.clone(),
    };
    let mut archive = tar::Archive::new(HashingReader::new(limited));

    let mut unpacker = Unpacker {
        root: dest,
        layer,
        max_bytes,
        written: 0,
        chown: nix::unistd::geteuid().is_root(),
        dirs: Vec::new(),
    };
    let entries = archive.entries().map_err(|e| stream_error(e, &exceeded))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| stream_error(e, &exceeded))?;
        // An entry's content read past the limit: report the bomb, not the entry.
        unpacker
            .unpack_entry(&mut entry)
            .map_err(|e| if exceeded.get() { too_large() } else { e })?;
    }
    unpacker.finish_directories()?;
    let (diff_id, _) = archive
        .into_inner()
        .finish()
        .map_err(|e| stream_error(e, &exceeded))?;
    Ok(diff_id)
}

/// Fails (and raises a flag) once more than `remaining` bytes went through.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.remaining.checked_sub(n as u64) {
            Some(left) => {
                self.remaining = left;
                Ok(n)
            }
            None => {
                self.exceeded.set(true);
                Err(io::Error::other(
                    "the layer exceeds the maximum unpacked size",
                ))
            }
        }
    }
}

/// The state of one layer's extraction.
struct Unpacker<'a> {
    root: &'a Path,
    layer: &'a str,
    max_bytes: u64,
    /// File content written so far (sparse files count in full).
    written: u64,
    /// Whether to apply the entries' owners (only root may).
    chown: bool,
    /// Directories whose mtime is applied last (creating entries inside changes it).
    dirs: Vec<(PathBuf, u64)>,
}

impl Unpacker<'_> {
    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::UnsafeLayerEntry {
            layer: self.layer.to_owned(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    fn entry_io(&self, entry: &str, source: io::Error) -> ImageError {
        ImageError::LayerEntry {
            layer: self.layer.to_owned(),
            entry: entry.to_owned(),
            source,
        }
    }

    fn unpack_entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), ImageError> {
        let raw_path = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let components = sanitize(&raw_path)
            .map_err(|reason| self.unsafe_entry(&name, format!("has a path that {reason}")))?;

        let Some((last, parents)) = components.split_last() else {
            // "./": the layer's root directory itself.
            if kind.is_dir() {
                let root = self.root.to_path_buf();
                return self.apply_metadata(entry, &root, &name, true);
            }
            return Err(self.unsafe_entry(&name, "would replace the layer's root directory"));
        };
        let parent = self.ensure_parents(parents, &name)?;
        let last_bytes = last.as_bytes();

        if last_bytes == OPAQUE_MARKER {
            return xattr::set(&parent, OPAQUE_XATTR, b"y").map_err(|e| self.entry_io(&name, e));
        }
        if last_bytes.starts_with(AUFS_META_PREFIX) {
            return Ok(());
        }
        if let Some(hidden) = last_bytes.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(entry, &parent, hidden, &name);
        }

        let path = parent.join(last);
        match kind {
            EntryType::Directory => self.unpack_dir(entry, &path, &name),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.unpack_file(entry, &path, &name)
            }
            EntryType::Symlink => self.unpack_symlink(entry, &path, &name),
            EntryType::Link => self.unpack_hard_link(entry, &path, &name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.unpack_special(entry, kind, &path, &name)
            }
            other => Err(ImageError::UnsupportedLayerEntry {
                layer: self.layer.to_owned(),
                entry: name,
                kind: format!("{other:?}"),
            }),
        }
    }

    /// A whiteout `.wh.<hidden>` in `parent`: the overlayfs form, a 0/0 character device.
    fn whiteout<R: Read>(
        &self,
        entry: &tar::Entry<R>,
        parent: &Path,
        hidden: &[u8],
        name: &str,
    ) -> Result<(), ImageError> {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.unsafe_entry(name, "is a whiteout for an invalid name"));
        }
        let path = parent.join(OsStr::from_bytes(hidden));
        let io = |e| self.entry_io(name, e);
        remove_existing(&path).map_err(io)?;
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| io(e.into()))?;
        if self.chown {
            let (uid, gid) = owner(entry).map_err(io)?;
            lchown(&path, Some(uid), Some(gid)).map_err(io)?;
        }
        Ok(())
    }

    /// A directory: kept if there is one, replacing anything else.
    fn unpack_dir<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        name: &str,
    ) -> Result<(), ImageError> {
        let io = |e| self.entry_io(name, e);
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                fs::remove_file(path).map_err(io)?;
                create_dir(path).map_err(io)?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => create_dir(path).map_err(io)?,
            Err(e) => return Err(io(e)),
        }
        self.apply_metadata(entry, path, name, true)
    }

    /// A regular file, created anew (never through a symbolic link).
    fn unpack_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        name: &str,
    ) -> Result<(), ImageError> {
        remove_existing(path).map_err(|e| self.entry_io(name, e))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| self.entry_io(name, e))?;
        self.copy_content(entry, &mut file, name)?;
        drop(file);
        self.apply_metadata(entry, path, name, false)
    }

    fn unpack_symlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        name: &str,
    ) -> Result<(), ImageError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry(name, "is a symbolic link without a target"))?
            .into_owned();
        let io = |e| self.entry_io(name, e);
        remove_existing(path).map_err(io)?;
        symlink(OsStr::from_bytes(&target), path).map_err(io)?;
        self.apply_metadata(entry, path, name, false)
    }

    fn unpack_hard_link<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        name: &str,
    ) -> Result<(), ImageError> {
        let source = self.hard_link_source(entry, name)?;
        if source == path {
            return Ok(());
        }
        let io = |e| self.entry_io(name, e);
        remove_existing(path).map_err(io)?;
        fs::hard_link(&source, path).map_err(io)
    }

    /// A character or block device, or a FIFO.
    fn unpack_special<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        kind: EntryType,
        path: &Path,
        name: &str,
    ) -> Result<(), ImageError> {
        let io = |e| self.entry_io(name, e);
        remove_existing(path).map_err(io)?;
        let (sflag, dev) = match kind {
            EntryType::Char | EntryType::Block => {
                let major = entry.header().device_major().map_err(io)?.unwrap_or(0);
                let minor = entry.header().device_minor().map_err(io)?.unwrap_or(0);
                let sflag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (sflag, makedev(major.into(), minor.into()))
            }
            _ => (SFlag::S_IFIFO, 0),
        };
        mknod(path, sflag, Mode::from_bits_truncate(0o600), dev).map_err(|e| io(e.into()))?;
        self.apply_metadata(entry, path, name, false)
    }

    /// Makes sure every parent of an entry exists as a real directory (creating missing ones)
    /// and returns the innermost. A symbolic link or other non-directory on the way is refused.
    fn ensure_parents(&self, parents: &[&OsStr], entry: &str) -> Result<PathBuf, ImageError> {
        let mut dir = self.root.to_path_buf();
        for (i, component) in parents.iter().enumerate() {
            dir.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) => {
                    let what = if meta.file_type().is_symlink() {
                        "symbolic link"
                    } else {
                        "non-directory"
                    };
                    return Err(self.unsafe_entry(
                        entry,
                        format!(
                            "would be written through the {what} {:?} in the layer",
                            join(&parents[..=i])
                        ),
                    ));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    create_dir(&dir).map_err(|e| self.entry_io(entry, e))?
                }
                Err(e) => return Err(self.entry_io(entry, e)),
            }
        }
        Ok(dir)
    }

    /// Where a hard link entry's target is: a regular file already unpacked in this layer,
    /// reached without symbolic links.
    fn hard_link_source<R: Read>(
        &self,
        entry: &tar::Entry<R>,
        name: &str,
    ) -> Result<PathBuf, ImageError> {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry(name, "is a hard link without a target"))?
            .into_owned();
        let target = String::from_utf8_lossy(&raw).into_owned();
        let refuse =
            |why: &str| self.unsafe_entry(name, format!("is a hard link to {target:?}, {why}"));
        let components =
            sanitize(&raw).map_err(|reason| refuse(&format!("whose path {reason}")))?;
        if components.is_empty() {
            return Err(refuse("the layer's root directory"));
        }
        let mut path = self.root.to_path_buf();
        for (i, component) in components.iter().enumerate() {
            path.push(component);
            let last = i + 1 == components.len();
            match fs::symlink_metadata(&path) {
                Ok(meta) if last && meta.is_file() => {}
                Ok(meta) if !last && meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() && !last => {
                    return Err(refuse("which is reached through a symbolic link"))
                }
                Ok(_) => return Err(refuse("which is not a regular file in the layer")),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(refuse("which does not exist earlier in the layer"))
                }
                Err(e) => return Err(self.entry_io(name, e)),
            }
        }
        Ok(path)
    }

    fn copy_content<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        file: &mut File,
        name: &str,
    ) -> Result<(), ImageError> {
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(|e| self.entry_io(name, e))?;
            if n == 0 {
                return Ok(());
            }
            self.written += n as u64;
            if self.written > self.max_bytes {
                return Err(ImageError::LayerTooLarge {
                    layer: self.layer.to_owned(),
                    limit: self.max_bytes,
                });
            }
            file.write_all(&buf[..n])
                .map_err(|e| self.entry_io(name, e))?;
        }
    }

    /// Applies owner, mode, xattrs and mtime of an entry to what was created at `path`
    /// (never following a symbolic link). Directory mtimes are deferred.
    fn apply_metadata<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        name: &str,
        is_dir: bool,
    ) -> Result<(), ImageError> {
        let io = |e| self.entry_io(name, e);
        let header = entry.header();
        let is_symlink = header.entry_type() == EntryType::Symlink;
        if self.chown {
            let (uid, gid) = owner(entry).map_err(io)?;
            lchown(path, Some(uid), Some(gid)).map_err(io)?;
        }
        // After chown, which clears set-id bits.
        if !is_symlink {
            let mode = header.mode().map_err(io)? & 0o7777;
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io)?;
        }
        let mtime = header.mtime().map_err(io)?;
        if let Some(extensions) = entry.pax_extensions().map_err(io)? {
            for extension in extensions {
                let extension = extension.map_err(io)?;
                let Ok(key) = extension.key() else { continue };
                let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
                    continue;
                };
                // trusted.* (overlayfs's own redirect/opaque/metacopy among them) is never content.
                if attr.starts_with("trusted.") {
                    tracing::debug!(
                        layer = self.layer,
                        entry = name,
                        attr,
                        "ignoring trusted xattr"
                    );
                    continue;
                }
                if let Err(e) = xattr::set(path, attr, extension.value_bytes()) {
                    tracing::warn!(layer = self.layer, entry = name, attr, error = %e,
                        "could not set an extended attribute from the layer");
                }
            }
        }
        if is_dir {
            self.dirs.push((path.to_path_buf(), mtime));
            Ok(())
        } else {
            set_mtime(path, mtime).map_err(io)
        }
    }

    /// Applies the deferred directory mtimes, innermost first.
    fn finish_directories(&mut self) -> Result<(), ImageError> {
        for (path, mtime) in self.dirs.drain(..).rev() {
            set_mtime(&path, mtime)
                .map_err(|e| ImageError::io("set the modification time of", &path, e))?;
        }
        Ok(())
    }
}

/// Splits an entry path into its components, dropping a leading "./", "." components and
/// empty components; refuses absolute paths and `..`. The entry "/" alone is the root itself
/// (umoci writes it for `umoci insert DIR /`), like "./".
pub(crate) fn sanitize(raw: &[u8]) -> Result<Vec<&OsStr>, &'static str> {
    if !raw.is_empty() && raw.iter().all(|&b| b == b'/') {
        return Ok(Vec::new());
    }
    if raw.first() == Some(&b'/') {
        return Err("is absolute");
    }
    let mut components = Vec::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("contains a `..` component"),
            c => components.push(OsStr::from_bytes(c)),
        }
    }
    Ok(components)
}

fn join(components: &[&OsStr]) -> String {
    components
        .iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn owner<R: Read>(entry: &tar::Entry<R>) -> io::Result<(u32, u32)> {
    let header = entry.header();
    let uid = u32::try_from(header.uid()?)
        .map_err(|_| io::Error::new(ErrorKind::InvalidData, "uid does not fit 32 bits"))?;
    let gid = u32::try_from(header.gid()?)
        .map_err(|_| io::Error::new(ErrorKind::InvalidData, "gid does not fit 32 bits"))?;
    Ok((uid, gid))
}

fn create_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(path)
}

/// Removes whatever is at `path` (a directory with its contents), never following a link.
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let seconds = i64::try_from(mtime).unwrap_or(i64::MAX);
    let time = TimeSpec::new(seconds, 0);
    utimensat(None, path, &time, &time, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_accepts_relative_paths_and_refuses_escapes() {
        assert_eq!(sanitize(b"./a/b").unwrap(), vec!["a", "b"]);
        assert_eq!(sanitize(b"a//./b/").unwrap(), vec!["a", "b"]);
        assert!(sanitize(b"./").unwrap().is_empty());
        assert!(sanitize(b"/").unwrap().is_empty());
        assert_eq!(sanitize(b"/etc/passwd"), Err("is absolute"));
        assert_eq!(sanitize(b"//etc"), Err("is absolute"));
        assert_eq!(sanitize(b"a/../../b"), Err("contains a `..` component"));
        assert_eq!(sanitize(b".."), Err("contains a `..` component"));
    }
}
