//! End-to-end test harness: runs the real `skiff` binary (as root) against temporary data,
//! manifests and images folders, and looks at real outcomes — HTTP answers from containers,
//! processes in `/proc`, mounts in `/proc/self/mountinfo`, cgroup directories.
//!
//! What lives here:
//! - [`skiff_bin`]: where the binary under test is (`SKIFF_BIN`, else the cargo target dir).
//! - [`Server`]: one daemon with its own temporary folders; start / SIGTERM / `kill -9` / restart
//!   (with listening sockets handed over as systemd does, [`Server::hold_sockets`], or a
//!   take-over by a second daemon, [`Server::take_over`]), stderr captured to a file, `skiff get … -o json`, manifest writes, leftover checks, and a
//!   `Drop` that runs `skiff killall` and removes what the test made.
//! - Helpers: [`free_port`], [`http_get`], [`wait_until`] / [`wait_for`], process lookups.
//! - Test images: [`build_busybox_image`] (the shell script in `e2e/images/`), [`docker25_archive`]
//!   (the `docker save` layout of Docker 25+), and [`hostile`] archives for the image-import tests.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod hostile;
pub mod ingress;
pub mod kubectl;
pub mod pebble;
pub mod registry;

/// How long the tests wait for something that should happen "within seconds".
pub const WAIT: Duration = Duration::from_secs(30);
/// Poll interval of the waits.
pub const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Locating things

/// The workspace root (the parent of `e2e/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// The `skiff` binary under test: `$SKIFF_BIN`, else `$CARGO_TARGET_DIR/debug/skiff`, else the
/// `skiff` next to this test executable's `deps/` folder, else `<workspace>/target/debug/skiff`.
/// Panics with instructions when none exists (`cargo test -p skiff-e2e` does not build it).
pub fn skiff_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SKIFF_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SKIFF_BIN={} does not name a file; build skiff first (`cargo build -p skiff`)",
            p.display()
        );
        return p;
    }
    let mut candidates = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("debug/skiff"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // <target>/debug/deps/<test>-<hash> → <target>/debug/skiff
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("skiff"));
        }
    }
    candidates.push(workspace_root().join("target/debug/skiff"));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "the skiff binary was not found (looked at {}).\n\
         Build it first: `cargo build -p skiff` (with the same CARGO_TARGET_DIR), or set SKIFF_BIN=/path/to/skiff.",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Panics unless the tests run as root (containers, mounts and cgroups need it).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the e2e tests start real containers and must run as root"
    );
}

/// The image build script, `e2e/images/build-busybox-image.sh`.
pub fn busybox_image_script() -> PathBuf {
    workspace_root().join("e2e/images/build-busybox-image.sh")
}

/// Imports into `server` the busybox test image `reference` with one more program: the
/// std-only Rust source `e2e/images/<source>.rs`, built static with rustc, at `/bin/<source>`.
pub fn import_image_with_program(server: &Server, reference: &str, source: &str) {
    let program = server.work_dir.join(source);
    let src = workspace_root().join(format!("e2e/images/{source}.rs"));
    let built = Command::new("rustc")
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&program)
        .arg(&src)
        .status()
        .expect("rustc");
    assert!(built.success(), "building {source}");
    let archive = server.work_dir.join(format!("{source}.tar"));
    let out = Command::new("bash")
        .arg(busybox_image_script())
        .arg(&archive)
        .arg(reference)
        .arg("--add")
        .arg(format!("{}:/bin/{source}", program.display()))
        .output()
        .expect("build the image");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.import_image(&archive).status.success());
}

/// Builds the busybox test image (see `e2e/images/build-busybox-image.sh`) into `out`:
/// a `docker save`-style archive, or an OCI archive when `oci` is true.
pub fn build_busybox_image(out: &Path, reference: &str, oci: bool) -> Result<()> {
    run_image_script(out, reference, if oci { &["--oci"] } else { &[] })
}

/// Builds the busybox test image with extra files (`(host path, path in the image)`) into
/// `out`, a `docker save`-style archive.
pub fn build_busybox_image_with(out: &Path, reference: &str, add: &[(&Path, &str)]) -> Result<()> {
    let args: Vec<String> = add
        .iter()
        .flat_map(|(from, to)| ["--add".to_string(), format!("{}:{to}", from.display())])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_image_script(out, reference, &args)
}

