//! A pod's name resolution files, as kubelet writes them: `resolv.conf` from `dnsPolicy`
//! (ClusterFirst: the cluster DNS — for a hostNetwork pod the node's file; ClusterFirstWithHostNet:
//! the cluster DNS; Default: the node's file; None: only `dnsConfig`) merged with `dnsConfig`
//! (nameservers and searches appended, without duplicates; options by name, the pod's winning),
//! the `hostAliases` lines of `/etc/hosts`, and the FQDN of `setHostnameAsFQDN`. Pure.

use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodSpec};

/// At most 3 nameservers (glibc reads no more), 32 search domains (as kubelet).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The parts of a resolv.conf.
#[derive(Debug, Default, PartialEq, Eq)]
struct Resolv {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

impl Resolv {
    fn parse(text: &str) -> Resolv {
        let mut r = Resolv::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(String::from)),
                // The last `search` line wins (as the resolver reads it).
                Some("search") => r.searches = words.map(String::from).collect(),
                Some("options") => r.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        r
    }

    fn merge(&mut self, cfg: &PodDNSConfig) {
        for n in cfg.nameservers.iter().flatten() {
            if !self.nameservers.contains(n) {
                self.nameservers.push(n.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !self.searches.contains(s) {
                self.searches.push(s.clone());
            }
        }
        for o in cfg.options.iter().flatten() {
            let Some(name) = o.name.as_deref() else {
                continue;
            };
            let option = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            self.options
                .retain(|existing| existing.split(':').next() != Some(name));
            self.options.push(option);
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for n in self.nameservers.iter().take(MAX_NAMESERVERS) {
            out.push_str(&format!("nameserver {n}\n"));
        }
        if !self.searches.is_empty() {
            let s: Vec<&str> = self
                .searches
                .iter()
                .take(MAX_SEARCHES)
                .map(String::as_str)
                .collect();
            out.push_str(&format!("search {}\n", s.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// Whether the pod resolves through the cluster DNS.
pub(crate) fn uses_cluster_dns(spec: &PodSpec) -> bool {
    let host_network = spec.host_network.unwrap_or(false);
    match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    }
}

/// The pod's resolv.conf: `cluster` (the cluster DNS's file, when the policy uses it), else
/// `node` (the node's file) — nothing under `None` — merged with `dnsConfig`.
pub(crate) fn resolv_conf(spec: &PodSpec, cluster: Option<String>, node: &str) -> String {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let base = match (policy, cluster) {
        ("None", _) => String::new(),
        (_, Some(c)) if uses_cluster_dns(spec) => c,
        _ => node.to_string(),
    };
    let Some(cfg) = &spec.dns_config else {
        return base;
    };
    let mut r = Resolv::parse(&base);
    r.merge(cfg);
    r.render()
}

/// The node's resolv.conf for pods: `/etc/resolv.conf`, unless it points at systemd-resolved's
/// stub on 127.0.0.53 — unreachable from a pod's network namespace — and the upstream file
/// exists (what k3s and kubelet on systemd hosts use).
pub(crate) fn node_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if Resolv::parse(&etc)
        .nameservers
        .iter()
        .any(|n| n.starts_with("127.0.0.53"))
    {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return upstream;
        }
    }
    etc
}

/// The `/etc/hosts` lines of `hostAliases` (empty without any), as kubelet writes them.
pub(crate) fn host_aliases(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names = a.hostnames.clone().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", a.ip));
    }
    out
}

/// The pod's kernel hostname: with `setHostnameAsFQDN` and a subdomain, its FQDN
/// (`host.sub.ns.svc.<domain>`); otherwise `hostname`. Err when the FQDN is longer than the
/// kernel's 64 bytes (kubelet refuses to start such a pod).
pub(crate) fn kernel_hostname(
    spec: &PodSpec,
    hostname: &str,
    fqdn: Option<&str>,
) -> Result<String, String> {
    match fqdn.filter(|_| spec.set_hostname_as_fqdn == Some(true)) {
        Some(f) if f.len() > 64 => Err(format!(
            "failed to construct FQDN from pod hostname and cluster domain, FQDN {f} is too long (64 characters is the max, {} characters requested)",
            f.len()
        )),
        Some(f) => Ok(f.to_string()),
        None => Ok(hostname.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    const CLUSTER: &str = "nameserver 10.42.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
    const NODE: &str = "nameserver 192.0.2.53\nsearch lan\n";

    #[test]
    fn policies() {
        let cluster = || Some(CLUSTER.to_string());
        let c = |s: serde_json::Value| resolv_conf(&spec(s), cluster(), NODE);
        assert_eq!(c(json!({"containers": []})), CLUSTER);
        assert_eq!(c(json!({"containers": [], "hostNetwork": true})), NODE);
        assert_eq!(
            c(
                json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})
            ),
            CLUSTER
        );
        assert_eq!(c(json!({"containers": [], "dnsPolicy": "Default"})), NODE);
        assert_eq!(
            c(json!({"containers": [], "dnsPolicy": "None",
                "dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["example.test"],
                  "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})),
            "nameserver 192.0.2.1\nsearch example.test\noptions ndots:2 edns0\n"
        );
        // Without the cluster DNS (no bridge), ClusterFirst is the node's file.
        assert_eq!(
            resolv_conf(&spec(json!({"containers": []})), None, NODE),
            NODE
        );
    }

    #[test]
    fn dns_config_merges_into_the_policy_file() {
        let s = spec(json!({"containers": [], "dnsConfig": {
            "nameservers": ["10.42.0.1", "192.0.2.1", "192.0.2.2", "192.0.2.3"],
            "searches": ["svc.cluster.local", "example.test"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}]}}));
        assert_eq!(
            resolv_conf(&s, Some(CLUSTER.into()), NODE),
            "nameserver 10.42.0.1\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n\
             search default.svc.cluster.local svc.cluster.local cluster.local example.test\n\
             options ndots:1 single-request-reopen\n"
        );
    }

    #[test]
    fn aliases_and_fqdn() {
        let aliases: Vec<HostAlias> = serde_json::from_value(json!([
            {"ip": "192.0.2.10", "hostnames": ["db", "db.lan"]},
            {"ip": "2001:db8::1", "hostnames": ["v6"]}
        ]))
        .unwrap();
        assert_eq!(
            host_aliases(&aliases),
            "\n# Entries added by HostAliases.\n192.0.2.10\tdb\tdb.lan\n2001:db8::1\tv6\n"
        );
        assert_eq!(host_aliases(&[]), "");
        let fqdn = "web-0.web.default.svc.cluster.local";
        let on = spec(json!({"containers": [], "setHostnameAsFQDN": true}));
        let off = spec(json!({"containers": []}));
        assert_eq!(kernel_hostname(&on, "web-0", Some(fqdn)).unwrap(), fqdn);
        assert_eq!(kernel_hostname(&on, "web-0", None).unwrap(), "web-0");
        assert_eq!(kernel_hostname(&off, "web-0", Some(fqdn)).unwrap(), "web-0");
        let long = format!("{}.web.default.svc.cluster.local", "a".repeat(40));
        assert!(kernel_hostname(&on, "x", Some(&long))
            .unwrap_err()
            .contains("is too long"));
    }
}
