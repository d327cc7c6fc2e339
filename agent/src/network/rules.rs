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

use super::NetworkConfig;

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
}

/// Everything the node's table implements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Service virtual IPs.
    pub services: Vec<ServiceRule>,
    /// Host ports.
    pub host_ports: Vec<HostPortRule>,
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

/// The ruleset text.
pub fn ruleset(cfg: &NetworkConfig, rules: &Rules) -> String {
    let (t, br, cluster, svc) = (cfg.table(), &cfg.bridge, cfg.cluster_cidr, cfg.service_cidr);
    let mut dnat = String::new();
    for s in rules.services.iter().filter(|s| !s.endpoints.is_empty()) {
        dnat.push_str(&format!(
            "    ip daddr {} {} dport {} {}\n",
            s.vip,
            s.protocol,
            s.port,
            dnat_map(&s.endpoints)
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
            dnat_map(&h.endpoints)
        ));
    }
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
  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip daddr {svc} reject with icmp type admin-prohibited
    ip daddr {cluster} oifname != \"{br}\" reject with icmp type admin-prohibited
  }}
}}
"
    )
}

/// Installs (replaces) skiff's table with `rules`.
pub fn apply(cfg: &NetworkConfig, rules: &Rules) -> Result<(), NftError> {
    nft(&ruleset(cfg, rules))
}

/// Removes skiff's table.
pub fn remove(cfg: &NetworkConfig) {
    let t = cfg.table();
    let _ = nft(&format!("table inet {t} {{}}\ndelete table inet {t}\n"));
}
