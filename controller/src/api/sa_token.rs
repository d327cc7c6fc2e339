//! ServiceAccount tokens: JWTs as kube-apiserver issues them (ES256, signed by a key made on
//! first start in `<data-dir>/tls/service-account.key`, mode 0600), bound to a pod. A token
//! authenticates as `system:serviceaccount:<ns>:<name>` only while its ServiceAccount and
//! (if bound) its pod still exist with the uids it names: deleting either invalidates it.
//!
//! Lifetime: kubelet asks for 3607 s; like kube-apiserver with its default
//! `--service-account-extend-token-expiration`, such a token is valid for a year and carries
//! `warnafter` at the asked time (clients keep working while kubelet would rotate it; the pod
//! binding is what ends it).

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::serviceaccount::KUBELET_TOKEN_SECONDS;

/// The issuer and audience of skiff's tokens (kube-apiserver's default).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// How long a kubelet-style token is extended to (kube-apiserver's one year).
const EXTENDED_SECONDS: i64 = 365 * 24 * 60 * 60;

/// The `kubernetes.io` claim: what the token is bound to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bound {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: Ref,
    /// The pod, for a token bound to one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pod: Option<Ref>,
    /// When kubelet would have rotated the token (an extended one).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warnafter: Option<i64>,
}

/// A name and uid.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ref {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// The claims of a token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Issuer.
    pub iss: String,
    /// Unique id.
    pub jti: String,
    /// `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// The binding.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Bound,
}

/// Why the signing key could not be loaded or made, or a token not signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file.
    #[error("the service account key: {0}")]
    Io(#[from] std::io::Error),
    /// Making or reading the key.
    #[error("the service account key: {0}")]
    Key(#[from] rcgen::Error),
    /// Signing.
    #[error("signing a service account token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// The object to bind to has no uid or name.
    #[error("cannot issue a token for {0}: it has no name or uid")]
    Unbindable(String),
}

/// Issues and verifies tokens.
pub struct Issuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

fn reference(obj: &Value) -> Result<Ref, TokenError> {
    let m = &obj["metadata"];
    match (m["name"].as_str(), m["uid"].as_str()) {
        (Some(name), Some(uid)) => Ok(Ref {
            name: name.into(),
            uid: uid.into(),
        }),
        _ => Err(TokenError::Unbindable(format!(
            "{} {}",
            obj["kind"], m["name"]
        ))),
    }
}

impl Issuer {
    /// Loads the key from `<tls_dir>/service-account.key`, making it on first start.
    pub fn open(tls_dir: &Path) -> Result<Self, TokenError> {
        std::fs::create_dir_all(tls_dir)?;
        let path = tls_dir.join("service-account.key");
        let key = if path.exists() {
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(&path)?)?
        } else {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            crate::files::write_private(&path, key.serialize_pem().as_bytes())?;
            key
        };
        Ok(Issuer {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
        })
    }

    /// A token for `sa`, bound to `pod` if given, valid for `seconds` (kubelet's 3607 is
    /// extended to a year, as kube-apiserver does).
    pub fn issue(
        &self,
        sa: &Value,
        pod: Option<&Value>,
        seconds: i64,
        now: i64,
    ) -> Result<(String, Claims), TokenError> {
        let account = reference(sa)?;
        let namespace = sa["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let extended = pod.is_some() && seconds == KUBELET_TOKEN_SECONDS;
        let claims = Claims {
            aud: vec![ISSUER.into()],
            exp: now + if extended { EXTENDED_SECONDS } else { seconds },
            iat: now,
            nbf: now,
            iss: ISSUER.into(),
            jti: uuid(),
            sub: format!("system:serviceaccount:{namespace}:{}", account.name),
            kubernetes: Bound {
                namespace,
                serviceaccount: account,
                pod: pod.map(reference).transpose()?,
                warnafter: extended.then_some(now + seconds),
            },
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// The claims of a token this issuer signed, unexpired; `None` otherwise. (Whether its
    /// ServiceAccount and pod still exist is the caller's check.)
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[ISSUER]);
        v.set_issuer(&[ISSUER]);
        v.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Whether a token's binding still holds: its ServiceAccount (and pod) exist with its uids.
pub fn still_bound(claims: &Claims, store: &crate::model::store::Store) -> bool {
    use crate::model::store::ObjectKey;
    let b = &claims.kubernetes;
    let same = |kind: &str, r: &Ref| {
        store
            .get(&ObjectKey::new(kind, &b.namespace, &r.name))
            .is_some_and(|o| o["metadata"]["uid"] == r.uid.as_str())
    };
    same("ServiceAccount", &b.serviceaccount) && b.pod.as_ref().is_none_or(|p| same("Pod", p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_verify_only_with_their_key_and_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = Issuer::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("service-account.key")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let sa = json!({"kind":"ServiceAccount","metadata":{"name":"robot","namespace":"ns","uid":"u1"}});
        let pod = json!({"kind":"Pod","metadata":{"name":"p","namespace":"ns","uid":"u2"}});
        let now = jiff::Timestamp::now().as_second();
        let (token, claims) = issuer.issue(&sa, Some(&pod), 3607, now).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:ns:robot");
        assert_eq!(claims.exp - now, EXTENDED_SECONDS);
        assert_eq!(claims.kubernetes.warnafter, Some(now + 3607));
        let back = issuer.verify(&token).unwrap();
        assert_eq!(back.kubernetes, claims.kubernetes);
        // The same key after a restart; another key refuses it.
        assert!(Issuer::open(dir.path()).unwrap().verify(&token).is_some());
        let other_dir = tempfile::tempdir().unwrap();
        let other = Issuer::open(other_dir.path()).unwrap();
        assert!(other.verify(&token).is_none());
        // Expired.
        let (old, _) = issuer.issue(&sa, None, 600, now - 700).unwrap();
        assert!(issuer.verify(&old).is_none());
        // Another account's claims under this token's signature.
        let robot2 = json!({"kind":"ServiceAccount","metadata":{"name":"admin","namespace":"ns","uid":"u1"}});
        let (forged, _) = other.issue(&robot2, Some(&pod), 3607, now).unwrap();
        let (f, t): (Vec<&str>, Vec<&str>) =
            (forged.split('.').collect(), token.split('.').collect());
        assert!(issuer
            .verify(&format!("{}.{}.{}", f[0], f[1], t[2]))
            .is_none());
    }
}
