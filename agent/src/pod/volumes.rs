//! A pod's volumes, made real under its directory (`<pod-dir>/volumes/<name>`) and bind-mounted
//! into its containers: `emptyDir` (a directory, or a tmpfs for `medium: Memory`), `hostPath`
//! (the host's path itself; `DirectoryOrCreate`/`FileOrCreate` create it), `configMap` and
//! `secret` (one file per key or per listed item, rewritten at every container start),
//! `projected` (the same for its ConfigMap, Secret and downward-API sources, and a new token of
//! the pod's ServiceAccount, bound to the pod, at every container start — the
//! `kube-api-access-*` volume the ServiceAccount admission adds),
//! `persistentVolumeClaim` (the bound PersistentVolume's directory itself: a directory skiff
//! provisioned under `<data-dir>/volumes`, or a static volume's `hostPath`/`local` path).
//! `subPath` selects a path inside the volume, `subPathExpr` too after `$(VAR)` expansion from
//! the container's environment; neither may leave it.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath, ProjectedVolumeSource, Volume,
};

use super::error::ConfigError;
use super::process::EnvSources;

/// A bind mount for a container: (destination, source, read-only).
pub type Mount = (String, PathBuf, bool);

/// (relative path, content, mode) of a configMap or secret volume's files: every key, or the
/// listed items.
fn resolve_items(
    data: &std::collections::BTreeMap<String, String>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    what: &str,
) -> Result<Vec<(String, String, u32)>, ConfigError> {
    Ok(match items {
        Some(items) => items
            .iter()
            .map(|i| {
                data.get(&i.key)
                    .map(|v| {
                        (
                            i.path.clone(),
                            v.clone(),
                            i.mode.map(|m| m as u32).unwrap_or(mode),
                        )
                    })
                    .ok_or_else(|| ConfigError::MissingKey {
                        key: i.key.clone(),
                        object: what.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?,
        None => data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), mode))
            .collect(),
    })
}

fn write_items(
    dir: &Path,
    data: &std::collections::BTreeMap<String, String>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    what: &str,
) -> Result<(), ConfigError> {
    write_files(dir, resolve_items(data, items, mode, what)?, what)
}

/// Writes `files` into `dir` and removes what else is there.
fn write_files(
    dir: &Path,
    files: Vec<(String, String, u32)>,
    what: &str,
) -> Result<(), ConfigError> {
    // Files are replaced in place (write + rename), so containers that already mount the
    // directory see the new content; keys gone from the source are removed.
    std::fs::create_dir_all(dir).map_err(ConfigError::io(dir))?;
    let mut keep = std::collections::HashSet::new();
    for (rel, value, mode) in files {
        let rel = safe_relative(&rel).ok_or_else(|| ConfigError::ItemOutside {
            object: what.to_string(),
            path: rel.clone(),
        })?;
        keep.insert(
            rel.components()
                .next()
                .map(|c| c.as_os_str().to_os_string())
                .unwrap_or_default(),
        );
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(ConfigError::io(parent))?;
        }
        let tmp = path.with_extension("skiff-tmp");
        std::fs::write(&tmp, value).map_err(ConfigError::io(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(ConfigError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(ConfigError::io(&path))?;
    }
    for entry in std::fs::read_dir(dir)
        .map_err(ConfigError::VolumeDir)?
        .flatten()
    {
        if !keep.contains(&entry.file_name()) {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    Ok(())
}

/// A projected ConfigMap's or Secret's files (`object`: `configmap` or `secret`, and its
/// name); none when it is missing and `optional`.
fn optional_items(
    data: Option<std::collections::BTreeMap<String, String>>,
    (kind, name): (&'static str, &str),
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: u32,
) -> Result<Vec<(String, String, u32)>, ConfigError> {
    let what = match kind {
        "configmap" => format!("ConfigMap {name}"),
        _ => format!("Secret {name}"),
    };
    match data {
        Some(data) => resolve_items(&data, items, mode, &what),
        None if optional.unwrap_or(false) => Ok(Vec::new()),
        None => Err(ConfigError::NotFound {
            kind,
            name: name.to_string(),
        }),
    }
}

/// A projected volume's files: each source's (a token of the pod's ServiceAccount, a
/// ConfigMap's or Secret's keys, the pod's own fields), in one directory.
fn projected(
    p: &ProjectedVolumeSource,
    sources: &dyn EnvSources,
) -> Result<Vec<(String, String, u32)>, ConfigError> {
    let mode = file_mode(p.default_mode);
    let mut files = Vec::new();
    for src in p.sources.iter().flatten() {
        if let Some(t) = &src.service_account_token {
            let token = sources.service_account_token(t.expiration_seconds.unwrap_or(3600))?;
            files.push((t.path.clone(), token, mode));
        }
        if let Some(c) = &src.config_map {
            let data = sources.config_map(&c.name);
            files.extend(optional_items(
                data,
                ("configmap", &c.name),
                c.items.as_deref(),
                c.optional,
                mode,
            )?);
        }
        if let Some(s) = &src.secret {
            let data = sources.secret(&s.name);
            files.extend(optional_items(
                data,
                ("secret", &s.name),
                s.items.as_deref(),
                s.optional,
                mode,
            )?);
        }
        for item in src
            .downward_api
            .iter()
            .flat_map(|d| d.items.iter().flatten())
        {
            let path = item
                .field_ref
                .as_ref()
                .map(|f| f.field_path.as_str())
                .unwrap_or_default();
            let value = sources
                .field(path)
                .ok_or_else(|| ConfigError::UnsupportedFieldRef(path.to_string()))?;
            let mode = item.mode.map(|m| m as u32).unwrap_or(mode);
            files.push((item.path.clone(), value, mode));
        }
    }
    Ok(files)
}

/// Where a claim's volume is on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimVolume {
    /// The PersistentVolume's `hostPath` (a `local` volume's path is a `Directory`).
    pub source: HostPathVolumeSource,
    /// Whether the claim is being deleted (a pod not yet started may not use it).
    pub terminating: bool,
    /// Whether skiff's local-path provisioner made the volume (then `fsGroup` may change its
    /// ownership; an administrator's host path is never changed).
    pub provisioned: bool,
}

/// The pod's `fsGroup`: the group its writable volumes are given to.
#[derive(Clone, Copy, Debug)]
pub struct FsGroup {
    /// The group id.
    pub gid: u32,
    /// `fsGroupChangePolicy: Always` (else OnRootMismatch: skipped when the volume's root
    /// already has the group and the setgid bit).
    pub always: bool,
}

/// Why a pod cannot use a claim yet; the pod waits (Pending) and starts once it can. Worded
/// as the scheduler words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimWait {
    /// No such claim in the pod's namespace.
    #[error("persistentvolumeclaim {0:?} not found")]
    NotFound(String),
    /// The claim is not bound to a volume yet.
    #[error(
        "persistentvolumeclaim {0:?} is not bound yet (pod has unbound PersistentVolumeClaims)"
    )]
    Unbound(String),
    /// The claim is being deleted.
    #[error("persistentvolumeclaim {0:?} is being deleted")]
    Terminating(String),
    /// The claim's volume does not exist, or has no source skiff can mount.
    #[error("persistentvolume {0:?} not found or not usable")]
    NoVolume(String),
}

/// Whether a pod not yet started may start as far as its claims go: each exists, is bound
/// and is not being deleted.
pub fn claims_ready(volumes: &[Volume], sources: &dyn EnvSources) -> Result<(), ClaimWait> {
    for v in volumes {
        if let Some(c) = &v.persistent_volume_claim {
            let volume = sources.claim(&c.claim_name)?;
            if volume.terminating {
                return Err(ClaimWait::Terminating(c.claim_name.clone()));
            }
        }
    }
    Ok(())
}

/// A relative path that stays below its base (no `..`, not absolute).
pub fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then(|| path.to_path_buf())
}

/// A prepared volume: where it is on the host, and whether containers only read it
/// (ConfigMap and Secret volumes are read-only on Kubernetes).
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The host path.
    pub path: PathBuf,
    /// Mounted read-only whatever the mount says.
    pub read_only: bool,
}

