//! Done when: "`kill -9` of the daemon leaves the containers serving; a restarted daemon
//! re-adopts them without restarting them (same container process), and converges changes made
//! to the folder while it was down."

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
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

/// Polls `port` every 100 ms until stopped; counts requests and failures.
struct Prober {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Prober {
    fn start(port: u16) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (st, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let handle = std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match http_get(port, "/") {
                    Ok(r) if r.status == 200 && r.body == "hello from skiff\n" => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        f.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            errors
        });
        Prober {
            stop,
            ok,
            failed,
            handle: Some(handle),
        }
    }

    /// Stops and returns (successes, failures, error texts).
    fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.handle.take().unwrap().join().unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[test]
fn kill9_keeps_containers_and_restart_readopts_and_converges() {
    let mut s = server_with_image();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    s.write_manifest("alpha.yaml", &httpd_deployment_yaml("alpha", IMAGE, pa));
    s.write_manifest("beta.yaml", &httpd_deployment_yaml("beta", IMAGE, pb));
    s.expect_http(pa, "/", WAIT);
    s.expect_http(pb, "/", WAIT);
    let alpha = s.httpd_pid(pa).expect("alpha's httpd");
    let beta = s.httpd_pid(pb).expect("beta's httpd");
    let alpha_pod = s.pods_of("alpha", None)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let shims_before = s.shim_pids();
    let probe = Prober::start(pa);

    s.kill9();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        pid_alive(alpha) && pid_alive(beta),
        "kill -9 of the daemon stopped a container"
    );
    for p in [pa, pb] {
        let r = http_get(p, "/").unwrap_or_else(|e| panic!("port {p} after kill -9: {e}"));
        assert_eq!(r.body, "hello from skiff\n");
    }
    for shim in &shims_before {
        assert!(pid_alive(*shim), "shim {shim} died with the daemon");
    }

    // While the daemon is down: beta's file goes, gamma's file comes.
    s.remove_manifest("beta.yaml");
    s.write_manifest("gamma.yaml", &httpd_deployment_yaml("gamma", IMAGE, pc));
    std::thread::sleep(Duration::from_millis(500));
    assert!(port_closed(pc), "gamma started without a daemon?");

    s.start();
    let (body, took) = s.expect_http(pc, "/", WAIT);
    eprintln!("restart -> gamma serving in {took:?}");
    assert_eq!(body, "hello from skiff\n");
    s.expect("beta's container is stopped", WAIT, |_| !pid_alive(beta));
    s.expect("beta's port is closed", WAIT, |_| port_closed(pb));
    s.expect("beta's objects are pruned", WAIT, |s| {
        !s.exists("deployments", "beta", None) && s.pods_of("beta", None).is_empty()
    });
    // Let the daemon settle, then: alpha was re-adopted, not restarted.
    std::thread::sleep(Duration::from_secs(3));
    s.assert_running();
    assert!(
        pid_alive(alpha),
        "alpha's container process {alpha} is gone"
    );
    assert_eq!(
        s.httpd_pid(pa),
        Some(alpha),
        "alpha's container was replaced"
    );
    let pods = s.pods_of("alpha", None);
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0]["metadata"]["name"],
        alpha_pod.as_str(),
        "alpha's pod was recreated"
    );
    assert_eq!(restart_count(&pods[0]), 0);
    assert!(first_container_status(&pods[0])["state"]["running"].is_object());
    let (ok, failed, errors) = probe.finish();
    assert!(ok > 20, "too few probes succeeded ({ok})");
    assert_eq!(
        failed, 0,
        "alpha stopped answering during kill -9 + restart: {errors:?}"
    );
    // Exactly the shims of alpha and gamma remain.
    s.expect("two shims (alpha, gamma)", WAIT, |s| {
        s.shim_pids().len() == 2
    });

    // The re-adopted container is still managed: deleting its file stops it.
    s.remove_manifest("alpha.yaml");
    s.expect(
        "alpha's container is stopped after its file is deleted",
        WAIT,
        |_| !pid_alive(alpha),
    );
    s.expect("alpha's port is closed", WAIT, |_| port_closed(pa));
}

