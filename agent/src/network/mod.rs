//! Pod networking without CNI plugins: a Linux bridge (default `skiff0`) whose address is the
//! gateway of the cluster CIDR (default `10.42.0.0/16`), a veth pair per pod (the pod's end
//! becomes `eth0` with an address from [`ipam`] and a default route via the gateway), and one
//! nftables table of skiff's own ([`rules`]) for outbound NAT and Service virtual IPs, kept by
//! [`ServiceProxy`] (the node's kube-proxy, a loop of its own).
//! Nothing else of the host's network configuration is touched, except enabling IPv4
//! forwarding (as every container runtime must for routed pods).
//!
//! Netlink: attaching a pod (the hot path) uses a blocking socket of our own ([`rtnl`]) with
//! batched requests on the calling thread, and a socket made in the pod's namespace by one
//! short thread (`setns` affects only the calling thread); the rest (bridge, repair,
//! teardown) goes through `rtnetlink` from short-lived threads with their own small runtime.

pub mod dns;
pub mod ipam;
pub mod netpol;
mod proxy;
mod rtnl;
pub mod rules;
pub mod services;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub use proxy::ServiceProxy;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkInfo,
    LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use sha2::{Digest, Sha256};

/// An IPv4 network: address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// Why a text is not a usable CIDR.
#[derive(Debug, thiserror::Error)]
pub enum CidrError {
    /// No `/`.
    #[error("{0:?} is not a CIDR (like 10.42.0.0/16)")]
    NotCidr(String),
    /// The address part is not an IPv4 address.
    #[error("{input:?}: {source}")]
    Address {
        /// The text.
        input: String,
        /// Why not.
        source: std::net::AddrParseError,
    },
    /// The prefix length is not a number.
    #[error("{input:?}: {source}")]
    Prefix {
        /// The text.
        input: String,
        /// Why not.
        source: std::num::ParseIntError,
    },
    /// The prefix length is outside /8../30.
    #[error("{0:?}: the prefix must be between /8 and /30")]
    PrefixRange(String),
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| CidrError::NotCidr(s.to_string()))?;
        let addr: Ipv4Addr = a.parse().map_err(|source| CidrError::Address {
            input: s.to_string(),
            source,
        })?;
        let prefix: u8 = p.parse().map_err(|source| CidrError::Prefix {
            input: s.to_string(),
            source,
        })?;
        if !(8..=30).contains(&prefix) {
            return Err(CidrError::PrefixRange(s.to_string()));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// The n-th address of the network.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u32 << (32 - self.prefix);
        (n < size - 1).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }
    /// Whether the network contains `ip`.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.addr)
    }
    /// The gateway: the first address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.nth(1).expect("a /30 or larger has a first address")
    }
}

/// The network settings of one skiff instance.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The bridge's name.
    pub bridge: String,
    /// Pod addresses.
    pub cluster_cidr: Cidr,
    /// Service virtual IPs.
    pub service_cidr: Cidr,
}

impl NetworkConfig {
    /// Records the settings in `<data-dir>/network/config.json` (for `skiff killall`).
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let dir = data_dir.join("network");
        std::fs::create_dir_all(&dir)?;
        let v = serde_json::json!({
            "bridge": self.bridge,
            "clusterCIDR": self.cluster_cidr.to_string(),
            "serviceCIDR": self.service_cidr.to_string(),
        });
        crate::runtime::write_json_durable(&dir.join("config.json"), &v)
    }

    /// The settings recorded by [`NetworkConfig::save`], if any.
    pub fn load(data_dir: &Path) -> Option<Self> {
        let v: serde_json::Value =
            crate::runtime::read_json(&data_dir.join("network").join("config.json"))?;
        Some(NetworkConfig {
            bridge: v["bridge"].as_str()?.to_string(),
            cluster_cidr: v["clusterCIDR"].as_str()?.parse().ok()?,
            service_cidr: v["serviceCIDR"].as_str()?.parse().ok()?,
        })
    }

    /// The name of skiff's nftables table (`inet skiff`, or `inet skiff_<bridge>` when the
    /// bridge is not the default, so that two instances never share one).
    pub fn table(&self) -> String {
        if self.bridge == "skiff0" {
            "skiff".into()
        } else {
            format!("skiff_{}", self.bridge.replace('-', "_"))
        }
    }
}