/// Makes every volume of the pod exist, given to `fs_group` where Kubernetes does (emptyDir,
/// configMap, secret, and claims skiff provisioned — never a host path); returns name →
/// prepared volume.
pub fn prepare(
    pod_dir: &Path,
    volumes: &[Volume],
    sources: &dyn EnvSources,
    fs_group: Option<FsGroup>,
) -> Result<HashMap<String, Prepared>, ConfigError> {
    let mut out = HashMap::new();
    for v in volumes {
        let dir = pod_dir.join("volumes").join(&v.name);
        let mut owned = v.empty_dir.is_some()
            || v.config_map.is_some()
            || v.secret.is_some()
            || v.projected.is_some();
        let path = if let Some(e) = &v.empty_dir {
            empty_dir(&v.name, e, &dir)?;
            dir
        } else if let Some(h) = &v.host_path {
            host_path(h)?
        } else if let Some(c) = &v.config_map {
            let data = sources.config_map(&c.name);
            let what = format!("ConfigMap {}", c.name);
            let (items, mode) = (c.items.as_deref(), c.default_mode);
            match data {
                Some(data) => write_items(&dir, &data, items, file_mode(mode), &what)?,
                None if c.optional.unwrap_or(false) => create_dir(&dir)?,
                None => {
                    return Err(ConfigError::NotFound {
                        kind: "configmap",
                        name: c.name.clone(),
                    })
                }
            }
            dir
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let what = format!("Secret {name}");
            let (items, mode) = (s.items.as_deref(), s.default_mode);
            match sources.secret(&name) {
                Some(data) => write_items(&dir, &data, items, file_mode(mode), &what)?,
                None if s.optional.unwrap_or(false) => create_dir(&dir)?,
                None => {
                    return Err(ConfigError::NotFound {
                        kind: "secret",
                        name,
                    })
                }
            }
            dir
        } else if let Some(p) = &v.projected {
            write_files(&dir, projected(p, sources)?, &format!("volume {}", v.name))?;
            dir
        } else if let Some(c) = &v.persistent_volume_claim {
            let volume = sources.claim(&c.claim_name).map_err(ConfigError::Claim)?;
            owned = volume.provisioned;
            host_path(&volume.source)?
        } else {
            return Err(ConfigError::UnsupportedVolume(v.name.clone()));
        };
        let read_only = v.config_map.is_some()
            || v.secret.is_some()
            || v.projected.is_some()
            || v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.read_only == Some(true));
        if let (Some(group), true) = (fs_group, owned) {
            set_ownership(&path, group, read_only).map_err(ConfigError::io(&path))?;
        }
        out.insert(v.name.clone(), Prepared { path, read_only });
    }
    Ok(out)
}

