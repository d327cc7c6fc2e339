//! Pull tests against a tiny in-process registry (HTTP/1.1 on loopback) that can misbehave on
//! purpose: cut a download in the middle, serve corrupt or malformed content, ask for a Bearer
//! token. The real `docker-registry` is exercised by the e2e tests.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use flate2::write::GzEncoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::auth::Credentials;
use super::digest::sha256_of;
use super::pull::PullOptions;
use super::registries::RegistriesConfig;
use super::{ImageError, ImageStore, ImportLimits};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Default)]
struct State {
    /// path → (content type, body)
    routes: HashMap<String, (String, Vec<u8>)>,
    /// Paths whose first GET is cut after half the body.
    cut_once: Vec<String>,
    /// Requests seen: (path, range header, authorization header).
    seen: Vec<(String, Option<String>, Option<String>)>,
    /// When set: (user, password, token) — /v2/ paths need `Bearer token`.
    bearer: Option<(String, String, String)>,
    /// An OAuth2 refresh token the token service also accepts (POST).
    refresh: Option<String>,
    /// Blob GETs answer 307 to `/storage/…` on this other host name (as Docker Hub sends blobs
    /// to its storage), served there without authentication.
    redirect_blobs_to: Option<String>,
}

struct MockRegistry {
    host: String,
    state: Arc<Mutex<State>>,
}

impl MockRegistry {
    async fn start() -> MockRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let h = host.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = buf[end..].to_vec();
                    while body.len() < length {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let mut lines = head.lines();
                    let path = lines
                        .next()
                        .unwrap_or_default()
                        .split(' ')
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let header = |name: &str| {
                        head.lines()
                            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                            .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
                    };
                    let (range, auth) = (header("range"), header("authorization"));
                    let response = respond(&st, &h, &path, range.clone(), auth.clone(), &body);
                    st.lock().unwrap().seen.push((path, range, auth));
                    let _ = conn.write_all(&response).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        MockRegistry { host, state }
    }

    fn serve(&self, path: &str, content_type: &str, body: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), (content_type.to_owned(), body));
    }

    /// Serves an image as `repo:tag`: returns (manifest digest, config digest, layer digest).
    fn image(
        &self,
        repo: &str,
        tag: &str,
        layer_tar: &[u8],
        corrupt_layer: bool,
    ) -> (String, String, String) {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(layer_tar).unwrap();
        let layer = gz.finish().unwrap();
        let layer_digest = sha256_of(&layer);
        let diff_id = sha256_of(layer_tar);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .unwrap();
        let config_digest = sha256_of(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let manifest_digest = sha256_of(&manifest);
        let mut served_layer = layer;
        if corrupt_layer {
            let mid = served_layer.len() / 2;
            served_layer[mid] ^= 0xff;
        }
        self.serve(
            &format!("/v2/{repo}/manifests/{tag}"),
            OCI_MANIFEST,
            manifest.clone(),
        );
        self.serve(
            &format!("/v2/{repo}/manifests/{manifest_digest}"),
            OCI_MANIFEST,
            manifest,
        );
        self.serve(
            &format!("/v2/{repo}/blobs/{config_digest}"),
            "application/octet-stream",
            config,
        );
        self.serve(
            &format!("/v2/{repo}/blobs/{layer_digest}"),
            "application/octet-stream",
            served_layer,
        );
        (manifest_digest, config_digest, layer_digest)
    }

    fn options(&self) -> PullOptions {
        PullOptions {
            registries: RegistriesConfig::parse(&format!(
                "mirrors:\n  mock.test:\n    endpoint: [\"http://{}\"]\n",
                self.host
            ))
            .unwrap(),
            ..Default::default()
        }
    }
}

