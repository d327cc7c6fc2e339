//! The HTTP client a pull uses (skiff's own rustls configuration per endpoint: CA roots,
//! client certificates, `insecure_skip_verify`) and the registry's answers as messages.

use std::sync::Arc;

use super::*;

/// "404 Not Found: MANIFEST_UNKNOWN: manifest unknown" — the registry's own words.
pub(super) fn status_message(status: reqwest::StatusCode, body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let detail = match serde_json::from_str::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.trim().chars().take(300).collect(),
    };
    if detail.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {detail}")
    }
}

/// A transport error with its causes ("error sending request…: connection refused").
pub fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// Where a pull's connections may go: nowhere on the node itself or its link (loopback,
/// link-local, unspecified — see `registries::is_internal_ip`) unless registries.yaml names
/// that host. Checked on every redirect (a registry's blob redirect, or its token realm, to
/// `http://127.0.0.1:2375/…` or `169.254.169.254`) and on every name resolved (a registry
/// name whose DNS answers 127.0.0.1), so neither a hostile registry nor a pod's image name
/// makes the node connect to its own services.
#[derive(Clone, Debug, Default)]
pub(super) struct Guard {
    /// `host[:port]`, lower case, that registries.yaml names.
    named: Arc<std::collections::BTreeSet<String>>,
    /// Everything allowed: the command line's own requests (`skiff chart template`), which
    /// act for the user who typed them, not for whoever wrote an object.
    open: bool,
}

impl Guard {
    pub(super) fn new(registries: &RegistriesConfig) -> Guard {
        Guard {
            named: Arc::new(registries.named_hosts()),
            open: false,
        }
    }

    pub(super) fn open() -> Guard {
        Guard {
            named: Arc::default(),
            open: true,
        }
    }

    /// Whether the name (no port) is one registries.yaml names on some port.
    fn names(&self, name: &str) -> bool {
        self.named
            .iter()
            .any(|h| crate::image::registries::host_name(h).eq_ignore_ascii_case(name))
    }

    /// Refuses a URL whose host is the node itself, unless registries.yaml names it.
    pub(super) fn check(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        if self.open {
            return Ok(());
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let authority = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        if crate::image::registries::is_node_internal(&authority)
            && !self.named.contains(&authority)
            && !self
                .named
                .contains(host.trim_start_matches('[').trim_end_matches(']'))
        {
            return Err(format!(
                "refused to connect to {authority}: it is the node itself (a loopback or \
                 link-local address) and registries.yaml does not name it"
            ));
        }
        Ok(())
    }
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let name = name.as_str().to_owned();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if guard.open || guard.names(&name) {
                return Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs);
            }
            let outside: Vec<std::net::SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !crate::image::registries::is_internal_ip(a.ip()))
                .collect();
            if outside.is_empty() && !found.is_empty() {
                return Err(format!(
                    "{name} resolves only to the node itself ({}); registries.yaml does not name it",
                    found[0].ip()
                )
                .into());
            }
            Ok(Box::new(outside.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks a URL against the guard before it is requested: why not, if it may not be.
pub type UrlCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// An HTTP client as a pull has it — `tls` applied, the same timeouts and redirect policy —
/// for other downloads from the same kind of servers (chart repositories). Unless
/// `allow_node_internal`, its connections stay off the node itself (loopback, link-local)
/// except to hosts registries.yaml names; the URL the caller starts from must be checked
/// with the returned function (a literal address is never resolved, so only that check
/// sees it).
#[allow(clippy::type_complexity)]
pub fn client(
    tls: &TlsConfig,
    registries: &RegistriesConfig,
    allow_node_internal: bool,
) -> Result<
    (
        reqwest::Client,
        Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>,
    ),
    String,
> {
    let guard = if allow_node_internal {
        Guard::open()
    } else {
        Guard::new(registries)
    };
    let client = http_client(tls, &guard)?;
    Ok((client, Arc::new(move |url: &str| guard.check(url))))
}

/// An HTTP client that trusts the system's roots plus `tls.ca_file`, presents the client
/// certificate if one is configured, or verifies nothing when `insecure_skip_verify` says so;
/// its connections stay where `guard` allows.
pub(super) fn http_client(tls: &TlsConfig, guard: &Guard) -> Result<reqwest::Client, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for bundle in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ] {
            if let Ok(certs) = CertificateDer::pem_file_iter(bundle) {
                roots.add_parsable_certificates(certs.flatten());
                break;
            }
        }
        if let Some(pem) = &tls.ca_pem {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the CA certificates given (PEM): {e}"))?;
            if certs.is_empty() {
                return Err("the CA certificates given hold no PEM certificate".into());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA certificates given: {e}"))?;
            }
        }
        if let Some(ca) = &tls.ca_file {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("ca_file {} holds no certificate", ca.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cert_file {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let redirects = guard.clone();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .dns_resolver(Arc::new(guard.clone()))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if let Err(e) = redirects.check(attempt.url().as_str()) {
                attempt.error(e)
            } else {
                attempt.follow()
            }
        }))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// `insecure_skip_verify: true`: accepts any server certificate (signatures are still checked,
/// so the TLS session itself is sound).
#[derive(Debug)]
pub(super) struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
