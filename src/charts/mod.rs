//! Fetching chart archives for the HelmChart reconciler and `skiff chart template`: one
//! [`Fetcher`] implementing `skiff_helm::source::ChartFetcher` for every `ChartSource`.
//!
//! - `Content` (a HelmChart's `chartContent`): checked to be a chart, digested.
//! - `Local` (a chart under the charts folder): a `.tgz` read as it is; a directory packed
//!   (`skiff_helm::chart::pack_dir`: files in name order, no timestamps) so it has a digest
//!   that changes only when its files do.
//! - `Repo` (an HTTP chart repository): `index.yaml` read, the version picked as Helm picks
//!   it (`skiff_helm::repo`), the archive downloaded and checked against the index's digest
//!   (`http.rs`).
//! - `Url`: `oci://…` pulled as a Helm chart artifact through the image puller's registry
//!   code (`skiff_agent::image::pull::pull_artifact`: registries.yaml's mirrors, credentials
//!   and TLS, the token flow), or a direct `https://…/x.tgz`.
//!
//! Remote archives go through the content-addressed cache (`cache.rs`) when there is one
//! (the daemon's; the command line's with `--cache-dir`): an archive already there is not
//! downloaded again, and a source whose server cannot be reached resolves to what it
//! resolved to last.
//!
//! Where the daemon's requests may go: anywhere but the node itself (loopback, link-local
//! addresses, names resolving there) unless registries.yaml names the host — the image
//! puller's rule, so a HelmChart cannot make the daemon reach its own or the cloud's
//! metadata services (docs/security.md). The command line's requests act for the user who
//! typed them and go anywhere.

mod cache;
mod http;

use std::path::Path;
use std::sync::Arc;

use skiff_agent::image::pull::{pull_artifact, ArtifactKind, DirectAccess};
use skiff_agent::image::registries::RegistriesConfig;
use skiff_agent::image::{PullOptions, Puller};
use skiff_helm::source::{Access, ChartFetcher, ChartSource, FetchError, FetchFuture, Fetched};

use cache::{digest_of, Cache, Resolved};

/// The largest chart archive accepted (also the loader's bound on its unpacked size).
pub(crate) const MAX_ARCHIVE_BYTES: u64 = skiff_helm::chart::MAX_ARCHIVE_BYTES;
/// The largest `index.yaml` accepted.
pub(crate) const MAX_INDEX_BYTES: u64 = 20 << 20;

/// A Helm chart as `helm push` stores it in an OCI registry.
const HELM_CHART: ArtifactKind = ArtifactKind {
    config_media_type: "application/vnd.cncf.helm.config.v1+json",
    layer_media_type: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    max_bytes: MAX_ARCHIVE_BYTES,
    what: "Helm chart",
};

type RegistriesFn = Arc<dyn Fn() -> Result<RegistriesConfig, String> + Send + Sync>;

/// Fetches charts from every kind of source (see the module's doc).
#[derive(Clone)]
pub(crate) struct Fetcher {
    cache: Option<Arc<Cache>>,
    registries: RegistriesFn,
    allow_node_internal: bool,
}

impl Fetcher {
    /// The daemon's: the cache under `<data-dir>/chart-cache`, registries.yaml as the puller reads
    /// it (on each fetch, so edits apply at once), nothing on the node itself unless
    /// registries.yaml names it. Hand it to the HelmChart reconciler as
    /// `Arc<dyn ChartFetcher>`.
    pub(crate) fn for_daemon(data_dir: &Path, puller: Puller) -> Result<Fetcher, String> {
        Ok(Fetcher {
            // Beside the charts folder (`<data-dir>/charts/`, the admin's local charts), not in it.
            cache: Some(Arc::new(Cache::open(&data_dir.join("chart-cache"))?)),
            registries: Arc::new(move || puller.registries().map_err(|e| e.to_string())),
            allow_node_internal: false,
        })
    }

