//! Pulling images from registries (the OCI distribution API, as Docker Hub, GHCR, Debian's
//! `docker-registry` and every other registry serve it).
//!
//! [`ImageStore::pull`] resolves a reference through the endpoints `registries.yaml` gives
//! (mirrors first, then the registry itself), authenticates as the registry asks (anonymous,
//! Bearer token from the registry's token service with or without credentials, Basic), fetches the
//! manifest (OCI or Docker v2 schema 2; an index or manifest list is resolved to this machine's
//! platform), then downloads the config and the layers the store does not have yet, several at
//! once, streaming each to a scratch file while hashing it, resuming with a `Range` request when a
//! connection breaks. Everything downloaded is then handed to [`ImageStore::ingest`], the path
//! archive imports take: verified again, unpacked once, recorded — or refused whole.
//!
//! Why a small client of our own over `reqwest` rather than the `oci-client` crate: registries.yaml
//! needs client certificates (oci-client 0.18 has no way to present one), exact control of which
//! CA roots are trusted per endpoint, resumable downloads (oci-client's partial pulls leave the
//! verification to the caller), and the registry's own error message in the pod status. The
//! protocol part is small (three GETs and a token request); the security-relevant part — digest
//! and size verification, safe unpacking — is the store's, shared with imports.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oci_spec::image::ImageConfiguration;
use sha2::{Digest as _, Sha256};

use super::archive::{
    choose_platform, host_platform, ArchiveImage, BlobSource, Document, CONFIG_TYPES, DOCKER_LIST,
    DOCKER_MANIFEST, LAYER_TYPES, OCI_INDEX, OCI_MANIFEST,
};
use super::auth::{lookup, parse_challenge, Challenge, CredentialSet, Credentials};
use super::digest::{sha256_hex, sha256_of};
use super::error::ImageError;
use super::reference::Reference;
use super::registries::{Endpoint, RegistriesConfig, TlsConfig};
use super::store::{Image, ImageStore};

const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// How many times a broken layer download is resumed before giving up.
const DOWNLOAD_ATTEMPTS: usize = 4;

/// A callback told how a pull progresses.
pub type ProgressFn = Arc<dyn Fn(&PullProgress) + Send + Sync>;

/// What a pull reports while it works.
#[derive(Debug, Clone)]
pub enum PullProgress {
    /// The manifest was found: where, and its digest.
    Resolved {
        /// `scheme://host` of the endpoint.
        endpoint: String,
        /// The manifest's digest.
        digest: String,
        /// How many layers the image has, and how many must be downloaded.
        layers: usize,
        /// Bytes to download (compressed layers the store lacks).
        to_download: u64,
    },
    /// Bytes of one layer arrived (sent at most every 100 ms per layer, and at its end).
    Downloading {
        /// The layer's digest.
        digest: String,
        /// Bytes so far.
        done: u64,
        /// Its size.
        total: u64,
    },
    /// Everything is downloaded; verifying and unpacking.
    Unpacking,
    /// The image is in the store.
    Done {
        /// Its id.
        id: String,
    },
}

/// How to pull.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Mirrors, credentials and TLS per registry (registries.yaml).
    pub registries: RegistriesConfig,
    /// Credentials by registry host (from imagePullSecrets); registries.yaml's win.
    pub credentials: CredentialSet,
    /// The platform to pick from an index: (os, architecture, variant); default this machine's.
    pub platform: Option<(String, String, Option<String>)>,
    /// Told of progress.
    pub progress: Option<ProgressFn>,
    /// Layers downloaded at once (default 3).
    pub max_concurrent_downloads: usize,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("registries", &self.registries)
            .field("credentials", &self.credentials)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

impl PullOptions {
    fn report(&self, event: PullProgress) {
        if let Some(progress) = &self.progress {
            progress(&event);
        }
    }
}

/// A manifest found on an endpoint.
struct Resolved {
    manifest_digest: String,
    manifest: Document,
    /// Index and manifest digests, outermost first.
    digests: Vec<String>,
    documents: Vec<(String, Vec<u8>)>,
}

