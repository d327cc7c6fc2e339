//! The shim: `skiff shim <container-dir>`, one single-threaded process per container.
//!
//! It creates and starts the container through libcontainer (so it is the container's
//! parent), copies the container's stdout and stderr into a CRI-format log file (one line per
//! record: `<RFC 3339 nanos> <stdout|stderr> <F|P> <text>`, as kubelet and conmon write),
//! records the exit durably in `exit.json`, removes libcontainer's state and cgroups, and
//! exits. It runs in its own session and does not depend on the daemon: it outlives it.
//!
//! Must never run inside a multi-threaded process (see `../notes/libcontainer.md`): `main.rs`
//! dispatches to [`main`] before any runtime or thread is created, and the zygote
//! (`zygote.rs`), single-threaded, calls it in a fork of itself.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::logfile::LogFile;
use super::protocol::{shim_pid_file, PidFile};
use super::{
    now_rfc3339, now_rfc3339_nanos, pidfd, process_start_ticks, read_json, write_json_durable,
    ContainerMeta, ExitRecord, ShimState,
};

/// Longest partial line kept before it is written as a `P` record.
const MAX_LINE: usize = 16 * 1024;

/// Runs the shim for the container in `dir`; returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    // Not "ignore": an ignored signal stays ignored across exec, so the container would start
    // with SIGINT, SIGHUP and SIGPIPE ignored (`yes | head` never ending, SIGHUP reloads never
    // arriving). A handler that does nothing is reset to the default by exec.
    extern "C" fn nothing(_: libc::c_int) {}
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(nothing),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGPIPE,
    ] {
        // SAFETY: the handler is async-signal-safe (it does nothing) and replaces no handler
        // anything else relies on (the shim is single-threaded and sets no other).
        unsafe {
            let _ = nix::sys::signal::sigaction(sig, &action);
        }
    }
    // Say who we are before anything else, so a daemon restarting right now can tell a shim
    // that is still starting its container from one that died.
    let _ = PidFile::current().write(&shim_pid_file(dir));
    let Some(meta) = read_json::<ContainerMeta>(&dir.join("meta.json")) else {
        eprintln!("shim: cannot read {}/meta.json", dir.display());
        return 2;
    };
    match run(dir, &meta) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("shim: {}: {message}", meta.id);
            let record = ExitRecord::start_error(message);
            if let Err(e) = write_json_durable(&dir.join("exit.json"), &record) {
                eprintln!("shim: cannot record the start error: {e}");
            }
            delete_container(&meta);
            1
        }
    }
}

/// Removes libcontainer's state and cgroups of a container, if any remain.
pub fn delete_container(meta: &ContainerMeta) {
    let state_dir = meta.libcontainer_root.join(&meta.id);
    if !state_dir.exists() {
        return;
    }
    match Container::load(state_dir.clone()) {
        Ok(mut c) => {
            if let Err(e) = c.delete(true) {
                eprintln!("shim: deleting container {}: {e}", meta.id);
            }
        }
        Err(e) => eprintln!("shim: loading container {}: {e}", meta.id),
    }
    let _ = std::fs::remove_dir_all(&state_dir);
}

fn run(dir: &Path, meta: &ContainerMeta) -> Result<(), String> {
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let devnull = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    let mut log = open_log(meta)?;
    let init = start_container(dir, meta, devnull, out_w, err_w)?;
    let started_at = now_rfc3339_nanos();
    let me = std::process::id() as i32;
    let state = ShimState {
        shim_pid: me,
        shim_start_ticks: process_start_ticks(me).unwrap_or(0),
        init_pid: init,
        started_at: started_at.clone(),
    };
    write_json_durable(&dir.join("state.json"), &state)
        .map_err(|e| format!("recording state: {e}"))?;
    let init_fd = pidfd::open(init).map_err(|e| format!("pidfd_open({init}): {e}"))?;
    let status = copy_output(init, &init_fd, out_r, err_r, &mut log)?;
    let record = exit_record(dir, status, started_at);
    write_json_durable(&dir.join("exit.json"), &record)
        .map_err(|e| format!("recording the exit: {e}"))?;
    delete_container(meta);
    Ok(())
}

