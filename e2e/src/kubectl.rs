//! Driving the real `kubectl` (and raw HTTPS) against a [`Server`]'s API.
//!
//! - [`Kubectl`]: one kubeconfig + one fresh `--cache-dir` (kubectl caches discovery and the
//!   dispatcher's `/version` answer; a cache from another server would lie). [`Kubectl::run`]
//!   returns exit code, stdout and stderr, bounded by a timeout; [`Kubectl::spawn`] starts a
//!   long-running command (`get -w`, `logs -f`) whose stdout is read line by line as it comes.
//! - [`parse_tables`]: kubectl's column output → rows of `column → cell`.
//! - [`kubeconfig_token`], [`https_request`]: the bearer token of a kubeconfig, and an HTTPS
//!   request with `curl -k` (certificate verification off, as the "curl -k").
//! - [`server_with_images`]: a started server with busybox test images imported.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{build_busybox_image, random_hex, Server};

/// The kubectl under test: `$KUBECTL`, else `/usr/bin/kubectl`.
pub fn kubectl_bin() -> PathBuf {
    let p = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    assert!(
        p.is_file(),
        "kubectl not found at {} (set KUBECTL=/path/to/kubectl; the tests need kubectl 1.32)",
        p.display()
    );
    p
}

/// How long one kubectl command may take before the tests call it hung.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(90);

/// The result of one kubectl run.
#[derive(Debug, Clone)]
pub struct KOut {
    /// Exit code (-1 when killed by a signal or the timeout).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// How long it ran.
    pub took: Duration,
}

impl KOut {
    /// True on exit code 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl std::fmt::Display for KOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// kubectl with one kubeconfig and its own cache directory.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub cache_dir: PathBuf,
}

impl Kubectl {
    /// kubectl with the server's admin kubeconfig and a fresh cache dir under its root.
    pub fn admin(server: &Server) -> Kubectl {
        Kubectl::with_kubeconfig(server, &server.kubeconfig)
    }

    /// kubectl with another kubeconfig (e.g. a namespace token's) against `server`.
    pub fn with_kubeconfig(server: &Server, kubeconfig: &Path) -> Kubectl {
        let cache_dir = server
            .root_dir
            .join(format!("kubectl-cache-{}", random_hex(4)));
        std::fs::create_dir_all(&cache_dir).expect("create a kubectl cache dir");
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            cache_dir,
        }
    }

    /// The `kubectl` command with this kubeconfig and cache dir, to run as the caller likes.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_bin());
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.cache_dir.parent().unwrap_or(Path::new("/")));
        c
    }

    /// Runs `kubectl ARGS` (no stdin) with [`KUBECTL_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> KOut {
        self.run_full(args, None, KUBECTL_TIMEOUT)
    }

    /// Runs `kubectl ARGS` with `stdin` as standard input (`apply -f -`).
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> KOut {
        self.run_full(args, Some(stdin), KUBECTL_TIMEOUT)
    }

    /// Runs `kubectl ARGS`; kills it after `timeout` (code -1 then).
    pub fn run_full(&self, args: &[&str], stdin: Option<&str>, timeout: Duration) -> KOut {
        let start = Instant::now();
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        if let Some(input) = stdin {
            let mut w = child.stdin.take().unwrap();
            let input = input.to_string();
            std::thread::spawn(move || {
                let _ = w.write_all(input.as_bytes());
            });
        }
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let deadline = start + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
        KOut {
            code: status.and_then(|s| s.code()).unwrap_or(-1),
            stdout,
            stderr,
            took: start.elapsed(),
        }
    }

    /// Runs `kubectl ARGS` and panics (with the output) unless it exits 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.ok(), "kubectl {} failed: {o}", args.join(" "));
        o.stdout
    }

    /// `kubectl apply -f -` of `yaml` (plus `extra` arguments); panics unless it exits 0.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend(extra);
        let o = self.run_stdin(&args, yaml);
        assert!(o.ok(), "kubectl {} failed: {o}", args.join(" "));
        o.stdout
    }

    /// `kubectl get ARGS -o json`, parsed; `None` when kubectl fails.
    pub fn get_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let mut a = vec!["get"];
        a.extend(args);
        a.extend(["-o", "json"]);
        let o = self.run(&a);
        if !o.ok() {
            return None;
        }
        serde_json::from_str(&o.stdout).ok()
    }

    /// Names of the items of `kubectl get ARGS -o json`.
    pub fn names(&self, args: &[&str]) -> Vec<String> {
        self.get_json(args)
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
            .collect()
    }

    /// Starts a long-running `kubectl ARGS` whose stdout is read line by line.
    pub fn spawn(&self, args: &[&str]) -> Streaming {
        self.spawn_with_env(args, &[])
    }

    /// [`Kubectl::spawn`] with extra environment variables.
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Streaming {
        let mut child = self
            .command(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Streaming {
            child,
            rx,
            lines: Vec::new(),
            stderr: Some(stderr),
            args: args.join(" "),
        }
    }
}