/// Pulls `reference` ("nginx", "registry.lan:5000/app:42", "ghcr.io/o/a@sha256:…") into the
/// store and returns it. Pulling an image the store has downloads nothing but the manifest
/// and config. Refused whole (nothing recorded, no blob kept) when anything fails
/// verification; the error names the digest and the endpoint.
pub async fn pull(
    store: &ImageStore,
    reference: &str,
    options: &PullOptions,
) -> Result<Image, ImageError> {
    let parsed = Reference::parse(reference)?;
    let name = parsed.to_string();
    let mut failures: Vec<ImageError> = Vec::new();
    for endpoint in options.registries.endpoints(&parsed) {
        let session = match Session::new(&name, endpoint, options) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        // Resolving may fall back to the next endpoint; once a manifest is found, the
        // image comes from that endpoint or not at all.
        let resolved = match resolve_manifest(store, &session, &parsed, options).await {
            Ok(r) => r,
            Err(e @ ImageError::Registry { .. }) => {
                tracing::debug!(endpoint = %session.endpoint.url(), "{e}");
                failures.push(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        return fetch(store, &session, &parsed, resolved, options).await;
    }
    Err(combine(&name, failures))
}

async fn resolve_manifest(
    store: &ImageStore,
    session: &Session,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Resolved, ImageError> {
    let target = reference
        .digest
        .clone()
        .or_else(|| reference.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let (bytes, content_type, header_digest) = session.manifest(&target, store).await?;
    let digest = sha256_of(&bytes);
    if let Some(pinned) = &reference.digest {
        if *pinned != digest {
            return Err(ImageError::DownloadDigestMismatch {
                what: "manifest",
                digest: pinned.clone(),
                actual: digest,
                endpoint: session.endpoint.url(),
            });
        }
    } else if let Some(header) = header_digest.filter(|d| d.starts_with("sha256:")) {
        if header != digest {
            return Err(ImageError::DownloadDigestMismatch {
                what: "manifest",
                digest: header,
                actual: digest,
                endpoint: session.endpoint.url(),
            });
        }
    }
    let (document, media_type) =
        parse_document(&bytes, content_type.as_deref(), &digest, &session.reference)?;
    let mut digests = vec![digest.clone()];
    let mut documents = vec![(digest.clone(), bytes)];
    let (manifest_digest, manifest) = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let (os, arch, variant) = match &options.platform {
                Some((os, arch, variant)) => (os.clone(), arch.clone(), variant.clone()),
                None => {
                    let (os, arch) = host_platform();
                    (os.to_owned(), arch.to_owned(), None)
                }
            };
            let chosen = choose_platform(
                document.manifests.as_deref().unwrap_or_default(),
                &os,
                &arch,
                variant.as_deref(),
            )
            .ok_or_else(|| ImageError::NoMatchingPlatform {
                index: digest.clone(),
                platform: format!("{os}/{arch}"),
            })?;
            let (child, child_type, _) = session.manifest(&chosen.digest, store).await?;
            let actual = sha256_of(&child);
            if actual != chosen.digest {
                return Err(ImageError::DownloadDigestMismatch {
                    what: "manifest",
                    digest: chosen.digest.clone(),
                    actual,
                    endpoint: session.endpoint.url(),
                });
            }
            if child.len() as u64 != chosen.size {
                return Err(ImageError::DownloadIncomplete {
                    what: "manifest",
                    digest: chosen.digest.clone(),
                    endpoint: session.endpoint.url(),
                    reason: format!("{} bytes instead of {}", child.len(), chosen.size),
                });
            }
            let declared = chosen.media_type.clone().or(child_type);
            let (child_doc, child_media) = parse_document(
                &child,
                declared.as_deref(),
                &chosen.digest,
                &session.reference,
            )?;
            if child_media != OCI_MANIFEST && child_media != DOCKER_MANIFEST {
                return Err(ImageError::BadManifest {
                    what: "manifest",
                    digest: chosen.digest.clone(),
                    reference: session.reference.clone(),
                    reason: format!(
                        "an index entry leads to {child_media:?}, not an image manifest"
                    ),
                });
            }
            digests.push(chosen.digest.clone());
            documents.push((chosen.digest.clone(), child));
            (chosen.digest, child_doc)
        }
        OCI_MANIFEST | DOCKER_MANIFEST => (digest, document),
        _ => unreachable!("parse_document returns known types"),
    };
    Ok(Resolved {
        manifest_digest,
        manifest,
        digests,
        documents,
    })
}

async fn fetch(
    store: &ImageStore,
    session: &Session,
    reference: &Reference,
    resolved: Resolved,
    options: &PullOptions,
) -> Result<Image, ImageError> {
    let started = Instant::now();
    let bad = |reason: String| ImageError::BadManifest {
        what: "manifest",
        digest: resolved.manifest_digest.clone(),
        reference: session.reference.clone(),
        reason,
    };
    let config = resolved
        .manifest
        .config
        .clone()
        .ok_or_else(|| bad("it has no config".into()))?;
    let config_type = config.media_type.as_deref().unwrap_or_default();
    if !CONFIG_TYPES.contains(&config_type) {
        return Err(ImageError::UnsupportedMediaType {
            digest: config.digest.clone(),
            media_type: config_type.to_owned(),
            role: "an image config",
        });
    }
    sha256_hex(&config.digest)?;
    let layers = resolved.manifest.layers.clone().unwrap_or_default();
    for layer in &layers {
        let layer_type = layer.media_type.as_deref().unwrap_or_default();
        if !LAYER_TYPES.contains(&layer_type) {
            return Err(ImageError::UnsupportedMediaType {
                digest: layer.digest.clone(),
                media_type: layer_type.to_owned(),
                role: "a layer",
            });
        }
        sha256_hex(&layer.digest)?;
    }

    let (scratch, _scratch_lock) = store.scratch("pull-")?;
    let config_bytes = session
        .small_blob(&config.digest, config.size, "image config", store)
        .await?;
    let config_path = scratch.path().join("config.json");
    std::fs::write(&config_path, &config_bytes)
        .map_err(|e| ImageError::io("write", &config_path, e))?;
    let diff_ids: Vec<String> = serde_json::from_slice::<ImageConfiguration>(&config_bytes)
        .map(|c| c.rootfs().diff_ids().clone())
        .unwrap_or_default();

    // Garbage collection waits until the image is recorded (or refused).
    let guard = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.ingest_guard())
            .await
            .expect("no panic")?
    };
    let mut sources = Vec::with_capacity(layers.len());
    let mut downloads = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let label = layer.digest.clone();
        let present = diff_ids.get(i).is_some_and(|d| store.has_layer(d));
        let stored = store.blob_file(&layer.digest)?;
        let path = if present || stored.is_file() {
            stored
        } else {
            let path = scratch.path().join(sha256_hex(&layer.digest)?);
            if !downloads
                .iter()
                .any(|(d, _, _): &(String, u64, PathBuf)| *d == layer.digest)
            {
                downloads.push((layer.digest.clone(), layer.size, path.clone()));
            }
            path
        };
        sources.push(BlobSource {
            path,
            label,
            digest: Some(layer.digest.clone()),
            size: Some(layer.size),
        });
    }
    options.report(PullProgress::Resolved {
        endpoint: session.endpoint.url(),
        digest: resolved.manifest_digest.clone(),
        layers: layers.len(),
        to_download: downloads.iter().map(|(_, s, _)| s).sum(),
    });
    let concurrency = match options.max_concurrent_downloads {
        0 => 3,
        n => n,
    };
    let mut results = futures_util::stream::iter(downloads.into_iter().map(
        |(digest, size, path)| async move { session.download(&digest, size, &path, options).await },
    ))
    .buffer_unordered(concurrency);
    while let Some(result) = results.next().await {
        result?;
    }
    drop(results);

    options.report(PullProgress::Unpacking);
    let image = ArchiveImage {
        names: if reference.digest.is_none() {
            vec![reference.to_string()]
        } else {
            Vec::new()
        },
        config: BlobSource {
            path: config_path,
            label: config.digest.clone(),
            digest: Some(config.digest.clone()),
            size: Some(config.size),
        },
        layers: sources,
        digests: resolved.digests,
        documents: resolved.documents,
    };
    let ingesting = store.clone();
    let imported = tokio::task::spawn_blocking(move || {
        let result = ingesting.ingest(vec![image], &guard);
        drop(guard);
        drop(scratch);
        result
    })
    .await
    .expect("no panic")?;
    let id = imported.first().map(|i| i.id.clone()).unwrap_or_default();
    tracing::info!(reference = %session.reference, %id, endpoint = %session.endpoint.url(),
        took = ?started.elapsed(), "pulled image");
    options.report(PullProgress::Done { id: id.clone() });
    store
        .resolve(&id)?
        .ok_or(ImageError::NotFound { reference: id })
}