#[test]
fn sigterm_leaves_containers_running_and_restart_readopts() {
    let mut s = server_with_image();
    let port = free_port();
    s.write_manifest("web.yaml", &httpd_deployment_yaml("web", IMAGE, port));
    s.expect_http(port, "/", WAIT);
    let pid = s.httpd_pid(port).unwrap();
    // The shim was forked from the daemon's zygote (`runtime/zygote.rs`), under the name an
    // executed shim has.
    let zygote = zygote_of(&s);
    let shim = s.shim_pids()[0];
    assert_eq!(proc_stat(shim).unwrap().0, zygote, "the shim's parent");
    let shim_args = proc_cmdline(shim).unwrap();
    assert_eq!(shim_args[1], "shim", "{shim_args:?}");
    assert!(
        shim_args[2].starts_with(&s.data_dir.display().to_string()),
        "{shim_args:?}"
    );
    let status = s.stop();
    assert!(
        status.success(),
        "skiff server did not exit cleanly on SIGTERM: {status}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        pid_alive(pid),
        "SIGTERM of the daemon stopped the container"
    );
    assert!(pid_alive(shim), "the shim ended with the daemon");
    assert!(
        !proc_cmdline(zygote).is_some_and(|a| a.iter().any(|a| a == "shim-zygote")),
        "the zygote outlived the daemon"
    );
    assert_eq!(
        http_get(port, "/")
            .expect("serving while skiff is down")
            .status,
        200
    );
    s.start();
    std::thread::sleep(Duration::from_secs(3));
    s.assert_running();
    assert_eq!(
        s.httpd_pid(port),
        Some(pid),
        "the restarted daemon replaced the container"
    );
    // Status stays truthful after re-adoption.
    let pod = s.pods_of("web", None)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    s.expect_pod(&pod, "Running with restartCount 0", WAIT, |p| {
        p["status"]["phase"] == "Running" && restart_count(p) == 0
    });
    // And a change after re-adoption converges: a new port replaces the container.
    let p2 = free_port();
    s.write_manifest("web.yaml", &httpd_deployment_yaml("web", IMAGE, p2));
    s.expect_http(p2, "/", WAIT);
    s.expect("the old container is gone", WAIT, |_| !pid_alive(pid));
    // The new container's shim comes from the new daemon's zygote.
    let zygote = zygote_of(&s);
    // (The old container's shim ends just after its container.)
    s.expect("one shim, forked by the zygote", WAIT, |s| {
        let shims = s.shim_pids();
        shims.len() == 1 && proc_stat(shims[0]).is_some_and(|(ppid, _)| ppid == zygote)
    });
    // Without its zygote, the daemon executes shims as before.
    send_signal(zygote, libc::SIGKILL).unwrap();
    let p3 = free_port();
    s.write_manifest("web.yaml", &httpd_deployment_yaml("web", IMAGE, p3));
    s.expect_http(p3, "/", WAIT);
    s.expect("one shim, executed by the daemon", WAIT, |s| {
        let shims = s.shim_pids();
        shims.len() == 1 && proc_stat(shims[0]).is_some_and(|(ppid, _)| Some(ppid) == s.pid())
    });
    s.assert_running();
}

/// The daemon's zygote: its child named `skiff shim-zygote <data-dir>`.
fn zygote_of(s: &Server) -> i32 {
    let daemon = s.pid().expect("the daemon runs");
    let found: Vec<i32> = all_pids()
        .into_iter()
        .filter(|p| proc_stat(*p).is_some_and(|(ppid, _)| ppid == daemon))
        .filter(|p| {
            proc_cmdline(*p).is_some_and(|a| {
                a.len() == 3 && a[1] == "shim-zygote" && a[2] == s.data_dir.display().to_string()
            })
        })
        .collect();
    assert_eq!(found.len(), 1, "the daemon's zygotes: {found:?}");
    found[0]
}
