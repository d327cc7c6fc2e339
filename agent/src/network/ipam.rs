//! Pod address allocation, persisted like CNI's host-local IPAM: one file per allocated address
//! (`<data-dir>/network/ips/<ip>`, holding the pod's uid), created with `O_EXCL` so that an
//! address is never given twice, and removed when the pod's sandbox goes.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::Cidr;

/// Why a pod got no address.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The allocations directory could not be created.
    #[error("creating {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// The allocation could not be recorded.
    #[error("recording {ip}: {source}")]
    Record {
        /// The address.
        ip: Ipv4Addr,
        /// Why not.
        source: std::io::Error,
    },
    /// Every address of the range is allocated.
    #[error("no free address left in {cidr}")]
    Exhausted {
        /// The range.
        cidr: Cidr,
    },
}

/// The allocations of one cluster CIDR.
#[derive(Clone, Debug)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Cidr,
}

impl Ipam {
    /// Allocations under `dir/ips`.
    pub fn new(dir: PathBuf, cidr: Cidr) -> Self {
        Ipam {
            dir: dir.join("ips"),
            cidr,
        }
    }

    fn entries(&self) -> Vec<(Ipv4Addr, String)> {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let ip: Ipv4Addr = e.file_name().to_string_lossy().parse().ok()?;
                        let uid = std::fs::read_to_string(e.path()).ok()?;
                        Some((ip, uid.trim().to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The address of a pod, if it has one.
    pub fn lookup(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.entries()
            .into_iter()
            .find(|(_, u)| u == pod_uid)
            .map(|(ip, _)| ip)
    }

    /// Every pod with an address.
    pub fn pods(&self) -> Vec<String> {
        self.entries().into_iter().map(|(_, u)| u).collect()
    }

    /// The pod's address, allocating the lowest free one (after the gateway) if needed.
    pub fn allocate(&self, pod_uid: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.lookup(pod_uid) {
            return Ok(ip);
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| IpamError::CreateDir {
            dir: self.dir.clone(),
            source,
        })?;
        let mut n = 2;
        while let Some(ip) = self.cidr.nth(n) {
            let path = self.dir.join(ip.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(pod_uid.as_bytes())
                        .map_err(|source| IpamError::Record { ip, source })?;
                    let _ = f.sync_all();
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(source) => return Err(IpamError::Record { ip, source }),
            }
        }
        Err(IpamError::Exhausted { cidr: self.cidr })
    }

    /// Frees the pod's address.
    pub fn release(&self, pod_uid: &str) {
        for (ip, uid) in self.entries() {
            if uid == pod_uid {
                let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
            }
        }
    }

    /// Frees every address.
    pub fn clear(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_never_twice() {
        let d = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(d.path().into(), "10.99.0.0/24".parse().unwrap());
        let a = ipam.allocate("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 99, 0, 3));
        assert_eq!(ipam.allocate("a").unwrap(), a);
        ipam.release("a");
        assert_eq!(ipam.allocate("c").unwrap(), a);
        assert_eq!(ipam.lookup("b"), Some(b));
    }
}
