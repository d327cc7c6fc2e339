//! Chart sources with the real binary's `skiff chart template`: a chart repository served by
//! a real nginx on loopback (HTTPS from a CA the test makes, `auth_basic`), a chart pushed to
//! Debian's docker-registry on loopback as `helm push` lays it out (OCI), the chart cache
//! (`--cache-dir`) answering when the repository is gone, and hostile charts refused with
//! the process's time and memory measured. No daemon, no root needed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use skiff_e2e::registry::{make_tls, require_tool, Registry};
use skiff_e2e::{free_port, sha256_hex, skiff_bin, wait_until};

/// A chart `hello` at `version`, packed as `helm package` does (`hello/…` in a .tgz).
fn chart_tgz(version: &str) -> Vec<u8> {
    let files = [
        (
            "hello/Chart.yaml",
            format!("apiVersion: v2\nname: hello\nversion: {version}\nappVersion: \"1\"\n"),
        ),
        ("hello/values.yaml", "greeting: hi\n".to_string()),
        (
            "hello/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hello\ndata:\n  chartVersion: {{ .Chart.Version | quote }}\n  greeting: {{ .Values.greeting | quote }}\n".to_string(),
        ),
    ];
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// nginx serving a folder over HTTPS on a free loopback port, behind `auth_basic`.
struct Nginx {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    ca: PathBuf,
}

impl Nginx {
    fn start(root: &Path, user: &str, password: &str) -> Nginx {
        require_tool("nginx", "nginx");
        require_tool("openssl", "openssl");
        let dir = tempfile::Builder::new()
            .prefix("skiff-e2e-nginx-")
            .tempdir()
            .unwrap();
        let tls = make_tls(dir.path()).expect("make a CA and a certificate for 127.0.0.1");
        let hash = Command::new("openssl")
            .args(["passwd", "-apr1", password])
            .output()
            .unwrap();
        assert!(hash.status.success());
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{user}:{}", String::from_utf8_lossy(&hash.stdout).trim()),
        )
        .unwrap();
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 types {{ application/x-yaml yaml; application/gzip tgz; }}\n\
             \x20 server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
             \x20   root {root};\n    auth_basic \"charts\";\n    auth_basic_user_file {htpasswd};\n  }}\n}}\n",
            cert = tls.cert.display(),
            key = tls.key.display(),
            root = root.display(),
            htpasswd = htpasswd.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            child: Some(child),
            ca: tls.ca.clone(),
            dir,
            port,
        };
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            let log =
                std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
            nginx.stop();
            panic!("nginx did not listen on {port}: {log}");
        }
        nginx
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn skiff(args: &[&str]) -> Output {
    Command::new(skiff_bin())
        .args(["chart", "template"])
        .args(args)
        .output()
        .expect("run skiff")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "skiff failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "skiff should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A repository folder: four versions of `hello` under `charts/` (relative URLs in the index),
/// and `broken`, whose index digest is not its archive's.
fn repository(root: &Path) {
    std::fs::create_dir_all(root.join("charts")).unwrap();
    let mut entries = String::from("apiVersion: v1\nentries:\n  hello:\n");
    for v in ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"] {
        let tgz = chart_tgz(v);
        std::fs::write(root.join(format!("charts/hello-{v}.tgz")), &tgz).unwrap();
        entries.push_str(&format!(
            "    - name: hello\n      version: {v}\n      created: \"2026-01-01T00:00:00Z\"\n      digest: {}\n      urls: [charts/hello-{v}.tgz]\n",
            sha256_hex(&tgz)
        ));
    }
    std::fs::write(root.join("charts/broken-1.0.0.tgz"), chart_tgz("1.0.0")).unwrap();
    entries.push_str(&format!(
        "  broken:\n    - name: broken\n      version: 1.0.0\n      digest: {}\n      urls: [charts/broken-1.0.0.tgz]\ngenerated: \"2026-01-01T00:00:00Z\"\n",
        "0".repeat(64)
    ));
    std::fs::write(root.join("index.yaml"), entries).unwrap();
}

