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

use crate::image::archive::{
    check_config_type, check_layer_type, choose_platform, host_platform, ArchiveImage, BlobSource,
    Descriptor, Document, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};
use crate::image::auth::{lookup, parse_challenge, Challenge, CredentialSet, Credentials};
use crate::image::digest::{sha256_hex, sha256_of};
use crate::image::error::ImageError;
use crate::image::reference::Reference;
use crate::image::registries::{Endpoint, RegistriesConfig, TlsConfig};
use crate::image::store::{Image, ImageStore};

mod artifact;
mod http;
mod session;

pub use artifact::{list_tags, pull_artifact, Artifact, ArtifactKind};
pub use http::{client, transport_message, UrlCheck};
use http::{http_client, status_message, Guard};
use session::Session;

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
    /// Connect to the node itself (loopback, link-local) even when registries.yaml does not
    /// name the host: only for the command line's own requests (`skiff chart template`),
    /// never for what an object asks.
    pub allow_node_internal: bool,
    /// TLS and scheme for the registry's own endpoint (not its mirrors), over
    /// registries.yaml's: a HelmChart's `repoCA`, `insecureSkipTLSVerify`, `plainHTTP`.
    pub direct: DirectAccess,
}

/// How to reach a registry's own endpoint, as the caller asks.
#[derive(Clone, Debug, Default)]
pub struct DirectAccess {
    /// Talk HTTP, not HTTPS.
    pub plain_http: bool,
    /// CA certificates (PEM) trusted besides the system's and registries.yaml's.
    pub ca_pem: Option<Vec<u8>>,
    /// Do not verify the registry's certificate.
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("registries", &self.registries)
            .field("credentials", &self.credentials)
            .field("platform", &self.platform)
            .field("allow_node_internal", &self.allow_node_internal)
            .field("direct", &self.direct)
            .finish_non_exhaustive()
    }
}

impl PullOptions {
    fn report(&self, event: PullProgress) {
        if let Some(progress) = &self.progress {
            progress(&event);
        }
    }

    /// Why `reference`'s registry is not pulled from, if it is not.
    fn refusal(&self, reference: &Reference) -> Option<String> {
        if self.allow_node_internal {
            return None;
        }
        self.registries.refusal(reference)
    }

    /// The endpoints to try for `reference`, with [`DirectAccess`] applied to the
    /// registry's own. An endpoint whose transport the caller changed (plain HTTP, its own CA,
    /// no verification) gets none of registries.yaml's credentials: a HelmChart's
    /// `plainHTTP` must not send the admin's registry password in clear text, nor its
    /// `repoCA` let a host it vouches for receive it; the caller's own credentials still go.
    pub(crate) fn endpoints(&self, reference: &Reference) -> Vec<Endpoint> {
        let mut endpoints = self
            .registries
            .endpoints_for(reference, !self.allow_node_internal);
        let direct = &self.direct;
        let changes_transport =
            direct.plain_http || direct.ca_pem.is_some() || direct.insecure_skip_verify;
        for e in endpoints.iter_mut().filter(|e| e.is_default) {
            if changes_transport {
                e.auth = None;
            }
            if direct.plain_http {
                e.scheme = "http".into();
            }
            if direct.ca_pem.is_some() {
                e.tls.ca_pem = direct.ca_pem.clone();
            }
            e.tls.insecure_skip_verify |= direct.insecure_skip_verify;
        }
        // Plain HTTP asked: the loopback fallback to HTTP is now the same endpoint.
        endpoints.dedup();
        endpoints
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
    let mut attempts = Attempts::new(reference, options)?;
    while let Some(session) = attempts.next_session() {
        match resolve_manifest(store, &session, &attempts.reference, options).await {
            // Once a manifest is found, the image comes from that endpoint or not at all.
            Ok(resolved) => {
                return fetch(store, &session, &attempts.reference, resolved, options).await
            }
            Err(e) => attempts.failed(&session, e)?,
        }
    }
    Err(attempts.combined())
}

/// A reference's endpoints (registries.yaml's mirrors first, then the registry itself),
/// tried in order until one finds what is asked, and what the others answered.
struct Attempts<'a> {
    reference: Reference,
    name: String,
    options: &'a PullOptions,
    endpoints: std::vec::IntoIter<Endpoint>,
    failures: Vec<ImageError>,
}

