//! Done when: "A container that exits is restarted with back-off; `restartPolicy: Never` leaves
//! it terminated with its exit code in status."

use std::time::{Duration, Instant};

use skiff_e2e::kubectl::Kubectl;
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
fn exiting_container_is_restarted_with_backoff() {
    let mut s = server_with_image();
    let r = random_hex(6);
    // Each run prints a line that is not in the command text (run-7-…).
    let script = format!("echo run-$((3+4))-{r}; exit 3");
    s.write_manifest(
        "crash.yaml",
        &deployment_yaml("crash", IMAGE, &["sh", "-c", &script]),
    );
    let t0 = Instant::now();

    // Record when restartCount changes. Whether a daemon counts a restart when the container
    // exits or when it starts again, the gaps between successive counts are the back-off
    // delays: they must be long (no tight loop) and grow.
    let mut seen: Vec<(u64, Duration)> = Vec::new();
    let deadline = Duration::from_secs(150);
    while t0.elapsed() < deadline {
        s.assert_running();
        if let Some(p) = s.pods_of("crash", None).first() {
            let n = restart_count(p);
            if seen.last().map(|(c, _)| *c) != Some(n) {
                eprintln!("restartCount {n} at {:?}", t0.elapsed());
                seen.push((n, t0.elapsed()));
            }
            if n >= 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let at = |n: u64| seen.iter().find(|(c, _)| *c >= n).map(|(_, t)| *t);
    let (t1, t2, t3) = match (at(1), at(2), at(3)) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => panic!(
            "restartCount did not reach 3 within {deadline:?}: {seen:?}\npods:\n  {}\nlog tail:\n{}",
            s.pods_summary(),
            s.log_tail(40)
        ),
    };
    assert!(
        seen.iter().all(|(c, _)| *c <= 3),
        "restartCount jumped: {seen:?}"
    );
    let (g12, g23) = (t2 - t1, t3 - t2);
    assert!(
        g12 >= Duration::from_millis(500),
        "restarts {g12:?} apart: no back-off ({seen:?})"
    );
    assert!(
        g23.as_secs_f64() >= g12.as_secs_f64() * 1.3,
        "back-off does not grow: restarts {g12:?} then {g23:?} apart ({seen:?})"
    );
    // The count in the store matches the runs: each run logged its line.
    let pod = s.pods_of("crash", None)[0].clone();
    let n = restart_count(&pod);
    let line = format!("run-7-{r}");
    let logged: usize = s
        .files_containing(&line)
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .matches(&line)
                .count()
        })
        .sum();
    // Only the current and the previous run's logs are kept (older restarts' files are
    // removed as kubelet does), so the runs before are counted in the daemon's log.
    assert!(
        logged as u64 >= (n + 1).min(2),
        "restartCount is {n} but only {logged} of the kept runs logged {line}"
    );
    let daemon_log = std::fs::read_to_string(&s.log_path).unwrap_or_default();
    for k in 0..n {
        assert!(
            daemon_log
                .lines()
                .any(|l| l.contains("container exited") && l.contains(&format!("-main-{k} "))),
            "restartCount is {n} but run {k} never exited:\n{}",
            s.log_tail(20)
        );
    }
    // The last termination is recorded with its exit code.
    let cs = first_container_status(&pod);
    let last = if cs["lastState"]["terminated"].is_object() {
        &cs["lastState"]["terminated"]
    } else {
        &cs["state"]["terminated"]
    };
    assert_eq!(last["exitCode"], 3, "container status: {cs}");
}

