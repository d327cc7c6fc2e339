//! Shims forked from a helper instead of executed: the **zygote**.
//!
//! An executed shim loads the whole `skiff` executable anew, and the dynamic loader applies its
//! relocations — the position-independent executable's `.data.rel.ro`, ~670 kB — in every shim,
//! as private pages (measured: that was a third of a shim's 2 MB PSS, `docs/benchmarks.md`). The
//! zygote is forked by the daemon before it starts any thread, so it is single-threaded and
//! already relocated; each shim is a fork of it that calls [`super::shim::main`] directly, and
//! shares those pages (and the rest of the zygote's memory) copy-on-write with every other shim.
//! A fork of a small single-threaded process is also cheaper than the daemon executing the
//! binary again.
//!
//! Protocol, over a Unix socket pair: the daemon sends a container directory (the message's
//! bytes) with the shim's log file (`SCM_RIGHTS`); the zygote forks, and answers one byte with a
//! pidfd of the shim (without one: it could not). The shim child resets what the zygote set
//! (`SIGINT`), closes the zygote's socket, takes the log file as stdout and stderr and
//! `/dev/null` as stdin, names itself `skiff shim <dir>` in `/proc/<pid>/cmdline` (as an
//! executed shim is named: `ps`, `benchlib.py`), and runs the shim. The zygote reaps the
//! shims it forked within a second of their end (their exits are recorded in `exit.json` and
//! seen through pidfds); it dies with the daemon (`PR_SET_PDEATHSIG`, and it
//! ends when the socket closes), and the shims live on, as executed ones do.
//!
//! Anything wrong with the zygote (not started because the daemon already had threads, gone,
//! a failed fork) makes [`super::handle::Runtime`] execute the shim as before.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// Longest container directory path sent (a path is far shorter; a socket message is bounded).
const MAX_DIR: usize = 4096;

/// The daemon's end of the zygote.
pub struct Zygote {
    socket: Mutex<OwnedFd>,
    pid: i32,
    /// Its socket failed: it is gone (said once; shims are executed from then on).
    gone: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote").field("pid", &self.pid).finish()
    }
}

impl Zygote {
    /// Forks the zygote, named `skiff shim-zygote <data_dir>`. `None` (shims are executed)
    /// when this process already runs more than one thread — a fork would copy locks other
    /// threads hold — or the fork fails.
    pub fn start(data_dir: &Path) -> Option<Zygote> {
        if threads() != Some(1) {
            tracing::warn!("shims are executed, not forked: the daemon already runs threads");
            return None;
        }
        // Datagrams in order: one request, one answer, never split or merged.
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .ok()?;
        let parent = std::process::id() as i32;
        // SAFETY: this process is single-threaded (checked above), so the child may run any
        // code; it never returns from `serve`.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                drop(ours);
                serve(theirs, parent, data_dir)
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => Some(Zygote {
                socket: Mutex::new(ours),
                pid: child.as_raw(),
                gone: Default::default(),
            }),
            Err(e) => {
                tracing::warn!("shims are executed, not forked: cannot fork the zygote: {e}");
                None
            }
        }
    }

    /// Forks a shim for the container directory `dir`, its stdout and stderr `log`; a pidfd of
    /// the shim. Blocks for the fork (well under a millisecond).
    pub fn spawn(&self, dir: &Path, log: &std::fs::File) -> Result<OwnedFd, SpawnError> {
        let dir = dir.as_os_str().as_bytes();
        if dir.is_empty() || dir.len() > MAX_DIR {
            return Err(SpawnError::NotForked(std::io::Error::other(
                "container directory path too long",
            )));
        }
        use std::sync::atomic::Ordering;
        if self.gone.load(Ordering::Relaxed) {
            return Err(SpawnError::NotForked(std::io::Error::other(
                "the zygote is gone",
            )));
        }
        let socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let fds = [log.as_raw_fd()];
        retry(|| {
            sendmsg::<()>(
                socket.as_raw_fd(),
                &[IoSlice::new(dir)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
        })
        .map_err(|e| {
            if !self.gone.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    zygote = self.pid,
                    "the shims' zygote is gone ({e}): shims are executed from now on"
                );
            }
            SpawnError::NotForked(e.into())
        })?;
        let mut answer = [0u8; 1];
        let (n, fd) = retry(|| receive(socket.as_raw_fd(), &mut answer))
            .map_err(|e| SpawnError::Unknown(e.into()))?;
        match (n, fd) {
            (1, Some(fd)) => Ok(fd),
            (1, None) => Err(SpawnError::NotForked(std::io::Error::other(
                "the zygote could not fork the shim",
            ))),
            _ => Err(SpawnError::Unknown(std::io::Error::other(
                "the zygote ended without answering",
            ))),
        }
    }
}

/// Why [`Zygote::spawn`] gave no shim.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No shim was forked (the zygote is gone, or said so): executing one instead is safe.
    #[error("{0}")]
    NotForked(std::io::Error),
    /// The request went out and no answer came back: a shim may run for the directory.
    #[error("{0}")]
    Unknown(std::io::Error),
}

