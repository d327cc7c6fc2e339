//! One registry endpoint's conversation (`Session`: authentication, manifests, blobs) and one
//! resumable, hashed blob download (`Download`).

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use super::*;

/// One endpoint, with its HTTP client and what authentication it asked for.
pub(super) struct Session {
    pub(super) reference: String,
    pub(super) endpoint: Endpoint,
    client: reqwest::Client,
    guard: Guard,
    credentials: Option<Credentials>,
    authorization: tokio::sync::Mutex<Option<String>>,
}

impl Session {
    pub(super) fn new(
        reference: &str,
        endpoint: Endpoint,
        options: &PullOptions,
    ) -> Result<Self, ImageError> {
        let guard = if options.allow_node_internal {
            Guard::open()
        } else {
            Guard::new(&options.registries)
        };
        let client =
            http_client(&endpoint.tls, &guard).map_err(|message| ImageError::Registry {
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
            guard,
            credentials,
            authorization: tokio::sync::Mutex::new(None),
        })
    }

    pub(super) fn error(&self, message: String) -> ImageError {
        ImageError::Registry {
            reference: self.reference.clone(),
            endpoint: self.endpoint.url(),
            message,
        }
    }

    pub(super) fn url(&self, kind: &str, target: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{target}",
            self.endpoint.url(),
            self.endpoint.repository
        )
    }

    /// GET with authentication: answers a 401 challenge once, then fails with the registry's
    /// own message on any other error status.
    pub(super) async fn get(
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
    pub(super) async fn authenticate(&self, challenge: Challenge) -> Result<String, ImageError> {
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
                // A literal address is not resolved, so the guard's resolver never sees it.
                self.guard
                    .check(&realm)
                    .map_err(|e| self.error(format!("token service {realm}: {e}")))?;
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
    pub(super) async fn manifest(
        &self,
        target: &str,
        limit: u64,
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
            .read_limited(response, limit, "manifest", target)
            .await?;
        Ok((bytes, content_type, digest))
    }

    /// A blob read into memory (an image config, a chart), at most `limit` bytes, verified.
    pub(super) async fn small_blob(
        &self,
        digest: &str,
        size: u64,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, ImageError> {
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

    pub(super) async fn read_limited(
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
    pub(super) async fn download(
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

    pub(super) async fn download_inner(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
        options: &PullOptions,
    ) -> Result<(), ImageError> {
        let mut download = Download::create(digest, size, path, self.endpoint.url())?;
        let mut last_error = String::new();
        for attempt in 0..DOWNLOAD_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                tracing::info!(%digest, done = download.done, size, "resuming an interrupted download: {last_error}");
            }
            let response = match self
                .get(&self.url("blobs", digest), None, download.done)
                .await
            {
                Ok(r) => r,
                // The first request failing is an answer, not an interruption.
                Err(e) if attempt == 0 => return Err(e),
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            if download.done > 0 && response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                // No range support: start over.
                download.restart()?;
            }
            match download.copy(response, options).await? {
                Some(e) => last_error = e,
                None if download.done < size => {
                    last_error = format!(
                        "the connection ended after {} of {size} bytes",
                        download.done
                    )
                }
                None => return download.finish(options),
            }
        }
        Err(download.incomplete(format!(
            "got {} of {size} bytes after {DOWNLOAD_ATTEMPTS} attempts: {last_error}",
            download.done
        )))
    }
}

/// One layer download: its scratch file, and the hash and count of the bytes so far.
pub(super) struct Download<'a> {
    digest: &'a str,
    size: u64,
    path: &'a Path,
    /// `scheme://host` of the endpoint, for errors.
    endpoint: String,
    file: std::fs::File,
    hasher: Sha256,
    done: u64,
    last_report: Instant,
}

impl<'a> Download<'a> {
    pub(super) fn create(
        digest: &'a str,
        size: u64,
        path: &'a Path,
        endpoint: String,
    ) -> Result<Self, ImageError> {
        let file = std::fs::File::create(path).map_err(|e| ImageError::io("create", path, e))?;
        Ok(Download {
            digest,
            size,
            path,
            endpoint,
            file,
            hasher: Sha256::new(),
            done: 0,
            last_report: Instant::now(),
        })
    }

    /// Starts over from the first byte.
    pub(super) fn restart(&mut self) -> Result<(), ImageError> {
        self.file =
            std::fs::File::create(self.path).map_err(|e| ImageError::io("create", self.path, e))?;
        self.hasher = Sha256::new();
        self.done = 0;
        Ok(())
    }

    pub(super) fn incomplete(&self, reason: String) -> ImageError {
        ImageError::DownloadIncomplete {
            what: "layer",
            digest: self.digest.to_owned(),
            endpoint: self.endpoint.clone(),
            reason,
        }
    }

    pub(super) fn report(&self, options: &PullOptions) {
        options.report(PullProgress::Downloading {
            digest: self.digest.to_owned(),
            done: self.done,
            total: self.size,
        });
    }

    /// Appends a response's body to the file; why the connection broke, if it did.
    pub(super) async fn copy(
        &mut self,
        response: reqwest::Response,
        options: &PullOptions,
    ) -> Result<Option<String>, ImageError> {
        use std::io::Write;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Ok(Some(transport_message(&e))),
            };
            self.done += chunk.len() as u64;
            if self.done > self.size {
                return Err(self.incomplete(format!(
                    "the registry sent more than the {} bytes its manifest says",
                    self.size
                )));
            }
            self.hasher.update(&chunk);
            self.file
                .write_all(&chunk)
                .map_err(|e| ImageError::io("write", self.path, e))?;
            if self.last_report.elapsed() >= Duration::from_millis(100) {
                self.last_report = Instant::now();
                self.report(options);
            }
        }
        Ok(None)
    }

    /// All bytes are there: synced and verified.
    pub(super) fn finish(self, options: &PullOptions) -> Result<(), ImageError> {
        self.file
            .sync_all()
            .map_err(|e| ImageError::io("sync", self.path, e))?;
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if actual != self.digest {
            return Err(ImageError::DownloadDigestMismatch {
                what: "layer",
                digest: self.digest.to_owned(),
                actual,
                endpoint: self.endpoint,
            });
        }
        self.report(options);
        Ok(())
    }
}
