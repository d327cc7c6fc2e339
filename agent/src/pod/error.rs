//! Why a container cannot be configured: its process (`process.rs`) or its volumes
//! (`volumes.rs`). The messages are what `kubectl get pods` and `describe` show under
//! `CreateContainerConfigError`, worded as kubelet words them where it has a wording.

use std::path::PathBuf;

/// A container's configuration that cannot be made real.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `runAsNonRoot` with a process that would run as uid 0 (kubelet's words).
    #[error("container has runAsNonRoot and image will run as root")]
    RunsAsRoot,
    /// `runAsNonRoot` with an image user given by name and no `runAsUser` (kubelet's words).
    #[error("container has runAsNonRoot and image has non-numeric user ({0}), cannot verify user is non-root")]
    NonNumericUser(String),
    /// The image's `User` names a user its `/etc/passwd` lacks.
    #[error("the image's user {0:?} is not in its /etc/passwd")]
    UnknownUser(String),
    /// The image's `User` names a group its `/etc/group` lacks.
    #[error("the image's group {0:?} is not in its /etc/group")]
    UnknownGroup(String),
    /// A ConfigMap or Secret the pod refers to does not exist (`kind` is `configmap` or
    /// `secret`).
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A key the pod refers to is missing from a ConfigMap or Secret (`source` names it, e.g.
    /// `Secret creds`).
    #[error("couldn't find key {key} in {object}")]
    MissingKey {
        /// The key.
        key: String,
        /// `ConfigMap <name>` or `Secret <name>`.
        object: String,
    },
    /// A ServiceAccount token could not be issued for the pod (kubelet's words).
    #[error("failed to fetch token: {0}")]
    Token(String),
    /// `env[].valueFrom.fieldRef` names a field skiff does not provide.
    #[error("unsupported fieldRef {0:?}")]
    UnsupportedFieldRef(String),
    /// `env[].valueFrom` has no source skiff knows.
    #[error("env {0:?}: unsupported valueFrom")]
    UnsupportedValueFrom(String),
    /// Neither the container nor its image gives a command.
    #[error("no command: neither the container nor its image sets one")]
    NoCommand,
    /// `workingDir` is relative.
    #[error("workingDir {0:?} is not an absolute path")]
    RelativeWorkingDir(String),
    /// A file or directory of a volume could not be made.
    #[error("{}: {source}", path.display())]
    Io {
        /// What was being made.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// A directory of a volume could not be listed or made.
    #[error(transparent)]
    VolumeDir(std::io::Error),
    /// An emptyDir with `medium: Memory` could not be mounted.
    #[error("mounting tmpfs for volume {volume}: {source}")]
    Tmpfs {
        /// The volume.
        volume: String,
        /// Why not.
        source: nix::errno::Errno,
    },
    /// A hostPath could not be created.
    #[error("hostPath {path}: {source}")]
    HostPath {
        /// The path as the pod wrote it.
        path: String,
        /// Why not.
        source: std::io::Error,
    },
    /// A hostPath is not of the type the pod asked for (`kind`: `directory` or `file`).
    #[error("hostPath type check failed: {path} is not a {kind}")]
    HostPathType {
        /// The path as the pod wrote it.
        path: String,
        /// `directory` or `file`.
        kind: &'static str,
    },
    /// A hostPath without a creating type does not exist.
    #[error("hostPath {0} does not exist")]
    HostPathMissing(String),
    /// A configMap or secret volume's item path would leave the volume.
    #[error("{object}: item path {path:?} must stay inside the volume")]
    ItemOutside {
        /// `ConfigMap <name>` or `Secret <name>`.
        object: String,
        /// The item path.
        path: String,
    },
    /// A PersistentVolumeClaim the pod uses cannot be used (yet).
    #[error(transparent)]
    Claim(super::volumes::ClaimWait),
    /// A volume source skiff does not implement.
    #[error("volume {0:?}: unsupported volume source")]
    UnsupportedVolume(String),
    /// A `volumeMounts` entry names no volume of the pod.
    #[error("volume {0:?} is not defined")]
    UndefinedVolume(String),
    /// A `subPath` is absolute or climbs out with `..`.
    #[error("subPath {0:?} must stay inside the volume")]
    SubPathOutside(String),
    /// A `subPath` leads outside the volume through a symlink.
    #[error("subPath {0:?} leads outside the volume")]
    SubPathEscapes(String),
}

impl ConfigError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ConfigError::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts users see (e2e tests assert some of them) stay as they were.
    #[test]
    fn messages() {
        let cases = [
            (
                ConfigError::NotFound {
                    kind: "configmap",
                    name: "later".into(),
                },
                "configmap \"later\" not found",
            ),
            (
                ConfigError::MissingKey {
                    key: "k".into(),
                    object: "Secret s".into(),
                },
                "couldn't find key k in Secret s",
            ),
            (
                ConfigError::SubPathOutside("../../etc".into()),
                "subPath \"../../etc\" must stay inside the volume",
            ),
            (
                ConfigError::HostPathType {
                    path: "/x".into(),
                    kind: "directory",
                },
                "hostPath type check failed: /x is not a directory",
            ),
            (
                ConfigError::NoCommand,
                "no command: neither the container nor its image sets one",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
