//! A container's termination message, as kubelet reads it: the file at
//! `terminationMessagePath` (default `/dev/termination-log`, a host file bind-mounted there,
//! writable by any user), at most 4096 bytes; with `terminationMessagePolicy:
//! FallbackToLogsOnError`, when that file is empty and the container failed, the last 80 lines
//! of its log (at most 2048 bytes). It becomes `state.terminated.message`.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use super::logs;

/// Where the container's message file lives on the host and in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TerminationMessage {
    /// The host file (next to the instance's log).
    pub(crate) file: PathBuf,
    /// The instance's log.
    pub(crate) log: PathBuf,
    /// `FallbackToLogsOnError`.
    pub(crate) fallback_to_logs: bool,
    /// The path in the container.
    pub(crate) path: String,
}

const MAX_FILE: u64 = 4096;
const MAX_LOG_LINES: usize = 80;
const MAX_LOG_BYTES: usize = 2048;

impl TerminationMessage {
    /// The message of container `c` for the instance whose log is `log`.
    pub(crate) fn of(c: &Container, log: &Path) -> TerminationMessage {
        TerminationMessage {
            file: log.with_extension("termination"),
            log: log.to_path_buf(),
            fallback_to_logs: c.termination_message_policy.as_deref()
                == Some("FallbackToLogsOnError"),
            path: c
                .termination_message_path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/dev/termination-log".into()),
        }
    }

    /// Creates the empty host file (mode 0666: the container may run as any user); returns the
    /// bind mount (path in the container, host file, read-write).
    pub(crate) fn prepare(&self) -> std::io::Result<(String, PathBuf, bool)> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.file, b"")?;
        std::fs::set_permissions(&self.file, std::fs::Permissions::from_mode(0o666))?;
        Ok((self.path.clone(), self.file.clone(), false))
    }

    /// The message of an instance that exited with `exit_code`, if there is one.
    pub(crate) fn read(&self, exit_code: i32) -> Option<String> {
        let mut text = String::new();
        if let Ok(f) = std::fs::File::open(&self.file) {
            let mut bytes = Vec::new();
            let _ = f.take(MAX_FILE).read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        if text.is_empty() && self.fallback_to_logs && exit_code != 0 {
            text = logs::tail_text(&self.log, MAX_LOG_LINES, MAX_LOG_BYTES);
        }
        (!text.is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(policy: Option<&str>, path: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            termination_message_policy: policy.map(String::from),
            termination_message_path: path.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn the_file_then_the_logs_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c/0.log");
        let t = TerminationMessage::of(&container(None, None), &log);
        assert_eq!(t.path, "/dev/termination-log");
        assert_eq!(t.file, dir.path().join("c/0.termination"));
        let (dest, _, ro) = t.prepare().unwrap();
        assert_eq!((dest.as_str(), ro), ("/dev/termination-log", false));
        let mode = std::fs::metadata(&t.file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        std::fs::write(
            &log,
            "2024-01-01T00:00:00Z stdout F one\n2024-01-01T00:00:01Z stderr P tw\n2024-01-01T00:00:02Z stderr F o\n",
        )
        .unwrap();
        // File policy: no message without the file's.
        assert_eq!(t.read(1), None);
        let f = TerminationMessage::of(&container(Some("FallbackToLogsOnError"), None), &log);
        assert_eq!(f.read(1).as_deref(), Some("one\ntwo\n"));
        // Not on success.
        assert_eq!(f.read(0), None);
        // The file wins, capped at 4096 bytes.
        std::fs::write(&t.file, "x".repeat(5000)).unwrap();
        assert_eq!(f.read(1).map(|m| m.len()), Some(4096));
        let custom = TerminationMessage::of(&container(None, Some("/tmp/msg")), &log);
        assert_eq!(custom.path, "/tmp/msg");
    }

    #[test]
    fn logs_fallback_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let lines: String = (0..100)
            .map(|i| format!("2024-01-01T00:00:00Z stdout F line{i:03}\n"))
            .collect();
        std::fs::write(&log, lines).unwrap();
        let text = logs::tail_text(&log, MAX_LOG_LINES, MAX_LOG_BYTES);
        assert!(
            text.starts_with("line020\n") && text.ends_with("line099\n"),
            "{text}"
        );
        assert_eq!(logs::tail_text(&log, 80, 8), "line099\n");
    }
}