/// One endpoint, with its HTTP client and what authentication it asked for.
struct Session {
    reference: String,
    endpoint: Endpoint,
    client: reqwest::Client,
    credentials: Option<Credentials>,
    authorization: tokio::sync::Mutex<Option<String>>,
}

impl Session {
    fn new(reference: &str, endpoint: Endpoint, options: &PullOptions) -> Result<Self, ImageError> {
        let client = http_client(&endpoint.tls).map_err(|message| ImageError::Registry {
            reference: reference.to_owned(),
            endpoint: endpoint.url(),
            message,
        })?;
        let credentials = endpoint
            .auth
            .as_ref()
            .and_then(Credentials::from_config)
            .or_else(|| lookup(&options.credentials, &endpoint.host).cloned())
            .or_else(|| {
                Reference::parse(reference)
                    .ok()
                    .and_then(|r| lookup(&options.credentials, &r.domain).cloned())
            });
        Ok(Session {
            reference: reference.to_owned(),
            endpoint,
            client,
            credentials,
            authorization: tokio::sync::Mutex::new(None),
        })
    }

    fn error(&self, message: String) -> ImageError {
        ImageError::Registry {
            reference: self.reference.clone(),
            endpoint: self.endpoint.url(),
            message,
        }
    }

    fn url(&self, kind: &str, target: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{target}",
            self.endpoint.url(),
            self.endpoint.repository
        )
    }

    /// GET with authentication: answers a 401 challenge once, then fails with the registry's
    /// own message on any other error status.
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        from: u64,
    ) -> Result<reqwest::Response, ImageError> {
        let mut challenged = false;
        loop {
            let mut request = self.client.get(url);
            if let Some(accept) = accept {
                request = request.header(reqwest::header::ACCEPT, accept);
            }
            if from > 0 {
                request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
            }
            if let Some(auth) = self.authorization.lock().await.clone() {
                request = request.header(reqwest::header::AUTHORIZATION, auth);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.error(transport_message(&e)))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .and_then(parse_challenge);
                let body = response.text().await.unwrap_or_default();
                match challenge {
                    Some(Challenge::Basic)
                        if self
                            .credentials
                            .as_ref()
                            .and_then(Credentials::basic_header)
                            .is_none() =>
                    {
                        return Err(self.error(format!(
                            "{} (no credentials for {}: add an imagePullSecret or registries.yaml auth)",
                            status_message(status, &body),
                            self.endpoint.host
                        )))
                    }
                    Some(challenge) => {
                        let header = self.authenticate(challenge).await?;
                        *self.authorization.lock().await = Some(header);
                        continue;
                    }
                    None => return Err(self.error(status_message(status, &body))),
                }
            }
            if status.is_success() {
                return Ok(response);
            }
            let body = response.text().await.unwrap_or_default();
            let mut message = status_message(status, &body);
            if status == reqwest::StatusCode::UNAUTHORIZED && self.credentials.is_none() {
                message.push_str(" (no credentials for this registry: add an imagePullSecret or registries.yaml auth)");
            }
            return Err(self.error(message));
        }
    }

    /// The Authorization header a challenge calls for.
    async fn authenticate(&self, challenge: Challenge) -> Result<String, ImageError> {
        match challenge {
            Challenge::Basic => self
                .credentials
                .as_ref()
                .and_then(Credentials::basic_header)
                .ok_or_else(|| {
                    self.error("401 Unauthorized: the registry asks for a user name and password, and none is configured for it (imagePullSecrets or registries.yaml auth)".into())
                }),
            Challenge::Bearer {
                realm,
                service,
                scope: _,
            } => {
                if let Some(token) = self.credentials.as_ref().and_then(|c| c.token.clone()) {
                    return Ok(format!("Bearer {token}"));
                }
                let scope = format!("repository:{}:pull", self.endpoint.repository);
                let identity = self
                    .credentials
                    .as_ref()
                    .and_then(|c| c.identity_token.clone());
                let request = if let Some(refresh) = identity {
                    // OAuth2: trade the refresh (identity) token for an access token.
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_owned()),
                        ("refresh_token", refresh),
                        ("client_id", "skiff".to_owned()),
                        ("scope", scope.clone()),
                    ];
                    if let Some(service) = &service {
                        form.push(("service", service.clone()));
                    }
                    self.client.post(&realm).form(&form)
                } else {
                    let mut request = self.client.get(&realm).query(&[("scope", scope.as_str())]);
                    if let Some(service) = &service {
                        request = request.query(&[("service", service.as_str())]);
                    }
                    if let Some(basic) =
                        self.credentials.as_ref().and_then(Credentials::basic_header)
                    {
                        request = request.header(reqwest::header::AUTHORIZATION, basic);
                    }
                    request
                };
                let response = request
                    .send()
                    .await
                    .map_err(|e| self.error(format!("token service {realm}: {}", transport_message(&e))))?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(self.error(format!(
                        "token service {realm}: {}",
                        status_message(status, &body)
                    )));
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    #[serde(default)]
                    token: Option<String>,
                    #[serde(default)]
                    access_token: Option<String>,
                }
                let token: Token = serde_json::from_str(&body).map_err(|e| {
                    self.error(format!("token service {realm}: unreadable answer: {e}"))
                })?;
                token
                    .token
                    .or(token.access_token)
                    .filter(|t| !t.is_empty())
                    .map(|t| format!("Bearer {t}"))
                    .ok_or_else(|| self.error(format!("token service {realm} gave no token")))
            }
        }
    }

    /// A manifest or index: (bytes, Content-Type, Docker-Content-Digest).
    async fn manifest(
        &self,
        target: &str,
        store: &ImageStore,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>), ImageError> {
        let accept = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ");
        let response = self
            .get(&self.url("manifests", target), Some(&accept), 0)
            .await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned());
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let bytes = self
            .read_limited(response, store.limits().max_json_bytes, "manifest", target)
            .await?;
        Ok((bytes, content_type, digest))
    }

    /// A small blob (the config), verified.
    async fn small_blob(
        &self,
        digest: &str,
        size: u64,
        what: &'static str,
        store: &ImageStore,
    ) -> Result<Vec<u8>, ImageError> {
        let limit = store.limits().max_json_bytes;
        if size > limit {
            return Err(ImageError::JsonTooLarge {
                what,
                file: digest.to_owned(),
                limit,
            });
        }
        let response = self.get(&self.url("blobs", digest), None, 0).await?;
        let bytes = self.read_limited(response, limit, what, digest).await?;
        let actual = sha256_of(&bytes);
        if actual != digest {
            return Err(ImageError::DownloadDigestMismatch {
                what,
                digest: digest.to_owned(),
                actual,
                endpoint: self.endpoint.url(),
            });
        }
        if bytes.len() as u64 != size {
            return Err(ImageError::DownloadIncomplete {
                what,
                digest: digest.to_owned(),
                endpoint: self.endpoint.url(),
                reason: format!("{} bytes instead of {size}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    async fn read_limited(
        &self,
        response: reqwest::Response,
        limit: u64,
        what: &'static str,
        target: &str,
    ) -> Result<Vec<u8>, ImageError> {
        let mut stream = response.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error(transport_message(&e)))?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > limit {
                return Err(ImageError::JsonTooLarge {
                    what,
                    file: target.to_owned(),
                    limit,
                });
            }
        }
        Ok(bytes)
    }

    /// Streams a layer blob into `path`, hashing it on the way; resumes with `Range` after a
    /// broken connection. The file is removed unless it is complete and verified.
    async fn download(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
        options: &PullOptions,
    ) -> Result<(), ImageError> {
        let result = self.download_inner(digest, size, path, options).await;
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    async fn download_inner(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
        options: &PullOptions,
    ) -> Result<(), ImageError> {
        use std::io::Write;
        let incomplete = |reason: String| ImageError::DownloadIncomplete {
            what: "layer",
            digest: digest.to_owned(),
            endpoint: self.endpoint.url(),
            reason,
        };
        let mut file =
            std::fs::File::create(path).map_err(|e| ImageError::io("create", path, e))?;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        let mut last_report = Instant::now();
        let mut last_error = String::new();
        for attempt in 0..DOWNLOAD_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                tracing::info!(%digest, done, size, "resuming an interrupted download: {last_error}");
            }
            let response = match self.get(&self.url("blobs", digest), None, done).await {
                Ok(r) => r,
                // The first request failing is an answer, not an interruption.
                Err(e) if attempt == 0 => return Err(e),
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            if done > 0 && response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                // No range support: start over.
                file =
                    std::fs::File::create(path).map_err(|e| ImageError::io("create", path, e))?;
                hasher = Sha256::new();
                done = 0;
            }
            let mut stream = response.bytes_stream();
            let mut broken = None;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        broken = Some(transport_message(&e));
                        break;
                    }
                };
                done += chunk.len() as u64;
                if done > size {
                    return Err(incomplete(format!(
                        "the registry sent more than the {size} bytes its manifest says"
                    )));
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .map_err(|e| ImageError::io("write", path, e))?;
                if last_report.elapsed() >= Duration::from_millis(100) {
                    last_report = Instant::now();
                    options.report(PullProgress::Downloading {
                        digest: digest.to_owned(),
                        done,
                        total: size,
                    });
                }
            }
            match broken {
                Some(e) => last_error = e,
                None if done < size => {
                    last_error = format!("the connection ended after {done} of {size} bytes")
                }
                None => {
                    file.sync_all()
                        .map_err(|e| ImageError::io("sync", path, e))?;
                    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                    if actual != digest {
                        return Err(ImageError::DownloadDigestMismatch {
                            what: "layer",
                            digest: digest.to_owned(),
                            actual,
                            endpoint: self.endpoint.url(),
                        });
                    }
                    options.report(PullProgress::Downloading {
                        digest: digest.to_owned(),
                        done,
                        total: size,
                    });
                    return Ok(());
                }
            }
        }
        Err(incomplete(format!(
            "got {done} of {size} bytes after {DOWNLOAD_ATTEMPTS} attempts: {last_error}"
        )))
    }
}

