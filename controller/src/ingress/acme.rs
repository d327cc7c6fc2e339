//! Certificates for the hosts of Ingress `tls` sections.
//!
//! For each `tls` entry (hosts + `secretName`), every pass of the ingress reconciler:
//! - serves the named Secret's certificate (`kubernetes.io/tls`: `tls.crt`, `tls.key`) for the
//!   hosts it covers, while it is valid;
//! - otherwise serves a temporary self-signed certificate and orders one through ACME
//!   (`instant-acme`): HTTP-01 answered by the proxy's HTTP port (TLS-ALPN-01 on the HTTPS port
//!   when HTTP-01 is not offered), the result written into that Secret (annotated
//!   `skiff.io/certificate-issuer`), which the next pass picks up;
//! - renews certificates skiff issued at 2/3 of their lifetime, serving the current one until
//!   the new one is there: a failed renewal never drops a valid certificate.
//!
//! Orders run in background tasks, one at a time per Secret; a failure records a Warning event on
//! the Ingress and backs off (1 min, doubling to 6 h) — never a retry storm against the CA.
//! Secrets declared in a manifest file are never overwritten (an event says why). The ACME
//! account is created once per directory and kept in `<data-dir>/acme/`.
//! `cert-manager.io/cluster-issuer` / `cert-manager.io/issuer` annotations are accepted, and an
//! event says that skiff's own issuer handles the Ingress.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde_json::{json, Value};
use skiff_proxy::Certificate;
use tokio::sync::Notify;

use crate::client::view::View;
use crate::ingress::IngressProxy;
use crate::model::meta;
use crate::model::store::ObjectKey;

pub use crate::model::declared::ISSUER_ANNOTATION;
/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

const FIRST_BACKOFF: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// How certificates are obtained.
#[derive(Clone, Debug)]
pub struct AcmeConfig {
    /// The ACME directory URL; `None` turns ACME off (self-signed certificates only).
    pub directory: Option<String>,
    /// The account's contact address.
    pub email: Option<String>,
    /// A PEM file with the root that signs the ACME server's own TLS certificate (a private CA
    /// such as pebble); else the system's roots.
    pub ca_root: Option<PathBuf>,
    /// Where the account is kept (`<dir>/account-<hash>.json`).
    pub state_dir: PathBuf,
    /// The proxy's HTTP port is up (HTTP-01 possible).
    pub http01: bool,
    /// The proxy's HTTPS port is up (TLS-ALPN-01 possible).
    pub tls_alpn01: bool,
}

/// One `tls` entry of an Ingress.
#[derive(Clone, Debug)]
pub struct TlsWant {
    /// The Ingress (for events).
    pub ingress: Arc<Value>,
    /// Its namespace (the Secret's).
    pub namespace: String,
    /// The Secret holding the certificate.
    pub secret_name: Option<String>,
    /// The hosts, lower case.
    pub hosts: Vec<String>,
}

/// A certificate read from a Secret.
struct Parsed {
    cert: Certificate,
    not_before: i64,
    not_after: i64,
    names: Vec<String>,
}

impl Parsed {
    fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|n| {
            n == host
                || n.strip_prefix("*.")
                    .is_some_and(|parent| host.split_once('.').is_some_and(|(_, p)| p == parent))
        })
    }
}

#[derive(Default)]
struct OrderState {
    running: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

/// A Secret's (namespace, name).
type SecretKey = (String, String);

#[derive(Default)]
struct State {
    self_signed: HashMap<Vec<String>, Certificate>,
    /// By (namespace, secret): the resourceVersion parsed and the result.
    parsed: HashMap<SecretKey, (String, Option<Arc<Parsed>>)>,
    orders: HashMap<SecretKey, OrderState>,
    /// (uid, message) of one-time events already recorded.
    reported: HashSet<(String, String)>,
    served: Vec<(String, usize)>,
}

impl State {
    /// The certificate in a Secret, parsed once per resourceVersion.
    fn parse(&mut self, namespace: &str, secret: &Value) -> Option<Arc<Parsed>> {
        let key = (namespace.to_string(), meta::name(secret).to_string());
        let rv = secret["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match self.parsed.get(&key) {
            Some((have, p)) if *have == rv => p.clone(),
            _ => {
                let p = parse_secret(secret).map(Arc::new);
                self.parsed.insert(key, (rv, p.clone()));
                p
            }
        }
    }

