//! Probes, as kubelet runs them: `startupProbe` first (liveness and readiness wait for it),
//! then `readinessProbe` (whether the container is ready: Service endpoints and rollouts follow)
//! and `livenessProbe` (after `failureThreshold` failures the container is killed and restarted
//! under its `restartPolicy`). Handlers: `httpGet` (2xx/3xx is success), `tcpSocket` (a connect),
//! `exec` (exit code 0, run inside the container through `skiff shim --exec`). Each probe of a
//! container instance runs in its own task and ends with it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::runtime::protocol::{shim_command, ShimCommand};

/// What a probe task reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Readiness changed.
    Ready(bool),
    /// The startup probe succeeded: the container has started.
    Started,
    /// Liveness (or startup) failed `failureThreshold` times: restart the container.
    Unhealthy,
}

/// Where probes reach the container.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pod's address (127.0.0.1 for hostNetwork pods).
    pub ip: IpAddr,
    /// The container's directory, for exec probes.
    pub container_dir: PathBuf,
    /// The `skiff` executable.
    pub exe: PathBuf,
}

impl Target {
    /// Instance `id` of a pod at `pod_ip` (none: a hostNetwork pod, reached on 127.0.0.1).
    pub(crate) fn of(
        runtime: &crate::runtime::handle::Runtime,
        id: &str,
        pod_ip: Option<std::net::Ipv4Addr>,
    ) -> Target {
        Target {
            ip: IpAddr::V4(pod_ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST)),
            container_dir: runtime.layout.container(id),
            exe: runtime.shim_exe.clone(),
        }
    }
}

pub(super) fn port_of(c: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// Runs one probe attempt; `Err` carries kubelet-style failure text.
async fn attempt(c: &Container, probe: &Probe, target: &Target) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(h) = &probe.http_get {
        let port = port_of(c, &h.port).ok_or("the probe's port is not a container port")?;
        let ip = probe_ip(h.host.as_deref(), target);
        return tokio::time::timeout(timeout, http_get(h, ip, port))
            .await
            .map_err(|_| "timeout".to_string())?;
    }
    if let Some(t) = &probe.tcp_socket {
        let port = port_of(c, &t.port).ok_or("the probe's port is not a container port")?;
        let ip = probe_ip(t.host.as_deref(), target);
        return tcp_socket(ip, port, timeout).await;
    }
    if let Some(e) = &probe.exec {
        return exec(e.command.clone().unwrap_or_default(), target, timeout).await;
    }
    if let Some(g) = &probe.grpc {
        // The pod's own address only (a grpc probe has no host).
        let port = u16::try_from(g.port).map_err(|_| "the probe's port is not a port")?;
        let service = g.service.clone().unwrap_or_default();
        return tokio::time::timeout(timeout, super::grpc::check(target.ip, port, &service))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "timeout: health rpc did not complete within {}s",
                    timeout.as_secs()
                ))
            });
    }
    Err("the probe has no handler".into())
}

/// The probe's `host`, else the pod's address.
fn probe_ip(host: Option<&str>, target: &Target) -> IpAddr {
    host.and_then(|h| h.parse().ok()).unwrap_or(target.ip)
}

