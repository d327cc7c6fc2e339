//! `seccompProfile: Localhost`: a profile file under `<data-dir>/seccomp/` (kubelet's
//! `/var/lib/kubelet/seccomp`), in the Docker/containerd JSON format, translated into the OCI
//! spec's `linux.seccomp` as containerd's `seccomp.LoadProfile` does: `archMap` gives the
//! host's architecture and its sub-architectures; `syscalls[]` entries are kept when their
//! `includes` hold (every listed capability in the container's set, the host's architecture
//! listed, the kernel at least `minKernel`) and their `excludes` do not; `name` or `names`.
//! Actions, architectures, flags and argument operators are read as `oci-spec`'s types, so a
//! value neither libcontainer nor the OCI spec knows is refused with its field.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder,
    LinuxSeccompFilterFlag, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;

/// The largest profile read (containerd's default profile is about 20 KB).
const MAX_PROFILE: u64 = 1 << 20;

/// Why a Localhost profile cannot be applied (the container does not start).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The name is absolute or leaves the profiles folder (validation refuses these too).
    #[error("localhostProfile {0:?} must be a relative path inside the seccomp profiles folder")]
    Path(String),
    /// The file cannot be read.
    #[error("failed to load seccomp profile {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// The file is not a profile.
    #[error("seccomp profile {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// A profile file as Docker and containerd write them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<Syscall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Syscall {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// What the entries' conditions are checked against.
#[derive(Debug, Clone)]
pub struct Host {
    /// Go's name of the architecture (`amd64`, `arm64`), as profiles write it.
    pub go_arch: &'static str,
    /// The native seccomp architecture.
    pub arch: Arch,
    /// The kernel's (major, minor).
    pub kernel: (u32, u32),
}

impl Host {
    /// This machine.
    pub fn this() -> Host {
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| kernel_version(&u.release().to_string_lossy()))
            .unwrap_or((0, 0));
        Host {
            go_arch: if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "amd64"
            },
            arch: if cfg!(target_arch = "aarch64") {
                Arch::ScmpArchAarch64
            } else {
                Arch::ScmpArchX86_64
            },
            kernel,
        }
    }
}

/// `6.1.0-18-amd64` → (6, 1).
fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether `name` (a `localhostProfile`) is a relative path that stays inside the folder.
pub fn is_safe_name(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && p.components().any(|c| matches!(c, Component::Normal(_)))
}

/// Reads profile `name` from `dir` and translates it into the OCI `linux.seccomp` for a
/// container holding `capabilities` (`CAP_…`) on `host`. The file must resolve (symlinks
/// included) inside `dir`.
pub fn load(
    dir: &Path,
    name: &str,
    capabilities: &[String],
    host: &Host,
) -> Result<serde_json::Value, ProfileError> {
    use std::io::Read;
    if !is_safe_name(name) {
        return Err(ProfileError::Path(name.into()));
    }
    let path = dir.join(name);
    let read = |source| ProfileError::Read {
        path: path.clone(),
        source,
    };
    let resolved = path.canonicalize().map_err(read)?;
    let root = dir.canonicalize().map_err(read)?;
    if !resolved.starts_with(&root) {
        return Err(ProfileError::Path(name.into()));
    }
    let mut text = Vec::new();
    std::fs::File::open(&resolved)
        .and_then(|f| f.take(MAX_PROFILE + 1).read_to_end(&mut text))
        .map_err(read)?;
    let invalid = |message: String| ProfileError::Invalid {
        path: path.clone(),
        message,
    };
    if text.len() as u64 > MAX_PROFILE {
        return Err(invalid(format!("larger than {MAX_PROFILE} bytes")));
    }
    let profile: Profile = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    let seccomp = translate(profile, capabilities, host).map_err(invalid)?;
    Ok(serde_json::to_value(seccomp).expect("a seccomp section serializes"))
}

/// The OCI section of `profile` (see the module's documentation).
fn translate(profile: Profile, caps: &[String], host: &Host) -> Result<LinuxSeccomp, String> {
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err("architectures and archMap may not both be given".into());
    }
    let notify = |a: LinuxSeccompAction| a == LinuxSeccompAction::ScmpActNotify;
    if notify(profile.default_action) {
        return Err(
            "defaultAction: SCMP_ACT_NOTIFY needs a seccomp agent, which skiff does not run".into(),
        );
    }
    let mut architectures = profile.architectures;
    for m in &profile.arch_map {
        if m.architecture == host.arch {
            architectures.push(m.architecture);
            architectures.extend(m.sub_architectures.iter().copied());
        }
    }
    let mut syscalls = Vec::new();
    for (i, s) in profile.syscalls.into_iter().enumerate() {
        let names = match (s.name, s.names.is_empty()) {
            (Some(_), false) => {
                return Err(format!(
                    "syscalls[{i}]: name and names may not both be given"
                ))
            }
            (Some(n), true) => vec![n],
            (None, false) => s.names,
            (None, true) => return Err(format!("syscalls[{i}]: names is empty")),
        };
        if notify(s.action) {
            return Err(format!(
                "syscalls[{i}].action: SCMP_ACT_NOTIFY needs a seccomp agent, which skiff does not run"
            ));
        }
        if !applies(&s.includes, &s.excludes, caps, host)? {
            continue;
        }
        let mut b = LinuxSyscallBuilder::default().names(names).action(s.action);
        if let Some(e) = s.errno_ret {
            b = b.errno_ret(e);
        }
        if let Some(args) = s.args {
            b = b.args(args);
        }
        let call: LinuxSyscall = b.build().map_err(|e| format!("syscalls[{i}]: {e}"))?;
        syscalls.push(call);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .syscalls(syscalls);
    if !architectures.is_empty() {
        b = b.architectures(architectures);
    }
    if !profile.flags.is_empty() {
        b = b.flags(profile.flags);
    }
    if let Some(e) = profile.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    b.build().map_err(|e| e.to_string())
}

