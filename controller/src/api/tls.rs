//! The API server's certificates: a CA made on first start (kept across restarts) and a serving
//! certificate it signs, for localhost, 127.0.0.1, ::1, the host name and every `--tls-san`.
//! Files live in `<data-dir>/tls/` (keys mode 0600). The serving certificate is re-issued when
//! the set of names changes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The CA and serving certificate, in PEM.
pub struct Certificates {
    /// The CA certificate (what clients trust).
    pub ca_pem: String,
    /// The serving certificate chain.
    pub server_cert_pem: String,
    /// The serving key.
    pub server_key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-server-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

/// Why the certificates could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file in the certificates' folder.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Making a key or certificate.
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The serving key file holds no key.
    #[error("no private key in the serving key file")]
    NoKey,
    /// rustls refused the certificate or key.
    #[error("the serving certificate: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Loads or makes the certificates in `dir` for `sans`.
pub fn ensure(dir: &Path, sans: &[String]) -> Result<Certificates, TlsError> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let ca_key_path = dir.join("ca.key");
    let ca_cert_path = dir.join("ca.crt");
    let (ca_key, ca_pem) = if ca_key_path.exists() && ca_cert_path.exists() {
        (
            KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path)?)?,
            std::fs::read_to_string(&ca_cert_path)?,
        )
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        crate::files::write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&ca_cert_path, cert.pem())?;
        (key, cert.pem())
    };
    let mut names: Vec<String> = sans.to_vec();
    names.sort();
    names.dedup();
    let wanted = names.join("\n");
    let sans_path = dir.join("server.sans");
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    if std::fs::read_to_string(&sans_path).ok().as_deref() != Some(wanted.as_str())
        || !cert_path.exists()
        || !key_path.exists()
    {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "skiff-server");
        params.distinguished_name = dn;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let issuer = Issuer::new(ca_params(), &ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        crate::files::write_private(&key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca_pem))?;
        std::fs::write(&sans_path, &wanted)?;
    }
    Ok(Certificates {
        ca_pem,
        server_cert_pem: std::fs::read_to_string(&cert_path)?,
        server_key_pem: std::fs::read_to_string(&key_path)?,
    })
}

/// A rustls server configuration offering HTTP/2 and HTTP/1.1.
pub fn server_config(certs: &Certificates) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain: Vec<_> =
        rustls_pemfile::certs(&mut certs.server_cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = rustls_pemfile::private_key(&mut certs.server_key_pem.as_bytes())?
        .ok_or(TlsError::NoKey)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
