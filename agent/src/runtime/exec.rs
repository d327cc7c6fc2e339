//! `skiff shim --exec [--tty] <container-dir> -- COMMAND…`: runs a process inside a running
//! container (what `kubectl exec` asks for) through libcontainer's tenant builder and exits
//! with the process's exit code. Like the shim it is a small single-threaded process of its
//! own: the tenant builder changes its caller as the init builder does.
//!
//! Without `--tty` the process gets this process's stdin/stdout/stderr.
//!
//! With `--tty` the process gets a pseudo-terminal, the way `runc exec -t` does it:
//! libcontainer's console-socket mechanism. The process spec (a `process.json` with
//! `terminal: true`) makes the tenant's init open a pty pair from the *container's* devpts
//! (so `tty` inside shows `/dev/pts/N` and it is the session's controlling terminal) and
//! send the master over a Unix socket this helper listens on. The helper then relays: its
//! stdout carries the terminal's output; its stdin carries frames from the daemon — see
//! [`TTY_INPUT`] and [`TTY_RESIZE`] — input for the terminal and window sizes, applied with
//! `TIOCSWINSZ` (the kernel sends `SIGWINCH` to the foreground process group). The end of
//! stdin means the client went away: the helper closes the master, which hangs up the
//! terminal (`SIGHUP`), and kills the process if it outlives that by five seconds.
//!
//! Why not a pty allocated here and handed over as the process's stdio: its slave would live
//! in the host's devpts, which the container does not see (so `tty` inside cannot name it), and
//! without a console socket the tenant's init does not make it the controlling terminal (no
//! `^C`, no job control). libcontainer accepts a console socket only with `detach(true)`,
//! which it uses for nothing else: the process is still our child and we wait for it.

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::{
    Capabilities, LinuxCapabilitiesBuilder, Process, ProcessBuilder, Spec, UserBuilder,
};
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::{pidfd, read_json, ContainerMeta, ExitRecord, Layout, ShimState};

/// With `--tty`, a frame on stdin is `[kind, len (u32 big-endian), payload]` (the API server
/// writes them: see `skiff_controller::api::Node::exec`). This kind's payload is input for the
/// terminal.
pub const TTY_INPUT: u8 = 0;
/// A frame whose payload is a window size: columns then rows, each a big-endian u16.
pub const TTY_RESIZE: u8 = 4;

/// The directory of the running instance of a pod's container, if any.
pub fn running_container_dir(layout: &Layout, pod_uid: &str, container: &str) -> Option<PathBuf> {
    let prefix = super::container_id_prefix(pod_uid, container);
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir(layout.containers())
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .filter(|(_, dir)| {
            read_json::<ShimState>(&dir.join("state.json")).is_some()
                && read_json::<ExitRecord>(&dir.join("exit.json")).is_none()
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, d)| d)
}

/// Runs `command` in the container of `dir` (with a terminal if `tty`); returns the exit code
/// for this process.
pub fn main(dir: &Path, command: Vec<String>, tty: bool) -> i32 {
    let Some(meta) = read_json::<ContainerMeta>(&dir.join("meta.json")) else {
        eprintln!("skiff: no container in {}", dir.display());
        return 126;
    };
    if command.is_empty() {
        eprintln!("skiff: exec needs a command");
        return 126;
    }
    if tty {
        return match run_tty(dir, &meta, command.clone()) {
            Ok(code) => code,
            Err(e) => {
                eprintln!(
                    "skiff: exec of {:?} in container {} failed: {e}\r",
                    command, meta.container_name
                );
                126
            }
        };
    }
    let built = ContainerBuilder::new(meta.id.clone(), SyscallType::default())
        .with_root_path(&meta.libcontainer_root)
        .and_then(|b| b.validate_id())
        .and_then(|b| {
            b.as_tenant()
                .with_container_args(command.clone())
                .with_detach(false)
                .build()
        });
    let pid = match built {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!(
                "skiff: exec of {:?} in container {} failed: {e}",
                command, meta.container_name
            );
            return 126;
        }
    };
    wait_code(pid)
}

/// Waits for our child `pid`; its exit code (128 + the signal if killed).
fn wait_code(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("skiff: waiting for the exec'd process: {e}");
                return 126;
            }
        }
    }
}