/// Whether an entry with `includes` and `excludes` applies to this container on this host.
fn applies(inc: &Filter, exc: &Filter, caps: &[String], host: &Host) -> Result<bool, String> {
    let min_kernel = |f: &Filter| -> Result<Option<(u32, u32)>, String> {
        f.min_kernel
            .as_deref()
            .map(|k| kernel_version(k).ok_or(format!("minKernel {k:?} is not a kernel version")))
            .transpose()
    };
    let has = |c: &String| caps.contains(c);
    let arch = |f: &Filter| f.arches.iter().any(|a| a == host.go_arch);
    let included = inc.caps.iter().all(has)
        && (inc.arches.is_empty() || arch(inc))
        && min_kernel(inc)?.is_none_or(|k| host.kernel >= k);
    let excluded = (!exc.caps.is_empty() && exc.caps.iter().any(has))
        || arch(exc)
        || min_kernel(exc)?.is_some_and(|k| host.kernel >= k);
    Ok(included && !excluded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host() -> Host {
        Host {
            go_arch: "amd64",
            arch: Arch::ScmpArchX86_64,
            kernel: (6, 1),
        }
    }

    fn translated(profile: serde_json::Value, caps: &[&str]) -> Result<serde_json::Value, String> {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        let p: Profile = serde_json::from_value(profile).map_err(|e| e.to_string())?;
        translate(p, &caps, &host()).map(|s| serde_json::to_value(s).unwrap())
    }

    #[test]
    fn a_docker_profile_becomes_the_oci_section() {
        let s = translated(
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "archMap": [
                    {"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
                ],
                "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": ""},
                    {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                     "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                     "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                    {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW",
                     "includes": {"arches": ["arm", "arm64"]}},
                    {"names": ["newer"], "action": "SCMP_ACT_ALLOW",
                     "includes": {"minKernel": "6.9"}},
                    {"names": ["older"], "action": "SCMP_ACT_ALLOW",
                     "includes": {"minKernel": "4.8"}}
                ]
            }),
            &["CAP_CHOWN"],
        )
        .unwrap();
        assert_eq!(s["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["defaultErrnoRet"], 1);
        assert_eq!(
            s["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let names: Vec<&serde_json::Value> = s["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["names"])
            .collect();
        assert_eq!(
            names,
            [
                &json!(["read", "write"]),
                &json!(["mkdir"]),
                &json!(["personality"]),
                &json!(["clone"]),
                &json!(["older"])
            ]
        );
        assert_eq!(s["syscalls"][1]["errnoRet"], 1);
        assert_eq!(s["syscalls"][2]["args"][0]["op"], "SCMP_CMP_EQ");
        // The same profile for a container holding CAP_SYS_ADMIN: mount, not clone.
        let s = translated(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}]}),
            &["CAP_SYS_ADMIN"],
        )
        .unwrap();
        assert_eq!(
            s["syscalls"],
            json!([{"names": ["mount"], "action": "SCMP_ACT_ALLOW"}])
        );
        assert!(s.get("architectures").is_none());
    }

    #[test]
    fn bad_profiles_are_refused_naming_the_field() {
        let e = |p| translated(p, &[]).unwrap_err();
        assert!(e(json!({"defaultAction": "SCMP_ACT_NOPE"})).contains("SCMP_ACT_NOPE"));
        assert!(e(json!({"defaultAction": "SCMP_ACT_ALLOW", "sycalls": []})).contains("sycalls"));
        assert!(e(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BAD"}]}]}))
        .contains("SCMP_CMP_BAD"));
        assert!(e(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}))
        .contains("syscalls[0]: names is empty"));
        assert!(e(json!({"defaultAction": "SCMP_ACT_NOTIFY"})).contains("defaultAction"));
        assert!(e(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
            "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]})
        )
        .contains("archMap"));
    }

    #[test]
    fn names_and_files_stay_inside_the_folder() {
        for ok in ["deny.json", "profiles/audit.json", "./x.json"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in ["", "/etc/x.json", "../x.json", "a/../../x", ".", "a/.."] {
            assert!(!is_safe_name(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("seccomp");
        std::fs::create_dir(&profiles).unwrap();
        std::fs::write(
            dir.path().join("outside.json"),
            r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink("../outside.json", profiles.join("link.json")).unwrap();
        let e = load(&profiles, "link.json", &[], &host()).unwrap_err();
        assert!(matches!(e, ProfileError::Path(_)), "{e}");
        let e = load(&profiles, "missing.json", &[], &host()).unwrap_err();
        assert!(
            e.to_string().starts_with("failed to load seccomp profile"),
            "{e}"
        );
        std::fs::write(
            profiles.join("ok.json"),
            r#"{"defaultAction":"SCMP_ACT_LOG"}"#,
        )
        .unwrap();
        let s = load(&profiles, "ok.json", &[], &host()).unwrap();
        assert_eq!(s["defaultAction"], "SCMP_ACT_LOG");
        std::fs::write(profiles.join("bad.json"), "{").unwrap();
        let e = load(&profiles, "bad.json", &[], &host()).unwrap_err();
        assert!(e.to_string().contains("is invalid"), "{e}");
    }
}
