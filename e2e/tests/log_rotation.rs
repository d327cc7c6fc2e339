//! Container logs never fill the disk: kubelet's rotation (`--container-log-max-size`,
//! `--container-log-max-files`), the files of restarts older than `--previous` needs removed,
//! and `kubectl logs` (whole, `--tail`, `--previous`, `-f` across rotations) still right.
//!
//! The fast test writes ~29 MB with a 1 MiB maximum size; the issue's own figure (1 MB/s for
//! 2 minutes with the defaults leaves ≤ 50 MiB) runs with `SKIFF_E2E_SLOW=1`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_e2e::kubectl::Kubectl;
use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e-logs:v1";
const MIB: u64 = 1024 * 1024;

fn server(args: &[&str]) -> Server {
    let mut s = Server::new();
    s.extra_args = args.iter().map(|a| a.to_string()).collect();
    s.start();
    let archive = s.work_dir.join("img.tar");
    build_busybox_image(&archive, IMAGE, false).unwrap();
    let o = s.import_image(&archive);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(wait_until(WAIT, POLL, || s.kubeconfig.is_file()));
    s
}

/// The container's log directory, `<data>/pods/<ns>_<pod>_<uid>/main`.
fn log_dir(s: &Server, pod: &str) -> PathBuf {
    let uid = s.pod(pod, None).expect("the pod")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    s.data_dir
        .join("pods")
        .join(format!("default_{pod}_{uid}/main"))
}

/// (name, size) of each log file in `dir` (`N.log*`; not the `N.termination` files of
/// terminationMessagePath), sorted.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".log"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().map(|m| m.len()).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn restarts(s: &Server, pod: &str) -> u64 {
    s.pod(pod, None).map(|p| restart_count(&p)).unwrap_or(0)
}

/// The numbers that start the lines of `text` (`<n> 000…`), in order.
fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

fn assert_consecutive(ns: &[u64], what: &str) {
    for w in ns.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{what}: a line is missing after {}", w[0]);
    }
}

#[test]
fn logs_rotate_and_old_restarts_are_removed() {
    let mut s = server(&["--container-log-max-size", "1Mi"]);
    let k = Kubectl::admin(&s);
    // ~29 MB of numbered 97-byte lines, quickly, then a marker; the container exits and is
    // restarted (Always), which writes the next instance's file.
    let script = "seq 1 300000 | sed \"s/\\$/ $(printf %090d 0)/\"; echo finished; sleep 2; exit 1";
    s.write_manifest(
        "chatty.yaml",
        &pod_yaml("chatty", IMAGE, "Always", &["sh", "-c", script]),
    );
    s.expect(
        "the container restarted twice",
        Duration::from_secs(120),
        |s| restarts(s, "chatty") >= 2,
    );
    s.expect(
        "the third instance printed everything",
        Duration::from_secs(60),
        |_| k.run(&["logs", "chatty", "--tail", "1"]).stdout.trim() == "finished",
    );
    let dir = log_dir(&s, "chatty");
    let on_disk = files(&dir);
    let n = restarts(&s, "chatty");
    let current = format!("{n}.log");
    let previous = format!("{}.log", n - 1);
    // The current instance: at most 5 files (the current one and 4 rotated, the older ones
    // gzipped), none larger than 1 MiB; the previous instance: its last file only; nothing
    // older.
    let mine: Vec<&(String, u64)> = on_disk
        .iter()
        .filter(|(f, _)| f.starts_with(&current))
        .collect();
    assert_eq!(mine.len(), 5, "{on_disk:?}");
    assert!(mine.iter().any(|(f, _)| f.ends_with(".gz")), "{on_disk:?}");
    assert!(on_disk.iter().all(|(_, size)| *size <= MIB), "{on_disk:?}");
    let others: Vec<&String> = on_disk
        .iter()
        .map(|(f, _)| f)
        .filter(|f| !f.starts_with(&current))
        .collect();
    assert_eq!(others, [&previous], "{on_disk:?}");
    let total: u64 = on_disk.iter().map(|(_, s)| s).sum();
    assert!(total <= 6 * MIB, "{total} bytes on disk: {on_disk:?}");
    // kubectl logs: the current file, whole lines, none lost at the rotation that began it.
    let all = k.run(&["logs", "chatty"]);
    assert!(all.ok(), "{}", all.stderr);
    let ns = numbers(&all.stdout);
    assert!(!ns.is_empty(), "{}", all.stdout);
    assert_eq!(*ns.last().unwrap(), 300000);
    assert_consecutive(&ns, "kubectl logs");
    let tail = k.run(&["logs", "chatty", "--tail", "3"]);
    assert_eq!(numbers(&tail.stdout), [299999, 300000], "{}", tail.stdout);
    let prev = k.run(&["logs", "chatty", "--previous", "--tail", "2"]);
    assert!(prev.ok(), "{}", prev.stderr);
    assert!(
        prev.stdout.starts_with("300000 ") && prev.stdout.ends_with("finished\n"),
        "{}",
        prev.stdout
    );
    s.assert_running();
}