#[test]
fn chart_repository_over_tls_with_basic_auth() {
    let web = tempfile::tempdir().unwrap();
    repository(web.path());
    let mut nginx = Nginx::start(web.path(), "reader", "s3cret");
    let url = nginx.url();
    let ca = nginx.ca.display().to_string();
    let run = |chart: &'static str, password: Option<&'static str>, extra: &[&str]| {
        let mut args = vec![chart, "--repo", url.as_str(), "--ca-file", ca.as_str()];
        if let Some(p) = password {
            args.extend(["--username", "reader", "--password", p]);
        }
        args.extend_from_slice(extra);
        skiff(&args)
    };
    let repo = |extra: &[&str]| run("hello", Some("s3cret"), extra);

    // No version: the highest release (1.10.0 over 1.2.0; the 2.0.0 prerelease left out).
    let out = ok(&repo(&[]));
    assert!(out.contains("chartVersion: \"1.10.0\""), "{out}");
    assert!(out.contains("name: release-name-hello"), "{out}");
    // Constraints as Helm reads them.
    for (constraint, want) in [
        ("~1.2", "1.2.0"),
        (">=1, <1.10", "1.2.0"),
        ("1.0.0", "1.0.0"),
        ("1.x", "1.10.0"),
        (">=2.0.0-0", "2.0.0-rc.1"),
    ] {
        let out = ok(&repo(&["--version", constraint]));
        assert!(
            out.contains(&format!("chartVersion: \"{want}\"")),
            "{constraint}: {out}"
        );
    }
    // No version matches: what was asked and what there is.
    let e = failed(&repo(&["--version", "^3"]));
    assert!(
        e.contains("\"hello\"")
            && e.contains("\"^3\"")
            && e.contains("2.0.0-rc.1, 1.10.0, 1.2.0, 1.0.0"),
        "{e}"
    );
    // A chart the repository does not have.
    let e = failed(&run("nope", Some("s3cret"), &[]));
    assert!(
        e.contains("\"nope\" not found") && e.contains("hello"),
        "{e}"
    );
    // The index's digest is checked.
    let e = failed(&run("broken", Some("s3cret"), &[]));
    assert!(
        e.contains("sha256") && e.contains("the repository's index says 0000"),
        "{e}"
    );

    // Wrong password: nginx's 401, the URL, no password in the message.
    let e = failed(&run("hello", Some("wrong"), &[]));
    assert!(
        e.contains("401") && e.contains(&format!("{url}index.yaml")) && e.contains("refused"),
        "{e}"
    );
    assert!(!e.contains("wrong"), "the password must not be shown: {e}");
    // No credentials at all.
    let e = failed(&run("hello", None, &[]));
    assert!(e.contains("401") && e.contains("none were given"), "{e}");
    // Without the CA the certificate is not trusted.
    let e = failed(&skiff(&[
        "hello",
        "--repo",
        &url,
        "--username",
        "reader",
        "--password",
        "s3cret",
    ]));
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // ... unless verification is turned off.
    let out = ok(&skiff(&[
        "hello",
        "--repo",
        &url,
        "--insecure-skip-tls-verify",
        "--username",
        "reader",
        "--password",
        "s3cret",
    ]));
    assert!(out.contains("chartVersion: \"1.10.0\""), "{out}");

    // A direct chart URL, with the same credentials and CA; its Chart.yaml gives the version.
    let direct = format!("{url}charts/hello-1.2.0.tgz");
    let direct_args = |extra: &[&str]| {
        let mut args = vec![direct.as_str(), "--ca-file", ca.as_str()];
        args.extend(["--username", "reader", "--password", "s3cret"]);
        args.extend_from_slice(extra);
        skiff(&args)
    };
    let out = ok(&direct_args(&[]));
    assert!(out.contains("chartVersion: \"1.2.0\""), "{out}");
    let e = failed(&direct_args(&["--version", "1.0.0"]));
    assert!(
        e.contains("holds version 1.2.0") && e.contains("\"1.0.0\""),
        "{e}"
    );

    // Credentials go to the repository's own origin only: a chart whose index URL points at
    // another server (another port: another origin) is fetched without them — refused there
    // — unless --pass-credentials.
    let mut other = Nginx::start(web.path(), "reader", "s3cret");
    let index = std::fs::read_to_string(web.path().join("index.yaml")).unwrap();
    let tgz = std::fs::read(web.path().join("charts/hello-1.0.0.tgz")).unwrap();
    std::fs::write(
        web.path().join("index.yaml"),
        index.replace(
            "generated:",
            &format!(
                "  elsewhere:\n    - name: hello\n      version: 1.0.0\n      digest: {}\n      urls: [{}charts/hello-1.0.0.tgz]\ngenerated:",
                sha256_hex(&tgz),
                other.url()
            ),
        ),
    )
    .unwrap();
    // The other server's certificate comes from another CA: trust both.
    let both = web.path().join("both-cas.pem");
    std::fs::write(
        &both,
        [
            std::fs::read(&nginx.ca).unwrap(),
            std::fs::read(&other.ca).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let elsewhere = |extra: &[&str]| {
        let mut args = vec![
            "elsewhere",
            "--repo",
            url.as_str(),
            "--ca-file",
            both.to_str().unwrap(),
        ];
        args.extend(["--username", "reader", "--password", "s3cret"]);
        args.extend_from_slice(extra);
        skiff(&args)
    };
    let e = failed(&elsewhere(&[]));
    assert!(
        e.contains("401") && e.contains("none were given") && e.contains(&other.url()),
        "{e}"
    );
    let out = ok(&elsewhere(&["--pass-credentials"]));
    assert!(out.contains("chartVersion: \"1.0.0\""), "{out}");
    other.stop();

    // The cache: a run with --cache-dir keeps the archive and what `~1.2` resolved to; with
    // the repository gone the same run still renders it, and one without the cache fails
    // naming the URL.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("charts");
    let cached = |extra: &[&str]| {
        let mut args = vec![
            "--version",
            "~1.2",
            "--cache-dir",
            cache_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        repo(&args)
    };
    let first = ok(&cached(&[]));
    assert!(first.contains("chartVersion: \"1.2.0\""), "{first}");
    let blob = cache_dir.join(format!(
        "sha256/{}.tgz",
        sha256_hex(&std::fs::read(web.path().join("charts/hello-1.2.0.tgz")).unwrap())
    ));
    assert!(blob.is_file(), "the archive is cached by its digest");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&blob).unwrap().permissions().mode() & 0o777,
        0o600
    );
    nginx.stop();
    let again = ok(&cached(&[]));
    assert_eq!(first, again);
    let e = failed(&repo(&["--version", "~1.2"]));
    assert!(
        e.contains(&format!("{url}index.yaml")) && e.contains("onnect"),
        "{e}"
    );
}

/// Runs curl; its stdout (headers with `-D -`).
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Uploads a blob with the distribution API (POST, then PUT with the digest); its digest.
fn push_blob(host: &str, repo: &str, bytes: &[u8], dir: &Path) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let headers = curl(&[
        "-X",
        "POST",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{host}/v2/{repo}/blobs/uploads/"),
    ]);
    let location = headers
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_string())
        })
        .expect("a Location header");
    let location = if location.starts_with('/') {
        format!("http://{host}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let file = dir.join(digest.replace(':', "-"));
    std::fs::write(&file, bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{location}{sep}digest={digest}"),
    ]);
    digest
}