#[test]
fn restart_policy_never_records_exit_code_and_phase() {
    let mut s = server_with_image();
    let yaml = format!(
        "{}---\n{}",
        pod_yaml("fails", IMAGE, "Never", &["sh", "-c", "exit 3"]),
        pod_yaml("succeeds", IMAGE, "Never", &["sh", "-c", "exit 0"])
    );
    s.write_manifest("pods.yaml", &yaml);
    let failed = s.expect_pod("fails", "Failed with exit code 3", WAIT, |p| {
        p["status"]["phase"] == "Failed"
            && first_container_status(p)["state"]["terminated"]["exitCode"] == 3
    });
    let succeeded = s.expect_pod("succeeds", "Succeeded with exit code 0", WAIT, |p| {
        p["status"]["phase"] == "Succeeded"
            && first_container_status(p)["state"]["terminated"]["exitCode"] == 0
    });
    for p in [&failed, &succeeded] {
        let t = &first_container_status(p)["state"]["terminated"];
        assert!(
            t["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "terminated state without a reason: {t}"
        );
        eprintln!("{}: terminated {t}", p["metadata"]["name"]);
    }
    // Never means never: no restart afterwards, the status stays.
    std::thread::sleep(Duration::from_secs(5));
    for name in ["fails", "succeeds"] {
        let p = s.pod(name, None).unwrap();
        assert_eq!(restart_count(&p), 0, "{name} was restarted: {p}");
        assert!(first_container_status(&p)["state"]["terminated"].is_object());
    }
    assert_eq!(s.pod("fails", None).unwrap()["status"]["phase"], "Failed");
    assert_eq!(s.container_pids(&["sh", "-c", "exit 3"]), Vec::<i32>::new());
}

#[test]
fn restart_policy_on_failure_restarts_only_failures() {
    let mut s = server_with_image();
    let yaml = format!(
        "{}---\n{}",
        pod_yaml("onfail-fails", IMAGE, "OnFailure", &["sh", "-c", "exit 5"]),
        pod_yaml(
            "onfail-succeeds",
            IMAGE,
            "OnFailure",
            &["sh", "-c", "exit 0"]
        )
    );
    s.write_manifest("pods.yaml", &yaml);
    s.expect_pod("onfail-succeeds", "Succeeded", WAIT, |p| {
        p["status"]["phase"] == "Succeeded"
    });
    s.expect_pod(
        "onfail-fails",
        "restarted at least once",
        Duration::from_secs(60),
        |p| restart_count(p) >= 1,
    );
    std::thread::sleep(Duration::from_secs(3));
    let p = s.pod("onfail-succeeds", None).unwrap();
    assert_eq!(
        restart_count(&p),
        0,
        "a successful container was restarted under OnFailure"
    );
    assert_eq!(p["status"]["phase"], "Succeeded");
}

/// A pod that has finished for good gives back what its sandbox held — its network namespace,
/// its address and veth, its cgroup, its emptyDir's disk — as kubelet tears down a terminal
/// pod's sandbox, and keeps what `kubectl` shows: its status and its logs.
#[test]
fn a_finished_pod_releases_its_sandbox_and_keeps_its_status_and_logs() {
    let mut s = server_with_image();
    let k = Kubectl::admin(&s);
    let r = random_hex(6);
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: done
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  volumes:
  - name: scratch
    emptyDir: {{}}
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, 'dd if=/dev/zero of=/scratch/blob bs=1024 count=256 2>/dev/null && echo finished-$((6*7))-{r}']
    volumeMounts:
    - name: scratch
      mountPath: /scratch
"
    );
    k.apply(&yaml, &[]);
    let pod = s.expect_pod("done", "Succeeded", WAIT, |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let uid = pod["metadata"]["uid"].as_str().expect("a uid").to_string();
    let ip = pod["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_string();
    assert!(ip.starts_with(&format!("10.244.{}.", s.net_index)), "{ip}");
    let pod_dir = s.data_dir.join("pods").join(format!("default_done_{uid}"));
    let veth = format!("sk{}", &sha256_hex(uid.as_bytes())[..11]);
    let link_exists = || {
        std::process::Command::new("ip")
            .args(["link", "show", &veth])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let pod_cgroup = format!("pod{uid}");
    let held = |s: &Server| {
        let mut held = Vec::new();
        if link_exists() {
            held.push(format!("veth {veth}"));
        }
        for m in mounts_under(&pod_dir) {
            held.push(format!("mount {m}"));
        }
        for d in ["ns", "volumes"] {
            if pod_dir.join(d).exists() {
                held.push(format!("{}", pod_dir.join(d).display()));
            }
        }
        for c in s.pod_cgroups() {
            if c.to_string_lossy().contains(&pod_cgroup) {
                held.push(format!("cgroup {}", c.display()));
            }
        }
        held
    };
    let released = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        held(&s).is_empty()
    });
    assert!(
        released,
        "a finished pod still holds {:?}\n{}",
        held(&s),
        s.log_tail(30)
    );
    // What kubectl shows stays: the phase, the address it had, the container's exit, its log.
    let p = k.get_json(&["pod", "done"]).expect("the pod");
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(p["status"]["podIP"], ip.as_str());
    assert_eq!(
        first_container_status(&p)["state"]["terminated"]["exitCode"],
        0
    );
    let logs = k.run(&["logs", "done"]);
    assert!(logs.ok(), "{logs}");
    assert_eq!(logs.stdout.trim(), format!("finished-42-{r}"));
    // The same after a restart of the daemon: nothing is made again, the status keeps its
    // address.
    s.restart();
    std::thread::sleep(Duration::from_secs(3));
    let p = k.get_json(&["pod", "done"]).expect("the pod");
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(p["status"]["podIP"], ip.as_str(), "{}", s.log_tail(20));
    assert!(held(&s).is_empty(), "after a restart: {:?}", held(&s));
    // …and its status is not written again and again (what the node computes equals it).
    std::thread::sleep(Duration::from_secs(2));
    let again = k.get_json(&["pod", "done"]).expect("the pod");
    assert_eq!(
        again["metadata"]["resourceVersion"], p["metadata"]["resourceVersion"],
        "the finished pod's status keeps being rewritten: {}",
        again["status"]
    );
    assert!(k
        .run(&["logs", "done"])
        .stdout
        .contains(&format!("finished-42-{r}")));
    // Deleting it still finishes (nothing left to stop or remove).
    k.ok(&["delete", "pod", "done", "--timeout=30s"]);
    assert!(
        !pod_dir.exists(),
        "{} kept after deletion",
        pod_dir.display()
    );
}
