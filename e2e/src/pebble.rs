//! Let's Encrypt's test CA on loopback, for the ingress tests: Debian's `pebble` with
//! `pebble-challtestsrv` as its DNS (every name → 127.0.0.1; `set-servfail` for failures), on
//! free ports, validating HTTP-01 against the proxy's HTTP port for real (no
//! `PEBBLE_VA_ALWAYS_VALID`). Both processes are killed on drop.
//!
//! Also: [`curl`] (an HTTP(S) request with `--resolve NAME:PORT:127.0.0.1`), [`served_cert`]
//! (what a TLS handshake for a name presents, through `openssl s_client`) and [`make_cert`]
//! (a CA-signed certificate for a test Secret).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{free_port, wait_until};

/// A running pebble + challtestsrv.
pub struct Pebble {
    dir: tempfile::TempDir,
    pebble: Child,
    dns: Child,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA of pebble's own HTTPS listener (for `--acme-ca-root`).
    pub listener_ca: PathBuf,
    /// pebble's management port (`/roots/0`).
    pub management_port: u16,
    /// challtestsrv's management port (`/set-servfail`).
    pub dns_management_port: u16,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `<dir>/<name>.pem` + `<name>.key`: a certificate for `names` (DNS names or IPs) signed
/// by a fresh CA `<dir>/<name>-ca.pem`. Returns (cert, key, ca) paths.
pub fn make_cert(dir: &Path, name: &str, names: &[&str]) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    let ext = dir.join(format!("{name}.ext"));
    let san: Vec<String> = names
        .iter()
        .map(|n| {
            if n.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{n}")
            } else {
                format!("DNS:{n}")
            }
        })
        .collect();
    std::fs::write(
        &ext,
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            san.join(",")
        ),
    )?;
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={name} test CA"),
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={}", names[0]),
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "30", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert))?;
    Ok((cert, key, ca))
}

impl Pebble {
    /// Starts challtestsrv and pebble; pebble validates HTTP-01 on `http_port` and TLS-ALPN-01
    /// on `tls_port` of 127.0.0.1, and issues certificates valid `validity` (default: pebble's).
    pub fn start(http_port: u16, tls_port: u16, validity: Option<Duration>) -> Result<Pebble> {
        for bin in ["pebble", "pebble-challtestsrv", "openssl"] {
            if !Path::new("/usr/bin").join(bin).exists() {
                bail!(
                    "{bin} not found (apt-get install -y pebble openssl; see e2e/install-deps.sh)"
                );
            }
        }
        let dir = tempfile::Builder::new().prefix("skiff-pebble-").tempdir()?;
        let (cert, key, ca) = make_cert(dir.path(), "pebble", &["localhost", "127.0.0.1"])?;
        let (listen, management) = (free_port(), free_port());
        let (dns_port, dns_management) = (free_port(), free_port());
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        if let Some(v) = validity {
            config["pebble"]["certificateValidityPeriod"] = v.as_secs().into();
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log = |name: &str| -> Result<Stdio> {
            Ok(Stdio::from(std::fs::File::create(dir.path().join(name))?))
        };
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args([
                "-management",
                &format!("127.0.0.1:{dns_management}"),
                "-defaultIPv6",
                "",
                "-defaultIPv4",
                "127.0.0.1",
            ])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log")?)
            .stderr(log("challtestsrv.err")?)
            .spawn()
            .context("starting pebble-challtestsrv")?;
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args([
                "-dnsserver",
                &format!("127.0.0.1:{dns_port}"),
                "-strict=false",
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log")?)
            .stderr(log("pebble.err")?)
            .spawn();
        let pebble = match pebble {
            Ok(p) => p,
            Err(e) => {
                let mut dns = dns;
                let _ = dns.kill();
                let _ = dns.wait();
                return Err(e).context("starting pebble");
            }
        };
        let p = Pebble {
            dir,
            pebble,
            dns,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            listener_ca: ca,
            management_port: management,
            dns_management_port: dns_management,
        };
        let up = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            !crate::port_closed(listen) && !crate::port_closed(dns_management)
        });
        if !up {
            bail!("pebble did not start:\n{}", p.logs());
        }
        Ok(p)
    }

    /// The `skiff server` arguments that use this CA.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--acme-directory".into(),
            self.directory.clone(),
            "--acme-ca-root".into(),
            self.listener_ca.display().to_string(),
            "--acme-email".into(),
            "e2e@skiff.test".into(),
        ]
    }

    /// The root that signs issued certificates (new on every pebble start), written to a file.
    pub fn issuing_root(&self) -> Result<PathBuf> {
        let pem = run(Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&self.listener_ca)
            .arg(format!(
                "https://127.0.0.1:{}/roots/0",
                self.management_port
            )))?;
        let path = self.dir.path().join("issuing-root.pem");
        std::fs::write(&path, pem)?;
        Ok(path)
    }

    /// Makes DNS queries for `host` fail with SERVFAIL.
    pub fn set_servfail(&self, host: &str) -> Result<()> {
        run(Command::new("curl")
            .args(["-sS", "--fail", "-X", "POST", "--data"])
            .arg(serde_json::json!({ "host": host }).to_string())
            .arg(format!(
                "http://127.0.0.1:{}/set-servfail",
                self.dns_management_port
            )))?;
        Ok(())
    }

    /// Both processes' logs (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for f in [
            "pebble.log",
            "pebble.err",
            "challtestsrv.log",
            "challtestsrv.err",
        ] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {f} ---\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [&mut self.pebble, &mut self.dns] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One curl answer.
#[derive(Debug, Clone)]
pub struct CurlOut {
    /// HTTP status (0 when curl failed before one).
    pub status: u16,
    /// The body.
    pub body: String,
    /// The response headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// `%{http_version}`.
    pub http_version: String,
    /// curl's exit code and stderr.
    pub code: i32,
    pub stderr: String,
}

impl CurlOut {
    /// A response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl URL` with `--resolve HOST:PORT:127.0.0.1` for the URL's host and port; `extra` goes
/// before the URL (e.g. `--cacert F`, `-k`, `--http2`).
pub fn curl(url: &str, extra: &[&str]) -> CurlOut {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap_or_else(|| {
            let port = if url.starts_with("https") {
                "443"
            } else {
                "80"
            };
            (authority.to_string(), port.to_string())
        });
    let headers_file = tempfile::NamedTempFile::new().expect("a temp file");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--resolve",
            &format!("{host}:{port}:127.0.0.1"),
        ])
        .arg("-D")
        .arg(headers_file.path())
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let mut tail = tail.split_whitespace();
    let status = tail.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let http_version = tail.next().unwrap_or("").to_string();
    let headers = std::fs::read_to_string(headers_file.path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    CurlOut {
        status,
        body: body.to_string(),
        headers,
        http_version,
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What 127.0.0.1:`port` presents to a TLS client asking for `name`: `openssl x509 -noout
/// -serial -issuer -subject -dates` of the leaf.
pub fn served_cert(port: u16, name: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {name} </dev/null 2>/dev/null \
             | openssl x509 -noout -serial -issuer -subject -dates -ext subjectAltName 2>&1"
        ))
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