fn run_image_script(out: &Path, reference: &str, args: &[&str]) -> Result<()> {
    let o = Command::new("bash")
        .arg(busybox_image_script())
        .arg(out)
        .arg(reference)
        .args(args)
        .output()
        .context("running build-busybox-image.sh")?;
    if !o.status.success() {
        bail!(
            "build-busybox-image.sh failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

/// Where slow-to-build test artifacts are kept between runs: `$SKIFF_E2E_CACHE`, else
/// `/var/tmp/skiff-e2e-cache`.
pub fn e2e_cache_dir() -> PathBuf {
    std::env::var_os("SKIFF_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp/skiff-e2e-cache".into())
}

/// A Debian image with `packages` as `reference` (`e2e/images/build-debian-image.sh`:
/// mmdebstrap + umoci + skopeo, ~30 s), as a `docker save`-style archive kept in
/// [`e2e_cache_dir`] — keyed by the script, the packages and the reference, so a second run (or
/// another test) reuses it and a changed script builds anew.
pub fn cached_debian_image(reference: &str, packages: &[&str]) -> Result<PathBuf> {
    cached_debian_image_with_cmd(reference, packages, &["bash"])
}

/// [`cached_debian_image`] whose command is `cmd`: the command an upstream image of that name
/// runs, so that a real manifest naming it runs unchanged.
pub fn cached_debian_image_with_cmd(
    reference: &str,
    packages: &[&str],
    cmd: &[&str],
) -> Result<PathBuf> {
    let script = workspace_root().join("e2e/images/build-debian-image.sh");
    let mut key = fs::read(&script).context("reading build-debian-image.sh")?;
    key.extend(format!("{reference} {packages:?}").as_bytes());
    if cmd != ["bash"] {
        key.extend(format!(" cmd {cmd:?}").as_bytes());
    }
    let cache = e2e_cache_dir();
    let out = cache.join(format!("debian-{}.tar", &sha256_hex(&key)[..16]));
    // One build at a time in this test process: two tests wanting the same image wait for
    // the first to build it, then both use it.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if out.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(&cache).context("creating the e2e cache dir")?;
    let started = Instant::now();
    let o = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .arg(reference)
        .args(packages)
        .env("IMAGE_CMD", cmd.join("\n"))
        .output()
        .context("running build-debian-image.sh")?;
    if !o.status.success() {
        bail!(
            "build-debian-image.sh failed ({}; needs mmdebstrap, umoci, skopeo and apt's lists: \
             bash e2e/install-deps.sh): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    eprintln!("built {} in {:?}", out.display(), started.elapsed());
    Ok(out)
}

/// A random lowercase hex string (for markers and names).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    hex::encode(buf)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

// ---------------------------------------------------------------------------------------------
// Waiting, ports, HTTP

/// Polls `f` every `poll` until it returns true or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, poll: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(poll);
    }
}

/// Polls `f` every [`POLL`] until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// A TCP port that was free on 127.0.0.1 (and 0.0.0.0) a moment ago.
pub fn free_port() -> u16 {
    // Never the same port twice in one test process: the kernel may hand a released port out
    // again at once, and a test's pod and a server's API port once got the same one.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..200 {
        let l = TcpListener::bind("0.0.0.0:0").expect("bind an ephemeral port");
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        // Stay clear of the ports the busybox image uses by default.
        if port != 8080 && !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no free port found");
}

/// An HTTP answer: status code and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.0, with short timeouts.
pub fn http_get(port: u16, path: &str) -> io::Result<HttpResponse> {
    http_get_at(([127, 0, 0, 1], port).into(), path)
}

/// The device the kernel routes `ip` through (`ip route get`), to check it is local.
pub fn route_dev(ip: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["route", "get", ip])
        .output()
        .expect("ip route get");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next().unwrap_or_default().to_string();
        }
    }
    String::new()
}

/// `GET path` on `addr` over HTTP/1.0, with short timeouts. Only for loopback or addresses
/// on a test server's own bridge.
pub fn http_get_at(addr: SocketAddr, path: &str) -> io::Result<HttpResponse> {
    let port = addr.port();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {}:{port}\r\nUser-Agent: skiff-e2e\r\nConnection: close\r\n\r\n",
        addr.ip()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no HTTP header end in {text:?}"),
        )
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line in {head:?}"),
            )
        })?;
    Ok(HttpResponse {
        status,
        body: body.to_string(),
    })
}

/// Waits until `GET path` on `port` answers 200; returns the body and how long it took.
pub fn wait_http_ok(port: u16, path: &str, timeout: Duration) -> Option<(String, Duration)> {
    let start = Instant::now();
    wait_for(timeout, || match http_get(port, path) {
        Ok(r) if r.status == 200 => Some(r.body),
        _ => None,
    })
    .map(|b| (b, start.elapsed()))
}

