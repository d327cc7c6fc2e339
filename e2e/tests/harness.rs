//! Checks of the harness's own building blocks (no skiff binary needed): the test image the
//! script builds, the Docker 25 layout conversion, and the hostile archives.

use std::collections::HashMap;

use serde_json::Value;
use skiff_e2e::{build_busybox_image, docker25_archive, hostile, random_hex, read_tar, sha256_hex};

fn json(files: &HashMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(
        files
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in archive")),
    )
    .unwrap()
}

fn layer_names(layer: &[u8]) -> Vec<(String, tar::EntryType, String)> {
    let mut a = tar::Archive::new(layer);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            (name, e.header().entry_type(), link)
        })
        .collect()
}

#[test]
fn busybox_docker_archive_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img.tar");
    let t = std::time::Instant::now();
    build_busybox_image(&out, "skiff-e2e:test", false).unwrap();
    eprintln!("built in {:?}", t.elapsed());
    let files = read_tar(&out).unwrap();
    let manifest = json(&files, "manifest.json");
    let cfg_name = manifest[0]["Config"].as_str().unwrap();
    let cfg_bytes = &files[cfg_name];
    assert_eq!(format!("{}.json", sha256_hex(cfg_bytes)), cfg_name);
    let cfg: Value = serde_json::from_slice(cfg_bytes).unwrap();
    let c = &cfg["config"];
    assert!(c["Entrypoint"].is_null(), "Entrypoint must be unset: {c}");
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["httpd", "-f", "-p", "8080", "-h", "/www"])
    );
    assert_eq!(c["WorkingDir"], "/www");
    assert_eq!(c["Env"], serde_json::json!(["PATH=/bin", "GREETING=image"]));
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer = &files[layers[0].as_str().unwrap()];
    assert_eq!(
        cfg["rootfs"]["diff_ids"][0],
        format!("sha256:{}", sha256_hex(layer))
    );
    let entries = layer_names(layer);
    let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    for must in [
        "bin/busybox",
        "bin/sh",
        "bin/httpd",
        "bin/echo",
        "bin/cat",
        "bin/sleep",
        "bin/ls",
        "bin/wget",
        "bin/env",
        "bin/id",
        "bin/hostname",
        "www/index.html",
        "etc/passwd",
    ] {
        assert!(names.contains(&must), "{must} missing from the layer");
    }
    for (n, _, _) in &entries {
        assert!(
            !n.starts_with('/') && !n.split('/').any(|c| c == ".."),
            "unsafe entry {n}"
        );
    }
    let mut a = tar::Archive::new(layer.as_slice());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut s = String::new();
        if p == "www/index.html" {
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert_eq!(s, "hello from skiff\n");
        } else if p == "etc/passwd" {
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert!(s.starts_with("root:x:0:0:"));
            assert!(s.contains("\nnobody:x:65534:") && s.contains("\napp:x:1000:"));
        }
    }
    assert!(std::fs::metadata(&out).unwrap().len() < 4 << 20);
}

#[test]
fn busybox_oci_archive_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img-oci.tar");
    build_busybox_image(&out, "skiff-e2e:oci", true).unwrap();
    let files = read_tar(&out).unwrap();
    assert!(files.contains_key("oci-layout"));
    let index = json(&files, "index.json");
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        "skiff-e2e:oci"
    );
    let digest = m["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let manifest_bytes = &files[&format!("blobs/sha256/{digest}")];
    assert_eq!(sha256_hex(manifest_bytes), digest);
}

#[test]
fn docker25_layout_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let classic = dir.path().join("classic.tar");
    build_busybox_image(&classic, "skiff-e2e:d25", false).unwrap();
    let out = dir.path().join("d25.tar");
    docker25_archive(&classic, &out).unwrap();
    let files = read_tar(&out).unwrap();
    for (p, data) in &files {
        if let Some(d) = p.strip_prefix("blobs/sha256/") {
            assert_eq!(sha256_hex(data), d, "blob {p} has the wrong digest");
        }
    }
    let manifest = json(&files, "manifest.json");
    assert!(files.contains_key(manifest[0]["Config"].as_str().unwrap()));
    assert_eq!(manifest[0]["RepoTags"][0], "skiff-e2e:d25");
    let index = json(&files, "index.json");
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/skiff-e2e:d25"
    );
}

