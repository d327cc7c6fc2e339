//! This node's name: skiff runs one node, the machine itself. The binary sets it once at start
//! ([`set_name`]); pods without a node are bound to it and events name it as their host.

use std::sync::OnceLock;

static NAME: OnceLock<String> = OnceLock::new();

/// Sets the node's name. The first call wins (one process, one node); later calls are ignored.
pub fn set_name(name: &str) {
    let _ = NAME.set(name.to_string());
}

/// The node's name: as set by [`set_name`], else the host name (unit tests, tools).
pub fn name() -> &'static str {
    NAME.get_or_init(hostname)
}

/// The host name, the default node name (as kubelet's).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
