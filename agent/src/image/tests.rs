//! Tests of the whole image store: archives of each format built in-process (and once with real
//! tools), hostile layers and archives, verification failures. They run as root (device nodes,
//! ownership, trusted xattrs).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::archive::host_platform;
use super::unpack::OPAQUE_XATTR;
use super::*;

// ---------------------------------------------------------------------------------------------
// Building layers and archives.

/// One entry of a test layer. Paths and link targets are written raw, unchecked.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Mode(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
    XattrFile(&'a str, &'a [u8], &'a str, &'a [u8]),
}

fn raw_header(kind: tar::EntryType, path: &str, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_mtime(1_700_000_000);
    let name = &mut header.as_gnu_mut().expect("a gnu header").name;
    assert!(path.len() < name.len(), "test paths are short");
    name[..path.len()].copy_from_slice(path.as_bytes());
    header
}

fn set_raw_link(header: &mut tar::Header, target: &str) {
    let slot = &mut header.as_gnu_mut().expect("a gnu header").linkname;
    assert!(target.len() < slot.len());
    slot[..target.len()].copy_from_slice(target.as_bytes());
}

/// One PAX extended header record: "<len> <key>=<value>\n", where len counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    assert_eq!(record.len(), len);
    record
}

fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let (mut header, data): (tar::Header, &[u8]) = match *entry {
            E::Dir(p) => (raw_header(tar::EntryType::Directory, p, 0, 0o755), b""),
            E::File(p, data) => (
                raw_header(tar::EntryType::Regular, p, data.len() as u64, 0o644),
                data,
            ),
            E::Mode(p, data, mode) => (
                raw_header(tar::EntryType::Regular, p, data.len() as u64, mode),
                data,
            ),
            E::Symlink(p, target) => {
                let mut h = raw_header(tar::EntryType::Symlink, p, 0, 0o777);
                set_raw_link(&mut h, target);
                (h, b"")
            }
            E::Hardlink(p, target) => {
                let mut h = raw_header(tar::EntryType::Link, p, 0, 0o644);
                set_raw_link(&mut h, target);
                (h, b"")
            }
            E::Char(p, major, minor) => {
                let mut h = raw_header(tar::EntryType::Char, p, 0, 0o666);
                h.set_device_major(major).unwrap();
                h.set_device_minor(minor).unwrap();
                (h, b"")
            }
            E::Fifo(p) => (raw_header(tar::EntryType::Fifo, p, 0, 0o640), b""),
            E::XattrFile(p, data, attr, value) => {
                let record = pax_record(&format!("SCHILY.xattr.{attr}"), value);
                let mut pax = raw_header(
                    tar::EntryType::XHeader,
                    "PaxHeaders/x",
                    record.len() as u64,
                    0o644,
                );
                pax.set_cksum();
                builder.append(&pax, &record[..]).unwrap();
                (
                    raw_header(tar::EntryType::Regular, p, data.len() as u64, 0o755),
                    data,
                )
            }
        };
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

fn config_json(diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": host_platform().1,
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    }))
    .unwrap()
}

/// An outer archive made of (path, content) regular files.
fn outer_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A classic `docker save` archive of one image with these (uncompressed) layers.
fn docker_classic(layers: &[Vec<u8>], tags: &[&str], cmd: &[&str]) -> (Vec<u8>, String) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = config_json(&diff_ids, cmd);
    let id = sha(&config);
    let mut files = Vec::new();
    let mut layer_paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let dir = format!("{:064x}", i + 1);
        files.push((format!("{dir}/VERSION"), b"1.0".to_vec()));
        files.push((format!("{dir}/layer.tar"), layer.clone()));
        layer_paths.push(format!("{dir}/layer.tar"));
    }
    files.push((format!("{}.json", hex_of(&id)), config));
    let manifest = json!([{"Config": format!("{}.json", hex_of(&id)), "RepoTags": tags, "Layers": layer_paths}]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    (outer_tar(&files), id)
}

struct OciImage {
    files: Vec<(String, Vec<u8>)>,
    manifest_descriptor: serde_json::Value,
    manifest_digest: String,
    id: String,
    layer_blobs: Vec<String>,
}