/// Pushes a manifest under `tag`; its digest.
fn push_manifest(
    host: &str,
    repo: &str,
    tag: &str,
    manifest: &serde_json::Value,
    dir: &Path,
) -> String {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let file = dir.join(format!("manifest-{tag}.json"));
    std::fs::write(&file, &bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{host}/v2/{repo}/manifests/{tag}"),
    ]);
    format!("sha256:{}", sha256_hex(&bytes))
}

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";

/// Pushes chart `hello` at `version` as `helm push` lays it out (the config is Chart.yaml as
/// JSON, one content layer), tagged with the version (`+` as `_`); the manifest's digest.
fn push_chart(host: &str, version: &str, config_type: &str, dir: &Path) -> String {
    let tgz = chart_tgz(version);
    let config = serde_json::to_vec(&serde_json::json!({"apiVersion": "v2", "name": "hello", "version": version, "appVersion": "1"})).unwrap();
    let config_digest = push_blob(host, "charts/hello", &config, dir);
    let layer_digest = push_blob(host, "charts/hello", &tgz, dir);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": layer_digest, "size": tgz.len()}],
        "annotations": {"org.opencontainers.image.title": "hello", "org.opencontainers.image.version": version}
    });
    push_manifest(
        host,
        "charts/hello",
        &version.replace('+', "_"),
        &manifest,
        dir,
    )
}