/// Gives a volume to the pod's `fsGroup` as kubelet does: every file and directory (never
/// through a symlink) gets the group, group read (and write, unless read-only) permission,
/// directories also execute and the setgid bit so new files inherit the group.
fn set_ownership(root: &Path, group: FsGroup, read_only: bool) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(root)?;
    if !group.always && meta.gid() == group.gid && meta.mode() & 0o2000 != 0 {
        return Ok(());
    }
    let rw = if read_only { 0o440 } else { 0o660 };
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        nix::unistd::fchownat(
            None,
            &path,
            None,
            Some(nix::unistd::Gid::from_raw(group.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)?;
        let mode = meta.mode() & 0o7777;
        let wanted = if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
            mode | rw | 0o110 | 0o2000
        } else {
            mode | rw
        };
        if wanted != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))?;
        }
    }
    Ok(())
}

/// A configMap or secret volume's `defaultMode` (0644 when unset).
fn file_mode(default_mode: Option<i32>) -> u32 {
    default_mode.map(|m| m as u32).unwrap_or(0o644)
}

fn create_dir(dir: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(ConfigError::VolumeDir)
}

/// An emptyDir: a world-writable directory, a tmpfs for `medium: Memory`; made once.
fn empty_dir(name: &str, e: &EmptyDirVolumeSource, dir: &Path) -> Result<(), ConfigError> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(ConfigError::io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .map_err(ConfigError::VolumeDir)?;
    if e.medium.as_deref() == Some("Memory") {
        let size = e
            .size_limit
            .as_ref()
            .and_then(|q| crate::runtime::oci::parse_quantity(&q.0, 1.0));
        let options = size
            .map(|s| format!("size={s},mode=1777"))
            .unwrap_or_else(|| "mode=1777".into());
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|source| ConfigError::Tmpfs {
            volume: name.to_string(),
            source,
        })?;
    }
    Ok(())
}

/// A hostPath: the host's path itself, created or checked as its `type` says.
fn host_path(h: &HostPathVolumeSource) -> Result<PathBuf, ConfigError> {
    let p = PathBuf::from(&h.path);
    let failed = |source| ConfigError::HostPath {
        path: h.path.clone(),
        source,
    };
    match h.type_.as_deref().unwrap_or("") {
        "DirectoryOrCreate" => std::fs::create_dir_all(&p).map_err(failed)?,
        "FileOrCreate" if !p.exists() => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(failed)?;
            }
            std::fs::write(&p, b"").map_err(failed)?;
        }
        "FileOrCreate" => {}
        "Directory" if !p.is_dir() => {
            return Err(ConfigError::HostPathType {
                path: h.path.clone(),
                kind: "directory",
            })
        }
        "File" if !p.is_file() => {
            return Err(ConfigError::HostPathType {
                path: h.path.clone(),
                kind: "file",
            })
        }
        _ if !p.exists() => return Err(ConfigError::HostPathMissing(h.path.clone())),
        _ => {}
    }
    Ok(p)
}

