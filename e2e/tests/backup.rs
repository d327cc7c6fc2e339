//! Issue 14 part 3: `skiff backup FILE` while the daemon runs, `skiff restore FILE` into another
//! (empty) data directory, and a daemon started on it brings back the same objects, the same
//! database rows, the same API CA and admin token (the old kubeconfig works) and the same ACME
//! certificate (issued by a real pebble before the backup). A restore into a non-empty
//! directory fails, naming it, and changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use skiff_e2e::kubectl::Kubectl;
use skiff_e2e::pebble::{curl, served_cert, Pebble};
use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e-sqlite:v1";
const WAIT_LONG: Duration = Duration::from_secs(120);

fn app_yaml() -> String {
    // The page is made once: served again after the restore, it proves the volume came back.
    let script = "mkdir -p /data/www && { [ -f /data/www/index.html ] || echo \"made $(date +%s%N)\" > /data/www/index.html; } \
                  && exec busybox httpd -f -p 8080 -h /data/www";
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: app-data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 256Mi}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [sh, -c, {script:?}]
        ports: [{{containerPort: 8080}}]
        volumeMounts: [{{name: data, mountPath: /data}}]
      volumes:
      - name: data
        persistentVolumeClaim: {{claimName: app-data}}
---
apiVersion: v1
kind: Service
metadata: {{name: app}}
spec:
  selector: {{app: app}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: app}}
spec:
  tls:
  - hosts: [app.test]
    secretName: app-tls
  rules:
  - host: app.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: app
            port: {{number: 80}}
"
    )
}

fn import(s: &Server, archive: &Path) {
    let o = s.import_image(archive);
    assert!(
        o.status.success(),
        "import: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The name of the running, ready pod of the Deployment.
fn running_pod(k: &Kubectl, s: &mut Server) -> String {
    let mut last = String::new();
    let name = wait_for(WAIT_LONG, || {
        s.assert_running();
        let pods = k.get_json(&["pods", "-l", "app=app"])?;
        last = pods.to_string();
        pods["items"].as_array()?.iter().find_map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (ready && p["metadata"]["deletionTimestamp"].is_null())
                .then(|| p["metadata"]["name"].as_str().unwrap().to_string())
        })
    });
    name.unwrap_or_else(|| panic!("no ready pod of app: {last}\n{}", s.log_tail(60)))
}

fn sql(k: &Kubectl, pod: &str, statement: &str) -> String {
    k.ok(&["exec", pod, "--", "sqlite3", "/data/app.db", statement])
}

/// `kubectl get all -A -o name`, sorted, plus the claims and the Ingress.
fn names(k: &Kubectl) -> Vec<String> {
    let mut all: Vec<String> = k
        .ok(&["get", "all,services,pvc,ingress,secret", "-A", "-o", "name"])
        .lines()
        .map(String::from)
        .collect();
    all.sort();
    all
}

