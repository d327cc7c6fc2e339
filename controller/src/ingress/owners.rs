//! Ingress hosts have an owner: the namespace of the oldest Ingress that claims a host (a rule's
//! `host`, a `tls` host, or — for "any host" — a rule without a host or a `defaultBackend`).
//! Another namespace's Ingress claiming it gets no route and no certificate for that host, and a
//! `HostAlreadyClaimed` warning event (OpenShift's router admits routes the same way:
//! namespace ownership, oldest first). Without this, a namespace token could put an Ingress on
//! the admin's `vault.example.com` and take its traffic, or order a certificate for it.
//!
//! A wildcard covers one label, as the proxy matches it: `*.example.com` held by one namespace
//! keeps another from `app.example.com`, and `app.example.com` held by one keeps another from
//! `*.example.com` (it would take the subdomain's other names from under the first). Ingresses of
//! one namespace share hosts freely (they are merged, oldest first).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::model::meta;

/// The claim on "any host": a rule without `host`, or `spec.defaultBackend`.
pub const ANY_HOST: &str = "";

/// One refused claim: `ingress` wanted `host`, which `owner` (namespace/name) holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The host (lower case; `*.d` for a wildcard, empty for any host).
    pub host: String,
    /// The namespace holding it.
    pub owner_namespace: String,
    /// The Ingress holding it (`namespace/name`).
    pub owner: String,
}

impl Refusal {
    /// The event message.
    pub fn message(&self) -> String {
        let host = if self.host.is_empty() {
            "any host (a rule without host, or defaultBackend)".to_string()
        } else {
            format!("host {:?}", self.host)
        };
        format!(
            "{host} is already claimed by namespace {:?} (Ingress {}, created first); \
             this Ingress gets no route and no certificate for it",
            self.owner_namespace, self.owner
        )
    }
}

/// Who holds which host, and what each Ingress was refused.
#[derive(Debug, Default)]
pub struct Owners {
    /// host → (namespace, `namespace/name` of the Ingress that claimed it first).
    held: BTreeMap<String, (String, String)>,
    /// Ingress uid → its refused claims.
    refused: BTreeMap<String, Vec<Refusal>>,
}

