//! The routing table: what the control plane hands over ([`RouteTable`], plain data), and its
//! compiled form the request path reads ([`Compiled`]: hash maps by host, paths sorted so the
//! first match is the right one, backends keyed by their upstream pool).
//!
//! Matching follows the Ingress rules: an exact host beats a wildcard (`*.example.com` matches
//! exactly one more label), which beats rules without a host; within a host the longest path
//! wins, `Exact` before `Prefix` at equal length; `Prefix` matches whole path elements (`/foo`
//! matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`). Nothing matched: the default backend,
//! else 404.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::metrics::{HostRegistry, HostStats};
use crate::upstream::Pool;

/// Everything the proxy routes, as handed over by the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Host rules. Several rules for one host are merged.
    pub rules: Vec<HostRule>,
    /// Where requests matching no rule go (else 404).
    pub default_backend: Option<Backend>,
}

/// The paths of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRule {
    /// An exact host (`app.example.com`), a wildcard (`*.example.com`), or empty for any host.
    pub host: String,
    /// Plain HTTP requests for this host are redirected to HTTPS (ACME challenges excepted).
    pub redirect_to_https: bool,
    /// The paths.
    pub paths: Vec<PathRule>,
}

/// One path of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRule {
    /// The path (starts with `/`).
    pub path: String,
    /// How it matches.
    pub kind: PathKind,
    /// Where it goes.
    pub backend: Backend,
}

/// How a path matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// The whole path, exactly.
    Exact,
    /// Whole path elements (`/a` matches `/a`, `/a/`, `/a/b`).
    Prefix,
}

/// A set of endpoints requests are balanced over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// A name for logs and metrics (`namespace/service:port`).
    pub name: String,
    /// The ready endpoints; empty answers 503.
    pub endpoints: Vec<SocketAddr>,
}

/// A backend as the request path uses it.
#[derive(Debug)]
pub(crate) struct CompiledBackend {
    pub name: Arc<str>,
    pub endpoints: Vec<SocketAddr>,
    pub next: AtomicUsize,
    /// Its idle keep-alive connections (shared with the previous table's backend of the same
    /// endpoint set).
    pub pool: Arc<Pool>,
}

#[derive(Debug)]
pub(crate) struct CompiledPath {
    pub path: Box<str>,
    pub exact: bool,
    pub backend: Arc<CompiledBackend>,
    pub route: Arc<str>,
}

#[derive(Debug)]
pub(crate) struct HostEntry {
    pub redirect_to_https: bool,
    pub paths: Vec<CompiledPath>,
    /// The counters of this host rule (its host: exact, `*.parent` or `*`).
    pub stats: Arc<HostStats>,
}

impl HostEntry {
    fn new(stats: Arc<HostStats>) -> HostEntry {
        HostEntry {
            redirect_to_https: false,
            paths: Vec::new(),
            stats,
        }
    }
}

/// What a request matched.
pub(crate) struct Match<'a> {
    pub redirect_to_https: bool,
    pub target: Option<&'a CompiledPath>,
    /// The matched host rule's counters (`None`: no host rule matched, the default backend
    /// answers).
    pub stats: Option<&'a Arc<HostStats>>,
}

/// The compiled table.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    exact: HashMap<Box<str>, HostEntry>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<Box<str>, HostEntry>,
    any: Option<HostEntry>,
    default: Option<CompiledPath>,
    /// By pool key (derived from the endpoint set).
    pub backends: HashMap<Box<str>, Arc<CompiledBackend>>,
}

fn pool_key(endpoints: &[SocketAddr]) -> String {
    let mut sorted = endpoints.to_vec();
    sorted.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sorted.hash(&mut h);
    format!("u{:016x}", h.finish())
}

