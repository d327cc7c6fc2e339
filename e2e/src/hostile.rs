//! Hostile image archives: `docker save`-style archives (`manifest.json`, config with correct
//! `diff_ids`, uncompressed layer named by its diff id) whose only defect is a layer entry that
//! would write outside the layer directory. Everything else is valid, so an importer that
//! refuses them refuses them for the right reason.
//!
//! Every escape aims at `/tmp/skiff-e2e-<marker>` (a folder the test creates and checks) or at
//! `escape-<marker>` one level above the layer directory.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use crate::{sha256_hex, write_tar, ArchiveFile};

/// Enough `../` to reach `/` from any directory of the store.
const UP: &str = "../../../../../../../../../../../../../../../../";

/// One hostile archive.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// Short name of the kind of hostility.
    pub kind: &'static str,
    pub path: PathBuf,
    /// The image reference in the archive's `RepoTags`.
    pub image: String,
    /// A string the importer's error should contain (the offending entry's name).
    pub entry: String,
}

/// The folder outside the store that the escapes aim at.
pub fn target_dir(marker: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/skiff-e2e-{marker}"))
}

/// A layer entry, written with raw header bytes so that no path validation interferes.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// Builds an uncompressed layer tar from `entries` exactly as given (`..` and absolute names
/// included).
pub fn raw_layer(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_704_067_200);
        let (name, data): (&str, &[u8]) = match e {
            Entry::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (n, &[])
            }
            Entry::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                (n, d)
            }
            Entry::Symlink(n, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name_literal(target.as_bytes())?;
                (n, &[])
            }
            Entry::Hardlink(n, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_link_name_literal(target.as_bytes())?;
                (n, &[])
            }
        };
        assert!(name.len() < 100, "raw_layer: name too long: {name}");
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data)?;
    }
    Ok(b.into_inner()?)
}

/// Writes a `docker save`-style archive of one image with the given uncompressed layers:
/// `manifest.json`, `<sha256(config)>.json` with matching `rootfs.diff_ids`, `<diffid>.tar`.
pub fn docker_save_archive(out: &Path, image: &str, layers: &[Vec<u8>]) -> Result<()> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>(),
        },
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "skiff-e2e hostile"}],
    }))?;
    let config_id = sha256_hex(&config);
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": [image],
        "Layers": diff_ids.iter().map(|d| format!("{d}.tar")).collect::<Vec<_>>(),
    }]))?;
    let mut files = vec![
        ArchiveFile {
            path: "manifest.json".into(),
            data: manifest,
        },
        ArchiveFile {
            path: format!("{config_id}.json"),
            data: config,
        },
    ];
    for (d, l) in diff_ids.iter().zip(layers) {
        files.push(ArchiveFile {
            path: format!("{d}.tar"),
            data: l.clone(),
        });
    }
    write_tar(out, &files)
}

/// Builds every kind of hostile archive into `dir`, aimed at [`target_dir`]`(marker)`.
/// Creates the target folder (empty, plus a `victim` file for the hard-link case) so that an
/// importer that follows an escape leaves visible traces in it.
pub fn build_all(dir: &Path, marker: &str) -> Result<Vec<Hostile>> {
    fs::create_dir_all(dir)?;
    let target = target_dir(marker);
    fs::create_dir_all(&target)?;
    fs::write(target.join("victim"), b"original\n")?;
    let t = target.to_string_lossy().to_string();
    let benign = Entry::File("hello.txt", b"hello\n");
    let escape_name = format!("../escape-{marker}");
    let deep_name = format!("{UP}tmp/skiff-e2e-{marker}/dotdot-deep");
    let abs_name = format!("{t}/absolute");
    let rel_link_target = format!("{UP}tmp/skiff-e2e-{marker}");
    let victim_rel = format!("{UP}tmp/skiff-e2e-{marker}/victim");
    let victim_abs = format!("{t}/victim");
    let cases: Vec<(&'static str, Vec<Entry>, String)> = vec![
        (
            "dotdot",
            vec![Entry::Dir("etc/"), Entry::File(&escape_name, b"escaped\n")],
            format!("escape-{marker}"),
        ),
        (
            "dotdot-deep",
            vec![benign, Entry::File(&deep_name, b"escaped\n")],
            "dotdot-deep".to_string(),
        ),
        (
            "absolute",
            vec![Entry::File(&abs_name, b"escaped\n")],
            "absolute".to_string(),
        ),
        (
            "symlink-absolute",
            vec![
                Entry::Symlink("evil", &t),
                Entry::File("evil/pwned", b"pwned\n"),
            ],
            "evil".to_string(),
        ),
        (
            "symlink-relative",
            vec![
                Entry::Dir("a/"),
                Entry::Symlink("a/evil2", &rel_link_target),
                Entry::File("a/evil2/pwned2", b"pwned\n"),
            ],
            "evil2".to_string(),
        ),
        (
            "hardlink-relative",
            vec![
                Entry::Hardlink("hl", &victim_rel),
                Entry::File("hl", b"pwned\n"),
            ],
            "hl".to_string(),
        ),
        (
            "hardlink-absolute",
            vec![Entry::Hardlink("hl2", &victim_abs)],
            "hl2".to_string(),
        ),
    ];
    let mut out = Vec::new();
    for (kind, entries, entry) in cases {
        let layer = raw_layer(&entries)?;
        let image = format!("hostile-{kind}:{marker}");
        let path = dir.join(format!("hostile-{kind}-{marker}.tar"));
        docker_save_archive(&path, &image, &[layer])?;
        out.push(Hostile {
            kind,
            path,
            image,
            entry,
        });
    }
    Ok(out)
}

/// What the escapes left outside the store: unexpected files in the target folder, a changed
/// victim, `escape-<marker>` files next to or above `store_root`, in `/tmp` or in the cwd.
pub fn traces(marker: &str, store_root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let target = target_dir(marker);
    if let Ok(rd) = fs::read_dir(&target) {
        for e in rd.flatten() {
            if e.file_name() != "victim" {
                v.push(format!("{} appeared", e.path().display()));
            }
        }
    }
    match fs::read(target.join("victim")) {
        Ok(d) if d == b"original\n" => {}
        Ok(d) => v.push(format!(
            "{}/victim was changed to {:?}",
            target.display(),
            String::from_utf8_lossy(&d)
        )),
        Err(_) => {}
    }
    let name = format!("escape-{marker}");
    let mut dirs: Vec<PathBuf> = vec![PathBuf::from("/tmp"), PathBuf::from("/")];
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.clone());
        if let Some(p) = cwd.parent() {
            dirs.push(p.to_path_buf());
        }
    }
    let mut p = Some(store_root);
    while let Some(d) = p {
        dirs.push(d.to_path_buf());
        p = d.parent();
    }
    for d in dirs {
        let f = d.join(&name);
        if f.exists() || f.symlink_metadata().is_ok() {
            v.push(format!("{} appeared", f.display()));
        }
    }
    // Anywhere inside the store's tree, too: only the layer directory may hold files.
    let mut found = Vec::new();
    find_named(store_root, &name, &mut found, 0);
    for f in found {
        v.push(format!("{} appeared inside the store tree", f.display()));
    }
    v
}

fn find_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_name().to_str() == Some(name) {
            out.push(e.path());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_named(&e.path(), name, out, depth + 1);
        }
    }
}

/// Removes the target folder (it is ours: made by [`build_all`]).
pub fn cleanup(marker: &str) {
    let _ = fs::remove_dir_all(target_dir(marker));
}
