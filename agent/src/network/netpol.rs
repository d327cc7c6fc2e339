//! NetworkPolicies as the node enforces them — a pure function of (policies, namespaces, pods)
//! → [`Policies`]: for each pod a policy isolates, the traffic it may receive (ingress) or send
//! (egress), as addresses and ports. [`super::rules`] renders it into skiff's nftables table.
//!
//! The semantics are Kubernetes': a pod is isolated for a direction when some policy selecting
//! it has that direction in `policyTypes` (defaulted: `Ingress`, plus `Egress` when the policy
//! has an `egress` section); it then accepts only what the union of those policies' rules
//! allows. A rule with no peers allows every peer, with no ports every port; a peer is a
//! `podSelector` (the policy's namespace), a `namespaceSelector` (every pod of the selected
//! namespaces, narrowed by a `podSelector` beside it) or an `ipBlock` (`cidr` minus `except`).
//! Named ports resolve against the pod that owns the port: the selected pod for ingress, each
//! destination pod for egress. Replies to allowed connections pass (conntrack).
//!
//! What this node adds: traffic from the node itself (probes, `kubectl port-forward`, the
//! ingress proxy) always reaches pods, as the Kubernetes documentation says; the cluster DNS,
//! which here runs on the node rather than in a pod, stays reachable from egress-isolated pods
//! (policies that allow DNS name the `kube-system` pods that do not exist here).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// A peer address set: one pod, or a block of addresses minus exceptions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// A pod's address.
    Pod(Ipv4Addr),
    /// `cidr` without the `except` blocks.
    Block {
        /// The block.
        cidr: Ipv4Net,
        /// Blocks taken out of it.
        except: Vec<Ipv4Net>,
    },
}

/// Ports of one protocol: `None` is every port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ports {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
    /// Inclusive port ranges; `None` for every port of the protocol.
    pub ranges: Option<Vec<(u16, u16)>>,
}

/// One allowed flow: from/to any of `peers` (`None`: anywhere) on any of `ports` (`None`: any
/// port and protocol).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allow {
    /// The other end.
    pub peers: Option<Vec<Peer>>,
    /// This end's ports (ingress) or the other end's (egress).
    pub ports: Option<Vec<Ports>>,
}

/// What one isolated pod may do in one direction; nothing else passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolated {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// Allowed flows (empty: nothing).
    pub allow: Vec<Allow>,
}

/// Every isolated pod on the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policies {
    /// Pods isolated for ingress.
    pub ingress: Vec<Isolated>,
    /// Pods isolated for egress.
    pub egress: Vec<Isolated>,
}

impl Policies {
    /// Whether no pod is isolated.
    pub fn is_empty(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }
}

/// Whether `labels` satisfy the label selector `sel` (`matchLabels` and `matchExpressions`;
/// an empty selector matches everything). An operator the API would have refused matches
/// nothing.
pub fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let by_exprs = sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let have = labels.get(key).map(String::as_str);
            match e["operator"].as_str() {
                Some("In") => have.is_some_and(|h| values.contains(&h)),
                Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
                Some("Exists") => have.is_some(),
                Some("DoesNotExist") => have.is_none(),
                _ => false,
            }
        });
    by_labels && by_exprs
}

/// A pod as policies see it.
struct Member<'a> {
    namespace: &'a str,
    labels: BTreeMap<String, String>,
    ip: Ipv4Addr,
    /// Named container ports: name → (protocol, port).
    named: BTreeMap<String, (&'static str, u16)>,
}

fn protocol(p: Option<&str>) -> Option<&'static str> {
    match p.unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

fn members(pods: &[Pod]) -> Vec<Member<'_>> {
    pods.iter()
        .filter_map(|p| {
            let spec = p.spec.as_ref()?;
            let status = p.status.as_ref()?;
            if spec.host_network == Some(true) || crate::pod::status::finished(status) {
                return None;
            }
            let ip: Ipv4Addr = status.pod_ip.as_deref()?.parse().ok()?;
            let named = spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|cp| {
                    let port = u16::try_from(cp.container_port).ok()?;
                    Some((cp.name.clone()?, (protocol(cp.protocol.as_deref())?, port)))
                })
                .collect();
            Some(Member {
                namespace: p.metadata.namespace.as_deref().unwrap_or("default"),
                labels: p.metadata.labels.clone().unwrap_or_default(),
                ip,
                named,
            })
        })
        .collect()
}