/// The host's own address that LoadBalancer Services report: the first IPv4 address of an
/// interface that is neither loopback nor skiff's (127.0.0.1 if there is none).
pub fn host_ip(cfg: &NetworkConfig) -> Ipv4Addr {
    nix::ifaddrs::getifaddrs()
        .ok()
        .and_then(|addrs| {
            addrs
                .filter(|a| {
                    a.interface_name != cfg.bridge
                        && !a.interface_name.starts_with("sk")
                        && a.interface_name != "lo"
                })
                .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
                .find(|ip| !ip.is_loopback())
        })
        .unwrap_or(Ipv4Addr::LOCALHOST)
}

/// The host's IPv4 addresses as LoadBalancer Services see them: the one a Service without a
/// `loadBalancerIP` reports, and those a `loadBalancerIP` may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAddresses {
    /// What a LoadBalancer Service without a `loadBalancerIP` reports ([`host_ip`]).
    pub primary: Ipv4Addr,
    /// The host's own addresses outside skiff's pod network: a loopback interface's whole
    /// network is local (127.0.0.2 is the host's, as the kernel's `local 127.0.0.0/8` route
    /// says), another interface's address is only itself (/32).
    pub local: Vec<ipnet::Ipv4Net>,
}

impl HostAddresses {
    /// The host's addresses now (skiff's bridge and pod veths left out: a Service served on
    /// the pod network's gateway would shadow the cluster DNS and the in-cluster API).
    pub fn read(cfg: &NetworkConfig) -> Self {
        let mut local = Vec::new();
        for a in nix::ifaddrs::getifaddrs().into_iter().flatten() {
            if a.interface_name == cfg.bridge || a.interface_name.starts_with("sk") {
                continue;
            }
            let Some(ip) = a
                .address
                .as_ref()
                .and_then(|s| s.as_sockaddr_in())
                .map(|s| s.ip())
            else {
                continue;
            };
            let loopback = a
                .flags
                .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK);
            let net = match a.netmask.as_ref().and_then(|m| m.as_sockaddr_in()) {
                Some(m) if loopback => ipnet::Ipv4Net::with_netmask(ip, m.ip())
                    .map(|n| n.trunc())
                    .ok(),
                _ => ipnet::Ipv4Net::new(ip, 32).ok(),
            };
            local.extend(net);
        }
        HostAddresses {
            primary: host_ip(cfg),
            local,
        }
    }

    /// Whether `ip` is one of the host's addresses outside skiff's pod network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.local.iter().any(|n| n.contains(&ip))
    }

    /// The addresses as a list for a message (`192.168.1.5, 127.0.0.0/8`).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .local
            .iter()
            .map(|n| match n.prefix_len() {
                32 => n.addr().to_string(),
                _ => n.to_string(),
            })
            .collect();
        parts.join(", ")
    }
}

/// The result of a step of netlink configuration; the message names the step.
type Step<T> = Result<T, String>;

/// Why the node's network could not be set up, a pod attached, or the network removed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The pod got no address.
    #[error(transparent)]
    Address(#[from] ipam::IpamError),
    /// Configuring links, addresses or routes failed; the message names the step.
    #[error("{0}")]
    Netlink(String),
    /// A host setting (IPv4 forwarding, `route_localnet`) could not be written.
    #[error("{0}")]
    HostSetting(String),
    /// nftables did not take the rules.
    #[error(transparent)]
    Rules(#[from] rules::NftError),
}

/// Runs `f` on a fresh thread with a current-thread runtime and a netlink connection made in
/// `netns` (or the host's namespace).
fn with_netlink<T: Send + 'static>(
    netns: Option<PathBuf>,
    f: impl FnOnce(rtnetlink::Handle) -> std::pin::Pin<Box<dyn std::future::Future<Output = Step<T>>>>
        + Send
        + 'static,
) -> Step<T> {
    std::thread::spawn(move || {
        if let Some(ns) = netns {
            let file =
                std::fs::File::open(&ns).map_err(|e| format!("opening {}: {e}", ns.display()))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering {}: {e}", ns.display()))?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| format!("netlink: {e}"))?;
            tokio::spawn(conn);
            f(handle).await
        })
    })
    .join()
    .map_err(|_| "the netlink thread panicked".to_string())?
}

async fn link_index(handle: &rtnetlink::Handle, name: &str) -> Step<Option<u32>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(format!("looking up {name}: {e}")),
    }
}

fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}

/// The host-side veth name of a pod: `sk` + 11 hex digits of its uid's hash (IFNAMSIZ is 16).
pub fn veth_name(pod_uid: &str) -> String {
    format!(
        "sk{}",
        &hex::encode(Sha256::digest(pod_uid.as_bytes()))[..11]
    )
}

