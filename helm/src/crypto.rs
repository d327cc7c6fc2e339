//! Sprig's key, certificate and cipher functions (crypto.go): `genPrivateKey`, `genCA`,
//! `genSelfSignedCert`, `genSignedCert` (and their `WithKey` forms), `buildCustomCert`,
//! `derivePassword`, `encryptAES`/`decryptAES`.
//!
//! Keys are written as Go writes them: RSA as PKCS#1 (`RSA PRIVATE KEY`, the `rsa` crate),
//! ECDSA P-256 as SEC1 (`EC PRIVATE KEY`, the `p256` crate), Ed25519 as PKCS#8 v1
//! (`PRIVATE KEY`). Certificates are built by `rcgen` (signing through `ring`) with the
//! template Sprig uses: the common name as the only subject field, a random 128-bit serial,
//! valid from now for the given days, key usages keyEncipherment + digitalSignature
//! (+ certSign for a CA), extended usages serverAuth + clientAuth, basic constraints.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::PrivatePkcs8KeyDer;

/// A private key as Sprig handles it: the PEM it prints and the PKCS#8 form rcgen signs with.
pub struct Key {
    pub pem: String,
    pkcs8: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

/// What `genPrivateKey` returns for a type Sprig does not know.
pub enum Generated {
    Key(Key),
    Unknown(String),
}

/// Ed25519 PKCS#8 v1 prefix (RFC 8410): the 32-byte seed follows.
const ED25519_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn pem_block(tag: &str, der: Vec<u8>) -> String {
    let p = pem::Pem::new(tag, der);
    pem::encode_config(
        &p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn rsa_key(k: rsa::RsaPrivateKey) -> Result<Key, String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let pkcs1 = k.to_pkcs1_der().map_err(|e| e.to_string())?;
    let pkcs8 = k.to_pkcs8_der().map_err(|e| e.to_string())?;
    Ok(Key {
        pem: pem_block("RSA PRIVATE KEY", pkcs1.as_bytes().to_vec()),
        pkcs8: pkcs8.as_bytes().to_vec(),
        alg: &rcgen::PKCS_RSA_SHA256,
    })
}

fn ec_key(k: p256::SecretKey) -> Result<Key, String> {
    use p256::pkcs8::EncodePrivateKey;
    let sec1 = k.to_sec1_der().map_err(|e| e.to_string())?;
    let pkcs8 = k.to_pkcs8_der().map_err(|e| e.to_string())?;
    Ok(Key {
        pem: pem_block("EC PRIVATE KEY", sec1.to_vec()),
        pkcs8: pkcs8.as_bytes().to_vec(),
        alg: &rcgen::PKCS_ECDSA_P256_SHA256,
    })
}

fn ed_key(seed: &[u8]) -> Key {
    let mut der = ED25519_V1_PREFIX.to_vec();
    der.extend_from_slice(seed);
    Key {
        pem: pem_block("PRIVATE KEY", der.clone()),
        pkcs8: der,
        alg: &rcgen::PKCS_ED25519,
    }
}

/// An RSA key of `bits` bits (Sprig: 4096 for `genPrivateKey`, 2048 for certificates).
pub fn rsa_generate(bits: usize) -> Result<Key, String> {
    let k = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| format!("error generating rsa key: {e}"))?;
    rsa_key(k)
}

/// Sprig's `genPrivateKey`.
pub fn generate(typ: &str) -> Result<Generated, String> {
    Ok(Generated::Key(match typ {
        "" | "rsa" => rsa_generate(4096)?,
        "ecdsa" => ec_key(p256::SecretKey::random(&mut rand::rngs::OsRng))?,
        "ed25519" => {
            let seed: [u8; 32] = rand::random();
            ed_key(&seed)
        }
        "dsa" => {
            return Err(
                "genPrivateKey: DSA keys are not supported by skiff's chart renderer \
                 (DSA is deprecated; use rsa, ecdsa or ed25519)"
                    .into(),
            )
        }
        other => return Ok(Generated::Unknown(format!("Unknown type {other}"))),
    }))
}

/// Sprig's parsePrivateKeyPEM: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`).
pub fn parse_key(text: &str) -> Result<Key, String> {
    let block = pem::parse(text.trim_start()).map_err(|_| "no PEM data in input".to_string())?;
    let der = block.contents();
    match block.tag() {
        "PRIVATE KEY" => {
            use rsa::pkcs8::DecodePrivateKey;
            if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
                return rsa_key(k);
            }
            if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
                return ec_key(k);
            }
            if der.len() == 48 && der[..16] == ED25519_V1_PREFIX {
                return Ok(ed_key(&der[16..]));
            }
            // PKCS#8 v2 (with the public key), as OpenSSL 3 and ring write Ed25519.
            if der.len() > 48 && der[5..12] == ED25519_V1_PREFIX[5..12] {
                return Ok(ed_key(&der[16..48]));
            }
            Err("decoding PEM as PKCS#8: not an RSA, ECDSA P-256 or Ed25519 key".into())
        }
        "RSA PRIVATE KEY" => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            let k = rsa::RsaPrivateKey::from_pkcs1_der(der)
                .map_err(|e| format!("parsing RSA private key from PEM: {e}"))?;
            rsa_key(k)
        }
        "EC PRIVATE KEY" => {
            let k = p256::SecretKey::from_sec1_der(der).map_err(|e| {
                format!("parsing EC private key from PEM (skiff reads P-256 keys): {e}")
            })?;
            ec_key(k)
        }
        "DSA PRIVATE KEY" => Err("DSA keys are not supported by skiff's chart renderer".into()),
        t if t.ends_with(" PRIVATE KEY") => Err(format!("invalid private key type {t}")),
        t => Err(format!("no private key data in PEM block of type {t}")),
    }
}

