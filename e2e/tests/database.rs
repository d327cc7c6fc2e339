//! Issue 11's "done when" for databases: a real Redis from Debian's `redis-server` package (an
//! image built offline with mmdebstrap, cached between runs) as a StatefulSet `redis` with a
//! headless Service, running as the image's `redis` user with an `fsGroup`, on a `local-path`
//! claim from a `volumeClaimTemplate`, `appendonly yes`. The keys written survive pod deletion,
//! `kill -9` of the daemon, a daemon restart and a rolling update; `redis-0.redis.<ns>.svc…`
//! resolves from another pod and answers PING; the volume's directory on the host belongs to the
//! fsGroup; deleting the set keeps the claim and its data (the set made again finds them), and
//! deleting the claim (reclaim policy Delete) removes the directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::{cached_debian_image, wait_for, wait_until, Server};

const IMAGE: &str = "skiff-e2e-redis:v1";
const NS: &str = "db";
const FS_GROUP: u32 = 2000;
const WAIT: Duration = Duration::from_secs(120);

/// `uid:gid` of `user` in the image archive's `/etc/passwd` (a docker archive with one layer).
fn image_user(archive: &std::path::Path, user: &str) -> (u32, u32) {
    let script = format!(
        "set -e; a='{a}'; l=$(tar -xOf \"$a\" manifest.json | sed 's/.*\"Layers\":\\[\"\\([^\"]*\\)\".*/\\1/'); \
         tar -xOf \"$a\" \"$l\" | tar -xOf - etc/passwd",
        a = archive.display()
    );
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    let passwd = String::from_utf8_lossy(&o.stdout);
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no {user} in the image's /etc/passwd: {passwd}"));
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

fn redis_yaml(uid: u32, gid: u32, generation: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: redis, namespace: {NS}}}
spec:
  clusterIP: None
  selector: {{app: redis}}
  ports:
  - {{port: 6379, name: redis}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: redis, namespace: {NS}}}
spec:
  serviceName: redis
  replicas: 1
  selector:
    matchLabels: {{app: redis}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: local-path
      resources: {{requests: {{storage: 256Mi}}}}
  template:
    metadata:
      labels: {{app: redis}}
    spec:
      terminationGracePeriodSeconds: 10
      securityContext: {{runAsUser: {uid}, runAsGroup: {gid}, fsGroup: {FS_GROUP}, runAsNonRoot: true}}
      containers:
      - name: redis
        image: {IMAGE}
        imagePullPolicy: Never
        command: [redis-server, --dir, /data, --appendonly, \"yes\", --bind, 0.0.0.0, --protected-mode, \"no\", --port, \"6379\"]
        env:
        - {{name: GENERATION, value: \"{generation}\"}}
        ports:
        - {{name: redis, containerPort: 6379}}
        readinessProbe:
          exec: {{command: [redis-cli, ping]}}
          periodSeconds: 1
        volumeMounts:
        - {{name: data, mountPath: /data}}
"
    )
}

fn client_yaml() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {NS}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: client
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sleep, infinity]
"
    )
}

/// kubectl in the test's namespace.
struct Db<'a> {
    k: &'a Kubectl,
}

impl Db<'_> {
    fn args<'b>(&self, args: &[&'b str]) -> Vec<&'b str> {
        let mut a = vec!["-n", NS];
        a.extend(args);
        a
    }

    fn ok(&self, args: &[&str]) -> String {
        self.k.ok(&self.args(args))
    }

    fn run(&self, args: &[&str]) -> skiff_e2e::kubectl::KOut {
        self.k.run(&self.args(args))
    }

    fn json(&self, args: &[&str]) -> Option<serde_json::Value> {
        self.k.get_json(&self.args(args))
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut a = vec!["exec", "redis-0", "--", "redis-cli"];
        a.extend(args);
        self.ok(&a).trim().to_string()
    }

    fn uid(&self) -> Option<String> {
        let p = self.json(&["pod", "redis-0"])?;
        Some(p["metadata"]["uid"].as_str()?.to_string())
    }

    /// redis-0 Running and Ready (and not the pod `not_uid`, when given).
    fn wait_ready(&self, s: &mut Server, what: &str, not_uid: Option<&str>) {
        let ok = wait_until(WAIT, Duration::from_millis(250), || {
            self.json(&["pod", "redis-0"]).is_some_and(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && not_uid.is_none_or(|u| p["metadata"]["uid"] != u)
                    && p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
        });
        s.assert_running();
        assert!(
            ok,
            "{what}: redis-0 not Ready\n{}\n{}",
            self.run(&["describe", "pod", "redis-0"]),
            s.log_tail(40)
        );
    }

    /// The keys of every step so far hold their values; then the step writes its own key.
    fn check_and_write(&self, steps: &mut Vec<&'static str>, step: &'static str) {
        assert_eq!(self.cli(&["GET", "greeting"]), "hello from redis", "{step}");
        for s in steps.iter() {
            assert_eq!(self.cli(&["GET", &format!("step:{s}")]), "done", "{step}");
        }
        assert_eq!(
            self.cli(&["INCR", "counter"]),
            (steps.len() + 1).to_string(),
            "{step}: the counter kept every increment"
        );
        assert_eq!(self.cli(&["SET", &format!("step:{step}"), "done"]), "OK");
        steps.push(step);
    }
}