#[test]
fn follow_reads_across_rotations() {
    // Room for every file (a follower that falls more than max-files behind loses the
    // deleted ones, as kubelet's does): the rotated files are gzipped meanwhile.
    let mut s = server(&[
        "--container-log-max-size",
        "1Mi",
        "--container-log-max-files",
        "20",
    ]);
    let k = Kubectl::admin(&s);
    // Waits for the follower, then writes ~10 MB: about ten rotations while it reads.
    let script = "sleep 4; seq 1 100000 | sed \"s/\\$/ $(printf %090d 0)/\"; echo end; sleep 3600";
    s.write_manifest(
        "follow.yaml",
        &pod_yaml("follow", IMAGE, "Always", &["sh", "-c", script]),
    );
    s.expect("the pod runs", WAIT, |s| {
        s.pod("follow", None)
            .is_some_and(|p| p["status"]["phase"] == "Running")
    });
    let mut f = k.spawn(&["logs", "-f", "follow"]);
    assert!(
        f.wait_line(Duration::from_secs(90), |l| l == "end")
            .is_some(),
        "no end line: {}",
        f.describe()
    );
    let text = f.text();
    f.stop();
    let ns = numbers(&text);
    assert_eq!(
        ns.first(),
        Some(&1),
        "the follower started before the writes"
    );
    assert_eq!(ns.last(), Some(&100000));
    assert_consecutive(&ns, "kubectl logs -f");
    let on_disk = files(&log_dir(&s, "follow"));
    assert!(on_disk.len() >= 9, "{on_disk:?}");
    assert!(
        on_disk.iter().any(|(f, _)| f.ends_with(".gz")),
        "{on_disk:?}"
    );
    s.assert_running();
}

/// The figure: 1 MB/s for 2 minutes with the defaults (10 MiB × 5 files) leaves at
/// most 50 MiB; `kubectl logs` and `--previous` still work. `SKIFF_E2E_SLOW=1` only.
#[test]
fn one_megabyte_a_second_for_two_minutes_leaves_at_most_50_mib() {
    if !std::env::var("SKIFF_E2E_SLOW").is_ok_and(|v| v == "1") {
        eprintln!("skipped: set SKIFF_E2E_SLOW=1 (takes over 2 minutes)");
        return;
    }
    let mut s = server(&[]);
    let k = Kubectl::admin(&s);
    // 120 × 1 MB (10000 lines of 100 bytes), one a second — or back to back when the shim
    // (a debug build on a loaded machine) writes slower than that. (Not `yes | head`: a
    // container inherits the shim's ignored SIGPIPE, so `yes` would never end.)
    let script = "start=$(date +%s); i=0; while [ $i -lt 120 ]; do \
                  seq 1 10000 | sed \"s/\\$/ $i $(printf %090d 0)/\"; i=$((i+1)); \
                  [ $((start+i)) -gt $(date +%s) ] && sleep 1; done; echo finished; sleep 2; exit 1";
    s.write_manifest(
        "mbps.yaml",
        &pod_yaml("mbps", IMAGE, "Always", &["sh", "-c", script]),
    );
    s.expect("the container restarted", Duration::from_secs(480), |s| {
        restarts(s, "mbps") >= 1
    });
    let on_disk = files(&log_dir(&s, "mbps"));
    let total: u64 = on_disk.iter().map(|(_, s)| s).sum();
    assert!(total <= 50 * MIB, "{total} bytes: {on_disk:?}");
    let prev = k.run(&["logs", "mbps", "--previous", "--tail", "1"]);
    assert_eq!(prev.stdout, "finished\n", "{}", prev.stderr);
    let now = k.run(&["logs", "mbps", "--tail", "1"]);
    assert!(now.ok() && !now.stdout.is_empty(), "{}", now.stderr);
    eprintln!("on disk after 120 MB: {total} bytes in {on_disk:?}");
    s.assert_running();
}
