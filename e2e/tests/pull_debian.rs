//! A real distribution image: Debian bookworm built with `debootstrap --variant=minbase`
//! (~30 s, from the machine's apt mirror), made an OCI image with umoci, pushed to a loopback
//! `docker-registry`, pulled by skiff and run: `cat /etc/debian_version`. Then the issue's
//! benchmark: pull + unpack by `skiff image pull` against `skopeo copy` + `umoci unpack` of the
//! same image from the same registry, in the same run.
//!
//! Slow (debootstrap downloads ~90 packages): runs only with `SKIFF_E2E_SLOW=1`. The OCI layout
//! is cached in `$SKIFF_E2E_CACHE` (default `/var/tmp/skiff-e2e-cache`) so a second run skips
//! debootstrap. Run the benchmark with a release binary for meaningful numbers:
//! `SKIFF_E2E_SLOW=1 SKIFF_BIN=target/release/skiff cargo test -p skiff-e2e --test pull_debian -- --nocapture`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use skiff_e2e::registry::*;
use skiff_e2e::*;

fn slow_enabled() -> bool {
    std::env::var("SKIFF_E2E_SLOW").is_ok_and(|v| v == "1")
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `URIs:` (deb822) or `deb URL` line of the machine's apt sources.
fn apt_mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let text = fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines().map(str::trim) {
            if let Some(uri) = line.strip_prefix("URIs:") {
                if let Some(u) = uri.split_whitespace().find(|u| !u.contains("security")) {
                    return u.to_owned();
                }
            }
            if let Some(rest) = line.strip_prefix("deb ") {
                if let Some(u) = rest.split_whitespace().find(|w| w.starts_with("http")) {
                    if !u.contains("security") {
                        return u.to_owned();
                    }
                }
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// An OCI layout with `debian:bookworm-minbase` (one gzip layer), built once and cached.
fn debian_layout() -> PathBuf {
    let cache = e2e_cache_dir();
    let layout = cache.join("debian-bookworm-minbase-oci");
    if layout.join("index.json").is_file() {
        return layout;
    }
    require_tool("debootstrap", "debootstrap");
    require_tool("umoci", "umoci");
    fs::create_dir_all(&cache).unwrap();
    let rootfs = cache.join("rootfs.tmp");
    let building = cache.join("layout.tmp");
    let _ = fs::remove_dir_all(&rootfs);
    let _ = fs::remove_dir_all(&building);
    let started = Instant::now();
    sh(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .arg(apt_mirror()));
    eprintln!("debootstrap took {:?}", started.elapsed());
    for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = fs::read_dir(rootfs.join(d)) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
    let image = format!("{}:bookworm", building.display());
    sh(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&building));
    sh(Command::new("umoci").args(["new", "--image", &image]));
    sh(Command::new("umoci")
        .args([
            "insert",
            "--image",
            &image,
            "--history.created_by",
            "debootstrap --variant=minbase bookworm",
        ])
        .arg(&rootfs)
        .arg("/"));
    sh(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--architecture",
        "amd64",
        "--os",
        "linux",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.cmd",
        "bash",
    ]));
    let _ = fs::remove_dir_all(&rootfs);
    fs::rename(&building, &layout).unwrap();
    layout
}

fn dir_size(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn debian_minbase_image_runs_and_pull_benchmark() {
    if !slow_enabled() {
        eprintln!(
            "skipped: set SKIFF_E2E_SLOW=1 (debootstrap takes ~30 s and needs the apt mirror)"
        );
        return;
    }
    let layout = debian_layout();
    let registry = Registry::start_plain();
    registry
        .push(
            &format!("oci:{}:bookworm", layout.display()),
            "debian/minbase:bookworm",
            false,
            false,
        )
        .unwrap();
    let reference = format!("{}/debian/minbase:bookworm", registry.host);
    let blobs = dir_size(&layout.join("blobs"));

    // 1. It runs: cat /etc/debian_version.
    let mut s = Server::new();
    let regs = s.work_dir.join("registries.yaml");
    fs::write(&regs, format!("configs: {{\"{}\": {{}}}}\n", registry.host)).unwrap();
    s.extra_args = vec!["--registries".into(), regs.display().to_string()];
    s.start();
    s.write_manifest(
        "debian.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: debian
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {reference}
    imagePullPolicy: IfNotPresent
    command: [\"cat\", \"/etc/debian_version\"]
"
        ),
    );
    s.expect_pod("debian", "Succeeded", Duration::from_secs(120), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let log = fs::read_dir(s.data_dir.join("pods"))
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("default_debian_")
        })
        .map(|e| fs::read_to_string(e.path().join("main/0.log")).unwrap_or_default())
        .expect("the container's log");
    assert!(
        log.contains(" stdout F 12."),
        "cat /etc/debian_version printed: {log}"
    );
    eprintln!("debian image ran: {}", log.trim());
    drop(s);

    // 2. The benchmark: the same image, the same registry, alternating, fresh targets.
    let bench = tempfile::tempdir().unwrap();
    let mut skiff_times = Vec::new();
    let mut peer_times = Vec::new();
    let runs: usize = std::env::var("SKIFF_E2E_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for i in 0..runs {
        let data = bench.path().join(format!("skiff-{i}"));
        let started = Instant::now();
        sh(Command::new(skiff_bin())
            .args(["image", "pull", "--registries"])
            .arg(&regs)
            .arg("--data-dir")
            .arg(&data)
            .arg(&reference));
        skiff_times.push(started.elapsed());
        let _ = fs::remove_dir_all(&data);

        let oci = bench.path().join(format!("oci-{i}"));
        let bundle = bench.path().join(format!("bundle-{i}"));
        let started = Instant::now();
        sh(Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:bookworm", oci.display())));
        sh(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:bookworm", oci.display()))
            .arg(&bundle));
        peer_times.push(started.elapsed());
        let _ = fs::remove_dir_all(&oci);
        let _ = fs::remove_dir_all(&bundle);
    }
    let (a, b) = (median(skiff_times.clone()), median(peer_times.clone()));
    eprintln!(
        "BENCH image pull: {:.1} MB of blobs; skiff image pull {:?} (median of {runs}: {:?}); skopeo copy + umoci unpack {:?} (median: {:?}); ratio skiff/peer {:.2}",
        blobs as f64 / 1e6,
        a,
        skiff_times,
        b,
        peer_times,
        a.as_secs_f64() / b.as_secs_f64()
    );
}
