//! What the node does for Services — a pure function of (Services, EndpointSlices, pods, the
//! host's addresses) → a [`Plan`]: the addresses and ports to allocate (virtual IPs from the
//! service range, node ports from 30000–32767), the LoadBalancer status to report, the
//! nftables rules (virtual IPs, node ports, LoadBalancer ports on the host's addresses as k3s's
//! ServiceLB publishes them — only on its `loadBalancerIP` when it names one — and pods'
//! `hostPort`s, each with `sessionAffinity: ClientIP` when the Service asks), and the DNS
//! records. A `loadBalancerIP` that is not one of the host's leaves the Service Pending: no
//! LoadBalancer port, an empty `status.loadBalancer`, and a warning saying why.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::dns::{Records, DOMAIN};
use super::rules::{Affinity, HostPortRule, Rules, ServiceRule};
use super::{HostAddresses, NetworkConfig};

/// The node-port range.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Something to write back to a Service.
#[derive(Clone, Debug, PartialEq)]
pub enum Allocation {
    /// Merge into `spec` (clusterIP, ports with nodePorts).
    Spec {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The fields.
        patch: Value,
    },
    /// Merge into `status` (a JSON merge patch: `null` removes).
    Status {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The status.
        status: Value,
    },
}

/// What the node should do.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The table's rules.
    pub rules: Rules,
    /// DNS records.
    pub records: Records,
    /// Writes back to Services.
    pub allocations: Vec<Allocation>,
    /// LoadBalancer Services left Pending: (namespace, name, why).
    pub pending: Vec<(String, String, String)>,
}