/// Reads a manifest or index leniently and says which it is.
fn parse_document(
    bytes: &[u8],
    declared: Option<&str>,
    digest: &str,
    reference: &str,
) -> Result<(Document, String), ImageError> {
    let bad = |reason: String| ImageError::BadManifest {
        what: "manifest",
        digest: digest.to_owned(),
        reference: reference.to_owned(),
        reason,
    };
    let document: Document =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("it is not valid JSON: {e}")))?;
    let known = |t: &str| [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].contains(&t);
    let media_type = document
        .media_type
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            declared
                .filter(|t| known(t) || DOCKER_SCHEMA1.contains(t))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            if document.manifests.is_some() {
                OCI_INDEX.to_owned()
            } else {
                OCI_MANIFEST.to_owned()
            }
        });
    if DOCKER_SCHEMA1.contains(&media_type.as_str()) {
        return Err(bad(
            "Docker image manifest schema 1 is deprecated and not supported; push the image again with a current tool".into(),
        ));
    }
    if !known(&media_type) {
        return Err(ImageError::UnsupportedMediaType {
            digest: digest.to_owned(),
            media_type,
            role: "an image manifest or index",
        });
    }
    let is_index = media_type == OCI_INDEX || media_type == DOCKER_LIST;
    if is_index && document.manifests.is_none() {
        return Err(bad("an index without `manifests`".into()));
    }
    if !is_index && document.config.is_none() {
        return Err(bad("a manifest without `config`".into()));
    }
    Ok((document, media_type))
}

