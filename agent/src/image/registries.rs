//! `registries.yaml` in k3s's format: per registry, mirrors (endpoints tried in order, with
//! repository rewrites) and per endpoint host, credentials and TLS settings.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["https://mirror.lan:5000", "http://10.0.0.2:5000"]
//!     rewrite:
//!       "^library/(.*)": "dockerhub/$1"
//!   "*":                               # any registry without its own entry
//!     endpoint: ["https://cache.lan"]
//! configs:
//!   "mirror.lan:5000":
//!     auth: {username: u, password: p}  # or auth: <base64 user:pass>, or identity_token
//!     tls: {ca_file: /etc/ssl/lan-ca.pem, cert_file: c.pem, key_file: k.pem, insecure_skip_verify: false}
//! ```
//!
//! As in k3s, a registry's mirror endpoints are tried in order, then the registry itself (its
//! default endpoint, over HTTPS; Docker Hub is `registry-1.docker.io`). Rewrites apply to the
//! mirror endpoints only. An endpoint's scheme decides plain HTTP or HTTPS. Unknown keys are
//! refused by name, like everything else skiff reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ImageError;
use super::reference::Reference;

/// The parsed file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Registry host (or `"*"`) → its mirrors.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Endpoint host → credentials and TLS.
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
    /// Only mirrors are used, never a registry's own endpoint — except registries on the
    /// loopback interface (`--disable-default-registry-endpoint`, as k3s has it: for
    /// air-gapped hosts, and for tests that must never reach outside the machine).
    #[serde(skip)]
    pub default_endpoint_disabled: bool,
}

/// Mirrors of one registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Endpoint URLs (`https://host[:port]`, `http://host[:port]`, or `host[:port]` for HTTPS).
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Regular expression on the repository path → replacement (`$1`…), for mirror endpoints.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// Credentials and TLS for one endpoint host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Credentials as k3s spells them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name (Basic, or for a token service).
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: Option<String>,
    /// A token sent as a Bearer token.
    #[serde(default)]
    pub identity_token: Option<String>,
}

/// TLS settings for one endpoint host.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM) to trust.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Extra CA certificates (PEM) given by the caller, not the file (a HelmChart's
    /// `repoCA`); trusted as `ca_file` is.
    #[serde(skip)]
    pub ca_pem: Option<Vec<u8>>,
}

/// One place to try for a reference, with everything needed to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The repository path on this endpoint (rewritten for mirrors).
    pub repository: String,
    /// Credentials from the configuration, if any.
    pub auth: Option<AuthConfig>,
    /// TLS settings from the configuration.
    pub tls: TlsConfig,
    /// True for the registry's own endpoint (not a mirror).
    pub is_default: bool,
}

impl Endpoint {
    /// `scheme://host`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

/// What is wrong with a registries configuration.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The text is not YAML of the expected shape.
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A mirror endpoint is not a URL skiff can use.
    #[error("mirrors.{registry:?}.endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The mirrored registry.
        registry: String,
        /// The endpoint as written.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A rewrite pattern is not a valid regular expression.
    #[error("mirrors.{registry:?}.rewrite {pattern:?}: {source}")]
    Rewrite {
        /// The mirrored registry.
        registry: String,
        /// The pattern as written.
        pattern: String,
        /// Why it does not compile.
        source: regex::Error,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("configs.{host:?}.tls: cert_file and key_file go together")]
    CertWithoutKey {
        /// The registry host.
        host: String,
    },
}