/// The exec'd process as the tenant builder makes it without a process file (the container's
/// environment and capabilities, its no-new-privileges, uid 0, cwd `/`), plus a terminal and
/// `TERM=xterm` unless the container sets `TERM` (as containerd does for `exec -t`).
fn tty_process(spec: &Spec, command: Vec<String>) -> Result<Process, String> {
    let sp = spec.process().as_ref();
    let mut env = sp.and_then(|p| p.env().clone()).unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let caps = match sp.and_then(|p| p.capabilities().clone()) {
        Some(mut c) => {
            if c.inheritable().is_none() {
                c.set_ambient(None);
            }
            c
        }
        None => {
            let none = Capabilities::new();
            let mut c = LinuxCapabilitiesBuilder::default()
                .bounding(none.clone())
                .effective(none.clone())
                .permitted(none)
                .build()
                .map_err(|e| e.to_string())?;
            c.set_inheritable(None);
            c.set_ambient(None);
            c
        }
    };
    let mut b = ProcessBuilder::default()
        .terminal(true)
        .args(command)
        .env(env)
        .capabilities(caps)
        .user(UserBuilder::default().build().map_err(|e| e.to_string())?);
    if let Some(n) = sp.and_then(|p| p.no_new_privileges()) {
        b = b.no_new_privileges(n);
    }
    b.build().map_err(|e| e.to_string())
}

/// Removes the files of one tty exec when dropped.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Waits up to `timeout` for `fd` to poll with `events`; whether it did.
fn poll_one(fd: RawFd, events: i16, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    r > 0 && p.revents != 0
}

/// Starts `command` with a terminal and relays it (see the module's doc).
fn run_tty(dir: &Path, meta: &ContainerMeta, command: Vec<String>) -> Result<i32, String> {
    let spec = Spec::load(dir.join("bundle/config.json"))
        .map_err(|e| format!("reading the container's spec: {e}"))?;
    let process = tty_process(&spec, command)?;
    let me = std::process::id();
    let process_path = dir.join(format!("exec-{me}.process.json"));
    let socket_name = format!("exec-{me}.tty.sock");
    let socket_path = dir.join(&socket_name);
    let mut cleanup = Cleanup(vec![process_path.clone(), socket_path.clone()]);
    std::fs::write(
        &process_path,
        serde_json::to_vec(&process).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("writing {}: {e}", process_path.display()))?;
    // Bound by a relative name: a socket's path must fit in 108 bytes, the container's
    // directory may not. libcontainer links to the absolute path (no such limit).
    std::env::set_current_dir(dir).map_err(|e| format!("entering {}: {e}", dir.display()))?;
    let listener = UnixListener::bind(&socket_name).map_err(|e| format!("console socket: {e}"))?;
    let built = ContainerBuilder::new(meta.id.clone(), SyscallType::default())
        .with_console_socket(Some(&socket_path))
        .with_root_path(&meta.libcontainer_root)
        .and_then(|b| b.validate_id())
        .and_then(|b| {
            b.as_tenant()
                .with_process(Some(&process_path))
                .with_detach(true)
                .build()
        });
    // libcontainer left a link to the socket in its state directory.
    if let Ok(entries) = std::fs::read_dir(meta.libcontainer_root.join(&meta.id)) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("tenant-tty-")
                && std::fs::read_link(e.path()).is_ok_and(|t| t == socket_path)
            {
                cleanup.0.push(e.path());
            }
        }
    }
    let pid = built.map_err(|e| e.to_string())?;
    // The tenant's init sent the master before it exec'd the command, and build() returned
    // after that exec: the message waits in the connected socket.
    let master = (|| {
        listener.set_nonblocking(true).ok()?;
        if !poll_one(listener.as_raw_fd(), libc::POLLIN, Duration::from_secs(10)) {
            return None;
        }
        let (conn, _) = listener.accept().ok()?;
        conn.set_nonblocking(false).ok()?;
        let mut buf = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!(RawFd);
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        for c in msg.cmsgs().ok()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                let mut fds = fds.into_iter();
                let first = fds.next()?;
                for extra in fds {
                    // SAFETY: fds received with SCM_RIGHTS are ours.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: as above; nothing else owns it.
                return Some(unsafe { OwnedFd::from_raw_fd(first) });
            }
        }
        None
    })();
    drop(cleanup);
    let Some(master) = master else {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        wait_code(pid);
        return Err("no terminal came from the container".into());
    };
    Ok(relay(master, pid))
}

