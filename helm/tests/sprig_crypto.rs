//! Sprig's tests whose outputs are random (keys, certificates, AES, `ago`), carried over from
//! github.com/Masterminds/sprig at 989da45d7c082c6ec85cf95f59e23b461cdafe03 (crypto_test.go,
//! date_test.go): the same templates, and the same assertions on the structure of the output
//! (PEM block types, the certificate's subject, CA flag, serial, IP and DNS names), plus what
//! upstream checks implicitly through Go's x509 (validity, the issuer's signature).

use std::collections::BTreeMap;

use base64::Engine as _;
use gotmpl::{MapRef, Value};
use skiff_helm::engine::render_string;
use x509_parser::prelude::*;

fn run(tpl: &str) -> Result<String, String> {
    render_string(tpl, &Value::Map(MapRef::default()), BTreeMap::new(), true)
        .map_err(|e| e.to_string())
}

fn ok(tpl: &str) -> String {
    run(tpl).unwrap_or_else(|e| panic!("{tpl}: {e}"))
}

fn cert_der(out: &str) -> Vec<u8> {
    let block = ::pem::parse(out.trim_start()).expect("a PEM block");
    assert_eq!(block.tag(), "CERTIFICATE");
    block.contents().to_vec()
}

const FAST_KEY_ALGOS: [&str; 2] = ["ecdsa", "ed25519"];

