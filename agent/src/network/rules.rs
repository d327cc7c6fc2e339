//! skiff's nftables table (`inet skiff`): outbound NAT for pods, Service virtual IPs as DNAT to
//! their ready endpoints, and rejects for cluster and service addresses that match nothing —
//! never forwarded out of the uplink. Packets from the pod bridge to the host's loopback
//! (127.0.0.0/8, reachable since `route_localnet` is on for host-port DNAT) are dropped, as
//! kube-proxy's KUBE-FIREWALL does (CVE-2020-8558): a pod never reaches a service the host
//! binds to 127.0.0.1. Replies of the host's own loopback connections to host ports (un-NATed
//! back to 127.0.0.1 before the input hook) are established and pass. The whole table is replaced atomically on every change
//! (`nft -f` runs one transaction); nothing outside it is touched.
//!
//! Why the `nft` tool and not netlink from Rust: the Rust nftables crates either wrap the same
//! tool (JSON) or are young; `nft -f` gives one atomic transaction for the whole table, which
//! is exactly the semantics wanted, and its text is easy to read in a bug report.

use std::io::Write;
use std::process::{Command, Stdio};

use super::netpol::{Allow, Isolated, Peer, Policies, Ports};
use super::NetworkConfig;

/// `sessionAffinity: ClientIP` of one Service port, as kube-proxy's nftables mode does it: a
/// set per endpoint remembering the clients sent there (each entry for `timeout` seconds after
/// its last packet), matched before the random choice. The virtual IP, the node port and the
/// LoadBalancer port of one Service port share the sets (same `key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Affinity {
    /// The Service port (`namespace/name/port-name`).
    pub key: String,
    /// `sessionAffinityConfig.clientIP.timeoutSeconds`.
    pub timeout: u32,
}

/// One Service port as the node implements it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRule {
    /// The virtual IP.
    pub vip: std::net::Ipv4Addr,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The Service port.
    pub port: u16,
    /// Ready endpoints: (pod IP, target port).
    pub endpoints: Vec<(std::net::Ipv4Addr, u16)>,
    /// Client IP affinity, if the Service asks for it.
    pub affinity: Option<Affinity>,
}

/// A port published on the host's own addresses (NodePort, LoadBalancer, hostPort), DNATed to
/// endpoints. The client's address stays visible to the pod (no masquerade) except for
/// connections from the host's loopback, which must be rewritten to leave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPortRule {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The host port.
    pub port: u16,
    /// Only for this host address (a hostPort's `hostIP`), or every local address.
    pub host_ip: Option<std::net::Ipv4Addr>,
    /// Endpoints: (pod IP, port).
    pub endpoints: Vec<(std::net::Ipv4Addr, u16)>,
    /// Client IP affinity, if the Service asks for it.
    pub affinity: Option<Affinity>,
    /// Only clients from these networks (a LoadBalancer's `loadBalancerSourceRanges`); empty:
    /// every client.
    pub sources: Vec<ipnet::Ipv4Net>,
}

/// Everything the node's table implements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Service virtual IPs.
    pub services: Vec<ServiceRule>,
    /// Host ports.
    pub host_ports: Vec<HostPortRule>,
    /// NetworkPolicy isolation.
    pub policies: Policies,
}

fn dnat_map(endpoints: &[(std::net::Ipv4Addr, u16)]) -> String {
    let targets: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (ip, port))| format!("{i} : {ip} . {port}"))
        .collect();
    format!(
        "dnat ip to numgen random mod {} map {{ {} }}",
        endpoints.len(),
        targets.join(", ")
    )
}