fn cli(args: &[&str]) -> Output {
    Command::new(skiff_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run skiff")
}

fn restore(file: &Path, dir: &Path) -> Output {
    cli(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
    ])
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn backup_while_running_then_restore_into_another_data_dir_brings_everything_back() {
    let image = cached_debian_image(IMAGE, &["sqlite3", "busybox"]).expect("build the image");
    let mut s = Server::new();
    let pebble = Pebble::start(s.http_port, s.https_port, None).expect("start pebble");
    s.extra_args = pebble.server_args();
    s.start();
    import(&s, &image);
    let k = Kubectl::admin(&s);
    k.apply(&app_yaml(), &[]);
    let pod = running_pod(&k, &mut s);

    // A real database on the claim, written before the backup.
    sql(
        &k,
        &pod,
        "CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT); \
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) \
         INSERT INTO t SELECT x, hex(randomblob(16)) FROM c;",
    );
    let rows = sql(&k, &pod, "SELECT count(*), sum(n), group_concat(v) FROM t;");
    assert!(rows.starts_with("500|125250|"), "{rows}");

    // The ACME certificate from pebble, served through the Ingress with the page on the volume.
    let root = pebble.issuing_root().unwrap().display().to_string();
    let url = format!("https://app.test:{}/", s.https_port);
    let mut last = None;
    let served = wait_until(WAIT_LONG, POLL, || {
        let r = curl(&url, &["--cacert", &root]);
        let ok = r.status == 200 && r.body.starts_with("made ");
        last = Some(r);
        ok
    });
    assert!(
        served,
        "no verified answer from {url}: {last:?}\n{}",
        s.log_tail(60)
    );
    let page = last.unwrap().body;
    let cert = served_cert(s.https_port, "app.test");
    assert!(cert.contains("issuer=CN = Pebble"), "{cert}");

    let before = names(&k);
    for want in [
        "deployment.apps/app",
        "service/app",
        "persistentvolumeclaim/app-data",
        "ingress.networking.k8s.io/app",
        "secret/app-tls",
    ] {
        assert!(
            before.iter().any(|n| n.ends_with(want)),
            "{want}: {before:?}"
        );
    }
    let old_kubeconfig = s.work_dir.join("old-kubeconfig.yaml");
    std::fs::copy(&s.kubeconfig, &old_kubeconfig).unwrap();
    let old_ca = std::fs::read(s.data_dir.join("tls/ca.crt")).unwrap();

    // The backup, while everything runs.
    let file = s.work_dir.join("skiff.backup");
    let o = s.cli(&["backup", file.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "skiff backup: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{out}");
    for part in ["store", "tls", "acme", "volumes"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(part)),
            "no {part} in: {out}"
        );
    }
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup holds secrets");
    // A second backup never overwrites the first.
    let o = s.cli(&["backup", file.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The archive is a tar in zstd whose first entry is the manifest.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -tf - | head -3",
            file.display()
        ))
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(first.starts_with("manifest.json\nstate.db\n"), "{first}");

    // Its manifest lists the database file of the claim with its hash.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -xOf - manifest.json",
            file.display()
        ))
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("manifest.json: {e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(manifest["schemaVersion"], 1, "{manifest:#}");
    let db = manifest["entries"].as_array().unwrap().iter().find(|e| {
        e["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("volumes/pvc-") && p.ends_with("/app.db"))
    });
    let db = db.unwrap_or_else(|| panic!("no volume database in the manifest: {manifest:#}"));
    assert_eq!(db["sha256"].as_str().map(str::len), Some(64), "{db}");

    // Restore into a non-empty directory: refused by name, nothing changed.
    let full = s.work_dir.join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep"), b"mine").unwrap();
    let o = restore(&file, &full);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "restore into a non-empty dir succeeded"
    );
    assert!(
        err.contains(full.to_str().unwrap()) && err.contains("not empty") && err.contains("keep"),
        "{err}"
    );
    assert_eq!(listing(&full), vec![("keep".to_string(), b"mine".to_vec())]);

    // A damaged archive is refused before anything is moved into place.
    let damaged = s.work_dir.join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() * 2 / 3);
    std::fs::write(&damaged, &bytes).unwrap();
    let target = s.root_dir.join("damaged-restore");
    let o = restore(&damaged, &target);
    assert!(!o.status.success(), "a truncated backup was restored");
    assert!(
        !target.exists(),
        "a failed restore left {}",
        target.display()
    );

    // The machine goes: daemon and containers stopped; a new data directory.
    s.stop();
    let o = cli(&["killall", "--data-dir", s.data_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let old_data = s.data_dir.clone();
    let new_data = s.root_dir.join("restored");
    let o = restore(&file, &new_data);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "skiff restore: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{out}");
    for (path, want) in [("state.db", 0o600), ("tls/ca.key", 0o600)] {
        let m = std::fs::metadata(new_data.join(path)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, want, "{path}");
    }
    // Nothing of the old directory is used any more.
    std::fs::rename(&old_data, s.root_dir.join("old-data")).unwrap();
    s.data_dir = new_data;
    // Images are not in a backup: imported again, as on a new machine.
    import(&s, &image);
    s.start();

    let k_old = Kubectl::with_kubeconfig(&s, &old_kubeconfig);
    let pod = running_pod(&k_old, &mut s);
    assert_eq!(
        std::fs::read(s.data_dir.join("tls/ca.crt")).unwrap(),
        old_ca,
        "the API CA"
    );
    assert_eq!(names(&k_old), before, "kubectl get all -A");
    assert_eq!(
        sql(
            &k_old,
            &pod,
            "SELECT count(*), sum(n), group_concat(v) FROM t;"
        ),
        rows,
        "the database's rows"
    );
    let mut last = None;
    let served = wait_until(WAIT_LONG, POLL, || {
        let r = curl(&url, &["--cacert", &root]);
        let ok = r.status == 200;
        last = Some(r);
        ok
    });
    assert!(
        served,
        "no verified answer after the restore: {last:?}\n{}",
        s.log_tail(60)
    );
    assert_eq!(last.unwrap().body, page, "the page on the volume");
    let after = served_cert(s.https_port, "app.test");
    let serial = |c: &str| {
        c.lines()
            .find(|l| l.starts_with("serial="))
            .map(String::from)
    };
    assert_eq!(
        serial(&after),
        serial(&cert),
        "the same certificate:\n{after}\n{cert}"
    );
    assert!(serial(&cert).is_some(), "{cert}");
    s.assert_running();
    // The old directory's cleanup is the test's: its containers were stopped above.
    let _ = std::fs::remove_dir_all(s.root_dir.join("old-data"));
}