/// Opens the container's log for appending (creating its directory, removing older
/// instances' files) and creates libcontainer's root.
fn open_log(meta: &ContainerMeta) -> Result<LogFile, String> {
    let log = LogFile::open(&meta.log_path, meta.log_rotation)
        .map_err(|e| format!("opening log {}: {e}", meta.log_path.display()))?;
    std::fs::create_dir_all(&meta.libcontainer_root)
        .map_err(|e| format!("creating {}: {e}", meta.libcontainer_root.display()))?;
    Ok(log)
}

/// Creates and starts the container from `dir/bundle` with the given stdio; its init's pid.
fn start_container(
    dir: &Path,
    meta: &ContainerMeta,
    stdin: File,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<i32, String> {
    // libcontainer writes the spec's oomScoreAdj into its caller's own oom_score_adj too: the
    // shim takes its own back, so that the kernel does not kill the shim (the container's log
    // and exit record) for the container's class.
    let own_oom = std::fs::read_to_string("/proc/self/oom_score_adj").ok();
    let pid = create_and_start(dir, meta, stdin, stdout, stderr);
    if let Some(own) = own_oom {
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", own.trim()) {
            eprintln!("skiff shim: restoring its own oom_score_adj: {e}");
        }
    }
    pid
}

fn create_and_start(
    dir: &Path,
    meta: &ContainerMeta,
    stdin: File,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<i32, String> {
    let mut container = ContainerBuilder::new(meta.id.clone(), SyscallType::default())
        .with_root_path(&meta.libcontainer_root)
        .map_err(|e| format!("libcontainer root: {e}"))?
        .with_stdin(OwnedFd::from(stdin))
        .with_stdout(stdout)
        .with_stderr(stderr)
        .validate_id()
        .map_err(|e| format!("container id {:?}: {e}", meta.id))?
        .as_init(dir.join("bundle"))
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| format!("creating the container: {e}"))?;
    container
        .start()
        .map_err(|e| format!("starting the container: {e}"))?;
    Ok(container
        .pid()
        .ok_or("libcontainer reported no init pid")?
        .as_raw())
}

/// One of the container's output pipes and the log records it becomes.
type Stream = Option<(OwnedFd, LineWriter)>;

/// Copies the container's stdout and stderr into the log until init has exited and both
/// streams are closed (or 2 s after the exit); init's wait status.
fn copy_output(
    init: i32,
    init_fd: &OwnedFd,
    out_r: OwnedFd,
    err_r: OwnedFd,
    log: &mut LogFile,
) -> Result<Option<WaitStatus>, String> {
    let mut streams: [Stream; 2] = [
        Some((out_r, LineWriter::new("stdout"))),
        Some((err_r, LineWriter::new("stderr"))),
    ];
    let mut status: Option<WaitStatus> = None;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if streams.iter().all(Option::is_none) && status.is_some() {
            break;
        }
        if drain_deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        for w in poll_ready(&streams, status.is_none().then_some(init_fd))? {
            if w == usize::MAX {
                status = Some(wait_for(init));
                // The streams close when the container's processes are gone; don't wait forever
                // for a grandchild that escaped with a copy of them.
                drain_deadline = Some(Instant::now() + Duration::from_secs(2));
                continue;
            }
            read_stream(&mut streams[w], log);
        }
        reap_orphans(init);
    }
    for (_, w) in streams.iter_mut().flatten() {
        w.finish(log);
    }
    log.sync();
    Ok(status)
}

/// Polls the open streams and, while init runs, its pidfd (up to 500 ms); which are ready:
/// stream indexes, `usize::MAX` for init.
fn poll_ready(streams: &[Stream; 2], init_fd: Option<&OwnedFd>) -> Result<Vec<usize>, String> {
    let mut fds: Vec<PollFd> = Vec::with_capacity(3);
    let mut which: Vec<usize> = Vec::with_capacity(3);
    for (i, s) in streams.iter().enumerate() {
        if let Some((fd, _)) = s {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            which.push(i);
        }
    }
    if let Some(init_fd) = init_fd {
        fds.push(PollFd::new(init_fd.as_fd(), PollFlags::POLLIN));
        which.push(usize::MAX);
    }
    match poll(&mut fds, PollTimeout::from(500u16)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(format!("poll: {e}")),
    }
    Ok(fds
        .iter()
        .zip(&which)
        .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
        .map(|(_, w)| *w)
        .collect())
}