    /// The command line's: a cache only in `cache_dir` if given, no registries.yaml, any host.
    pub(crate) fn for_cli(cache_dir: Option<&Path>) -> Result<Fetcher, String> {
        Ok(Fetcher {
            cache: cache_dir.map(Cache::open).transpose()?.map(Arc::new),
            registries: Arc::new(|| Ok(RegistriesConfig::default())),
            allow_node_internal: true,
        })
    }

    async fn fetch_source(&self, source: &ChartSource) -> Result<Fetched, String> {
        match source {
            ChartSource::Content(bytes) => checked(bytes.clone(), None, "chartContent"),
            ChartSource::Local(path) => {
                let p = path.clone();
                let bytes = tokio::task::spawn_blocking(move || read_local(&p))
                    .await
                    .map_err(|e| e.to_string())??;
                checked(bytes, None, &path.display().to_string())
            }
            ChartSource::Repo {
                url,
                chart,
                version,
                access,
            } => self.fetch_repo(url, chart, version, access).await,
            ChartSource::Url {
                url,
                version,
                access,
            } => {
                if let Some(reference) = url.strip_prefix("oci://") {
                    self.fetch_oci(reference, version, access).await
                } else if url.starts_with("https://") || url.starts_with("http://") {
                    self.fetch_direct(url, version, access).await
                } else {
                    Err(format!(
                        "chart URL {url:?}: only oci://, https:// and http:// URLs are supported"
                    ))
                }
            }
        }
    }

    /// An HTTP chart repository: index, version, archive (see `http.rs`), through the cache.
    async fn fetch_repo(
        &self,
        url: &str,
        chart: &str,
        version: &str,
        access: &Access,
    ) -> Result<Fetched, String> {
        let key = format!("repo {url} {chart} {version}{}", who(access));
        let client = self.client(access)?;
        let picked = match http::resolve(&client, url, chart, version, access).await {
            Ok(p) => p,
            Err(e) => return self.fall_back(&key, e),
        };
        let archive = match picked.digest.as_deref().and_then(|d| self.cached(d)) {
            Some(bytes) => bytes,
            None => http::download(&client, &picked, access)
                .await
                .map_err(|f| f.message)?,
        };
        let fetched = checked(archive, Some(picked.version.clone()), &picked.url)?;
        self.keep(&key, &fetched)?;
        Ok(fetched)
    }

    /// A direct `https://…/x.tgz`.
    async fn fetch_direct(
        &self,
        url: &str,
        version: &str,
        access: &Access,
    ) -> Result<Fetched, String> {
        let key = format!("url {url}{}", who(access));
        let client = self.client(access)?;
        let target = http::Picked {
            url: url.to_string(),
            repo_url: url.to_string(),
            digest: None,
            version: String::new(),
            chart: url.to_string(),
        };
        let archive = match http::download(&client, &target, access).await {
            Ok(a) => a,
            Err(e) => return self.fall_back(&key, e),
        };
        let fetched = checked(archive, None, url)?;
        if !version.is_empty() && fetched.version != version {
            return Err(format!(
                "{url} holds version {} of its chart, not {version:?}",
                fetched.version
            ));
        }
        self.keep(&key, &fetched)?;
        Ok(fetched)
    }