fn respond(
    st: &Mutex<State>,
    host: &str,
    path: &str,
    range: Option<String>,
    auth: Option<String>,
    request_body: &str,
) -> Vec<u8> {
    let mut st = st.lock().unwrap();
    let plain = |status: &str, extra: &str, body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    if let Some(storage) = path.strip_prefix("/storage") {
        let Some((content_type, body)) = st.routes.get(storage).cloned() else {
            return plain("404 Not Found", "", b"");
        };
        return plain(
            "200 OK",
            &format!("Content-Type: {content_type}\r\n"),
            &body,
        );
    }
    if let Some((user, password, token)) = st.bearer.clone() {
        if path == "/token" {
            let ok = st.refresh.as_ref().is_some_and(|r| {
                request_body.contains("grant_type=refresh_token")
                    && request_body.contains(&format!("refresh_token={r}"))
                    && request_body.contains("scope=repository%3Amock%2Fapp%3Apull")
            });
            if !ok {
                return plain("400 Bad Request", "", b"{\"error\":\"invalid_grant\"}");
            }
            return plain(
                "200 OK",
                "Content-Type: application/json\r\n",
                format!("{{\"access_token\":\"{token}\"}}").as_bytes(),
            );
        }
        if let Some(query) = path.strip_prefix("/token?") {
            let expected = Credentials {
                username: Some(user),
                password: Some(password),
                token: None,
                identity_token: None,
            }
            .basic_header();
            if auth != expected || !query.contains("scope=repository%3Amock%2Fapp%3Apull") {
                return plain("401 Unauthorized", "", b"{\"details\":\"bad credentials\"}");
            }
            return plain(
                "200 OK",
                "Content-Type: application/json\r\n",
                format!("{{\"token\":\"{token}\"}}").as_bytes(),
            );
        }
        if auth.as_deref() != Some(&format!("Bearer {token}")) {
            return plain(
                "401 Unauthorized",
                &format!("WWW-Authenticate: Bearer realm=\"http://{host}/token\",service=\"mock\"\r\nContent-Type: application/json\r\n"),
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
        }
    }
    if let Some(other) = st
        .redirect_blobs_to
        .clone()
        .filter(|_| path.contains("/blobs/"))
    {
        return plain(
            "307 Temporary Redirect",
            &format!("Location: http://{other}/storage{path}\r\n"),
            b"",
        );
    }
    let Some((content_type, body)) = st.routes.get(path).cloned() else {
        return plain(
            "404 Not Found",
            "Content-Type: application/json\r\n",
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        );
    };
    let from: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    if let Some(i) = st.cut_once.iter().position(|p| p == path) {
        st.cut_once.remove(i);
        // Promise the whole body, send half, hang up.
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body[..body.len() / 2]);
        return r;
    }
    if from > 0 {
        let rest = &body[from.min(body.len())..];
        let mut r = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n",
            rest.len(),
            body.len() - 1,
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(rest);
        return r;
    }
    plain(
        "200 OK",
        &format!("Content-Type: {content_type}\r\n"),
        &body,
    )
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_704_067_200);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Nothing but the (empty) store's own directories and lock files.
fn assert_nothing_kept(store: &ImageStore, digest: &str) {
    let root = store.root();
    for dir in ["images", "layers", "tmp"] {
        let left: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    let hex = digest.trim_start_matches("sha256:");
    assert!(!root.join("blobs/sha256").join(hex).exists());
}

#[tokio::test]
async fn pulls_and_resumes_an_interrupted_download() {
    let registry = MockRegistry::start().await;
    let big: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let tar = layer_tar(&[("etc/hello", b"hello\n"), ("big.bin", &big)]);
    let (manifest, config, layer) = registry.image("mock/app", "v1", &tar, false);
    registry
        .state
        .lock()
        .unwrap()
        .cut_once
        .push(format!("/v2/mock/app/blobs/{layer}"));
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let image = super::pull::pull(&store, "mock.test/mock/app:v1", &registry.options())
        .await
        .unwrap();
    assert_eq!(image.id, config);
    assert_eq!(image.names, vec!["mock.test/mock/app:v1".to_owned()]);
    assert_eq!(
        std::fs::read(image.layers[0].join("etc/hello")).unwrap(),
        b"hello\n"
    );
    let seen = registry.state.lock().unwrap().seen.clone();
    assert!(
        seen.iter().any(|(p, r, _)| p.ends_with(&layer)
            && r.as_deref().is_some_and(|r| r.starts_with("bytes="))),
        "the download resumed with a Range request: {seen:?}"
    );
    // The same image by digest resolves locally, and a second pull downloads no layer.
    assert!(store
        .resolve(&format!("mock.test/mock/app@{manifest}"))
        .unwrap()
        .is_some());
    let before = registry.state.lock().unwrap().seen.len();
    super::pull::pull(&store, "mock.test/mock/app:v1", &registry.options())
        .await
        .unwrap();
    let seen = registry.state.lock().unwrap().seen.clone();
    assert!(
        !seen[before..].iter().any(|(p, _, _)| p.ends_with(&layer)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn refuses_a_corrupt_layer_naming_its_digest_and_keeps_nothing() {
    let registry = MockRegistry::start().await;
    let (_, _, layer) = registry.image("mock/app", "v1", &layer_tar(&[("a", b"a")]), true);
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let err = super::pull::pull(&store, "mock.test/mock/app:v1", &registry.options())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::DownloadDigestMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&layer), "{err}");
    assert_nothing_kept(&store, &layer);
}

#[tokio::test]
async fn refuses_malformed_and_mismatching_manifests() {
    let registry = MockRegistry::start().await;
    registry.serve(
        "/v2/mock/bad/manifests/v1",
        OCI_MANIFEST,
        b"{\"schemaVersion\": 2, \"config\": ".to_vec(),
    );
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let err = super::pull::pull(&store, "mock.test/mock/bad:v1", &registry.options())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::BadManifest { .. }), "{err}");
    assert!(
        err.to_string().contains("sha256:"),
        "names the digest: {err}"
    );

    // A pinned digest the registry's content does not match.
    let (manifest, _, _) = registry.image("mock/app", "v1", &layer_tar(&[("a", b"a")]), false);
    let other = sha256_of(b"something else");
    let (ct, body) = registry.state.lock().unwrap().routes
        [&format!("/v2/mock/app/manifests/{manifest}")]
        .clone();
    registry.serve(&format!("/v2/mock/app/manifests/{other}"), &ct, body);
    let err = super::pull::pull(
        &store,
        &format!("mock.test/mock/app@{other}"),
        &registry.options(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ImageError::DownloadDigestMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&other), "{err}");

    // An unknown tag: the registry's own words.
    let err = super::pull::pull(&store, "mock.test/mock/none:v1", &registry.options())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("MANIFEST_UNKNOWN: manifest unknown"),
        "{err}"
    );
    assert_nothing_kept(&store, &other);
}

