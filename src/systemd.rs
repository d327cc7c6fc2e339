//! systemd's notification protocol, for `Type=notify` (`docs/skiff.service`): `STATUS=` lines
//! while starting, `READY=1` once the store is open and the API, the ingress proxy, the
//! manifests folder and the node agent run, `STOPPING=1` on SIGTERM, and `WATCHDOG=1` while the
//! daemon is healthy (`WatchdogSec=`: systemd restarts a daemon that stops answering — the
//! containers keep running across that restart, as across any). Without `NOTIFY_SOCKET` (not
//! under systemd) every call does nothing.
//!
//! And socket activation (`docs/skiff.socket`): the listening sockets systemd hands over
//! (`LISTEN_FDS`, `LISTEN_PID`) are the API's and the ingress proxy's, so that they outlive
//! each daemon ([`listen_fds`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use sd_notify::NotifyState;
use skiff_controller::model::store::Store;
use tokio::sync::watch;

fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// `STATUS=` — what the daemon is doing (`systemctl status` shows it).
pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}

/// `READY=1` with a status line.
pub fn ready(text: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(text)]);
}

/// `STOPPING=1`.
pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping (containers keep running)"),
    ]);
}

/// `WATCHDOG_USEC`, when it is meant for this process: as libsystemd's
/// `sd_watchdog_enabled`, a `WATCHDOG_PID` naming another process disables it, and none means
/// this one (the `sd-notify` crate insists on the PID).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID").ok() {
        Some(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => (usec > 0).then_some(usec),
    }
}

/// Pings systemd's watchdog at half its interval while the daemon is healthy: the runtime runs
/// this task, and the store answers (its lock is not held by a stuck writer) within the
/// interval. Nothing when the unit has no `WatchdogSec=`.
pub fn watchdog(
    store: Arc<Store>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let usec = watchdog_usec()?;
    let every = Duration::from_micros(usec) / 2;
    Some(tokio::spawn(async move {
        loop {
            let store = store.clone();
            let healthy = tokio::time::timeout(
                every,
                tokio::task::spawn_blocking(move || store.resource_version()),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if healthy {
                notify(&[NotifyState::Watchdog]);
            } else {
                tracing::warn!("the store did not answer within {every:?}: watchdog not pinged");
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }))
}

/// The listening sockets handed over by systemd's socket activation (`LISTEN_FDS` sockets from
/// fd 3 on, `LISTEN_PID` this process) or anyone doing the same; none without them. Each must
/// be a TCP socket (else an error naming its fd). The variables are removed, so that nothing
/// the daemon starts inherits them; the sockets are close-on-exec.
pub fn listen_fds() -> Result<Vec<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    std::env::remove_var("LISTEN_FDNAMES");
    let mut sockets = Vec::new();
    for i in 0..fds.len() {
        let fd = 3 + i;
        if let Some(socket) = fds
            .take_tcp_listener(i)
            .with_context(|| format!("the socket handed over on fd {fd} (LISTEN_FDS)"))?
        {
            sockets.push(socket);
        }
    }
    Ok(sockets)
}
