//! The manifests folder's rules: `X.yaml.skip` disables `X.yaml`; dotfiles and editor temp files
//! are ignored; `.yml` and `.json` are read; what leaves a file is pruned while the rest of
//! the file is left alone.

use std::time::Duration;

use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e:v1";

fn server_with_image() -> Server {
    let s = Server::start_new();
    let archive = s.work_dir.join("img.tar");
    build_busybox_image(&archive, IMAGE, false).unwrap();
    let o = s.import_image(&archive);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s
}

#[test]
fn skip_file_disables_its_manifest() {
    let mut s = server_with_image();
    let port = free_port();
    // .skip first: the manifest is never applied.
    s.write_manifest("app.yaml.skip", "");
    s.write_manifest("app.yaml", &httpd_deployment_yaml("skippy", IMAGE, port));
    s.write_manifest("marker.yaml", &configmap_yaml("marker", "k", "v"));
    s.expect("marker.yaml is applied (the folder was read)", WAIT, |s| {
        s.exists("configmaps", "marker", None)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !s.exists("deployments", "skippy", None),
        "app.yaml was applied despite app.yaml.skip"
    );
    assert!(port_closed(port));
    // Removing the .skip enables it.
    s.remove_manifest("app.yaml.skip");
    let (body, _) = s.expect_http(port, "/", WAIT);
    assert_eq!(body, "hello from skiff\n");
}

#[test]
fn skip_file_created_later_removes_what_the_manifest_applied() {
    let mut s = server_with_image();
    let port = free_port();
    s.write_manifest("app.yaml", &httpd_deployment_yaml("skippy", IMAGE, port));
    s.expect_http(port, "/", WAIT);
    let pid = s.httpd_pid(port).unwrap();
    s.write_manifest("app.yaml.skip", "");
    s.expect("the disabled manifest's container stops", WAIT, |_| {
        !pid_alive(pid)
    });
    s.expect("the disabled manifest's deployment is deleted", WAIT, |s| {
        !s.exists("deployments", "skippy", None)
    });
    assert!(port_closed(port));
}

#[test]
fn dotfiles_and_editor_temp_files_are_ignored() {
    let mut s = server_with_image();
    let ignored = [
        (".hidden.yaml", "from-dotfile"),
        ("notes.yaml~", "from-backup"),
        ("#notes.yaml#", "from-emacs-autosave"),
        (".notes.yaml.swp", "from-vim-swap"),
        ("notes.txt", "from-txt"),
    ];
    for (file, name) in ignored {
        s.write_manifest(file, &configmap_yaml(name, "k", "v"));
    }
    s.write_manifest("real.yml", &configmap_yaml("from-yml", "k", "v"));
    s.write_manifest(
        "real.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"from-json"},"data":{"k":"v"}}"#,
    );
    s.expect(".yml and .json manifests are applied", WAIT, |s| {
        s.exists("configmaps", "from-yml", None) && s.exists("configmaps", "from-json", None)
    });
    std::thread::sleep(Duration::from_secs(2));
    for (file, name) in ignored {
        assert!(!s.exists("configmaps", name, None), "{file} was applied");
    }
}

#[test]
fn objects_removed_from_a_file_are_pruned_and_the_rest_untouched() {
    let mut s = server_with_image();
    let port = free_port();
    let dep = httpd_deployment_yaml("stay", IMAGE, port);
    let cm = configmap_yaml("goes", "k", "v");
    s.write_manifest("multi.yaml", &format!("{dep}---\n{cm}"));
    s.expect_http(port, "/", WAIT);
    s.expect("configmap goes exists", WAIT, |s| {
        s.exists("configmaps", "goes", None)
    });
    let pid = s.httpd_pid(port).unwrap();
    s.write_manifest("multi.yaml", &dep);
    s.expect("configmap goes is pruned", WAIT, |s| {
        !s.exists("configmaps", "goes", None)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.httpd_pid(port),
        Some(pid),
        "the unchanged deployment was restarted"
    );
    // A touch (same content, new mtime) changes nothing either.
    s.write_manifest("multi.yaml", &dep);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.httpd_pid(port), Some(pid));
    let d = s.get_json("deployments", Some("stay"), None).unwrap();
    assert_eq!(
        d["metadata"]["generation"], 1,
        "rewriting the same content bumped generation"
    );
}

/// Issue 13 part 9: a manifests folder that cannot be seen is not an empty one. A disk not
/// mounted yet (here: another, empty filesystem over the folder, as an unmounted disk's mount
/// point is) or a folder moved away prunes nothing; only files really deleted are pruned.
#[test]
fn an_unmounted_or_moved_manifests_folder_prunes_nothing() {
    let mut s = server_with_image();
    let port = free_port();
    s.write_manifest("app.yaml", &httpd_deployment_yaml("kept", IMAGE, port));
    s.expect_http(port, "/", WAIT);
    let pid = s.httpd_pid(port).unwrap();
    let dir = s.manifests_dir.to_string_lossy().to_string();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "skiff-e2e-empty", &dir])
        .status()
        .unwrap();
    assert!(mount.success(), "mount tmpfs over {dir}");
    let mark = s.log_mark();
    // Longer than the folder's periodic re-scan (10 s).
    std::thread::sleep(Duration::from_secs(12));
    let umount = std::process::Command::new("umount")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(umount.success(), "umount {dir}");
    assert!(
        s.log_since(mark)
            .contains("is empty and is not the directory its objects came from"),
        "the server did not say why it held pruning:\n{}",
        s.log_since(mark)
    );
    assert!(
        s.exists("deployments", "kept", None),
        "the deployment was pruned"
    );
    assert!(pid_alive(pid), "the container was stopped");
    // Moved away and back.
    let away = s.work_dir.join("manifests-away");
    std::fs::rename(&s.manifests_dir, &away).unwrap();
    std::thread::sleep(Duration::from_secs(12));
    std::fs::rename(&away, &s.manifests_dir).unwrap();
    assert!(
        s.exists("deployments", "kept", None),
        "pruned a moved folder"
    );
    assert!(
        pid_alive(pid),
        "the container was stopped while the folder was away"
    );
    // A file really deleted is still pruned (the watch was set again on the folder).
    s.remove_manifest("app.yaml");
    s.expect("the deleted manifest's deployment is deleted", WAIT, |s| {
        !s.exists("deployments", "kept", None)
    });
}

