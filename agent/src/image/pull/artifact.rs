//! Pulling an OCI artifact that is not an image — a Helm chart as `helm push` lays it out: a
//! manifest whose config has the artifact's own media type and whose layer is the content —
//! through the same endpoints, mirrors, credentials, TLS and guard as image pulls. Nothing
//! goes into the image store: the layer's bytes are returned, checked against the digest and
//! size the manifest gives.

use super::*;

/// What artifact is wanted.
#[derive(Debug, Clone)]
pub struct ArtifactKind {
    /// The config's media type (`application/vnd.cncf.helm.config.v1+json`).
    pub config_media_type: &'static str,
    /// The content layer's media type (`application/vnd.cncf.helm.chart.content.v1.tar+gzip`).
    pub layer_media_type: &'static str,
    /// The largest content accepted, in bytes.
    pub max_bytes: u64,
    /// What it is, for messages ("Helm chart").
    pub what: &'static str,
}

/// A pulled artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The manifest's digest.
    pub manifest_digest: String,
    /// The content layer's digest (`sha256:…`), which `bytes` hash to.
    pub layer_digest: String,
    /// The content.
    pub bytes: Vec<u8>,
    /// `scheme://host` of the endpoint it came from.
    pub endpoint: String,
}

/// Pulls the artifact `reference` names (`host/path/name:tag` or `…@sha256:…`), trying the
/// endpoints registries.yaml gives in order, as an image pull does. Refused when the
/// manifest is not the artifact's kind (an image, an index), has no or several content
/// layers, or its content is larger than `kind.max_bytes`.
pub async fn pull_artifact(
    reference: &str,
    options: &PullOptions,
    kind: &ArtifactKind,
) -> Result<Artifact, ImageError> {
    let mut attempts = Attempts::new(reference, options)?;
    while let Some(session) = attempts.next_session() {
        let (manifest_digest, layer) = match resolve(&session, &attempts.reference, kind).await {
            Ok(found) => found,
            Err(e) => {
                attempts.failed(&session, e)?;
                continue;
            }
        };
        let bytes = session
            .small_blob(
                &layer.digest,
                layer.size,
                "artifact content",
                kind.max_bytes,
            )
            .await?;
        return Ok(Artifact {
            manifest_digest,
            layer_digest: layer.digest,
            bytes,
            endpoint: session.endpoint.url(),
        });
    }
    Err(attempts.combined())
}

/// The manifest's digest and its content layer.
async fn resolve(
    session: &Session,
    reference: &Reference,
    kind: &ArtifactKind,
) -> Result<(String, Descriptor), ImageError> {
    let target = reference
        .digest
        .clone()
        .or_else(|| reference.tag.clone())
        .unwrap_or_else(|| "latest".into());
    // A manifest is small; an image's bound on JSON documents is plenty.
    let (bytes, content_type, header_digest) = session.manifest(&target, 4 << 20).await?;
    let digest = sha256_of(&bytes);
    check_manifest_digest(session, reference, header_digest, &digest)?;
    let (document, media_type) =
        parse_document(&bytes, content_type.as_deref(), &digest, &session.reference)?;
    let bad = |reason: String| ImageError::BadManifest {
        what: "manifest",
        digest: digest.clone(),
        reference: session.reference.clone(),
        reason,
    };
    if media_type != OCI_MANIFEST {
        return Err(bad(format!(
            "it is {media_type}, not an OCI manifest of a {}",
            kind.what
        )));
    }
    let config_type = document
        .config
        .as_ref()
        .and_then(|c| c.media_type.clone())
        .unwrap_or_default();
    if config_type != kind.config_media_type {
        return Err(bad(format!(
            "its config is {config_type:?}, not {:?}: it is not a {}",
            kind.config_media_type, kind.what
        )));
    }
    let mut content = document
        .layers
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.media_type.as_deref() == Some(kind.layer_media_type));
    let (Some(layer), None) = (content.next(), content.next()) else {
        return Err(bad(format!(
            "it must have exactly one layer of type {}",
            kind.layer_media_type
        )));
    };
    sha256_hex(&layer.digest)?;
    if layer.size > kind.max_bytes {
        return Err(bad(format!(
            "its {} is {} bytes, more than skiff's bound of {} MiB",
            kind.what,
            layer.size,
            kind.max_bytes >> 20
        )));
    }
    Ok((digest, layer))
}