/// All endpoints failed: one error saying what each answered.
fn combine(reference: &str, failures: Vec<ImageError>) -> ImageError {
    if failures.len() == 1 {
        return failures.into_iter().next().expect("one");
    }
    let mut messages = Vec::new();
    for failure in failures {
        match failure {
            ImageError::Registry {
                endpoint, message, ..
            } => {
                messages.push(format!("{endpoint}: {message}"));
            }
            other => messages.push(other.to_string()),
        }
    }
    if messages.is_empty() {
        messages.push("no endpoint to pull from".into());
    }
    ImageError::Registry {
        reference: reference.to_owned(),
        endpoint: "each of its endpoints".to_owned(),
        message: messages.join("; then "),
    }
}

/// "404 Not Found: MANIFEST_UNKNOWN: manifest unknown" — the registry's own words.
fn status_message(status: reqwest::StatusCode, body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let detail = match serde_json::from_str::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.trim().chars().take(300).collect(),
    };
    if detail.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {detail}")
    }
}

/// A transport error with its causes ("error sending request…: connection refused").
fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// An HTTP client that trusts the system's roots plus `tls.ca_file`, presents the client
/// certificate if one is configured, or verifies nothing when `insecure_skip_verify` says so.
fn http_client(tls: &TlsConfig) -> Result<reqwest::Client, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for bundle in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ] {
            if let Ok(certs) = CertificateDer::pem_file_iter(bundle) {
                roots.add_parsable_certificates(certs.flatten());
                break;
            }
        }
        if let Some(ca) = &tls.ca_file {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("ca_file {} holds no certificate", ca.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cert_file {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// `insecure_skip_verify: true`: accepts any server certificate (signatures are still checked,
/// so the TLS session itself is sound).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
