//! TLS: the per-SNI certificate resolver (exact name, then `*.parent`, then a default
//! self-signed certificate so unknown names still get a handshake and a 404), TLS-ALPN-01
//! challenge certificates (RFC 8737) chosen when the client offers only `acme-tls/1`, and helpers
//! to build certificates from PEM or self-signed.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 validation.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The PEM held no certificate.
    #[error("no certificate in the PEM data")]
    NoCertificate,
    /// The PEM held no private key.
    #[error("no private key in the PEM data")]
    NoKey,
    /// Unreadable PEM.
    #[error("invalid PEM: {0}")]
    Pem(std::io::Error),
    /// A key rustls cannot sign with, or a key that does not match the certificate.
    #[error("{0}")]
    Key(String),
    /// Generating a certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain and its key, ready to serve.
pub type Certificate = Arc<CertifiedKey>;

/// Builds a servable certificate from PEM (the chain, leaf first; a PKCS#8, PKCS#1 or SEC1 key).
pub fn certificate_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Certificate, CertError> {
    let chain: Vec<_> = rustls_pemfile::certs(&mut &*cert_pem)
        .collect::<Result<_, _>>()
        .map_err(CertError::Pem)?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key = rustls_pemfile::private_key(&mut &*key_pem)
        .map_err(CertError::Pem)?
        .ok_or(CertError::NoKey)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| CertError::Key(e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(CertError::Key(format!(
                "the key does not match the certificate: {e}"
            )))
        }
    }
    Ok(Arc::new(ck))
}

/// A self-signed ECDSA P-256 certificate for `names` (valid 90 days), as (cert PEM, key PEM).
pub fn self_signed_pem(names: &[String]) -> Result<(String, String), CertError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        "skiff self-signed (certificate pending)",
    );
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(90 * 86400)).into();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A self-signed certificate for `names`, ready to serve.
pub fn self_signed(names: &[String]) -> Result<Certificate, CertError> {
    let (c, k) = self_signed_pem(names)?;
    certificate_from_pem(c.as_bytes(), k.as_bytes())
}

/// The TLS-ALPN-01 validation certificate for `name`: self-signed, with the critical
/// `acmeIdentifier` extension holding SHA-256 of the key authorization (RFC 8737).
pub fn tls_alpn01_certificate(
    name: &str,
    key_auth_sha256: &[u8],
) -> Result<Certificate, CertError> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(key_auth_sha256)];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    // Not through `certificate_from_pem`: its key check parses the certificate with webpki,
    // which refuses the critical acmeIdentifier extension.
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| CertError::Key(e.to_string()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| CertError::Key(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// The certificates served, by name (`app.example.com` or `*.example.com`).
#[derive(Debug)]
pub(crate) struct CertTable {
    pub by_name: HashMap<String, Certificate>,
}

#[derive(Debug)]
pub(crate) struct Resolver {
    pub certs: ArcSwap<CertTable>,
    pub alpn01: ArcSwap<HashMap<String, Certificate>>,
    pub default: Certificate,
}

impl Resolver {
    fn lookup(&self, name: &str) -> Option<Certificate> {
        let t = self.certs.load();
        if let Some(c) = t.by_name.get(name) {
            return Some(c.clone());
        }
        let (_, parent) = name.split_once('.')?;
        // `*.parent`, looked up without building the string when no wildcard exists.
        t.by_name
            .iter()
            .find(|(k, _)| k.strip_prefix("*.") == Some(parent))
            .map(|(_, c)| c.clone())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(|n| {
            if n.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Owned(n.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(n)
            }
        });
        let acme = hello
            .alpn()
            .is_some_and(|mut protos| protos.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only a validation certificate: never answer acme-tls/1 with a real one.
            return name.and_then(|n| self.alpn01.load().get(&*n).cloned());
        }
        name.and_then(|n| self.lookup(&n))
            .or_else(|| Some(self.default.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip_and_mismatched_key() {
        let (c1, k1) = self_signed_pem(&["a.test".into()]).unwrap();
        let (_, k2) = self_signed_pem(&["b.test".into()]).unwrap();
        certificate_from_pem(c1.as_bytes(), k1.as_bytes()).unwrap();
        assert!(certificate_from_pem(c1.as_bytes(), k2.as_bytes()).is_err());
        assert!(matches!(
            certificate_from_pem(b"", k1.as_bytes()),
            Err(CertError::NoCertificate)
        ));
        tls_alpn01_certificate("a.test", &[0u8; 32]).unwrap();
    }
}