#[tokio::test]
async fn refuses_a_decompression_bomb() {
    let registry = MockRegistry::start().await;
    let zeros = vec![0u8; 4 << 20];
    let (_, _, layer) = registry.image("mock/bomb", "v1", &layer_tar(&[("zeros", &zeros)]), false);
    let data = tempfile::tempdir().unwrap();
    let limits = ImportLimits {
        max_layer_bytes: 1 << 20,
        ..ImportLimits::default()
    };
    let store = ImageStore::open_with_limits(data.path(), limits).unwrap();
    let err = super::pull::pull(&store, "mock.test/mock/bomb:v1", &registry.options())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::LayerTooLarge { .. }), "{err}");
    assert!(err.to_string().contains(&layer), "{err}");
    assert_nothing_kept(&store, &layer);
}

#[tokio::test]
async fn bearer_token_flow_with_pull_secret_credentials() {
    let registry = MockRegistry::start().await;
    let (_, config, _) = registry.image("mock/app", "v1", &layer_tar(&[("a", b"a")]), false);
    registry.state.lock().unwrap().bearer = Some(("u".into(), "p".into(), "tok123".into()));
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    // Anonymous: the token service refuses; the message says so.
    let err = super::pull::pull(&store, "mock.test/mock/app:v1", &registry.options())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("token service"), "{err}");
    // With the credentials of a pull secret for the registry's name.
    let mut options = registry.options();
    options.credentials = vec![(
        "mock.test".into(),
        Credentials {
            username: Some("u".into()),
            password: Some("p".into()),
            token: None,
            identity_token: None,
        },
    )];
    let image = super::pull::pull(&store, "mock.test/mock/app:v1", &options)
        .await
        .unwrap();
    assert_eq!(image.id, config);
    // An identity token (OAuth2 refresh token) from a docker config is traded for a token.
    registry.state.lock().unwrap().refresh = Some("refresh-me".into());
    let mut options = registry.options();
    options.credentials = super::auth::parse_docker_config(
        br#"{"auths":{"mock.test":{"identitytoken":"refresh-me"}}}"#,
        true,
    )
    .unwrap();
    let other_data = tempfile::tempdir().unwrap();
    let other = ImageStore::open(other_data.path()).unwrap();
    let image = super::pull::pull(&other, "mock.test/mock/app:v1", &options)
        .await
        .unwrap();
    assert_eq!(image.id, config);
}