/// A running kubectl whose stdout lines arrive as they are printed.
pub struct Streaming {
    child: Child,
    rx: mpsc::Receiver<(Instant, String)>,
    /// Every line received so far, with when it arrived.
    pub lines: Vec<(Instant, String)>,
    stderr: Option<std::thread::JoinHandle<String>>,
    args: String,
}

impl Streaming {
    /// Waits up to `timeout` for a new line satisfying `pred` (lines read meanwhile are kept in
    /// [`Streaming::lines`]). Returns the line and when it arrived.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((t, l)) => {
                    self.lines.push((t, l.clone()));
                    if pred(&l) {
                        return Some((t, l));
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// The text of every line received so far.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits up to `timeout` for kubectl to exit; collects the rest of stdout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Drain what is left (the reader thread ends at EOF).
                while let Ok((t, l)) = self.rx.recv_timeout(Duration::from_secs(2)) {
                    self.lines.push((t, l));
                }
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while kubectl runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills kubectl (if still running) and returns its stderr.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// A description for failure messages.
    pub fn describe(&mut self) -> String {
        let running = self.running();
        format!(
            "kubectl {} ({}); stdout so far:\n{}",
            self.args,
            if running { "still running" } else { "exited" },
            self.text()
        )
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubectl running on a pseudo-terminal of its own (what `exec -t` needs: kubectl asks for a
/// terminal only when its stdin is one). What it prints is collected as it comes; keystrokes
/// are written to the terminal, and its window size can be changed (kubectl then gets
/// `SIGWINCH`, as from a resized terminal window).
pub struct Terminal {
    child: Child,
    master: std::fs::File,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    args: String,
}

/// Sets the window size of the terminal behind `fd`.
fn set_window_size(fd: std::os::fd::RawFd, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe {
        libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
    }
}

impl Kubectl {
    /// Starts `kubectl ARGS` with a new terminal of `cols`×`rows` as its stdin, stdout and
    /// stderr (and controlling terminal).
    pub fn spawn_on_terminal(&self, args: &[&str], cols: u16, rows: u16) -> Terminal {
        use std::os::fd::{AsRawFd, FromRawFd};
        use std::os::unix::process::CommandExt;
        let (mut m, mut s) = (-1, -1);
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds; the name and termios pointers may be null.
        let r =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just returned these fds; nothing else owns them.
        let (master, slave) =
            unsafe { (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s)) };
        for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
            // SAFETY: F_SETFD on fds we own.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        let child = {
            let mut c = self.command(args);
            c.stdin(slave.try_clone().expect("dup the pty"))
                .stdout(slave.try_clone().expect("dup the pty"))
                .stderr(slave);
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                c.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            c.spawn().expect("spawn kubectl on a terminal")
            // `c` (holding the slave's fds) is dropped here: only kubectl keeps the terminal.
        };
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup the pty master");
        let out = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once kubectl (the last holder of the terminal) has exited.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            child,
            master,
            output,
            args: args.join(" "),
        }
    }
}

impl Terminal {
    /// Types `text` (use `\r` for Enter, as a terminal sends).
    pub fn type_text(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .expect("write to the terminal");
    }

    /// Changes the terminal's window size.
    pub fn resize(&self, cols: u16, rows: u16) {
        use std::os::fd::AsRawFd;
        set_window_size(self.master.as_raw_fd(), cols, rows);
    }

    /// Everything printed so far (`\r` removed).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).replace('\r', "")
    }

    /// Waits up to `timeout` until the text printed so far satisfies `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        crate::wait_until(timeout, Duration::from_millis(50), || pred(&self.text()))
    }

    /// Waits up to `timeout` for kubectl to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A description for failure messages.
    pub fn describe(&mut self) -> String {
        let running = matches!(self.child.try_wait(), Ok(None));
        format!(
            "kubectl {} ({}); terminal so far:\n{}",
            self.args,
            if running { "still running" } else { "exited" },
            self.text()
        )
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One block of kubectl's column output: the column names and each row's cells by name.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<HashMap<String, String>>,
}

impl Table {
    /// The row whose NAME is `name` (or ends with `/name`, as in `get deploy,rs,pods`).
    pub fn row(&self, name: &str) -> Option<&HashMap<String, String>> {
        self.rows.iter().find(|r| {
            r.get("NAME")
                .is_some_and(|n| n == name || n.ends_with(&format!("/{name}")))
        })
    }
}