#[test]
fn oci_chart_from_the_registry_on_loopback() {
    require_tool("curl", "curl");
    let registry = Registry::start_plain();
    let host = registry.host.clone();
    let work = tempfile::tempdir().unwrap();
    let manifest_digest = push_chart(&host, "0.4.2", HELM_CONFIG, work.path());
    push_chart(&host, "0.3.0", HELM_CONFIG, work.path());
    push_chart(&host, "0.5.0-rc.1", HELM_CONFIG, work.path());
    // An image config: not a chart.
    push_chart(
        &host,
        "0.0.1",
        "application/vnd.oci.image.config.v1+json",
        work.path(),
    );

    let reference = format!("oci://{host}/charts/hello");
    // By tag (--version), over plain HTTP.
    let out = ok(&skiff(&[
        &reference,
        "--version",
        "0.4.2",
        "--plain-http",
        "--name",
        "web",
    ]));
    assert!(
        out.contains("name: web-hello") && out.contains("chartVersion: \"0.4.2\""),
        "{out}"
    );
    // The tag in the reference; the loopback registry reached over HTTP without the flag,
    // as image pulls do.
    let out = ok(&skiff(&[&format!("{reference}:0.4.2")]));
    assert!(out.contains("chartVersion: \"0.4.2\""), "{out}");
    // Pinned by the manifest's digest.
    let out = ok(&skiff(&[
        &format!("{reference}@{manifest_digest}"),
        "--plain-http",
    ]));
    assert!(out.contains("chartVersion: \"0.4.2\""), "{out}");
    // A digest that is not the manifest's is refused.
    let e = failed(&skiff(&[
        &format!("{reference}@sha256:{}", "1".repeat(64)),
        "--plain-http",
    ]));
    assert!(e.contains("oci://") && e.contains("1111"), "{e}");
    // An artifact that is not a chart.
    let e = failed(&skiff(&[&reference, "--version", "0.0.1", "--plain-http"]));
    assert!(e.contains("not a Helm chart"), "{e}");
    // A tag the registry does not have: the registry's own words.
    let e = failed(&skiff(&[&reference, "--version", "9.9.9", "--plain-http"]));
    assert!(e.contains("MANIFEST_UNKNOWN") || e.contains("404"), "{e}");
    // No version: the registry's tags listed, the highest release picked (not the rc).
    let out = ok(&skiff(&[&reference, "--plain-http"]));
    assert!(out.contains("chartVersion: \"0.4.2\""), "{out}");
    // Ranges over the tags, as Helm reads them.
    for (constraint, want) in [
        ("<0.4", "0.3.0"),
        ("~0.4", "0.4.2"),
        (">=0.5.0-0", "0.5.0-rc.1"),
    ] {
        let out = ok(&skiff(&[
            &reference,
            "--version",
            constraint,
            "--plain-http",
        ]));
        assert!(
            out.contains(&format!("chartVersion: \"{want}\"")),
            "{constraint}: {out}"
        );
    }
    let e = failed(&skiff(&[&reference, "--version", "^1", "--plain-http"]));
    assert!(
        e.contains("\"^1\"") && e.contains("0.5.0-rc.1, 0.4.2, 0.3.0, 0.0.1"),
        "{e}"
    );
    drop(registry);
}

