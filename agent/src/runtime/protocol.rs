//! What the daemon and its helper processes (`skiff shim …`) agree on: the shim's command
//! lines, the pid files that identify a process across a daemon restart, and how records are
//! written so that a crash never leaves half of one.
//!
//! The parsing side of the command line is the binary's `shim` subcommand (`src/main.rs`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::process_start_ticks;

/// What a `skiff shim` process is asked to do with a container directory.
#[derive(Debug, Clone, Copy)]
pub enum ShimCommand<'a> {
    /// Run the container: `skiff shim <dir>`.
    Run,
    /// Remove its libcontainer state and cgroups: `skiff shim --delete <dir>`.
    Delete,
    /// Make a pod's shared PID namespace and hold it:
    /// `skiff shim --pid-namespace <pod-dir>` (`pidns.rs`).
    PidNamespace,
    /// Run `command` inside the running container: `skiff shim --exec [--tty] <dir> -- …`.
    Exec {
        /// Give the command a terminal (stdin then carries frames).
        tty: bool,
        /// The command and its arguments.
        command: &'a [String],
    },
}

/// The command `exe shim …` for the container directory `dir`, without stdio set.
pub fn shim_command(exe: &Path, dir: &Path, what: ShimCommand<'_>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(exe);
    command.args(shim_args(dir, what));
    command
}

/// The arguments after the executable:
/// `shim [--delete | --pid-namespace | --exec [--tty]] <dir> [-- command…]`.
pub fn shim_args(dir: &Path, what: ShimCommand<'_>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["shim".into()];
    match what {
        ShimCommand::Run => args.push(dir.into()),
        ShimCommand::Delete => {
            args.push("--delete".into());
            args.push(dir.into());
        }
        ShimCommand::PidNamespace => {
            args.push("--pid-namespace".into());
            args.push(dir.into());
        }
        ShimCommand::Exec { tty, command } => {
            args.push("--exec".into());
            if tty {
                args.push("--tty".into());
            }
            args.push(dir.into());
            args.push("--".into());
            args.extend(command.iter().map(Into::into));
        }
    }
    args
}

/// A process as a pid file records it: its pid and its start time (clock ticks since boot),
/// so that a later process reusing the pid is not taken for it. On disk: `"<pid> <ticks>\n"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidFile {
    /// The pid.
    pub pid: i32,
    /// Its start time (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
}

impl PidFile {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id() as i32;
        PidFile {
            pid,
            start_ticks: process_start_ticks(pid).unwrap_or(0),
        }
    }

    /// Parses a pid file's text; `None` unless it holds a pid and a start time.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        Some(PidFile {
            pid: parts.next()?.parse().ok()?,
            start_ticks: parts.next()?.parse().ok()?,
        })
    }

    /// Reads a pid file; `None` if it is missing or does not parse.
    pub fn read(path: &Path) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Writes the pid file (plainly: a reader that finds it torn ignores it).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_string())
    }

    /// Whether the process still runs (same pid, same start time).
    pub fn is_alive(&self) -> bool {
        process_start_ticks(self.pid) == Some(self.start_ticks)
    }
}

impl std::fmt::Display for PidFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {}", self.pid, self.start_ticks)
    }
}

/// `<dir>/shim.pid`: the shim of a container directory, written before anything else.
pub fn shim_pid_file(container_dir: &Path) -> PathBuf {
    container_dir.join("shim.pid")
}

/// Replaces `path` with `bytes` atomically and durably, readable by the owner only (0600): a
/// temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
/// Concurrent writers (the daemon and a CLI) never share a temporary file.
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Like [`write_durable`], for a value as pretty JSON.
pub fn write_json_durable<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_durable(path, &bytes)
}

/// Makes a directory's entries (a rename, a creation) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_command_lines() {
        let dir = Path::new("/d/containers/x");
        let strings = |what| -> Vec<String> {
            shim_args(dir, what)
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(strings(ShimCommand::Run), ["shim", "/d/containers/x"]);
        assert_eq!(
            strings(ShimCommand::Delete),
            ["shim", "--delete", "/d/containers/x"]
        );
        assert_eq!(
            strings(ShimCommand::PidNamespace),
            ["shim", "--pid-namespace", "/d/containers/x"]
        );
        let command = ["sh".to_string(), "-c".to_string(), "true".to_string()];
        assert_eq!(
            strings(ShimCommand::Exec {
                tty: false,
                command: &command
            }),
            [
                "shim",
                "--exec",
                "/d/containers/x",
                "--",
                "sh",
                "-c",
                "true"
            ]
        );
        assert_eq!(
            strings(ShimCommand::Exec {
                tty: true,
                command: &command[..1]
            }),
            ["shim", "--exec", "--tty", "/d/containers/x", "--", "sh"]
        );
    }

    #[test]
    fn pid_files() {
        assert_eq!(
            PidFile::parse("12 345\n"),
            Some(PidFile {
                pid: 12,
                start_ticks: 345
            })
        );
        assert_eq!(PidFile::parse("12"), None);
        assert_eq!(PidFile::parse("x 1"), None);
        assert_eq!(PidFile::parse(""), None);
        let dir = tempfile::tempdir().unwrap();
        let me = PidFile::current();
        me.write(&dir.path().join("p")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p")).unwrap(),
            format!("{} {}\n", me.pid, me.start_ticks)
        );
        assert_eq!(PidFile::read(&dir.path().join("p")), Some(me));
        assert!(me.is_alive());
        assert!(!PidFile {
            start_ticks: me.start_ticks + 1,
            ..me
        }
        .is_alive());
    }

    #[test]
    fn durable_writes_replace_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        write_durable(&path, b"one").unwrap();
        write_json_durable(&path, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\n  \"a\": 1\n}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["record.json"]);
    }
}