fn volume_dir(db: &Db, s: &Server) -> PathBuf {
    let pvc = db.json(&["pvc", "data-redis-0"]).expect("the claim");
    let pv = pvc["spec"]["volumeName"].as_str().expect("bound");
    s.data_dir
        .join("volumes")
        .join(format!("{pv}_{NS}_data-redis-0"))
}

#[test]
fn redis_statefulset_keeps_its_data() {
    let archive = cached_debian_image(IMAGE, &["redis-server", "redis-tools"])
        .expect("the Redis image (mmdebstrap)");
    let (uid, gid) = image_user(&archive, "redis");
    assert_ne!(uid, 0);
    let mut s = server_with_images(&[]);
    let o = s.import_image(&archive);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let k = Kubectl::admin(&s);
    let db = Db { k: &k };
    k.ok(&["create", "namespace", NS]);
    k.apply(&redis_yaml(uid, gid, "1"), &[]);
    db.wait_ready(&mut s, "created", None);
    let o = db.run(&["rollout", "status", "sts/redis", "--timeout=60s"]);
    assert!(o.ok(), "{o}");

    // Runs as the redis user, with the fsGroup among its groups.
    let status = db.ok(&["exec", "redis-0", "--", "cat", "/proc/1/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:")[0], uid.to_string(), "{status}");
    assert_eq!(field("Gid:")[0], gid.to_string(), "{status}");
    assert!(field("Groups:").contains(&FS_GROUP.to_string()), "{status}");

    assert_eq!(db.cli(&["SET", "greeting", "hello from redis"]), "OK");
    assert_eq!(db.cli(&["CONFIG", "GET", "appendonly"]), "appendonly\nyes");
    let mut steps = Vec::new();
    db.check_and_write(&mut steps, "written");

    // The volume on the host: the claim's directory, group-owned by the fsGroup; Redis's
    // append-only files inside it, owned by the redis user.
    let dir = volume_dir(&db, &s);
    let meta = std::fs::metadata(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.gid(), FS_GROUP, "{} group", dir.display());
    let aof = dir.join("appendonlydir");
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(200), || aof
            .is_dir()),
        "no {}",
        aof.display()
    );
    assert_eq!(std::fs::metadata(&aof).unwrap().uid(), uid);

    // Per-pod DNS from another pod, and the database answering on that name.
    k.apply(&client_yaml(), &[]);
    let host = format!("redis-0.redis.{NS}.svc.cluster.local");
    let ip = db.json(&["pod", "redis-0"]).unwrap()["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let resolved = wait_for(WAIT, || {
        let o = db.run(&["exec", "client", "--", "getent", "hosts", &host]);
        o.stdout.contains(&ip).then_some(o.stdout)
    });
    assert!(
        resolved.is_some(),
        "{host} → {ip}: {}",
        db.run(&["exec", "client", "--", "getent", "hosts", &host])
    );
    let pong = db.ok(&["exec", "client", "--", "redis-cli", "-h", &host, "PING"]);
    assert_eq!(pong.trim(), "PONG");
    let remote = db.ok(&[
        "exec",
        "client",
        "--",
        "redis-cli",
        "-h",
        &host,
        "GET",
        "greeting",
    ]);
    assert_eq!(remote.trim(), "hello from redis");

    // (a) The pod deleted: the set makes it again, on the same claim.
    let before = db.uid().unwrap();
    db.ok(&["delete", "pod", "redis-0"]);
    db.wait_ready(&mut s, "after pod deletion", Some(&before));
    db.check_and_write(&mut steps, "pod-deleted");

    // (b) kill -9 of the daemon, then start it again.
    s.kill9();
    s.start();
    db.wait_ready(&mut s, "after kill -9", None);
    db.check_and_write(&mut steps, "daemon-killed");

    // (c) A normal restart (SIGTERM).
    s.restart();
    db.wait_ready(&mut s, "after a restart", None);
    db.check_and_write(&mut steps, "daemon-restarted");

    // (d) A rolling update: the template's env changes, redis-0 is replaced.
    let before = db.uid().unwrap();
    k.apply(&redis_yaml(uid, gid, "2"), &[]);
    let o = db.run(&["rollout", "status", "sts/redis", "--timeout=120s"]);
    assert!(o.ok(), "{o}");
    db.wait_ready(&mut s, "after the rolling update", Some(&before));
    let env = db.ok(&["exec", "redis-0", "--", "printenv", "GENERATION"]);
    assert_eq!(env.trim(), "2");
    db.check_and_write(&mut steps, "rolled");

    // The set deleted: its pod goes, the claim and the data stay; made again, it finds them.
    db.ok(&["delete", "sts", "redis"]);
    let gone = wait_until(WAIT, Duration::from_millis(250), || {
        db.json(&["pod", "redis-0"]).is_none()
    });
    assert!(gone, "redis-0 stayed after its set was deleted");
    assert!(db.json(&["pvc", "data-redis-0"]).is_some(), "claim kept");
    assert!(aof.is_dir(), "data kept");
    k.apply(&redis_yaml(uid, gid, "2"), &[]);
    db.wait_ready(&mut s, "set made again", None);
    db.check_and_write(&mut steps, "set-recreated");

    // The set and then the claim deleted: local-path's Delete policy removes the directory.
    db.ok(&["delete", "sts", "redis"]);
    db.ok(&["delete", "pvc", "data-redis-0"]);
    let removed = wait_until(WAIT, Duration::from_millis(250), || !dir.exists());
    assert!(
        removed,
        "{} still exists\n{}",
        dir.display(),
        db.run(&["get", "pvc,pods"])
    );
    assert!(k.names(&["pv"]).is_empty(), "{}", k.ok(&["get", "pv"]));
}

