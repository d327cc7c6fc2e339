//! Registry credentials: where they come from (registries.yaml, `imagePullSecrets` of type
//! `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`) and the challenge a registry
//! answers with (`WWW-Authenticate: Bearer realm=…,service=…` or `Basic realm=…`).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use super::registries::AuthConfig;

/// Credentials for one registry host.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// A registry token, sent as `Bearer` as it is (docker config's `registrytoken`).
    pub token: Option<String>,
    /// An OAuth2 refresh token, exchanged at the registry's token service for an access token
    /// (docker config's `identitytoken`, registries.yaml's `identity_token`).
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// From registries.yaml's `auth:`.
    pub fn from_config(auth: &AuthConfig) -> Option<Credentials> {
        let (mut username, mut password) = (auth.username.clone(), auth.password.clone());
        if let Some((u, p)) = auth.auth.as_deref().and_then(decode_basic) {
            username = username.or(Some(u));
            password = password.or(Some(p));
        }
        let c = Credentials {
            username,
            password,
            token: None,
            identity_token: auth.identity_token.clone().filter(|t| !t.is_empty()),
        };
        (c.username.is_some() || c.identity_token.is_some()).then_some(c)
    }

    /// `Authorization: Basic …` for these credentials, if they have a user name.
    pub fn basic_header(&self) -> Option<String> {
        let user = self.username.as_deref()?;
        let pass = self.password.as_deref().unwrap_or_default();
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        ))
    }
}

/// Credentials keyed by registry host, as found in pull secrets.
pub type CredentialSet = Vec<(String, Credentials)>;

/// Why a pull secret gives no credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The Secret holds no Docker configuration.
    #[error("secret {secret:?} has neither .dockerconfigjson nor .dockercfg")]
    NoDockerConfig {
        /// The Secret's name.
        secret: String,
    },
    /// The Secret's Docker configuration cannot be read.
    #[error("secret {secret:?}: {source}")]
    InSecret {
        /// The Secret's name.
        secret: String,
        /// What is wrong with its configuration.
        source: Box<AuthError>,
    },
    /// The Docker configuration is not the JSON it should be.
    #[error("invalid docker config JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// A host's `auth` is not base64 of `user:password`.
    #[error("the auth of {host:?} is not base64 of user:password")]
    BadAuth {
        /// The registry host.
        host: String,
    },
}

/// Reads the credentials of `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`) and
/// `kubernetes.io/dockercfg` (`.dockercfg`) Secrets; other Secrets give none. The second value
/// names what could not be read (for the pod's status), if anything.
pub fn credentials_from_secret(secret: &Secret) -> Result<CredentialSet, AuthError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data = secret.data.clone().unwrap_or_default();
    let (bytes, nested) = if let Some(b) = data.get(".dockerconfigjson") {
        (b.0.clone(), true)
    } else if let Some(b) = data.get(".dockercfg") {
        (b.0.clone(), false)
    } else {
        return Err(AuthError::NoDockerConfig { secret: name });
    };
    parse_docker_config(&bytes, nested).map_err(|e| AuthError::InSecret {
        secret: name,
        source: Box::new(e),
    })
}

/// Parses `{"auths": {host: {auth|username|password|identitytoken}}}` (or the legacy form
/// without `auths`).
pub fn parse_docker_config(bytes: &[u8], nested: bool) -> Result<CredentialSet, AuthError> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        auth: Option<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default, alias = "identityToken")]
        identitytoken: Option<String>,
        #[serde(default, alias = "registryToken")]
        registrytoken: Option<String>,
    }
    let auths: BTreeMap<String, Entry> = if nested {
        serde_json::from_slice::<Config>(bytes)
            .map_err(AuthError::InvalidJson)?
            .auths
    } else {
        serde_json::from_slice(bytes).map_err(AuthError::InvalidJson)?
    };
    let mut out = Vec::new();
    for (host, entry) in auths {
        let (mut username, mut password) = (entry.username, entry.password);
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let (u, p) =
                decode_basic(auth).ok_or_else(|| AuthError::BadAuth { host: host.clone() })?;
            username = username.or(Some(u));
            password = password.or(Some(p));
        }
        out.push((
            normalize_host(&host),
            Credentials {
                username,
                password,
                token: entry.registrytoken.filter(|t| !t.is_empty()),
                identity_token: entry.identitytoken.filter(|t| !t.is_empty()),
            },
        ));
    }
    Ok(out)
}

/// The credentials in `set` for `host` (Docker Hub's names are all one registry).
pub fn lookup<'a>(set: &'a CredentialSet, host: &str) -> Option<&'a Credentials> {
    let host = normalize_host(host);
    set.iter().find(|(h, _)| *h == host).map(|(_, c)| c)
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://r.lan:5000/x` → `r.lan:5000`.
pub fn normalize_host(key: &str) -> String {
    let key = key.split_once("://").map(|(_, r)| r).unwrap_or(key);
    let host = key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

fn decode_basic(auth: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Get a token from `realm` for `service` (and `scope`).
    Bearer {
        /// Token endpoint.
        realm: String,
        /// The service parameter.
        service: Option<String>,
        /// The scope the registry asks for, if it says.
        scope: Option<String>,
    },
    /// Send the user name and password.
    Basic,
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// The credentials of a pod's `imagePullSecrets`, read through the cluster. A missing or
/// unreadable Secret is logged and skipped, as kubelet does (the pull may still work).
pub fn pod_credentials(
    cluster: &dyn crate::Cluster,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> CredentialSet {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    for r in refs {
        let name = r.name;
        match cluster.secret(namespace, &name) {
            Some(secret) => match credentials_from_secret(&secret) {
                Ok(set) => out.extend(set),
                Err(e) => tracing::warn!(pod = ?pod.metadata.name, "imagePullSecrets: {e}"),
            },
            None => tracing::debug!(pod = ?pod.metadata.name, secret = %name,
                "imagePullSecrets: secret not found; pulling without it"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/x:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="r""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn docker_config_json() {
        let set = parse_docker_config(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"r.lan:5000":{"username":"a","password":"b"}}}"#,
            true,
        )
        .unwrap();
        let hub = lookup(&set, "registry-1.docker.io").unwrap();
        assert_eq!(hub.username.as_deref(), Some("u"));
        assert_eq!(hub.password.as_deref(), Some("p"));
        assert_eq!(
            lookup(&set, "r.lan:5000").unwrap().username.as_deref(),
            Some("a")
        );
        assert!(lookup(&set, "other").is_none());
        assert!(parse_docker_config(br#"{"auths":{"x":{"auth":"!!"}}}"#, true).is_err());
    }
}
