//! A blocking route-netlink socket for the pod attach path: requests are sent in batches (one
//! `sendmsg` carrying several messages, which the kernel handles in order) and their
//! acknowledgements read back, on the calling thread — no runtime, no connection task.
//! The messages are built with `rtnetlink`'s builders; only the transport is ours.
//!
//! A netlink socket stays in the network namespace it was created in, so a socket made by a
//! thread that has entered a pod's namespace ([`Rtnl::in_namespace`]) configures that
//! namespace from any thread.

use std::path::Path;

use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A request of a batch: the message and its netlink flags beyond `NLM_F_REQUEST | NLM_F_ACK`.
pub(super) struct Request {
    /// What to ask.
    pub message: RouteNetlinkMessage,
    /// `NLM_F_CREATE | NLM_F_EXCL` for new objects, 0 for changes.
    pub flags: u16,
}

impl Request {
    /// A request that creates an object (fails with `EEXIST` when it is there).
    pub fn create(message: RouteNetlinkMessage) -> Self {
        Request {
            message,
            flags: NLM_F_CREATE | NLM_F_EXCL,
        }
    }
    /// A request that changes an existing object.
    pub fn change(message: RouteNetlinkMessage) -> Self {
        Request { message, flags: 0 }
    }
}

/// A blocking route-netlink socket.
pub(super) struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> std::io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// A socket in the network namespace at `ns` (a bind-mounted namespace file), made by a
    /// short thread that enters it (`setns` changes only the calling thread).
    pub fn in_namespace(ns: &Path) -> Result<Self, String> {
        let ns = ns.to_path_buf();
        std::thread::spawn(move || {
            let file =
                std::fs::File::open(&ns).map_err(|e| format!("opening {}: {e}", ns.display()))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering {}: {e}", ns.display()))?;
            Rtnl::new().map_err(|e| format!("netlink in {}: {e}", ns.display()))
        })
        .join()
        .map_err(|_| "the netlink thread panicked".to_string())?
    }

    /// Sends `requests` in one datagram and returns each one's outcome, in order: `Ok` or the
    /// kernel's error number (positive, as `libc::EEXIST`).
    pub fn batch(&mut self, requests: Vec<Request>) -> std::io::Result<Vec<Result<(), i32>>> {
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        let n = requests.len();
        for r in requests {
            self.seq = self.seq.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | r.flags;
            header.sequence_number = self.seq;
            let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(r.message));
            msg.finalize();
            let at = out.len();
            out.resize(at + msg.buffer_len(), 0);
            msg.serialize(&mut out[at..]);
        }
        self.socket.send(&out, 0)?;
        let mut results = vec![None; n];
        while results.iter().any(Option::is_none) {
            for (seq, reply) in self.receive()? {
                let i = seq.wrapping_sub(first) as usize;
                if let (Some(slot), Reply::Ack(code)) = (results.get_mut(i), reply) {
                    *slot = Some(if code == 0 { Ok(()) } else { Err(-code) });
                }
            }
        }
        Ok(results.into_iter().map(|r| r.expect("filled")).collect())
    }

    /// The index of the link named `name`, `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> std::io::Result<Option<u32>> {
        let mut query = LinkMessage::default();
        query
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(query)),
        );
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        self.socket.send(&out, 0)?;
        loop {
            for (s, reply) in self.receive()? {
                if s != seq {
                    continue;
                }
                return match reply {
                    Reply::Link(index) => Ok(Some(index)),
                    Reply::Ack(code) if code == -libc::ENODEV => Ok(None),
                    Reply::Ack(code) => Err(std::io::Error::from_raw_os_error(-code)),
                };
            }
        }
    }

    /// Reads one datagram and returns its messages as (sequence number, reply).
    fn receive(&mut self) -> std::io::Result<Vec<(u32, Reply)>> {
        self.buf.clear();
        self.socket.recv(&mut self.buf, 0)?;
        let mut replies = Vec::new();
        let mut at = 0;
        while at + 16 <= self.buf.len() {
            let len =
                u32::from_ne_bytes(self.buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            if len < 16 || at + len > self.buf.len() {
                break;
            }
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..at + len])
                .map_err(|e| std::io::Error::other(format!("netlink reply: {e}")))?;
            let seq = msg.header.sequence_number;
            match msg.payload {
                NetlinkPayload::Error(e) => replies.push((seq, Reply::Ack(e.raw_code()))),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                    replies.push((seq, Reply::Link(l.header.index)))
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
        Ok(replies)
    }
}

/// A reply of the kernel to one request.
enum Reply {
    /// An acknowledgement: 0, or a negative error number.
    Ack(i32),
    /// A link's description (the answer to a `GetLink`): its index.
    Link(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::{LinkBridge, LinkUnspec};

    /// In a network namespace of the test's own (a thread that unshared one): a batch answers
    /// each request in order (the second bridge of the same name is refused with EEXIST, the
    /// third request still runs), and links are found by name.
    #[test]
    fn a_batch_answers_each_request_in_order() {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare (root)");
            let mut h = Rtnl::new().unwrap();
            let bridge = || RouteNetlinkMessage::NewLink(LinkBridge::new("skt0").build());
            let up = RouteNetlinkMessage::SetLink(LinkUnspec::new_with_name("skt0").up().build());
            let done = h
                .batch(vec![
                    Request::create(bridge()),
                    Request::create(bridge()),
                    Request::change(up),
                ])
                .unwrap();
            assert_eq!(done, vec![Ok(()), Err(libc::EEXIST), Ok(())]);
            let idx = h.link_index("skt0").unwrap().expect("the bridge");
            assert!(idx > 1, "lo is 1");
            assert_eq!(h.link_index("lo").unwrap(), Some(1));
            assert_eq!(h.link_index("nosuch0").unwrap(), None);
        })
        .join()
        .unwrap();
    }
}