    /// `oci://host/path/name` with a tag (`version`, or `:tag` in the reference) or a digest.
    async fn fetch_oci(
        &self,
        reference: &str,
        version: &str,
        access: &Access,
    ) -> Result<Fetched, String> {
        let key = format!("oci {reference} {version}{}", who(access));
        let registries = (self.registries)()?;
        let host = reference.split('/').next().unwrap_or_default().to_string();
        let mut credentials = Vec::new();
        if let Some(auth) = &access.auth {
            credentials.push((
                skiff_agent::image::auth::normalize_host(&host),
                skiff_agent::image::auth::Credentials {
                    username: Some(auth.username.clone()),
                    password: Some(auth.password.clone()),
                    token: None,
                    identity_token: None,
                },
            ));
        }
        let options = PullOptions {
            registries,
            credentials,
            allow_node_internal: self.allow_node_internal,
            direct: DirectAccess {
                plain_http: access.plain_http,
                ca_pem: access.ca_pem.clone(),
                insecure_skip_verify: access.insecure_skip_tls_verify,
            },
            ..Default::default()
        };
        let reference = match oci_reference(reference, version)? {
            Some(pinned) => pinned,
            None => match pick_tag(reference, version, &options).await {
                Ok(r) => r,
                Err(failure) => return self.fall_back(&key, failure),
            },
        };
        let artifact = match pull_artifact(&reference, &options, &HELM_CHART).await {
            Ok(a) => a,
            Err(e) => {
                let failure = registry_failure(format!("pulling the chart oci://{reference}"), &e);
                return self.fall_back(&key, failure);
            }
        };
        let fetched = checked(artifact.bytes, None, &format!("oci://{reference}"))?;
        if fetched.digest != artifact.layer_digest {
            return Err(format!(
                "oci://{reference}: the chart's bytes hash to {}, not the {} its manifest names",
                fetched.digest, artifact.layer_digest
            ));
        }
        self.keep(&key, &fetched)?;
        Ok(fetched)
    }

    fn client(&self, access: &Access) -> Result<http::Client, String> {
        let registries = if self.allow_node_internal {
            RegistriesConfig::default()
        } else {
            (self.registries)()?
        };
        http::Client::new(access, &registries, self.allow_node_internal)
    }

    fn cached(&self, digest: &str) -> Option<Vec<u8>> {
        let digest = if digest.starts_with("sha256:") {
            digest.to_string()
        } else {
            format!("sha256:{digest}")
        };
        self.cache.as_ref()?.get(&digest)
    }

    /// Stores a fetched archive and what `key` resolved to.
    fn keep(&self, key: &str, fetched: &Fetched) -> Result<(), String> {
        if let Some(cache) = &self.cache {
            cache.put(&fetched.archive)?;
            cache.remember(
                key,
                Resolved {
                    digest: fetched.digest.clone(),
                    version: fetched.version.clone(),
                },
            )?;
        }
        Ok(())
    }

    /// The server could not be reached: what `key` resolved to last, if the cache has it.
    fn fall_back(&self, key: &str, failure: http::Failure) -> Result<Fetched, String> {
        if failure.unreachable {
            if let Some((resolved, archive)) = self.cache.as_ref().and_then(|c| c.recall(key)) {
                tracing::warn!(
                    "{}; using the chart fetched before ({} {})",
                    failure.message,
                    resolved.version,
                    resolved.digest
                );
                return Ok(Fetched {
                    digest: resolved.digest,
                    archive,
                    version: resolved.version,
                });
            }
        }
        Err(failure.message)
    }
}

impl ChartFetcher for Fetcher {
    fn fetch<'a>(&'a self, source: &'a ChartSource) -> FetchFuture<'a> {
        Box::pin(async move { self.fetch_source(source).await.map_err(FetchError) })
    }
}

/// Who asks, in a cache key: a fallback to what a source gave before is only for the same
/// credentials (a HelmChart without them must not get a private chart another one fetched).
fn who(access: &Access) -> String {
    use sha2::Digest;
    match &access.auth {
        Some(a) => format!(
            " as {}",
            hex::encode(&sha2::Sha256::digest(format!("{}\0{}", a.username, a.password))[..8])
        ),
        None => String::new(),
    }
}

/// A registry's error as a fetch failure: unreachable when no answer came.
fn registry_failure(what: String, e: &skiff_agent::image::ImageError) -> http::Failure {
    let unreachable = matches!(e,
        skiff_agent::image::ImageError::Registry { message, .. } if http::is_transport(message));
    http::Failure {
        message: format!("{what}: {e}"),
        unreachable,
    }
}

