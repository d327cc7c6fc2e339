//! HTTP chart repositories and direct chart URLs: `index.yaml` fetched and read
//! (`skiff_helm::repo`), the archive downloaded — over the image puller's HTTP client
//! (`skiff_agent::image::pull::client`: skiff's rustls with the system roots plus the
//! HelmChart's CA, its guard against the node's own addresses), with basic auth sent to the
//! repository's own host only unless `pass_credentials`, sizes and times bounded.

use std::time::Duration;

use sha2::{Digest, Sha256};
use skiff_agent::image::pull::UrlCheck;
use skiff_agent::image::registries::{RegistriesConfig, TlsConfig};
use skiff_helm::source::{Access, BasicAuth};

use super::{MAX_ARCHIVE_BYTES, MAX_INDEX_BYTES};

/// How long fetching an index may take.
const INDEX_TIME: Duration = Duration::from_secs(60);
/// How long downloading an archive may take.
const ARCHIVE_TIME: Duration = Duration::from_secs(300);

/// Why a fetch failed, and whether the server could not be reached at all (then the cache
/// may answer with what it fetched before).
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) unreachable: bool,
}

impl Failure {
    fn refused(message: String) -> Failure {
        Failure {
            message,
            unreachable: false,
        }
    }
}

/// Whether a registry's message is a transport failure (no answer), not an answer.
pub(super) fn is_transport(message: &str) -> bool {
    message.starts_with("error sending request")
        || message.starts_with("5")
        || message.contains("connection refused")
        || message.contains("timed out")
}

/// The HTTP client of one fetch.
pub(super) struct Client {
    inner: reqwest::Client,
    /// The guard's check of a URL before it is requested.
    check: UrlCheck,
}

/// A chart version picked from an index: where its archive is.
#[derive(Debug, Clone)]
pub(super) struct Picked {
    pub(super) url: String,
    /// The repository's URL (credentials go to its host).
    pub(super) repo_url: String,
    /// `sha256` hex (or `sha256:<hex>`) from the index.
    pub(super) digest: Option<String>,
    pub(super) version: String,
    pub(super) chart: String,
}

/// A URL as shown in messages: without a password in it.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Whether two URLs are on the same origin (scheme, host, port).
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

impl Client {
    pub(super) fn new(
        access: &Access,
        registries: &RegistriesConfig,
        allow_node_internal: bool,
    ) -> Result<Client, String> {
        let tls = TlsConfig {
            ca_pem: access.ca_pem.clone(),
            insecure_skip_verify: access.insecure_skip_tls_verify,
            ..Default::default()
        };
        let (inner, check) =
            skiff_agent::image::pull::client(&tls, registries, allow_node_internal)?;
        Ok(Client { inner, check })
    }

    /// GETs `url` whole, at most `limit` bytes within `time`.
    async fn get(
        &self,
        url: &str,
        auth: Option<&BasicAuth>,
        limit: u64,
        time: Duration,
        what: &str,
    ) -> Result<Vec<u8>, Failure> {
        let at = shown(url);
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Failure::refused(format!(
                "fetching {what} {at}: only http:// and https:// URLs are fetched"
            )));
        }
        (self.check)(url).map_err(|e| Failure::refused(format!("fetching {what} {at}: {e}")))?;
        let mut request = self.inner.get(url).timeout(time);
        if let Some(auth) = auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        let unreachable = |e: reqwest::Error| Failure {
            message: format!(
                "fetching {what} {at}: {}",
                skiff_agent::image::pull::transport_message(&e)
            ),
            unreachable: true,
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 if auth.is_none() => {
                    " (the repository wants credentials: none were given)"
                }
                401 | 403 => " (the user name or password was refused)",
                404 => " (no such file on the server)",
                _ => "",
            };
            return Err(Failure {
                message: format!("fetching {what} {at}: the server answered {status}{hint}"),
                unreachable: status.is_server_error(),
            });
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(Failure::refused(format!(
                "fetching {what} {at}: {} bytes, more than skiff's bound of {} MiB",
                response.content_length().unwrap_or_default(),
                limit >> 20
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(Failure::refused(format!(
                    "fetching {what} {at}: more than skiff's bound of {} MiB",
                    limit >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Reads the repository's index and picks the version of `chart` Helm would.
pub(super) async fn resolve(
    client: &Client,
    repo_url: &str,
    chart: &str,
    version: &str,
    access: &Access,
) -> Result<Picked, Failure> {
    let index_url = skiff_helm::repo::index_url(repo_url).map_err(Failure::refused)?;
    let bytes = client
        .get(
            index_url.as_str(),
            access.auth.as_ref(),
            MAX_INDEX_BYTES,
            INDEX_TIME,
            "the repository index",
        )
        .await?;
    let index = skiff_helm::repo::parse_index(&bytes, &shown(index_url.as_str()))
        .map_err(Failure::refused)?;
    let picked = skiff_helm::repo::pick(&index, &shown(repo_url), chart, version)
        .map_err(Failure::refused)?;
    let url = skiff_helm::repo::resolve_url(repo_url, &picked.urls[0]).map_err(Failure::refused)?;
    Ok(Picked {
        url: url.to_string(),
        repo_url: repo_url.to_string(),
        digest: picked.digest.clone(),
        version: picked.version.clone(),
        chart: chart.to_string(),
    })
}

/// Downloads a picked archive, checked against the index's digest when it has one.
/// Credentials go with it only to the repository's own origin, or anywhere with
/// `pass_credentials` (Helm's `--pass-credentials`).
pub(super) async fn download(
    client: &Client,
    picked: &Picked,
    access: &Access,
) -> Result<Vec<u8>, Failure> {
    let auth = access
        .auth
        .as_ref()
        .filter(|_| access.pass_credentials || same_origin(&picked.url, &picked.repo_url));
    let what = if picked.version.is_empty() {
        "the chart".to_string()
    } else {
        format!("chart {:?} version {}", picked.chart, picked.version)
    };
    let bytes = client
        .get(&picked.url, auth, MAX_ARCHIVE_BYTES, ARCHIVE_TIME, &what)
        .await?;
    if let Some(want) = &picked.digest {
        let want = want
            .strip_prefix("sha256:")
            .unwrap_or(want)
            .to_ascii_lowercase();
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != want {
            return Err(Failure::refused(format!(
                "{what} from {}: its sha256 is {actual}, the repository's index says {want}",
                shown(&picked.url)
            )));
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_shown_urls() {
        assert!(same_origin("https://h/a/x.tgz", "https://h:443/repo"));
        assert!(!same_origin("https://h/a/x.tgz", "https://cdn.h/repo"));
        assert!(!same_origin("http://h/x.tgz", "https://h/repo"));
        assert!(!same_origin("https://h:8443/x.tgz", "https://h/repo"));
        assert_eq!(shown("https://u:secret@h/r"), "https://u:REDACTED@h/r");
        assert!(is_transport(
            "error sending request for url (http://127.0.0.1:1/v2/)"
        ));
        assert!(!is_transport("404 Not Found: MANIFEST_UNKNOWN"));
    }
}
