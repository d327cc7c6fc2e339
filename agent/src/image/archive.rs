//! Reading image archives: extracts an archive's regular files (plain, gzip or zstd tar) into a
//! scratch directory, refusing entry paths that would leave it, and reads the archive's layout —
//! `docker save`'s `manifest.json` (classic, and Docker 25+'s with an OCI layout beside it) or an
//! OCI image layout (`index.json` + `blobs/`) — into a list of images to import.
//!
//! Links inside the archive are never created on disk: they are remembered and followed lexically
//! (and only within the archive) when a manifest names a file. The JSON documents read here
//! (indexes, manifests) are verified against their digests; configs and layers are verified by the
//! store when it imports them. Writes nothing outside the scratch directory it is given.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::compression::decompress;
use super::digest::{sha256_hex, sha256_of};
use super::error::ImageError;
use super::reference::normalize_reference;
use super::unpack::sanitize;

/// OCI annotation naming an image in a layout (often only a tag).
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and Docker 25+'s) annotation carrying the full image name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// How many links a reference may follow inside an archive.
const MAX_LINK_HOPS: usize = 16;
/// How deeply image indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Refuses a layer descriptor whose media type is not a layer's.
pub(crate) fn check_layer_type(layer: &Descriptor) -> Result<(), ImageError> {
    let layer_type = layer.media_type.as_deref().unwrap_or_default();
    if LAYER_TYPES.contains(&layer_type) {
        return Ok(());
    }
    Err(ImageError::UnsupportedMediaType {
        digest: layer.digest.clone(),
        media_type: layer_type.to_owned(),
        role: "a layer",
    })
}

/// Refuses a config descriptor whose media type is not an image config's.
pub(crate) fn check_config_type(config: &Descriptor) -> Result<(), ImageError> {
    let config_type = config.media_type.as_deref().unwrap_or_default();
    if CONFIG_TYPES.contains(&config_type) {
        return Ok(());
    }
    Err(ImageError::UnsupportedMediaType {
        digest: config.digest.clone(),
        media_type: config_type.to_owned(),
        role: "an image config",
    })
}
pub(crate) const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// A file of the extracted archive that an image needs, with what is known about its identity.
#[derive(Debug, Clone)]
pub(crate) struct BlobSource {
    /// Where the extracted file is.
    pub path: PathBuf,
    /// How to name it in messages: its path in the archive.
    pub label: String,
    /// The digest it is referenced by, when the layout gives one; it must hash to it.
    pub digest: Option<String>,
    /// The size its descriptor gives, if any.
    pub size: Option<u64>,
}

/// One image found in an archive, not yet verified beyond its index and manifest.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveImage {
    /// Normalized names (may be empty: the image is then reachable by id only).
    pub names: Vec<String>,
    /// The image config.
    pub config: BlobSource,
    /// The layers, bottom to top.
    pub layers: Vec<BlobSource>,
    /// Manifest and index digests this image is known by (for `name@sha256:…`).
    pub digests: Vec<String>,
    /// Verified manifests and indexes to keep in the store: (digest, content).
    pub documents: Vec<(String, Vec<u8>)>,
}

/// A link inside the archive, remembered instead of created.
#[derive(Debug)]
enum Link {
    Symbolic(String),
    Hard(String),
}

/// An archive whose regular files are extracted into a scratch directory.
pub(crate) struct ExtractedArchive {
    archive: PathBuf,
    dir: PathBuf,
    files: HashSet<String>,
    links: HashMap<String, Link>,
    max_json_bytes: u64,
}

