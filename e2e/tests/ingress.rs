//! The ingress proxy (issue 6): Deployment + Service + Ingress → the pod's answer over HTTP and
//! HTTPS through `--http-port`/`--https-port`, with the usual proxy behaviour (forwarded headers,
//! redirect of TLS hosts, 404 unknown host, 503 nothing ready, routes gone with the Ingress),
//! HTTP/2, WebSocket; and certificates from ACME (Debian's pebble, HTTP-01 really answered):
//! issuance, a second host, a failing host isolated, renewal under load.

use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::ingress::{app_yaml, expect_curl, import_image, ingress_yaml, tls_secret_yaml};
use skiff_e2e::pebble::{curl, make_cert, served_cert, Pebble};
use skiff_e2e::*;

fn events_of(s: &Server, ingress: &str) -> Vec<Value> {
    s.list("events", None)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e["involvedObject"]["kind"] == "Ingress" && e["involvedObject"]["name"] == ingress
        })
        .collect()
}

#[test]
fn ingress_routes_http_https_h2_redirects_404_503_and_removal() {
    let mut s = Server::start_new();
    import_image(&s);
    let (hp, hsp) = (s.http_port, s.https_port);
    let port = free_port();
    s.write_manifest("web.yaml", &app_yaml("web", port, 1));
    s.write_manifest(
        "ingress.yaml",
        &format!(
            "{}---\n{}",
            ingress_yaml("web", "app.test", "web", Some("app-tls"), ""),
            ingress_yaml("plain", "plain.test", "web", None, "")
        ),
    );

    // HTTP to the pod, with the forwarded headers.
    let took = expect_curl(
        &mut s,
        &format!("http://plain.test:{hp}/"),
        &[],
        200,
        Some("hello from skiff"),
    );
    eprintln!("manifests -> first answer through the proxy: {took:?}");
    let env = curl(
        &format!("http://plain.test:{hp}/cgi-bin/env?x=1"),
        &["-H", "X-Forwarded-For: 10.9.9.9"],
    );
    assert_eq!(env.status, 200, "{env:?}");
    for want in [
        "HTTP_X_FORWARDED_FOR=10.9.9.9, 127.0.0.1".to_string(),
        "HTTP_X_FORWARDED_PROTO=http".to_string(),
        format!("HTTP_X_FORWARDED_HOST=plain.test:{hp}"),
        format!("HTTP_HOST=plain.test:{hp}"),
        "QUERY_STRING=x=1".to_string(),
    ] {
        assert!(
            env.body.lines().any(|l| l == want),
            "no {want:?} in:\n{}",
            env.body
        );
    }

    // HTTPS with the temporary self-signed certificate (ACME is off in this test).
    let r = curl(&format!("https://app.test:{hsp}/cgi-bin/env"), &["-k"]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("HTTP_X_FORWARDED_PROTO=https"),
        "{}",
        r.body
    );
    assert!(served_cert(hsp, "app.test").contains("skiff self-signed"));
    // HTTP/2 over TLS (ALPN), and h2c with prior knowledge.
    let r = curl(&format!("https://app.test:{hsp}/"), &["-k", "--http2"]);
    assert_eq!((r.status, r.http_version.as_str()), (200, "2"), "{r:?}");
    assert_eq!(r.body, "hello from skiff\n");
    let r = curl(
        &format!("http://plain.test:{hp}/"),
        &["--http2-prior-knowledge"],
    );
    assert_eq!((r.status, r.http_version.as_str()), (200, "2"), "{r:?}");

    // A TLS host is redirected from HTTP.
    let r = curl(&format!("http://app.test:{hp}/a/b?c=d"), &[]);
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://app.test:{hsp}/a/b?c=d").as_str())
    );

    // The Secret's certificate, once it exists, replaces the self-signed one.
    let (cert, key, ca) = make_cert(&s.work_dir, "app", &["app.test"]).unwrap();
    s.write_manifest("secret.yaml", &tls_secret_yaml("app-tls", &cert, &key));
    let ca = ca.display().to_string();
    expect_curl(
        &mut s,
        &format!("https://app.test:{hsp}/"),
        &["--cacert", &ca],
        200,
        Some("hello from skiff"),
    );

    // Unknown hosts: 404 on both ports.
    assert_eq!(curl(&format!("http://nothing.test:{hp}/"), &[]).status, 404);
    assert_eq!(
        curl(&format!("https://nothing.test:{hsp}/"), &["-k"]).status,
        404
    );

    // Status: the proxy's address.
    let ing = s.get_json("ingresses", Some("web"), None).unwrap();
    assert_eq!(
        ing["status"]["loadBalancer"]["ingress"][0]["ip"], "127.0.0.1",
        "{ing}"
    );

    // Scaled to 0: 503; back to 1: served again.
    s.write_manifest("web.yaml", &app_yaml("web", port, 0));
    expect_curl(&mut s, &format!("http://plain.test:{hp}/"), &[], 503, None);
    s.write_manifest("web.yaml", &app_yaml("web", port, 1));
    expect_curl(
        &mut s,
        &format!("http://plain.test:{hp}/"),
        &[],
        200,
        Some("hello from skiff"),
    );

    // Deleting the Ingresses removes their routes.
    s.remove_manifest("ingress.yaml");
    expect_curl(&mut s, &format!("http://plain.test:{hp}/"), &[], 404, None);
    expect_curl(
        &mut s,
        &format!("https://app.test:{hsp}/"),
        &["-k"],
        404,
        None,
    );
    s.assert_running();
}