/// Issue 12's "done when" for CronJobs: a backup CronJob every minute writes a real dump of the
/// running database (`redis-cli --rdb`, through the per-pod DNS name) into a claim; the dump
/// is Redis's RDB format and holds the key written before.
#[test]
fn a_backup_cronjob_dumps_redis_into_a_claim() {
    let archive = cached_debian_image(IMAGE, &["redis-server", "redis-tools"])
        .expect("the Redis image (mmdebstrap)");
    let (uid, gid) = image_user(&archive, "redis");
    let mut s = server_with_images(&[]);
    let o = s.import_image(&archive);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let k = Kubectl::admin(&s);
    let db = Db { k: &k };
    k.ok(&["create", "namespace", NS]);
    k.apply(&redis_yaml(uid, gid, "1"), &[]);
    db.wait_ready(&mut s, "created", None);
    let marker = format!("m{}", skiff_e2e::random_hex(4));
    assert_eq!(db.cli(&["SET", "marker", &marker]), "OK");
    k.apply(
        &format!(
            "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: backups, namespace: {NS}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 64Mi}}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: redis-backup, namespace: {NS}}}
spec:
  schedule: \"* * * * *\"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: dump
            image: {IMAGE}
            imagePullPolicy: Never
            command: [sh, -c, \"redis-cli -h redis-0.redis.{NS}.svc.cluster.local --rdb /backup/dump-$(date +%s).rdb\"]
            volumeMounts:
            - {{name: backups, mountPath: /backup}}
          volumes:
          - name: backups
            persistentVolumeClaim: {{claimName: backups}}
"
        ),
        &[],
    );
    // The first scheduled run (within a minute and a controller pass) completes.
    let done = wait_until(Duration::from_secs(150), Duration::from_secs(1), || {
        db.json(&["jobs"]).is_some_and(|j| {
            j["items"].as_array().into_iter().flatten().any(|job| {
                job["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            })
        })
    });
    assert!(
        done,
        "no backup Job completed:\n{}\n{}",
        db.run(&["get", "cronjob,jobs,pods", "-o", "wide"]),
        s.log_tail(40)
    );
    let cj = db.json(&["cronjob", "redis-backup"]).expect("the CronJob");
    assert!(
        cj["status"]["lastSuccessfulTime"].is_string(),
        "lastSuccessfulTime: {cj}"
    );
    // Read the dump back from the claim in another pod.
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: reader, namespace: {NS}}}
spec:
  restartPolicy: Never
  containers:
  - name: read
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, \"f=$(ls /backup/dump-*.rdb | head -n 1); head -c 5 $f; echo; grep -c {marker} $f\"]
    volumeMounts:
    - {{name: backups, mountPath: /backup}}
  volumes:
  - name: backups
    persistentVolumeClaim: {{claimName: backups}}
"
        ),
        &[],
    );
    let out = wait_for(WAIT, || {
        let p = db.json(&["pod", "reader"])?;
        (p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed")
            .then(|| db.run(&["logs", "reader"]).stdout)
    })
    .expect("the reader's output");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"REDIS"), "an RDB file: {out}");
    assert_eq!(lines.get(1), Some(&"1"), "the dump holds {marker}: {out}");
}
