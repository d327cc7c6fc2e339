//! The listening sockets handed from a running daemon to its successor, without systemd (as
//! HAProxy's seamless reload does): a `skiff server` started on a data directory whose daemon
//! runs asks it, over `<data-dir>/run/listeners.sock`, for its listening sockets (`SCM_RIGHTS`);
//! the running daemon sends them and stops as on SIGTERM (it drains), and the successor waits
//! for it to exit before it opens the data directory — the store, the shims and the host's
//! networking have one owner at a time. The sockets stay open throughout: connections arriving
//! meanwhile wait in their queues for the successor. Under systemd (`skiff.socket`) the
//! sockets come from systemd instead and this is not used.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use skiff_agent::runtime::protocol::PidFile;
use skiff_proxy::serve::Inherited;

/// At most this many sockets are handed over (the API's two, the ingress's two, and room).
const MAX_SOCKETS: usize = 8;

/// The socket a running daemon offers its listeners on.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("listeners.sock")
}

/// The listening sockets of the daemon running on `data_dir`, taken over: `None` when none
/// runs. Returns once that daemon has exited (it drains first, at most
/// `skiff_proxy::serve::DRAIN_TIMEOUT`); an error if it does not, or offers no sockets (two
/// daemons must never share a data directory).
pub fn take_over(data_dir: &Path) -> Result<Option<Vec<std::net::TcpListener>>> {
    let pid_file = data_dir.join("run").join("skiff.pid");
    let Some(running) = PidFile::read(&pid_file).filter(PidFile::is_alive) else {
        return Ok(None);
    };
    let at = path(data_dir);
    let stream = UnixStream::connect(&at).with_context(|| {
        format!(
            "a daemon (pid {}) runs on this data directory but offers no listeners at {} \
             (started before skiff could hand them over?): stop it first",
            running.pid,
            at.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .with_context(|| format!("receiving the listeners from {}", at.display()))?;
    let mut sockets = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            sockets.extend(fds.map(|fd: OwnedFd| std::net::TcpListener::from(fd)));
        }
    }
    tracing::info!(
        pid = running.pid,
        sockets = sockets.len(),
        "taking over from the running daemon: waiting for it to stop"
    );
    let deadline = Instant::now() + skiff_proxy::serve::DRAIN_TIMEOUT + Duration::from_secs(10);
    while running.is_alive() {
        if Instant::now() >= deadline {
            bail!(
                "the running daemon (pid {}) did not stop after handing its listeners over",
                running.pid
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(sockets))
}

/// Offers `listeners`' sockets to a successor on [`path`] until `shutdown` flips: the first
/// connection from this user gets them all, then `stop` is notified (the daemon stops as on
/// SIGTERM).
pub fn offer(
    data_dir: &Path,
    listeners: Arc<Inherited>,
    stop: Arc<tokio::sync::Notify>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let at = path(data_dir);
    let _ = std::fs::remove_file(&at);
    let socket = tokio::net::UnixListener::bind(&at)
        .with_context(|| format!("offering the listeners on {}", at.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.changed() => break,
                accepted = socket.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!("{}: {e}", at.display());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Only this user (the run directory is private anyway).
            if stream.peer_cred().map(|c| c.uid()).ok() != Some(me) {
                continue;
            }
            match send(&stream, &listeners) {
                Ok(n) => {
                    tracing::info!(
                        sockets = n,
                        "listeners handed to a successor: stopping (containers keep running)"
                    );
                    stop.notify_one();
                    break;
                }
                Err(e) => tracing::warn!("handing the listeners over: {e}"),
            }
        }
        let _ = std::fs::remove_file(&at);
    }))
}

fn send(stream: &tokio::net::UnixStream, listeners: &Inherited) -> std::io::Result<usize> {
    let sockets = listeners.kept()?;
    let fds: Vec<_> = sockets
        .iter()
        .take(MAX_SOCKETS)
        .map(|s| s.as_fd())
        .collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("too many sockets to hand over"));
    }
    rustix::net::sendmsg(
        stream,
        &[IoSlice::new(b"L")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(fds.len())
}