fn ns_name(svc: &Value) -> (String, String) {
    (
        svc["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        svc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Plans Services over the host's addresses `host`.
pub fn plan(
    cfg: &NetworkConfig,
    services: &[Value],
    slices: &[Value],
    pods: &[Pod],
    host: &HostAddresses,
) -> Plan {
    let mut out = Plan::default();
    let mut allocator = Allocator::new(services);
    for svc in services {
        plan_service(cfg, svc, slices, host, &mut allocator, &mut out);
    }
    out.rules.host_ports.extend(pod_host_ports(cfg, pods));
    out.rules
        .services
        .sort_by(|a, b| (a.vip, a.port, &a.protocol).cmp(&(b.vip, b.port, &b.protocol)));
    out.rules
        .host_ports
        .sort_by(|a, b| (a.port, &a.protocol, a.host_ip).cmp(&(b.port, &b.protocol, b.host_ip)));
    out
}

/// The virtual IPs and node ports in use, and the next free ones.
struct Allocator {
    used_ips: HashSet<Ipv4Addr>,
    used_ports: HashSet<u16>,
}

impl Allocator {
    fn new(services: &[Value]) -> Self {
        let used_ips = services
            .iter()
            .filter_map(|s| s["spec"]["clusterIP"].as_str()?.parse().ok())
            .collect();
        let used_ports = services
            .iter()
            .flat_map(|s| s["spec"]["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["nodePort"].as_u64().map(|n| n as u16))
            .collect();
        Allocator {
            used_ips,
            used_ports,
        }
    }

    /// The Service's virtual IP (`None` for a headless one), allocated into `patch` when the
    /// Service has none yet.
    fn cluster_ip(
        &mut self,
        cfg: &NetworkConfig,
        svc: &Value,
        patch: &mut serde_json::Map<String, Value>,
    ) -> Option<Ipv4Addr> {
        match svc["spec"]["clusterIP"].as_str() {
            Some("None") => None,
            Some(ip) => ip.parse().ok(),
            None => {
                // .1 and .10 are the API's and DNS's on Kubernetes, start after them.
                let ip = (11..)
                    .map_while(|n| cfg.service_cidr.nth(n))
                    .find(|ip| !self.used_ips.contains(ip));
                if let Some(ip) = ip {
                    self.used_ips.insert(ip);
                    patch.insert("clusterIP".into(), json!(ip.to_string()));
                    patch.insert("clusterIPs".into(), json!([ip.to_string()]));
                }
                ip
            }
        }
    }

    /// Gives a node port to each port without one; whether any changed. Like Kubernetes'
    /// allocator, not the lowest free port: the search starts at a point of the range given by
    /// the Service's uid (stable for the Service, spread between Services), so that two
    /// servers on one host, or a Service deleted and another created, rarely meet on a port.
    fn node_ports(&mut self, svc: &Value, ports: &mut [Value]) -> bool {
        use sha2::{Digest, Sha256};
        let seed = Sha256::digest(
            format!(
                "{}/{}/{}",
                svc["metadata"]["uid"].as_str().unwrap_or_default(),
                svc["metadata"]["namespace"].as_str().unwrap_or_default(),
                svc["metadata"]["name"].as_str().unwrap_or_default()
            )
            .as_bytes(),
        );
        let span = (NODE_PORTS.end() - NODE_PORTS.start()) as usize + 1;
        let start = u16::from_be_bytes([seed[0], seed[1]]) as usize % span;
        let mut changed = false;
        for p in ports.iter_mut() {
            if p["nodePort"].is_null() {
                let free = (0..span)
                    .map(|i| NODE_PORTS.start() + ((start + i) % span) as u16)
                    .find(|n| !self.used_ports.contains(n));
                if let Some(n) = free {
                    self.used_ports.insert(n);
                    p["nodePort"] = json!(n);
                    changed = true;
                }
            }
        }
        changed
    }
}

/// One Service: its allocations, rules and DNS record into `out`.
fn plan_service(
    cfg: &NetworkConfig,
    svc: &Value,
    slices: &[Value],
    host: &HostAddresses,
    allocator: &mut Allocator,
    out: &mut Plan,
) {
    let (ns, name) = ns_name(svc);
    let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
    let mut patch = serde_json::Map::new();
    let vip = allocator.cluster_ip(cfg, svc, &mut patch);
    // Node ports for NodePort and LoadBalancer Services.
    let mut ports: Vec<Value> = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if (ty == "NodePort" || ty == "LoadBalancer") && allocator.node_ports(svc, &mut ports) {
        patch.insert("ports".into(), Value::Array(ports.clone()));
    }
    if !patch.is_empty() {
        out.allocations.push(Allocation::Spec {
            namespace: ns.clone(),
            name: name.clone(),
            patch: Value::Object(patch),
        });
    }
    // The LoadBalancer's address: its loadBalancerIP (if the host has it), else the host's.
    let mut load_balancer = None;
    if ty == "LoadBalancer" {
        let wanted = svc["spec"]["loadBalancerIP"]
            .as_str()
            .and_then(|a| a.parse::<Ipv4Addr>().ok());
        // Pending: no ingress (null removes it: the status is written as a merge patch).
        let ingress = match wanted {
            Some(ip) if !host.contains(ip) => {
                out.pending.push((
                    ns.clone(),
                    name.clone(),
                    format!(
                        "loadBalancerIP {ip} is not an address of this host (its addresses: {}); the Service stays Pending until it is",
                        host.describe()
                    ),
                ));
                Value::Null
            }
            _ => {
                load_balancer = Some(wanted);
                let ip = wanted.unwrap_or(host.primary);
                json!([{"ip": ip.to_string(), "ipMode": "VIP"}])
            }
        };
        if svc["status"]["loadBalancer"]["ingress"] != ingress {
            out.allocations.push(Allocation::Status {
                namespace: ns.clone(),
                name: name.clone(),
                status: json!({"loadBalancer": {"ingress": ingress}}),
            });
        }
    }
    let slice = slices.iter().find(|s| {
        s["metadata"]["namespace"] == ns.as_str() && s["metadata"]["name"] == name.as_str()
    });
    let ready = ready_endpoints(cfg, slice);
    let sources: Vec<ipnet::Ipv4Net> = svc["spec"]["loadBalancerSourceRanges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str()?.trim().parse().ok())
        .collect();
    let timeout = (svc["spec"]["sessionAffinity"] == "ClientIP").then(|| {
        svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]
            .as_u64()
            .map_or(DEFAULT_AFFINITY_TIMEOUT, |t| t as u32)
    });
    for p in &ports {
        let affinity = timeout.map(|timeout| Affinity {
            key: format!("{ns}/{name}/{}", p["name"].as_str().unwrap_or("")),
            timeout,
        });
        let target = Target {
            slice,
            ready: &ready,
            affinity,
            sources: &sources,
        };
        port_rules(p, &target, vip, load_balancer, &mut out.rules);
    }
    let fqdn = format!("{name}.{ns}.svc.{DOMAIN}");
    match (vip, svc["spec"]["clusterIP"].as_str()) {
        (Some(ip), _) => {
            out.records.0.insert(fqdn, vec![ip]);
        }
        (None, Some("None")) => {
            out.records.0.insert(fqdn, ready);
            out.records.0.extend(hostname_records(slice, &name, &ns));
        }
        _ => {}
    }
}

/// A headless Service's per-pod names: `<hostname>.<service>.<ns>.svc.<domain>` for each
/// ready endpoint its EndpointSlice names by hostname (pods whose `subdomain` is the Service,
/// as a StatefulSet's are).
fn hostname_records<'a>(
    slice: Option<&'a Value>,
    name: &'a str,
    ns: &'a str,
) -> impl Iterator<Item = (String, Vec<Ipv4Addr>)> + 'a {
    slice
        .and_then(|s| s["endpoints"].as_array())
        .into_iter()
        .flatten()
        .filter(|e| e["conditions"]["ready"] == true)
        .filter_map(move |e| {
            let host = e["hostname"].as_str()?;
            let ip = e["addresses"][0].as_str()?.parse::<Ipv4Addr>().ok()?;
            Some((format!("{host}.{name}.{ns}.svc.{DOMAIN}"), vec![ip]))
        })
}

/// The ready endpoints' addresses in a Service's EndpointSlice.
fn ready_endpoints(cfg: &NetworkConfig, slice: Option<&Value>) -> Vec<Ipv4Addr> {
    slice
        .and_then(|s| s["endpoints"].as_array())
        .into_iter()
        .flatten()
        .filter(|e| e["conditions"]["ready"] == true)
        .filter_map(|e| e["addresses"][0].as_str()?.parse::<Ipv4Addr>().ok())
        // A hostNetwork pod on a node without an address of its own (reported at 127.0.0.1)
        // is reached at the bridge's gateway; otherwise at the node's address, its podIP.
        .map(|ip| {
            if ip.is_loopback() {
                cfg.cluster_cidr.gateway()
            } else {
                ip
            }
        })
        .collect()
}

/// `sessionAffinityConfig.clientIP.timeoutSeconds`' default: three hours, as Kubernetes'.
const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// Where a Service's ports lead: its EndpointSlice, the ready addresses in it, and the
/// Service's session affinity.
struct Target<'a> {
    slice: Option<&'a Value>,
    ready: &'a [Ipv4Addr],
    affinity: Option<Affinity>,
    /// `loadBalancerSourceRanges` (the LoadBalancer port only).
    sources: &'a [ipnet::Ipv4Net],
}

/// The rules for one Service port: its virtual IP, its node port, its LoadBalancer port (when
/// `load_balancer` is `Some`: on that address, or on every one).
fn port_rules(
    p: &Value,
    to: &Target,
    vip: Option<Ipv4Addr>,
    load_balancer: Option<Option<Ipv4Addr>>,
    rules: &mut Rules,
) {
    let (slice, ready) = (to.slice, to.ready);
    let pname = p["name"].as_str().unwrap_or("");
    let target = slice.and_then(|s| {
        s["ports"]
            .as_array()?
            .iter()
            .find(|sp| sp["name"].as_str().unwrap_or("") == pname)
            .and_then(|sp| sp["port"].as_u64())
    });
    let endpoints: Vec<(Ipv4Addr, u16)> = match target {
        Some(t) => ready.iter().map(|ip| (*ip, t as u16)).collect(),
        None => Vec::new(),
    };
    let protocol = p["protocol"].as_str().unwrap_or("TCP").to_ascii_lowercase();
    if let Some(vip) = vip {
        rules.services.push(ServiceRule {
            vip,
            protocol: protocol.clone(),
            port: p["port"].as_u64().unwrap_or(0) as u16,
            endpoints: endpoints.clone(),
            affinity: to.affinity.clone(),
        });
    }
    if let Some(n) = p["nodePort"].as_u64() {
        rules.host_ports.push(HostPortRule {
            protocol: protocol.clone(),
            port: n as u16,
            host_ip: None,
            endpoints: endpoints.clone(),
            affinity: to.affinity.clone(),
            sources: Vec::new(),
        });
    }
    if let Some(host_ip) = load_balancer {
        rules.host_ports.push(HostPortRule {
            protocol,
            port: p["port"].as_u64().unwrap_or(0) as u16,
            host_ip,
            endpoints,
            affinity: to.affinity.clone(),
            sources: to.sources.to_vec(),
        });
    }
}

/// Pods' hostPorts (pods on the bridge; a hostNetwork pod binds the port itself). A pod that
/// has finished (Succeeded, Failed, evicted) holds none: its address is released and may be
/// another pod's, and the scheduler gives its port to the next pod (kubelet's hostport
/// manager likewise drops a terminated pod's mappings).
fn pod_host_ports(cfg: &NetworkConfig, pods: &[Pod]) -> Vec<HostPortRule> {
    let mut rules = Vec::new();
    for pod in pods {
        if pod
            .status
            .as_ref()
            .is_some_and(crate::pod::status::finished)
        {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        if ip.is_loopback()
            || !cfg.cluster_cidr.contains(ip)
            || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            for p in c.ports.iter().flatten() {
                let Some(host_port) = p.host_port else {
                    continue;
                };
                rules.push(HostPortRule {
                    protocol: p
                        .protocol
                        .clone()
                        .unwrap_or_else(|| "TCP".into())
                        .to_ascii_lowercase(),
                    port: host_port as u16,
                    host_ip: p
                        .host_ip
                        .as_deref()
                        .and_then(|h| h.parse().ok())
                        .filter(|h: &Ipv4Addr| !h.is_unspecified()),
                    endpoints: vec![(ip, p.container_port as u16)],
                    affinity: None,
                    sources: Vec::new(),
                });
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NetworkConfig {
        NetworkConfig {
            bridge: "b".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        }
    }

    /// A host at 192.0.2.1 with the loopback network.
    fn host() -> HostAddresses {
        HostAddresses {
            primary: Ipv4Addr::new(192, 0, 2, 1),
            local: vec![
                "192.0.2.1/32".parse().unwrap(),
                "127.0.0.0/8".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn allocates_addresses_and_node_ports_and_routes_ready_endpoints() {
        let svc = json!({"metadata":{"namespace":"default","name":"web"},
            "spec":{"type":"LoadBalancer","ports":[{"name":"","port":80,"protocol":"TCP"}]}});
        let slice = json!({"metadata":{"namespace":"default","name":"web"},
            "ports":[{"name":"","port":8080}],
            "endpoints":[{"addresses":["10.42.0.5"],"conditions":{"ready":true}},
                         {"addresses":["10.42.0.6"],"conditions":{"ready":false}}]});
        let p = plan(&cfg(), &[svc], &[slice], &[], &host());
        let Allocation::Spec { patch, .. } = &p.allocations[0] else {
            panic!("{:?}", p.allocations)
        };
        assert_eq!(patch["clusterIP"], "10.43.0.11");
        let node_port = patch["ports"][0]["nodePort"].as_u64().unwrap();
        assert!(NODE_PORTS.contains(&(node_port as u16)), "{node_port}");
        assert!(
            matches!(&p.allocations[1], Allocation::Status { status, .. } if status["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.1")
        );
        assert_eq!(
            p.rules.services[0].endpoints,
            vec![(Ipv4Addr::new(10, 42, 0, 5), 8080)]
        );
        let ports: Vec<u16> = p.rules.host_ports.iter().map(|h| h.port).collect();
        assert_eq!(ports, vec![80, node_port as u16]);
        assert_eq!(
            p.records.0["web.default.svc.cluster.local"],
            vec![Ipv4Addr::new(10, 43, 0, 11)]
        );
    }

    #[test]
    fn a_finished_pod_holds_no_host_port() {
        let pod = |name: &str, ip: &str, phase: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": name},
                "spec": {"containers": [{"name": "c",
                    "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
                "status": {"phase": phase, "podIP": ip}}))
            .unwrap()
        };
        // An evicted pod and its replacement, given the same port by the scheduler.
        let pods = [
            pod("evicted", "10.42.0.5", "Failed"),
            pod("done", "10.42.0.7", "Succeeded"),
            pod("replacement", "10.42.0.6", "Running"),
        ];
        let rules = pod_host_ports(&cfg(), &pods);
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(rules[0].port, 8080);
        assert_eq!(rules[0].endpoints, vec![(Ipv4Addr::new(10, 42, 0, 6), 80)]);
    }

    fn lb(extra: Value) -> (Value, Value) {
        let mut svc = json!({"metadata":{"namespace":"default","name":"web"},
            "spec":{"type":"LoadBalancer","clusterIP":"10.43.0.11",
                    "ports":[{"name":"","port":80,"protocol":"TCP","nodePort":30000}]}});
        for (k, v) in extra.as_object().unwrap() {
            svc["spec"][k] = v.clone();
        }
        let slice = json!({"metadata":{"namespace":"default","name":"web"},
            "ports":[{"name":"","port":8080}],
            "endpoints":[{"addresses":["10.42.0.5"],"conditions":{"ready":true}},
                         {"addresses":["10.42.0.6"],"conditions":{"ready":true}}]});
        (svc, slice)
    }

    fn status(p: &Plan) -> Option<&Value> {
        p.allocations.iter().find_map(|a| match a {
            Allocation::Status { status, .. } => Some(status),
            Allocation::Spec { .. } => None,
        })
    }

    #[test]
    fn a_load_balancer_ip_of_the_host_serves_there_only_and_another_stays_pending() {
        let (svc, slice) = lb(json!({"loadBalancerIP": "127.0.0.2"}));
        let p = plan(&cfg(), &[svc], std::slice::from_ref(&slice), &[], &host());
        assert_eq!(
            status(&p).unwrap()["loadBalancer"]["ingress"][0]["ip"],
            "127.0.0.2"
        );
        let served: Vec<_> = p.rules.host_ports.iter().filter(|h| h.port == 80).collect();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].host_ip, Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(served[0].sources.is_empty());
        // Source ranges: on the LoadBalancer port, not the node port.
        let (ranged, _) = lb(json!({"loadBalancerSourceRanges": ["10.0.0.0/8"]}));
        let r = plan(
            &cfg(),
            &[ranged],
            std::slice::from_ref(&slice),
            &[],
            &host(),
        );
        for h in &r.rules.host_ports {
            let want: Vec<ipnet::Ipv4Net> = match h.port {
                80 => vec!["10.0.0.0/8".parse().unwrap()],
                _ => vec![],
            };
            assert_eq!(h.sources, want, "port {}", h.port);
        }
        assert!(p.pending.is_empty());

        let (mut svc, slice) = lb_with("198.51.100.7", slice);
        // It had an address before: removed.
        svc["status"] =
            json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}});
        let p = plan(
            &cfg(),
            &[svc.clone()],
            std::slice::from_ref(&slice),
            &[],
            &host(),
        );
        assert_eq!(
            status(&p).unwrap(),
            &json!({"loadBalancer": {"ingress": null}})
        );
        // Written: nothing more to write, but still pending.
        svc["status"] = json!({"loadBalancer": {}});
        assert!(status(&plan(
            &cfg(),
            &[svc.clone()],
            std::slice::from_ref(&slice),
            &[],
            &host()
        ))
        .is_none());
        assert!(
            !p.rules.host_ports.iter().any(|h| h.port == 80),
            "no LoadBalancer port"
        );
        // The node port and the virtual IP still serve.
        assert!(p.rules.host_ports.iter().any(|h| h.port == 30000));
        assert_eq!(p.rules.services.len(), 1);
        let (ns, name, why) = &p.pending[0];
        assert_eq!((ns.as_str(), name.as_str()), ("default", "web"));
        assert!(
            why.contains("198.51.100.7 is not an address of this host")
                && why.contains("192.0.2.1, 127.0.0.0/8"),
            "{why}"
        );
    }

    fn lb_with(ip: &str, slice: Value) -> (Value, Value) {
        (lb(json!({"loadBalancerIP": ip})).0, slice)
    }

    #[test]
    fn client_ip_affinity_is_one_per_service_port_across_its_ways_in() {
        let (svc, slice) = lb(json!({"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
        let p = plan(&cfg(), &[svc], std::slice::from_ref(&slice), &[], &host());
        let want = Some(Affinity {
            key: "default/web/".into(),
            timeout: 60,
        });
        assert_eq!(p.rules.services[0].affinity, want);
        assert_eq!(p.rules.host_ports.len(), 2);
        assert!(p.rules.host_ports.iter().all(|h| h.affinity == want));
        // Without a config: three hours. Without ClientIP: none.
        let (svc, _) = lb(json!({"sessionAffinity": "ClientIP"}));
        let p = plan(&cfg(), &[svc], std::slice::from_ref(&slice), &[], &host());
        assert_eq!(
            p.rules.services[0].affinity.as_ref().unwrap().timeout,
            10800
        );
        let (svc, _) = lb(json!({}));
        let p = plan(&cfg(), &[svc], &[slice], &[], &host());
        assert_eq!(p.rules.services[0].affinity, None);
    }

    #[test]
    fn a_headless_service_names_its_ready_pods_and_each_by_hostname() {
        let svc = json!({"metadata":{"namespace":"db","name":"redis"},
            "spec":{"clusterIP":"None","ports":[{"name":"","port":6379,"protocol":"TCP"}]}});
        let slice = json!({"metadata":{"namespace":"db","name":"redis"},
            "ports":[{"name":"","port":6379}],
            "endpoints":[
                {"addresses":["10.42.0.5"],"hostname":"redis-0","conditions":{"ready":true}},
                {"addresses":["10.42.0.6"],"hostname":"redis-1","conditions":{"ready":false}},
                {"addresses":["10.42.0.7"],"conditions":{"ready":true}}]});
        let p = plan(&cfg(), &[svc], &[slice], &[], &host());
        let r = &p.records.0;
        assert_eq!(
            r["redis.db.svc.cluster.local"],
            vec![Ipv4Addr::new(10, 42, 0, 5), Ipv4Addr::new(10, 42, 0, 7)]
        );
        assert_eq!(
            r["redis-0.redis.db.svc.cluster.local"],
            vec![Ipv4Addr::new(10, 42, 0, 5)]
        );
        assert!(!r.contains_key("redis-1.redis.db.svc.cluster.local"));
    }
}
