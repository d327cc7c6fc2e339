//! The ingress reconciler: Ingress (class `skiff`, or none) + Service + EndpointSlice → the
//! proxy's routing table, handed over whole through [`IngressProxy`] (the proxy swaps it
//! atomically). Certificates for `tls` hosts come from [`crate::ingress::acme::CertManager`].
//!
//! - A rule's backend is the Service's *ready* endpoints: the Service port named by number or
//!   name, resolved to the EndpointSlice port of the same name (so `targetPort` by name works);
//!   a missing Service or no ready endpoint gives a backend without endpoints (503).
//! - Hosts listed in a `tls` section are redirected from HTTP to HTTPS.
//! - Several Ingresses may share a host; they are merged, oldest first (the first declared path
//!   wins a tie, as in ingress-nginx).
//! - A host belongs to the namespace whose Ingress claimed it first ([`owners`]): another
//!   namespace's claim gets no route, no certificate and a `HostAlreadyClaimed` warning.
//! - Status: `status.loadBalancer.ingress` lists the proxy's address (empty for an Ingress
//!   refused every host it claims).
//!
//! It runs as its own loop (not inside `controllers::reconcile_all`): it reacts to Ingress,
//! IngressClass, Service, EndpointSlice and Secret changes only, and a pod becoming ready reaches
//! it as the EndpointSlice change the endpoints reconciler commits.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_proxy::{Backend, HostRule, PathKind, PathRule, RouteTable};
use tokio::sync::{broadcast, watch};

use crate::client::view::{Objects, View};
use crate::ingress::acme::{CertManager, TlsWant};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// The class skiff implements (the default IngressClass).
pub const CLASS: &str = "skiff";
/// The IngressClass `spec.controller` of skiff's classes.
pub const CONTROLLER: &str = "skiff.io/ingress";

pub mod acme;
pub mod owners;
pub mod proxy;

use owners::Owners;

pub use proxy::IngressProxy;

const DEBOUNCE: Duration = Duration::from_millis(5);
const RESYNC: Duration = Duration::from_secs(5);

/// Whether skiff serves this Ingress: class `skiff`, a class whose controller is skiff's, or no
/// class (skiff's class is the default).
pub fn is_ours(store: &dyn Objects, ingress: &Value) -> bool {
    let class = ingress["spec"]["ingressClassName"]
        .as_str()
        .or_else(|| meta::annotation(ingress, "kubernetes.io/ingress.class"));
    match class {
        None => true,
        Some(CLASS) => true,
        Some(other) => store
            .get(&ObjectKey::new("IngressClass", "", other))
            .is_some_and(|c| c["spec"]["controller"] == CONTROLLER),
    }
}