#[test]
fn hostile_archives_are_valid_except_for_the_escape() {
    let dir = tempfile::tempdir().unwrap();
    let marker = random_hex(6);
    let all = hostile::build_all(dir.path(), &marker).unwrap();
    assert!(all.len() >= 2);
    for h in &all {
        let files = read_tar(&h.path).unwrap();
        let manifest = json(&files, "manifest.json");
        let cfg_name = manifest[0]["Config"].as_str().unwrap();
        let cfg: Value = serde_json::from_slice(&files[cfg_name]).unwrap();
        assert_eq!(format!("{}.json", sha256_hex(&files[cfg_name])), cfg_name);
        let layer = &files[manifest[0]["Layers"][0].as_str().unwrap()];
        assert_eq!(
            cfg["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(layer))
        );
        let entries = layer_names(layer);
        assert!(
            entries
                .iter()
                .any(|(n, _, l)| n.contains(&h.entry) || l.contains(&h.entry)),
            "{}: {:?}",
            h.kind,
            entries
        );
        if h.kind == "dotdot" {
            assert!(entries
                .iter()
                .any(|(n, _, _)| n == &format!("../escape-{marker}")));
        }
        if h.kind == "symlink-absolute" {
            assert_eq!(entries[0].0, "evil");
            assert_eq!(entries[0].1, tar::EntryType::Symlink);
            assert_eq!(entries[0].2, format!("/tmp/skiff-e2e-{marker}"));
            assert_eq!(entries[1].0, "evil/pwned");
        }
    }
    assert!(hostile::traces(&marker, dir.path()).is_empty());
    hostile::cleanup(&marker);
}

/// The harness's process, mount and cgroup lookups, against a fake shim made of busybox: a
/// `sh` whose arguments are `shim <D>/containers/fake`, running `httpd` as its child.
#[test]
fn harness_sees_fake_shim_container_mount_and_cgroup() {
    use skiff_e2e::*;
    use std::process::Command;
    let s = Server::new();
    let port = free_port();
    let www = s.work_dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from skiff\n").unwrap();
    let state = s.data_dir.join("containers/fake");
    std::fs::create_dir_all(&state).unwrap();
    // `; :` keeps sh from exec'ing httpd, so httpd stays sh's child.
    let script = format!("busybox httpd -f -p {port} -h {}; :", www.display());
    let mut shim = Command::new("busybox")
        .args(["sh", "-c", &script, "shim"])
        .arg(&state)
        .spawn()
        .unwrap();
    let (body, _) = wait_http_ok(port, "/", WAIT).expect("fake container serves");
    assert_eq!(body, "hello from skiff\n");
    assert_eq!(s.shim_pids(), vec![shim.id() as i32]);
    let httpd = s.httpd_pid(port).expect("httpd below the fake shim");
    assert_eq!(proc_stat(httpd).unwrap().0, shim.id() as i32);
    assert!(s.httpd_pid(free_port()).is_none());

    // A mount and a container cgroup of this data dir.
    let mnt = s.data_dir.join("containers/fake/rootfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let cg = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(s.cgroup_parent_name())
        .join("fake");
    std::fs::create_dir_all(&cg).unwrap();

    let left = s.leftovers().join("\n");
    for what in ["mount ", "shim pid ", "cgroup ", "state "] {
        assert!(left.contains(what), "no {what:?} in leftovers:\n{left}");
    }

    send_signal(httpd, libc::SIGKILL).unwrap();
    let _ = shim.kill();
    let _ = shim.wait();
    assert!(wait_until(WAIT, POLL, || port_closed(port)));
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    std::fs::remove_dir(&cg).unwrap();
    std::fs::remove_dir(cg.parent().unwrap()).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    assert_eq!(s.leftovers(), Vec::<String>::new());
}