/// Namespace name → labels (with `kubernetes.io/metadata.name`, which the API server sets).
fn namespace_labels(namespaces: &[Value]) -> BTreeMap<&str, BTreeMap<String, String>> {
    namespaces
        .iter()
        .filter_map(|n| {
            let name = n["metadata"]["name"].as_str()?;
            let mut labels: BTreeMap<String, String> = n["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            labels.insert("kubernetes.io/metadata.name".into(), name.into());
            Some((name, labels))
        })
        .collect()
}

/// One policy port entry, unresolved.
enum PortSpec {
    /// Every port of a protocol.
    All(&'static str),
    /// A numbered range.
    Range(&'static str, u16, u16),
    /// A container port's name.
    Named(&'static str, String),
}

fn port_specs(ports: &Value) -> Option<Vec<PortSpec>> {
    let list = ports.as_array().filter(|l| !l.is_empty())?;
    Some(
        list.iter()
            .filter_map(|p| {
                let proto = protocol(p["protocol"].as_str())?;
                Some(match &p["port"] {
                    Value::Null => PortSpec::All(proto),
                    Value::String(name) => match name.parse::<u16>() {
                        Ok(n) => PortSpec::Range(proto, n, n),
                        Err(_) => PortSpec::Named(proto, name.clone()),
                    },
                    v => {
                        let n = u16::try_from(v.as_u64()?).ok()?;
                        let end = p["endPort"]
                            .as_u64()
                            .and_then(|e| u16::try_from(e).ok())
                            .unwrap_or(n);
                        PortSpec::Range(proto, n, end)
                    }
                })
            })
            .collect(),
    )
}

type ByProtocol = BTreeMap<&'static str, Option<BTreeSet<(u16, u16)>>>;

/// Adds a range to a protocol's ports (nothing when the protocol already allows every port).
fn add(by_proto: &mut ByProtocol, protocol: &'static str, range: (u16, u16)) {
    if let Some(set) = by_proto
        .entry(protocol)
        .or_insert_with(|| Some(BTreeSet::new()))
    {
        set.insert(range);
    }
}

/// Resolves port specs against the pod owning the ports (named ports it lacks match nothing).
/// `None` when no port could be resolved at all (the rule then allows nothing).
fn resolve(specs: &[PortSpec], owner: Option<&Member>) -> Option<Vec<Ports>> {
    let mut by_proto = ByProtocol::new();
    for s in specs {
        match s {
            PortSpec::All(p) => {
                by_proto.insert(p, None);
            }
            PortSpec::Range(p, a, b) => add(&mut by_proto, p, (*a, *b)),
            PortSpec::Named(p, name) => {
                let Some(&(proto, port)) = owner.and_then(|m| m.named.get(name)) else {
                    continue;
                };
                if proto == *p {
                    add(&mut by_proto, p, (port, port));
                }
            }
        }
    }
    let out: Vec<Ports> = by_proto
        .into_iter()
        .filter(|(_, r)| r.as_ref().is_none_or(|s| !s.is_empty()))
        .map(|(protocol, ranges)| Ports {
            protocol,
            ranges: ranges.map(|s| s.into_iter().collect()),
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// The peers of one rule (`from` or `to`): `None` for everywhere.
fn peers<'a>(
    list: &Value,
    policy_ns: &str,
    pods: &'a [Member<'a>],
    namespaces: &BTreeMap<&str, BTreeMap<String, String>>,
) -> Option<(Vec<Peer>, Vec<&'a Member<'a>>)> {
    let list = list.as_array().filter(|l| !l.is_empty())?;
    let mut out = Vec::new();
    let mut selected: Vec<&Member> = Vec::new();
    let empty = BTreeMap::new();
    for peer in list {
        if let Some(block) = peer["ipBlock"].as_object() {
            // IPv6 blocks match nothing here: pods have IPv4 addresses only.
            if let Some(cidr) = block
                .get("cidr")
                .and_then(Value::as_str)
                .and_then(|c| c.parse::<Ipv4Net>().ok())
            {
                let except = block
                    .get("except")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str()?.parse::<Ipv4Net>().ok())
                    .collect();
                out.push(Peer::Block { cidr, except });
            }
            continue;
        }
        let (pod_sel, ns_sel) = (&peer["podSelector"], &peer["namespaceSelector"]);
        for m in pods {
            let ns_ok = if ns_sel.is_null() {
                m.namespace == policy_ns
            } else {
                selector_matches(ns_sel, namespaces.get(m.namespace).unwrap_or(&empty))
            };
            let pod_ok = pod_sel.is_null() || selector_matches(pod_sel, &m.labels);
            if ns_ok && pod_ok && !selected.iter().any(|s| s.ip == m.ip) {
                selected.push(m);
            }
        }
    }
    out.extend(selected.iter().map(|m| Peer::Pod(m.ip)));
    Some((out, selected))
}

/// A policy's directions: its `policyTypes`, or the API server's default for them.
fn types(policy: &Value) -> (bool, bool) {
    match policy["spec"]["policyTypes"].as_array() {
        Some(t) => (
            t.iter().any(|v| v == "Ingress"),
            t.iter().any(|v| v == "Egress"),
        ),
        None => (true, !policy["spec"]["egress"].is_null()),
    }
}

/// The allowed flows of one direction's rules of one policy, for the pod `me`.
fn rules(
    policy: &Value,
    key: &str,
    peers_key: &str,
    me: &Member,
    pods: &[Member],
    namespaces: &BTreeMap<&str, BTreeMap<String, String>>,
) -> Vec<Allow> {
    let ns = policy["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let mut out = Vec::new();
    for rule in policy["spec"][key].as_array().into_iter().flatten() {
        let specs = port_specs(&rule["ports"]);
        let peer_set = peers(&rule[peers_key], ns, pods, namespaces);
        let ingress = key == "ingress";
        match (specs, peer_set) {
            (None, None) => out.push(Allow {
                peers: None,
                ports: None,
            }),
            (None, Some((peers, _))) => {
                if !peers.is_empty() {
                    out.push(Allow {
                        peers: Some(peers),
                        ports: None,
                    })
                }
            }
            // Ingress: the ports are this pod's own.
            (Some(specs), peer_set) if ingress => {
                let peers = peer_set.map(|(p, _)| p);
                if peers.as_ref().is_some_and(Vec::is_empty) {
                    continue;
                }
                if let Some(ports) = resolve(&specs, Some(me)) {
                    out.push(Allow {
                        peers,
                        ports: Some(ports),
                    });
                }
            }
            // Egress: numbered ports are anyone's; a named port is each destination pod's.
            (Some(specs), peer_set) => {
                let (blocks, dests): (Vec<Peer>, Vec<&Member>) = match peer_set {
                    Some((peers, selected)) => (
                        peers
                            .into_iter()
                            .filter(|p| matches!(p, Peer::Block { .. }))
                            .collect(),
                        selected,
                    ),
                    None => (Vec::new(), pods.iter().collect()),
                };
                let numbered: Vec<PortSpec> = specs
                    .iter()
                    .filter_map(|s| match s {
                        PortSpec::All(p) => Some(PortSpec::All(p)),
                        PortSpec::Range(p, a, b) => Some(PortSpec::Range(p, *a, *b)),
                        PortSpec::Named(..) => None,
                    })
                    .collect();
                let everywhere = rule[peers_key].as_array().is_none_or(|l| l.is_empty());
                if let Some(ports) = resolve(&numbered, None) {
                    let peers = if everywhere {
                        None
                    } else {
                        let mut p = blocks.clone();
                        p.extend(dests.iter().map(|m| Peer::Pod(m.ip)));
                        Some(p).filter(|p| !p.is_empty())
                    };
                    if everywhere || peers.is_some() {
                        out.push(Allow {
                            peers,
                            ports: Some(ports),
                        });
                    }
                }
                if specs.iter().any(|s| matches!(s, PortSpec::Named(..))) {
                    for d in dests {
                        let named: Vec<PortSpec> = specs
                            .iter()
                            .filter_map(|s| match s {
                                PortSpec::Named(p, n) => Some(PortSpec::Named(p, n.clone())),
                                _ => None,
                            })
                            .collect();
                        if let Some(ports) = resolve(&named, Some(d)) {
                            out.push(Allow {
                                peers: Some(vec![Peer::Pod(d.ip)]),
                                ports: Some(ports),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Plans the node's NetworkPolicy enforcement over every pod with an address.
pub fn plan(policies: &[Value], namespaces: &[Value], pods: &[Pod]) -> Policies {
    let members = members(pods);
    let ns_labels = namespace_labels(namespaces);
    let mut out = Policies::default();
    for me in &members {
        let mut ingress: Option<Vec<Allow>> = None;
        let mut egress: Option<Vec<Allow>> = None;
        for policy in policies {
            if policy["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                != me.namespace
                || !selector_matches(&policy["spec"]["podSelector"], &me.labels)
            {
                continue;
            }
            let (is_in, is_out) = types(policy);
            if is_in {
                ingress
                    .get_or_insert_with(Vec::new)
                    .extend(rules(policy, "ingress", "from", me, &members, &ns_labels));
            }
            if is_out {
                egress
                    .get_or_insert_with(Vec::new)
                    .extend(rules(policy, "egress", "to", me, &members, &ns_labels));
            }
        }
        for (dir, allow) in [(&mut out.ingress, ingress), (&mut out.egress, egress)] {
            if let Some(mut allow) = allow {
                allow.sort();
                allow.dedup();
                dir.push(Isolated { ip: me.ip, allow });
            }
        }
    }
    out.ingress.sort_by_key(|i| i.ip);
    out.egress.sort_by_key(|i| i.ip);
    out
}

#[cfg(test)]
mod tests;