/// `httpGet`: a 2xx or 3xx status is success.
async fn http_get(h: &HTTPGetAction, ip: IpAddr, port: u16) -> Result<(), String> {
    let code = http_status(h, ip, port).await?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// A `GET` of `h`'s path (with its headers) on `ip:port`: the response's status code.
/// (Validation refuses CR and LF in the path and headers.)
pub(super) async fn http_status(h: &HTTPGetAction, ip: IpAddr, port: u16) -> Result<u16, String> {
    let path = h.path.clone().unwrap_or_else(|| "/".into());
    let mut s = tokio::net::TcpStream::connect(SocketAddr::new(ip, port))
        .await
        .map_err(|e| format!("Get \"http://{ip}:{port}{path}\": {e}"))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.32\r\nConnection: close\r\n");
    for hdr in h.http_headers.iter().flatten() {
        req.push_str(&format!("{}: {}\r\n", hdr.name, hdr.value));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 64];
    let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

/// `tcpSocket`: a connection is success.
async fn tcp_socket(ip: IpAddr, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect(SocketAddr::new(ip, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {ip}:{port}: {e}")),
        Err(_) => Err(format!("dial tcp {ip}:{port}: i/o timeout")),
    }
}

/// `exec`: the command, run in the container through `skiff shim --exec`, exits with 0.
pub(super) async fn exec(
    command: Vec<String>,
    target: &Target,
    timeout: Duration,
) -> Result<(), String> {
    let child = shim_command(
        &target.exe,
        &target.container_dir,
        ShimCommand::Exec {
            tty: false,
            command: &command,
        },
    )
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .kill_on_drop(true)
    .status();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(format!(
            "command {command:?} exited with {}",
            s.code().unwrap_or(-1)
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("command {command:?} timed out")),
    }
}

async fn run_probe(
    c: &Container,
    probe: &Probe,
    target: &Target,
    mut on_result: impl FnMut(bool, Option<String>) -> bool,
) {
    tokio::time::sleep(Duration::from_secs(
        probe.initial_delay_seconds.unwrap_or(0).max(0) as u64,
    ))
    .await;
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    loop {
        let r = attempt(c, probe, target).await;
        if !on_result(r.is_ok(), r.err()) {
            return;
        }
        tokio::time::sleep(period).await;
    }
}

/// Runs the container's probes until `done` flips; verdicts go to `tx`, warnings to `event`.
pub async fn run(
    c: Container,
    target: Target,
    tx: mpsc::UnboundedSender<Verdict>,
    event: impl Fn(String) + Send + Sync + 'static,
    mut done: watch::Receiver<bool>,
) {
    let event: &(dyn Fn(String) + Send + Sync) = &event;
    let work = async {
        // Startup: nothing else runs until it succeeds.
        if let Some(p) = &c.startup_probe {
            if !startup(&c, p, &target, event).await {
                let _ = tx.send(Verdict::Unhealthy);
                return;
            }
            let _ = tx.send(Verdict::Started);
        }
        let readiness = async {
            match &c.readiness_probe {
                Some(p) => readiness(&c, p, &target, &tx, event).await,
                None => std::future::pending::<()>().await,
            }
        };
        let liveness = async {
            if let Some(p) = &c.liveness_probe {
                liveness(&c, p, &target, &tx, event).await;
            }
            std::future::pending::<()>().await
        };
        tokio::join!(readiness, liveness);
    };
    tokio::select! {
        _ = work => {}
        _ = done.changed() => {}
    }
}

/// The startup probe until it succeeds (true) or fails `failureThreshold` times (false).
async fn startup(
    c: &Container,
    p: &Probe,
    target: &Target,
    event: &(dyn Fn(String) + Send + Sync),
) -> bool {
    let threshold = p.failure_threshold.unwrap_or(3).max(1);
    let mut failures = 0;
    let mut ok = false;
    run_probe(c, p, target, |success, why| {
        if success {
            ok = true;
            return false;
        }
        failures += 1;
        event(format!("Startup probe failed: {}", why.unwrap_or_default()));
        failures < threshold
    })
    .await;
    ok
}

/// The readiness probe, forever: ready after `successThreshold` successes in a row, not ready
/// after `failureThreshold` failures in a row.
async fn readiness(
    c: &Container,
    p: &Probe,
    target: &Target,
    tx: &mpsc::UnboundedSender<Verdict>,
    event: &(dyn Fn(String) + Send + Sync),
) {
    let (need_ok, need_fail) = (
        p.success_threshold.unwrap_or(1).max(1),
        p.failure_threshold.unwrap_or(3).max(1),
    );
    let (mut oks, mut fails, mut ready) = (0, 0, false);
    run_probe(c, p, target, |success, why| {
        if success {
            oks += 1;
            fails = 0;
            if !ready && oks >= need_ok {
                ready = true;
                let _ = tx.send(Verdict::Ready(true));
            }
        } else {
            fails += 1;
            oks = 0;
            event(format!(
                "Readiness probe failed: {}",
                why.unwrap_or_default()
            ));
            if ready && fails >= need_fail {
                ready = false;
                let _ = tx.send(Verdict::Ready(false));
            }
        }
        true
    })
    .await;
}

/// The liveness probe until it fails `failureThreshold` times in a row: then the container is
/// unhealthy.
async fn liveness(
    c: &Container,
    p: &Probe,
    target: &Target,
    tx: &mpsc::UnboundedSender<Verdict>,
    event: &(dyn Fn(String) + Send + Sync),
) {
    let threshold = p.failure_threshold.unwrap_or(3).max(1);
    let mut fails = 0;
    run_probe(c, p, target, |success, why| {
        if success {
            fails = 0;
            return true;
        }
        fails += 1;
        event(format!(
            "Liveness probe failed: {}",
            why.unwrap_or_default()
        ));
        if fails >= threshold {
            let _ = tx.send(Verdict::Unhealthy);
            return false;
        }
        true
    })
    .await;
}
