//! Ingress test helpers: a busybox httpd app (Deployment + Service), an Ingress for it, and
//! waiting for an answer through the proxy.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::pebble::curl;
use crate::*;

/// The busybox image the ingress tests run.
pub const IMAGE: &str = "skiff-e2e:v1";

/// A hostNetwork httpd on `port` serving /www, with a CGI script `/cgi-bin/env` printing the
/// request's environment (headers as HTTP_*).
pub fn app_yaml(name: &str, port: u16, replicas: u32) -> String {
    let script = format!(
        "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nenv\\n' > /www/cgi-bin/env \
         && chmod +x /www/cgi-bin/env && exec httpd -f -p {port} -h /www"
    );
    let deployment = deployment_yaml(name, IMAGE, &["sh", "-c", &script])
        .replace("replicas: 1", &format!("replicas: {replicas}"));
    format!(
        "{deployment}---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
  - name: http
    port: 80
    targetPort: {port}
"
    )
}

/// An Ingress for `host` → service `svc` port 80, with a tls section (secret `secret`) if given.
pub fn ingress_yaml(
    name: &str,
    host: &str,
    svc: &str,
    tls_secret: Option<&str>,
    extra_meta: &str,
) -> String {
    let tls = tls_secret
        .map(|s| format!("  tls:\n  - hosts: [{host}]\n    secretName: {s}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
{extra_meta}spec:
{tls}  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: {svc}
            port:
              number: 80
"
    )
}

pub fn import_image(s: &Server) {
    let archive = s.work_dir.join("img.tar");
    build_busybox_image(&archive, IMAGE, false).unwrap();
    let o = s.import_image(&archive);
    assert!(
        o.status.success(),
        "import: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Waits until `curl` of `url` answers `status` (and, if given, a body containing `body`).
pub fn expect_curl(
    s: &mut Server,
    url: &str,
    extra: &[&str],
    status: u16,
    body: Option<&str>,
) -> Duration {
    let start = Instant::now();
    let mut last = None;
    let ok = wait_until(WAIT, POLL, || {
        s.assert_running();
        let r = curl(url, extra);
        let good = r.status == status && body.is_none_or(|b| r.body.contains(b));
        last = Some(r);
        good
    });
    assert!(
        ok,
        "{url} {extra:?}: wanted {status} {body:?}, last answer: {last:#?}\nlog tail:\n{}",
        s.log_tail(40)
    );
    start.elapsed()
}

pub fn b64_file(path: &Path) -> String {
    let o = Command::new("base64")
        .arg("-w0")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()
}

/// A `kubernetes.io/tls` Secret `name` holding the PEM files `cert` and `key`.
pub fn tls_secret_yaml(name: &str, cert: &Path, key: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64_file(cert),
        b64_file(key)
    )
}
