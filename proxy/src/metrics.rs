//! The proxy's Prometheus metrics: per-host request counters (method × status class), a
//! latency histogram per host, upstream errors per host, TLS handshakes by result and version,
//! and the served certificates' expiry.
//!
//! The request path only adds to atomics registered ahead of time: [`HostStats`] of every
//! Ingress host are made when a routing table is compiled (and kept across table swaps), and
//! requests for a host no rule names count under one label, [`UNKNOWN_HOST`] — the label set
//! is bounded by the Ingresses, never by what clients send in `Host`. No lock, no allocation
//! per request; the text is rendered when scraped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;

use crate::tls::Certificate;

/// The host label of requests whose host matches no Ingress rule (not a valid host name, so it
/// cannot collide with one).
pub const UNKNOWN_HOST: &str = "(unknown)";

/// The `method` label values; any other method counts as `OTHER`.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];

/// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` follows).
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in nanoseconds, for the request path.
const BUCKETS_NS: [u64; 13] = {
    let mut out = [0u64; 13];
    let mut i = 0;
    while i < BUCKETS.len() {
        out[i] = (BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// Why an upstream request failed (the `reason` label).
#[derive(Clone, Copy, Debug)]
pub(crate) enum UpstreamError {
    /// No endpoint could be connected to, or the connection failed (answered 502).
    Error = 0,
    /// No response headers within the response timeout (answered 504).
    Timeout = 1,
}

/// A request's method as an index into [`METHODS`].
pub(crate) fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The counters of one host.
#[derive(Debug, Default)]
pub struct HostStats {
    /// By method (index into [`METHODS`]) and status class 1xx..5xx (index 0..=4).
    requests: [[AtomicU64; 5]; METHODS.len()],
    /// Non-cumulative counts per bucket; the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// The sum of the observed durations, in nanoseconds.
    sum_ns: AtomicU64,
    upstream_errors: [AtomicU64; 2],
}

impl HostStats {
    /// Counts one answered request: `method` (from [`method_index`]), its status and how long
    /// it took to the response headers.
    pub(crate) fn observe(&self, method: usize, status: u16, took: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[method][class].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS_NS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn upstream_error(&self, why: UpstreamError) {
        self.upstream_errors[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Host counters by host label, shared by successive routing tables.
#[derive(Debug, Default)]
pub(crate) struct HostRegistry {
    by_host: Mutex<HashMap<String, Arc<HostStats>>>,
    /// Requests for hosts no rule names.
    pub unknown: Arc<HostStats>,
}

impl HostRegistry {
    /// The counters of `host` (an Ingress rule's host: exact, `*.parent`, or `*` for rules
    /// without a host), made on first use.
    pub fn get(&self, host: &str) -> Arc<HostStats> {
        let mut m = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(host.to_string()).or_default().clone()
    }

    /// Drops the counters of hosts the current table no longer has.
    pub fn retain(&self, live: &HashSet<String>) {
        let mut m = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|k, _| live.contains(k));
    }

    /// Every host's counters, sorted by host, the unknown hosts' last.
    fn snapshot(&self) -> Vec<(String, Arc<HostStats>)> {
        let m = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m.iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.push((UNKNOWN_HOST.to_string(), self.unknown.clone()));
        v
    }
}

/// How a TLS handshake ended (the `result` label).
#[derive(Clone, Copy, Debug)]
pub enum Handshake {
    /// Completed with TLS 1.3.
    Tls13 = 0,
    /// Completed with TLS 1.2.
    Tls12 = 1,
    /// Refused or broken off by either side.
    Failed = 2,
    /// Not completed within the handshake timeout.
    TimedOut = 3,
}

impl From<crate::serve::HandshakeFailure> for Handshake {
    fn from(f: crate::serve::HandshakeFailure) -> Self {
        match f {
            crate::serve::HandshakeFailure::Error => Handshake::Failed,
            crate::serve::HandshakeFailure::Timeout => Handshake::TimedOut,
        }
    }
}

const HANDSHAKE_LABELS: [(&str, &str); 4] = [
    ("ok", "TLSv1.3"),
    ("ok", "TLSv1.2"),
    ("error", "unknown"),
    ("timeout", "unknown"),
];

/// TLS handshakes of the HTTPS listener.
#[derive(Debug, Default)]
pub(crate) struct TlsStats {
    by_result: [AtomicU64; 4],
}

impl TlsStats {
    pub fn count(&self, h: Handshake) {
        self.by_result[h as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the proxy's metrics to `out` (Prometheus text format 0.0.4).
pub(crate) fn render(
    out: &mut String,
    hosts: &HostRegistry,
    tls: &TlsStats,
    certs: &HashMap<String, Certificate>,
) {
    let hosts = hosts.snapshot();
    let _ = writeln!(out, "# HELP skiff_proxy_requests_total Requests the ingress proxy answered, by Ingress host, method and status class.\n# TYPE skiff_proxy_requests_total counter");
    for (host, s) in &hosts {
        let host = label_value(host);
        for (m, by_class) in METHODS.iter().zip(&s.requests) {
            for (i, n) in by_class.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "skiff_proxy_requests_total{{host=\"{host}\",method=\"{m}\",code=\"{}xx\"}} {n}",
                        i + 1
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "# HELP skiff_proxy_request_duration_seconds Time from a request's arrival to its response headers, by Ingress host.\n# TYPE skiff_proxy_request_duration_seconds histogram");
    for (host, s) in &hosts {
        let host = label_value(host);
        let mut cumulative = 0u64;
        for (i, b) in s.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "skiff_proxy_request_duration_seconds_bucket{{host=\"{host}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "skiff_proxy_request_duration_seconds_sum{{host=\"{host}\"}} {}\nskiff_proxy_request_duration_seconds_count{{host=\"{host}\"}} {cumulative}",
            s.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
    }
    let _ = writeln!(out, "# HELP skiff_proxy_upstream_errors_total Requests whose backend failed (error: 502, timeout: 504), by Ingress host.\n# TYPE skiff_proxy_upstream_errors_total counter");
    for (host, s) in &hosts {
        let host = label_value(host);
        for (reason, n) in ["error", "timeout"].iter().zip(&s.upstream_errors) {
            let _ = writeln!(
                out,
                "skiff_proxy_upstream_errors_total{{host=\"{host}\",reason=\"{reason}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(out, "# HELP skiff_proxy_tls_handshakes_total TLS handshakes on the HTTPS port, by result and protocol version.\n# TYPE skiff_proxy_tls_handshakes_total counter");
    for ((result, version), n) in HANDSHAKE_LABELS.iter().zip(&tls.by_result) {
        let _ = writeln!(
            out,
            "skiff_proxy_tls_handshakes_total{{result=\"{result}\",version=\"{version}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(out, "# HELP skiff_certificate_expiry_timestamp_seconds When the certificate served for an Ingress host expires (its notAfter, Unix time), with its issuer's common name.\n# TYPE skiff_certificate_expiry_timestamp_seconds gauge");
    let by_host: BTreeMap<&String, &Certificate> = certs.iter().collect();
    for (host, cert) in by_host {
        let Some((issuer, not_after)) = cert.cert.first().and_then(|der| expiry(der)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "skiff_certificate_expiry_timestamp_seconds{{host=\"{}\",issuer=\"{}\"}} {not_after}",
            label_value(host),
            label_value(&issuer)
        );
    }
}

/// A certificate's issuer (its common name, else the whole name) and notAfter (Unix time).
pub fn expiry(der: &[u8]) -> Option<(String, i64)> {
    let (_, x509) = x509_parser::parse_x509_certificate(der).ok()?;
    let issuer = x509
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok().map(String::from))
        .unwrap_or_else(|| x509.issuer().to_string());
    Some((issuer, x509.validity().not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
    }

    #[test]
    fn counts_buckets_and_bounded_hosts() {
        let reg = HostRegistry::default();
        let app = reg.get("app.test");
        app.observe(method_index(&Method::GET), 200, Duration::from_micros(700));
        app.observe(method_index(&Method::GET), 204, Duration::from_millis(30));
        app.observe(
            method_index(&Method::from_bytes(b"PROPFIND").unwrap()),
            404,
            Duration::from_secs(20),
        );
        app.upstream_error(UpstreamError::Timeout);
        reg.unknown
            .observe(method_index(&Method::POST), 404, Duration::ZERO);
        let tls = TlsStats::default();
        tls.count(Handshake::Tls13);
        tls.count(Handshake::Failed);
        let (cert_pem, key_pem) = crate::tls::self_signed_pem(&["app.test".into()]).unwrap();
        let cert =
            crate::tls::certificate_from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        let certs = HashMap::from([("app.test".to_string(), cert)]);
        let mut out = String::new();
        render(&mut out, &reg, &tls, &certs);

        let get = |p: &str| line(&out, p).unwrap_or_else(|| panic!("no {p} in\n{out}"));
        assert_eq!(
            get("skiff_proxy_requests_total{host=\"app.test\",method=\"GET\",code=\"2xx\"}"),
            "2"
        );
        assert_eq!(
            get("skiff_proxy_requests_total{host=\"app.test\",method=\"OTHER\",code=\"4xx\"}"),
            "1"
        );
        assert_eq!(
            get("skiff_proxy_requests_total{host=\"(unknown)\",method=\"POST\",code=\"4xx\"}"),
            "1"
        );
        // Zero series are left out.
        assert!(line(
            &out,
            "skiff_proxy_requests_total{host=\"app.test\",method=\"GET\",code=\"5xx\"}"
        )
        .is_none());
        assert_eq!(
            get("skiff_proxy_request_duration_seconds_bucket{host=\"app.test\",le=\"0.001\"}"),
            "1"
        );
        assert_eq!(
            get("skiff_proxy_request_duration_seconds_bucket{host=\"app.test\",le=\"0.025\"}"),
            "1"
        );
        assert_eq!(
            get("skiff_proxy_request_duration_seconds_bucket{host=\"app.test\",le=\"0.05\"}"),
            "2"
        );
        assert_eq!(
            get("skiff_proxy_request_duration_seconds_bucket{host=\"app.test\",le=\"10\"}"),
            "2"
        );
        assert_eq!(
            get("skiff_proxy_request_duration_seconds_bucket{host=\"app.test\",le=\"+Inf\"}"),
            "3"
        );
        assert_eq!(
            get("skiff_proxy_request_duration_seconds_count{host=\"app.test\"}"),
            "3"
        );
        assert_eq!(
            get("skiff_proxy_request_duration_seconds_sum{host=\"app.test\"}"),
            "20.0307"
        );
        assert_eq!(
            get("skiff_proxy_upstream_errors_total{host=\"app.test\",reason=\"timeout\"}"),
            "1"
        );
        assert_eq!(
            get("skiff_proxy_tls_handshakes_total{result=\"ok\",version=\"TLSv1.3\"}"),
            "1"
        );
        assert_eq!(
            get("skiff_proxy_tls_handshakes_total{result=\"error\",version=\"unknown\"}"),
            "1"
        );
        let expiry: i64 = get("skiff_certificate_expiry_timestamp_seconds{host=\"app.test\",issuer=\"skiff self-signed (certificate pending)\"}").parse().unwrap();
        let in_90_days = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 90 * 86400;
        assert!((expiry - in_90_days).abs() < 60, "{expiry}");

        // Hosts gone from the table lose their counters; the unknown label stays.
        reg.retain(&HashSet::new());
        let mut out = String::new();
        render(&mut out, &reg, &tls, &HashMap::new());
        assert!(!out.contains("app.test"), "{out}");
        assert!(out.contains("host=\"(unknown)\""), "{out}");
    }
}