fn key_pair(k: &Key) -> Result<KeyPair, String> {
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(k.pkcs8.as_slice()), k.alg)
        .map_err(|e| format!("error creating certificate: {e}"))
}

/// What Sprig's certificate functions take besides the key.
pub struct CertSpec<'a> {
    pub cn: &'a str,
    pub ips: &'a [String],
    pub dns: &'a [String],
    pub days: i64,
    pub ca: bool,
}

/// Sprig's getBaseCertTemplate (+ the CA overrides).
fn params(spec: &CertSpec) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, spec.cn);
    p.distinguished_name = dn;
    // A positive 128-bit serial, as rand.Int(2^128).
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now;
    // Go's time arithmetic wraps silently; here an impossible validity is an error, not a
    // panic (x509 dates end at the year 9999 anyway).
    p.not_after = spec
        .days
        .checked_mul(86_400)
        .filter(|s| s.abs() < 10_000 * 366 * 86_400)
        .and_then(|s| now.checked_add(time::Duration::seconds(s)))
        .ok_or_else(|| format!("the validity of {} days is out of range", spec.days))?;
    for d in spec.dns {
        let name = d
            .as_str()
            .try_into()
            .map_err(|_| format!("error processing alternate dns name: {d}"))?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in spec.ips {
        let addr: std::net::IpAddr = ip.parse().map_err(|_| format!("error parsing ip: {ip}"))?;
        p.subject_alt_names.push(SanType::IpAddress(addr));
    }
    p.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    if spec.ca {
        p.key_usages.push(KeyUsagePurpose::KeyCertSign);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
    }
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(p)
}

/// A certificate and its key in PEM, as Sprig's `certificate{Cert, Key}`.
pub struct Certificate {
    pub cert: String,
    pub key: String,
}

/// A self-signed certificate (`genCA`, `genSelfSignedCert`).
pub fn self_signed(spec: &CertSpec, key: &Key) -> Result<Certificate, String> {
    let kp = key_pair(key)?;
    let cert = params(spec)?
        .self_signed(&kp)
        .map_err(|e| format!("error creating certificate: {e}"))?;
    Ok(Certificate {
        cert: cert.pem(),
        key: key.pem.clone(),
    })
}

/// A certificate signed by a CA given as PEM certificate and key (`genSignedCert`).
pub fn signed(
    spec: &CertSpec,
    key: &Key,
    ca_cert: &str,
    ca_key: &str,
) -> Result<Certificate, String> {
    let ca = parse_key(ca_key).map_err(|e| format!("error parsing private key: {e}"))?;
    let ca_kp = key_pair(&ca)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_kp)
        .map_err(|e| format!("error parsing certificate: {e}"))?;
    let kp = key_pair(key)?;
    let cert = params(spec)?
        .signed_by(&kp, &issuer)
        .map_err(|e| format!("error creating certificate: {e}"))?;
    Ok(Certificate {
        cert: cert.pem(),
        key: key.pem.clone(),
    })
}

