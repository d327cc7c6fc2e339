//! skiff's nftables table (`inet skiff`): outbound NAT for pods, Service virtual IPs as DNAT to
//! their ready endpoints, and rejects for cluster and service addresses that match nothing —
//! never forwarded out of the uplink. The whole table is replaced atomically on every change
//! (`nft -f` runs one transaction); nothing outside it is touched.
//!
//! Why the `nft` tool and not netlink from Rust: the Rust nftables crates either wrap the same
//! tool (JSON) or are young; `nft -f` gives one atomic transaction for the whole table, which
//! is exactly the semantics wanted, and its text is easy to read in a bug report.

use std::io::Write;
use std::process::{Command, Stdio};

use super::{NetResult, NetworkConfig};

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

fn nft(script: &str) -> NetResult<()> {
    let mut child = Command::new("nft")
        .arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft (is the nftables package installed?): {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "nft refused the ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The ruleset text for `services`.
pub fn ruleset(cfg: &NetworkConfig, services: &[ServiceRule]) -> String {
    let (t, br, cluster, svc) = (cfg.table(), &cfg.bridge, cfg.cluster_cidr, cfg.service_cidr);
    let mut dnat = String::new();
    for s in services {
        if s.endpoints.is_empty() {
            continue;
        }
        let targets: Vec<String> = s
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, (ip, port))| format!("{i} : {ip} . {port}"))
            .collect();
        dnat.push_str(&format!(
            "    ip daddr {} {} dport {} dnat ip to numgen random mod {} map {{ {} }}\n",
            s.vip,
            s.protocol,
            s.port,
            s.endpoints.len(),
            targets.join(", ")
        ));
    }
    format!(
        "table inet {t} {{}}
delete table inet {t}
table inet {t} {{
  chain services {{
{dnat}  }}
  chain prerouting {{
    type nat hook prerouting priority -100; policy accept;
    ip daddr {svc} jump services
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    ip daddr {svc} jump services
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip saddr {cluster} ip daddr != {cluster} oifname != \"{br}\" masquerade
    oifname \"{br}\" ct status dnat ip saddr {cluster} masquerade
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

/// Installs (replaces) skiff's table with rules for `services`.
pub fn apply(cfg: &NetworkConfig, services: &[ServiceRule]) -> NetResult<()> {
    nft(&ruleset(cfg, services))
}

/// Removes skiff's table.
pub fn remove(cfg: &NetworkConfig) {
    let t = cfg.table();
    let _ = nft(&format!("table inet {t} {{}}\ndelete table inet {t}\n"));
}
