//! `shareProcessNamespace: true`: the pod's containers share one PID namespace, held by a
//! `skiff-pause` holder (PID 1 of the namespace) that outlives `kill -9` of the daemon and is
//! found again after a restart; a container sees and signals another's process; after the
//! pod's deletion no process of it is left.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::{all_pids, pid_alive, proc_cmdline, proc_stat, wait_for};

const IMAGE: &str = "skiff-e2e-pidns:v1";

/// `pid args` lines of the processes the looker container sees.
fn seen(k: &Kubectl) -> Vec<(i64, String)> {
    let o = k.run(&[
        "exec", "share", "-c", "looker", "--", "ps", "-o", "pid,args",
    ]);
    o.stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (pid, args) = l.trim().split_once(char::is_whitespace)?;
            Some((pid.parse().ok()?, args.trim().to_string()))
        })
        .collect()
}

fn pid_of(k: &Kubectl, args: &str) -> Option<i64> {
    seen(k).into_iter().find(|(_, a)| a == args).map(|(p, _)| p)
}

/// Host processes whose command line mentions `needle`.
fn host_processes(needle: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|p| proc_cmdline(*p).is_some_and(|c| c.iter().any(|a| a.contains(needle))))
        .collect()
}

#[test]
fn containers_share_one_pid_namespace_that_survives_the_daemon() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: share}}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 3
  containers:
  - name: server
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sleep\", \"36001\"]
  - name: looker
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sleep\", \"36002\"]
"
        ),
        &[],
    );
    wait_for(Duration::from_secs(60), || {
        let o = k.run(&["get", "pod", "share", "--no-headers"]);
        o.stdout
            .split_whitespace()
            .nth(1)
            .filter(|r| *r == "2/2")
            .map(|_| ())
    })
    .expect("both containers running");
    // The looker sees the holder as PID 1, the server's process, and itself.
    let procs = seen(&k);
    assert!(procs.contains(&(1, "skiff-pause".into())), "{procs:?}");
    let server = pid_of(&k, "sleep 36001").unwrap_or_else(|| panic!("{procs:?}"));
    assert!(pid_of(&k, "sleep 36002").is_some(), "{procs:?}");
    let o = k.run(&[
        "exec",
        "share",
        "-c",
        "looker",
        "--",
        "kill",
        "-0",
        &server.to_string(),
    ]);
    assert!(o.ok(), "the looker may signal the server: {}", o.stderr);
    // The holder's root is the host's: out of reach.
    for (tool, path) in [("ls", "/proc/1/root/etc"), ("cat", "/proc/1/environ")] {
        let o = k.run(&["exec", "share", "-c", "looker", "--", tool, path]);
        assert!(!o.ok(), "{path} readable: {}", o.stdout);
        assert!(
            o.stderr.contains("Permission denied"),
            "{path}: {}",
            o.stderr
        );
    }
    // The holder, as the daemon recorded it.
    let p = k.get_json(&["pod", "share"]).expect("the pod");
    let uid = p["metadata"]["uid"].as_str().expect("uid").to_string();
    let pod_dir = s.data_dir.join("pods").join(format!("default_share_{uid}"));
    let record = std::fs::read_to_string(pod_dir.join("pid-holder")).expect("the holder's record");
    let holder: i32 = record.split_whitespace().next().unwrap().parse().unwrap();
    assert!(pid_alive(holder));
    assert_eq!(proc_cmdline(holder).unwrap_or_default(), ["skiff-pause"]);
    // What holding the namespace costs (for the report; not asserted).
    let rss = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(String::from)
            })
            .unwrap_or_default()
    };
    let waiter = proc_stat(holder).map(|(ppid, _)| ppid).unwrap_or(0);
    eprintln!("holder {}; its waiter {}", rss(holder), rss(waiter));

    // kill -9 of the daemon: the namespace and both containers live on; a new daemon finds
    // the holder again (the restarted server joins the same namespace).
    let server_on_host = host_processes("36001");
    assert_eq!(server_on_host.len(), 1, "{server_on_host:?}");
    s.kill9();
    std::thread::sleep(Duration::from_secs(1));
    assert!(pid_alive(holder), "the holder outlives the daemon");
    assert!(
        pid_alive(server_on_host[0]),
        "the server outlives the daemon"
    );
    s.start();
    let k = Kubectl::admin(&s);
    wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "share"])?;
        (p["status"]["phase"] == "Running").then_some(())
    })
    .expect("Running after the restart");
    assert_eq!(pid_of(&k, "sleep 36001"), Some(server));
    // The looker ends the server's process: the server restarts, in the same namespace.
    let o = k.run(&[
        "exec",
        "share",
        "-c",
        "looker",
        "--",
        "kill",
        &server.to_string(),
    ]);
    assert!(o.ok(), "{}", o.stderr);
    let restarted = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "share"])?;
        let c = p["status"]["containerStatuses"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "server")?
            .clone();
        (c["restartCount"] == 1 && c["state"]["running"].is_object()).then_some(())
    });
    assert!(restarted.is_some(), "the server restarted");
    let again = wait_for(Duration::from_secs(30), || pid_of(&k, "sleep 36001"))
        .expect("the new server process is seen");
    assert_ne!(again, server);
    assert_eq!(
        std::fs::read_to_string(pod_dir.join("pid-holder")).unwrap(),
        record
    );
    assert!(pid_alive(holder));

    // Deleted: nothing of the pod is left.
    let o = k.run_full(
        &["delete", "pod", "share", "--wait=true"],
        None,
        Duration::from_secs(60),
    );
    assert!(o.ok(), "{}", o.stderr);
    let gone = wait_for(Duration::from_secs(10), || {
        let left: Vec<i32> = [
            host_processes("36001"),
            host_processes("36002"),
            host_processes(&pod_dir.to_string_lossy()),
        ]
        .concat();
        (!pid_alive(holder) && left.is_empty()).then_some(())
    });
    assert!(
        gone.is_some(),
        "left: holder alive {}, {:?} {:?} {:?}",
        pid_alive(holder),
        host_processes("36001"),
        host_processes("36002"),
        host_processes(&pod_dir.to_string_lossy())
    );
}

#[test]
fn skiff_killall_ends_the_holder() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: share}}
spec:
  shareProcessNamespace: true
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sleep\", \"36003\"]
"
        ),
        &[],
    );
    let p = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "share"])?;
        (p["status"]["phase"] == "Running").then_some(p)
    })
    .expect("Running");
    let uid = p["metadata"]["uid"].as_str().expect("uid");
    let pod_dir = s.data_dir.join("pods").join(format!("default_share_{uid}"));
    let record = std::fs::read_to_string(pod_dir.join("pid-holder")).expect("the record");
    let holder: i32 = record.split_whitespace().next().unwrap().parse().unwrap();
    let waiter = proc_stat(holder)
        .map(|(ppid, _)| ppid)
        .expect("the holder's parent");
    assert!(pid_alive(holder) && pid_alive(waiter));
    let o = std::process::Command::new(skiff_e2e::skiff_bin())
        .args(["killall", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .expect("skiff killall");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let gone = wait_for(Duration::from_secs(10), || {
        (!pid_alive(holder) && !pid_alive(waiter) && host_processes("36003").is_empty())
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "left: {holder} {waiter} {:?}",
        host_processes("36003")
    );
}