/// Why nftables did not take skiff's rules.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started.
    #[error("running nft (is the nftables package installed?): {0}")]
    Spawn(#[source] std::io::Error),
    /// Talking to `nft` failed.
    #[error(transparent)]
    Io(std::io::Error),
    /// `nft` rejected the ruleset; its message.
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

fn nft(script: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(NftError::Io)?;
    let out = child.wait_with_output().map_err(NftError::Io)?;
    if !out.status.success() {
        return Err(NftError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// The chains and sets of the Service ports with client IP affinity, and the verdict that
/// sends a packet to them, by [`Affinity::key`].
#[derive(Default)]
struct AffinityChains {
    /// `key` → the chain choosing an endpoint.
    chain: std::collections::BTreeMap<String, String>,
    /// The sets and chains.
    text: String,
}

impl AffinityChains {
    /// Per Service port with affinity (numbered in key order): a set and a chain per endpoint
    /// (remember the client, DNAT), and a chain sending a remembered client to its endpoint,
    /// any other to a random one.
    fn new(rules: &Rules) -> Self {
        let mut groups = std::collections::BTreeMap::new();
        let services = rules
            .services
            .iter()
            .map(|s| (&s.affinity, &s.protocol, &s.endpoints));
        let hosts = rules
            .host_ports
            .iter()
            .map(|h| (&h.affinity, &h.protocol, &h.endpoints));
        for (a, protocol, endpoints) in services.chain(hosts) {
            if let Some(a) = a.as_ref().filter(|_| !endpoints.is_empty()) {
                groups
                    .entry(a.key.clone())
                    .or_insert((a.timeout, protocol, endpoints));
            }
        }
        let mut out = AffinityChains::default();
        for (g, (key, (timeout, protocol, endpoints))) in groups.into_iter().enumerate() {
            let name = format!("affinity-{g}");
            let mut choose = format!("  chain {name} {{\n");
            let mut random = Vec::new();
            for (j, (ip, port)) in endpoints.iter().enumerate() {
                let ep = format!("{name}-{j}");
                out.text.push_str(&format!(
                    "  set {ep} {{\n    type ipv4_addr\n    flags dynamic,timeout\n    timeout {timeout}s\n  }}\n  chain {ep} {{\n    update @{ep} {{ ip saddr }}\n    meta l4proto {protocol} dnat ip to {ip}:{port}\n  }}\n"
                ));
                choose.push_str(&format!("    ip saddr @{ep} goto {ep}\n"));
                random.push(format!("{j} : goto {ep}"));
            }
            choose.push_str(&format!(
                "    numgen random mod {} vmap {{ {} }}\n  }}\n",
                endpoints.len(),
                random.join(", ")
            ));
            out.text.push_str(&choose);
            out.chain.insert(key, name);
        }
        out
    }

    /// The verdict for a packet to these endpoints: the affinity chain, or a random DNAT.
    fn verdict(&self, a: &Option<Affinity>, endpoints: &[(std::net::Ipv4Addr, u16)]) -> String {
        match a.as_ref().and_then(|a| self.chain.get(&a.key)) {
            Some(chain) => format!("goto {chain}"),
            None => dnat_map(endpoints),
        }
    }
}

/// The ruleset text.
pub fn ruleset(cfg: &NetworkConfig, rules: &Rules) -> String {
    let (t, br, cluster, svc) = (cfg.table(), &cfg.bridge, cfg.cluster_cidr, cfg.service_cidr);
    let affinity = AffinityChains::new(rules);
    let mut dnat = String::new();
    for s in rules.services.iter().filter(|s| !s.endpoints.is_empty()) {
        dnat.push_str(&format!(
            "    ip daddr {} {} dport {} {}\n",
            s.vip,
            s.protocol,
            s.port,
            affinity.verdict(&s.affinity, &s.endpoints)
        ));
    }
    let mut host = String::new();
    for h in rules.host_ports.iter().filter(|h| !h.endpoints.is_empty()) {
        let only = h
            .host_ip
            .map(|ip| format!("ip daddr {ip} "))
            .unwrap_or_default();
        host.push_str(&format!(
            "    {only}{} dport {} {}\n",
            h.protocol,
            h.port,
            affinity.verdict(&h.affinity, &h.endpoints)
        ));
    }
    let affinity = affinity.text;
    let sources = source_chains(rules);
    let PolicyRules {
        forward,
        input,
        chains: policy,
    } = policy_rules(cfg, &rules.policies);
    format!(
        "table inet {t} {{}}
delete table inet {t}
table inet {t} {{
  chain services {{
{dnat}  }}
  chain hostports {{
{host}  }}
  chain prerouting {{
    type nat hook prerouting priority -100; policy accept;
    ip daddr {svc} jump services
    fib daddr type local jump hostports
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    ip daddr {svc} jump services
    fib daddr type local jump hostports
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip saddr {cluster} ip daddr != {cluster} oifname != \"{br}\" masquerade
    oifname \"{br}\" ct status dnat ip saddr {cluster} masquerade
    oifname \"{br}\" ct status dnat ip saddr 127.0.0.0/8 masquerade
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname \"{br}\" ip daddr 127.0.0.0/8 ct state established,related accept
    iifname \"{br}\" ip daddr 127.0.0.0/8 drop
{input}  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip daddr {svc} reject with icmp type admin-prohibited
    ip daddr {cluster} oifname != \"{br}\" reject with icmp type admin-prohibited
{forward}  }}
{affinity}{sources}{policy}}}
"
    )
}

/// Before DNAT (priority -110, arriving and from the host itself): a LoadBalancer port's
/// clients outside its `loadBalancerSourceRanges` are dropped, as kube-proxy's firewall-check
/// chain does. Nothing when no Service has source ranges.
fn source_chains(rules: &Rules) -> String {
    let mut lines = String::new();
    for h in rules.host_ports.iter().filter(|h| !h.sources.is_empty()) {
        let to = match h.host_ip {
            Some(ip) => format!("ip daddr {ip}"),
            None => "fib daddr type local".to_string(),
        };
        lines.push_str(&format!(
            "    {to} {} dport {} ip saddr != {{ {} }} drop\n",
            h.protocol,
            h.port,
            join(&h.sources)
        ));
    }
    if lines.is_empty() {
        return lines;
    }
    let hook = |name: &str, hook: &str| {
        format!("  chain {name} {{\n    type filter hook {hook} priority -110; policy accept;\n    jump sources\n  }}\n")
    };
    format!(
        "  chain sources {{\n{lines}  }}\n{}{}",
        hook("sources-prerouting", "prerouting"),
        hook("sources-output", "output")
    )
}

/// The chain that holds one isolated pod's allowed flows (`return`: allowed), then refuses.
fn isolated_chain(direction: &str, pod: &Isolated) -> String {
    let peer = if direction == "in" { "saddr" } else { "daddr" };
    let mut out = format!("  chain {} {{\n", chain_name(direction, pod));
    for a in &pod.allow {
        for line in allow_lines(a, peer) {
            out.push_str(&format!("    {}\n", format!("{line} return").trim_start()));
        }
    }
    out.push_str("    meta l4proto tcp reject with tcp reset\n");
    out.push_str("    reject with icmp type admin-prohibited\n  }\n");
    out
}

fn chain_name(direction: &str, pod: &Isolated) -> String {
    format!("{direction}-{}", pod.ip.to_string().replace('.', "-"))
}

/// The match expressions (without verdict) of one allowed flow: one line per peer kind and
/// protocol, since nftables matches one protocol's ports at a time.
fn allow_lines(a: &Allow, peer: &str) -> Vec<String> {
    let peer_matches: Vec<String> = match &a.peers {
        None => vec![String::new()],
        Some(peers) => {
            let pods: Vec<String> = peers
                .iter()
                .filter_map(|p| match p {
                    Peer::Pod(ip) => Some(ip.to_string()),
                    Peer::Block { .. } => None,
                })
                .collect();
            let mut m: Vec<String> = peers
                .iter()
                .filter_map(|p| match p {
                    Peer::Block { cidr, except } if except.is_empty() => {
                        Some(format!("ip {peer} {cidr} "))
                    }
                    Peer::Block { cidr, except } => Some(format!(
                        "ip {peer} {cidr} ip {peer} != {{ {} }} ",
                        join(except)
                    )),
                    Peer::Pod(_) => None,
                })
                .collect();
            if !pods.is_empty() {
                m.push(format!("ip {peer} {{ {} }} ", pods.join(", ")));
            }
            m
        }
    };
    let port_matches: Vec<String> = match &a.ports {
        None => vec![String::new()],
        Some(ports) => ports.iter().map(port_match).collect(),
    };
    peer_matches
        .iter()
        .flat_map(|pm| port_matches.iter().map(move |p| format!("{pm}{p}")))
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn port_match(p: &Ports) -> String {
    match &p.ranges {
        None => format!("meta l4proto {}", p.protocol),
        Some(ranges) => {
            let r: Vec<String> = ranges
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            format!("{} dport {{ {} }}", p.protocol, r.join(", "))
        }
    }
}

fn join(items: &[impl std::fmt::Display]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verdict map sending each isolated pod's packets to its chain.
fn dispatch(direction: &str, field: &str, pods: &[Isolated]) -> String {
    let entries: Vec<String> = pods
        .iter()
        .map(|p| format!("{} : jump {}", p.ip, chain_name(direction, p)))
        .collect();
    format!("ip {field} vmap {{ {} }}", entries.join(", "))
}

/// The NetworkPolicy part of the table: the forward chain's additions (pod to pod, pod to the
/// world, the world to pods), the input chain's (egress-isolated pods talking to the node: the
/// cluster DNS always answers), and the chains they jump to.
struct PolicyRules {
    forward: String,
    input: String,
    chains: String,
}

fn policy_rules(cfg: &NetworkConfig, p: &Policies) -> PolicyRules {
    let mut out = PolicyRules {
        forward: String::new(),
        input: String::new(),
        chains: String::new(),
    };
    if p.is_empty() {
        return out;
    }
    out.forward = String::from("    ct state established,related accept\n");
    if !p.egress.is_empty() {
        out.forward
            .push_str(&format!("    {}\n", dispatch("out", "saddr", &p.egress)));
    }
    if !p.ingress.is_empty() {
        out.forward
            .push_str(&format!("    {}\n", dispatch("in", "daddr", &p.ingress)));
    }
    if !p.egress.is_empty() {
        let (br, dns) = (&cfg.bridge, cfg.cluster_cidr.gateway());
        out.input = format!("    iifname \"{br}\" jump policy-input\n");
        out.chains.push_str(&format!(
            "  chain policy-input {{
    ct state established,related accept
    ip daddr {dns} meta l4proto {{ tcp, udp }} th dport 53 accept
    {}
  }}
",
            dispatch("out", "saddr", &p.egress)
        ));
    }
    for i in &p.ingress {
        out.chains.push_str(&isolated_chain("in", i));
    }
    for e in &p.egress {
        out.chains.push_str(&isolated_chain("out", e));
    }
    out
}

/// Installs (replaces) skiff's table with `rules`.
pub fn apply(cfg: &NetworkConfig, rules: &Rules) -> Result<(), NftError> {
    nft(&ruleset(cfg, rules))
}

/// Whether skiff's table is installed (another tool's `nft flush ruleset` removes it).
pub fn table_exists(cfg: &NetworkConfig) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", &cfg.table()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes skiff's table.
pub fn remove(cfg: &NetworkConfig) {
    let t = cfg.table();
    let _ = nft(&format!("table inet {t} {{}}\ndelete table inet {t}\n"));
}

const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Makes bridged IPv4 traffic (pod to pod on the bridge) pass the `inet` hooks, where the
/// NetworkPolicy chains are: `bridge-nf-call-iptables = 1`, as kube-proxy and every network
/// plugin require. Without the kernel's bridge netfilter, policies hold for routed traffic
/// only — said in the log, never silently.
pub fn require_bridge_filtering() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    match std::fs::read_to_string(BRIDGE_NF) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => {
            if let Err(e) = std::fs::write(BRIDGE_NF, "1") {
                WARNED.call_once(|| {
                    tracing::error!("NetworkPolicies do not hold between pods: setting {BRIDGE_NF}: {e}")
                });
            }
        }
        Err(e) => WARNED.call_once(|| {
            tracing::error!(
                "NetworkPolicies do not hold between pods: the kernel has no bridge netfilter ({BRIDGE_NF}: {e})"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::netpol::{Allow, Isolated, Peer, Policies, Ports};

    fn cfg() -> NetworkConfig {
        NetworkConfig {
            bridge: "skiff-t0".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        }
    }

    fn policies() -> Policies {
        let pod = |s: &str| Peer::Pod(s.parse().unwrap());
        Policies {
            ingress: vec![
                Isolated {
                    ip: "10.42.0.2".parse().unwrap(),
                    allow: vec![Allow {
                        peers: Some(vec![
                            pod("10.42.0.3"),
                            pod("10.42.0.4"),
                            Peer::Block {
                                cidr: "192.168.0.0/16".parse().unwrap(),
                                except: vec!["192.168.1.0/24".parse().unwrap()],
                            },
                        ]),
                        ports: Some(vec![
                            Ports {
                                protocol: "tcp",
                                ranges: Some(vec![(80, 80), (8000, 8100)]),
                            },
                            Ports {
                                protocol: "udp",
                                ranges: None,
                            },
                        ]),
                    }],
                },
                Isolated {
                    ip: "10.42.0.5".parse().unwrap(),
                    allow: vec![],
                },
            ],
            egress: vec![Isolated {
                ip: "10.42.0.3".parse().unwrap(),
                allow: vec![Allow {
                    peers: None,
                    ports: None,
                }],
            }],
        }
    }

    #[test]
    fn policy_chains_allow_each_flow_then_refuse() {
        let text = ruleset(
            &cfg(),
            &Rules {
                policies: policies(),
                ..Rules::default()
            },
        );
        let chain = text
            .split("chain in-10-42-0-2 {")
            .nth(1)
            .and_then(|c| c.split("\n  }").next())
            .expect("a chain for the isolated pod");
        for line in [
            "ip saddr 192.168.0.0/16 ip saddr != { 192.168.1.0/24 } tcp dport { 80, 8000-8100 } return",
            "ip saddr 192.168.0.0/16 ip saddr != { 192.168.1.0/24 } meta l4proto udp return",
            "ip saddr { 10.42.0.3, 10.42.0.4 } tcp dport { 80, 8000-8100 } return",
            "ip saddr { 10.42.0.3, 10.42.0.4 } meta l4proto udp return",
        ] {
            assert!(chain.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains(
            "ip daddr vmap { 10.42.0.2 : jump in-10-42-0-2, 10.42.0.5 : jump in-10-42-0-5 }"
        ));
        assert!(text.contains("ip saddr vmap { 10.42.0.3 : jump out-10-42-0-3 }"));
        assert!(
            text.contains("chain out-10-42-0-3 {\n    return\n"),
            "{text}"
        );
        // No policies: no policy chains, no conntrack shortcut.
        let plain = ruleset(&cfg(), &Rules::default());
        assert!(!plain.contains("vmap") && !plain.contains("policy-input"));
    }

    fn affinity_rules() -> Rules {
        let a = Some(Affinity {
            key: "default/web/".into(),
            timeout: 60,
        });
        let endpoints = vec![
            ("10.42.0.5".parse().unwrap(), 8080),
            ("10.42.0.6".parse().unwrap(), 8080),
        ];
        Rules {
            services: vec![ServiceRule {
                vip: "10.43.0.11".parse().unwrap(),
                protocol: "tcp".into(),
                port: 80,
                endpoints: endpoints.clone(),
                affinity: a.clone(),
            }],
            host_ports: vec![HostPortRule {
                protocol: "tcp".into(),
                port: 8080,
                host_ip: Some("127.0.0.2".parse().unwrap()),
                endpoints,
                affinity: a,
                sources: vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "127.0.0.0/8".parse().unwrap(),
                ],
            }],
            policies: Policies::default(),
        }
    }

    #[test]
    fn client_ip_affinity_remembers_each_client_per_endpoint_before_the_random_choice() {
        let text = ruleset(&cfg(), &affinity_rules());
        for line in [
            "ip daddr 10.43.0.11 tcp dport 80 goto affinity-0",
            "ip daddr 127.0.0.2 tcp dport 8080 goto affinity-0",
            "set affinity-0-1 {\n    type ipv4_addr\n    flags dynamic,timeout\n    timeout 60s\n  }",
            "chain affinity-0-1 {\n    update @affinity-0-1 { ip saddr }\n    meta l4proto tcp dnat ip to 10.42.0.6:8080\n  }",
            "chain affinity-0 {\n    ip saddr @affinity-0-0 goto affinity-0-0\n    ip saddr @affinity-0-1 goto affinity-0-1\n    numgen random mod 2 vmap { 0 : goto affinity-0-0, 1 : goto affinity-0-1 }\n  }",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(
            text.matches("chain affinity-0 {").count(),
            1,
            "one per Service port"
        );
        // Source ranges: other clients dropped before DNAT, arriving or from the host.
        assert!(text.contains(
            "chain sources {\n    ip daddr 127.0.0.2 tcp dport 8080 ip saddr != { 10.0.0.0/8, 127.0.0.0/8 } drop\n  }"
        ), "{text}");
        assert!(text.contains("type filter hook prerouting priority -110;"));
        assert!(text.contains("type filter hook output priority -110;"));
        assert!(!ruleset(&cfg(), &Rules::default()).contains("chain sources"));
    }

    /// nftables itself accepts the text (check mode: nothing is installed).
    #[test]
    fn nft_accepts_the_policy_ruleset() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("not root: skipped");
            return;
        }
        let mut rules = affinity_rules();
        rules.policies = policies();
        let text = ruleset(&cfg(), &rules);
        let mut child = Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft is installed");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
