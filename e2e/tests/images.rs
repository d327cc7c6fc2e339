//! Done when: "A Deployment file whose pod uses `hostNetwork: true` and an image imported from a
//! `docker save` archive answers HTTP on its port within seconds of the file being written."
//! The image arrives in every supported way: dropped into the images folder while the daemon
//! runs, `skiff image import`, an OCI archive present at start, Docker 25+'s layout.

use std::fs;
use std::time::Duration;

use skiff_e2e::*;

/// Writes an httpd Deployment, waits for `hello from skiff` and checks the pod's status.
fn deploy_and_expect_hello(s: &mut Server, name: &str, image: &str) {
    let port = free_port();
    s.write_manifest(
        &format!("{name}.yaml"),
        &httpd_deployment_yaml(name, image, port),
    );
    let (body, took) = s.expect_http(port, "/", WAIT);
    eprintln!("{name}: manifest written -> first HTTP 200 in {took:?}");
    assert_eq!(body, "hello from skiff\n");
    let pid = s.httpd_pid(port);
    assert!(
        pid.is_some(),
        "the process serving port {port} is not an httpd below a shim of this data dir"
    );
    // Status in the store: one Running pod with a running container and a skiff:// id.
    s.expect(
        "the deployment's pod is Running with a running container",
        WAIT,
        |s| {
            let pods = s.pods_of(name, None);
            pods.len() == 1 && {
                let p = &pods[0];
                let cs = first_container_status(p);
                p["status"]["phase"] == "Running"
                    && cs["state"]["running"].is_object()
                    && cs["containerID"]
                        .as_str()
                        .is_some_and(|id| id.starts_with("skiff://"))
            }
        },
    );
    // The pod is owned through a ReplicaSet named <deployment>-<hash>.
    let pods = s.pods_of(name, None);
    let owner = &pods[0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicaSet", "pod owner: {owner}");
    let rs = owner["name"].as_str().unwrap_or_default();
    assert!(
        rs.starts_with(&format!("{name}-")),
        "ReplicaSet name {rs:?}"
    );
    assert!(
        s.exists("replicasets", rs, None),
        "ReplicaSet {rs} not in the store"
    );
}

#[test]
fn docker_archive_dropped_into_images_folder_serves_http() {
    let mut s = Server::start_new();
    let archive = s.work_dir.join("app.tar");
    build_busybox_image(&archive, "skiff-e2e-dropped:v1", false).unwrap();
    // As a user would: cp the archive into the folder (not atomic), then write the manifest.
    fs::copy(&archive, s.images_dir.join("app.tar")).unwrap();
    deploy_and_expect_hello(&mut s, "dropped", "skiff-e2e-dropped:v1");
}

#[test]
fn image_import_cli_while_server_runs_serves_http() {
    let mut s = Server::start_new();
    let archive = s.work_dir.join("app.tar");
    build_busybox_image(&archive, "skiff-e2e-imported:v1", false).unwrap();
    let o = s.import_image(&archive);
    assert!(
        o.status.success(),
        "skiff image import failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    deploy_and_expect_hello(&mut s, "imported", "skiff-e2e-imported:v1");
}

#[test]
fn oci_archive_in_images_folder_at_start_serves_http() {
    let mut s = Server::new();
    build_busybox_image(&s.images_dir.join("app-oci.tar"), "skiff-e2e-oci:v1", true).unwrap();
    s.start();
    deploy_and_expect_hello(&mut s, "oci", "skiff-e2e-oci:v1");
}

#[test]
fn docker25_layout_imported_before_start_serves_http() {
    let mut s = Server::new();
    let classic = s.work_dir.join("classic.tar");
    build_busybox_image(&classic, "skiff-e2e-d25:v1", false).unwrap();
    let d25 = s.work_dir.join("d25.tar");
    docker25_archive(&classic, &d25).unwrap();
    let o = s.import_image(&d25);
    assert!(
        o.status.success(),
        "skiff image import (Docker 25 layout) failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    s.start();
    deploy_and_expect_hello(&mut s, "d25", "skiff-e2e-d25:v1");
}

/// Kubernetes' merge rules: `args` alone replace the image's Cmd (Entrypoint unset); the pod's
/// env overrides the image's; the image's WorkingDir and PATH apply.
#[test]
fn image_config_and_pod_spec_merge() {
    let mut s = Server::start_new();
    let archive = s.work_dir.join("app.tar");
    build_busybox_image(&archive, "skiff-e2e-merge:v1", false).unwrap();
    let o = s.import_image(&archive);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let port = free_port();
    let script = format!(
        "echo \"$GREETING|$PWD|$PATH|$EXTRA\" > /www/env.html; exec httpd -f -p {port} -h /www"
    );
    let manifest = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: merge
spec:
  replicas: 1
  selector:
    matchLabels:
      app: merge
  template:
    metadata:
      labels:
        app: merge
    spec:
      hostNetwork: true
      containers:
      - name: main
        image: skiff-e2e-merge:v1
        imagePullPolicy: IfNotPresent
        args: {args}
        env:
        - name: GREETING
          value: pod
        - name: EXTRA
          value: x
",
        args = yaml_list(&["sh", "-c", &script])
    );
    s.write_manifest("merge.yaml", &manifest);
    let (body, _) = s.expect_http(port, "/env.html", WAIT);
    assert_eq!(body, "pod|/www|/bin|x\n");
}

/// The offline demo in `manifests/demo/` works as shipped (except for its fixed port 8080,
/// replaced by a free one): its build script makes the image, its manifest is accepted whole,
/// the page comes from the ConfigMap, the claim is bound on local-path and keeps what the pod
/// wrote, and the Ingress serves the page over HTTPS through the Service.
#[test]
fn demo_manifests_work() {
    let mut s = Server::start_new();
    let demo = workspace_root().join("manifests/demo");
    let o = std::process::Command::new("bash")
        .arg(demo.join("build-image.sh"))
        .arg(s.images_dir.join("skiff-demo.tar"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "manifests/demo/build-image.sh failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let port = free_port();
    let yaml = fs::read_to_string(demo.join("demo.yaml"))
        .unwrap()
        .replace("8080", &port.to_string());
    s.write_manifest("demo.yaml", &yaml);
    let (body, _) = s.expect_http(port, "/", WAIT);
    assert_eq!(body, "hello from skiff\n");
    let (starts, _) = s.expect_http(port, "/starts.txt", WAIT);
    assert!(starts.starts_with("started "), "{starts}");
    for (kind, name) in [
        ("configmaps", "hello-config"),
        ("deployments", "hello"),
        ("services", "hello"),
        ("ingresses", "hello"),
    ] {
        assert!(s.exists(kind, name, None), "{kind}/{name}");
    }
    let claim = s
        .get_json("persistentvolumeclaims", Some("hello-data"), None)
        .unwrap();
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
    // The Ingress: HTTPS on the proxy's port, for hello.localhost, through the Service.
    let url = format!("https://hello.localhost:{}/", s.https_port);
    let ok = wait_until(WAIT, Duration::from_millis(200), || {
        let r = skiff_e2e::pebble::curl(&url, &["-k"]);
        r.status == 200 && r.body.contains("hello from skiff")
    });
    assert!(ok, "{url}: {:#?}", skiff_e2e::pebble::curl(&url, &["-k"]));
}
