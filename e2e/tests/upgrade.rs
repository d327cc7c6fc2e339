//! Issue 14 part 4: the store carries a schema version (`PRAGMA user_version`). A store of the
//! previous release (schema version 0: skiff up to 8ff55c6) is migrated at start and keeps its
//! objects and tokens; a store newer than the binary is refused with a clear error and left
//! alone. With `SKIFF_E2E_SLOW=1`, the previous release itself is built from git (or taken from
//! `SKIFF_E2E_PREVIOUS_BIN`), runs a Deployment on a claim, and is replaced by this binary
//! under it: no container restarts (same container id, start time, restart count and
//! process), nothing lost.
//!
//! `e2e/testdata/store-v0.db` was written by skiff 8ff55c6 (`kubectl apply` of the namespace
//! `legacy` with a ConfigMap and a Secret, `skiff token create -n legacy` whose token is
//! `LEGACY_TOKEN`), copied with sqlite3's `.backup` after the daemon stopped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use skiff_e2e::kubectl::{kubeconfig_token, Kubectl};
use skiff_e2e::*;

/// The last commit whose store had no schema version.
const PREVIOUS: &str = "8ff55c645b015055c96773fb7ab762b6a5404fce";
/// The namespace token `skiff token create -n legacy` printed when the fixture was made.
const LEGACY_TOKEN: &str = "skiff.bbd16431f65bca97471d10872e8d798a9b8db8037c65f586";
const IMAGE: &str = "skiff-e2e:v1";
const WAIT_LONG: Duration = Duration::from_secs(90);