/// Extracts the regular files of `archive` into the existing directory `dir`, accepting at most
/// `max_bytes` of file content.
pub(crate) fn extract(
    archive: &Path,
    dir: &Path,
    max_bytes: u64,
    max_json_bytes: u64,
) -> Result<ExtractedArchive, ImageError> {
    let read_error = |source: io::Error| ImageError::ArchiveRead {
        archive: archive.to_owned(),
        source,
    };
    let file = File::open(archive).map_err(|e| ImageError::io("open", archive, e))?;
    let stream = decompress(BufReader::with_capacity(256 * 1024, file)).map_err(read_error)?;
    let mut tar = tar::Archive::new(stream);
    let mut extracted = ExtractedArchive {
        archive: archive.to_owned(),
        dir: dir.to_owned(),
        files: HashSet::new(),
        links: HashMap::new(),
        max_json_bytes,
    };
    let mut written = 0u64;
    let mut buf = vec![0u8; 128 * 1024];
    for entry in tar.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let Some(key) = entry_key(archive, &entry.path_bytes())? else {
            continue;
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let path = dir.join(&key);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|e| ImageError::io("create the directory", parent, e))?;
                }
                let mut out =
                    File::create(&path).map_err(|e| ImageError::io("create", &path, e))?;
                loop {
                    let n = entry.read(&mut buf).map_err(read_error)?;
                    if n == 0 {
                        break;
                    }
                    written += n as u64;
                    if written > max_bytes {
                        return Err(ImageError::ArchiveTooLarge {
                            archive: archive.to_owned(),
                            limit: max_bytes,
                        });
                    }
                    out.write_all(&buf[..n])
                        .map_err(|e| ImageError::io("write", &path, e))?;
                }
                extracted.links.remove(&key);
                extracted.files.insert(key);
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let link = if entry.header().entry_type() == tar::EntryType::Symlink {
                    Link::Symbolic(target)
                } else {
                    Link::Hard(target)
                };
                extracted.files.remove(&key);
                extracted.links.insert(key, link);
            }
            // Directories are created as files need them; nothing else matters in an archive.
            _ => {}
        }
    }
    Ok(extracted)
}

/// An archive entry's path as a key ("a/b/c"), `None` for the archive's root; refused when it
/// would leave the archive.
fn entry_key(archive: &Path, raw: &[u8]) -> Result<Option<String>, ImageError> {
    let components = sanitize(raw).map_err(|reason| ImageError::UnsafeArchiveEntry {
        archive: archive.to_owned(),
        entry: String::from_utf8_lossy(raw).into_owned(),
        reason,
    })?;
    if components.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        components
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    ))
}

impl ExtractedArchive {
    /// Finds the extracted file `name` refers to (following links within the archive).
    fn locate(&self, referrer: &str, name: &str) -> Result<PathBuf, ImageError> {
        let bad = |reason| ImageError::BadArchiveReference {
            referrer: referrer.to_owned(),
            file: name.to_owned(),
            reason,
        };
        let mut key = lexical_join("", name).ok_or_else(|| bad("is outside the archive"))?;
        for _ in 0..MAX_LINK_HOPS {
            if self.files.contains(&key) {
                return Ok(self.dir.join(&key));
            }
            key = match self.links.get(&key) {
                Some(Link::Hard(target)) => {
                    lexical_join("", target).ok_or_else(|| bad("links outside the archive"))?
                }
                Some(Link::Symbolic(target)) => {
                    let parent = key.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                    lexical_join(parent, target).ok_or_else(|| bad("links outside the archive"))?
                }
                None => {
                    return Err(ImageError::MissingArchiveFile {
                        referrer: referrer.to_owned(),
                        file: name.to_owned(),
                    })
                }
            };
        }
        Err(bad("is a chain of links that does not end"))
    }

    fn has(&self, name: &str) -> bool {
        self.files.contains(name) || self.links.contains_key(name)
    }

    /// Reads a small JSON document from the archive.
    fn read_json_file(
        &self,
        referrer: &str,
        name: &str,
        what: &'static str,
    ) -> Result<Vec<u8>, ImageError> {
        let path = self.locate(referrer, name)?;
        read_limited(&path, self.max_json_bytes, what, name)
    }

