//! The image store's one error type. Every variant names the archive, entry, file or digest it is
//! about, so an operator can act on the message alone.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while importing, unpacking, resolving or listing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation on the store or on an archive failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done, as a verb phrase ("create", "read", "rename … to").
        action: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Another process holds the store and the lock could not be taken.
    #[error("could not lock the image store at {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The archive could not be read as a (possibly compressed) tar stream.
    #[error("could not read archive {}: {source}", archive.display())]
    ArchiveRead {
        /// The archive file.
        archive: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An entry of the outer archive has an absolute path or a `..` component.
    #[error(
        "archive {} contains the entry {entry:?}, whose path {reason}; refusing the import",
        archive.display()
    )]
    UnsafeArchiveEntry {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path as written in the archive.
        entry: String,
        /// Why the path is unsafe.
        reason: &'static str,
    },

    /// The archive's files add up to more than the configured limit.
    #[error("archive {} unpacks to more than {limit} bytes; refusing the import", archive.display())]
    ArchiveTooLarge {
        /// The archive file.
        archive: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// The archive has neither `manifest.json` nor `index.json`.
    #[error(
        "archive {} is neither a `docker save` archive (no manifest.json) nor an OCI image layout (no index.json)",
        archive.display()
    )]
    NotAnImageArchive {
        /// The archive file.
        archive: PathBuf,
    },

    /// The archive describes no image at all.
    #[error("archive {} contains no images", archive.display())]
    NoImages {
        /// The archive file.
        archive: PathBuf,
    },

    /// A file named by a manifest or index is not in the archive.
    #[error("{referrer} refers to {file:?}, which is not in the archive")]
    MissingArchiveFile {
        /// Which document made the reference (for example "manifest.json").
        referrer: String,
        /// The path that was referred to.
        file: String,
    },

    /// A reference between archive files points outside the archive, or loops.
    #[error("{referrer} refers to {file:?}, which {reason}")]
    BadArchiveReference {
        /// Which document made the reference.
        referrer: String,
        /// The path that was referred to.
        file: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A JSON document (manifest.json, index, manifest, config) could not be parsed.
    #[error("could not parse {what} {file}: {source}")]
    InvalidJson {
        /// What kind of document it is ("image config", "OCI index"…).
        what: &'static str,
        /// Where it came from (archive path or digest).
        file: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A JSON document is larger than any sane manifest or config.
    #[error("{what} {file} is larger than {limit} bytes; refusing to read it")]
    JsonTooLarge {
        /// What kind of document it is.
        what: &'static str,
        /// Where it came from.
        file: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// A string that should be a digest is not one this store understands.
    #[error("{digest:?} is not a valid sha256 digest (expected \"sha256:\" and 64 lowercase hex digits)")]
    InvalidDigest {
        /// The offending string.
        digest: String,
    },

    /// A blob's content does not hash to the digest it is referenced by.
    #[error(
        "blob {file} was expected to have digest {expected} but its content hashes to {actual}; refusing the import"
    )]
    BlobDigestMismatch {
        /// The file in the archive.
        file: String,
        /// The digest it was referenced by.
        expected: String,
        /// What it actually hashes to.
        actual: String,
    },

    /// A blob's size differs from its descriptor's.
    #[error("blob {digest} was expected to be {expected} bytes long but is {actual} bytes; refusing the import")]
    BlobSizeMismatch {
        /// The blob's digest.
        digest: String,
        /// The size from the descriptor.
        expected: u64,
        /// The actual size.
        actual: u64,
    },

    /// A layer's uncompressed content does not hash to the config's `rootfs.diff_ids` entry.
    #[error(
        "layer {file}: its uncompressed content hashes to {actual}, but the image config expects diff_id {expected}; refusing the import"
    )]
    DiffIdMismatch {
        /// The layer file in the archive.
        file: String,
        /// The diff id from the image config.
        expected: String,
        /// What the uncompressed layer actually hashes to.
        actual: String,
    },

    /// A manifest lists a different number of layers than its config has diff ids.
    #[error(
        "image config {config} lists {diff_ids} diff_ids but its manifest lists {layers} layers"
    )]
    LayerCountMismatch {
        /// The config's digest.
        config: String,
        /// How many layers the manifest names.
        layers: usize,
        /// How many diff ids the config names.
        diff_ids: usize,
    },

    /// A descriptor points at content this store cannot import.
    #[error("{digest} has media type {media_type:?}, which skiff cannot import as {role}")]
    UnsupportedMediaType {
        /// The descriptor's digest.
        digest: String,
        /// Its media type.
        media_type: String,
        /// What it was expected to be ("a manifest", "a layer"…).
        role: &'static str,
    },

    /// An image index has no manifest for this machine's platform.
    #[error("image index {index} has no manifest for {platform}")]
    NoMatchingPlatform {
        /// The index's digest.
        index: String,
        /// The platform looked for, for example "linux/amd64".
        platform: String,
    },

    /// A reference (image name) is malformed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A layer entry would escape the layer directory or write through a link.
    #[error("layer {layer}: entry {entry:?} {reason}; refusing the import")]
    UnsafeLayerEntry {
        /// The layer (its file in the archive).
        layer: String,
        /// The entry's path as written in the layer.
        entry: String,
        /// Why it is refused.
        reason: String,
    },

    /// A layer entry has a type skiff does not unpack.
    #[error("layer {layer}: entry {entry:?} has unsupported tar type {kind}; refusing the import")]
    UnsupportedLayerEntry {
        /// The layer.
        layer: String,
        /// The entry's path.
        entry: String,
        /// The tar type flag.
        kind: String,
    },

    /// A layer decompresses to more than the configured maximum (a decompression bomb).
    #[error("layer {layer} unpacks to more than {limit} bytes; refusing the import")]
    LayerTooLarge {
        /// The layer.
        layer: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// A layer's (decompressed) tar stream could not be read.
    #[error("could not read layer {layer}: {source}")]
    LayerRead {
        /// The layer.
        layer: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Reading or writing a layer entry failed.
    #[error("layer {layer}: could not unpack entry {entry:?}: {source}")]
    LayerEntry {
        /// The layer.
        layer: String,
        /// The entry's path.
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An image record in `images/` is unreadable.
    #[error("image record {} is corrupt: {reason}", path.display())]
    CorruptRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An image record names a layer that is not unpacked in the store.
    #[error("image {image} needs layer {diff_id}, which is missing from the store")]
    LayerMissing {
        /// The image id.
        image: String,
        /// The missing layer's diff id.
        diff_id: String,
    },

    /// A registry answered with an error (its own message is kept), or could not be reached.
    #[error("pulling {reference} from {endpoint}: {message}")]
    Registry {
        /// The reference being pulled.
        reference: String,
        /// The endpoint (scheme://host) that answered.
        endpoint: String,
        /// The HTTP status and the registry's own message, or the transport error.
        message: String,
    },

    /// Downloaded content does not hash to the digest it was asked for by.
    #[error(
        "{what} {digest} from {endpoint} hashes to {actual}: the registry served corrupt or tampered content; nothing of it was kept"
    )]
    DownloadDigestMismatch {
        /// What it is ("layer", "manifest", "image config", "image index").
        what: &'static str,
        /// The digest it was referenced by.
        digest: String,
        /// What the downloaded bytes hash to.
        actual: String,
        /// Where it came from.
        endpoint: String,
    },

    /// Downloaded content has another size than its descriptor says, or the download stopped early.
    #[error("{what} {digest} from {endpoint}: {reason}; nothing of it was kept")]
    DownloadIncomplete {
        /// What it is.
        what: &'static str,
        /// Its digest.
        digest: String,
        /// Where it came from.
        endpoint: String,
        /// What went wrong ("got 10 of 20 bytes"…).
        reason: String,
    },

    /// A manifest or index from a registry is malformed or of a kind skiff cannot pull.
    #[error("{what} {digest} of {reference}: {reason}")]
    BadManifest {
        /// What it is.
        what: &'static str,
        /// Its digest.
        digest: String,
        /// The reference being pulled.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The registries configuration (registries.yaml) is invalid.
    #[error("registries configuration {}: {reason}", path.display())]
    RegistriesConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        reason: super::registries::RegistriesError,
    },

    /// An image is still used by a container and may not be removed.
    #[error("image {image} is used by container {container}; not removing it")]
    InUse {
        /// The image (name or id).
        image: String,
        /// A container using it.
        container: String,
    },

    /// No image in the store matches a reference.
    #[error("no image {reference} in the store")]
    NotFound {
        /// The reference.
        reference: String,
    },
}

impl ImageError {
    /// Builds an [`ImageError::Io`] from an action and a path.
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        ImageError::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }
}