/// Pod networking of one instance.
#[derive(Clone, Debug)]
pub struct Network {
    /// Settings.
    pub config: NetworkConfig,
    /// IP allocations.
    pub ipam: ipam::Ipam,
    /// What the cluster DNS server answers.
    pub records: dns::SharedRecords,
}

impl Network {
    /// The network of a data directory.
    pub fn new(config: NetworkConfig, data_dir: &Path) -> Self {
        let ipam = ipam::Ipam::new(data_dir.join("network"), config.cluster_cidr);
        Network {
            config,
            ipam,
            records: Default::default(),
        }
    }

    /// Creates the bridge (with the gateway address, up), a route for the service range over
    /// it (so that service traffic never leaves by the uplink), enables forwarding, and
    /// installs the base of skiff's nftables table. Idempotent.
    pub fn setup_host(&self) -> Result<(), NetError> {
        self.ensure_bridge()?;
        Ok(rules::apply(&self.config, &rules::Rules::default())?)
    }

    /// The bridge with its gateway address, up, the service route over it, forwarding and
    /// `route_localnet` on it. Idempotent.
    fn ensure_bridge(&self) -> Result<(), NetError> {
        let cfg = self.config.clone();
        with_netlink(None, move |h| {
            Box::pin(async move {
                if link_index(&h, &cfg.bridge).await?.is_none() {
                    if let Err(e) = h
                        .link()
                        .add(LinkBridge::new(&cfg.bridge).build())
                        .execute()
                        .await
                    {
                        if !exists(&e) {
                            return Err(format!("creating the bridge {}: {e}", cfg.bridge));
                        }
                    }
                }
                let idx = link_index(&h, &cfg.bridge)
                    .await?
                    .ok_or("the bridge vanished")?;
                let gw = cfg.cluster_cidr.gateway();
                if let Err(e) = h
                    .address()
                    .add(idx, gw.into(), cfg.cluster_cidr.prefix)
                    .execute()
                    .await
                {
                    if !exists(&e) {
                        return Err(format!("addressing the bridge: {e}"));
                    }
                }
                h.link()
                    .set(LinkUnspec::new_with_index(idx).up().build())
                    .execute()
                    .await
                    .map_err(|e| format!("bridge up: {e}"))?;
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(cfg.service_cidr.addr, cfg.service_cidr.prefix)
                    .output_interface(idx)
                    .pref_source(gw)
                    .build();
                if let Err(e) = h.route().add(route).execute().await {
                    if !exists(&e) {
                        return Err(format!("routing the service range over the bridge: {e}"));
                    }
                }
                Ok(())
            })
        })
        .map_err(NetError::Netlink)?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| NetError::HostSetting(format!("enabling IPv4 forwarding: {e}")))?;
        // Host ports reached from the host's own loopback are DNATed to pods over the bridge:
        // the kernel must accept the loopback source there (it is then masqueraded). Set on
        // this bridge only.
        let localnet = format!(
            "/proc/sys/net/ipv4/conf/{}/route_localnet",
            self.config.bridge
        );
        std::fs::write(&localnet, "1")
            .map_err(|e| NetError::HostSetting(format!("{localnet}: {e}")))?;
        Ok(())
    }

    /// Puts back what another tool removed (`ip link del skiff0`, a flushed address, a deleted
    /// veth): the bridge as [`Network::setup_host`] makes it, every pod's host-side veth back
    /// on it (a bridge's ports lose it when it goes), and a pod whose veth pair is gone (its
    /// `eth0` went with it) attached again with its address. Whether skiff's nftables table is
    /// still there is [`rules::table_exists`]' to say. Returns what was repaired.
    pub fn repair(&self, pods_dir: &Path) -> Result<Vec<String>, NetError> {
        let mut repaired = Vec::new();
        let (bridge, gw) = (
            self.config.bridge.clone(),
            self.config.cluster_cidr.gateway(),
        );
        let bridge_ok = with_netlink(None, move |h| {
            Box::pin(async move {
                let Some(idx) = link_index(&h, &bridge).await? else {
                    return Ok(false);
                };
                let mut addrs = h.address().get().set_link_index_filter(idx).execute();
                while let Some(a) = addrs.try_next().await.map_err(|e| e.to_string())? {
                    let has_gw = a.attributes.iter().any(|attr| {
                        matches!(attr, AddressAttribute::Address(std::net::IpAddr::V4(ip)) if *ip == gw)
                    });
                    if has_gw {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
        })
        .map_err(NetError::Netlink)?;
        if !bridge_ok {
            self.ensure_bridge()?;
            repaired.push(format!("the bridge {}", self.config.bridge));
        }
        // One netlink session for every pod's veth (this runs every few seconds): each
        // found one is put back on a re-created bridge; the pods whose pair is gone come back.
        let uids = self.ipam.pods();
        let bridge = self.config.bridge.clone();
        let veths: Vec<String> = uids.iter().map(|uid| veth_name(uid)).collect();
        let present = with_netlink(None, move |h| {
            Box::pin(async move {
                let bridge_idx = if bridge_ok {
                    None
                } else {
                    Some(link_index(&h, &bridge).await?.ok_or("no bridge")?)
                };
                let mut present = Vec::with_capacity(veths.len());
                for veth in &veths {
                    let idx = link_index(&h, veth).await?;
                    if let (Some(idx), Some(bridge_idx)) = (idx, bridge_idx) {
                        plug(&h, idx, veth, bridge_idx, &bridge).await?;
                    }
                    present.push(idx.is_some());
                }
                Ok(present)
            })
        })
        .map_err(NetError::Netlink)?;
        for (uid, _) in uids.into_iter().zip(present).filter(|(_, p)| !p) {
            let host = veth_name(&uid);
            // The pair is gone: attach again, into the pod's namespace if it still has one.
            let suffix = format!("_{uid}");
            let netns = std::fs::read_dir(pods_dir)
                .into_iter()
                .flatten()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))
                .map(|e| crate::runtime::sandbox::paths(&e.path(), false).net)
                .filter(|p| p.as_ref().is_some_and(|p| p.exists()));
            if let Some(Some(netns)) = netns {
                self.attach(&uid, &netns)?;
                repaired.push(format!("pod {uid}'s interface {host}"));
            }
        }
        Ok(repaired)
    }

    /// Gives a pod its interface: allocates an address, creates the veth pair with its peer
    /// made directly in the pod's network namespace as `eth0` (no move between namespaces:
    /// a move waits for an RCU grace period, ~25 ms here) and the host end on the bridge, up,
    /// with hairpin; then, inside the pod, the address, `eth0` up and the default route via
    /// the gateway. Four netlink round trips on the calling thread (one short thread makes
    /// the pod's socket). Idempotent: an already attached pod keeps its address.
    pub fn attach(&self, pod_uid: &str, netns: &Path) -> Result<Ipv4Addr, NetError> {
        let ip = self.ipam.allocate(pod_uid)?;
        let host = veth_name(pod_uid);
        let bridge = &self.config.bridge;
        let fail =
            |step: &str, e: &dyn std::fmt::Display| NetError::Netlink(format!("{step}: {e}"));
        let mut h = rtnl::Rtnl::new().map_err(|e| fail("netlink", &e))?;
        let bridge_idx = h
            .link_index(bridge)
            .map_err(|e| fail(&format!("looking up {bridge}"), &e))?
            .ok_or_else(|| NetError::Netlink(format!("no bridge {bridge}")))?;
        let ns = std::fs::File::open(netns)
            .map_err(|e| fail(&format!("opening {}", netns.display()), &e))?;
        let peer = LinkUnspec::new_with_name("eth0")
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let veth = LinkVeth::new(&host, "eth0")
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .controller(bridge_idx)
            .up()
            .build();
        let mut hairpin = LinkMessage::default();
        hairpin.attributes = vec![
            LinkAttribute::IfName(host.clone()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    true,
                )])),
            ]),
        ];
        let done = h
            .batch(vec![
                rtnl::Request::create(RouteNetlinkMessage::NewLink(veth)),
                rtnl::Request::change(RouteNetlinkMessage::NewLink(hairpin)),
            ])
            .map_err(|e| fail(&format!("creating veth {host}"), &e))?;
        drop(ns);
        match done[0] {
            Ok(()) => {}
            // The host end is there: the pod is attached (its pair goes with its namespace).
            Err(libc::EEXIST) => return Ok(ip),
            Err(e) => return Err(fail(&format!("creating veth {host}"), &errno(e))),
        }
        done[1].map_err(|e| fail(&format!("hairpin on {host}"), &errno(e)))?;
        let mut pod = rtnl::Rtnl::in_namespace(netns).map_err(NetError::Netlink)?;
        let idx = pod
            .link_index("eth0")
            .map_err(|e| fail("looking up eth0", &e))?
            .ok_or_else(|| NetError::Netlink("the pod's eth0 is missing".into()))?;
        let (prefix, gw) = (
            self.config.cluster_cidr.prefix,
            self.config.cluster_cidr.gateway(),
        );
        let address = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(idx)
            .address(ip, prefix)
            .build();
        let up = LinkUnspec::new_with_index(idx).up().build();
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(idx)
            .build();
        let done = pod
            .batch(vec![
                rtnl::Request::create(RouteNetlinkMessage::NewAddress(address)),
                rtnl::Request::change(RouteNetlinkMessage::SetLink(up)),
                rtnl::Request::create(RouteNetlinkMessage::NewRoute(route)),
            ])
            .map_err(|e| fail("configuring eth0", &e))?;
        for (step, r) in ["addressing eth0", "eth0 up", "default route"]
            .iter()
            .zip(done)
        {
            r.map_err(|e| fail(step, &errno(e)))?;
        }
        Ok(ip)
    }

    /// Releases a pod's address and removes its veth if it is still there (it goes by itself
    /// with the pod's network namespace).
    pub fn detach(&self, pod_uid: &str) {
        let host = veth_name(pod_uid);
        let _ = with_netlink(None, move |h| {
            Box::pin(async move {
                if let Some(idx) = link_index(&h, &host).await? {
                    let _ = h.link().del(idx).execute().await;
                }
                Ok(())
            })
        });
        self.ipam.release(pod_uid);
    }

    /// Removes every network artefact of this instance: the nftables table, the pods' veths,
    /// the bridge (with its routes), the address allocations.
    pub fn teardown(&self) -> Result<(), NetError> {
        rules::remove(&self.config);
        let bridge = self.config.bridge.clone();
        let veths: Vec<String> = self.ipam.pods().iter().map(|uid| veth_name(uid)).collect();
        with_netlink(None, move |h| {
            Box::pin(async move {
                for v in veths {
                    if let Some(idx) = link_index(&h, &v).await? {
                        let _ = h.link().del(idx).execute().await;
                    }
                }
                if let Some(idx) = link_index(&h, &bridge).await? {
                    h.link()
                        .del(idx)
                        .execute()
                        .await
                        .map_err(|e| format!("deleting the bridge: {e}"))?;
                }
                Ok(())
            })
        })
        .map_err(NetError::Netlink)?;
        self.ipam.clear();
        Ok(())
    }
}