/// A server using `pebble`, with the busybox image imported.
fn server_with_pebble(validity: Option<Duration>) -> (Server, Pebble) {
    let mut s = Server::new();
    let pebble = Pebble::start(s.http_port, s.https_port, validity).expect("start pebble");
    s.extra_args = pebble.server_args();
    s.start();
    import_image(&s);
    (s, pebble)
}

#[test]
fn acme_certificates_from_pebble_second_host_and_failing_host() {
    let (mut s, pebble) = server_with_pebble(None);
    let (hp, hsp) = (s.http_port, s.https_port);
    let port = free_port();
    s.write_manifest("web.yaml", &app_yaml("web", port, 1));
    expect_curl(&mut s, &format!("http://plain.test:{hp}/"), &[], 404, None);
    let mark = s.log_mark();
    let applied = Instant::now();
    s.write_manifest(
        "app.yaml",
        &ingress_yaml(
            "app",
            "app.test",
            "web",
            Some("app-tls"),
            "  annotations:\n    cert-manager.io/cluster-issuer: letsencrypt-prod\n",
        ),
    );
    let root = pebble.issuing_root().unwrap().display().to_string();
    let app = format!("https://app.test:{hsp}/");
    let ok = wait_until(WAIT, POLL, || {
        curl(&app, &["--cacert", &root]).status == 200
    });
    assert!(
        ok,
        "no verified HTTPS answer for app.test\nserver log:\n{}\npebble:\n{}",
        s.log_tail(60),
        pebble.logs()
    );
    eprintln!(
        "Ingress written -> first verified HTTPS answer (pebble): {:?}",
        applied.elapsed()
    );
    let served = served_cert(hsp, "app.test");
    assert!(
        served.contains("issuer=CN = Pebble Intermediate CA"),
        "{served}"
    );
    // HTTP-01 was answered by the proxy (pebble's validation requests in the access log).
    let log = s.log_since(mark);
    assert!(
        log.lines()
            .any(|l| l.contains("/.well-known/acme-challenge/") && l.contains("status=200")),
        "no answered HTTP-01 request in the log:\n{log}"
    );
    // The certificate is in the Secret, as kubectl shows it.
    let k = skiff_e2e::kubectl::Kubectl::admin(&s);
    let secret = k
        .get_json(&["secret", "app-tls"])
        .expect("kubectl get secret app-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert!(secret["data"]["tls.crt"]
        .as_str()
        .is_some_and(|c| c.len() > 100));
    // Redirect from HTTP, and the cert-manager annotation reported.
    let r = curl(&format!("http://app.test:{hp}/"), &[]);
    assert_eq!(r.status, 308, "{r:?}");
    let ev = events_of(&s, "app");
    assert!(
        ev.iter().any(|e| e["reason"] == "IssuerHandledBySkiff"),
        "{ev:#?}"
    );
    assert!(
        ev.iter().any(|e| e["reason"] == "CertificateIssued"),
        "{ev:#?}"
    );

    // A second host gets its own certificate; the first keeps serving.
    s.write_manifest(
        "two.yaml",
        &ingress_yaml("two", "two.test", "web", Some("two-tls"), ""),
    );
    expect_curl(
        &mut s,
        &format!("https://two.test:{hsp}/"),
        &["--cacert", &root],
        200,
        Some("hello"),
    );
    let two = served_cert(hsp, "two.test");
    assert!(
        two.contains("DNS:two.test") && !two.contains("DNS:app.test"),
        "{two}"
    );
    assert_eq!(curl(&app, &["--cacert", &root]).status, 200);

    // A host whose DNS fails: a Warning event, a self-signed certificate, the others unharmed.
    pebble.set_servfail("bad.test").unwrap();
    s.write_manifest(
        "bad.yaml",
        &ingress_yaml("bad", "bad.test", "web", Some("bad-tls"), ""),
    );
    let failed = wait_for(WAIT, || {
        events_of(&s, "bad")
            .into_iter()
            .find(|e| e["reason"] == "CertificateFailed" && e["type"] == "Warning")
    });
    let failed = failed.unwrap_or_else(|| panic!("no CertificateFailed event\n{}", s.log_tail(40)));
    eprintln!("failure event: {}", failed["message"]);
    assert!(
        failed["message"].as_str().unwrap().contains("bad.test"),
        "{failed}"
    );
    assert!(served_cert(hsp, "bad.test").contains("skiff self-signed"));
    assert_eq!(
        curl(&format!("https://bad.test:{hsp}/"), &["-k"]).status,
        200
    );
    assert_eq!(curl(&app, &["--cacert", &root]).status, 200);
    assert_eq!(
        curl(&format!("https://two.test:{hsp}/"), &["--cacert", &root]).status,
        200
    );

    // Deleting an Ingress removes its routes only.
    s.remove_manifest("two.yaml");
    expect_curl(&mut s, &format!("http://two.test:{hp}/"), &[], 404, None);
    assert_eq!(curl(&app, &["--cacert", &root]).status, 200);
    s.assert_running();
}

