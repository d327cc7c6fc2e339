//! Done when: "A malformed file, and a file with an unknown field, change nothing and are
//! reported with file and field." Nothing of a bad file is applied (not even its good
//! documents), nothing else is touched, and the log names the file, document and field.

use std::time::Duration;

use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e:v1";

/// A server with the image imported and a Deployment `keeper` (from keeper.yaml) serving.
/// Returns the server, keeper's port and keeper's container PID.
fn server_with_keeper() -> (Server, u16, i32) {
    let mut s = Server::start_new();
    let archive = s.work_dir.join("img.tar");
    build_busybox_image(&archive, IMAGE, false).unwrap();
    let o = s.import_image(&archive);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let port = free_port();
    s.write_manifest("keeper.yaml", &httpd_deployment_yaml("keeper", IMAGE, port));
    let (body, _) = s.expect_http(port, "/", WAIT);
    assert_eq!(body, "hello from skiff\n");
    let pid = s.httpd_pid(port).expect("keeper's httpd");
    (s, port, pid)
}

/// Names of all objects of `kind` in the store.
fn names(s: &Server, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .list(kind, None)
        .unwrap_or_else(|e| panic!("skiff get {kind}: {e}"))
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap_or("?").to_string())
        .collect();
    v.sort();
    v
}

/// The store's objects of the kinds a bad file could have created.
fn snapshot(s: &Server) -> Vec<(String, Vec<String>)> {
    [
        "deployments",
        "replicasets",
        "pods",
        "configmaps",
        "secrets",
    ]
    .iter()
    .map(|k| (k.to_string(), names(s, k)))
    .collect()
}

/// Keeper still serves from the same process.
fn assert_keeper_untouched(s: &mut Server, port: u16, pid: i32) {
    s.assert_running();
    let r = http_get(port, "/").expect("keeper still answers");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello from skiff\n");
    assert_eq!(
        s.httpd_pid(port),
        Some(pid),
        "keeper's container was replaced"
    );
    assert_eq!(restart_count(&s.pods_of("keeper", None)[0]), 0);
}

#[test]
fn malformed_yaml_and_unknown_field_change_nothing_and_are_reported() {
    let (mut s, port, pid) = server_with_keeper();
    let before = snapshot(&s);

    // 1. Not YAML at all (an unclosed flow sequence), with a valid-looking ConfigMap header.
    let mark = s.log_mark();
    s.write_manifest(
        "broken-syntax.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-broken-syntax\ndata:\n  a: [1, 2\n",
    );
    let excerpt = s.wait_log(mark, "broken-syntax.yaml", &[], WAIT);
    assert!(
        excerpt.is_some(),
        "the log does not name broken-syntax.yaml; log since write:\n{}",
        s.log_since(mark)
    );

    // 2. An unknown field deep in a Deployment.
    let mark = s.log_mark();
    let p2 = free_port();
    let bad = httpd_deployment_yaml("intruder", IMAGE, p2).replace(
        "        imagePullPolicy: Never\n",
        "        imagePullPolicy: Never\n        bogus: 1\n",
    );
    assert!(bad.contains("bogus: 1"));
    s.write_manifest("unknown-field.yaml", &bad);
    let excerpt = s.wait_log(
        mark,
        "spec.template.spec.containers[0].bogus",
        &["unknown-field.yaml"],
        WAIT,
    );
    assert!(
        excerpt.is_some(),
        "the log does not name unknown-field.yaml and spec.template.spec.containers[0].bogus \
         (within 3 lines); log since write:\n{}",
        s.log_since(mark)
    );

    // 3. An unknown kind.
    let mark = s.log_mark();
    s.write_manifest(
        "unknown-kind.yaml",
        &format!(
            "{}---\napiVersion: example.com/v1\nkind: Frobnicator\nmetadata:\n  name: frob\n",
            configmap_yaml("from-unknown-kind", "k", "v")
        ),
    );
    let excerpt = s.wait_log(mark, "Frobnicator", &["unknown-kind.yaml"], WAIT);
    assert!(
        excerpt.is_some(),
        "the log does not name unknown-kind.yaml and the kind Frobnicator; log since write:\n{}",
        s.log_since(mark)
    );

    // Give a wrongly-accepting daemon time to act, then compare.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(snapshot(&s), before, "a bad file changed the store");
    assert!(
        port_closed(p2),
        "the Deployment with an unknown field was started"
    );
    assert_keeper_untouched(&mut s, port, pid);
}