/// A file that fails to apply becomes a Warning Event naming the file and the error, in the
/// namespace of the object it declares (kube-system when that is not known); the same failure
/// again counts up the same Event; a fix brings a Normal one.
#[test]
fn failing_files_become_events() {
    let mut s = server_with_image();
    assert!(wait_until(WAIT, POLL, || s.kubeconfig.is_file()));
    let k = skiff_e2e::kubectl::Kubectl::admin(&s);
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {port: 8080}\n";
    s.write_manifest("settings.yaml", bad);
    s.write_manifest("broken.yaml", "kind: [\n");
    let events = |ns: &str| -> Vec<serde_json::Value> {
        k.get_json(&["events", "-n", ns])
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    };
    let about = |ns: &str, file: &str, reason: &str| -> Vec<serde_json::Value> {
        events(ns)
            .into_iter()
            .filter(|e| {
                e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(file))
            })
            .collect()
    };
    // Retried every 10 s: the second failure counts up the one Event.
    s.expect(
        "a FailedApply Event counted twice",
        Duration::from_secs(40),
        |_| {
            let found = about("default", "settings.yaml", "FailedApply");
            found.len() == 1 && found[0]["count"].as_i64().unwrap_or(0) >= 2
        },
    );
    let e = &about("default", "settings.yaml", "FailedApply")[0];
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["involvedObject"]["kind"], "ConfigMap");
    assert_eq!(e["involvedObject"]["name"], "settings");
    assert_eq!(e["source"]["component"], "skiff-manifests-folder");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("data.port"), "{message}");
    let broken = about("kube-system", "broken.yaml", "FailedApply");
    assert_eq!(broken.len(), 1, "{:?}", events("kube-system"));
    assert_eq!(broken[0]["involvedObject"]["kind"], "Node");
    // kubectl get events -A lists both.
    let all = k.run(&["get", "events", "-A"]);
    assert!(all.ok(), "{}", all.stderr);
    let failed: Vec<&str> = all
        .stdout
        .lines()
        .filter(|l| l.contains("FailedApply"))
        .collect();
    assert_eq!(failed.len(), 2, "{}", all.stdout);
    assert!(
        failed.iter().any(|l| l.contains("configmap/settings")),
        "{}",
        all.stdout
    );
    // /metrics: each file's last apply result.
    let (admin, api_port) = (
        skiff_e2e::kubectl::kubeconfig_token(&s.kubeconfig),
        s.api_port,
    );
    let metrics = move || {
        skiff_e2e::kubectl::https_request(api_port, "GET", "/metrics", Some(&admin), None, None)
            .body
    };
    let body = metrics();
    for line in [
        "skiff_manifest_file_last_apply_success{file=\"settings.yaml\"} 0",
        "skiff_manifest_file_last_apply_success{file=\"broken.yaml\"} 0",
        "skiff_manifest_file_last_apply_timestamp_seconds{file=\"settings.yaml\"} 1",
    ] {
        assert!(body.contains(line), "{line} not in {body}");
    }
    // Fixed: applied, and a Normal Event says so.
    s.write_manifest("settings.yaml", &bad.replace("8080", "'8080'"));
    s.expect("an Applied Event", WAIT, |_| {
        !about("default", "settings.yaml", "Applied").is_empty()
    });
    assert!(s.exists("configmaps", "settings", None));
    assert_eq!(
        about("default", "settings.yaml", "Applied")[0]["type"],
        "Normal"
    );
    let body = metrics();
    let line = "skiff_manifest_file_last_apply_success{file=\"settings.yaml\"} 1";
    assert!(body.contains(line), "{line} not in {body}");
}
