//! Issue 4's "Done when", checked against Debian's `docker-registry` on loopback with images
//! built by the test (never in the repo):
//! - a plain-HTTP registry configured in registries.yaml, and a TLS registry with its own CA and
//!   htpasswd auth through an imagePullSecret, both serve images that then run;
//! - a multi-arch index resolves to the amd64 image; a digest-pinned reference runs; a mirror
//!   rewrite is followed;
//! - a blob corrupted in the registry's storage gives `ImagePullBackOff` with a message naming
//!   the digest, and nothing of it is kept;
//! - garbage collection removes an unused image and keeps one in use (`skiff image prune` here;
//!   the disk-pressure collector in `pull_gc.rs`; the Debian image in `pull_debian.rs`).

use std::fs;

use serde_json::Value;
use skiff_e2e::registry::*;
use skiff_e2e::*;

/// A server whose `--registries` file has `yaml`.
fn server_with_registries(yaml: &str) -> Server {
    let mut s = Server::new();
    let path = s.work_dir.join("registries.yaml");
    fs::write(&path, yaml).unwrap();
    s.extra_args = vec!["--registries".into(), path.display().to_string()];
    s.start();
    s
}

/// The `imageID` of an image pulled by tag from `registry` (`repo_tag` there) and known as
/// `repository`: the repository at the manifest digest the registry served.
fn pulled_id(registry: &Registry, repository: &str, repo_tag: &str) -> String {
    format!(
        "{repository}@{}",
        registry.manifest_digest(repo_tag).unwrap()
    )
}

/// Writes a pod pulling `image`, waits for "hello from skiff" and checks the status's imageID
/// (`id`).
fn expect_pulled_pod_serves(
    s: &mut Server,
    name: &str,
    image: &str,
    policy: &str,
    secret: Option<&str>,
    id: &str,
) {
    let port = free_port();
    s.write_manifest(
        &format!("{name}.yaml"),
        &pulled_httpd_pod_yaml(name, image, policy, port, secret),
    );
    let (body, took) = s.expect_http(port, "/", WAIT);
    eprintln!("{name}: manifest written -> pulled and serving in {took:?}");
    assert_eq!(body, "hello from skiff\n");
    let pod = s.expect_pod(name, "Running", WAIT, |p| p["status"]["phase"] == "Running");
    assert_eq!(
        first_container_status(&pod)["imageID"],
        id,
        "the pod runs another image than expected"
    );
}