    /// Reads the blob `digest` (a small JSON document) and verifies its digest and size.
    fn read_json_blob(
        &self,
        referrer: &str,
        descriptor: &Descriptor,
        what: &'static str,
    ) -> Result<Vec<u8>, ImageError> {
        let hex = sha256_hex(&descriptor.digest)?;
        let name = format!("blobs/sha256/{hex}");
        let bytes = self.read_json_file(referrer, &name, what)?;
        let actual = sha256_of(&bytes);
        if actual != descriptor.digest {
            return Err(ImageError::BlobDigestMismatch {
                file: name,
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        if bytes.len() as u64 != descriptor.size {
            return Err(ImageError::BlobSizeMismatch {
                digest: descriptor.digest.clone(),
                expected: descriptor.size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// The images the archive holds, read from `manifest.json` when present, else `index.json`.
    pub(crate) fn images(&self) -> Result<Vec<ArchiveImage>, ImageError> {
        let images = if self.has("manifest.json") {
            self.docker_images()?
        } else if self.has("index.json") {
            self.oci_images()?
        } else {
            return Err(ImageError::NotAnImageArchive {
                archive: self.archive.clone(),
            });
        };
        if images.is_empty() {
            return Err(ImageError::NoImages {
                archive: self.archive.clone(),
            });
        }
        Ok(images)
    }

    /// `docker save`'s manifest.json (classic and Docker 25+).
    fn docker_images(&self) -> Result<Vec<ArchiveImage>, ImageError> {
        let bytes = self.read_json_file("the archive", "manifest.json", "docker manifest")?;
        let entries: Vec<DockerManifestEntry> =
            serde_json::from_slice(&bytes).map_err(|source| ImageError::InvalidJson {
                what: "docker manifest",
                file: "manifest.json".to_owned(),
                source,
            })?;
        // Docker 25+ also writes an OCI layout: it knows the manifest digests of the images.
        let mut digests_by_config = HashMap::new();
        if self.has("index.json") {
            match self.oci_images() {
                Ok(images) => {
                    for image in images {
                        if let Some(config) = image.config.digest {
                            digests_by_config.insert(config, (image.digests, image.documents));
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "ignoring the OCI layout beside manifest.json")
                }
            }
        }

        let mut images = Vec::new();
        for entry in entries {
            let referrer = "manifest.json";
            let names = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|tag| normalize_reference(tag))
                .collect::<Result<Vec<_>, _>>()?;
            let config_digest = digest_in_name(&entry.config, true);
            let config = BlobSource {
                path: self.locate(referrer, &entry.config)?,
                label: entry.config.clone(),
                digest: config_digest.clone(),
                size: None,
            };
            let layers = entry
                .layers
                .iter()
                .map(|layer| {
                    Ok(BlobSource {
                        path: self.locate(referrer, layer)?,
                        label: layer.clone(),
                        digest: digest_in_name(layer, false),
                        size: None,
                    })
                })
                .collect::<Result<Vec<_>, ImageError>>()?;
            let (digests, documents) = config_digest
                .and_then(|d| digests_by_config.get(&d).cloned())
                .unwrap_or_default();
            images.push(ArchiveImage {
                names,
                config,
                layers,
                digests,
                documents,
            });
        }
        Ok(images)
    }

    /// An OCI image layout: index.json → (indexes →) manifests.
    fn oci_images(&self) -> Result<Vec<ArchiveImage>, ImageError> {
        let bytes = self.read_json_file("the archive", "index.json", "OCI index")?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|source| ImageError::InvalidJson {
                what: "OCI index",
                file: "index.json".to_owned(),
                source,
            })?;
        let mut images = Vec::new();
        for descriptor in &index.manifests {
            let names = names_from_annotations(descriptor)?;
            if let Some(image) =
                self.oci_image(descriptor, "index.json", names, Vec::new(), Vec::new(), 0)?
            {
                images.push(image);
            }
        }
        Ok(images)
    }

    /// Follows one descriptor of an index to an image (`None` for content that is not an image).
    fn oci_image(
        &self,
        descriptor: &Descriptor,
        referrer: &str,
        names: Vec<String>,
        mut digests: Vec<String>,
        mut documents: Vec<(String, Vec<u8>)>,
        depth: usize,
    ) -> Result<Option<ArchiveImage>, ImageError> {
        if depth > MAX_INDEX_DEPTH {
            return Err(ImageError::BadArchiveReference {
                referrer: referrer.to_owned(),
                file: descriptor.digest.clone(),
                reason: "is nested in too many image indexes",
            });
        }
        let bytes = self.read_json_blob(referrer, descriptor, "OCI manifest or index")?;
        let document: Document =
            serde_json::from_slice(&bytes).map_err(|source| ImageError::InvalidJson {
                what: "OCI manifest or index",
                file: descriptor.digest.clone(),
                source,
            })?;
        let media_type = media_type(descriptor, &document);
        digests.push(descriptor.digest.clone());
        documents.push((descriptor.digest.clone(), bytes));
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let platform = host_platform();
                let chosen = choose_platform(
                    &document.manifests.unwrap_or_default(),
                    platform.0,
                    platform.1,
                    None,
                )
                .ok_or_else(|| ImageError::NoMatchingPlatform {
                    index: descriptor.digest.clone(),
                    platform: format!("{}/{}", platform.0, platform.1),
                })?;
                self.oci_image(
                    &chosen,
                    &descriptor.digest,
                    names,
                    digests,
                    documents,
                    depth + 1,
                )
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let (config, layers) = self.manifest_blobs(descriptor, referrer, document)?;
                Ok(Some(ArchiveImage {
                    names,
                    config,
                    layers,
                    digests,
                    documents,
                }))
            }
            other => {
                tracing::warn!(digest = %descriptor.digest, media_type = other,
                    "skipping archive content that is not an image");
                Ok(None)
            }
        }
    }

    /// An image manifest's config and layers in the archive, refused when a media type is not
    /// an image's.
    fn manifest_blobs(
        &self,
        descriptor: &Descriptor,
        referrer: &str,
        document: Document,
    ) -> Result<(BlobSource, Vec<BlobSource>), ImageError> {
        let config = document
            .config
            .ok_or_else(|| ImageError::BadArchiveReference {
                referrer: referrer.to_owned(),
                file: descriptor.digest.clone(),
                reason: "is a manifest without a config",
            })?;
        check_config_type(&config)?;
        let config = self.blob_source(&descriptor.digest, &config)?;
        let layers = document
            .layers
            .unwrap_or_default()
            .iter()
            .map(|layer| {
                check_layer_type(layer)?;
                self.blob_source(&descriptor.digest, layer)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((config, layers))
    }

    fn blob_source(
        &self,
        referrer: &str,
        descriptor: &Descriptor,
    ) -> Result<BlobSource, ImageError> {
        let hex = sha256_hex(&descriptor.digest)?;
        let label = format!("blobs/sha256/{hex}");
        Ok(BlobSource {
            path: self.locate(referrer, &label)?,
            label,
            digest: Some(descriptor.digest.clone()),
            size: Some(descriptor.size),
        })
    }
}

/// One image of `docker save`'s manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// An OCI manifest or index, read leniently (umoci omits `mediaType`, Docker uses its own).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Deserialize, Clone)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// What a document of an OCI layout is: its descriptor's media type, else its own, else
/// guessed from its fields (empty when neither an index nor a manifest).
fn media_type(descriptor: &Descriptor, document: &Document) -> String {
    descriptor
        .media_type
        .clone()
        .or_else(|| document.media_type.clone())
        .unwrap_or_else(|| {
            if document.manifests.is_some() {
                OCI_INDEX.to_owned()
            } else if document.config.is_some() {
                OCI_MANIFEST.to_owned()
            } else {
                String::new()
            }
        })
}

/// The manifest of an index that is for `os`/`arch` (and `variant`, when one is asked for;
/// otherwise the first one of that os and architecture).
pub(crate) fn choose_platform(
    manifests: &[Descriptor],
    os: &str,
    arch: &str,
    variant: Option<&str>,
) -> Option<Descriptor> {
    let matches = |m: &&Descriptor| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == arch)
    };
    let variant_of = |m: &Descriptor| m.platform.as_ref().and_then(|p| p.variant.clone());
    match variant {
        Some(v) => manifests
            .iter()
            .filter(matches)
            .find(|m| variant_of(m).as_deref() == Some(v))
            .or_else(|| {
                manifests
                    .iter()
                    .filter(matches)
                    .find(|m| variant_of(m).is_none())
            }),
        None => manifests.iter().find(matches),
    }
    .cloned()
}

/// Names from an index descriptor's annotations: containerd's full name, or the OCI ref name
/// when it is a full reference (a bare tag like "latest" names no repository).
fn names_from_annotations(descriptor: &Descriptor) -> Result<Vec<String>, ImageError> {
    let Some(annotations) = &descriptor.annotations else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    if let Some(name) = annotations.get(CONTAINERD_NAME) {
        names.push(normalize_reference(name)?);
    } else if let Some(name) = annotations.get(REF_NAME) {
        if name.contains(['/', ':', '@']) {
            names.push(normalize_reference(name)?);
        }
    }
    Ok(names)
}

/// The digest a docker-save path names: `blobs/sha256/<hex>`, or (for configs) `<hex>.json`.
fn digest_in_name(name: &str, config: bool) -> Option<String> {
    let name = name.strip_prefix("./").unwrap_or(name);
    let hex = match name.strip_prefix("blobs/sha256/") {
        Some(hex) => hex,
        None if config => name.strip_suffix(".json")?,
        None => return None,
    };
    super::digest::is_sha256_hex(hex).then(|| format!("sha256:{hex}"))
}

/// Joins `base` and a relative `path` lexically, resolving `.` and `..`; `None` if it escapes.
fn lexical_join(base: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Reads a whole small file, refusing more than `limit` bytes.
pub(crate) fn read_limited(
    path: &Path,
    limit: u64,
    what: &'static str,
    label: &str,
) -> Result<Vec<u8>, ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::io("read", path, e))?;
    if bytes.len() as u64 > limit {
        return Err(ImageError::JsonTooLarge {
            what,
            file: label.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// This machine's platform as OCI names it: ("linux", GOARCH).
pub(crate) fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}
