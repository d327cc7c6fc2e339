//! Where a chart comes from, as k3s's HelmChart names it, and the interface that fetches it.
//!
//! The HelmChart reconciler (skiff-controller) turns a HelmChart's spec into a
//! [`ChartSource`] and asks a [`ChartFetcher`] for the archive; the daemon provides the
//! fetcher (HTTP chart repositories, OCI registries through the image puller, the
//! content-addressed cache under the data dir). Unit tests may use an in-memory fetcher;
//! the e2e tests use the real one against a loopback HTTP server and registry.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// Basic credentials for a chart repository or registry (from `spec.authSecret`, a
/// `kubernetes.io/basic-auth` Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to reach a remote chart: credentials and TLS trust (`spec.repoCA`,
/// `spec.repoCAConfigMap`, `spec.insecureSkipTLSVerify`, `spec.plainHTTP`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub auth: Option<BasicAuth>,
    /// PEM certificates trusted in addition to the system roots.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// OCI only: talk HTTP, not HTTPS, to the registry.
    pub plain_http: bool,
    /// k3s's `authPassCredentials`: send the credentials to a chart URL on another host
    /// than the repository's.
    pub pass_credentials: bool,
}

/// The chart a HelmChart asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// `spec.chartContent`: a `.tgz`, already base64-decoded.
    Content(Vec<u8>),
    /// A chart directory or `.tgz` under the charts folder (`spec.chart` with no `repo`,
    /// not a URL); the path is already resolved and checked to lie inside that folder.
    Local(PathBuf),
    /// `spec.repo` (an HTTP(S) chart repository with `index.yaml`) and `spec.chart` (a name
    /// in it); `version` is `spec.version`: empty for the latest stable release, or a
    /// semver constraint as Helm reads it (`1.2.3`, `^1.2`, `>=1, <2`, `1.x`).
    Repo {
        url: String,
        chart: String,
        version: String,
        access: Access,
    },
    /// `spec.chart` as `oci://host/path/name` (with `spec.version` as the tag, or
    /// `:tag`/`@sha256:` in the reference), or `spec.chart` as a direct `https://…/x.tgz`.
    Url {
        url: String,
        version: String,
        access: Access,
    },
}

/// A fetched chart archive.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `sha256:<hex>` of `archive`.
    pub digest: String,
    /// The chart's `.tgz` as fetched.
    pub archive: Vec<u8>,
    /// The version picked (from `index.yaml`, the OCI tag, or the chart's Chart.yaml).
    pub version: String,
}

/// A boxed future, so the trait stays object-safe.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send + 'a>>;

/// Fetches chart archives; shared by the reconciler and `skiff chart template`.
pub trait ChartFetcher: Send + Sync {
    fn fetch<'a>(&'a self, source: &'a ChartSource) -> FetchFuture<'a>;
}

/// Why a chart could not be fetched; the message is shown in the HelmChart's status and
/// events as it is, so it names what is wrong (the URL, the version asked, the HTTP status).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);