/// True when nothing accepts connections on 127.0.0.1:`port`.
pub fn port_closed(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

// ---------------------------------------------------------------------------------------------
// Processes

/// The NUL-separated arguments of a process, or `None` when it is gone (or a kernel thread).
pub fn proc_cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Parent PID and state letter from `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(i32, char)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((ppid, state))
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_stat(pid), Some((_, state)) if state != 'Z' && state != 'X')
}

/// All PIDs in `/proc`.
pub fn all_pids() -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                v.push(pid);
            }
        }
    }
    v
}

/// Sends `sig` to `pid`.
pub fn send_signal(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---------------------------------------------------------------------------------------------
// Text

/// Removes ANSI escape sequences (tracing colours its output unless told not to).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c2 in chars.by_ref() {
                    if ('@'..='~').contains(&c2) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The server

/// One `skiff server` with its own temporary data, manifests and images folders.
///
/// Layout of the temporary root: `data/`, `manifests/`, `images/`, `work/` (scratch for the
/// test: archives etc.), `server.log` (the daemon's stdout+stderr, appended across restarts).
pub struct Server {
    root: Option<tempfile::TempDir>,
    pub root_dir: PathBuf,
    pub data_dir: PathBuf,
    pub manifests_dir: PathBuf,
    pub images_dir: PathBuf,
    pub work_dir: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
    starts: usize,
    /// Extra arguments for `skiff server`.
    pub extra_args: Vec<String>,
    /// Extra environment variables for `skiff server`.
    pub extra_env: Vec<(String, String)>,
    /// The API server's port (kept across restarts).
    pub api_port: u16,
    /// The admin kubeconfig the server writes.
    pub kubeconfig: PathBuf,
    /// The ingress proxy's HTTP and HTTPS ports (free ports: never 80/443 in tests).
    pub http_port: u16,
    pub https_port: u16,
    /// This server's bridge (pods' network), unique among running tests.
    pub bridge: String,
    /// This server's networks: pods in 10.244.<n>.0/24, Services in 10.245.<n>.0/24.
    pub net_index: u32,
    /// Listening sockets handed to every start as systemd's socket activation does
    /// (`LISTEN_FDS` from fd 3, `LISTEN_PID`): see [`Server::hold_sockets`].
    pub handed_over: Vec<TcpListener>,
    /// Another `skiff` binary for `skiff server` instead of [`skiff_bin`]: an earlier release
    /// (the schema upgrade test), or an installed copy swapped for a new one (zero_drop.rs).
    pub bin: Option<PathBuf>,
}

/// A network index no other server of this test process uses.
fn next_net_index() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (std::process::id() + n * 7) % 250 + 1
}

impl Server {
    /// Creates the folders; does not start the daemon.
    pub fn new() -> Server {
        require_root();
        let _ = skiff_bin(); // fail early and clearly
        let base = std::env::var_os("SKIFF_E2E_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        fs::create_dir_all(&base).expect("create the e2e temp base");
        let root = tempfile::Builder::new()
            .prefix("skiff-e2e-")
            .tempdir_in(&base)
            .expect("create a temp dir");
        // 0755 so that containers running as non-root users could traverse it if needed.
        let _ = fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755));
        let root_dir = root.path().canonicalize().expect("canonicalize temp dir");
        let data_dir = root_dir.join("data");
        let manifests_dir = root_dir.join("manifests");
        let images_dir = root_dir.join("images");
        let work_dir = root_dir.join("work");
        for d in [&data_dir, &manifests_dir, &images_dir, &work_dir] {
            fs::create_dir_all(d).expect("create a test folder");
        }
        let log_path = root_dir.join("server.log");
        fs::write(&log_path, b"").expect("create the log file");
        let kubeconfig = root_dir.join("kubeconfig.yaml");
        Server {
            root: Some(root),
            root_dir,
            data_dir,
            manifests_dir,
            images_dir,
            work_dir,
            log_path,
            child: None,
            starts: 0,
            extra_args: Vec::new(),
            extra_env: Vec::new(),
            api_port: free_port(),
            kubeconfig,
            http_port: free_port(),
            https_port: free_port(),
            bridge: String::new(),
            net_index: 0,
            handed_over: Vec::new(),
            bin: None,
        }
        .with_network(next_net_index())
    }

    fn with_network(mut self, index: u32) -> Self {
        self.net_index = index;
        self.bridge = format!("skiff-e2e-{index}");
        self
    }

    /// Stands in for `skiff.socket`: binds the API's and the ingress proxy's ports on
    /// 127.0.0.1 here, in the test, and hands them to every start of the daemon from now on, so
    /// that they outlive each daemon as systemd's sockets do.
    pub fn hold_sockets(&mut self) {
        self.handed_over = [self.api_port, self.http_port, self.https_port]
            .iter()
            .map(|p| TcpListener::bind(("127.0.0.1", *p)).expect("bind a port to hand over"))
            .collect();
    }

    /// Creates the folders and starts the daemon.
    pub fn start_new() -> Server {
        let mut s = Server::new();
        s.start();
        s
    }

    /// Starts `skiff server` (stdout and stderr appended to [`Server::log_path`]).
    pub fn start(&mut self) {
        assert!(
            !self.is_running(),
            "start() called while the daemon is running"
        );
        self.starts += 1;
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .expect("open the log file");
        writeln!(log, "=== skiff-e2e: server start #{} ===", self.starts).unwrap();
        let err = log.try_clone().unwrap();
        let bin = self.bin.clone().unwrap_or_else(skiff_bin);
        let mut command = if self.handed_over.is_empty() {
            Command::new(bin)
        } else {
            self.handing_over(&bin)
        };
        let child = command
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--manifests")
            .arg(&self.manifests_dir)
            .arg("--images")
            .arg(&self.images_dir)
            .arg("--api-port")
            .arg(self.api_port.to_string())
            .arg("--bind-address")
            .arg("127.0.0.1")
            .arg("--write-kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--config")
            .arg("/dev/null")
            // Tests never pull from the internet: only loopback registries and mirrors.
            .arg("--disable-default-registry-endpoint")
            .args(["--http-port", &self.http_port.to_string()])
            .args(["--https-port", &self.https_port.to_string()])
            // Nor ACME from the internet: a test that wants ACME passes its own directory (pebble).
            .args(if self.extra_args.iter().any(|a| a == "--acme-directory") {
                &[][..]
            } else {
                &["--acme-directory", "off"][..]
            })
            // Each server its own bridge and address ranges: tests run in parallel.
            .arg("--bridge")
            .arg(&self.bridge)
            .arg("--cluster-cidr")
            .arg(format!("10.244.{}.0/24", self.net_index))
            .arg("--service-cidr")
            .arg(format!("10.245.{}.0/24", self.net_index))
            .args(&self.extra_args)
            .env("NO_COLOR", "1")
            // The daemon's image GC starts when the host's disk is 85 % full: on a busy build
            // machine it would remove images under a test's feet. Only the GC test (which sets
            // these itself) wants it.
            .env(
                "SKIFF_IMAGE_GC_HIGH_PERCENT",
                std::env::var("SKIFF_IMAGE_GC_HIGH_PERCENT").unwrap_or_else(|_| "100".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn skiff server");
        self.child = Some(child);
    }

    /// A command starting `bin` with [`Server::handed_over`] as systemd passes sockets: on fds
    /// 3, 4, … (not close-on-exec), `LISTEN_FDS` their number and `LISTEN_PID` the daemon's own
    /// PID (a shell that sets it to its `$$` and `exec`s the binary, keeping the PID).
    fn handing_over(&self, bin: &Path) -> Command {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        // Copies above any fd the child may have at 3.. (close-on-exec, so only the dup2 below
        // reaches the child); kept open until the child has started.
        let copies: Vec<std::os::fd::OwnedFd> = self
            .handed_over
            .iter()
            .map(|l| {
                // SAFETY: F_DUPFD_CLOEXEC on a valid fd; the new fd is owned once.
                let fd = unsafe { libc::fcntl(l.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
                assert!(fd >= 0, "dup: {}", io::Error::last_os_error());
                // SAFETY: `fd` was just created and is owned by nobody else.
                unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
            })
            .collect();
        let raw: Vec<i32> = copies.iter().map(|f| f.as_raw_fd()).collect();
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
            .arg(bin)
            .env("LISTEN_FDS", raw.len().to_string());
        // SAFETY: only dup2, which is async-signal-safe, between fork and exec.
        unsafe {
            c.pre_exec(move || {
                let _ = &copies;
                for (i, fd) in raw.iter().enumerate() {
                    if libc::dup2(*fd, 3 + i as i32) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        c
    }

    /// The daemon's PID, if started and not yet reaped.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// True while the daemon process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Panics (with the log's tail) when the daemon has exited on its own.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!(
                    "skiff server exited unexpectedly ({status}); log tail:\n{}",
                    self.log_tail(60)
                );
            }
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for the daemon to exit; returns its exit status.
    /// Panics if it does not exit in time (after killing it).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("stop() without a running daemon");
        if let Ok(Some(st)) = child.try_wait() {
            return st;
        }
        let _ = send_signal(child.id() as i32, libc::SIGTERM);
        self.wait_exit(child, Duration::from_secs(30), "of SIGTERM")
    }

    /// Waits up to `timeout` for `child` to exit; kills it and panics (with the log's tail)
    /// when it does not.
    fn wait_exit(&self, mut child: Child, timeout: Duration, after: &str) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "skiff server did not exit within {timeout:?} {after}; log tail:\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Starts a second daemon on the same data directory while this one runs, with no sockets
    /// handed over: it takes the listeners over from the running one (which stops), as an
    /// upgrade without systemd does. Returns the old daemon's exit status (within 60 s).
    pub fn take_over(&mut self) -> ExitStatus {
        let old = self
            .child
            .take()
            .expect("take_over() without a running daemon");
        let sockets = std::mem::take(&mut self.handed_over);
        self.start();
        self.handed_over = sockets;
        self.wait_exit(old, Duration::from_secs(60), "of a take-over")
    }

    /// `kill -9` of the daemon (containers must survive it).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9() without a running daemon");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then start again.
    pub fn restart(&mut self) -> ExitStatus {
        let st = self.stop();
        self.start();
        st
    }

    // --- logs ----------------------------------------------------------------------------

    /// The whole daemon log so far (ANSI sequences removed).
    pub fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &fs::read(&self.log_path).unwrap_or_default(),
        ))
    }

    /// The current length of the log, to search only what comes after it.
    pub fn log_mark(&self) -> usize {
        self.log().len()
    }

    /// The log after a mark taken with [`Server::log_mark`].
    pub fn log_since(&self, mark: usize) -> String {
        let l = self.log();
        l.get(mark..).unwrap_or("").to_string()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let l = self.log();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until a log line written after `mark` contains `primary` and every string of
    /// `near` appears on that line or within 3 lines of it. Returns the matching excerpt.
    pub fn wait_log(
        &mut self,
        mark: usize,
        primary: &str,
        near: &[&str],
        timeout: Duration,
    ) -> Option<String> {
        wait_for(timeout, || {
            self.assert_running();
            let text = self.log_since(mark);
            find_log_excerpt(&text, primary, near)
        })
    }

    // --- the CLI -------------------------------------------------------------------------

    /// Runs `skiff ARGS --data-dir D` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(skiff_bin())
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run the skiff CLI")
    }

    /// `skiff token create -n NS`: the path of the kubeconfig it wrote (in the work dir).
    pub fn namespace_kubeconfig(&self, ns: &str) -> PathBuf {
        let kc = self.work_dir.join(format!("{ns}-token-kubeconfig.yaml"));
        let o = self.cli(&[
            "token",
            "create",
            "-n",
            ns,
            "--kubeconfig",
            kc.to_str().expect("a UTF-8 path"),
            "--admin-kubeconfig",
            self.kubeconfig.to_str().expect("a UTF-8 path"),
        ]);
        assert!(
            o.status.success(),
            "skiff token create: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        kc
    }

    /// `skiff image import FILE --data-dir D`.
    pub fn import_image(&self, archive: &Path) -> Output {
        self.cli(&["image", "import", archive.to_str().expect("utf-8 path")])
    }

    /// `skiff get KIND [NAME] -n NS --data-dir D -o json`, parsed.
    pub fn get_json(
        &self,
        kind: &str,
        name: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Value> {
        let mut args = vec!["get", kind];
        if let Some(n) = name {
            args.push(n);
        }
        if let Some(ns) = namespace {
            args.push("-n");
            args.push(ns);
        }
        args.extend(["-o", "json"]);
        let o = self.cli(&args);
        if !o.status.success() {
            bail!(
                "skiff {} failed ({}): {}",
                args.join(" "),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        serde_json::from_slice(&o.stdout).with_context(|| {
            format!(
                "skiff {} printed no JSON: {:?}",
                args.join(" "),
                String::from_utf8_lossy(&o.stdout)
            )
        })
    }

    /// The items of `skiff get KIND -n NS -o json` (empty on error).
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Result<Vec<Value>> {
        let v = self.get_json(kind, None, namespace)?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// True when `skiff get KIND NAME` finds the object.
    pub fn exists(&self, kind: &str, name: &str, namespace: Option<&str>) -> bool {
        match self.list(kind, namespace) {
            Ok(items) => items.iter().any(|i| i["metadata"]["name"] == name),
            Err(_) => false,
        }
    }

    /// Pods (in `namespace`, default "default") whose label `app` is `app`.
    pub fn pods_of(&self, app: &str, namespace: Option<&str>) -> Vec<Value> {
        self.list("pods", namespace)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == app)
            .collect()
    }

    /// A pod by name.
    pub fn pod(&self, name: &str, namespace: Option<&str>) -> Option<Value> {
        self.get_json("pods", Some(name), namespace).ok()
    }

    // --- the folders ---------------------------------------------------------------------

    /// Writes a manifest atomically (temp dotfile in the same folder, fsync, rename).
    pub fn write_manifest(&self, name: &str, content: &str) -> PathBuf {
        let path = self.manifests_dir.join(name);
        write_atomic(&path, content.as_bytes());
        path
    }

    /// Writes a manifest in place, as `echo … > file` or some editors do: truncate, write half,
    /// pause briefly, write the rest.
    pub fn write_manifest_in_place(&self, name: &str, content: &str) -> PathBuf {
        let path = self.manifests_dir.join(name);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .expect("open manifest");
        let bytes = content.as_bytes();
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        f.write_all(&bytes[half..]).unwrap();
        f.sync_all().unwrap();
        path
    }

    /// Deletes a manifest.
    pub fn remove_manifest(&self, name: &str) {
        fs::remove_file(self.manifests_dir.join(name)).expect("remove manifest");
    }

    // --- leftovers -----------------------------------------------------------------------

    /// `skiff-<h>`: h = first 8 hex chars of sha256 of the canonical data dir path.
    pub fn cgroup_parent_name(&self) -> String {
        let canon = self
            .data_dir
            .canonicalize()
            .unwrap_or(self.data_dir.clone());
        format!(
            "skiff-{}",
            &sha256_hex(canon.to_string_lossy().as_bytes())[..8]
        )
    }

    /// Mount points under the data dir, from `/proc/self/mountinfo`.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(&self.data_dir)
    }

    /// PIDs of shim processes of this data dir (cmdline has `shim` and mentions the data dir).
    pub fn shim_pids(&self) -> Vec<i32> {
        let d = self.data_dir.to_string_lossy().to_string();
        all_pids()
            .into_iter()
            .filter(|pid| {
                proc_cmdline(*pid).is_some_and(|args| {
                    args.iter().any(|a| a == "shim") && args.iter().any(|a| a.contains(&d))
                })
            })
            .collect()
    }

    /// PIDs of every process (other than the daemon and `skiff` CLI runs) mentioning the data dir.
    pub fn processes_mentioning_data_dir(&self) -> Vec<(i32, String)> {
        let d = self.data_dir.to_string_lossy().to_string();
        let daemon = self.pid();
        all_pids()
            .into_iter()
            .filter(|pid| Some(*pid) != daemon)
            .filter_map(|pid| {
                let args = proc_cmdline(pid)?;
                if args.iter().any(|a| a.contains(&d)) && !args.iter().any(|a| a == "server") {
                    Some((pid, args.join(" ")))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Every `skiff-<h>` cgroup directory of this data dir (any controller, any depth ≤ 5).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let name = self.cgroup_parent_name();
        let mut found = Vec::new();
        find_dirs_named(Path::new("/sys/fs/cgroup"), &name, 5, &mut found);
        found
    }

    /// Container cgroups (subdirectories of a `skiff-<h>` cgroup).
    pub fn container_cgroups(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for dir in self.pod_cgroups() {
            // `<parent>/pod<uid>/<container>`; a container of the earlier layout sits at the
            // pod's level.
            let children = subdirs(&dir);
            if children.is_empty() && !is_pod_cgroup(&dir) {
                v.push(dir);
            } else {
                v.extend(children);
            }
        }
        v
    }

    /// Every pod's cgroup (`<hierarchy>/<parent>/pod<uid>`), in every hierarchy.
    pub fn pod_cgroups(&self) -> Vec<PathBuf> {
        self.cgroup_dirs().iter().flat_map(|p| subdirs(p)).collect()
    }

    /// Entries of `D/containers/`.
    pub fn container_state_dirs(&self) -> Vec<PathBuf> {
        fs::read_dir(self.data_dir.join("containers"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Everything a stopped container could leave behind: mounts under D, shims, container
    /// cgroups, `D/containers/*`. Empty when clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut v = Vec::new();
        for m in self.mounts() {
            v.push(format!("mount {m}"));
        }
        for pid in self.shim_pids() {
            v.push(format!(
                "shim pid {pid}: {}",
                proc_cmdline(pid).unwrap_or_default().join(" ")
            ));
        }
        for c in self.pod_cgroups() {
            v.push(format!("cgroup {}", c.display()));
        }
        for s in self.container_state_dirs() {
            v.push(format!("state {}", s.display()));
        }
        v
    }

    /// Waits until [`Server::leftovers`] is empty; panics listing what stayed.
    pub fn assert_no_leftovers(&self, timeout: Duration) {
        let mut last = Vec::new();
        let ok = wait_until(timeout, Duration::from_millis(200), || {
            last = self.leftovers();
            last.is_empty()
        });
        assert!(ok, "leftovers after {timeout:?}:\n  {}", last.join("\n  "));
    }

    // --- containers ----------------------------------------------------------------------

    /// True when one of `pid`'s ancestors is a shim of this data dir.
    pub fn is_under_shim(&self, pid: i32) -> bool {
        let shims = self.shim_pids();
        let mut cur = pid;
        for _ in 0..64 {
            match proc_stat(cur) {
                Some((ppid, _)) if ppid > 1 => {
                    if shims.contains(&ppid) {
                        return true;
                    }
                    cur = ppid;
                }
                _ => return false,
            }
        }
        false
    }

    /// Live processes of this data dir's containers (below a shim) whose cmdline contains all
    /// of `needles` as whole arguments.
    pub fn container_pids(&self, needles: &[&str]) -> Vec<i32> {
        let shims = self.shim_pids();
        all_pids()
            .into_iter()
            .filter(|pid| !shims.contains(pid))
            .filter(|pid| {
                proc_cmdline(*pid)
                    .is_some_and(|args| needles.iter().all(|n| args.iter().any(|a| a == n)))
            })
            .filter(|pid| pid_alive(*pid) && self.is_under_shim(*pid))
            .collect()
    }

    /// The PID of the `httpd` serving `port` in one of this data dir's containers.
    pub fn httpd_pid(&self, port: u16) -> Option<i32> {
        let p = port.to_string();
        let v = self.container_pids(&["httpd", &p]);
        v.into_iter().min()
    }

    /// Files under the data dir whose content contains `needle` (files ≤ 16 MiB).
    pub fn files_containing(&self, needle: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        grep_tree(&self.data_dir, needle.as_bytes(), &mut found, 0);
        found
    }

    /// A one-line-per-pod summary of `skiff get pods -A`-ish state, for failure messages.
    pub fn pods_summary(&self) -> String {
        match self.list("pods", None) {
            Err(e) => format!("(skiff get pods failed: {e})"),
            Ok(items) if items.is_empty() => "(no pods)".into(),
            Ok(items) => items
                .iter()
                .map(|p| {
                    format!(
                        "{} phase={} containerStatuses={}",
                        p["metadata"]["name"].as_str().unwrap_or("?"),
                        p["status"]["phase"].as_str().unwrap_or("?"),
                        p["status"]["containerStatuses"]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n  "),
        }
    }

    /// Waits for HTTP 200 on `port` (checking that the daemon still runs); panics with the
    /// pods' state and the log's tail on timeout. Returns the body and the time it took.
    pub fn expect_http(&mut self, port: u16, path: &str, timeout: Duration) -> (String, Duration) {
        let start = Instant::now();
        let mut last = String::new();
        let got = wait_for(timeout, || {
            self.assert_running_if_started();
            match http_get(port, path) {
                Ok(r) if r.status == 200 => Some(r.body),
                Ok(r) => {
                    last = format!("HTTP {} {:?}", r.status, r.body);
                    None
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            }
        });
        match got {
            Some(b) => (b, start.elapsed()),
            None => panic!(
                "no HTTP 200 from 127.0.0.1:{port}{path} within {timeout:?} (last: {last})\npods:\n  {}\nlog tail:\n{}",
                self.pods_summary(),
                self.log_tail(40)
            ),
        }
    }

    /// Like [`Server::assert_running`], but only when a daemon was started and not stopped.
    pub fn assert_running_if_started(&mut self) {
        if self.child.is_some() {
            self.assert_running();
        }
    }

    /// Waits until the pod named `name` satisfies `pred`; panics with diagnostics otherwise.
    pub fn expect_pod(
        &mut self,
        name: &str,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let got = wait_for(timeout, || {
            self.assert_running_if_started();
            let p = self.pod(name, None)?;
            let ok = pred(&p);
            last = p.clone();
            ok.then_some(p)
        });
        got.unwrap_or_else(|| {
            panic!(
                "pod {name}: not {what} within {timeout:?}; last seen:\n{}\nlog tail:\n{}",
                serde_json::to_string_pretty(&last).unwrap_or_default(),
                self.log_tail(40)
            )
        })
    }

    /// Waits until `f` holds (checking that the daemon still runs); panics with `what`,
    /// the pods' state and the log's tail otherwise.
    pub fn expect(&mut self, what: &str, timeout: Duration, mut f: impl FnMut(&Server) -> bool) {
        let ok = wait_until(timeout, POLL, || {
            self.assert_running_if_started();
            f(self)
        });
        if !ok {
            panic!(
                "{what}: not true within {timeout:?}\npods:\n  {}\nlog tail:\n{}",
                self.pods_summary(),
                self.log_tail(40)
            );
        }
    }

    /// Keeps the temporary folders after the test (for debugging).
    pub fn keep(&mut self) -> PathBuf {
        if let Some(r) = self.root.take() {
            let _ = r.keep();
        }
        self.root_dir.clone()
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            eprintln!(
                "--- skiff server log ({}) tail ---\n{}\n--- end of log ---",
                self.log_path.display(),
                self.log_tail(80)
            );
        }
        // 1. The daemon first, so that it does not restart what killall stops.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // 2. skiff killall --data-dir D (bounded).
        if let Ok(mut c) = Command::new(skiff_bin())
            .args(["killall", "--data-dir"])
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match c.try_wait() {
                    Ok(Some(st)) => {
                        if !st.success() {
                            let mut err = String::new();
                            if let Some(mut e) = c.stderr.take() {
                                let _ = e.read_to_string(&mut err);
                            }
                            eprintln!("skiff-e2e: `skiff killall` failed ({st}): {err}");
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                    _ => {
                        eprintln!("skiff-e2e: `skiff killall` did not finish in 60 s; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        // 3. Fallback cleanup of what is certainly ours (it mentions our temp data dir).
        let left = self.leftovers();
        if !left.is_empty() {
            eprintln!(
                "skiff-e2e: leftovers after `skiff killall` (cleaning up):\n  {}",
                left.join("\n  ")
            );
            for pid in self.shim_pids() {
                let _ = send_signal(pid, libc::SIGKILL);
            }
            for c in self.container_cgroups() {
                for pid in fs::read_to_string(c.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    let _ = send_signal(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(300));
            let mut mounts = self.mounts();
            mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in mounts {
                if let Ok(c) = std::ffi::CString::new(m) {
                    // SAFETY: c is a valid NUL-terminated path.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
            let mut cgs = self.container_cgroups();
            cgs.extend(self.pod_cgroups());
            cgs.extend(self.cgroup_dirs());
            for c in cgs {
                let _ = fs::remove_dir(&c);
            }
        }
        for c in self.cgroup_dirs() {
            let _ = fs::remove_dir(&c);
        }
        // 4. Remove the folders, unless something is still mounted there or the user asked.
        if !self.mounts().is_empty() {
            eprintln!(
                "skiff-e2e: mounts remain under {}; not removing it",
                self.data_dir.display()
            );
            self.keep();
        } else if failed && std::env::var_os("SKIFF_E2E_KEEP").is_some() {
            let p = self.keep();
            eprintln!("skiff-e2e: kept {}", p.display());
        }
    }
}

/// Finds a line of `text` containing `primary` with all of `near` within 3 lines of it.
pub fn find_log_excerpt(text: &str, primary: &str, near: &[&str]) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.contains(primary) {
            continue;
        }
        let lo = i.saturating_sub(3);
        let hi = (i + 4).min(lines.len());
        let window = lines[lo..hi].join("\n");
        if near.iter().all(|n| window.contains(n)) {
            return Some(window);
        }
    }
    None
}

/// Mount points at or under `dir` in `/proc/self/mountinfo`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().to_string();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find_dirs_named(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let p = e.path();
        if e.file_name().to_str() == Some(name) {
            out.push(p);
        } else if depth > 0 {
            find_dirs_named(&p, name, depth - 1, out);
        }
    }
}

fn grep_tree(dir: &Path, needle: &[u8], out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 12 {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            // Do not descend into mounted container root filesystems or image layers' trees twice.
            grep_tree(&p, needle, out, depth + 1);
        } else if ft.is_file() {
            if e.metadata().map(|m| m.len() > 16 << 20).unwrap_or(true) {
                continue;
            }
            if let Ok(data) = fs::read(&p) {
                if data.windows(needle.len()).any(|w| w == needle) {
                    out.push(p);
                }
            }
        }
    }
}

/// Writes `data` to `path` atomically: a dotfile temp in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) {
    let dir = path.parent().expect("path has a parent");
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        random_hex(4)
    ));
    {
        let mut f = fs::File::create(&tmp).expect("create temp file");
        f.write_all(data).expect("write temp file");
        f.sync_all().expect("fsync temp file");
    }
    fs::rename(&tmp, path).expect("rename temp file");
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// Formats a list of strings as a YAML flow sequence (JSON syntax is valid YAML).
pub fn yaml_list(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap()
}

/// A Deployment of one `hostNetwork` pod (label `app: NAME`, container `main`) running
/// `command` in `image` with `imagePullPolicy: Never`.
pub fn deployment_yaml(name: &str, image: &str, command: &[&str]) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: {image}
        imagePullPolicy: Never
        command: {cmd}
",
        cmd = yaml_list(command)
    )
}

/// A Deployment serving `/www` with busybox httpd on `port` (host network).
pub fn httpd_deployment_yaml(name: &str, image: &str, port: u16) -> String {
    let p = port.to_string();
    deployment_yaml(name, image, &["httpd", "-f", "-p", &p, "-h", "/www"])
}

/// A bare Pod (host network, container `main`) with the given restart policy.
pub fn pod_yaml(name: &str, image: &str, restart_policy: &str, command: &[&str]) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  hostNetwork: true
  restartPolicy: {restart_policy}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {image}
    imagePullPolicy: Never
    command: {cmd}
",
        cmd = yaml_list(command)
    )
}

/// A ConfigMap with one key.
pub fn configmap_yaml(name: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  {key}: {value:?}
"
    )
}

/// `status.containerStatuses[0]` of a pod.
pub fn first_container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

/// `restartCount` of a pod's first container (0 when absent).
pub fn restart_count(pod: &Value) -> u64 {
    first_container_status(pod)["restartCount"]
        .as_u64()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Archives

/// A tar member: path and content.
pub struct ArchiveFile {
    pub path: String,
    pub data: Vec<u8>,
}

/// Writes a plain tar of `files` (regular files, mode 0644, mtime 0).
pub fn write_tar(out: &Path, files: &[ArchiveFile]) -> Result<()> {
    let f = fs::File::create(out)?;
    let mut b = tar::Builder::new(f);
    for file in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(file.data.len() as u64);
        b.append_data(&mut h, &file.path, file.data.as_slice())?;
    }
    b.into_inner()?.sync_all()?;
    Ok(())
}

/// Reads every regular file of a tar archive into memory (path → content).
pub fn read_tar(path: &Path) -> Result<HashMap<String, Vec<u8>>> {
    let mut a = tar::Archive::new(fs::File::open(path)?);
    let mut m = HashMap::new();
    for e in a.entries()? {
        let mut e = e?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let p = e
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        m.insert(p, data);
    }
    Ok(m)
}

/// Rewrites a classic `docker save` archive (`manifest.json` + `<id>.json` + `<diffid>.tar`)
/// in the layout Docker 25+ writes: an OCI image layout (`oci-layout`, `index.json`,
/// `blobs/sha256/…` with uncompressed layers) plus a `manifest.json` pointing into `blobs/`.
pub fn docker25_archive(classic: &Path, out: &Path) -> Result<()> {
    let files = read_tar(classic)?;
    let manifest: Value = serde_json::from_slice(
        files
            .get("manifest.json")
            .ok_or_else(|| anyhow!("no manifest.json in {}", classic.display()))?,
    )?;
    let entry = &manifest[0];
    let config_name = entry["Config"]
        .as_str()
        .ok_or_else(|| anyhow!("no Config"))?;
    let config = files
        .get(config_name)
        .ok_or_else(|| anyhow!("no {config_name}"))?
        .clone();
    let repo_tags: Vec<String> = entry["RepoTags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut blobs: Vec<ArchiveFile> = Vec::new();
    let config_digest = sha256_hex(&config);
    blobs.push(ArchiveFile {
        path: format!("blobs/sha256/{config_digest}"),
        data: config.clone(),
    });
    let mut layer_descs = Vec::new();
    let mut layer_paths = Vec::new();
    for l in entry["Layers"]
        .as_array()
        .ok_or_else(|| anyhow!("no Layers"))?
    {
        let name = l.as_str().unwrap_or_default();
        let data = files.get(name).ok_or_else(|| anyhow!("no layer {name}"))?;
        let d = sha256_hex(data);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{d}"),
            "size": data.len(),
        }));
        layer_paths.push(format!("blobs/sha256/{d}"));
        blobs.push(ArchiveFile {
            path: format!("blobs/sha256/{d}"),
            data: data.clone(),
        });
    }
    let oci_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len(),
        },
        "layers": layer_descs,
    }))?;
    let manifest_digest = sha256_hex(&oci_manifest);
    blobs.push(ArchiveFile {
        path: format!("blobs/sha256/{manifest_digest}"),
        data: oci_manifest.clone(),
    });
    let mut index_manifests = Vec::new();
    for t in &repo_tags {
        let full = if t.contains('/') {
            t.clone()
        } else {
            format!("docker.io/library/{t}")
        };
        let tag = t.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("latest");
        index_manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": oci_manifest.len(),
            "annotations": {
                "io.containerd.image.name": full,
                "org.opencontainers.image.ref.name": tag,
            },
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index_manifests,
    }))?;
    // Docker writes familiar names in manifest.json ("name:tag", not "docker.io/library/…").
    let familiar: Vec<String> = repo_tags
        .iter()
        .map(|t| {
            t.strip_prefix("docker.io/library/")
                .unwrap_or(t)
                .to_string()
        })
        .collect();
    let docker_manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{config_digest}"),
        "RepoTags": familiar,
        "Layers": layer_paths,
    }]))?;
    let mut all = vec![
        ArchiveFile {
            path: "oci-layout".into(),
            data: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        },
        ArchiveFile {
            path: "index.json".into(),
            data: index,
        },
        ArchiveFile {
            path: "manifest.json".into(),
            data: docker_manifest,
        },
    ];
    all.extend(blobs);
    write_tar(out, &all)
}

/// The directories in `dir`.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn is_pod_cgroup(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("pod"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_window() {
        let log = "a\nerror in bad.yaml\ndocument 2\nfield spec.x.bogus: unknown\nz";
        assert!(find_log_excerpt(log, "bogus", &["bad.yaml", "document 2"]).is_some());
        assert!(find_log_excerpt(log, "bogus", &["other.yaml"]).is_none());
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[3mfile\u{1b}[0m\u{1b}[2m=\u{1b}[0mx"),
            "file=x"
        );
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
