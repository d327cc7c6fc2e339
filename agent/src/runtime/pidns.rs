//! A pod's shared PID namespace (`shareProcessNamespace: true`). A PID namespace dies with its
//! PID 1, so a holder process is its PID 1 for the pod's lifetime and reaps the zombies
//! re-parented to it, as Kubernetes' pause container does.
//!
//! `skiff shim --pid-namespace <pod-dir>` (single-threaded, its own session, so that it
//! outlives the daemon as shims do) unshares a PID namespace and forks the holder into it; it
//! writes the holder's record (`<pod-dir>/pid-holder`: pid and start time), tells the daemon
//! the same on stdout, and then waits for the holder (it is the holder's parent and reaper).
//! The daemon bind-mounts the holder's namespace at `<pod-dir>/ns/pid` — containers join that
//! file (the OCI namespace `path`), which names the namespace itself, never a pid that could be
//! reused — and after a daemon restart finds the holder again from its record. The holder is
//! killed (through a pidfd, pid and start time checked) when the pod's sandbox is removed, and
//! by `skiff killall`.

use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::protocol::{write_durable, PidFile};
use super::{pidfd, process_start_ticks};

/// The holder's record in a pod's directory.
pub fn record(pod_dir: &Path) -> PathBuf {
    pod_dir.join("pid-holder")
}

/// Where the pod's PID namespace is bind-mounted (what containers join).
pub fn ns_path(pod_dir: &Path) -> PathBuf {
    pod_dir.join("ns").join("pid")
}

/// `skiff shim --pid-namespace <pod-dir>`: makes the namespace and its holder, reports it, and
/// waits for the holder. Returns the exit code.
pub fn main(pod_dir: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID) {
        eprintln!("skiff pid namespace: unshare: {e}");
        return 1;
    }
    // SAFETY: this process is single-threaded (the shim is dispatched before any thread or
    // runtime starts), so the child may run arbitrary code.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            detach_stdio();
            // A fresh image named `skiff-pause` (what the pod's containers see as PID 1);
            // holding in this process if that fails.
            let _ = nix::unistd::execv(c"/proc/self/exe", &[HOLDER_NAME]);
            hold()
        }
        Ok(ForkResult::Parent { child }) => {
            let holder = PidFile {
                pid: child.as_raw(),
                start_ticks: process_start_ticks(child.as_raw()).unwrap_or(0),
            };
            if let Err(e) = write_durable(&record(pod_dir), holder.to_string().as_bytes()) {
                eprintln!("skiff pid namespace: writing the record: {e}");
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            } else {
                print!("{holder}");
            }
            // The daemon reads one line; stdout closes so that it never waits for more.
            // SAFETY: closing our own stdout; nothing else uses it afterwards.
            unsafe { libc::close(1) };
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => return 0,
                    Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
                    Err(_) => return 0,
                }
            }
        }
        Err(e) => {
            eprintln!("skiff pid namespace: fork: {e}");
            1
        }
    }
}

/// The holder's `argv[0]`: the binary runs [`hold`] when started under this name.
pub const HOLDER_NAME: &std::ffi::CStr = c"skiff-pause";

/// Nothing of the parent's: no stdio, no working directory in the pod's folder.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: duplicating an fd we own over the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = std::env::set_current_dir("/");
}

/// PID 1 of the pod's namespace: reaps what is re-parented to it; SIGTERM or SIGINT end it
/// (from the host, SIGKILL does).
pub fn hold() -> ! {
    // SAFETY: PR_SET_NAME takes a pointer to a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, HOLDER_NAME.as_ptr(), 0, 0, 0) };
    // Containers see it as /proc/1, whose root is the host's: not dumpable (and keeping its
    // full capability set), it is out of reach of ptrace-mode access (/proc/1/root, /cwd,
    // /environ, ptrace) without CAP_SYS_PTRACE — which only a privileged container has.
    // SAFETY: PR_SET_DUMPABLE takes an integer argument only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    let _ = set.thread_block();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            Ok(_) => std::process::exit(0),
            Err(_) => continue,
        }
    }
}

/// The pod's holder if its record names a live process.
pub fn holder(pod_dir: &Path) -> Option<PidFile> {
    PidFile::read(&record(pod_dir)).filter(PidFile::is_alive)
}

/// Kills the pod's holder (and so every process left in its namespace) and removes its
/// record. Nothing to do without a live one.
pub fn kill(pod_dir: &Path) {
    if let Some(h) = holder(pod_dir) {
        if let Ok(fd) = pidfd::open(h.pid) {
            // Checked again through the pidfd's process: the pid was not reused meanwhile.
            if h.is_alive() {
                let _ = pidfd::send_signal(&fd, libc::SIGKILL);
            }
        }
    }
    let _ = std::fs::remove_file(record(pod_dir));
}

/// Bind-mounts the namespace of `holder` at the pod's `ns/pid` unless it is there, checking
/// after the mount that the holder is still the process recorded (so a reused pid is never
/// taken for it).
pub fn bind(pod_dir: &Path, holder: &PidFile) -> std::io::Result<PathBuf> {
    let target = ns_path(pod_dir);
    if super::mount::mounts_under(&target)
        .iter()
        .any(|m| m == &target)
    {
        return Ok(target);
    }
    std::fs::create_dir_all(pod_dir.join("ns"))?;
    std::fs::File::create(&target)?;
    let source = format!("/proc/{}/ns/pid", holder.pid);
    nix::mount::mount(
        Some(source.as_str()),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| std::io::Error::other(format!("binding {source}: {e}")))?;
    if !holder.is_alive() {
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        return Err(std::io::Error::other(
            "the pod's PID namespace holder ended while its namespace was bound",
        ));
    }
    Ok(target)
}

/// The pod's PID namespace, made ready: its live holder found again (after a daemon restart)
/// or a new one started with `exe` (`skiff shim --pid-namespace`), its namespace bound at
/// `ns/pid`. Returns that path.
pub async fn ensure(exe: &Path, pod_dir: &Path) -> std::io::Result<PathBuf> {
    use tokio::io::AsyncBufReadExt;
    let dir = pod_dir.to_path_buf();
    if let Some(h) = holder(pod_dir) {
        return tokio::task::spawn_blocking(move || bind(&dir, &h))
            .await
            .expect("no panic");
    }
    // A namespace bound for a holder that ended is dead: it goes first.
    let target = ns_path(pod_dir);
    if super::mount::mounts_under(&target)
        .iter()
        .any(|m| m == &target)
    {
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| std::io::Error::other(format!("unmounting {}: {e}", target.display())))?;
    }
    std::fs::create_dir_all(pod_dir)?;
    let mut child =
        super::protocol::shim_command(exe, pod_dir, super::protocol::ShimCommand::PidNamespace)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    // The helper lives as long as the holder; whoever waits for it reaps it.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let h = match read {
        Ok(Ok(_)) => PidFile::parse(&line),
        _ => None,
    }
    .ok_or_else(|| std::io::Error::other("the PID namespace holder did not start"))?;
    tokio::task::spawn_blocking(move || bind(&dir, &h))
        .await
        .expect("no panic")
}