/// Sprig's `buildCustomCert`: base64 PEM certificate and key, checked.
pub fn custom(b64cert: &str, b64key: &str) -> Result<Certificate, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let cert = b64
        .decode(b64cert)
        .map_err(|_| "unable to decode base64 certificate".to_string())?;
    let key = b64
        .decode(b64key)
        .map_err(|_| "unable to decode base64 private key".to_string())?;
    let cert = String::from_utf8(cert).map_err(|_| "unable to decode certificate".to_string())?;
    let key = String::from_utf8(key).map_err(|_| "unable to decode private key".to_string())?;
    let block = pem::parse(cert.trim_start()).map_err(|_| "unable to decode certificate")?;
    x509_parser::parse_x509_certificate(block.contents())
        .map_err(|e| format!("error parsing certificate: decodedCert.Bytes: {e}"))?;
    parse_key(&key).map_err(|e| format!("error parsing private key: {e}"))?;
    Ok(Certificate { cert, key })
}

/// AES-256-CBC with PKCS#7 padding and a random IV before the ciphertext, base64 (Sprig's
/// `encryptAES`; the password is the key, zero-padded or cut to 32 bytes).
pub fn encrypt_aes(password: &str, plaintext: &str) -> String {
    use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    if plaintext.is_empty() {
        return String::new();
    }
    let key = aes_key(password);
    let iv: [u8; 16] = rand::random();
    let ct = cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    let mut out = iv.to_vec();
    out.extend(ct);
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Sprig's `decryptAES`.
pub fn decrypt_aes(password: &str, crypt64: &str) -> Result<String, String> {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    if crypt64.is_empty() {
        return Ok(String::new());
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(crypt64)
        .map_err(|e| e.to_string())?;
    if data.len() < 32 || data.len() % 16 != 0 {
        return Err("crypto/cipher: input not full blocks".into());
    }
    let (iv, ct) = data.split_at(16);
    let key = aes_key(password);
    let iv: [u8; 16] = iv.try_into().map_err(|_| "bad iv".to_string())?;
    let pt = cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .map_err(|_| "decryptAES: wrong password or corrupt data (bad padding)".to_string())?;
    Ok(String::from_utf8_lossy(&pt).into_owned())
}

fn aes_key(password: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let p = password.as_bytes();
    let n = p.len().min(32);
    key[..n].copy_from_slice(&p[..n]);
    key
}

const PASSWORD_TEMPLATES: &[(&str, &[&str])] = &[
    ("maximum", &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"]),
    (
        "long",
        &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
    ),
    ("medium", &["CvcnoCvc", "CvcCvcno"]),
    ("short", &["Cvcn"]),
    ("basic", &["aaanaaan", "aannaaan", "aaannaaa"]),
    ("pin", &["nnnn"]),
];

fn template_chars(c: u8) -> &'static [u8] {
    match c {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// The Master Password algorithm as Sprig's `derivePassword` (scrypt N=32768 r=8 p=2, then
/// HMAC-SHA256 over the site).
pub fn derive_password(counter: u32, kind: &str, password: &str, user: &str, site: &str) -> String {
    use hmac::Mac;
    let Some((_, templates)) = PASSWORD_TEMPLATES.iter().find(|(k, _)| *k == kind) else {
        return format!("cannot find password template {kind}");
    };
    const SEED: &[u8] = b"com.lyndir.masterpassword";
    let mut salt = SEED.to_vec();
    salt.extend((user.len() as u32).to_be_bytes());
    salt.extend(user.as_bytes());
    let mut key = [0u8; 64];
    let params = match scrypt::Params::new(15, 8, 2, 64) {
        Ok(p) => p,
        Err(e) => return format!("failed to derive password: {e}"),
    };
    if let Err(e) = scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key) {
        return format!("failed to derive password: {e}");
    }
    let mut msg = SEED.to_vec();
    msg.extend((site.len() as u32).to_be_bytes());
    msg.extend(site.as_bytes());
    msg.extend(counter.to_be_bytes());
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return "failed to derive password: bad key".into();
    };
    mac.update(&msg);
    let seed = mac.finalize().into_bytes();
    let temp = templates[seed[0] as usize % templates.len()].as_bytes();
    temp.iter()
        .enumerate()
        .map(|(i, c)| {
            let chars = template_chars(*c);
            chars[seed[i + 1] as usize % chars.len()] as char
        })
        .collect()
}