impl RegistriesConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|reason| ImageError::RegistriesConfig {
                path: path.to_owned(),
                reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ImageError::io("read", path, e)),
        }
    }

    /// Parses and checks the YAML text (endpoints and rewrite expressions).
    pub fn parse(text: &str) -> Result<Self, RegistriesError> {
        let config: RegistriesConfig =
            serde_yaml_ng::from_str::<Option<RegistriesConfig>>(text)?.unwrap_or_default();
        for (registry, mirror) in &config.mirrors {
            for endpoint in &mirror.endpoint {
                parse_endpoint(endpoint).map_err(|reason| RegistriesError::Endpoint {
                    registry: registry.clone(),
                    endpoint: endpoint.clone(),
                    reason,
                })?;
            }
            for pattern in mirror.rewrite.keys() {
                regex::Regex::new(pattern).map_err(|source| RegistriesError::Rewrite {
                    registry: registry.clone(),
                    pattern: pattern.clone(),
                    source,
                })?;
            }
        }
        for (host, c) in &config.configs {
            if let Some(tls) = &c.tls {
                if tls.cert_file.is_some() != tls.key_file.is_some() {
                    return Err(RegistriesError::CertWithoutKey { host: host.clone() });
                }
            }
        }
        Ok(config)
    }

    /// The endpoints to try for `reference`, in order: its mirrors, then the registry itself.
    pub fn endpoints(&self, reference: &Reference) -> Vec<Endpoint> {
        self.endpoints_for(reference, true)
    }

    /// [`Self::endpoints`], with the registry's own endpoint left out when it is the node
    /// itself and this file does not name it only if `refuse_node_internal` (the command
    /// line's own requests do not refuse it).
    pub fn endpoints_for(
        &self,
        reference: &Reference,
        refuse_node_internal: bool,
    ) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let mirror = self
            .mirrors
            .get(&reference.domain)
            .or_else(|| self.mirrors.get("*"));
        if let Some(mirror) = mirror {
            for url in &mirror.endpoint {
                let Ok((scheme, host)) = parse_endpoint(url) else {
                    continue;
                };
                let repository = rewrite(&mirror.rewrite, &reference.path);
                let is_default = host == default_host(&reference.domain);
                out.push(self.endpoint(scheme, host, repository, &reference.domain, is_default));
            }
        }
        let host = default_host(&reference.domain);
        if self.default_endpoint_disabled && !is_loopback(&host) {
            return out;
        }
        if refuse_node_internal && self.refusal(reference).is_some() {
            return out;
        }
        if !out.iter().any(|e| e.is_default) {
            out.push(self.endpoint(
                "https".into(),
                host.clone(),
                reference.path.clone(),
                &reference.domain,
                true,
            ));
            // Like containerd: a registry on the loopback interface may speak plain HTTP.
            if is_loopback(&host) {
                out.push(self.endpoint(
                    "http".into(),
                    host,
                    reference.path.clone(),
                    &reference.domain,
                    true,
                ));
            }
        }
        out
    }

    /// Every host (`host[:port]`, lower case) this file names: registries with mirrors, their
    /// endpoints, and hosts with a config.
    pub fn named_hosts(&self) -> std::collections::BTreeSet<String> {
        let mut hosts: std::collections::BTreeSet<String> = self
            .mirrors
            .keys()
            .chain(self.configs.keys())
            .filter(|h| *h != "*")
            .map(|h| h.to_ascii_lowercase())
            .collect();
        for mirror in self.mirrors.values() {
            for url in &mirror.endpoint {
                if let Ok((_, host)) = parse_endpoint(url) {
                    hosts.insert(host.to_ascii_lowercase());
                }
            }
        }
        hosts
    }

    /// Why the registry of `reference` is not pulled from, if it is not: it is the node itself
    /// (a loopback or link-local address) and this file does not name it. Otherwise any pod's
    /// image (`127.0.0.1:2375/x`, `169.254.169.254/latest`) would make the node connect to
    /// its own services, or a cloud's metadata service, for whoever wrote the pod.
    pub fn refusal(&self, reference: &Reference) -> Option<String> {
        let host = default_host(&reference.domain).to_ascii_lowercase();
        (is_node_internal(&host) && !self.named_hosts().contains(&host)).then(|| {
            format!(
                "registry {host} is the node itself (a loopback or link-local address): skiff \
                 pulls from such a registry only when registries.yaml names it (under mirrors \
                 or configs)"
            )
        })
    }

    fn endpoint(
        &self,
        scheme: String,
        host: String,
        repository: String,
        registry: &str,
        is_default: bool,
    ) -> Endpoint {
        let config = self
            .configs
            .get(&host)
            .or_else(|| self.configs.get(registry))
            .cloned()
            .unwrap_or_default();
        Endpoint {
            scheme,
            host,
            repository,
            auth: config.auth,
            tls: config.tls.unwrap_or_default(),
            is_default,
        }
    }
}

/// The host the registry `domain` is served from.
fn default_host(domain: &str) -> String {
    if domain == "docker.io" {
        "registry-1.docker.io".into()
    } else {
        domain.into()
    }
}

