//! The mounts the runtime makes on the host: a container's overlayfs root, and finding and
//! removing every mount under a directory (used when a container or pod is removed, and by
//! `skiff killall`).

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts an overlayfs at `target` with `layers` (bottom → top) as read-only lower layers and
/// `upper`/`work` as the container's writable layer. Always `nodev` (a device node an image
/// ships is no way to the host's disks, whatever the device cgroup says); `nosuid` too when
/// `nosuid` is asked (a container under `no_new_privs`, where setuid bits mean nothing anyway —
/// Kubernetes' default allows privilege escalation, so setuid programs in images keep working).
pub fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    nosuid: bool,
) -> std::io::Result<()> {
    let mut flags = MsFlags::MS_NODEV;
    if nosuid {
        flags |= MsFlags::MS_NOSUID;
    }
    if layers.is_empty() {
        // An image without layers: the root is just the writable directory (a bind mount
        // takes its flags on a remount).
        mount(
            Some(upper),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        return mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )
        .map_err(std::io::Error::from);
    }
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().replace(':', "\\:").replace(',', "\\,"))
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() >= 4096 {
        return Err(std::io::Error::other(format!(
            "overlay mount options are {} bytes, more than the kernel's page-size limit ({} layers)",
            options.len(),
            layers.len()
        )));
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(options.as_str()),
    )
    .map_err(|e| std::io::Error::other(format!("mounting overlayfs at {}: {e}", target.display())))
}

/// Every mount point at or below `dir`, deepest first (from `/proc/self/mountinfo`).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Unmounts every mount at or below `dir` (lazily, so a busy mount cannot block removal).
pub fn unmount_all_under(dir: &Path) -> std::io::Result<()> {
    for m in mounts_under(dir) {
        match umount2(&m, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "unmounting {}: {e}",
                    m.display()
                )))
            }
        }
    }
    Ok(())
}

/// Unmounts everything under `dir`, then removes it.
pub fn remove_dir_with_mounts(dir: &Path) -> std::io::Result<()> {
    unmount_all_under(dir)?;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(std::io::Error::other(format!(
            "removing {}: {e}",
            dir.display()
        ))),
    }
}
