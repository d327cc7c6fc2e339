//! The daemon's disk-pressure image garbage collection: with the thresholds lowered to 0% (so
//! that any disk counts as full; `SKIFF_IMAGE_GC_*` in the daemon's environment — which is why
//! this test has a binary of its own), it removes the unused image and keeps the one a pod uses.

use std::fs;

use skiff_e2e::registry::*;
use skiff_e2e::*;

#[test]
fn disk_pressure_gc_removes_an_unused_image_and_keeps_the_one_in_use() {
    // Only this test runs in this process: the daemon inherits these.
    std::env::set_var("SKIFF_IMAGE_GC_HIGH_PERCENT", "0");
    std::env::set_var("SKIFF_IMAGE_GC_LOW_PERCENT", "0");
    std::env::set_var("SKIFF_IMAGE_GC_INTERVAL_SECONDS", "1");
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    registry
        .push_busybox(work.path(), "gc/used:v1", false)
        .unwrap();
    let mut s = Server::new();
    let layer = hostile::raw_layer(&[hostile::Entry::File("unused.txt", b"unused\n")]).unwrap();
    let archive = s.work_dir.join("unused.tar");
    hostile::docker_save_archive(
        &archive,
        "skiff-e2e-unused:v1",
        std::slice::from_ref(&layer),
    )
    .unwrap();
    assert!(s.import_image(&archive).status.success());
    let unused_layer = s.data_dir.join("store/layers").join(sha256_hex(&layer));
    assert!(unused_layer.is_dir());
    let regs = s.work_dir.join("registries.yaml");
    fs::write(&regs, format!("configs: {{\"{}\": {{}}}}\n", registry.host)).unwrap();
    s.extra_args = vec!["--registries".into(), regs.display().to_string()];
    s.start();

    let port = free_port();
    s.write_manifest(
        "inuse.yaml",
        &pulled_httpd_pod_yaml(
            "inuse",
            &format!("{}/gc/used:v1", registry.host),
            "IfNotPresent",
            port,
            None,
        ),
    );
    s.expect_http(port, "/", WAIT);
    s.expect("the unused image's layer is collected", WAIT, |_| {
        !unused_layer.exists()
    });
    assert!(s
        .wait_log(0, "image garbage collection", &[], WAIT)
        .is_some());
    // Several collections later, the image in use is still there and still serves.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let ls = String::from_utf8_lossy(&s.cli(&["image", "ls"]).stdout).into_owned();
    assert!(ls.contains("gc/used:v1"), "{ls}");
    assert!(!ls.contains("skiff-e2e-unused"), "{ls}");
    let pod = s.pod("inuse", None).unwrap();
    // The imageID names the repository at the manifest digest the registry served.
    let digest = registry.manifest_digest("gc/used:v1").unwrap();
    assert_eq!(
        first_container_status(&pod)["imageID"],
        format!("{}/gc/used@{digest}", registry.host)
    );
    assert_eq!(http_get(port, "/").unwrap().body, "hello from skiff\n");
}
