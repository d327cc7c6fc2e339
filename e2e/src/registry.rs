//! A real registry for the pull tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its own configuration and storage in a temporary folder — plain HTTP, or
//! TLS with a CA made for the test and htpasswd (bcrypt) Basic auth. Images are pushed with
//! `skopeo copy`. [`Registry`]'s `Drop` kills the registry and removes its folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{build_busybox_image, free_port, random_hex, sha256_hex, wait_until};

/// TLS files made for a registry.
pub struct TlsFiles {
    /// The CA certificate (PEM) that signed the registry's certificate.
    pub ca: PathBuf,
    /// The registry's certificate (PEM), for 127.0.0.1 and localhost.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// A client certificate (PEM) signed by the same CA, for registries that require one.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A folder in skopeo's `--cert-dir` layout (ca.crt, client.cert, client.key).
    pub cert_dir: PathBuf,
}

/// One running `docker-registry`.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The port on 127.0.0.1.
    pub port: u16,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Set when the registry serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// Set when the registry wants Basic auth: (user, password).
    pub auth: Option<(String, String)>,
    /// Set when the registry requires a client certificate.
    pub mtls: bool,
}

/// Panics with an install hint unless `tool` is on PATH.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} not found: apt-get install -y {package} (or bash e2e/install-deps.sh)"
    );
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Registry {
    /// A plain-HTTP registry without auth.
    pub fn start_plain() -> Registry {
        Self::start(false, None, false)
    }

    /// An HTTPS registry (its own CA) that requires a client certificate signed by that CA.
    pub fn start_mtls() -> Registry {
        Self::start(true, None, true)
    }

    /// An HTTPS registry (its own CA) that wants `user`/`password` (htpasswd, bcrypt).
    pub fn start_tls_auth(user: &str, password: &str) -> Registry {
        Self::start(true, Some((user.to_owned(), password.to_owned())), false)
    }

    fn start(tls: bool, auth: Option<(String, String)>, mtls: bool) -> Registry {
        require_tool("docker-registry", "docker-registry");
        require_tool("skopeo", "skopeo");
        let dir = tempfile::Builder::new()
            .prefix("skiff-e2e-registry-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let tls = tls.then(|| make_tls(dir.path()).expect("make TLS files"));
        let mut config = format!(
            "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {host}
",
            storage = dir.path().join("storage").display()
        );
        if let Some(t) = &tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            ));
            if mtls {
                config.push_str(&format!("    clientcas:\n      - {}\n", t.ca.display()));
            }
        }
        if let Some((user, password)) = &auth {
            require_tool("htpasswd", "apache2-utils");
            let line =
                run(Command::new("htpasswd").args(["-Bbn", user, password])).expect("htpasswd");
            let path = dir.path().join("htpasswd");
            fs::write(&path, line.trim()).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-e2e\n    path: {}\n",
                path.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            child: Some(child),
            dir,
            port,
            host,
            tls,
            auth,
            mtls,
        };
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            let log = registry.log();
            registry.stop();
            panic!("docker-registry did not listen on {port}: {log}");
        }
        registry
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's own temporary folder (config, storage, TLS files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// skopeo's flags for this registry as destination (`dest`) or source (`src`).
    fn skopeo_flags(&self, side: &str) -> Vec<String> {
        // `skopeo copy` takes --dest-…; `skopeo inspect` takes them unprefixed.
        let prefix = if side == "dest" { "dest-" } else { "" };
        let mut flags = vec![format!("--{prefix}tls-verify=false")];
        if let Some((u, p)) = &self.auth {
            flags.push(format!("--{prefix}creds={u}:{p}"));
        }
        if let Some(t) = self.tls.as_ref().filter(|_| self.mtls) {
            flags.push(format!("--{prefix}cert-dir={}", t.cert_dir.display()));
        }
        flags
    }

    /// Copies `source` (a skopeo transport reference, e.g. `oci-archive:/x.tar`) to
    /// `REPO:TAG` in this registry; `all` copies every image of an index; `v2s2` converts to
    /// Docker's manifest format.
    pub fn push(&self, source: &str, repo_tag: &str, all: bool, v2s2: bool) -> Result<()> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet"])
            .args(self.skopeo_flags("dest"));
        if all {
            cmd.arg("--all");
        }
        if v2s2 {
            cmd.args(["--format", "v2s2"]);
        }
        cmd.arg(source)
            .arg(format!("docker://{}/{repo_tag}", self.host));
        run(&mut cmd).map(|_| ())
    }

    /// Builds the busybox test image (httpd serving "hello from skiff") with a unique marker
    /// file `/www/marker.html` and pushes it as `REPO:TAG`; returns its config digest (the image id).
    pub fn push_busybox(&self, work: &Path, repo_tag: &str, v2s2: bool) -> Result<String> {
        let archive = work.join(format!("{}.tar", random_hex(6)));
        build_busybox_image(&archive, "skiff-e2e-push:v1", true)?;
        self.push(
            &format!("oci-archive:{}", archive.display()),
            repo_tag,
            false,
            v2s2,
        )?;
        let _ = fs::remove_file(&archive);
        self.config_digest(repo_tag)
    }

    /// The manifest digest of `REPO:TAG` (as `skopeo inspect` computes it).
    pub fn manifest_digest(&self, repo_tag: &str) -> Result<String> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw"])
            .args(self.skopeo_flags("src"));
        cmd.arg(format!("docker://{}/{repo_tag}", self.host));
        let raw = run(&mut cmd)?;
        Ok(format!("sha256:{}", sha256_hex(raw.as_bytes())))
    }

    /// The config digest (image id) of `REPO:TAG` for linux/amd64.
    pub fn config_digest(&self, repo_tag: &str) -> Result<String> {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--override-arch",
            "amd64",
            "--override-os",
            "linux",
            "inspect",
            "--config",
            "--raw",
        ])
        .args(self.skopeo_flags("src"));
        cmd.arg(format!("docker://{}/{repo_tag}", self.host));
        let raw = run(&mut cmd)?;
        Ok(format!("sha256:{}", sha256_hex(raw.as_bytes())))
    }

    /// The file the registry serves blob `digest` from.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The layer digests of `REPO:TAG`'s (amd64) manifest.
    pub fn layer_digests(&self, repo_tag: &str) -> Result<Vec<String>> {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--override-arch",
            "amd64",
            "--override-os",
            "linux",
            "inspect",
        ])
        .args(self.skopeo_flags("src"));
        cmd.arg(format!("docker://{}/{repo_tag}", self.host));
        let v: Value = serde_json::from_str(&run(&mut cmd)?)?;
        Ok(v["Layers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Pushes a two-platform index as `REPO:TAG`: linux/arm64 listed first (a config whose
    /// architecture is arm64 and whose env says ARCH=arm64), then linux/amd64 (the busybox
    /// image). Returns (index digest, amd64 config digest, arm64 config digest).
    pub fn push_multiarch(&self, work: &Path, repo_tag: &str) -> Result<(String, String, String)> {
        let archive = work.join(format!("{}.tar", random_hex(6)));
        build_busybox_image(&archive, "skiff-e2e-multi:v1", true)?;
        let layout = work.join(format!("layout-{}", random_hex(4)));
        fs::create_dir_all(&layout)?;
        run(Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout))?;
        let blobs = layout.join("blobs/sha256");
        let read_blob = |digest: &str| -> Result<Vec<u8>> {
            Ok(fs::read(blobs.join(digest.trim_start_matches("sha256:")))?)
        };
        let write_blob = |bytes: &[u8]| -> Result<(String, usize)> {
            let hex = sha256_hex(bytes);
            fs::write(blobs.join(&hex), bytes)?;
            Ok((format!("sha256:{hex}"), bytes.len()))
        };
        let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json"))?)?;
        let amd64_desc = index["manifests"][0].clone();
        let amd64_digest = amd64_desc["digest"]
            .as_str()
            .context("index entry")?
            .to_owned();
        let amd64_manifest: Value = serde_json::from_slice(&read_blob(&amd64_digest)?)?;
        let amd64_config_digest = amd64_manifest["config"]["digest"]
            .as_str()
            .context("config")?
            .to_owned();
        let mut config: Value = serde_json::from_slice(&read_blob(&amd64_config_digest)?)?;
        config["architecture"] = json!("arm64");
        config["config"]["Env"] = json!(["PATH=/bin", "ARCH=arm64"]);
        let (arm_config, arm_config_size) = write_blob(&serde_json::to_vec(&config)?)?;
        let mut arm_manifest = amd64_manifest.clone();
        arm_manifest["config"]["digest"] = json!(arm_config);
        arm_manifest["config"]["size"] = json!(arm_config_size);
        let (arm_digest, arm_size) = write_blob(&serde_json::to_vec(&arm_manifest)?)?;
        let oci_manifest = "application/vnd.oci.image.manifest.v1+json";
        let image_index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": oci_manifest, "digest": arm_digest, "size": arm_size,
                 "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                {"mediaType": oci_manifest, "digest": amd64_digest, "size": amd64_desc["size"],
                 "platform": {"architecture": "amd64", "os": "linux"}},
            ]
        });
        let (index_digest, index_size) = write_blob(&serde_json::to_vec(&image_index)?)?;
        let top = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest, "size": index_size,
                "annotations": {"org.opencontainers.image.ref.name": "multi"}
            }]
        });
        fs::write(layout.join("index.json"), serde_json::to_vec(&top)?)?;
        self.push(
            &format!("oci:{}:multi", layout.display()),
            repo_tag,
            true,
            false,
        )?;
        let _ = fs::remove_dir_all(&layout);
        let _ = fs::remove_file(&archive);
        Ok((index_digest, amd64_config_digest, arm_config))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- docker-registry log ---\n{}\n--- end ---", self.log());
        }
        self.stop();
    }
}

