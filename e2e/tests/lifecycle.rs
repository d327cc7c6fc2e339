//! Done when: "Editing the file (new args) replaces the container; deleting the file stops it and
//! leaves no mount, cgroup, shim or state behind." Plus: container logs are written under the
//! data dir, Deployments scale, `skiff killall` cleans up.

use std::time::Duration;

use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e:v1";

fn server_with_image() -> Server {
    let mut s = Server::start_new();
    let archive = s.work_dir.join("img.tar");
    build_busybox_image(&archive, IMAGE, false).unwrap();
    let o = s.import_image(&archive);
    assert!(
        o.status.success(),
        "skiff image import failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    s.assert_running();
    s
}

#[test]
fn edit_replaces_container_and_delete_leaves_nothing_behind() {
    let mut s = server_with_image();
    let (p1, p2) = (free_port(), free_port());

    // v1
    s.write_manifest("web.yaml", &httpd_deployment_yaml("web", IMAGE, p1));
    let (body, _) = s.expect_http(p1, "/", WAIT);
    assert_eq!(body, "hello from skiff\n");
    let pid1 = s.httpd_pid(p1).expect("httpd v1 process below a shim");
    let pod1 = s.pods_of("web", None)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // v2: new command and args, written in place (truncate + write) as editors and `>` do.
    let script = format!("echo v2 > /www/v2.html; exec httpd -f -p {p2} -h /www");
    s.write_manifest_in_place(
        "web.yaml",
        &deployment_yaml("web", IMAGE, &["sh", "-c", &script]),
    );
    let (body, took) = s.expect_http(p2, "/v2.html", WAIT);
    eprintln!("edit -> new container serving in {took:?}");
    assert_eq!(body, "v2\n");
    s.expect("the old container's process is gone", WAIT, |_| {
        !pid_alive(pid1)
    });
    s.expect("the old port no longer answers", WAIT, |_| port_closed(p1));
    let pid2 = s.httpd_pid(p2).expect("httpd v2 process below a shim");
    assert_ne!(pid1, pid2);
    s.expect("exactly one pod, not the old one", WAIT, |s| {
        let pods = s.pods_of("web", None);
        pods.len() == 1 && pods[0]["metadata"]["name"] != pod1.as_str()
    });
    // One container's worth of state left (the new one).
    s.expect("one container state dir and one shim", WAIT, |s| {
        s.container_state_dirs().len() == 1 && s.shim_pids().len() == 1
    });

    // Delete the file: everything goes.
    s.remove_manifest("web.yaml");
    s.expect("the container's process is gone", WAIT, |_| {
        !pid_alive(pid2)
    });
    s.expect("the port no longer answers", WAIT, |_| port_closed(p2));
    s.expect("deployment, replicasets and pods are deleted", WAIT, |s| {
        !s.exists("deployments", "web", None)
            && s.pods_of("web", None).is_empty()
            && s.list("replicasets", None).is_ok_and(|l| l.is_empty())
    });
    s.assert_no_leftovers(WAIT);
    s.assert_running();
}

#[test]
fn container_output_is_logged_under_the_data_dir() {
    let mut s = server_with_image();
    let r = random_hex(8);
    // The printed lines (out-42-…) differ from the command text (out-$((40+2))-…), so the
    // stored manifest cannot be mistaken for the log.
    let (out_line, err_line) = (format!("out-42-{r}"), format!("err-43-{r}"));
    let port = free_port();
    let script = format!(
        "echo out-$((40+2))-{r}; echo err-$((40+3))-{r} >&2; exec httpd -f -p {port} -h /www"
    );
    s.write_manifest(
        "logs.yaml",
        &deployment_yaml("logs", IMAGE, &["sh", "-c", &script]),
    );
    s.expect_http(port, "/", WAIT);
    s.expect(
        "a file under the data dir holds the container's stdout line",
        WAIT,
        |s| !s.files_containing(&out_line).is_empty(),
    );
    let files = s.files_containing(&out_line);
    eprintln!("log files: {files:?}");
    assert!(
        files.iter().any(|f| f.starts_with(s.data_dir.join("pods"))),
        "the container log is not under {}/pods: {files:?}",
        s.data_dir.display()
    );
    s.expect("the stderr line is logged too", WAIT, |s| {
        !s.files_containing(&err_line).is_empty()
    });
}

#[test]
fn deployment_scales_up_and_down() {
    let mut s = server_with_image();
    let yaml = |replicas: u32| {
        deployment_yaml("scaler", IMAGE, &["sleep", "3601"])
            .replace("replicas: 1", &format!("replicas: {replicas}"))
    };
    s.write_manifest("scaler.yaml", &yaml(3));
    s.expect("3 sleep containers run", WAIT, |s| {
        s.container_pids(&["sleep", "3601"]).len() == 3
    });
    s.expect("3 pods in the store", WAIT, |s| {
        s.pods_of("scaler", None).len() == 3
    });
    let before = s.container_pids(&["sleep", "3601"]);
    s.write_manifest("scaler.yaml", &yaml(1));
    s.expect("1 sleep container runs", WAIT, |s| {
        s.container_pids(&["sleep", "3601"]).len() == 1
    });
    s.expect("1 pod in the store", WAIT, |s| {
        s.pods_of("scaler", None).len() == 1
    });
    let after = s.container_pids(&["sleep", "3601"]);
    assert!(
        before.contains(&after[0]),
        "scaling down restarted the surviving pod ({before:?} -> {after:?})"
    );
    s.expect("deployment status says 1 replica", WAIT, |s| {
        s.get_json("deployments", Some("scaler"), None)
            .is_ok_and(|d| d["status"]["replicas"] == 1 && d["status"]["readyReplicas"] == 1)
    });
    s.expect("two container state dirs are gone", WAIT, |s| {
        s.container_state_dirs().len() == 1
    });
}

#[test]
fn killall_stops_every_container_and_cleans_up() {
    let mut s = server_with_image();
    let port = free_port();
    s.write_manifest("web.yaml", &httpd_deployment_yaml("web", IMAGE, port));
    s.write_manifest(
        "sleeper.yaml",
        &deployment_yaml("sleeper", IMAGE, &["sleep", "3600"]),
    );
    s.expect_http(port, "/", WAIT);
    let pid = s.httpd_pid(port).unwrap();
    s.expect("two shims run", WAIT, |s| s.shim_pids().len() == 2);
    let status = s.stop();
    assert!(
        status.success(),
        "skiff server did not exit cleanly on SIGTERM: {status}"
    );
    assert!(pid_alive(pid), "stopping the daemon stopped a container");
    let o = s.cli(&["killall"]);
    assert!(
        o.status.success(),
        "skiff killall failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(10), POLL, || !pid_alive(pid)),
        "the container survived killall"
    );
    assert!(port_closed(port));
    s.assert_no_leftovers(Duration::from_secs(10));
    assert!(
        s.processes_mentioning_data_dir().is_empty(),
        "processes still mention the data dir: {:?}",
        s.processes_mentioning_data_dir()
    );
}