#[test]
fn bad_second_document_applies_nothing_of_the_first() {
    let (mut s, port, pid) = server_with_keeper();
    let before = snapshot(&s);
    let p2 = free_port();
    let doc2 =
        httpd_deployment_yaml("second", IMAGE, p2).replace("  replicas: 1\n", "  replicaz: 1\n");
    let mark = s.log_mark();
    s.write_manifest(
        "two-docs.yaml",
        &format!("{}---\n{}", configmap_yaml("first-doc", "k", "v"), doc2),
    );
    let excerpt = s
        .wait_log(mark, "replicaz", &["two-docs.yaml"], WAIT)
        .unwrap_or_else(|| {
            panic!(
                "the log does not name two-docs.yaml and the field replicaz; log since write:\n{}",
                s.log_since(mark)
            )
        });
    eprintln!("reported as:\n{excerpt}");
    // The document is named: as index 1 (0-based) or 2 (1-based); either way a digit.
    assert!(
        excerpt.contains('1') || excerpt.contains('2'),
        "no document index in the report:\n{excerpt}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !s.exists("configmaps", "first-doc", None),
        "document 1 of a bad file was applied"
    );
    assert_eq!(snapshot(&s), before);
    assert!(port_closed(p2));
    assert_keeper_untouched(&mut s, port, pid);
}

#[test]
fn breaking_an_applied_file_keeps_what_it_had_applied() {
    let (mut s, port, pid) = server_with_keeper();
    s.write_manifest("extra.yaml", &configmap_yaml("extra", "k", "v1"));
    s.expect("configmap extra exists", WAIT, |s| {
        s.exists("configmaps", "extra", None)
    });
    let before = snapshot(&s);

    // keeper.yaml gains an unknown field, and extra.yaml becomes malformed: both must keep
    // their previously applied objects (no prune, no replacement).
    let mark = s.log_mark();
    let broken_keeper = httpd_deployment_yaml("keeper", IMAGE, port).replace(
        "      hostNetwork: true\n",
        "      hostNetwork: true\n      hostNetwerk: true\n",
    );
    s.write_manifest_in_place("keeper.yaml", &broken_keeper);
    s.write_manifest(
        "extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra\n",
    );
    s.wait_log(mark, "hostNetwerk", &["keeper.yaml"], WAIT)
        .unwrap_or_else(|| {
            panic!(
                "keeper.yaml's unknown field is not reported; log:\n{}",
                s.log_since(mark)
            )
        });
    s.wait_log(mark, "extra.yaml", &[], WAIT)
        .unwrap_or_else(|| {
            panic!(
                "extra.yaml's syntax error is not reported; log:\n{}",
                s.log_since(mark)
            )
        });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        snapshot(&s),
        before,
        "a broken file pruned or changed its objects"
    );
    let cm = s.get_json("configmaps", Some("extra"), None).unwrap();
    assert_eq!(cm["data"]["k"], "v1");
    assert_keeper_untouched(&mut s, port, pid);

    // Fixing the file again converges to it.
    s.write_manifest("extra.yaml", &configmap_yaml("extra", "k", "v2"));
    s.expect("configmap extra has the fixed content", WAIT, |s| {
        s.get_json("configmaps", Some("extra"), None)
            .is_ok_and(|c| c["data"]["k"] == "v2")
    });
}
