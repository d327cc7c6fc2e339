//! A pod's sandbox: the namespaces its containers share — network (with loopback up), UTS
//! (the pod's hostname) and IPC — kept alive as bind mounts under the pod's directory
//! (`<pod-dir>/ns/{net,uts,ipc}`), the way `ip netns add` keeps a network namespace. A
//! `hostNetwork` pod shares the host's network and UTS namespaces and gets only IPC.
//!
//! The namespaces are made in a short-lived thread of its own: `unshare` of these namespace
//! kinds affects only the calling thread, so the daemon's other threads are untouched.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Paths of a pod's namespaces; `None` means the host's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// The network namespace.
    pub net: Option<PathBuf>,
    /// The UTS namespace.
    pub uts: Option<PathBuf>,
    /// The IPC namespace.
    pub ipc: Option<PathBuf>,
    /// The pod's shared PID namespace (`shareProcessNamespace`); `None`: each container has
    /// its own.
    pub pid: Option<PathBuf>,
}

/// The namespaces a sandbox in `pod_dir` has (or would have).
pub fn paths(pod_dir: &Path, host_network: bool) -> Namespaces {
    let ns = pod_dir.join("ns");
    Namespaces {
        net: (!host_network).then(|| ns.join("net")),
        uts: (!host_network).then(|| ns.join("uts")),
        ipc: Some(ns.join("ipc")),
        pid: None,
    }
}

/// Whether a namespace file is a live bind mount (and not just the empty placeholder file).
fn is_bound(path: &Path) -> bool {
    super::mount::mounts_under(path).iter().any(|m| m == path)
}

/// Creates the sandbox's namespaces unless they exist. Idempotent.
pub fn ensure(pod_dir: &Path, host_network: bool, hostname: &str) -> std::io::Result<Namespaces> {
    let wanted = paths(pod_dir, host_network);
    let missing: Vec<(&'static str, PathBuf)> = [
        ("net", &wanted.net),
        ("uts", &wanted.uts),
        ("ipc", &wanted.ipc),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.clone().map(|p| (k, p)))
    .filter(|(_, p)| !is_bound(p))
    .collect();
    if missing.is_empty() {
        return Ok(wanted);
    }
    std::fs::create_dir_all(pod_dir.join("ns"))?;
    let hostname = hostname.to_string();
    std::thread::spawn(move || -> std::io::Result<()> {
        let mut flags = CloneFlags::empty();
        for (kind, _) in &missing {
            flags |= match *kind {
                "net" => CloneFlags::CLONE_NEWNET,
                "uts" => CloneFlags::CLONE_NEWUTS,
                _ => CloneFlags::CLONE_NEWIPC,
            };
        }
        unshare(flags).map_err(|e| std::io::Error::other(format!("unshare {flags:?}: {e}")))?;
        if flags.contains(CloneFlags::CLONE_NEWUTS) {
            nix::unistd::sethostname(&hostname)
                .map_err(|e| std::io::Error::other(format!("sethostname: {e}")))?;
        }
        if flags.contains(CloneFlags::CLONE_NEWNET) {
            loopback_up()?;
        }
        for (kind, path) in &missing {
            std::fs::File::create(path)?;
            let source = format!("/proc/thread-self/ns/{kind}");
            mount(
                Some(source.as_str()),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| {
                std::io::Error::other(format!("binding {source} to {}: {e}", path.display()))
            })?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))??;
    Ok(wanted)
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| std::io::Error::other(format!("socket: {e}")))?;
    // SAFETY: `ifreq` is plain old data; zeroed is a valid value. The ioctls read and write
    // only that struct, through a socket we own.
    unsafe {
        use std::os::fd::AsRawFd;
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Removes a pod's sandbox: kills its PID namespace's holder, unmounts its namespaces and
/// everything else under its directory.
pub fn remove(pod_dir: &Path) -> std::io::Result<()> {
    super::pidns::kill(pod_dir);
    super::mount::remove_dir_with_mounts(pod_dir)
}

/// Releases the sandbox of a pod that has finished for good, keeping its directory's logs:
/// kills its PID namespace's holder, unmounts and removes its namespaces (`ns/`) and its
/// volumes' directories (`volumes/`: emptyDirs, tmpfs ones included, and the ConfigMap,
/// Secret and projected copies — never a hostPath or a claim's data, which live elsewhere).
pub fn release(pod_dir: &Path) -> std::io::Result<()> {
    super::pidns::kill(pod_dir);
    let namespaces = super::mount::remove_dir_with_mounts(&pod_dir.join("ns"));
    let volumes = super::mount::remove_dir_with_mounts(&pod_dir.join("volumes"));
    namespaces.and(volumes)
}