/// The Ingresses skiff serves, oldest first.
pub fn ours(store: &dyn Objects) -> Vec<Arc<Value>> {
    let mut v: Vec<Arc<Value>> = store
        .list("Ingress", None)
        .into_iter()
        .filter(|i| is_ours(store, i))
        .collect();
    v.sort_by(|a, b| {
        let key = |o: &Value| {
            (
                o["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                meta::namespace(o).to_string(),
                meta::name(o).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    v
}

/// The ready endpoints of `namespace/service` for the Ingress backend port `port`
/// (`{"number": n}` or `{"name": "http"}`).
pub fn resolve_backend(
    store: &dyn Objects,
    namespace: &str,
    service: &str,
    port: &Value,
) -> Backend {
    let port_label = port["number"]
        .as_i64()
        .map(|n| n.to_string())
        .or_else(|| port["name"].as_str().map(String::from))
        .unwrap_or_default();
    let name = format!("{namespace}/{service}:{port_label}");
    let mut endpoints = Vec::new();
    let Some(svc) = store.get(&ObjectKey::new("Service", namespace, service)) else {
        return Backend { name, endpoints };
    };
    let svc_port = svc["spec"]["ports"].as_array().and_then(|ports| {
        ports.iter().find(|p| match port["number"].as_i64() {
            Some(n) => p["port"].as_i64() == Some(n),
            None => port["name"].as_str().is_some_and(|want| p["name"] == want),
        })
    });
    let Some(svc_port) = svc_port else {
        return Backend { name, endpoints };
    };
    let port_name = svc_port["name"].as_str().unwrap_or("");
    for slice in store.list("EndpointSlice", Some(namespace)) {
        if slice["metadata"]["labels"]["kubernetes.io/service-name"] != service {
            continue;
        }
        let Some(target) = slice["ports"].as_array().and_then(|ps| {
            ps.iter()
                .find(|p| p["name"].as_str().unwrap_or("") == port_name)
                .and_then(|p| p["port"].as_u64())
                .and_then(|p| u16::try_from(p).ok())
        }) else {
            continue;
        };
        for ep in slice["endpoints"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            // Kubernetes: a missing `ready` means ready.
            if ep["conditions"]["ready"] == false {
                continue;
            }
            for addr in ep["addresses"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let Some(ip) = addr.as_str().and_then(|a| a.parse::<IpAddr>().ok()) {
                    endpoints.push(SocketAddr::new(ip, target));
                }
            }
        }
    }
    endpoints.sort();
    endpoints.dedup();
    Backend { name, endpoints }
}

fn host_in(tls_hosts: &HashSet<String>, host: &str) -> bool {
    if tls_hosts.contains(host) {
        return true;
    }
    host.split_once('.')
        .is_some_and(|(_, parent)| tls_hosts.contains(&format!("*.{parent}")))
}

/// The routing table and the certificates wanted, from every Ingress skiff serves, with each
/// host given only to the namespace that holds it ([`owners`]).
pub fn desired(
    store: &dyn Objects,
    ingresses: &[Arc<Value>],
    owners: &Owners,
) -> (RouteTable, Vec<TlsWant>) {
    let mut rules: Vec<HostRule> = Vec::new();
    let mut by_host: BTreeMap<String, usize> = BTreeMap::new();
    let mut default_backend = None;
    let mut wants = Vec::new();
    for ing in ingresses {
        let ns = meta::namespace(ing);
        let mut tls_hosts = HashSet::new();
        for t in ing["spec"]["tls"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let hosts: Vec<String> = t["hosts"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|h| h.as_str().map(str::to_ascii_lowercase))
                .filter(|h| owners.allows(ing, h))
                .collect();
            tls_hosts.extend(hosts.iter().cloned());
            if !hosts.is_empty() {
                wants.push(TlsWant {
                    ingress: ing.clone(),
                    namespace: ns.to_string(),
                    secret_name: t["secretName"].as_str().map(String::from),
                    hosts,
                });
            }
        }
        if default_backend.is_none() && owners.allows(ing, owners::ANY_HOST) {
            let b = &ing["spec"]["defaultBackend"]["service"];
            if let Some(svc) = b["name"].as_str() {
                default_backend = Some(resolve_backend(store, ns, svc, &b["port"]));
            }
        }
        for r in ing["spec"]["rules"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let host = r["host"].as_str().unwrap_or("").to_ascii_lowercase();
            if !owners.allows(ing, &host) {
                continue;
            }
            let paths: Vec<PathRule> = r["http"]["paths"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| {
                    let svc = p["backend"]["service"]["name"].as_str()?;
                    Some(PathRule {
                        path: p["path"].as_str().unwrap_or("/").to_string(),
                        kind: match p["pathType"].as_str() {
                            Some("Exact") => PathKind::Exact,
                            // ImplementationSpecific: skiff treats it as Prefix.
                            _ => PathKind::Prefix,
                        },
                        backend: resolve_backend(store, ns, svc, &p["backend"]["service"]["port"]),
                    })
                })
                .collect();
            let redirect = !host.is_empty() && host_in(&tls_hosts, &host);
            match by_host.get(&host) {
                Some(&i) => {
                    rules[i].paths.extend(paths);
                    rules[i].redirect_to_https |= redirect;
                }
                None => {
                    by_host.insert(host.clone(), rules.len());
                    rules.push(HostRule {
                        host,
                        redirect_to_https: redirect,
                        paths,
                    });
                }
            }
        }
    }
    (
        RouteTable {
            rules,
            default_backend,
        },
        wants,
    )
}

/// One pass: routes to the proxy, certificates through the manager, statuses, and a warning
/// event (once per Ingress and refusal, recorded in `reported`) for each host another namespace
/// holds.
pub async fn reconcile(
    view: &View,
    proxy: &dyn IngressProxy,
    certs: &CertManager,
    address: &str,
    reported: &mut HashSet<(String, String)>,
) {
    let ingresses = ours(view);
    let owners = Owners::of(&ingresses);
    let (table, wants) = desired(view, &ingresses, &owners);
    proxy.set_routes(table);
    certs.reconcile(&ingresses, &wants);
    let served = json!({"loadBalancer": {"ingress": [{"ip": address}]}});
    let refused = json!({"loadBalancer": {}});
    let mut live = HashSet::new();
    for ing in &ingresses {
        for r in owners.refusals(ing) {
            let key = (meta::uid(ing).to_string(), r.message());
            if reported.insert(key.clone()) {
                tracing::warn!(ingress = %ObjectKey::of(ing), "{}", r.message());
                acme::record_event(view, ing, true, "HostAlreadyClaimed", &r.message());
            }
            live.insert(key);
        }
        // An Ingress refused every host it claims is not served: no address in its status.
        let status = if owners.admitted(ing) {
            &served
        } else {
            &refused
        };
        if ing["status"] != *status {
            let status = status.clone();
            if let Err(e) = view.update_status(&ObjectKey::of(ing), status).await {
                tracing::debug!(ingress = %ObjectKey::of(ing), "status update failed: {e}");
            }
        }
    }
    // A refusal that went away (the owner deleted its Ingress) is reported again if it returns.
    reported.retain(|k| live.contains(k));
}

/// Runs the reconciler until `shutdown` flips: on every relevant change its caches see
/// (debounced), when the certificate manager asks, and every few seconds (renewals are
/// time-based).
pub async fn run(
    view: Arc<View>,
    proxy: Arc<dyn IngressProxy>,
    certs: Arc<CertManager>,
    address: String,
    first_pass: tokio::sync::oneshot::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut events = view.subscribe();
    let wake = certs.wake_handle();
    let mut reported = HashSet::new();
    let mut first_pass = Some(first_pass);
    loop {
        reconcile(&view, &*proxy, &certs, &address, &mut reported).await;
        if let Some(done) = first_pass.take() {
            let _ = done.send(());
        }
        let mut relevant = false;
        let resync = tokio::time::sleep(RESYNC);
        tokio::pin!(resync);
        while !relevant {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = &mut resync => break,
                _ = wake.notified() => relevant = true,
                e = events.recv() => match e {
                    Ok(kind) => relevant = matches!(
                        kind,
                        "Ingress" | "IngressClass" | "Service" | "EndpointSlice" | "Secret"
                    ),
                    Err(broadcast::error::RecvError::Lagged(_)) => relevant = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
        tokio::time::sleep(DEBOUNCE).await;
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
    }
}

/// How long the proxy's listeners wait for the reconciler's first pass before serving anyway.
const FIRST_PASS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes the ingress proxy, binds its listeners, and starts the ingress/ACME reconciler; the
/// listeners serve once its first pass has set the routes and certificates (a request taken
/// from the socket's queue after a restart is routed as before it, not answered 404 with the
/// default certificate). Returns the proxy (for its metrics) and the tasks.
pub async fn start(
    config: crate::IngressConfig,
    listeners: &skiff_proxy::serve::Inherited,
    acme_dir: std::path::PathBuf,
    view: Arc<View>,
    shutdown: watch::Receiver<bool>,
) -> Result<(skiff_proxy::Proxy, Vec<tokio::task::JoinHandle<()>>), skiff_proxy::ProxyError> {
    let proxy = skiff_proxy::Proxy::new(skiff_proxy::ProxyConfig {
        https_port: config.https.map_or(443, |a| a.port()),
        tls_resumption: config.tls_resumption,
        ..Default::default()
    })?;
    let bound = proxy::bind(listeners, config.http, config.https).await;
    let up = bound.listening();
    let handle: Arc<dyn IngressProxy> = Arc::new(proxy.clone());
    let certs = Arc::new(CertManager::new(
        view.clone(),
        handle.clone(),
        acme::AcmeConfig {
            directory: config.acme_directory,
            email: config.acme_email,
            ca_root: config.acme_ca_root,
            state_dir: acme_dir,
            http01: up.http,
            tls_alpn01: up.https,
        },
    ));
    // The address Ingress status reports: the proxy's, or loopback when it listens everywhere.
    let address = match config.http.or(config.https).map(|a| a.ip()) {
        Some(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => "127.0.0.1".to_string(),
    };
    let (first_tx, first_pass) = tokio::sync::oneshot::channel();
    let reconciler = tokio::spawn(run(
        view,
        handle,
        certs,
        address,
        first_tx,
        shutdown.clone(),
    ));
    if tokio::time::timeout(FIRST_PASS_WAIT, first_pass)
        .await
        .is_err()
    {
        tracing::warn!(
            "the ingress reconciler's first pass took over {FIRST_PASS_WAIT:?}: serving before it"
        );
    }
    let mut tasks: Vec<_> = bound
        .serve(&proxy, config.threads, shutdown)
        .into_iter()
        .collect();
    tasks.push(reconciler);
    Ok((proxy, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        crate::model::builtin::ensure(&store).unwrap();
        (dir, store)
    }

    #[test]
    fn routes_to_ready_endpoints_by_port_name() {
        let (_d, store) = store();
        store
            .create(json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},
                "spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":"web"}]}}))
            .unwrap();
        store
            .create(json!({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
                "metadata":{"name":"web","namespace":"default","labels":{"kubernetes.io/service-name":"web"}},
                "addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],
                "endpoints":[{"addresses":["127.0.0.1"],"conditions":{"ready":true}},
                             {"addresses":["127.0.0.2"],"conditions":{"ready":false}}]}))
            .unwrap();
        store
            .create(json!({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"web","namespace":"default"},
                "spec":{"tls":[{"hosts":["app.test"],"secretName":"app-tls"}],
                  "rules":[{"host":"app.test","http":{"paths":[{"path":"/","pathType":"Prefix",
                    "backend":{"service":{"name":"web","port":{"number":80}}}}]}},
                    {"host":"other.test","http":{"paths":[{"path":"/x","pathType":"Exact",
                    "backend":{"service":{"name":"missing","port":{"name":"http"}}}}]}}]}}))
            .unwrap();
        store
            .create(json!({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"theirs","namespace":"default"},
                "spec":{"ingressClassName":"nginx","rules":[{"host":"nginx.test"}]}}))
            .unwrap();
        let ings = ours(&store);
        assert_eq!(ings.len(), 1);
        let (table, wants) = desired(&store, &ings, &Owners::of(&ings));
        assert_eq!(table.rules.len(), 2);
        assert_eq!(table.rules[0].host, "app.test");
        assert!(table.rules[0].redirect_to_https);
        assert_eq!(
            table.rules[0].paths[0].backend.endpoints,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(table.rules[0].paths[0].backend.name, "default/web:80");
        assert!(!table.rules[1].redirect_to_https);
        assert_eq!(table.rules[1].paths[0].kind, PathKind::Exact);
        assert!(table.rules[1].paths[0].backend.endpoints.is_empty());
        assert_eq!(wants.len(), 1);
        assert_eq!(wants[0].hosts, vec!["app.test".to_string()]);
        assert_eq!(wants[0].secret_name.as_deref(), Some("app-tls"));
    }
}