impl<'a> Attempts<'a> {
    fn new(reference: &str, options: &'a PullOptions) -> Result<Self, ImageError> {
        let parsed = Reference::parse(reference)?;
        let name = parsed.to_string();
        let mut failures = Vec::new();
        if let Some(message) = options.refusal(&parsed) {
            failures.push(ImageError::Registry {
                reference: name.clone(),
                endpoint: parsed.domain.clone(),
                message,
            });
        }
        Ok(Attempts {
            endpoints: options.endpoints(&parsed).into_iter(),
            reference: parsed,
            name,
            options,
            failures,
        })
    }

    /// A session with the next endpoint that can have one.
    fn next_session(&mut self) -> Option<Session> {
        for endpoint in self.endpoints.by_ref() {
            match Session::new(&self.name, endpoint, self.options) {
                Ok(s) => return Some(s),
                Err(e) => self.failures.push(e),
            }
        }
        None
    }

    /// An endpoint failed: a registry's answer is kept and the next endpoint tried; any
    /// other error ends the pull.
    fn failed(&mut self, session: &Session, error: ImageError) -> Result<(), ImageError> {
        match error {
            e @ ImageError::Registry { .. } => {
                tracing::debug!(endpoint = %session.endpoint.url(), "{e}");
                self.failures.push(e);
                Ok(())
            }
            e => Err(e),
        }
    }

    /// Every endpoint failed: one error saying what each answered.
    fn combined(self) -> ImageError {
        combine(&self.name, self.failures)
    }
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
    let (bytes, content_type, header_digest) = session
        .manifest(&target, store.limits().max_json_bytes)
        .await?;
    let digest = sha256_of(&bytes);
    check_manifest_digest(session, reference, header_digest, &digest)?;
    let (document, media_type) =
        parse_document(&bytes, content_type.as_deref(), &digest, &session.reference)?;
    let mut digests = vec![digest.clone()];
    let mut documents = vec![(digest.clone(), bytes)];
    let (manifest_digest, manifest) = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let (child_digest, child_doc, child) =
                resolve_index(store, session, options, &digest, &document).await?;
            digests.push(child_digest.clone());
            documents.push((child_digest.clone(), child));
            (child_digest, child_doc)
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

/// The first manifest's digest must be the pinned one, or else the one the registry's
/// `Docker-Content-Digest` header gives.
fn check_manifest_digest(
    session: &Session,
    reference: &Reference,
    header_digest: Option<String>,
    digest: &str,
) -> Result<(), ImageError> {
    if let Some(pinned) = &reference.digest {
        if pinned != digest {
            return Err(ImageError::DownloadDigestMismatch {
                what: "manifest",
                digest: pinned.clone(),
                actual: digest.to_owned(),
                endpoint: session.endpoint.url(),
            });
        }
    } else if let Some(header) = header_digest.filter(|d| d.starts_with("sha256:")) {
        if header != digest {
            return Err(ImageError::DownloadDigestMismatch {
                what: "manifest",
                digest: header,
                actual: digest.to_owned(),
                endpoint: session.endpoint.url(),
            });
        }
    }
    Ok(())
}

/// The platform to pick from an index: the options' or this machine's.
fn wanted_platform(options: &PullOptions) -> (String, String, Option<String>) {
    match &options.platform {
        Some((os, arch, variant)) => (os.clone(), arch.clone(), variant.clone()),
        None => {
            let (os, arch) = host_platform();
            (os.to_owned(), arch.to_owned(), None)
        }
    }
}

/// The image manifest an index gives for the platform, fetched and verified: (its digest,
/// the document, its bytes).
async fn resolve_index(
    store: &ImageStore,
    session: &Session,
    options: &PullOptions,
    index_digest: &str,
    index: &Document,
) -> Result<(String, Document, Vec<u8>), ImageError> {
    let (os, arch, variant) = wanted_platform(options);
    let chosen = choose_platform(
        index.manifests.as_deref().unwrap_or_default(),
        &os,
        &arch,
        variant.as_deref(),
    )
    .ok_or_else(|| ImageError::NoMatchingPlatform {
        index: index_digest.to_owned(),
        platform: format!("{os}/{arch}"),
    })?;
    let (child, child_type, _) = session
        .manifest(&chosen.digest, store.limits().max_json_bytes)
        .await?;
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
            reason: format!("an index entry leads to {child_media:?}, not an image manifest"),
        });
    }
    Ok((chosen.digest.clone(), child_doc, child))
}