/// The blobs of one OCI image whose layers are given as (blob, diff id source) pairs.
fn oci_image(layers: &[(Vec<u8>, &str, Vec<u8>)], cmd: &[&str]) -> OciImage {
    let diff_ids: Vec<String> = layers.iter().map(|(_, _, raw)| sha(raw)).collect();
    let config = config_json(&diff_ids, cmd);
    let id = sha(&config);
    let mut files = vec![(format!("blobs/sha256/{}", hex_of(&id)), config.clone())];
    let mut layer_descriptors = Vec::new();
    let mut layer_blobs = Vec::new();
    for (blob, media_type, _) in layers {
        let digest = sha(blob);
        files.push((format!("blobs/sha256/{}", hex_of(&digest)), blob.clone()));
        layer_descriptors
            .push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
        layer_blobs.push(digest);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": id, "size": config.len()},
        "layers": layer_descriptors,
    }))
    .unwrap();
    let manifest_digest = sha(&manifest);
    files.push((
        format!("blobs/sha256/{}", hex_of(&manifest_digest)),
        manifest.clone(),
    ));
    OciImage {
        files,
        manifest_descriptor: json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
        }),
        manifest_digest,
        id,
        layer_blobs,
    }
}

fn with_annotations(
    mut descriptor: serde_json::Value,
    annotations: serde_json::Value,
) -> serde_json::Value {
    descriptor["annotations"] = annotations;
    descriptor
}

fn index_json(descriptors: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": descriptors})).unwrap()
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    path
}

/// A scratch area: `data` is the data dir, `outside` a directory hostile archives aim at.
struct Scratch {
    _dir: tempfile::TempDir,
    data: PathBuf,
    outside: PathBuf,
    archives: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outside = dir.path().join("outside");
    let archives = dir.path().join("archives");
    for d in [&data, &outside, &archives] {
        fs::create_dir_all(d).unwrap();
    }
    Scratch {
        data,
        outside,
        archives,
        _dir: dir,
    }
}