/// `host/path/name[:tag|@sha256:…]` and `version` → one reference with a tag or digest, or
/// `None` when the version is empty or a range: then the registry's tags are listed
/// (`pick_tag`). As Helm: a `+` in a version is `_` in a tag (tags cannot hold `+`).
fn oci_reference(reference: &str, version: &str) -> Result<Option<String>, String> {
    let last = reference.rsplit('/').next().unwrap_or_default();
    let tag = version.replace('+', "_");
    if reference.contains('@') {
        return Ok(Some(reference.to_string()));
    }
    if let Some((_, t)) = last.split_once(':') {
        if !version.is_empty() && t != tag {
            return Err(format!(
                "oci://{reference} names tag {t:?} but the version asked is {version:?}"
            ));
        }
        return Ok(Some(reference.to_string()));
    }
    let exact = skiff_helm::repo::Version::parse(version).is_ok()
        && !version.contains([' ', ',', '^', '~', '>', '<', '*', '|', '=', '!'])
        && version.matches('.').count() == 2;
    Ok(exact.then(|| format!("{reference}:{tag}")))
}

/// The tag of the highest version matching `version` (empty: the highest release) among the
/// repository's tags, as Helm picks an OCI chart version: `reference:tag`.
async fn pick_tag(
    reference: &str,
    version: &str,
    options: &PullOptions,
) -> Result<String, http::Failure> {
    let tags = skiff_agent::image::pull::list_tags(reference, options)
        .await
        .map_err(|e| registry_failure(format!("listing the tags of oci://{reference}"), &e))?;
    let name = reference.rsplit('/').next().unwrap_or_default().to_string();
    let mut index = skiff_helm::repo::Index {
        api_version: "v1".into(),
        ..Default::default()
    };
    index.entries.insert(
        name.clone(),
        tags.iter()
            .map(|t| skiff_helm::repo::ChartVersion {
                name: name.clone(),
                version: t.replace('_', "+"),
                urls: vec![t.clone()],
                digest: None,
                created: None,
            })
            .collect(),
    );
    let picked = skiff_helm::repo::pick(&index, &format!("oci://{reference}"), &name, version)
        .map_err(|message| http::Failure {
            message,
            unreachable: false,
        })?;
    Ok(format!("{reference}:{}", picked.urls[0]))
}