impl Compiled {
    /// Compiles `table`; backends whose endpoint set `previous` had keep its pool (its warm
    /// connections), a changed set gets fresh connections.
    pub fn compile(table: &RouteTable, hosts: &HostRegistry, previous: &Compiled) -> Compiled {
        let mut c = Compiled::default();
        let mut live = std::collections::HashSet::new();
        let backend = |b: &Backend, c: &mut Compiled| -> Arc<CompiledBackend> {
            let key = pool_key(&b.endpoints);
            let name: Arc<str> = Arc::from(b.name.as_str());
            // One pool per endpoint set; the name is the first backend's (only for logs).
            c.backends
                .entry(key.into_boxed_str())
                .or_insert_with_key(|key| {
                    let pool = match previous.backends.get(key) {
                        Some(p) => p.pool.clone(),
                        None => Arc::default(),
                    };
                    Arc::new(CompiledBackend {
                        name,
                        endpoints: b.endpoints.clone(),
                        next: AtomicUsize::new(0),
                        pool,
                    })
                })
                .clone()
        };
        let path = |host: &str, p: &PathRule, c: &mut Compiled| -> CompiledPath {
            let route = format!(
                "{}{}{}",
                if host.is_empty() { "*" } else { host },
                p.path,
                if p.kind == PathKind::Exact { "" } else { "*" }
            );
            CompiledPath {
                path: normalize_prefix(&p.path, p.kind).into(),
                exact: p.kind == PathKind::Exact,
                backend: backend(&p.backend, c),
                route: route.into(),
            }
        };
        for rule in &table.rules {
            let host = rule.host.to_ascii_lowercase();
            let mut compiled: Vec<CompiledPath> =
                rule.paths.iter().map(|p| path(&host, p, &mut c)).collect();
            let label = if host.is_empty() { "*" } else { host.as_str() };
            let stats = || {
                live.insert(label.to_string());
                HostEntry::new(hosts.get(label))
            };
            let entry = if host.is_empty() {
                c.any.get_or_insert_with(stats)
            } else if let Some(suffix) = host.strip_prefix("*.") {
                c.wildcard.entry(suffix.into()).or_insert_with(stats)
            } else {
                c.exact.entry(host.as_str().into()).or_insert_with(stats)
            };
            entry.redirect_to_https |= rule.redirect_to_https;
            entry.paths.append(&mut compiled);
        }
        if let Some(b) = &table.default_backend {
            let rule = PathRule {
                path: "/".into(),
                kind: PathKind::Prefix,
                backend: b.clone(),
            };
            c.default = Some(path("(default)", &rule, &mut c));
        }
        let sort = |e: &mut HostEntry| {
            // Longest first; Exact before Prefix at equal length; stable for equal rules (the
            // first declared wins).
            e.paths
                .sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(b.exact.cmp(&a.exact)));
        };
        c.exact.values_mut().for_each(sort);
        c.wildcard.values_mut().for_each(sort);
        if let Some(a) = c.any.as_mut() {
            sort(a)
        }
        hosts.retain(&live);
        c
    }

    /// Finds the route for `host` (lower case, no port) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Option<Match<'_>> {
        let entry = self.exact.get(host).or_else(|| {
            let (_, suffix) = host.split_once('.')?;
            self.wildcard.get(suffix)
        });
        let entry = entry.or(self.any.as_ref());
        let Some(entry) = entry else {
            return self.default.as_ref().map(|d| Match {
                redirect_to_https: false,
                target: Some(d),
                stats: None,
            });
        };
        let target = entry
            .paths
            .iter()
            .find(|p| path_matches(p, path))
            .or(self.default.as_ref());
        Some(Match {
            redirect_to_https: entry.redirect_to_https,
            target,
            stats: Some(&entry.stats),
        })
    }
}

/// `/foo/` and `/foo` are the same prefix.
fn normalize_prefix(path: &str, kind: PathKind) -> &str {
    match kind {
        PathKind::Exact => path,
        PathKind::Prefix => {
            let t = path.trim_end_matches('/');
            if t.is_empty() {
                "/"
            } else {
                t
            }
        }
    }
}

fn path_matches(p: &CompiledPath, path: &str) -> bool {
    if p.exact {
        return path == &*p.path;
    }
    if &*p.path == "/" {
        return true;
    }
    match path.strip_prefix(&*p.path) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str) -> Backend {
        Backend {
            name: name.into(),
            endpoints: vec![],
        }
    }

    fn rule(host: &str, paths: &[(&str, PathKind, &str)]) -> HostRule {
        HostRule {
            host: host.into(),
            redirect_to_https: false,
            paths: paths
                .iter()
                .map(|(p, k, b)| PathRule {
                    path: p.to_string(),
                    kind: *k,
                    backend: backend(b),
                })
                .collect(),
        }
    }

    fn target(c: &Compiled, host: &str, path: &str) -> Option<String> {
        c.find(host, path)
            .and_then(|m| m.target.map(|t| t.route.to_string()))
    }

    #[test]
    fn hosts_paths_and_default() {
        use PathKind::*;
        let table = RouteTable {
            rules: vec![
                rule(
                    "app.test",
                    &[
                        ("/", Prefix, "root"),
                        ("/api", Prefix, "api"),
                        ("/api/v1", Exact, "v1"),
                    ],
                ),
                rule("*.wild.test", &[("/", Prefix, "wild")]),
                rule("", &[("/any", Prefix, "any")]),
            ],
            default_backend: None,
        };
        let c = Compiled::compile(&table, &HostRegistry::default(), &Compiled::default());
        assert_eq!(target(&c, "app.test", "/").unwrap(), "app.test/*");
        assert_eq!(target(&c, "app.test", "/api").unwrap(), "app.test/api*");
        assert_eq!(target(&c, "app.test", "/api/x").unwrap(), "app.test/api*");
        assert_eq!(target(&c, "app.test", "/apix").unwrap(), "app.test/*");
        assert_eq!(
            target(&c, "app.test", "/api/v1").unwrap(),
            "app.test/api/v1"
        );
        assert_eq!(
            target(&c, "app.test", "/api/v1/x").unwrap(),
            "app.test/api*"
        );
        assert_eq!(target(&c, "a.wild.test", "/x").unwrap(), "*.wild.test/*");
        // A wildcard covers exactly one label.
        assert_eq!(target(&c, "b.a.wild.test", "/x"), None);
        assert_eq!(target(&c, "other.test", "/any/x").unwrap(), "*/any*");
        assert_eq!(target(&c, "other.test", "/"), None);

        let with_default = RouteTable {
            default_backend: Some(backend("d")),
            ..table
        };
        let c = Compiled::compile(
            &with_default,
            &HostRegistry::default(),
            &Compiled::default(),
        );
        assert_eq!(target(&c, "nothing.test", "/").unwrap(), "(default)/*");
    }

    #[test]
    fn pool_keys_follow_endpoint_sets() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(pool_key(&[a, b]), pool_key(&[b, a]));
        assert_ne!(pool_key(&[a]), pool_key(&[a, b]));
    }
}