fn user_version(data_dir: &Path) -> String {
    let o = Command::new("sqlite3")
        .arg(data_dir.join("state.db"))
        .arg("PRAGMA user_version;")
        .output()
        .expect("run sqlite3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A kubeconfig like the admin's, with another token.
fn kubeconfig_with_token(s: &Server, token: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&s.kubeconfig).unwrap();
    let path = s.work_dir.join("token-kubeconfig.yaml");
    std::fs::write(
        &path,
        admin.replace(&kubeconfig_token(&s.kubeconfig), token),
    )
    .unwrap();
    path
}

#[test]
fn a_previous_release_store_is_migrated_and_a_newer_one_refused() {
    let mut s = Server::new();
    let fixture = workspace_root().join("e2e/testdata/store-v0.db");
    std::fs::copy(&fixture, s.data_dir.join("state.db")).unwrap();
    assert_eq!(user_version(&s.data_dir), "0");
    s.start();
    s.wait_log(0, "migrated the store's schema", &["from=0"], WAIT)
        .unwrap_or_else(|| panic!("no migration in the log:\n{}", s.log_tail(30)));
    let k = Kubectl::admin(&s);
    // The migration is logged before the API listens and writes the kubeconfig: retry.
    let cm = wait_for(WAIT, || {
        k.get_json(&["configmap", "from-v0", "-n", "legacy"])
    })
    .unwrap_or_else(|| {
        panic!(
            "the ConfigMap of the previous release: {}\n{}",
            k.run(&["get", "configmap", "-A"]),
            s.log_tail(30)
        )
    });
    assert_eq!(
        cm["data"]["written-by"],
        "skiff 8ff55c6, store schema version 0"
    );
    // The namespace token made by the previous release still authenticates, in its namespace.
    let legacy = Kubectl::with_kubeconfig(&s, &kubeconfig_with_token(&s, LEGACY_TOKEN));
    let secret = legacy.ok(&[
        "get",
        "secret",
        "from-v0",
        "-n",
        "legacy",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(secret, "a2VwdC1hY3Jvc3MtdGhlLXVwZ3JhZGU="); // kept-across-the-upgrade
    assert!(!legacy.run(&["get", "secrets", "-n", "default"]).ok());
    assert_eq!(user_version(&s.data_dir), "1");
    s.stop();

    // A store from a newer skiff: refused at start, naming both versions, and not touched.
    let o = Command::new("sqlite3")
        .arg(s.data_dir.join("state.db"))
        .arg("PRAGMA user_version = 7; SELECT count(*) FROM objects;")
        .output()
        .unwrap();
    let objects = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let mark = s.log_mark();
    s.start();
    let exited = wait_until(WAIT, POLL, || !s.is_running());
    let log = s.log_since(mark);
    assert!(exited, "a newer store was accepted:\n{log}");
    assert!(
        log.contains("state.db has schema version 7, newer than this skiff knows (1)"),
        "{log}"
    );
    let o = Command::new("sqlite3")
        .arg(s.data_dir.join("state.db"))
        .arg("SELECT count(*) FROM objects;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), objects);
    assert_eq!(user_version(&s.data_dir), "7");
}

/// The previous release's binary: `SKIFF_E2E_PREVIOUS_BIN`, or built from git (its source by
/// `git archive`, its target folder kept in the e2e cache: the first build takes minutes).
fn previous_release() -> PathBuf {
    if let Some(bin) = std::env::var_os("SKIFF_E2E_PREVIOUS_BIN") {
        return PathBuf::from(bin);
    }
    let cache = e2e_cache_dir();
    let src = cache.join(format!("previous-src-{}", &PREVIOUS[..12]));
    if !src.join("Cargo.toml").exists() {
        std::fs::create_dir_all(&src).unwrap();
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "git -C '{}' archive {PREVIOUS} | tar -x -C '{}'",
                workspace_root().display(),
                src.display()
            ))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git archive {PREVIOUS}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let target = cache.join("previous-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new(cargo)
        .args(["build", "--bin", "skiff"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "building {PREVIOUS}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    target.join("debug/skiff")
}

fn app_yaml(port: u16) -> String {
    let script = format!(
        "date +%s%N >> /data/starts && mkdir -p /www && cp /data/starts /www/index.html && exec httpd -f -p {port} -h /www"
    );
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 64Mi}}}}
---
{}      volumes:
      - name: data
        persistentVolumeClaim: {{claimName: data}}
",
        deployment_yaml("app", IMAGE, &["sh", "-c", &script]).replace(
            "        command:",
            "        volumeMounts: [{name: data, mountPath: /data}]\n        command:"
        )
    )
}

/// (pod uid, container id, startedAt, restartCount) of the Deployment's ready pod.
fn container_state(k: &Kubectl) -> Option<(String, String, String, i64)> {
    let pods = k.get_json(&["pods", "-l", "app=app"])?;
    let pod = pods["items"].as_array()?.first()?.clone();
    let cs = &pod["status"]["containerStatuses"][0];
    if cs["ready"] != true {
        return None;
    }
    Some((
        pod["metadata"]["uid"].as_str()?.to_string(),
        cs["containerID"].as_str()?.to_string(),
        cs["state"]["running"]["startedAt"].as_str()?.to_string(),
        cs["restartCount"].as_i64()?,
    ))
}

#[test]
fn the_previous_release_is_replaced_under_running_pods_without_a_restart() {
    if std::env::var("SKIFF_E2E_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set SKIFF_E2E_SLOW=1 (builds the previous release from git)");
        return;
    }
    let previous = previous_release();
    let mut s = Server::new();
    s.bin = Some(previous.clone());
    s.start();
    let archive = s.work_dir.join("img.tar");
    build_busybox_image(&archive, IMAGE, false).unwrap();
    let o = Command::new(&previous)
        .args(["image", "import"])
        .arg(&archive)
        .arg("--data-dir")
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let port = free_port();
    let k = Kubectl::admin(&s);
    k.apply(&app_yaml(port), &[]);
    let before = wait_for(WAIT_LONG, || container_state(&k))
        .unwrap_or_else(|| panic!("the pod never got ready\n{}", s.log_tail(40)));
    let (page, _) = s.expect_http(port, "/", WAIT_LONG);
    assert_eq!(page.lines().count(), 1, "{page}");
    let pid = s.httpd_pid(port).expect("the container's httpd");
    let names = |k: &Kubectl| {
        let mut v: Vec<String> = k
            .ok(&[
                "get",
                "all,services,pvc,pv,secrets,configmaps",
                "-A",
                "-o",
                "name",
            ])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let objects = names(&k);
    assert_eq!(user_version(&s.data_dir), "0");

    // The upgrade: the daemon stops (containers keep running), the new binary starts.
    s.stop();
    s.bin = None;
    let mark = s.log_mark();
    s.start();
    s.wait_log(mark, "migrated the store's schema", &["from=0"], WAIT)
        .unwrap_or_else(|| panic!("no migration in the log:\n{}", s.log_tail(30)));
    let after = wait_for(WAIT_LONG, || container_state(&k))
        .unwrap_or_else(|| panic!("the pod is not ready after the upgrade\n{}", s.log_tail(40)));
    assert_eq!(
        after, before,
        "(uid, container id, startedAt, restartCount)"
    );
    assert!(pid_alive(pid), "the container's process {pid} is gone");
    assert_eq!(s.httpd_pid(port), Some(pid));
    let log = s.log_since(mark);
    assert!(log.contains("re-adopted a running container"), "{log}");
    // The volume's file: written once, by the one start.
    let starts = k.ok(&["exec", "deploy/app", "--", "cat", "/data/starts"]);
    assert_eq!(starts.lines().count(), 1, "{starts}");
    assert_eq!(s.expect_http(port, "/", WAIT).0, page);
    assert_eq!(names(&k), objects, "the objects");
    assert_eq!(user_version(&s.data_dir), "1");
    s.assert_running();
}