    /// The temporary self-signed certificate for a set of hosts, made once.
    fn self_signed_for(&mut self, hosts: &[String]) -> Option<Certificate> {
        let mut names = hosts.to_vec();
        names.sort();
        if let Some(c) = self.self_signed.get(&names) {
            return Some(c.clone());
        }
        match skiff_proxy::tls::self_signed(&names) {
            Ok(c) => {
                self.self_signed.insert(names, c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::warn!("self-signed certificate for {}: {e}", names.join(", "));
                None
            }
        }
    }
}

struct Inner {
    view: Arc<View>,
    proxy: Arc<dyn IngressProxy>,
    config: AcmeConfig,
    state: Mutex<State>,
    wake: Arc<Notify>,
    account: tokio::sync::Mutex<Option<Account>>,
}

/// Obtains, stores, serves and renews certificates for Ingress `tls` hosts.
pub struct CertManager {
    inner: Arc<Inner>,
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn parse_secret(secret: &Value) -> Option<Parsed> {
    let field = |k: &str| -> Option<Vec<u8>> {
        serde_json::from_value::<k8s_openapi::ByteString>(secret["data"][k].clone())
            .ok()
            .map(|b| b.0)
    };
    let crt = field("tls.crt")?;
    let key = field("tls.key")?;
    let cert = skiff_proxy::tls::certificate_from_pem(&crt, &key).ok()?;
    let leaf = cert.cert.first()?;
    let (_, x509) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in x509.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    Some(Parsed {
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
        names,
        cert,
    })
}

/// The issuer's common name of the leaf in PEM (for events).
fn issuer_of(chain_pem: &str) -> String {
    let Some(Ok(der)) = rustls_pemfile::certs(&mut chain_pem.as_bytes()).next() else {
        return "?".into();
    };
    let Some((issuer, not_after)) = skiff_proxy::metrics::expiry(der.as_ref()) else {
        return "?".into();
    };
    format!(
        "{issuer}, valid until {}",
        jiff::Timestamp::from_second(not_after)
            .map(|t| t.to_string())
            .unwrap_or_default()
    )
}

/// Records an event from `skiff-ingress` about `object` (in the background, through the API).
pub fn record_event(view: &View, object: &Value, warning: bool, reason: &str, message: &str) {
    let ty = if warning {
        crate::client::events::Type::Warning
    } else {
        crate::client::events::Type::Normal
    };
    let (client, object, reason, message) = (
        view.client().clone(),
        object.clone(),
        reason.to_string(),
        message.to_string(),
    );
    tokio::spawn(async move {
        crate::client::events::record_via(
            &client,
            &object,
            ty,
            &reason,
            &message,
            crate::client::events::Source::Ingress,
        )
        .await;
    });
}

impl CertManager {
    /// A manager handing certificates and challenge answers to `proxy`.
    pub fn new(view: Arc<View>, proxy: Arc<dyn IngressProxy>, config: AcmeConfig) -> Self {
        // instant-acme builds rustls client configs with the process' default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        CertManager {
            inner: Arc::new(Inner {
                view,
                proxy,
                config,
                state: Mutex::new(State::default()),
                wake: Arc::new(Notify::new()),
                account: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Notified when an order finished (the reconciler should run again).
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    /// One pass: decides the certificate of every TLS host, hands them to the proxy, and starts
    /// the orders that are due. Never blocks on the network.
    pub fn reconcile(&self, ingresses: &[Arc<Value>], wants: &[TlsWant]) {
        let inner = &self.inner;
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        for ing in ingresses {
            for key in ["cert-manager.io/cluster-issuer", "cert-manager.io/issuer"] {
                if let Some(issuer) = meta::annotation(ing, key) {
                    let msg = format!(
                        "{key} {issuer:?} is handled by skiff's own ACME issuer ({})",
                        inner.config.directory.as_deref().unwrap_or("ACME off")
                    );
                    once(
                        &mut st,
                        &inner.view,
                        ing,
                        false,
                        "IssuerHandledBySkiff",
                        &msg,
                    );
                }
            }
        }
        let now = unix_now();
        let mut by_host: HashMap<String, Certificate> = HashMap::new();
        let mut live = HashSet::new();
        for want in wants {
            let secret = want.secret_name.as_ref().and_then(|n| {
                inner
                    .view
                    .get(&ObjectKey::new("Secret", &want.namespace, n))
            });
            if let Some(s) = &secret {
                live.insert((want.namespace.clone(), meta::name(s).to_string()));
            }
            let parsed = secret.as_ref().and_then(|s| st.parse(&want.namespace, s));
            let usable = parsed.filter(|p| p.not_before <= now && now < p.not_after);
            let mut all_covered = true;
            for h in &want.hosts {
                let cert = match &usable {
                    Some(p) if p.covers(h) => Some(p.cert.clone()),
                    _ => {
                        all_covered = false;
                        st.self_signed_for(&want.hosts)
                    }
                };
                if let Some(c) = cert {
                    by_host.entry(h.clone()).or_insert(c);
                }
            }
            let ours = secret
                .as_ref()
                .is_some_and(|s| meta::annotation(s, ISSUER_ANNOTATION).is_some());
            let due = match &usable {
                Some(p) if all_covered => {
                    ours && now >= p.not_before + (p.not_after - p.not_before) * 2 / 3
                }
                _ => true,
            };
            if due {
                self.maybe_order(&mut st, want, secret.as_deref(), usable.is_some());
            }
        }
        st.parsed.retain(|k, _| live.contains(k));
        // Hand the certificates over only when they changed.
        let mut served: Vec<(String, usize)> = by_host
            .iter()
            .map(|(h, c)| (h.clone(), Arc::as_ptr(c) as usize))
            .collect();
        served.sort();
        if served != st.served {
            st.served = served;
            drop(st);
            inner.proxy.set_certificates(by_host);
        }
    }

    fn maybe_order(&self, st: &mut State, want: &TlsWant, secret: Option<&Value>, renewal: bool) {
        let inner = &self.inner;
        let (directory, secret_name) = match order_target(&inner.config, want, secret) {
            Ok(target) => target,
            Err((reason, message)) => {
                once(st, &inner.view, &want.ingress, true, reason, &message);
                return;
            }
        };
        let key = (want.namespace.clone(), secret_name.clone());
        let order = st.orders.entry(key.clone()).or_default();
        if order.running || order.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        order.running = true;
        let inner = self.inner.clone();
        let want = want.clone();
        tracing::info!(hosts = %want.hosts.join(","), secret = %format!("{}/{secret_name}", want.namespace),
            renewal, "ordering a certificate from {directory}");
        tokio::spawn(async move {
            let started = Instant::now();
            let result = match issue(&inner, &directory, &want.hosts).await {
                Ok((chain, key_pem)) => store_secret(
                    &inner.view,
                    &want.namespace,
                    &secret_name,
                    &directory,
                    &chain,
                    &key_pem,
                )
                .await
                .map(|()| issuer_of(&chain)),
                Err(e) => Err(e),
            };
            if result.is_ok() {
                tracing::info!(hosts = %want.hosts.join(","), "certificate issued in {:?}", started.elapsed());
            }
            ordered(&inner, key, &want, renewal, result);
            inner.wake.notify_one();
        });
    }
}

/// Where a certificate for `want` would be ordered from and stored (the ACME directory, the
/// Secret's name) — or why it is not ordered: (event reason, message).
fn order_target(
    config: &AcmeConfig,
    want: &TlsWant,
    secret: Option<&Value>,
) -> Result<(String, String), (&'static str, String)> {
    let hosts = want.hosts.join(", ");
    let Some(directory) = config.directory.clone() else {
        return Err((
            "CertificateSelfSigned",
            format!("ACME is off: serving a self-signed certificate for {hosts}"),
        ));
    };
    let Some(secret_name) = want.secret_name.clone() else {
        return Err((
            "NoSecretName",
            format!("the tls section for {hosts} names no secretName: serving a self-signed certificate"),
        ));
    };
    if let Some(s) = secret {
        if meta::annotation(s, crate::model::declared::MANIFEST_ANNOTATION).is_some()
            && meta::annotation(s, ISSUER_ANNOTATION).is_none()
        {
            return Err((
                "CertificateNotReplaced",
                format!(
                    "Secret {secret_name} is declared in a manifest file and holds no valid certificate for {hosts}; skiff does not overwrite it (serving a self-signed certificate)"
                ),
            ));
        }
    }
    Ok((directory, secret_name))
}

/// Records how an order ended: the back-off after a failure (1 min doubling to 6 h), and an
/// event on the Ingress either way.
fn ordered(
    inner: &Inner,
    key: (String, String),
    want: &TlsWant,
    renewal: bool,
    result: Result<String, String>,
) {
    let secret_name = key.1.clone();
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let o = st.orders.entry(key).or_default();
    o.running = false;
    let hosts = want.hosts.join(", ");
    match result {
        Ok(issuer) => {
            o.failures = 0;
            o.retry_at = None;
            drop(st);
            record_event(
                &inner.view,
                &want.ingress,
                false,
                "CertificateIssued",
                &format!(
                    "certificate for {hosts} stored in Secret {secret_name} (issuer {issuer})"
                ),
            );
        }
        Err(e) => {
            o.failures += 1;
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << (o.failures - 1).min(16))
                .min(MAX_BACKOFF);
            o.retry_at = Some(Instant::now() + backoff);
            drop(st);
            tracing::warn!(hosts = %want.hosts.join(","), "certificate order failed (retry in {backoff:?}): {e}");
            let (what, meanwhile) = if renewal {
                ("renewal", "the current certificate stays in use")
            } else {
                ("certificate order", "serving a self-signed certificate")
            };
            record_event(
                &inner.view,
                &want.ingress,
                true,
                "CertificateFailed",
                &format!(
                    "{what} for {hosts} failed (next attempt in {}s; {meanwhile}): {e}",
                    backoff.as_secs()
                ),
            );
        }
    }
}

/// Records an event once per (object uid, message) for the life of the process.
fn once(st: &mut State, view: &View, obj: &Value, warning: bool, reason: &str, msg: &str) {
    if st
        .reported
        .insert((meta::uid(obj).to_string(), msg.to_string()))
    {
        record_event(view, obj, warning, reason, msg);
    }
}

async fn store_secret(
    view: &View,
    namespace: &str,
    name: &str,
    directory: &str,
    chain: &str,
    key: &str,
) -> Result<(), String> {
    let b64 = |s: &str| {
        serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
            .expect("bytes serialize")
    };
    let data = json!({"tls.crt": b64(chain), "tls.key": b64(key)});
    let secret_key = ObjectKey::new("Secret", namespace, name);
    let write = |existing: Option<Value>| {
        let data = data.clone();
        async move {
            match existing {
                Some(mut s) => {
                    s["type"] = json!("kubernetes.io/tls");
                    s["data"] = data;
                    meta::set_annotation(&mut s, ISSUER_ANNOTATION, directory);
                    // Keeps the resourceVersion: a concurrent change makes this a 409.
                    view.update(s).await.map(|_| ())
                }
                None => view
                    .create(json!({
                        "apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": name, "namespace": namespace,
                            "annotations": {ISSUER_ANNOTATION: directory}},
                        "type": "kubernetes.io/tls",
                        "data": data,
                    }))
                    .await
                    .map(|_| ()),
            }
        }
    };
    let mut result = write(view.get(&secret_key).map(|s| (*s).clone())).await;
    if result.as_ref().is_err_and(|e| e.code() == Some(409)) {
        // The cache was behind (or the Secret changed meanwhile): once more on what the API
        // holds now, rather than throwing a freshly issued certificate away.
        result = match view.get_live(&secret_key).await {
            Ok(live) => write(live).await,
            Err(e) => Err(e),
        };
    }
    result.map_err(|e| format!("storing Secret {namespace}/{name}: {e}"))
}

/// Removes published challenge answers when an order ends, however it ends.
struct Published {
    proxy: Arc<dyn IngressProxy>,
    tokens: Vec<String>,
    alpn_hosts: Vec<String>,
}

impl Drop for Published {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.proxy.remove_http01(t);
        }
        for h in &self.alpn_hosts {
            self.proxy.remove_tls_alpn01(h);
        }
    }
}

async fn account(inner: &Inner, directory: &str) -> Result<Account, String> {
    let mut cached = inner.account.lock().await;
    if let Some(a) = cached.as_ref() {
        return Ok(a.clone());
    }
    let builder = || match &inner.config.ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    use sha2::Digest;
    let id = hex::encode(&sha2::Sha256::digest(directory.as_bytes())[..8]);
    let path = inner.config.state_dir.join(format!("account-{id}.json"));
    let saved = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<AccountCredentials>(&b).ok());
    let account = match saved {
        Some(creds) => builder()
            .map_err(|e| format!("ACME client: {e}"))?
            .from_credentials(creds)
            .await
            .map_err(|e| format!("ACME account from {}: {e}", path.display()))?,
        None => {
            let contact = inner.config.email.as_ref().map(|e| format!("mailto:{e}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let (account, creds) = builder()
                .map_err(|e| format!("ACME client: {e}"))?
                .create(
                    &NewAccount {
                        contact: &contacts,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    directory.to_string(),
                    None,
                )
                .await
                .map_err(|e| format!("creating an ACME account at {directory}: {e}"))?;
            std::fs::create_dir_all(&inner.config.state_dir)
                .map_err(|e| format!("creating {}: {e}", inner.config.state_dir.display()))?;
            let text = serde_json::to_vec(&creds).map_err(|e| e.to_string())?;
            crate::files::write_private(&path, &text)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            account
        }
    };
    *cached = Some(account.clone());
    Ok(account)
}

/// Answers one challenge per pending authorization through the proxy — HTTP-01 when the
/// HTTP port is up, else TLS-ALPN-01 — and tells the CA it is ready.
async fn answer_challenges(
    inner: &Inner,
    order: &mut instant_acme::Order,
    published: &mut Published,
) -> Result<(), String> {
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut authz = a.map_err(|e| format!("authorization: {e}"))?;
        let ident = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("the authorization for {ident} is {other:?}")),
        }
        let offered: Vec<ChallengeType> =
            authz.challenges.iter().map(|c| c.r#type.clone()).collect();
        let pick = if inner.config.http01 && offered.contains(&ChallengeType::Http01) {
            ChallengeType::Http01
        } else if inner.config.tls_alpn01 && offered.contains(&ChallengeType::TlsAlpn01) {
            ChallengeType::TlsAlpn01
        } else {
            return Err(format!(
                "no challenge skiff can answer for {ident} (offered: {offered:?})"
            ));
        };
        let mut ch = authz
            .challenge(pick.clone())
            .ok_or_else(|| format!("challenge {pick:?} vanished"))?;
        let ka = ch.key_authorization();
        if pick == ChallengeType::Http01 {
            inner.proxy.add_http01(&ch.token, ka.as_str());
            published.tokens.push(ch.token.clone());
        } else {
            let cert = skiff_proxy::tls::tls_alpn01_certificate(&ident, ka.digest().as_ref())
                .map_err(|e| e.to_string())?;
            inner.proxy.add_tls_alpn01(&ident, cert);
            published.alpn_hosts.push(ident.clone());
        }
        ch.set_ready()
            .await
            .map_err(|e| format!("challenge for {ident}: {e}"))?;
    }
    Ok(())
}

/// What the CA said about each failed challenge of an order.
async fn failure_reasons(order: &mut instant_acme::Order) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(Ok(mut a)) = authzs.next().await {
        if let Ok(state) = a.refresh().await {
            for c in &state.challenges {
                if let Some(p) = &c.error {
                    reasons.push(format!(
                        "{}: {}",
                        state.identifier(),
                        p.detail.as_deref().unwrap_or("failed")
                    ));
                }
            }
        }
    }
    reasons
}

/// Runs one ACME order for `hosts`; returns (certificate chain PEM, private key PEM).
async fn issue(
    inner: &Inner,
    directory: &str,
    hosts: &[String],
) -> Result<(String, String), String> {
    let account = account(inner, directory).await?;
    let ids: Vec<Identifier> = hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
    let mut order = match account.new_order(&NewOrder::new(&ids)).await {
        Ok(o) => o,
        Err(e) => {
            if e.to_string().contains("accountDoesNotExist") {
                // The CA forgot the account (a test CA restarted): make a new one next time.
                *inner.account.lock().await = None;
            }
            return Err(format!("new order: {e}"));
        }
    };
    let mut published = Published {
        proxy: inner.proxy.clone(),
        tokens: Vec::new(),
        alpn_hosts: Vec::new(),
    };
    answer_challenges(inner, &mut order, &mut published).await?;
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(90)))
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    if status != OrderStatus::Ready {
        let reasons = failure_reasons(&mut order).await;
        return Err(format!(
            "the order is {status:?}: {}",
            if reasons.is_empty() {
                "no reason given".to_string()
            } else {
                reasons.join("; ")
            }
        ));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalizing: {e}"))?;
    let chain = order
        .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(60)))
        .await
        .map_err(|e| format!("downloading the certificate: {e}"))?;
    drop(published);
    Ok((chain, key_pem))
}