/// Puts the host end `host` (index `host_idx`) of a pod's veth on the bridge, up, with
/// hairpin: with br_netfilter, a pod reaching a Service that picks the pod itself needs its
/// frame sent back out of the port it came in by.
async fn plug(
    h: &rtnetlink::Handle,
    host_idx: u32,
    host: &str,
    bridge_idx: u32,
    bridge: &str,
) -> Step<()> {
    h.link()
        .set(
            LinkUnspec::new_with_index(host_idx)
                .controller(bridge_idx)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| format!("attaching {host} to {bridge}: {e}"))?;
    h.link()
        .set_port(LinkBridgePort::new(host_idx).hairpin(true).build())
        .execute()
        .await
        .map_err(|e| format!("hairpin on {host}: {e}"))?;
    Ok(())
}

/// An error number as the kernel's message for it.
fn errno(code: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c: Cidr = "10.42.7.9/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.42.0.0/16");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 0, 1));
        let err = |s: &str| s.parse::<Cidr>().unwrap_err().to_string();
        assert_eq!(
            err("10.0.0.0"),
            "\"10.0.0.0\" is not a CIDR (like 10.42.0.0/16)"
        );
        assert_eq!(
            err("10.0.0.0/4"),
            "\"10.0.0.0/4\": the prefix must be between /8 and /30"
        );
        assert!(err("x/16").starts_with("\"x/16\": "));
    }

    #[test]
    fn host_addresses_take_loopback_networks_whole_and_other_addresses_alone() {
        let h = HostAddresses {
            primary: Ipv4Addr::new(192, 168, 1, 5),
            local: vec![
                "192.168.1.5/32".parse().unwrap(),
                "127.0.0.0/8".parse().unwrap(),
            ],
        };
        assert!(h.contains(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(h.contains(Ipv4Addr::new(192, 168, 1, 5)));
        assert!(!h.contains(Ipv4Addr::new(192, 168, 1, 6)));
        assert_eq!(h.describe(), "192.168.1.5, 127.0.0.0/8");
        // This machine's own: lo's network is there, a documentation address is not.
        let cfg = NetworkConfig {
            bridge: "skiff-t9".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        };
        let real = HostAddresses::read(&cfg);
        assert!(real.contains(Ipv4Addr::new(127, 0, 0, 2)), "{real:?}");
        assert!(!real.contains(Ipv4Addr::new(198, 51, 100, 7)), "{real:?}");
    }
}