#[test]
fn gen_private_key() {
    // TestGenPrivateKey
    assert!(ok(r#"{{genPrivateKey ""}}"#).contains("RSA PRIVATE KEY"));
    let rsa = ok(r#"{{genPrivateKey "rsa"}}"#);
    assert!(rsa.contains("-----BEGIN RSA PRIVATE KEY-----"));
    {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let k = rsa::RsaPrivateKey::from_pkcs1_pem(&rsa).unwrap();
        assert_eq!(
            k.size() * 8,
            4096,
            "Sprig's genPrivateKey makes 4096-bit RSA keys"
        );
    }
    let ec = ok(r#"{{genPrivateKey "ecdsa"}}"#);
    assert!(ec.contains("-----BEGIN EC PRIVATE KEY-----"));
    p256::SecretKey::from_sec1_pem(&ec).expect("a SEC1 P-256 key, as Go's MarshalECPrivateKey");
    let ed = ok(r#"{{genPrivateKey "ed25519"}}"#);
    let block = ::pem::parse(&ed).unwrap();
    assert_eq!(block.tag(), "PRIVATE KEY");
    assert_eq!(
        block.contents().len(),
        48,
        "PKCS#8 v1 with the 32-byte seed"
    );
    assert_eq!(ok(r#"{{genPrivateKey "bad"}}"#), "Unknown type bad");
    // Upstream also generates DSA; skiff refuses it by name (known difference).
    let e = run(r#"{{genPrivateKey "dsa"}}"#).unwrap_err();
    assert!(e.contains("DSA keys are not supported"), "{e}");
    let b64 = ok(r#"{{genPrivateKey "ecdsa" | b64enc}}"#);
    assert!(base64::engine::general_purpose::STANDARD
        .decode(b64)
        .is_ok());
}

fn common_name<'a>(cert: &'a X509Certificate) -> &'a str {
    let cn = cert.subject().iter_common_name().next().expect("a CN");
    cn.as_str().unwrap()
}

fn check_ca(out: &str, cn: &str) {
    let der = cert_der(out);
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    assert_eq!(common_name(&cert), cn);
    assert!(cert.is_ca(), "CA flag");
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.digital_signature() && ku.key_encipherment());
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86400;
    assert_eq!(days, 365);
    // Self-signed: its own key verifies it.
    cert.verify_signature(None).expect("self-signed");
}

#[test]
fn gen_ca() {
    // TestGenCA / TestGenCAWithKey
    check_ca(
        &ok(r#"{{- $ca := genCA "foo-ca" 365 }}
{{ $ca.Cert }}
"#),
        "foo-ca",
    );
    for algo in FAST_KEY_ALGOS {
        let out = ok(&format!(
            r#"{{{{- $ca := genPrivateKey "{algo}" | genCAWithKey "foo-ca" 365 }}}}
{{{{ $ca.Cert }}}}
"#
        ));
        check_ca(&out, "foo-ca");
    }
    // The key comes back with the certificate, as Sprig's certificate.Key.
    let key = ok(r#"{{ (genCA "k" 1).Key }}"#);
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
}

fn check_leaf(out: &str) -> Vec<u8> {
    let der = cert_der(out);
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    assert_eq!(common_name(&cert), "foo.com");
    assert!(cert.tbs_certificate.serial.bits() > 0, "positive serial");
    assert!(!cert.is_ca());
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    for n in &san.general_names {
        match n {
            GeneralName::IPAddress(b) => {
                ips.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
            }
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            _ => {}
        }
    }
    assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
    assert!(dns.contains(&"bar.com".to_string()) && dns.contains(&"bat.com".to_string()));
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    der
}

#[test]
fn gen_self_signed_cert() {
    // TestGenSelfSignedCert / TestGenSelfSignedCertWithKey
    let call = r#""foo.com" (list "10.0.0.1" "10.0.0.2") (list "bar.com" "bat.com") 365"#;
    let out = ok(&format!(
        "{{{{- $cert := genSelfSignedCert {call} }}}}\n{{{{ $cert.Cert }}}}"
    ));
    check_leaf(&out);
    for algo in FAST_KEY_ALGOS {
        let out = ok(&format!(
            "{{{{- $cert := genPrivateKey \"{algo}\" | genSelfSignedCertWithKey {call} }}}}\n{{{{ $cert.Cert }}}}"
        ));
        let der = check_leaf(&out);
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        cert.verify_signature(None).expect("self-signed");
    }
}

#[test]
fn gen_signed_cert() {
    // TestGenSignedCert / TestGenSignedCertWithKey: the CA's key verifies the certificate.
    let call = r#""foo.com" (list "10.0.0.1" "10.0.0.2") (list "bar.com" "bat.com") 365"#;
    let mut cases = vec![("genCA".to_string(), "genSignedCert".to_string())];
    for ca in FAST_KEY_ALGOS {
        for leaf in FAST_KEY_ALGOS {
            cases.push((
                format!("genPrivateKey \"{ca}\" | genCAWithKey"),
                format!("genPrivateKey \"{leaf}\" | genSignedCertWithKey"),
            ));
        }
    }
    for (gen_ca, gen_signed) in cases {
        let tpl = format!(
            "{{{{- $ca := {gen_ca} \"foo\" 365 }}}}\n{{{{- $cert := {gen_signed} {call} $ca }}}}\n{{{{ $ca.Cert }}}}\n{{{{ $cert.Cert }}}}\n"
        );
        let out = ok(&tpl);
        let blocks = ::pem::parse_many(&out).unwrap();
        assert_eq!(blocks.len(), 2, "{tpl}");
        let ca_der = blocks[0].contents().to_vec();
        let leaf_pem = ::pem::encode(&blocks[1]);
        let leaf_der = check_leaf(&leaf_pem);
        let (_, ca) = parse_x509_certificate(&ca_der).unwrap();
        let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();
        assert_eq!(leaf.issuer(), ca.subject(), "{tpl}");
        leaf.verify_signature(Some(ca.public_key()))
            .unwrap_or_else(|e| panic!("{tpl}: not signed by the CA: {e}"));
    }
}

#[test]
fn build_custom_cert() {
    // TestBuildCustomCert: a CA's own PEMs come back as they are; a bad certificate fails.
    let ca =
        ok(r#"{{ $ca := genCA "example.com" 365 }}{{ $ca.Cert | b64enc }} {{ $ca.Key | b64enc }}"#);
    let (c, k) = ca.split_once(' ').unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let cert = String::from_utf8(b64.decode(c).unwrap()).unwrap();
    let out = ok(&format!(
        "{{{{- $ca := buildCustomCert \"{c}\" \"{k}\"}}}}\n{{{{- $ca.Cert }}}}"
    ));
    assert_eq!(out, cert);
    let bad = b64.encode("fail");
    let e = run(&format!(
        "{{{{- $ca := buildCustomCert \"{bad}\" \"{k}\"}}}}\n{{{{- $ca.Cert }}}}"
    ))
    .unwrap_err();
    assert!(e.contains("unable to decode certificate"), "{e}");
}

#[test]
fn encrypt_decrypt_aes() {
    // TestEncryptDecryptAES (also in sprig-cases.json), and a wrong key fails.
    assert_eq!(
        ok(r#"{{"plaintext" | encryptAES "secretkey" | decryptAES "secretkey"}}"#),
        "plaintext"
    );
    let c1 = ok(r#"{{"plaintext" | encryptAES "secretkey"}}"#);
    let c2 = ok(r#"{{"plaintext" | encryptAES "secretkey"}}"#);
    assert_ne!(c1, c2, "a random IV each time");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&c1)
            .unwrap()
            .len(),
        32
    );
}

#[test]
fn ago() {
    // TestAgo: upstream passes time.Now().Add(-125s); here the same time is made in the
    // template (skiff's data has no Go time values of its own).
    assert_eq!(ok(r#"{{ ago (dateModify "-125s" now) }}"#), "2m5s");
    assert_eq!(ok(r#"{{ ago (dateModify "-9257s" now) }}"#), "2h34m17s");
    assert_eq!(ok(r#"{{ ago (dateModify "5s" now) }}"#), "-5s");
    // TestDateInZone's "no time input" case: now, in UTC.
    let out = ok(r#"{{ dateInZone "2006-01-02" "" "UTC" }}"#);
    assert_eq!(out, jiff::Timestamp::now().strftime("%Y-%m-%d").to_string());
}