fn serial(cert_text: &str) -> Option<String> {
    cert_text
        .lines()
        .find_map(|l| l.strip_prefix("serial=").map(String::from))
}

#[test]
fn acme_renewal_under_load_fails_no_request() {
    // Certificates valid 45 s: renewed at 2/3, 30 s after issuance.
    let (mut s, pebble) = server_with_pebble(Some(Duration::from_secs(45)));
    let hsp = s.https_port;
    let port = free_port();
    s.write_manifest("web.yaml", &app_yaml("web", port, 1));
    s.write_manifest(
        "app.yaml",
        &ingress_yaml("app", "app.test", "web", Some("app-tls"), ""),
    );
    let root = pebble.issuing_root().unwrap().display().to_string();
    let app = format!("https://app.test:{hsp}/");
    expect_curl(&mut s, &app, &["--cacert", &root], 200, Some("hello"));
    let first = serial(&served_cert(hsp, "app.test")).expect("a serial");
    let start = Instant::now();
    let (mut ok, mut failed) = (0, Vec::new());
    let mut renewed = None;
    while start.elapsed() < Duration::from_secs(60) {
        let r = curl(&app, &["--cacert", &root]);
        if r.status == 200 {
            ok += 1;
        } else {
            failed.push(r);
        }
        if ok % 10 == 0 {
            if let Some(now) = serial(&served_cert(hsp, "app.test")) {
                if now != first {
                    renewed = Some((now, start.elapsed()));
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        failed.is_empty(),
        "{} failed requests (of {}): {:#?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(3)]
    );
    let (second, after) =
        renewed.unwrap_or_else(|| panic!("not renewed within 60 s\n{}", s.log_tail(40)));
    eprintln!("renewed after {after:?} of looping ({ok} requests, none failed): serial {first} -> {second}");
    // Still served after the renewal.
    assert_eq!(curl(&app, &["--cacert", &root]).status, 200);
    s.assert_running();
}

/// Issue 13 part 7: a host belongs to the namespace that claimed it first. A CI token's Ingress
/// for the admin's `app.test` (and for `*.test`) gets no route, no certificate order and a
/// `HostAlreadyClaimed` warning; the admin's site keeps answering with its ACME certificate.
/// When the admin's Ingress goes, the next claim (the token's) is served.
#[test]
fn a_namespace_cannot_claim_another_namespaces_host() {
    use skiff_e2e::kubectl::{namespace_token, Kubectl};
    let (mut s, pebble) = server_with_pebble(None);
    let (hp, hsp) = (s.http_port, s.https_port);
    let port = free_port();
    s.write_manifest(
        "web.yaml",
        &format!(
            "{}---\n{}",
            app_yaml("web", port, 1),
            ingress_yaml("app", "app.test", "web", Some("app-tls"), "")
        ),
    );
    let root = pebble.issuing_root().unwrap().display().to_string();
    let app = format!("https://app.test:{hsp}/");
    expect_curl(&mut s, &app, &["--cacert", &root], 200, None);

    let admin = Kubectl::admin(&s);
    admin.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ci}\n",
        &[],
    );
    let ci = Kubectl::with_kubeconfig(&s, &namespace_token(&s, "ci").0);
    let steal = format!(
        "{}---\n{}",
        ingress_yaml("steal", "app.test", "thief", Some("steal-tls"), ""),
        ingress_yaml("wild", "'*.test'", "thief", Some("wild-tls"), "")
    );
    let o = ci.run_stdin(&["apply", "-n", "ci", "-f", "-"], &steal);
    assert_eq!(o.code, 0, "{o}");
    let claimed = |name: &str| {
        let o = admin.run(&["get", "events", "-n", "ci", "-o", "json"]);
        let events: Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| {
                e["involvedObject"]["name"] == name
                    && e["reason"] == "HostAlreadyClaimed"
                    && e["type"] == "Warning"
            })
            .cloned()
    };
    let mut event = None;
    assert!(
        wait_until(WAIT, POLL, || {
            event = claimed("steal");
            event.is_some() && claimed("wild").is_some()
        }),
        "no HostAlreadyClaimed events\n{}",
        s.log_tail(40)
    );
    let msg = event.unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("\"app.test\"") && msg.contains("namespace \"default\""),
        "{msg}"
    );
    // The admin's site is unchanged: same backend, same certificate; the thief's Ingresses are
    // not served (no address in their status) and no certificate was ordered for them.
    std::thread::sleep(Duration::from_secs(3));
    let r = curl(&app, &["--cacert", &root]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(served_cert(hsp, "app.test").contains("issuer=CN = Pebble Intermediate CA"));
    for secret in ["steal-tls", "wild-tls"] {
        let o = admin.run(&["get", "secret", secret, "-n", "ci"]);
        assert_ne!(o.code, 0, "a certificate was issued to the thief: {o}");
    }
    let st = admin.get_json(&["ingress", "steal", "-n", "ci"]).unwrap();
    assert_eq!(
        st["status"]["loadBalancer"],
        serde_json::json!({}),
        "{st:#}"
    );
    // Another name under the wildcard is not the thief's either (the admin holds app.test,
    // so nobody else may take *.test).
    let r = curl(&format!("http://other.test:{hp}/"), &[]);
    assert_eq!(r.status, 404, "{r:?}");

    // The owner goes: the next claim by creation time is served (the thief's backend has no
    // endpoints: 503).
    s.remove_manifest("web.yaml");
    expect_curl(&mut s, &format!("http://app.test:{hp}/"), &[], 308, None);
    expect_curl(
        &mut s,
        &format!("https://app.test:{hsp}/"),
        &["-k"],
        503,
        None,
    );
}