/// Every host an Ingress claims, lower case.
pub fn claims(ingress: &Value) -> Vec<String> {
    let mut hosts = Vec::new();
    let spec = &ingress["spec"];
    if spec["defaultBackend"].is_object() {
        hosts.push(ANY_HOST.to_string());
    }
    for r in spec["rules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        hosts.push(r["host"].as_str().unwrap_or(ANY_HOST).to_ascii_lowercase());
    }
    for t in spec["tls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for h in t["hosts"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if let Some(h) = h.as_str() {
                hosts.push(h.to_ascii_lowercase());
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

impl Owners {
    /// Ownership from `ingresses`, which must be oldest first (as [`super::ours`] returns them).
    pub fn of(ingresses: &[Arc<Value>]) -> Owners {
        let mut owners = Owners::default();
        for ing in ingresses {
            let ns = meta::namespace(ing);
            let me = format!("{ns}/{}", meta::name(ing));
            for host in claims(ing) {
                match owners.conflict(&host, ns) {
                    Some((owner_namespace, owner)) => owners
                        .refused
                        .entry(meta::uid(ing).to_string())
                        .or_default()
                        .push(Refusal {
                            host,
                            owner_namespace,
                            owner,
                        }),
                    None => {
                        owners
                            .held
                            .entry(host)
                            .or_insert_with(|| (ns.to_string(), me.clone()));
                    }
                }
            }
        }
        owners
    }

    /// The other namespace's claim `host` meets, if any.
    fn conflict(&self, host: &str, namespace: &str) -> Option<(String, String)> {
        let other = |h: &str| self.held.get(h).filter(|(ns, _)| ns != namespace).cloned();
        if let Some(o) = other(host) {
            return Some(o);
        }
        if let Some(domain) = host.strip_prefix("*.") {
            // A wildcard meets every name one label below it.
            let suffix = format!(".{domain}");
            return self
                .held
                .iter()
                .find(|(h, (ns, _))| {
                    ns != namespace
                        && h.strip_suffix(&suffix)
                            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                })
                .map(|(_, o)| o.clone());
        }
        match host.split_once('.') {
            Some((label, parent)) if !label.is_empty() && !parent.is_empty() => {
                other(&format!("*.{parent}"))
            }
            _ => None,
        }
    }

    /// Whether `ingress` may have `host` (lower case).
    pub fn allows(&self, ingress: &Value, host: &str) -> bool {
        !self
            .refused
            .get(meta::uid(ingress))
            .is_some_and(|r| r.iter().any(|r| r.host == host))
    }

    /// What `ingress` was refused.
    pub fn refusals(&self, ingress: &Value) -> &[Refusal] {
        self.refused
            .get(meta::uid(ingress))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether `ingress` was given at least one of its claims (or claims nothing).
    pub fn admitted(&self, ingress: &Value) -> bool {
        self.refusals(ingress).len() < claims(ingress).len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ing(ns: &str, name: &str, hosts: &[&str], tls: &[&str]) -> Arc<Value> {
        let rules: Vec<Value> = hosts
            .iter()
            .map(|h| {
                if h.is_empty() {
                    json!({"http": {"paths": []}})
                } else {
                    json!({"host": h})
                }
            })
            .collect();
        Arc::new(
            json!({"metadata": {"namespace": ns, "name": name, "uid": format!("{ns}-{name}")},
            "spec": {"rules": rules, "tls": [{"hosts": tls}]}}),
        )
    }

    #[test]
    fn the_oldest_namespace_holds_a_host() {
        let a = ing("a", "web", &["App.Example.com"], &["app.example.com"]);
        let a2 = ing("a", "api", &["app.example.com"], &[]);
        let b = ing(
            "b",
            "steal",
            &["app.example.com", "b.example.com"],
            &["app.example.com"],
        );
        let o = Owners::of(&[a.clone(), a2.clone(), b.clone()]);
        assert!(o.allows(&a, "app.example.com"));
        assert!(o.allows(&a2, "app.example.com"), "one namespace shares");
        assert!(!o.allows(&b, "app.example.com"));
        assert!(o.allows(&b, "b.example.com"));
        assert!(o.admitted(&b));
        assert_eq!(
            o.refusals(&b),
            &[Refusal {
                host: "app.example.com".into(),
                owner_namespace: "a".into(),
                owner: "a/web".into()
            }]
        );
        assert!(o.refusals(&b)[0].message().contains("namespace \"a\""));
    }

    #[test]
    fn wildcards_meet_the_names_one_label_below() {
        let a = ing("a", "wild", &["*.example.com"], &[]);
        let b = ing(
            "b",
            "one",
            &["x.example.com", "y.x.example.com", "example.com"],
            &[],
        );
        let o = Owners::of(&[a.clone(), b.clone()]);
        assert!(!o.allows(&b, "x.example.com"));
        assert!(o.allows(&b, "y.x.example.com"), "two labels below");
        assert!(o.allows(&b, "example.com"), "the domain itself");

        let o = Owners::of(&[b.clone(), a.clone()]);
        assert!(!o.allows(&a, "*.example.com"), "x.example.com is b's");
        assert!(!o.admitted(&a));
    }

    #[test]
    fn any_host_has_an_owner_too() {
        let a = ing("a", "catch", &[""], &[]);
        let b = ing("b", "catch", &[""], &[]);
        let mut d = (*ing("b", "default", &[], &[])).clone();
        d["spec"]["defaultBackend"] = json!({"service": {"name": "x", "port": {"number": 80}}});
        let d = Arc::new(d);
        let o = Owners::of(&[a.clone(), b.clone(), d.clone()]);
        assert!(o.allows(&a, ANY_HOST));
        assert!(!o.allows(&b, ANY_HOST));
        assert!(!o.allows(&d, ANY_HOST));
        assert!(o.refusals(&d)[0].message().contains("any host"));
    }
}
