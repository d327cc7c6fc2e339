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

/// The tags of `reference`'s repository (`GET /v2/<name>/tags/list`, following `Link`
/// pages), from the first endpoint that answers — what Helm lists to pick a chart version
/// from a range. At most `MAX_TAG_PAGES` pages of 4 MiB each.
pub async fn list_tags(reference: &str, options: &PullOptions) -> Result<Vec<String>, ImageError> {
    const MAX_TAG_PAGES: usize = 100;
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let mut attempts = Attempts::new(reference, options)?;
    'endpoints: while let Some(session) = attempts.next_session() {
        let mut tags = Vec::new();
        let mut url = session.url("tags", "list");
        for _ in 0..MAX_TAG_PAGES {
            let response = match session.get(&url, None, 0).await {
                Ok(r) => r,
                Err(e) => {
                    attempts.failed(&session, e)?;
                    continue 'endpoints;
                }
            };
            let next = response
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|h| h.to_str().ok())
                .and_then(next_link);
            let bytes = session
                .read_limited(response, 4 << 20, "tag list", &url)
                .await?;
            let page: Tags = serde_json::from_slice(&bytes)
                .map_err(|e| session.error(format!("the tag list is not valid JSON: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(path) if path.starts_with('/') => {
                    url = format!("{}{path}", session.endpoint.url());
                }
                _ => return Ok(tags),
            }
        }
        return Err(session.error(format!("the tag list has more than {MAX_TAG_PAGES} pages")));
    }
    Err(attempts.combined())
}

/// The path of a `Link: </v2/…?last=x&n=100>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_link() {
        assert_eq!(
            super::next_link("</v2/charts/x/tags/list?last=1.0.0&n=100>; rel=\"next\"").as_deref(),
            Some("/v2/charts/x/tags/list?last=1.0.0&n=100")
        );
        assert_eq!(super::next_link("<https://other/x>; rel=\"prev\""), None);
    }
}