/// The name of `host[:port]` (`[v6]:port` too), without the port and brackets.
pub fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            // More than one colon: a bare IPv6 address.
            Some((h, _)) if !h.contains(':') => h,
            _ => host,
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host_name(host);
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `ip` is the node itself or its link: loopback, link-local (where cloud metadata
/// services answer), unspecified — IPv4-mapped forms included.
pub fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_ip(IpAddr::V4(v4));
            }
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Whether `host[:port]` names the node itself or its link (`localhost`, `*.localhost`, an
/// address [`is_internal_ip`] takes). Names resolving there are caught when they are resolved
/// (`pull::http::Guard`).
pub fn is_node_internal(host: &str) -> bool {
    let name = host_name(host).to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(is_internal_ip)
}

/// `scheme://host[:port][/v2]` → (scheme, host); no scheme means HTTPS.
fn parse_endpoint(url: &str) -> Result<(String, String), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, rest)) => (s.to_ascii_lowercase(), rest),
        None => ("https".to_owned(), url),
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is neither http nor https"));
    }
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    let path = path.trim_end_matches('/');
    if !path.is_empty() && path != "v2" {
        return Err(format!(
            "a path ({path:?}) in an endpoint is not supported by skiff"
        ));
    }
    Ok((scheme, host.to_owned()))
}

/// Applies the first rewrite (in key order) whose expression matches `path`.
fn rewrite(rules: &BTreeMap<String, String>, path: &str) -> String {
    for (pattern, replacement) in rules {
        if let Ok(re) = regex::Regex::new(pattern) {
            if re.is_match(path) {
                return re.replace(path, replacement.as_str()).into_owned();
            }
        }
    }
    path.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_rewrites_and_defaults() {
        let config = RegistriesConfig::parse(
            r#"
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000", "mirror.lan"]
    rewrite:
      "^library/(.*)": "hub/$1"
  "*":
    endpoint: ["https://cache.lan:8443/v2"]
configs:
  "127.0.0.1:5000":
    auth: {username: u, password: p}
  cache.lan:8443:
    tls: {insecure_skip_verify: true}
"#,
        )
        .unwrap();
        let e = config.endpoints(&Reference::parse("nginx:1").unwrap());
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].url(), "http://127.0.0.1:5000");
        assert_eq!(e[0].repository, "hub/nginx");
        assert_eq!(e[0].auth.as_ref().unwrap().username.as_deref(), Some("u"));
        assert_eq!(e[1].url(), "https://mirror.lan");
        assert_eq!(e[2].url(), "https://registry-1.docker.io");
        assert_eq!(e[2].repository, "library/nginx");
        assert!(e[2].is_default);
        let e = config.endpoints(&Reference::parse("ghcr.io/o/a:1").unwrap());
        assert_eq!(e[0].url(), "https://cache.lan:8443");
        assert!(e[0].tls.insecure_skip_verify);
        assert_eq!(e[1].url(), "https://ghcr.io");
        // The node itself only when the file names it.
        let local = Reference::parse("localhost:5000/a").unwrap();
        assert!(RegistriesConfig::default().endpoints(&local).is_empty());
        assert!(RegistriesConfig::default().refusal(&local).is_some());
        let named = RegistriesConfig::parse("configs: {\"localhost:5000\": {}}").unwrap();
        let e = named.endpoints(&local);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].url(), "http://localhost:5000");
        assert!(named.refusal(&local).is_none());
        // Another port of the same address is not named.
        let other = Reference::parse("localhost:2375/a").unwrap();
        assert!(named.endpoints(&other).is_empty());
    }

    #[test]
    fn the_node_and_its_link_are_internal() {
        for host in [
            "127.0.0.1:5000",
            "localhost",
            "x.localhost:1",
            "[::1]:5000",
            "::1",
            "169.254.169.254",
            "[fe80::1]:80",
            "0.0.0.0:5000",
            "[::ffff:127.0.0.1]:5000",
        ] {
            assert!(is_node_internal(host), "{host}");
        }
        for host in [
            "registry.lan:5000",
            "10.0.0.2:5000",
            "192.168.1.10",
            "[2001:db8::1]:5000",
            "ghcr.io",
        ] {
            assert!(!is_node_internal(host), "{host}");
        }
        let r = Reference::parse("169.254.169.254/latest/meta-data:x").unwrap();
        assert!(RegistriesConfig::default()
            .refusal(&r)
            .unwrap()
            .contains("registries.yaml"));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        for bad in [
            "mirror: {}",
            "mirrors: {docker.io: {endpoints: [x]}}",
            "mirrors: {docker.io: {endpoint: [\"ftp://x\"]}}",
            "mirrors: {docker.io: {endpoint: [x], rewrite: {\"(\": y}}}",
            "configs: {x: {tls: {cert_file: a}}}",
            "configs: {x: {tls: {ca: a}}}",
        ] {
            assert!(RegistriesConfig::parse(bad).is_err(), "{bad}");
        }
        assert!(RegistriesConfig::parse("").unwrap().mirrors.is_empty());
    }
}