/// A layer to download: digest, size, scratch path.
type LayerDownload = (String, u64, PathBuf);

async fn fetch(
    store: &ImageStore,
    session: &Session,
    reference: &Reference,
    resolved: Resolved,
    options: &PullOptions,
) -> Result<Image, ImageError> {
    let started = Instant::now();
    let (config, layers) = checked_descriptors(session, &resolved)?;
    let (scratch, _scratch_lock) = store.scratch("pull-")?;
    let (config_path, diff_ids) = fetch_config(store, session, &config, scratch.path()).await?;
    // Garbage collection waits until the image is recorded (or refused).
    let guard = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.ingest_guard())
            .await
            .expect("no panic")?
    };
    let (sources, downloads) = layer_sources(store, scratch.path(), &layers, &diff_ids)?;
    options.report(PullProgress::Resolved {
        endpoint: session.endpoint.url(),
        digest: resolved.manifest_digest.clone(),
        layers: layers.len(),
        to_download: downloads.iter().map(|(_, s, _)| s).sum(),
    });
    download_layers(session, downloads, options).await?;

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

/// The manifest's config and layers, refused when a media type is not an image's or a
/// digest is not sha256.
fn checked_descriptors(
    session: &Session,
    resolved: &Resolved,
) -> Result<(Descriptor, Vec<Descriptor>), ImageError> {
    let config = resolved
        .manifest
        .config
        .clone()
        .ok_or_else(|| ImageError::BadManifest {
            what: "manifest",
            digest: resolved.manifest_digest.clone(),
            reference: session.reference.clone(),
            reason: "it has no config".into(),
        })?;
    check_config_type(&config)?;
    sha256_hex(&config.digest)?;
    let layers = resolved.manifest.layers.clone().unwrap_or_default();
    for layer in &layers {
        check_layer_type(layer)?;
        sha256_hex(&layer.digest)?;
    }
    Ok((config, layers))
}

/// Downloads the image config into `scratch/config.json`: its path and the layers' diff ids.
async fn fetch_config(
    store: &ImageStore,
    session: &Session,
    config: &Descriptor,
    scratch: &Path,
) -> Result<(PathBuf, Vec<String>), ImageError> {
    let config_bytes = session
        .small_blob(
            &config.digest,
            config.size,
            "image config",
            store.limits().max_json_bytes,
        )
        .await?;
    let config_path = scratch.join("config.json");
    std::fs::write(&config_path, &config_bytes)
        .map_err(|e| ImageError::io("write", &config_path, e))?;
    let diff_ids: Vec<String> = serde_json::from_slice::<ImageConfiguration>(&config_bytes)
        .map(|c| c.rootfs().diff_ids().clone())
        .unwrap_or_default();
    Ok((config_path, diff_ids))
}

/// Where each layer will come from (the store when it has the layer or its blob, else a
/// scratch file), and the downloads that fill those scratch files (each digest once).
fn layer_sources(
    store: &ImageStore,
    scratch: &Path,
    layers: &[Descriptor],
    diff_ids: &[String],
) -> Result<(Vec<BlobSource>, Vec<LayerDownload>), ImageError> {
    let mut sources = Vec::with_capacity(layers.len());
    let mut downloads: Vec<LayerDownload> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let label = layer.digest.clone();
        let present = diff_ids.get(i).is_some_and(|d| store.has_layer(d));
        let stored = store.blob_file(&layer.digest)?;
        let path = if present || stored.is_file() {
            stored
        } else {
            let path = scratch.join(sha256_hex(&layer.digest)?);
            if !downloads.iter().any(|(d, _, _)| *d == layer.digest) {
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
    Ok((sources, downloads))
}

/// Downloads layers, `max_concurrent_downloads` at once (3 by default).
async fn download_layers(
    session: &Session,
    downloads: Vec<LayerDownload>,
    options: &PullOptions,
) -> Result<(), ImageError> {
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
    Ok(())
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