/// Reads what a ready stream has into the log; closes it at its end or on an error.
fn read_stream(stream: &mut Stream, log: &mut LogFile) {
    let mut buf = [0u8; 64 * 1024];
    let (fd, writer) = stream.as_mut().expect("polled streams exist");
    match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
        Ok(0) => {
            writer.finish(log);
            *stream = None;
        }
        Ok(n) => writer.feed(&buf[..n], log),
        Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
        Err(_) => {
            writer.finish(log);
            *stream = None;
        }
    }
}

/// The exit record for init's wait status.
fn exit_record(dir: &Path, status: Option<WaitStatus>, started_at: String) -> ExitRecord {
    let (exit_code, signal) = match status.unwrap_or(WaitStatus::StillAlive) {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    ExitRecord {
        exit_code,
        signal,
        reason: if exit_code == 0 {
            "Completed".into()
        } else if signal == Some(libc::SIGKILL) && oom_killed(dir) {
            "OOMKilled".into()
        } else {
            "Error".into()
        },
        message: None,
        started_at: Some(started_at),
        finished_at: now_rfc3339(),
    }
}

/// Whether the kernel's OOM killer acted in the container's memory cgroup (read before
/// libcontainer removes it): `oom_kill` in `memory.oom_control` (v1) or `memory.events` (v2).
fn oom_killed(dir: &Path) -> bool {
    let Some(config) = read_json::<serde_json::Value>(&dir.join("bundle").join("config.json"))
    else {
        return false;
    };
    let Some(path) = config["linux"]["cgroupsPath"].as_str() else {
        return false;
    };
    let path = path.trim_start_matches('/');
    [
        "/sys/fs/cgroup/memory/{}/memory.oom_control",
        "/sys/fs/cgroup/unified/{}/memory.events",
        "/sys/fs/cgroup/{}/memory.events",
    ]
    .iter()
    .filter_map(|f| std::fs::read_to_string(f.replace("{}", path)).ok())
    .any(|text| {
        text.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    })
}

fn wait_for(pid: i32) -> WaitStatus {
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return s,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return WaitStatus::StillAlive,
        }
    }
}

/// Reaps processes re-parented to the shim (it is a child subreaper), except the init.
fn reap_orphans(init: i32) {
    // Only reap specific exited children that are not the init: iterate /proc would be costly;
    // waitid with WNOWAIT lets us peek first.
    loop {
        let mut info: libc::siginfo_t = unsafe_zeroed();
        // SAFETY: waitid writes into `info`, a valid siginfo_t we own.
        let r = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r != 0 {
            return;
        }
        // SAFETY: after a successful waitid the si_pid field is valid to read.
        let pid = unsafe { info.si_pid() };
        if pid == 0 || pid == init {
            return;
        }
        let _ = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    }
}

fn unsafe_zeroed() -> libc::siginfo_t {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Splits a stream into CRI log records.
struct LineWriter {
    tag: &'static str,
    partial: Vec<u8>,
}

impl LineWriter {
    fn new(tag: &'static str) -> Self {
        LineWriter {
            tag,
            partial: Vec::new(),
        }
    }

    fn record(&self, log: &mut LogFile, flag: char, text: &[u8]) {
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(now_rfc3339_nanos().as_bytes());
        line.push(b' ');
        line.extend_from_slice(self.tag.as_bytes());
        line.push(b' ');
        line.push(flag as u8);
        line.push(b' ');
        line.extend_from_slice(text);
        line.push(b'\n');
        let _ = log.write_record(&line);
    }

    fn feed(&mut self, data: &[u8], log: &mut LogFile) {
        self.partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let text = self.partial[start..end].to_vec();
            self.record(log, 'F', &text);
            start = end + 1;
        }
        self.partial.drain(..start);
        while self.partial.len() > MAX_LINE {
            let text: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
            self.record(log, 'P', &text);
        }
    }

    fn finish(&mut self, log: &mut LogFile) {
        if !self.partial.is_empty() {
            let text = std::mem::take(&mut self.partial);
            self.record(log, 'F', &text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_cri_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut f = LogFile::open(&path, Default::default()).unwrap();
        let mut w = LineWriter::new("stdout");
        w.feed(b"hello\nwor", &mut f);
        w.feed(b"ld\n", &mut f);
        w.feed(b"tail", &mut f);
        w.finish(&mut f);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with(" stdout F hello"), "{}", lines[0]);
        assert!(lines[1].ends_with(" stdout F world"));
        assert!(lines[2].ends_with(" stdout F tail"));
        assert!(lines[0]
            .split(' ')
            .next()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok());
    }
}
