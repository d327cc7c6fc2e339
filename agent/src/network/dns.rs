//! The cluster DNS server pods use (on the bridge's gateway address, port 53, UDP):
//! `<service>.<namespace>.svc.cluster.local` answers with the Service's virtual IP (or, for a
//! headless Service, its ready pods' addresses); the short forms `<service>.<namespace>` and
//! `<service>` resolve through the search path written into every pod's `/etc/resolv.conf`.
//! Other names are forwarded to the host's resolvers. Messages are read and written with
//! `hickory-proto`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// The cluster domain.
pub const DOMAIN: &str = "cluster.local";

/// Names → addresses, replaced whole by the agent when Services or endpoints change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records(pub HashMap<String, Vec<Ipv4Addr>>);

/// Shared records.
pub type SharedRecords = Arc<RwLock<Records>>;

/// The host's resolvers, from `/etc/resolv.conf`.
pub fn host_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Answers one query message from the records, or `None` when it must be forwarded.
pub fn answer(query: &Message, records: &Records) -> Option<Message> {
    let q = query.queries.first()?;
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !(name == DOMAIN || name.ends_with(&format!(".{DOMAIN}"))) {
        return None;
    }
    let mut response = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_query(q.clone());
    match records.0.get(&name) {
        Some(ips) => {
            if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
                for ip in ips {
                    response.add_answer(Record::from_rdata(q.name().clone(), 5, RData::A(A(*ip))));
                }
            }
            response.metadata.response_code = ResponseCode::NoError;
        }
        None => response.metadata.response_code = ResponseCode::NXDomain,
    }
    Some(response)
}

/// What becomes of one packet a pod sent to the cluster DNS.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Answered from the records: these bytes go back to the sender.
    Reply(Vec<u8>),
    /// Not a cluster name: the packet goes to the host's resolvers as it is.
    Forward,
    /// Not a DNS message (or an answer that cannot be written): dropped.
    Ignore,
}

/// One packet from a pod, read and answered from the records (the part of [`serve`] that
/// reads untrusted bytes: fuzzed by `fuzz/fuzz_targets/dns.rs`).
pub fn handle(packet: &[u8], records: &Records) -> Handled {
    let Ok(query) = Message::from_vec(packet) else {
        return Handled::Ignore;
    };
    match answer(&query, records) {
        Some(reply) => reply.to_vec().map_or(Handled::Ignore, Handled::Reply),
        None => Handled::Forward,
    }
}

/// How often a DNS server that could not bind its address tries again.
const REBIND_EVERY: Duration = Duration::from_secs(2);

/// Serves DNS on `bind` until `shutdown` flips. When the address cannot be bound (another
/// resolver holds port 53 there, or the bridge's address is not back yet after another tool
/// removed it), says so once and tries again every [`REBIND_EVERY`]: DNS comes back by itself
/// once the port frees up.
pub async fn serve(bind: SocketAddr, records: SharedRecords, mut shutdown: watch::Receiver<bool>) {
    let mut said = false;
    let socket = loop {
        match UdpSocket::bind(bind).await {
            Ok(s) => break Arc::new(s),
            Err(e) if !said => {
                tracing::error!(%bind, "cannot serve cluster DNS: {e}; trying again every {REBIND_EVERY:?}");
                said = true;
            }
            Err(e) => tracing::debug!(%bind, "cluster DNS still cannot bind: {e}"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(REBIND_EVERY) => {}
        }
    };
    tracing::info!(%bind, "cluster DNS listening");
    let upstreams = host_resolvers();
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        let packet = buf[..n].to_vec();
        let handled = {
            let r = records.read().unwrap_or_else(|p| p.into_inner());
            handle(&packet, &r)
        };
        match handled {
            Handled::Reply(bytes) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Handled::Ignore => {}
            Handled::Forward => {
                let (socket, upstreams) = (socket.clone(), upstreams.clone());
                tokio::spawn(async move {
                    if let Some(reply) = forward(&packet, &upstreams).await {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

async fn forward(packet: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let local: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(local).await else {
            continue;
        };
        if sock.send_to(packet, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// The `/etc/resolv.conf` of a pod in `namespace` using cluster DNS at `server`.
pub fn resolv_conf(server: Ipv4Addr, namespace: &str) -> String {
    format!("nameserver {server}\nsearch {namespace}.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}\noptions ndots:5\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    /// A DNS server whose port is taken serves once it frees up.
    #[tokio::test]
    async fn binds_once_its_port_frees_up() {
        let squatter = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = squatter.local_addr().unwrap();
        let mut r = Records::default();
        r.0.insert(
            "web.default.svc.cluster.local".into(),
            vec![Ipv4Addr::new(10, 43, 0, 11)],
        );
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(serve(addr, Arc::new(RwLock::new(r)), shutdown));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!server.is_finished(), "the server waits for its port");
        drop(squatter);
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_str("web.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let bytes = q.to_vec().unwrap();
        let mut buf = [0u8; 512];
        let mut answered = None;
        for _ in 0..30 {
            client.send_to(&bytes, addr).await.unwrap();
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(200), client.recv_from(&mut buf)).await
            {
                answered = Some(Message::from_vec(&buf[..n]).unwrap());
                break;
            }
        }
        let reply = answered.expect("an answer once the port was free");
        assert_eq!(reply.answers.len(), 1);
        stop.send(true).unwrap();
        server.await.unwrap();
    }

    #[test]
    fn answers_cluster_names_and_leaves_others() {
        let mut r = Records::default();
        r.0.insert(
            "web.default.svc.cluster.local".into(),
            vec![Ipv4Addr::new(10, 43, 0, 11)],
        );
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_str("WEB.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let a = answer(&q, &r).unwrap();
        assert_eq!(a.answers.len(), 1);
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_str("nope.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            answer(&q, &r).unwrap().metadata.response_code,
            ResponseCode::NXDomain
        );
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_str("example.org.").unwrap(),
            RecordType::A,
        ));
        assert!(answer(&q, &r).is_none());
    }
}