/// Runs `skiff chart template DIR` for a chart whose one template is `template`: (stderr,
/// seconds taken, the process's peak RSS in MiB from wait4).
fn render_hostile(template: &str) -> (String, f64, i64) {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: hostile\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("templates/t.yaml"), template).unwrap();
    let started = std::time::Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which gives its rusage too
    let mut child = Command::new(skiff_bin())
        .args(["chart", "template"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let pid = child.id() as i32;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let took = started.elapsed().as_secs_f64();
    let stderr = reader.join().unwrap();
    assert!(
        !std::process::ExitStatus::from_raw(status).success(),
        "a hostile chart rendered: {template}"
    );
    (stderr, took, usage.ru_maxrss / 1024)
}

/// Hostile charts through the real binary: refused by name, within seconds, the process's
/// peak memory bounded (the render's bounds, helm/src/bounds.rs; the unit tests in
/// helm/src/engine.rs cover the other functions, this one the doubling include — 2^40
/// bytes if nothing stopped it — and memory).
#[test]
fn hostile_charts_are_refused_quickly_with_bounded_memory() {
    let mut doubling = String::from(r#"{{- define "l0" -}}xxxxxxxxxxxxxxxx{{- end -}}"#);
    for i in 1..=40 {
        doubling.push_str(&format!(
            "{{{{- define \"l{i}\" -}}}}{{{{ include \"l{}\" . }}}}{{{{ include \"l{}\" . }}}}{{{{- end -}}}}",
            i - 1,
            i - 1
        ));
    }
    doubling.push_str(r#"{{ include "l40" . }}"#);
    let cases = [
        (
            r#"{{- define "r" -}}x{{ include "r" . }}{{- end -}}{{ include "r" . }}"#.to_string(),
            "nested more than 100 levels",
        ),
        (
            "{{ range until 100000000 }}x{{ end }}".to_string(),
            "until: it would produce 100000000 items",
        ),
        (
            r#"{{ repeat 1000000000 "x" }}"#.to_string(),
            "repeat: the result would be 1000000000 bytes",
        ),
        (doubling, "more than 256 MiB of text in all"),
        (
            r#"{{ $s := repeat 1048576 "x" }}{{ range until 40 }}{{ $s }}{{ end }}"#.to_string(),
            "the rendered output of the chart would exceed 32 MiB",
        ),
    ];
    for (template, bound) in cases {
        let (stderr, took, peak_mib) = render_hostile(&template);
        eprintln!("{bound}: {took:.2} s, peak RSS {peak_mib} MiB");
        assert!(
            stderr.contains(bound) && stderr.contains("hostile/templates/t.yaml"),
            "{stderr}"
        );
        assert!(took < 30.0, "{bound}: took {took:.1} s");
        assert!(peak_mib < 200, "{bound}: peak RSS {peak_mib} MiB");
    }
}

/// A HelmChart (`kind`'s YAML under spec) in the manifests folder of `s`, as `name.yaml`.
fn helmchart(s: &skiff_e2e::Server, name: &str, spec: &str) {
    s.write_manifest(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
        ),
    );
}

/// The `data` of the ConfigMap the `hello` chart renders for release `name`, once its
/// `chartVersion` is `version`.
fn hello_data(k: &skiff_e2e::kubectl::Kubectl, name: &str, version: &str) -> serde_json::Value {
    skiff_e2e::wait_for(Duration::from_secs(60), || {
        let cm = k.get_json(&["configmap", &format!("{name}-hello")])?;
        (cm["data"]["chartVersion"] == version).then(|| cm["data"].clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "no {name}-hello at chart version {version}: {}",
            k.run(&["get", "helmchart", name, "-o", "yaml"]).stdout
        )
    })
}

/// The issue's check, end to end: HelmCharts in the manifests folder install charts from a
/// chart repository on loopback (nginx over TLS with its own CA and basic auth, from the
/// HelmChart's `repoCA` and `authSecret`) and from the registry on loopback (OCI); a new
/// `valuesContent` and version range upgrade one (revision 2, the first superseded);
/// removing the files uninstalls both, release Secrets included.
#[test]
fn helmcharts_install_from_a_repository_and_from_oci() {
    use skiff_e2e::kubectl::Kubectl;
    require_tool("curl", "curl");
    let web = tempfile::tempdir().unwrap();
    repository(web.path());
    let nginx = Nginx::start(web.path(), "reader", "s3cret");
    let registry = Registry::start_plain();
    let work = tempfile::tempdir().unwrap();
    push_chart(&registry.host, "0.4.2", HELM_CONFIG, work.path());
    // The daemon reaches the node's own addresses only for hosts registries.yaml names.
    let mut s = skiff_e2e::Server::new();
    let registries = s.work_dir.join("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "configs:\n  \"127.0.0.1:{}\": {{}}\n  \"{}\": {{}}\n",
            nginx.port, registry.host
        ),
    )
    .unwrap();
    s.extra_args = vec!["--registries".into(), registries.display().to_string()];
    s.start();
    assert!(wait_until(skiff_e2e::WAIT, skiff_e2e::POLL, || s
        .kubeconfig
        .is_file()));
    let k = Kubectl::admin(&s);
    k.apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: repo-auth\ntype: kubernetes.io/basic-auth\nstringData:\n  username: reader\n  password: s3cret\n",
        &[],
    );
    let ca: String = std::fs::read_to_string(&nginx.ca)
        .unwrap()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let from_repo = |version: &str, greeting: &str| {
        format!(
            "  repo: {}\n  chart: hello\n  version: \"{version}\"\n  authSecret:\n    name: repo-auth\n  repoCA: |\n{ca}  valuesContent: |\n    greeting: {greeting}\n",
            nginx.url()
        )
    };
    helmchart(&s, "from-repo", &from_repo("~1.2", "from-the-repo"));
    helmchart(
        &s,
        "from-oci",
        &format!(
            "  chart: oci://{}/charts/hello\n  version: 0.4.2\n  plainHTTP: true\n",
            registry.host
        ),
    );
    let data = hello_data(&k, "from-repo", "1.2.0");
    assert_eq!(data["greeting"], "from-the-repo");
    let data = hello_data(&k, "from-oci", "0.4.2");
    assert_eq!(data["greeting"], "hi", "the chart's default");
    // The release record as Helm writes it.
    let status = |name: &str, v: u32| {
        k.get_json(&["secret", &format!("sh.helm.release.v1.{name}.v{v}")])
            .map(|s| s["metadata"]["labels"]["status"].clone())
    };
    assert_eq!(status("from-repo", 1).unwrap(), "deployed");
    assert_eq!(status("from-oci", 1).unwrap(), "deployed");

    // An upgrade: new values and a range that now picks 1.10.0.
    helmchart(&s, "from-repo", &from_repo("^1", "upgraded"));
    let data = hello_data(&k, "from-repo", "1.10.0");
    assert_eq!(data["greeting"], "upgraded");
    assert!(wait_until(skiff_e2e::WAIT, skiff_e2e::POLL, || status(
        "from-repo",
        1
    ) == Some(
        "superseded".into()
    ) && status(
        "from-repo",
        2
    )
        == Some("deployed".into())));
    let hc = k.get_json(&["helmchart", "from-repo"]).unwrap();
    assert_eq!(hc["status"]["revision"], 2, "{:#}", hc["status"]);
    assert_eq!(hc["status"]["chartVersion"], "1.10.0");

    // (Each list must answer: an empty list, not a failed kubectl.)
    let names = |kind: &str| -> Option<Vec<String>> {
        let list = k.get_json(&[kind])?;
        Some(
            list["items"]
                .as_array()?
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
                .collect(),
        )
    };
    assert!(names("configmap")
        .unwrap()
        .iter()
        .any(|n| n == "from-oci-hello"));
    // Removing the files uninstalls both charts.
    s.remove_manifest("from-repo.yaml");
    s.remove_manifest("from-oci.yaml");
    let gone = wait_until(Duration::from_secs(60), skiff_e2e::POLL, || {
        names("configmap").is_some_and(|n| n.iter().all(|n| !n.ends_with("-hello")))
            && names("secret").is_some_and(|n| n.iter().all(|n| !n.starts_with("sh.helm.release")))
            && names("helmchart").is_some_and(|n| n.is_empty())
    });
    assert!(
        gone,
        "left: {} {}",
        k.run(&["get", "cm,secret,helmchart"]).stdout,
        s.log_tail(20)
    );
    drop(nginx);
    drop(registry);
}
