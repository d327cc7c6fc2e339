//! Image references ("nginx", "user/app:1", "registry.lan:5000/x/y@sha256:…"): parsing and
//! normalizing them exactly as Docker and Kubernetes do, following the grammar of
//! `github.com/distribution/reference`. Knows nothing about the store.

use super::digest::is_sha256_hex;
use super::error::ImageError;

/// The registry that names without a domain belong to.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The repository prefix of single-component names on the default registry.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag of references that name neither a tag nor a digest.
const DEFAULT_TAG: &str = "latest";
/// The longest repository name (domain/path) the grammar allows.
const MAX_NAME_LEN: usize = 255;
/// The longest tag the grammar allows.
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry, for example "docker.io" or "registry.lan:5000".
    pub domain: String,
    /// The repository path inside the registry, for example "library/nginx".
    pub path: String,
    /// The tag; `None` when the reference has a digest (a digest wins over a tag).
    pub tag: Option<String>,
    /// The digest, `sha256:<hex>`, if the reference pins one.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes `reference`.
    pub fn parse(reference: &str) -> Result<Reference, ImageError> {
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: reference.to_owned(),
            reason,
        };
        if reference.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if reference.trim() != reference {
            return Err(invalid("it has leading or trailing whitespace".into()));
        }
        let (remainder, digest) = split_digest(reference).map_err(invalid)?;
        let (name, tag) = split_tag(remainder).map_err(invalid)?;
        if name.is_empty() {
            return Err(invalid("it has no repository name".into()));
        }
        let (domain, path) = normalize_name(name).map_err(invalid)?;
        let tag = match (&digest, tag) {
            (Some(_), _) => None,
            (None, Some(tag)) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The repository, `domain/path`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

/// Splits `name@sha256:<hex>` into the name and the digest; the reason when the digest is
/// malformed.
fn split_digest(reference: &str) -> Result<(&str, Option<String>), String> {
    const BAD_DIGEST: &str = "its digest must be \"sha256:\" followed by 64 lowercase hex digits";
    match reference.split_once('@') {
        Some((name, digest)) => {
            let hex = digest
                .strip_prefix("sha256:")
                .ok_or_else(|| BAD_DIGEST.to_owned())?;
            if !is_sha256_hex(hex) {
                return Err(BAD_DIGEST.to_owned());
            }
            Ok((name, Some(digest.to_owned())))
        }
        None => Ok((reference, None)),
    }
}

/// Splits `name:tag` into the name and the tag (a tag follows the last ':' that comes after
/// the last '/': a ':' before it is a port); the reason when the tag is malformed.
fn split_tag(remainder: &str) -> Result<(&str, Option<&str>), String> {
    let last_slash = remainder.rfind('/');
    let (name, tag) = match remainder.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            (&remainder[..colon], Some(&remainder[colon + 1..]))
        }
        _ => (remainder, None),
    };
    if let Some(tag) = tag {
        if !valid_tag(tag) {
            return Err(format!(
                "tag {tag:?} must be 1 to {MAX_TAG_LEN} characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            ));
        }
    }
    Ok((name, tag))
}

/// A repository name as (domain, path), normalized as Docker does (docker.io, `library/`);
/// the reason when it is not valid.
fn normalize_name(name: &str) -> Result<(String, String), String> {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if !valid_domain(&domain) {
        return Err(format!("registry {domain:?} is not a valid host[:port]"));
    }
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_owned()
    } else {
        domain
    };
    if path.is_empty() {
        return Err("it has no repository path after the registry".into());
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".into());
    }
    if let Some(component) = path.split('/').find(|c| !valid_path_component(c)) {
        return Err(format!(
            "path component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
        ));
    }
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    if domain.len() + 1 + path.len() > MAX_NAME_LEN {
        return Err(format!(
            "the repository name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    Ok((domain, path))
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")
        } else if let Some(tag) = &self.tag {
            write!(f, ":{tag}")
        } else {
            Ok(())
        }
    }
}

/// Normalizes as Docker/Kubernetes do: "nginx" → "docker.io/library/nginx:latest",
/// "user/app" → "docker.io/user/app:latest", "host:5000/a/b" → "host:5000/a/b:latest";
/// a digest reference keeps its digest (with both a tag and a digest, the digest is kept).
pub fn normalize_reference(reference: &str) -> Result<String, ImageError> {
    Reference::parse(reference).map(|r| r.to_string())
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional numeric port.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if host.is_empty() {
        // Only reachable for a bracketed IPv6 address with a port.
        return domain.starts_with('[');
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/library/demo:1", "docker.io/library/demo:1"),
            (
                "index.docker.io/library/demo",
                "docker.io/library/demo:latest",
            ),
            ("docker.io/demo", "docker.io/library/demo:latest"),
            ("host:5000/a/b", "host:5000/a/b:latest"),
            ("registry.lan:5000/x/y:tag", "registry.lan:5000/x/y:tag"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("ab-c__d/e--f.g_h", "docker.io/ab-c__d/e--f.g_h:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_reference(input).unwrap(), want, "input {input:?}");
        }
        assert_eq!(
            normalize_reference(&format!("demo@{D}")).unwrap(),
            format!("docker.io/library/demo@{D}")
        );
        assert_eq!(
            normalize_reference(&format!("r.lan:5000/demo:1@{D}")).unwrap(),
            format!("r.lan:5000/demo@{D}")
        );
    }

    #[test]
    fn rejects_invalid_references() {
        for bad in [
            "",
            " nginx",
            "Nginx",
            "ghcr.io/Org/app",
            "nginx:",
            "nginx:-x",
            "a//b",
            "a.b-c__d/x",
            "a/b__-c",
            "a/",
            "/a",
            "a..b",
            "a_-b",
            "nginx@sha256:abc",
            "nginx@md5:0123",
            "host:port/a",
            ":tag",
            "-a",
        ] {
            let err = normalize_reference(bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "message names the reference: {err}"
            );
        }
    }
}