/// A CA and a certificate for 127.0.0.1/localhost signed by it, made with openssl.
pub fn make_tls(dir: &Path) -> Result<TlsFiles> {
    require_tool("openssl", "openssl");
    let p = |n: &str| dir.join(n);
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
            "2",
        ])
        .args(["-subj", "/CN=skiff-e2e test CA"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(p("registry.key"))
        .arg("-out")
        .arg(p("registry.csr")))?;
    fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("registry.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("registry.pem")))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-subj", "/CN=skiff-e2e client"])
        .arg("-keyout")
        .arg(p("client.key"))
        .arg("-out")
        .arg(p("client.csr")))?;
    fs::write(
        p("client-ext.cnf"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("client.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("client-ext.cnf"))
        .arg("-out")
        .arg(p("client.pem")))?;
    let cert_dir = p("certs.d");
    fs::create_dir_all(&cert_dir)?;
    fs::copy(p("ca.pem"), cert_dir.join("ca.crt"))?;
    fs::copy(p("client.pem"), cert_dir.join("client.cert"))?;
    fs::copy(p("client.key"), cert_dir.join("client.key"))?;
    Ok(TlsFiles {
        ca: p("ca.pem"),
        cert: p("registry.pem"),
        key: p("registry.key"),
        client_cert: p("client.pem"),
        client_key: p("client.key"),
        cert_dir,
    })
}

/// A bare Pod (host network) serving `/www` with busybox httpd on `port`, pulled per `policy`,
/// with the named imagePullSecret if any.
pub fn pulled_httpd_pod_yaml(
    name: &str,
    image: &str,
    policy: &str,
    port: u16,
    pull_secret: Option<&str>,
) -> String {
    let secrets = pull_secret
        .map(|s| format!("  imagePullSecrets:\n  - name: {s}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
{secrets}  containers:
  - name: main
    image: {image}
    imagePullPolicy: {policy}
    command: [\"httpd\", \"-f\", \"-p\", \"{port}\", \"-h\", \"/www\"]
"
    )
}

/// A `kubernetes.io/dockerconfigjson` Secret holding `user`/`password` for `host`.
pub fn docker_config_secret_yaml(name: &str, host: &str, user: &str, password: &str) -> String {
    use base64_lite::encode;
    let auth = encode(format!("{user}:{password}").as_bytes());
    let config = json!({"auths": {host: {"username": user, "password": password, "auth": auth}}});
    format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: {name}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: {config:?}
",
        config = config.to_string()
    )
}

/// The image store's files under `data/store` whose name contains `hex`, and scratch left in
/// `store/tmp` (for "nothing half-stored" checks).
pub fn store_files_named(data_dir: &Path, hex: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let store = data_dir.join("store");
    for sub in ["blobs/sha256", "layers", "images", "tmp"] {
        if let Ok(entries) = fs::read_dir(store.join(sub)) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.contains(hex) || sub == "tmp" {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

mod base64_lite {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Standard base64 with padding.
    pub fn encode(input: &[u8]) -> String {
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