/// The bind mounts of a container's `volumeMounts`; `env` is the container's environment
/// (its `env` and `envFrom`), which `subPathExpr` expands.
pub fn mounts(
    container: &Container,
    volumes: &HashMap<String, Prepared>,
    env: &HashMap<String, String>,
) -> Result<Vec<Mount>, ConfigError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.as_deref().unwrap_or_default() {
        let prepared = volumes
            .get(&m.name)
            .ok_or_else(|| ConfigError::UndefinedVolume(m.name.clone()))?;
        let base = &prepared.path;
        let sub = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
            (Some(sub), _) if !sub.is_empty() => Some(sub.to_string()),
            (_, Some(expr)) if !expr.is_empty() => Some(super::process::expand(expr, env)),
            _ => None,
        };
        let source = match sub {
            Some(sub) => sub_path(base, &sub)?,
            None => base.clone(),
        };
        out.push((
            m.mount_path.clone(),
            source,
            m.read_only.unwrap_or(false) || prepared.read_only,
        ));
    }
    Ok(out)
}

/// `sub` inside the volume at `base`, made if missing; it may not leave the volume, not even
/// through a symlink.
fn sub_path(base: &Path, sub: &str) -> Result<PathBuf, ConfigError> {
    let rel = safe_relative(sub).ok_or_else(|| ConfigError::SubPathOutside(sub.to_string()))?;
    let p = base.join(rel);
    if !p.exists() {
        std::fs::create_dir_all(&p).map_err(ConfigError::io(&p))?;
    }
    // No symlink inside the volume may lead the mount elsewhere.
    let real = p.canonicalize().map_err(ConfigError::io(&p))?;
    let real_base = base.canonicalize().map_err(ConfigError::io(base))?;
    if !real.starts_with(&real_base) {
        return Err(ConfigError::SubPathEscapes(sub.to_string()));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_path_expr_expands_the_container_env_and_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = HashMap::from([(
            "data".to_string(),
            Prepared {
                path: dir.path().to_path_buf(),
                read_only: false,
            },
        )]);
        let mount = |expr: &str| -> Container {
            serde_json::from_value(serde_json::json!({"name":"c","volumeMounts":[
                {"name":"data","mountPath":"/data","subPathExpr":expr}]}))
            .unwrap()
        };
        let env = HashMap::from([("POD".to_string(), "web-1".to_string())]);
        let m = mounts(&mount("logs/$(POD)"), &volumes, &env).unwrap();
        let real = dir.path().canonicalize().unwrap().join("logs/web-1");
        assert_eq!(m[0].1, real);
        assert!(real.is_dir());
        let env = HashMap::from([("POD".to_string(), "../../etc".to_string())]);
        assert!(mounts(&mount("$(POD)"), &volumes, &env).is_err());
    }

    #[test]
    fn fs_group_gives_the_volume_never_through_a_symlink() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(vol.join("sub/f"), "x").unwrap();
        std::fs::set_permissions(vol.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, "host").unwrap();
        std::os::unix::fs::symlink(&outside, vol.join("link")).unwrap();
        let before = std::fs::metadata(&outside).unwrap();
        let group = FsGroup {
            gid: 4242,
            always: false,
        };
        set_ownership(&vol, group, false).unwrap();
        for p in [vol.clone(), vol.join("sub"), vol.join("sub/f")] {
            assert_eq!(
                std::fs::metadata(&p).unwrap().gid(),
                4242,
                "{}",
                p.display()
            );
        }
        assert_eq!(
            std::fs::metadata(vol.join("sub/f")).unwrap().mode() & 0o777,
            0o660
        );
        assert_ne!(
            std::fs::metadata(vol.join("sub")).unwrap().mode() & 0o2000,
            0
        );
        let after = std::fs::metadata(&outside).unwrap();
        assert_eq!((after.gid(), after.mode()), (before.gid(), before.mode()));
    }

    #[test]
    fn sub_paths_stay_inside() {
        assert!(safe_relative("a/b").is_some());
        assert!(safe_relative("../x").is_none());
        assert!(safe_relative("/etc").is_none());
        assert!(safe_relative("a/../../x").is_none());
    }
}