/// Every path under `dir` with (type, size, inode, mtime) for files and links (directories only
/// by existence: their mtimes change with scratch entries coming and going).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u64, u64, i64)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (String, u64, u64, i64)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().to_owned();
            if meta.is_dir() {
                out.insert(rel, ("dir".into(), 0, meta.ino(), 0));
                walk(root, &entry.path(), out);
            } else {
                out.insert(
                    rel,
                    (
                        format!("{:?}", meta.file_type()),
                        meta.len(),
                        meta.ino(),
                        meta.mtime(),
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts a refused import left no trace: no image, no layer, no scratch, nothing outside.
fn assert_nothing_recorded(store: &ImageStore, scratch: &Scratch) {
    assert!(store.list().unwrap().is_empty(), "no image is recorded");
    let images: Vec<_> = fs::read_dir(store.root().join("images")).unwrap().collect();
    assert!(images.is_empty(), "no image record: {images:?}");
    let layers: Vec<_> = fs::read_dir(store.root().join("layers")).unwrap().collect();
    assert!(
        layers.is_empty(),
        "no layer directory (complete or partial): {layers:?}"
    );
    let tmp: Vec<_> = fs::read_dir(store.root().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "scratch cleaned up: {tmp:?}");
    let outside: Vec<_> = fs::read_dir(&scratch.outside).unwrap().collect();
    assert!(
        outside.is_empty(),
        "nothing written outside the store: {outside:?}"
    );
    let data: Vec<_> = fs::read_dir(&scratch.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        data,
        vec!["store"],
        "nothing beside the store in the data dir"
    );
}

fn base_layer() -> Vec<u8> {
    layer_tar(&[
        E::Dir("./"),
        E::Dir("./bin/"),
        E::Mode("./bin/busybox", b"#!fake busybox", 0o4755),
        E::Symlink("./bin/sh", "/bin/busybox"),
        E::Hardlink("./bin/ls", "bin/busybox"),
        E::Dir("etc/"),
        E::File("etc/hostname", b"base\n"),
        E::File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        E::Dir("var/"),
        E::Dir("var/cache/"),
        E::File("var/cache/old", b"old"),
        E::Dir("dev/"),
        E::Char("dev/null", 1, 3),
        E::Fifo("run.fifo"),
        E::XattrFile(
            "bin/ping",
            b"ping",
            "security.capability",
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ),
        E::XattrFile("bin/sneaky", b"x", "trusted.overlay.redirect", b"/etc"),
        // Implicit parent directories, and a later entry replacing an earlier one.
        E::File("usr/share/doc/readme", b"first"),
        E::File("usr/share/doc/readme", b"second"),
    ])
}

fn upper_layer() -> Vec<u8> {
    layer_tar(&[
        E::Dir("etc/"),
        E::File("etc/.wh.hostname", b""),
        E::Dir("var/cache/"),
        E::File("var/cache/.wh..wh..opq", b""),
        E::File("var/cache/new", b"new"),
        E::Symlink("usr", "/opt"),
    ])
}

// ---------------------------------------------------------------------------------------------
// Happy paths.

#[test]
fn docker_classic_archive_imports_resolves_and_unpacks_safely() {
    let s = scratch();
    let store = ImageStore::open(&s.data).unwrap();
    let (base, upper) = (base_layer(), upper_layer());
    let (archive, id) = docker_classic(
        &[base.clone(), upper.clone()],
        &["demo:latest", "demo:1"],
        &["/bin/sh", "-c", "echo hi"],
    );
    let path = write_file(&s.archives, "demo.tar", &archive);

    let imported = store.import_archive(&path).unwrap();
    assert_eq!(
        imported,
        vec![ImportedImage {
            names: vec![
                "docker.io/library/demo:latest".into(),
                "docker.io/library/demo:1".into()
            ],
            id: id.clone(),
        }]
    );

    for spelling in [
        "demo",
        "demo:latest",
        "docker.io/library/demo",
        "docker.io/library/demo:latest",
        "index.docker.io/library/demo:latest",
        "library/demo:1",
        id.as_str(),
        hex_of(&id),
    ] {
        let image = store
            .resolve(spelling)
            .unwrap()
            .unwrap_or_else(|| panic!("{spelling} resolves"));
        assert_eq!(image.id, id, "{spelling}");
    }
    for absent in [
        "demo:2",
        "other",
        "registry.lan:5000/demo",
        &format!("sha256:{:064x}", 7),
    ] {
        assert!(
            store.resolve(absent).unwrap().is_none(),
            "{absent} is absent"
        );
    }
    assert!(
        store.resolve("Demo").is_err(),
        "an invalid reference is an error"
    );

    let image = store.resolve("demo").unwrap().unwrap();
    let cmd = image
        .config
        .config()
        .as_ref()
        .unwrap()
        .cmd()
        .clone()
        .unwrap();
    assert_eq!(cmd, vec!["/bin/sh", "-c", "echo hi"]);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(
        image.layers[0],
        store.root().join("layers").join(hex_of(&sha(&base)))
    );
    assert_eq!(
        image.layers[1],
        store.root().join("layers").join(hex_of(&sha(&upper)))
    );
    assert_eq!(store.list().unwrap().len(), 1);

    // The base layer's contents.
    let l0 = &image.layers[0];
    let busybox = fs::symlink_metadata(l0.join("bin/busybox")).unwrap();
    assert_eq!(busybox.mode() & 0o7777, 0o4755, "set-uid survives chown");
    assert_eq!((busybox.uid(), busybox.gid()), (1000, 1000));
    assert_eq!(busybox.mtime(), 1_700_000_000);
    assert_eq!(
        fs::read_link(l0.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(fs::symlink_metadata(l0.join("bin/sh")).unwrap().uid(), 1000);
    assert_eq!(
        fs::metadata(l0.join("bin/ls")).unwrap().ino(),
        busybox.ino(),
        "hard link"
    );
    let null = fs::symlink_metadata(l0.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(fs::symlink_metadata(l0.join("run.fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::read(l0.join("usr/share/doc/readme")).unwrap(),
        b"second"
    );
    assert_eq!(
        fs::symlink_metadata(l0.join("usr/share")).unwrap().mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs::symlink_metadata(l0.join("etc")).unwrap().mtime(),
        1_700_000_000,
        "dir mtimes are applied last"
    );
    assert_eq!(fs::symlink_metadata(l0).unwrap().mode() & 0o777, 0o755);
    assert!(xattr::get(l0.join("bin/ping"), "security.capability")
        .unwrap()
        .is_some());
    assert!(
        xattr::get(l0.join("bin/sneaky"), "trusted.overlay.redirect")
            .unwrap()
            .is_none(),
        "trusted.* xattrs from a layer are dropped"
    );

    // The upper layer: whiteouts in overlayfs format.
    let l1 = &image.layers[1];
    let whiteout = fs::symlink_metadata(l1.join("etc/hostname")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert!(!l1.join("etc/.wh.hostname").exists());
    assert_eq!(
        xattr::get(l1.join("var/cache"), OPAQUE_XATTR)
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l1.join("var/cache/.wh..wh..opq").exists());
    assert_eq!(fs::read(l1.join("var/cache/new")).unwrap(), b"new");
    assert!(xattr::get(l1.join("etc"), OPAQUE_XATTR).unwrap().is_none());

    // Layer blobs are kept by digest; nothing is left in tmp.
    assert!(store
        .root()
        .join("blobs/sha256")
        .join(hex_of(&sha(&base)))
        .is_file());
    assert!(store
        .root()
        .join("blobs/sha256")
        .join(hex_of(&id))
        .is_file());
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);

    // Importing again changes nothing.
    let before = snapshot(store.root());
    assert_eq!(store.import_archive(&path).unwrap(), imported);
    assert_eq!(snapshot(store.root()), before);
}

#[test]
fn docker_25_archive_with_oci_layout_is_read_from_manifest_json() {
    let s = scratch();
    let store = ImageStore::open(&s.data).unwrap();
    let base = base_layer();
    let image = oci_image(
        &[(
            base.clone(),
            "application/vnd.oci.image.layer.v1.tar",
            base.clone(),
        )],
        &["/bin/sh"],
    );
    let mut files = image.files.clone();
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files.push((
        "index.json".into(),
        index_json(vec![with_annotations(
            image.manifest_descriptor.clone(),
            json!({"io.containerd.image.name": "docker.io/library/demo:25", "org.opencontainers.image.ref.name": "25"}),
        )]),
    ));
    let manifest = json!([{
        "Config": format!("blobs/sha256/{}", hex_of(&image.id)),
        "RepoTags": ["demo:25"],
        "Layers": [format!("blobs/sha256/{}", hex_of(&image.layer_blobs[0]))],
    }]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let path = write_file(&s.archives, "docker25.tar", &outer_tar(&files));

    let imported = store.import_archive(&path).unwrap();
    assert_eq!(imported[0].names, vec!["docker.io/library/demo:25"]);
    assert_eq!(imported[0].id, image.id);
    let by_digest = store
        .resolve(&format!("demo@{}", image.manifest_digest))
        .unwrap()
        .expect("resolvable by manifest digest (known from the OCI layout)");
    assert_eq!(by_digest.id, image.id);
    assert!(store
        .root()
        .join("blobs/sha256")
        .join(hex_of(&image.manifest_digest))
        .is_file());

    // The same base layer in a classic archive is shared, not unpacked again.
    let (classic, _) = docker_classic(&[base.clone(), upper_layer()], &["other:1"], &["/bin/true"]);
    let before = fs::symlink_metadata(store.layer_path(&sha(&base)).unwrap())
        .unwrap()
        .ino();
    store
        .import_archive(&write_file(&s.archives, "classic.tar", &classic))
        .unwrap();
    let after = fs::symlink_metadata(store.layer_path(&sha(&base)).unwrap())
        .unwrap()
        .ino();
    assert_eq!(before, after);
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        2
    );
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn oci_archive_with_nested_index_gzip_layers_and_zstd_outer_compression() {
    let s = scratch();
    let store = ImageStore::open(&s.data).unwrap();
    let (base, upper) = (base_layer(), upper_layer());
    let native = oci_image(
        &[
            (
                gzip(&base),
                "application/vnd.oci.image.layer.v1.tar+gzip",
                base.clone(),
            ),
            (
                zstd::encode_all(&upper[..], 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
                upper.clone(),
            ),
        ],
        &["/bin/native"],
    );
    let foreign_layer = layer_tar(&[E::File("foreign", b"other arch")]);
    let foreign = oci_image(
        &[(
            foreign_layer.clone(),
            "application/vnd.oci.image.layer.v1.tar",
            foreign_layer,
        )],
        &["/bin/foreign"],
    );
    let other_arch = if host_platform().1 == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let index = index_json(vec![
        with_annotations(foreign.manifest_descriptor.clone(), json!({}))
            .as_object()
            .cloned()
            .map(|mut o| {
                o.insert(
                    "platform".into(),
                    json!({"os": "linux", "architecture": other_arch}),
                );
                serde_json::Value::Object(o)
            })
            .unwrap(),
        {
            let mut d = native.manifest_descriptor.clone();
            d["platform"] = json!({"os": "linux", "architecture": host_platform().1});
            d
        },
    ]);
    let index_digest = sha(&index);
    let mut files = native.files.clone();
    files.extend(foreign.files.clone());
    files.push((
        format!("blobs/sha256/{}", hex_of(&index_digest)),
        index.clone(),
    ));
    // An unnamed manifest (ref.name is only a tag) beside the named multi-platform one.
    let unnamed_layer = layer_tar(&[E::File("unnamed", b"1")]);
    let unnamed = oci_image(
        &[(
            unnamed_layer.clone(),
            "application/vnd.oci.image.layer.v1.tar",
            unnamed_layer,
        )],
        &["/x"],
    );
    files.extend(unnamed.files.clone());
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files.push((
        "index.json".into(),
        index_json(vec![
            json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest,
                "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": "registry.lan:5000/x/y:tag"},
            }),
            with_annotations(
                unnamed.manifest_descriptor.clone(),
                json!({"org.opencontainers.image.ref.name": "latest"}),
            ),
        ]),
    ));
    let compressed = zstd::encode_all(&outer_tar(&files)[..], 3).unwrap();
    let path = write_file(&s.archives, "oci.tar.zst", &compressed);

    let imported = store.import_archive(&path).unwrap();
    assert_eq!(
        imported,
        vec![
            ImportedImage {
                names: vec!["registry.lan:5000/x/y:tag".into()],
                id: native.id.clone()
            },
            ImportedImage {
                names: vec![],
                id: unnamed.id.clone()
            },
        ]
    );
    let image = store.resolve("registry.lan:5000/x/y:tag").unwrap().unwrap();
    assert_eq!(image.id, native.id);
    assert_eq!(
        image.config.config().as_ref().unwrap().cmd().as_deref(),
        Some(&["/bin/native".to_owned()][..])
    );
    assert_eq!(
        fs::read(image.layers[0].join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    assert!(fs::symlink_metadata(image.layers[1].join("etc/hostname"))
        .unwrap()
        .file_type()
        .is_char_device());
    for digest in [&index_digest, &native.manifest_digest] {
        let by_digest = store
            .resolve(&format!("registry.lan:5000/x/y@{digest}"))
            .unwrap();
        assert_eq!(by_digest.map(|i| i.id), Some(native.id.clone()), "{digest}");
    }
    assert!(
        store.resolve(&unnamed.id).unwrap().is_some(),
        "an unnamed image is reachable by id"
    );
    assert!(
        store.resolve(&foreign.id).unwrap().is_none(),
        "the other platform is not imported"
    );
    assert!(store.resolve("latest").unwrap().is_none());
    assert_eq!(store.list().unwrap().len(), 2);

    let before = snapshot(store.root());
    store.import_archive(&path).unwrap();
    assert_eq!(snapshot(store.root()), before, "re-import changes nothing");
}

#[test]
fn a_name_moves_to_the_image_imported_last() {
    let s = scratch();
    let store = ImageStore::open(&s.data).unwrap();
    let (first, first_id) = docker_classic(
        &[layer_tar(&[E::File("v", b"1")])],
        &["app:latest", "app:1"],
        &["/v1"],
    );
    let (second, second_id) = docker_classic(
        &[layer_tar(&[E::File("v", b"2")])],
        &["app:latest"],
        &["/v2"],
    );
    store
        .import_archive(&write_file(&s.archives, "1.tar", &first))
        .unwrap();
    store
        .import_archive(&write_file(&s.archives, "2.tar", &gzip(&second)))
        .unwrap();
    assert_eq!(store.resolve("app").unwrap().unwrap().id, second_id);
    let old = store.resolve("app:1").unwrap().unwrap();
    assert_eq!(old.id, first_id);
    assert_eq!(old.names, vec!["docker.io/library/app:1"]);
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn opening_the_store_removes_stale_scratch_but_not_scratch_in_use() {
    let s = scratch();
    let store = ImageStore::open(&s.data).unwrap();
    let old = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
    let age = |path: &Path| {
        nix::sys::stat::utimensat(
            None,
            path,
            &old,
            &old,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap()
    };
    let stale = store.root().join("tmp/import-crashed");
    fs::create_dir_all(stale.join("blobs")).unwrap();
    age(&stale);
    let stale_layer = store.root().join("layers/.tmp-crashed");
    fs::create_dir_all(stale_layer.join("etc")).unwrap();
    age(&stale_layer);
    let stale_record = store.root().join("images/.tmp-crashed");
    fs::write(&stale_record, b"{").unwrap();
    age(&stale_record);
    let busy = store.root().join("layers/.tmp-busy");
    fs::create_dir_all(&busy).unwrap();
    age(&busy);
    let _held = nix::fcntl::Flock::lock(
        fs::File::open(&busy).unwrap(),
        nix::fcntl::FlockArg::LockExclusive,
    )
    .unwrap();
    let fresh = store.root().join("tmp/import-fresh");
    fs::create_dir_all(&fresh).unwrap();

    ImageStore::open(&s.data).unwrap();
    assert!(!stale.exists() && !stale_layer.exists() && !stale_record.exists());
    assert!(busy.exists(), "a locked scratch directory is in use");
    assert!(
        fresh.exists(),
        "a young scratch directory may be about to be locked"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile archives: each refused as a whole, naming the culprit, leaving nothing behind.

fn refuse(s: &Scratch, archive: &[u8], must_mention: &[&str]) -> ImageError {
    let store = ImageStore::open(&s.data).unwrap();
    let path = write_file(&s.archives, "hostile.tar", archive);
    let err = store
        .import_archive(&path)
        .expect_err("the archive is refused");
    let message = err.to_string();
    for needle in must_mention {
        assert!(message.contains(needle), "{message:?} mentions {needle:?}");
    }
    assert_nothing_recorded(&store, s);
    err
}

/// A classic archive with a good first image and a second one whose layer is `hostile`.
fn with_hostile_layer(hostile: Vec<u8>) -> Vec<u8> {
    let good = layer_tar(&[E::File("ok", b"ok")]);
    let hostile_id_layer = hostile.clone();
    let diff = |l: &Vec<u8>| sha(l);
    let good_config = config_json(&[diff(&good)], &["/ok"]);
    let bad_config = config_json(&[diff(&hostile_id_layer)], &["/bad"]);
    let files = vec![
        ("good/layer.tar".to_owned(), good),
        ("bad/layer.tar".to_owned(), hostile),
        (format!("{}.json", hex_of(&sha(&good_config))), good_config.clone()),
        (format!("{}.json", hex_of(&sha(&bad_config))), bad_config.clone()),
        (
            "manifest.json".to_owned(),
            serde_json::to_vec(&json!([
                {"Config": format!("{}.json", hex_of(&sha(&good_config))), "RepoTags": ["good:1"], "Layers": ["good/layer.tar"]},
                {"Config": format!("{}.json", hex_of(&sha(&bad_config))), "RepoTags": ["bad:1"], "Layers": ["bad/layer.tar"]},
            ]))
            .unwrap(),
        ),
    ];
    outer_tar(&files)
}

fn assert_unsafe_entry(err: &ImageError) {
    assert!(
        matches!(err, ImageError::UnsafeLayerEntry { .. }),
        "{err:?}"
    );
}

#[test]
fn refuses_dot_dot_entries() {
    let s = scratch();
    let err = refuse(
        &s,
        &with_hostile_layer(layer_tar(&[E::File("a/../../../evil", b"x")])),
        &["\"a/../../../evil\"", "`..`"],
    );
    assert_unsafe_entry(&err);
    let err = refuse(
        &s,
        &with_hostile_layer(layer_tar(&[E::File("../evil", b"x")])),
        &["\"../evil\""],
    );
    assert_unsafe_entry(&err);
}

#[test]
fn refuses_absolute_entries() {
    let s = scratch();
    let target = format!("{}/abs", s.outside.display());
    let err = refuse(
        &s,
        &with_hostile_layer(layer_tar(&[E::File(&target, b"x")])),
        &[&target, "absolute"],
    );
    assert_unsafe_entry(&err);
    assert!(!Path::new(&target).exists());
}

#[test]
fn refuses_writing_through_a_symlink() {
    let s = scratch();
    let outside = s.outside.display().to_string();
    let layer = layer_tar(&[E::Symlink("link", &outside), E::File("link/pwned", b"x")]);
    let err = refuse(
        &s,
        &with_hostile_layer(layer),
        &["\"link/pwned\"", "symbolic link \"link\""],
    );
    assert_unsafe_entry(&err);
    // The same through a deeper, relative link, and a device node through a link.
    let layer = layer_tar(&[
        E::Dir("d/"),
        E::Symlink("d/up", "../../../../../../../.."),
        E::Char("d/up/x", 1, 3),
    ]);
    refuse(&s, &with_hostile_layer(layer), &["\"d/up/x\""]);
    // A whiteout through a link would delete outside the layer.
    fs::write(s.outside.join("victim"), b"v").unwrap();
    let layer = layer_tar(&[E::Symlink("l", &outside), E::File("l/.wh.victim", b"")]);
    let store = ImageStore::open(&s.data).unwrap();
    let err = store
        .import_archive(&write_file(
            &s.archives,
            "wh.tar",
            &with_hostile_layer(layer),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("\"l/.wh.victim\""), "{err}");
    assert_eq!(fs::read(s.outside.join("victim")).unwrap(), b"v");
}

#[test]
fn refuses_hard_links_leaving_the_layer() {
    let s = scratch();
    let err = refuse(
        &s,
        &with_hostile_layer(layer_tar(&[E::Hardlink("passwd", "../../etc/passwd")])),
        &["\"passwd\"", "../../etc/passwd"],
    );
    assert_unsafe_entry(&err);
    refuse(
        &s,
        &with_hostile_layer(layer_tar(&[E::Hardlink("shadow", "/etc/shadow")])),
        &["\"shadow\"", "/etc/shadow"],
    );
    // Through a symbolic link inside the layer, or to something that is not a regular file.
    refuse(
        &s,
        &with_hostile_layer(layer_tar(&[
            E::Symlink("etc", "/etc"),
            E::Hardlink("p", "etc/passwd"),
        ])),
        &["\"p\"", "symbolic link"],
    );
    refuse(
        &s,
        &with_hostile_layer(layer_tar(&[
            E::Symlink("s", "/etc/passwd"),
            E::Hardlink("p", "s"),
        ])),
        &["\"p\"", "not a regular file"],
    );
    refuse(
        &s,
        &with_hostile_layer(layer_tar(&[E::Hardlink("p", "missing")])),
        &["\"p\"", "does not exist"],
    );
}

#[test]
fn refuses_unsafe_paths_in_the_archive_itself() {
    let s = scratch();
    let mut builder = tar::Builder::new(Vec::new());
    let header = {
        let mut h = raw_header(tar::EntryType::Regular, "../outside/evil", 1, 0o644);
        h.set_cksum();
        h
    };
    builder.append(&header, &b"x"[..]).unwrap();
    let archive = builder.into_inner().unwrap();
    let err = refuse(&s, &archive, &["\"../outside/evil\""]);
    assert!(
        matches!(err, ImageError::UnsafeArchiveEntry { .. }),
        "{err:?}"
    );
    // A manifest naming a file outside the archive through a link.
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = raw_header(tar::EntryType::Symlink, "layer.tar", 0, 0o777);
    set_raw_link(&mut link, "../../../../etc/passwd");
    link.set_cksum();
    builder.append(&link, &b""[..]).unwrap();
    let manifest = serde_json::to_vec(
        &json!([{"Config": "c.json", "RepoTags": null, "Layers": ["layer.tar"]}]),
    )
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(manifest.len() as u64);
    builder
        .append_data(&mut h, "manifest.json", &manifest[..])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    builder.append_data(&mut h, "c.json", &b"{}"[..]).unwrap();
    refuse(
        &s,
        &builder.into_inner().unwrap(),
        &["\"layer.tar\"", "outside the archive"],
    );
}

#[test]
fn refuses_a_blob_that_does_not_match_its_digest() {
    let s = scratch();
    let layer = layer_tar(&[E::File("f", b"real")]);
    let image = oci_image(
        &[(
            gzip(&layer),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            layer,
        )],
        &["/x"],
    );
    let tampered = gzip(&layer_tar(&[E::File("f", b"evil")]));
    let layer_path = format!("blobs/sha256/{}", hex_of(&image.layer_blobs[0]));
    let mut files: Vec<_> = image
        .files
        .iter()
        .filter(|(p, _)| *p != layer_path)
        .cloned()
        .collect();
    files.push((layer_path, tampered.clone()));
    files.push((
        "index.json".into(),
        index_json(vec![with_annotations(
            image.manifest_descriptor.clone(),
            json!({"org.opencontainers.image.ref.name": "demo:1"}),
        )]),
    ));
    let err = refuse(
        &s,
        &outer_tar(&files),
        &[&image.layer_blobs[0], &sha(&tampered)],
    );
    assert!(
        matches!(err, ImageError::BlobDigestMismatch { .. }),
        "{err:?}"
    );

    // A tampered manifest is caught too (its digest is in index.json).
    let manifest_path = format!("blobs/sha256/{}", hex_of(&image.manifest_digest));
    let mut files: Vec<_> = image
        .files
        .iter()
        .filter(|(p, _)| *p != manifest_path)
        .cloned()
        .collect();
    files.push((manifest_path, b"{\"schemaVersion\":2}".to_vec()));
    files.push((
        "index.json".into(),
        index_json(vec![image.manifest_descriptor.clone()]),
    ));
    refuse(&s, &outer_tar(&files), &[&image.manifest_digest]);
}

#[test]
fn refuses_a_layer_that_does_not_match_its_diff_id() {
    let s = scratch();
    let real = layer_tar(&[E::File("f", b"real")]);
    let claimed = layer_tar(&[E::File("f", b"claimed")]);
    // The blob matches its (manifest) digest but not the config's diff id.
    let image = oci_image(
        &[(
            gzip(&real),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            claimed.clone(),
        )],
        &["/x"],
    );
    let mut files = image.files.clone();
    files.push((
        "index.json".into(),
        index_json(vec![with_annotations(
            image.manifest_descriptor.clone(),
            json!({"io.containerd.image.name": "demo:1"}),
        )]),
    ));
    let err = refuse(&s, &outer_tar(&files), &[&sha(&claimed), &sha(&real)]);
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err:?}");
}

#[test]
fn refuses_decompression_bombs() {
    let s = scratch();
    let zeros = vec![0u8; 4 << 20];
    let layer = layer_tar(&[E::File("bomb", &zeros)]);
    let image = oci_image(
        &[(
            gzip(&layer),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            layer,
        )],
        &["/x"],
    );
    let mut files = image.files.clone();
    files.push((
        "index.json".into(),
        index_json(vec![image.manifest_descriptor.clone()]),
    ));
    let path = write_file(&s.archives, "bomb.tar", &outer_tar(&files));
    let limits = ImportLimits {
        max_layer_bytes: 1 << 20,
        ..ImportLimits::default()
    };
    let store = ImageStore::open_with_limits(&s.data, limits).unwrap();
    let err = store.import_archive(&path).unwrap_err();
    assert!(
        matches!(err, ImageError::LayerTooLarge { limit: 1048576, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&hex_of(&image.layer_blobs[0])[..12]),
        "{err}"
    );
    assert_nothing_recorded(&store, &s);
    // The same archive fits the default limit.
    let store = ImageStore::open(&s.data).unwrap();
    assert_eq!(store.import_archive(&path).unwrap().len(), 1);
}

#[test]
fn refuses_archives_that_are_not_image_archives() {
    let s = scratch();
    let err = refuse(
        &s,
        &outer_tar(&[("hello.txt".into(), b"hi".to_vec())]),
        &["manifest.json", "index.json"],
    );
    assert!(matches!(err, ImageError::NotAnImageArchive { .. }));
    let err = refuse(
        &s,
        &outer_tar(&[("manifest.json".into(), b"[{\"Config\": 1}]".to_vec())]),
        &["manifest.json"],
    );
    assert!(matches!(err, ImageError::InvalidJson { .. }), "{err:?}");
    refuse(&s, b"definitely not a tar archive, just some bytes that go on for a while ......................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................", &["hostile.tar"]);
}

// ---------------------------------------------------------------------------------------------
// Real tools: umoci builds a busybox image, skopeo writes it as docker-archive and oci-archive.

#[test]
fn imports_archives_written_by_skopeo() {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("umoci") || !have("skopeo") || !Path::new("/bin/busybox").exists() {
        eprintln!("skipping imports_archives_written_by_skopeo: needs umoci, skopeo and /bin/busybox (busybox-static)");
        return;
    }
    let s = scratch();
    let work = s.archives.clone();
    let run = |args: &[&str]| {
        let out = Command::new(args[0])
            .args(&args[1..])
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["umoci", "init", "--layout", "oci"]);
    run(&["umoci", "new", "--image", "oci:demo"]);
    run(&["umoci", "unpack", "--image", "oci:demo", "bundle"]);
    let rootfs = work.join("bundle/rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    fs::set_permissions(
        rootfs.join("bin/busybox"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    run(&["umoci", "repack", "--image", "oci:demo", "bundle"]);
    run(&[
        "umoci",
        "config",
        "--image",
        "oci:demo",
        "--config.cmd",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo hi",
    ]);
    run(&[
        "skopeo",
        "copy",
        "oci:oci:demo",
        "docker-archive:docker.tar:demo:latest",
    ]);
    run(&[
        "skopeo",
        "copy",
        "oci:oci:demo",
        "oci-archive:oci.tar:demo:latest",
    ]);

    for archive in ["docker.tar", "oci.tar"] {
        let data = s.data.join(archive);
        let store = ImageStore::open(&data).unwrap();
        let imported = store.import_archive(&work.join(archive)).unwrap();
        assert_eq!(imported.len(), 1, "{archive}");
        assert_eq!(
            imported[0].names,
            vec!["docker.io/library/demo:latest"],
            "{archive}"
        );
        let image = store.resolve("demo").unwrap().expect("demo resolves");
        let cmd = image
            .config
            .config()
            .as_ref()
            .unwrap()
            .cmd()
            .clone()
            .unwrap();
        assert_eq!(cmd, vec!["/bin/sh", "-c", "echo hi"], "{archive}");
        let top = image.layers.last().unwrap();
        let busybox = fs::metadata(top.join("bin/busybox")).unwrap();
        assert_eq!(busybox.len(), fs::metadata("/bin/busybox").unwrap().len());
        assert_eq!(busybox.mode() & 0o111, 0o111);
        assert_eq!(
            fs::read_link(top.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        let before = snapshot(store.root());
        store.import_archive(&work.join(archive)).unwrap();
        assert_eq!(
            snapshot(store.root()),
            before,
            "{archive}: re-import changes nothing"
        );
    }
}