/// Applies a window size (columns, rows) to the terminal of `master`.
fn set_size(master: &OwnedFd, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

/// Relays stdin frames into the terminal and its output to stdout until `pid` exits; returns
/// its exit code.
fn relay(master: OwnedFd, pid: Pid) -> i32 {
    let m = master.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    unsafe {
        let flags = libc::fcntl(m, libc::F_GETFL);
        libc::fcntl(m, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let Ok(exited) = pidfd::open(pid.as_raw()) else {
        return wait_code(pid);
    };
    let mut stdout = std::io::stdout().lock();
    let mut terminal = Terminal::new(master);
    match terminal.relay_until_exit(&exited, &mut stdout) {
        RelayEnd::HungUp => {
            // The client is gone: hang the terminal up, then make sure the process ends.
            drop(terminal);
            if !poll_one(exited.as_raw_fd(), libc::POLLIN, Duration::from_secs(5)) {
                let _ = pidfd::send_signal(&exited, libc::SIGKILL);
            }
            wait_code(pid)
        }
        RelayEnd::Exited => {
            let code = wait_code(pid);
            terminal.drain(&mut stdout);
            code
        }
    }
}

/// How a relay ended.
enum RelayEnd {
    /// The process exited (or polling failed).
    Exited,
    /// The client went away: stdin ended or stdout failed.
    HungUp,
}

/// The terminal's side of a relay: its master, the input waiting for it, and stdin's frames
/// not yet complete.
struct Terminal {
    master: OwnedFd,
    /// Until the master reads its end (every slave fd closed).
    open: bool,
    frames: Vec<u8>,
    input: Vec<u8>,
    buf: Vec<u8>,
}

impl Terminal {
    fn new(master: OwnedFd) -> Self {
        Terminal {
            master,
            open: true,
            frames: Vec::new(),
            input: Vec::new(),
            buf: vec![0u8; 32 * 1024],
        }
    }

    /// Relays until the process exits (`exited`, its pidfd, is readable) or the client goes.
    fn relay_until_exit(&mut self, exited: &OwnedFd, stdout: &mut impl Write) -> RelayEnd {
        loop {
            let mut fds = self.poll_fds(exited);
            // SAFETY: a valid array of pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return RelayEnd::Exited;
            }
            if fds[0].revents != 0 {
                return RelayEnd::Exited;
            }
            if fds[1].revents != 0 && !self.read_stdin() {
                return RelayEnd::HungUp;
            }
            if self.open && fds[2].revents != 0 && !self.serve_master(fds[2].revents, stdout) {
                return RelayEnd::HungUp;
            }
        }
    }

    /// What to poll: the process's pidfd, stdin (while the terminal keeps up with the input),
    /// the master (while open; writable only when input waits).
    fn poll_fds(&self, exited: &OwnedFd) -> [libc::pollfd; 3] {
        let read_stdin = self.input.len() < 64 * 1024;
        [
            libc::pollfd {
                fd: exited.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if read_stdin { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if self.open {
                    self.master.as_raw_fd()
                } else {
                    -1
                },
                events: libc::POLLIN
                    | if self.input.is_empty() {
                        0
                    } else {
                        libc::POLLOUT
                    },
                revents: 0,
            },
        ]
    }

    /// Reads stdin and applies its complete frames; false at its end.
    fn read_stdin(&mut self) -> bool {
        match nix::unistd::read(0, &mut self.buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => self.frames.extend_from_slice(&self.buf[..n]),
        }
        while self.frames.len() >= 5 {
            let f = &self.frames;
            let len = u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize;
            if f.len() < 5 + len {
                break;
            }
            let payload = &f[5..5 + len];
            match f[0] {
                TTY_INPUT => self.input.extend_from_slice(payload),
                TTY_RESIZE if len == 4 => set_size(
                    &self.master,
                    u16::from_be_bytes([payload[0], payload[1]]),
                    u16::from_be_bytes([payload[2], payload[3]]),
                ),
                _ => {}
            }
            self.frames.drain(..5 + len);
        }
        true
    }

    /// Writes waiting input to the master and copies its output to stdout; false when stdout
    /// fails.
    fn serve_master(&mut self, revents: libc::c_short, stdout: &mut impl Write) -> bool {
        if revents & libc::POLLOUT != 0 && !self.input.is_empty() {
            match nix::unistd::write(&self.master, &self.input) {
                Ok(n) => {
                    self.input.drain(..n);
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => self.input.clear(),
            }
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match nix::unistd::read(self.master.as_raw_fd(), &mut self.buf) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    if stdout
                        .write_all(&self.buf[..n])
                        .and_then(|_| stdout.flush())
                        .is_err()
                    {
                        return false;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                // EIO: every slave fd is closed.
                Err(_) => self.open = false,
            }
        }
        true
    }

    /// After the exit: what the process wrote just before it; a background process that still
    /// holds the terminal gets a second at most, then the hang-up.
    fn drain(&mut self, stdout: &mut impl Write) {
        let m = self.master.as_raw_fd();
        let until = Instant::now() + Duration::from_secs(1);
        while self.open && Instant::now() < until {
            if !poll_one(m, libc::POLLIN, Duration::from_millis(100)) {
                break;
            }
            match nix::unistd::read(m, &mut self.buf) {
                Ok(n) if n > 0 => {
                    if stdout
                        .write_all(&self.buf[..n])
                        .and_then(|_| stdout.flush())
                        .is_err()
                    {
                        break;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                _ => break,
            }
        }
    }
}