#[tokio::test]
async fn follows_blob_redirects_without_sending_credentials_elsewhere() {
    let registry = MockRegistry::start().await;
    let (_, config, layer) = registry.image("mock/app", "v1", &layer_tar(&[("a", b"a")]), false);
    let port = registry.host.rsplit_once(':').unwrap().1.to_owned();
    {
        let mut st = registry.state.lock().unwrap();
        st.bearer = Some(("u".into(), "p".into(), "tok123".into()));
        // Another host name for the same server: a cross-origin redirect.
        st.redirect_blobs_to = Some(format!("localhost:{port}"));
    }
    let credentials = vec![(
        "mock.test".into(),
        Credentials {
            username: Some("u".into()),
            password: Some("p".into()),
            token: None,
            identity_token: None,
        },
    )];
    // The storage host is the node itself: refused unless registries.yaml names it.
    let mut options = registry.options();
    options.credentials = credentials.clone();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let refused = super::pull::pull(&store, "mock.test/mock/app:v1", &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("refused to connect to localhost:{port}")),
        "{refused}"
    );
    let mut options = PullOptions {
        registries: RegistriesConfig::parse(&format!(
            "mirrors:\n  mock.test:\n    endpoint: [\"http://{}\"]\nconfigs:\n  \"localhost:{port}\": {{}}\n",
            registry.host
        ))
        .unwrap(),
        ..Default::default()
    };
    options.credentials = credentials;
    let image = super::pull::pull(&store, "mock.test/mock/app:v1", &options)
        .await
        .unwrap();
    assert_eq!(image.id, config);
    let seen = registry.state.lock().unwrap().seen.clone();
    let storage: Vec<_> = seen
        .iter()
        .filter(|(p, _, _)| p.starts_with("/storage"))
        .collect();
    assert!(
        storage.iter().any(|(p, _, _)| p.ends_with(&layer)),
        "{seen:?}"
    );
    assert!(
        storage.iter().all(|(_, _, auth)| auth.is_none()),
        "the registry's token must not follow a redirect to another host: {storage:?}"
    );
}

/// A caller's transport changes (a HelmChart's plainHTTP, repoCA, insecureSkipTLSVerify)
/// apply to the registry's own endpoint, never to a mirror, and take registries.yaml's
/// credentials off that endpoint.
#[test]
fn direct_access_changes_the_own_endpoint_and_drops_the_admins_credentials() {
    let registries = RegistriesConfig::parse(
        "mirrors:\n  r.test:\n    endpoint: [\"https://mirror.test\"]\nconfigs:\n  r.test:\n    auth: {username: admin, password: secret}\n  mirror.test:\n    auth: {username: m, password: p}\n",
    )
    .unwrap();
    let reference = super::Reference::parse("r.test/charts/app:1.0.0").unwrap();
    let plain = PullOptions {
        registries: registries.clone(),
        ..Default::default()
    };
    let endpoints = plain.endpoints(&reference);
    assert_eq!(endpoints.len(), 2);
    assert!(endpoints[1].auth.is_some() && endpoints[1].scheme == "https");
    for direct in [
        super::pull::DirectAccess {
            plain_http: true,
            ..Default::default()
        },
        super::pull::DirectAccess {
            ca_pem: Some(b"PEM".to_vec()),
            ..Default::default()
        },
        super::pull::DirectAccess {
            insecure_skip_verify: true,
            ..Default::default()
        },
    ] {
        let options = PullOptions {
            registries: registries.clone(),
            direct: direct.clone(),
            ..Default::default()
        };
        let endpoints = options.endpoints(&reference);
        let (mirror, own) = (&endpoints[0], &endpoints[1]);
        assert!(!mirror.is_default && mirror.auth.is_some() && mirror.scheme == "https");
        assert!(own.is_default && own.auth.is_none(), "{direct:?}");
        assert_eq!(own.scheme == "http", direct.plain_http);
        assert_eq!(own.tls.insecure_skip_verify, direct.insecure_skip_verify);
        assert_eq!(own.tls.ca_pem, direct.ca_pem);
    }
}