fn waiting(pod: &Value) -> (String, String) {
    let w = &first_container_status(pod)["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or_default().to_owned(),
        w["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn plain_http_registry_from_registries_yaml_serves_images_that_run() {
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    // Docker v2 schema 2 and OCI manifests, one tag each.
    let id = registry
        .push_busybox(work.path(), "e2e/web:docker", true)
        .unwrap();
    let id_oci = registry
        .push_busybox(work.path(), "e2e/web:oci", false)
        .unwrap();
    let mut s = server_with_registries(&format!(
        "mirrors:\n  registry.skiff.test:\n    endpoint: [\"http://{}\"]\n",
        registry.host
    ));
    // One image under two names (the same config) reports its id: which digest came with
    // which name is not kept.
    let expected = |tag: &str| {
        if id == id_oci {
            id.clone()
        } else {
            pulled_id(
                &registry,
                "registry.skiff.test/e2e/web",
                &format!("e2e/web:{tag}"),
            )
        }
    };
    expect_pulled_pod_serves(
        &mut s,
        "plain-docker",
        "registry.skiff.test/e2e/web:docker",
        "IfNotPresent",
        None,
        &pulled_id(&registry, "registry.skiff.test/e2e/web", "e2e/web:docker"),
    );
    expect_pulled_pod_serves(
        &mut s,
        "plain-oci",
        "registry.skiff.test/e2e/web:oci",
        "Always",
        None,
        &expected("oci"),
    );
    let ls = s.cli(&["image", "ls"]);
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("registry.skiff.test/e2e/web:docker"), "{ls}");
}

#[test]
fn tls_registry_with_own_ca_and_htpasswd_through_image_pull_secret() {
    let registry = Registry::start_tls_auth("skiff", "s3cret-pw");
    let work = tempfile::tempdir().unwrap();
    registry
        .push_busybox(work.path(), "private/app:1", false)
        .unwrap();
    let ca = registry.tls.as_ref().unwrap().ca.clone();
    let mut s = server_with_registries(&format!(
        "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n",
        registry.host,
        ca.display()
    ));
    let image = format!("{}/private/app:1", registry.host);

    // Without the secret: the registry's own refusal, then back-off.
    s.write_manifest(
        "nosecret.yaml",
        &pulled_httpd_pod_yaml("nosecret", &image, "IfNotPresent", free_port(), None),
    );
    let pod = s.expect_pod("nosecret", "refused with ImagePullBackOff", WAIT, |p| {
        waiting(p).0 == "ImagePullBackOff"
    });
    let (_, message) = waiting(&pod);
    assert!(
        message.contains("401") && message.contains("UNAUTHORIZED"),
        "the status should carry the registry's message: {message}"
    );

    // With a kubernetes.io/dockerconfigjson Secret.
    s.write_manifest(
        "secret.yaml",
        &docker_config_secret_yaml("regcred", &registry.host, "skiff", "s3cret-pw"),
    );
    expect_pulled_pod_serves(
        &mut s,
        "withsecret",
        &image,
        "IfNotPresent",
        Some("regcred"),
        &pulled_id(
            &registry,
            &format!("{}/private/app", registry.host),
            "private/app:1",
        ),
    );
}

#[test]
fn multi_arch_index_resolves_to_amd64() {
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    let (index, amd64, arm64) = registry
        .push_multiarch(work.path(), "multi/app:v1")
        .unwrap();
    assert_ne!(amd64, arm64);
    let mut s = server_with_registries(&format!(
        "mirrors:\n  \"{0}\":\n    endpoint: [\"http://{0}\"]\n",
        registry.host
    ));
    expect_pulled_pod_serves(
        &mut s,
        "multi",
        &format!("{}/multi/app:v1", registry.host),
        "IfNotPresent",
        None,
        // The index's digest, as containerd reports it.
        &format!("{}/multi/app@{index}", registry.host),
    );
}

#[test]
fn digest_pinned_reference_runs() {
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    registry
        .push_busybox(work.path(), "pinned/app:v1", false)
        .unwrap();
    let digest = registry.manifest_digest("pinned/app:v1").unwrap();
    // The tag moves on (to the same image in Docker format): the pin must not care.
    registry
        .push_busybox(work.path(), "pinned/app:v1", true)
        .unwrap();
    assert_ne!(registry.manifest_digest("pinned/app:v1").unwrap(), digest);
    let mut s = server_with_registries(&format!(
        "mirrors:\n  \"{0}\":\n    endpoint: [\"http://{0}\"]\n",
        registry.host
    ));
    let image = format!("{}/pinned/app@{digest}", registry.host);
    expect_pulled_pod_serves(&mut s, "pinned", &image, "IfNotPresent", None, &image);
}

#[test]
fn mirror_rewrite_is_followed() {
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    registry
        .push_busybox(work.path(), "mirrored/team-app:v1", false)
        .unwrap();
    let mut s = server_with_registries(&format!(
        "mirrors:\n  mirror.skiff.test:\n    endpoint: [\"http://{}\"]\n    rewrite:\n      \"^team/(.*)\": \"mirrored/team-$1\"\n",
        registry.host
    ));
    expect_pulled_pod_serves(
        &mut s,
        "rewritten",
        "mirror.skiff.test/team/app:v1",
        "IfNotPresent",
        None,
        &pulled_id(
            &registry,
            "mirror.skiff.test/team/app",
            "mirrored/team-app:v1",
        ),
    );
}

#[test]
fn corrupted_blob_gives_image_pull_backoff_naming_the_digest_and_keeps_nothing() {
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    registry
        .push_busybox(work.path(), "broken/app:v1", false)
        .unwrap();
    let layers = registry.layer_digests("broken/app:v1").unwrap();
    assert_eq!(layers.len(), 1);
    let layer = &layers[0];
    // Same size, different bytes in the middle: only the digest can tell.
    let data = registry.blob_data(layer);
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    fs::write(&data, &bytes).unwrap();

    let mut s = server_with_registries(&format!(
        "mirrors:\n  \"{0}\":\n    endpoint: [\"http://{0}\"]\n",
        registry.host
    ));
    s.write_manifest(
        "broken.yaml",
        &pulled_httpd_pod_yaml(
            "broken",
            &format!("{}/broken/app:v1", registry.host),
            "IfNotPresent",
            free_port(),
            None,
        ),
    );
    let pod = s.expect_pod("broken", "in ImagePullBackOff", WAIT, |p| {
        waiting(p).0 == "ImagePullBackOff"
    });
    let (_, message) = waiting(&pod);
    assert!(
        message.contains(layer.as_str()),
        "the message should name {layer}: {message}"
    );
    assert!(
        s.log().contains("ErrImagePull"),
        "ErrImagePull was reported first"
    );
    // Nothing of it is kept: no image, no blob, no layer, no scratch.
    let hex = layer.trim_start_matches("sha256:");
    let kept = store_files_named(&s.data_dir, hex);
    assert!(kept.is_empty(), "left in the store: {kept:?}");
    let records: Vec<_> = fs::read_dir(s.data_dir.join("store/images"))
        .unwrap()
        .flatten()
        .collect();
    assert!(records.is_empty(), "an image was recorded: {records:?}");
    let layers_dir: Vec<_> = fs::read_dir(s.data_dir.join("store/layers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(layers_dir.is_empty(), "layers left: {layers_dir:?}");
}

#[test]
fn prune_removes_an_unused_image_and_keeps_the_one_in_use() {
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    let used = registry
        .push_busybox(work.path(), "gc/used:v1", false)
        .unwrap();
    let mut s = server_with_registries(&format!("configs: {{\"{}\": {{}}}}\n", registry.host));
    // The unused image: imported from an archive, with a layer of its own.
    let layer = hostile::raw_layer(&[hostile::Entry::File("unused.txt", b"unused\n")]).unwrap();
    let unused_archive = s.work_dir.join("unused.tar");
    hostile::docker_save_archive(
        &unused_archive,
        "skiff-e2e-unused:v1",
        std::slice::from_ref(&layer),
    )
    .unwrap();
    assert!(s.import_image(&unused_archive).status.success());
    let unused_layer = s.data_dir.join("store/layers").join(sha256_hex(&layer));
    assert!(unused_layer.is_dir());

    expect_pulled_pod_serves(
        &mut s,
        "inuse",
        &format!("{}/gc/used:v1", registry.host),
        "IfNotPresent",
        None,
        &pulled_id(
            &registry,
            &format!("{}/gc/used", registry.host),
            "gc/used:v1",
        ),
    );

    // `skiff image rm` refuses the image in use.
    let rm = s.cli(&["image", "rm", &used]);
    assert!(!rm.status.success(), "rm of an image in use succeeded");
    assert!(String::from_utf8_lossy(&rm.stderr).contains("is used by container"));

    let prune = s.cli(&["image", "prune"]);
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    let out = String::from_utf8_lossy(&prune.stdout);
    assert!(out.contains("removed 1 image(s)"), "{out}");
    assert!(
        !unused_layer.exists(),
        "the unused image's layer is still there"
    );
    let ls = String::from_utf8_lossy(&s.cli(&["image", "ls"]).stdout).into_owned();
    assert!(!ls.contains("skiff-e2e-unused"), "{ls}");
    assert!(ls.contains("gc/used:v1"), "{ls}");
    // The pod keeps running from its layers.
    let pod = s.pod("inuse", None).unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
}

#[test]
fn cli_pull_shares_blobs_and_rm_removes() {
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    let id = registry
        .push_busybox(work.path(), "cli/app:v1", false)
        .unwrap();
    registry
        .push_busybox(work.path(), "cli/app:v2", false)
        .unwrap();
    let s = Server::new(); // no daemon
                           // A registry on the node itself is pulled from only when registries.yaml names it.
    let reg = s.work_dir.join("registries.yaml");
    fs::write(&reg, format!("configs: {{\"{}\": {{}}}}\n", registry.host)).unwrap();
    let pull = |tag: &str| {
        s.cli(&[
            "image",
            "pull",
            "--registries",
            reg.to_str().unwrap(),
            &format!("{}/cli/app:{tag}", registry.host),
        ])
    };
    let first = pull("v1");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(
        err.contains("downloaded sha256:"),
        "plain progress lines expected: {err}"
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains(&id));
    // The same layers under another tag: nothing to download.
    let second = pull("v2");
    assert!(second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("0.0 MB to download") && !err.contains("downloaded sha256:"),
        "{err}"
    );
    let ls = String::from_utf8_lossy(&s.cli(&["image", "ls"]).stdout).into_owned();
    assert!(
        ls.contains("cli/app:v1") && ls.contains("cli/app:v2"),
        "{ls}"
    );
    // rm by name untags; by the last name, removes the image and its layer.
    let rm = s.cli(&["image", "rm", &format!("{}/cli/app:v1", registry.host)]);
    assert!(String::from_utf8_lossy(&rm.stdout).contains("untagged"));
    let rm = s.cli(&["image", "rm", &format!("{}/cli/app:v2", registry.host)]);
    assert!(
        String::from_utf8_lossy(&rm.stdout).contains(&format!("deleted {id}")),
        "{}",
        String::from_utf8_lossy(&rm.stdout)
    );
    let layers: Vec<_> = fs::read_dir(s.data_dir.join("store/layers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(layers.is_empty(), "{layers:?}");
    // An unknown tag: the registry's own message.
    let missing = pull("nope");
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("MANIFEST_UNKNOWN"), "{err}");
}

#[test]
fn tls_registry_requiring_a_client_certificate_from_registries_yaml() {
    let registry = Registry::start_mtls();
    let work = tempfile::tempdir().unwrap();
    registry
        .push_busybox(work.path(), "mtls/app:1", false)
        .unwrap();
    let tls = registry.tls.as_ref().unwrap();
    // No client certificate: the TLS handshake is refused, and the status says so.
    let mut s = server_with_registries(&format!(
        "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n",
        registry.host,
        tls.ca.display()
    ));
    let image = format!("{}/mtls/app:1", registry.host);
    s.write_manifest(
        "nocert.yaml",
        &pulled_httpd_pod_yaml("nocert", &image, "IfNotPresent", free_port(), None),
    );
    s.expect_pod("nocert", "refused", WAIT, |p| {
        matches!(waiting(p).0.as_str(), "ErrImagePull" | "ImagePullBackOff")
    });
    drop(s);
    // With the client certificate (and insecure_skip_verify instead of the CA).
    let mut s = server_with_registries(&format!(
        "configs:\n  \"{}\":\n    tls:\n      cert_file: {}\n      key_file: {}\n      insecure_skip_verify: true\n",
        registry.host,
        tls.client_cert.display(),
        tls.client_key.display()
    ));
    let id = pulled_id(
        &registry,
        &format!("{}/mtls/app", registry.host),
        "mtls/app:1",
    );
    expect_pulled_pod_serves(&mut s, "withcert", &image, "IfNotPresent", None, &id);
}

/// Issue 13 part 3: the node connects to a registry on itself (loopback, link-local) only when
/// registries.yaml names it. A pod's image `127.0.0.1:PORT/…` (the way a namespace token would
/// reach the node's own services) fails with a message naming registries.yaml, and the port
/// sees no connection; a registry that *is* named but sends the token request or a redirect
/// to another port of the node is refused there too.
#[test]
fn the_node_is_a_registry_only_where_registries_yaml_says() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // A port that must never be reached: it counts connections.
    let victim = TcpListener::bind("127.0.0.1:0").unwrap();
    let victim_port = victim.local_addr().unwrap().port();
    let reached = Arc::new(AtomicUsize::new(0));
    {
        let reached = reached.clone();
        std::thread::spawn(move || {
            for c in victim.incoming() {
                reached.fetch_add(1, Ordering::SeqCst);
                drop(c);
            }
        });
    }
    // A hostile registry (named in registries.yaml): /v2/ asks for a token from the victim's
    // port; a manifest request is redirected there.
    let hostile = TcpListener::bind("127.0.0.1:0").unwrap();
    let hostile_host = format!("127.0.0.1:{}", hostile.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for c in hostile.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let answer = if head.contains("/redirect/") {
                format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{victim_port}/v2/x/manifests/1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            } else {
                format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{victim_port}/token\",service=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            };
            let _ = c.write_all(answer.as_bytes());
        }
    });
    let s = Server::new(); // `skiff image pull`, no daemon: the same pull code
    let named = s.work_dir.join("registries.yaml");
    fs::write(
        &named,
        format!(
            "mirrors:\n  \"{0}\":\n    endpoint: [\"http://{0}\"]\n",
            hostile_host
        ),
    )
    .unwrap();
    let pull = |reference: &str| {
        let o = s.cli(&[
            "image",
            "pull",
            "--registries",
            named.to_str().unwrap(),
            reference,
        ]);
        assert!(!o.status.success(), "{reference} pulled");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = pull(&format!("127.0.0.1:{victim_port}/x:1"));
    assert!(err.contains("registries.yaml"), "{err}");
    let err = pull(&format!("{hostile_host}/token/x:1"));
    assert!(err.contains("refused to connect to 127.0.0.1:"), "{err}");
    let err = pull(&format!("{hostile_host}/redirect/x:1"));
    assert!(err.contains("refused to connect to 127.0.0.1:"), "{err}");
    let err = pull(&format!("[::1]:{victim_port}/x:1"));
    assert!(err.contains("registries.yaml"), "{err}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the node connected to its own port"
    );

    // Through the daemon: a pod's image on the node's loopback waits with the reason.
    let mut s = server_with_registries("");
    s.write_manifest(
        "sneaky.yaml",
        &pulled_httpd_pod_yaml(
            "sneaky",
            &format!("127.0.0.1:{victim_port}/x:1"),
            "Always",
            free_port(),
            None,
        ),
    );
    let pod = s.expect_pod("sneaky", "ErrImagePull with the reason", WAIT, |p| {
        waiting(p).1.contains("registries.yaml")
    });
    eprintln!("{:?}", waiting(&pod));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the node connected to its own port"
    );
}
