//! Files the control plane writes that must not leak or tear: keys, tokens, kubeconfigs, the
//! ACME account.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes a file readable by its owner only (mode 0600 from the start), durably: a temporary
/// file is written and synced, then renamed over `path`, and the folder synced — a crash leaves
/// the old content or the new, never a torn or world-readable file. Keys, tokens, kubeconfigs.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // A leftover temporary file keeps its mode on open: make sure.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