/// Parses kubectl's column output (one or more blocks separated by blank lines, each with a
/// header line). Cells are cut at the header's column starts, so cells with single spaces
/// (`17s (x2 over 24s)`) stay whole.
pub fn parse_tables(text: &str) -> Vec<Table> {
    let mut tables = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else { continue };
        let starts = column_starts(header);
        let columns: Vec<String> = starts
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let end = starts.get(i + 1).copied().unwrap_or(header.len());
                header[s..end].trim().to_string()
            })
            .collect();
        let rows = lines
            .map(|l| {
                let mut row = HashMap::new();
                for (i, &s) in starts.iter().enumerate() {
                    let end = starts.get(i + 1).copied().unwrap_or(l.len()).min(l.len());
                    let cell = if s < l.len() { &l[s..end] } else { "" };
                    row.insert(columns[i].clone(), cell.trim().to_string());
                }
                row
            })
            .collect();
        tables.push(Table { columns, rows });
    }
    tables
}

/// The byte offsets where header columns start (a column name follows 2+ spaces, or is first).
fn column_starts(header: &str) -> Vec<usize> {
    let b = header.as_bytes();
    let mut v = Vec::new();
    for i in 0..b.len() {
        if b[i] == b' ' {
            continue;
        }
        if i == 0 || (i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' ') {
            v.push(i);
        }
    }
    v
}

/// The bearer token of the (first) user of a kubeconfig.
pub fn kubeconfig_token(kubeconfig: &Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).expect("read the kubeconfig");
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("token:")
                .map(|t| t.trim().to_string())
        })
        .expect("a token in the kubeconfig")
}

/// An HTTPS answer from [`https_request`].
#[derive(Debug, Clone)]
pub struct HttpsResponse {
    pub status: u16,
    pub body: String,
}

/// `curl -k -X METHOD https://127.0.0.1:PORT/PATH` with an optional bearer token, content type
/// and body. Certificate verification is off (the point is what the server answers).
pub fn https_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<&str>,
) -> HttpsResponse {
    https_request_with(false, port, method, path, token, content_type, body)
}

/// [`https_request`], over HTTP/1.1 when `http1` (curl negotiates HTTP/2 otherwise).
pub fn https_request_with(
    http1: bool,
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<&str>,
) -> HttpsResponse {
    let mut c = Command::new("curl");
    c.args([
        "-sk",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if http1 {
        c.arg("--http1.1");
    }
    if let Some(t) = token {
        c.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(ct) = content_type {
        c.arg("-H").arg(format!("Content-Type: {ct}"));
    }
    if let Some(b) = body {
        c.arg("--data-binary").arg(b);
    }
    c.arg(format!("https://127.0.0.1:{port}{path}"));
    let o = c.output().expect("run curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    HttpsResponse {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

/// `skiff token create -n NS`: its kubeconfig (written in the server's work dir) and token.
pub fn namespace_token(s: &Server, ns: &str) -> (std::path::PathBuf, String) {
    let kc = s.work_dir.join(format!("{ns}-kubeconfig.yaml"));
    let o = s.cli(&[
        "token",
        "create",
        "-n",
        ns,
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--admin-kubeconfig",
        s.kubeconfig.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "skiff token create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (kc, String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Starts a server and imports the busybox test image under each of `references`.
pub fn server_with_images(references: &[&str]) -> Server {
    server_with_images_and_args(references, &[])
}

/// [`server_with_images`], the server started with `args` too.
pub fn server_with_images_and_args(references: &[&str], args: &[&str]) -> Server {
    let mut s = Server::new();
    s.extra_args = args.iter().map(|a| a.to_string()).collect();
    s.start();
    for (i, r) in references.iter().enumerate() {
        let archive = s.work_dir.join(format!("img-{i}.tar"));
        build_busybox_image(&archive, r, false).expect("build the busybox image");
        let o = s.import_image(&archive);
        assert!(
            o.status.success(),
            "skiff image import failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    s.assert_running();
    // The API answers once the kubeconfig exists.
    let ok = crate::wait_until(crate::WAIT, crate::POLL, || s.kubeconfig.is_file());
    assert!(
        ok,
        "no kubeconfig at {} within {:?}\nlog:\n{}",
        s.kubeconfig.display(),
        crate::WAIT,
        s.log_tail(40)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_cut_at_header_columns() {
        let text = "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE\n\
                    deployment.apps/web   2/2     2            2           5s\n\
                    \n\
                    NAME   Reason   Age\n\
                    pod/x  Started  17s (x2 over 24s)\n";
        let t = parse_tables(text);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].columns,
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        );
        assert_eq!(t[0].row("web").unwrap()["READY"], "2/2");
        assert_eq!(t[1].rows[0]["Age"], "17s (x2 over 24s)");
    }
}