/// `f` again while it is interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Threads of this process (`/proc/self/status`).
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// Receives a message into `buf` and at most one file descriptor with it.
fn receive(socket: RawFd, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for (i, raw) in fds.into_iter().enumerate() {
                // SAFETY: the kernel just installed these descriptors in this process.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if i == 0 {
                    fd = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, fd))
}

/// The zygote's loop (see the module's description); never returns.
fn serve(socket: OwnedFd, parent: i32, data_dir: &Path) -> ! {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
    if nix::unistd::getppid().as_raw() != parent {
        // The daemon died before the line above.
        std::process::exit(0);
    }
    // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
    unsafe {
        // Ctrl-C in the daemon's terminal is for the daemon; the zygote ends with it.
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    close_other_fds(socket.as_raw_fd());
    let mut name = b"shim-zygote\0".to_vec();
    name.extend_from_slice(data_dir.as_os_str().as_bytes());
    name_process(&name);
    let fd = socket.as_raw_fd();
    let answer = |pidfd: Option<&OwnedFd>| {
        let raw = pidfd.map(|p| [p.as_raw_fd()]);
        let rights = raw.as_ref().map(|r| ControlMessage::ScmRights(r));
        let _ = sendmsg::<()>(
            fd,
            &[IoSlice::new(&[0])],
            rights.as_slice(),
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
    };
    let mut dir = vec![0u8; MAX_DIR];
    loop {
        reap();
        // Wakes at least every second to reap the shims that ended (they are zombies until
        // then; the daemon sees their end through its pidfds either way).
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 1000) } <= 0 {
            continue;
        }
        let (n, log) = match retry(|| receive(fd, &mut dir)) {
            Ok((0, _)) | Err(_) => std::process::exit(0),
            Ok(x) => x,
        };
        let Some(log) = log else {
            answer(None);
            continue;
        };
        let dir = Path::new(std::ffi::OsStr::from_bytes(&dir[..n]));
        // SAFETY: the zygote is single-threaded; the child runs the shim and exits.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                drop(socket);
                std::process::exit(shim(dir, log))
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(log);
                // The shim is not reaped before this (only `reap` does), so the pidfd names it
                // however early it ends.
                match super::pidfd::open(child.as_raw()) {
                    Ok(pidfd) => answer(Some(&pidfd)),
                    Err(_) => {
                        // Not to be watched, so not to run: the daemon executes another.
                        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                        answer(None);
                    }
                }
            }
            Err(_) => answer(None),
        }
    }
}

/// Reaps the shims that have ended.
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// In the forked shim: undo the zygote's settings, set up stdio, run the shim.
fn shim(dir: &Path, log: OwnedFd) -> i32 {
    // SAFETY: restoring defaults runs no code of ours; dup2 onto the standard descriptors of
    // this (single-threaded) process, from descriptors it owns.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    drop(log);
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // SAFETY: as above.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
        }
    }
    let mut name = b"shim\0".to_vec();
    name.extend_from_slice(dir.as_os_str().as_bytes());
    name_process(&name);
    super::shim::main(dir)
}

/// Closes every descriptor but the standard ones and `keep`.
fn close_other_fds(keep: RawFd) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && *fd != keep)
        .collect();
    for fd in fds {
        // SAFETY: closing a descriptor nothing in this fresh child uses (the directory's own
        // descriptor is among them and already closed: EBADF, ignored).
        unsafe {
            libc::close(fd);
        }
    }
}

/// The kernel's `struct prctl_mm_map` (`linux/prctl.h`; not in the `libc` crate).
#[repr(C)]
struct PrctlMmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *mut u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// Makes `/proc/self/cmdline` read `skiff` followed by `args` (NUL-separated), as an executed
/// shim's does. `PR_SET_MM_MAP` (the whole memory map's description, every other field as it
/// is, from `/proc/self/stat`) rather than `PR_SET_MM_ARG_START`: it needs no
/// `CAP_SYS_RESOURCE` (made for checkpoint/restore without privileges). Best effort.
fn name_process(args: &[u8]) {
    let mut line = b"skiff\0".to_vec();
    line.extend_from_slice(args);
    line.push(0);
    // Lives as long as the process.
    let line: &'static [u8] = Box::leak(line.into_boxed_slice());
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command's closing parenthesis start at field 3.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return;
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    let start = line.as_ptr() as u64;
    let mut map = PrctlMmMap {
        start_code: field(26),
        end_code: field(27),
        start_data: field(45),
        end_data: field(46),
        start_brk: field(47),
        // SAFETY: sbrk(0) only reads the current program break.
        brk: unsafe { libc::sbrk(0) } as u64,
        start_stack: field(28),
        arg_start: start,
        arg_end: start + line.len() as u64,
        env_start: field(50),
        env_end: field(51),
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        exe_fd: u32::MAX,
    };
    // SAFETY: prctl reads the struct (valid, of the size given) and records the addresses;
    // the new arguments point at memory that stays valid for the rest of the process.
    unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP,
            &mut map as *mut PrctlMmMap,
            std::mem::size_of::<PrctlMmMap>(),
            0,
        );
    }
}