/// A local chart: a `.tgz` as it is, a directory packed.
fn read_local(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        return skiff_helm::chart::pack_dir(path).map_err(|e| e.to_string());
    }
    if meta.len() > MAX_ARCHIVE_BYTES {
        return Err(format!(
            "{}: {} bytes, more than the {} MiB a chart archive may have",
            path.display(),
            meta.len(),
            MAX_ARCHIVE_BYTES >> 20
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// An archive checked to be a chart: its digest, and its version (Chart.yaml's unless the
/// source said which it picked).
fn checked(archive: Vec<u8>, version: Option<String>, origin: &str) -> Result<Fetched, String> {
    if archive.len() as u64 > MAX_ARCHIVE_BYTES {
        return Err(format!(
            "{origin}: {} bytes, more than the {} MiB a chart archive may have",
            archive.len(),
            MAX_ARCHIVE_BYTES >> 20
        ));
    }
    let chart = skiff_helm::chart::load_archive(&archive, origin).map_err(|e| e.to_string())?;
    Ok(Fetched {
        digest: digest_of(&archive),
        version: version.unwrap_or_else(|| chart.metadata.version.clone()),
        archive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_references() {
        for (reference, version, want) in [
            ("r.test/c/app", "1.2.3", "r.test/c/app:1.2.3"),
            ("r.test/c/app", "1.2.3+b1", "r.test/c/app:1.2.3_b1"),
            ("r.test:5000/app:1.0.0", "", "r.test:5000/app:1.0.0"),
            ("r.test:5000/app:1.0.0", "1.0.0", "r.test:5000/app:1.0.0"),
        ] {
            assert_eq!(oci_reference(reference, version).unwrap().unwrap(), want);
        }
        let pinned = format!("r.test/app@sha256:{}", "a".repeat(64));
        assert_eq!(oci_reference(&pinned, "").unwrap().unwrap(), pinned);
        assert!(oci_reference("r.test:5000/app:1.0.0", "2.0.0")
            .unwrap_err()
            .contains("\"2.0.0\""));
        // Empty or a range: the tags are listed.
        for version in ["", "^1.0", "1.2", ">=1, <2", "1.x"] {
            assert_eq!(
                oci_reference("r.test/app", version).unwrap(),
                None,
                "{version}"
            );
        }
    }

    #[tokio::test]
    async fn the_daemon_does_not_fetch_from_the_node_itself() {
        let data = tempfile::tempdir().unwrap();
        let images = skiff_agent::image::ImageStore::open(data.path()).unwrap();
        let registries = data.path().join("registries.yaml");
        let puller = Puller::new(images).with_registries(registries.clone());
        let fetcher = Fetcher::for_daemon(data.path(), puller).unwrap();
        assert!(data.path().join("chart-cache/sha256").is_dir());
        // A port nothing listens on: what matters is whether the daemon tries.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let repo = |url: String| ChartSource::Repo {
            url,
            chart: "c".into(),
            version: String::new(),
            access: Access::default(),
        };
        for url in [
            format!("http://127.0.0.1:{port}/"),
            "http://169.254.169.254/latest".to_string(),
            "http://[::1]/".to_string(),
            "http://localhost/".to_string(),
        ] {
            let e = fetcher.fetch(&repo(url.clone())).await.unwrap_err();
            assert!(
                e.0.contains("refused to connect") || e.0.contains("the node itself"),
                "{url}: {e}"
            );
        }
        for version in ["1.0.0", ""] {
            let e = fetcher
                .fetch(&ChartSource::Url {
                    url: format!("oci://127.0.0.1:{port}/charts/c"),
                    version: version.into(),
                    access: Access::default(),
                })
                .await
                .unwrap_err();
            assert!(e.0.contains("registries.yaml"), "{version:?}: {e}");
        }
        let e = fetcher
            .fetch(&repo("file:///etc/".into()))
            .await
            .unwrap_err();
        assert!(e.0.contains("only http:// and https://"), "{e}");
        // Named in registries.yaml: tried (and refused by the closed port, not the guard).
        std::fs::write(
            &registries,
            format!("configs:\n  \"127.0.0.1:{port}\": {{}}\n"),
        )
        .unwrap();
        let e = fetcher
            .fetch(&repo(format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap_err();
        assert!(
            !e.0.contains("the node itself") && e.0.contains("index.yaml"),
            "{e}"
        );
    }

    fn chart_dir(dir: &Path, version: &str) {
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(
            dir.join("Chart.yaml"),
            format!("apiVersion: v2\nname: demo\nversion: {version}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("templates/cm.yaml"), "kind: ConfigMap\n").unwrap();
    }

    #[tokio::test]
    async fn local_directories_pack_to_a_stable_digest_and_content_is_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        chart_dir(&dir, "0.3.0");
        let fetcher = Fetcher::for_cli(None).unwrap();
        let a = fetcher
            .fetch(&ChartSource::Local(dir.clone()))
            .await
            .unwrap();
        let b = fetcher
            .fetch(&ChartSource::Local(dir.clone()))
            .await
            .unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.version, "0.3.0");
        let chart = skiff_helm::chart::load_archive(&a.archive, "x").unwrap();
        assert_eq!(chart.name(), "demo");
        std::fs::write(dir.join("templates/cm.yaml"), "kind: Secret\n").unwrap();
        let c = fetcher
            .fetch(&ChartSource::Local(dir.clone()))
            .await
            .unwrap();
        assert_ne!(a.digest, c.digest);

        let content = fetcher
            .fetch(&ChartSource::Content(a.archive.clone()))
            .await
            .unwrap();
        assert_eq!(content.digest, a.digest);
        let e = fetcher
            .fetch(&ChartSource::Content(b"not a tgz".to_vec()))
            .await
            .unwrap_err();
        assert!(e.0.contains("chartContent"), "{e}");
        let e = fetcher
            .fetch(&ChartSource::Local(tmp.path().join("missing")))
            .await
            .unwrap_err();
        assert!(e.0.contains("missing"), "{e}");
    }
}
