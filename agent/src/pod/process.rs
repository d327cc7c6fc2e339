//! How a container's process is decided, merging the image config with the pod spec as
//! Kubernetes does: `command` replaces the image's Entrypoint (and drops its Cmd), `args`
//! replaces Cmd; `env` overrides the image's Env by name, with `$(VAR)` references expanded;
//! `workingDir` overrides WorkingDir; `securityContext.runAsUser/runAsGroup` override User,
//! whose names are resolved in the image's `/etc/passwd` and `/etc/group`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVarSource, PodSecurityContext};

use super::error::ConfigError;
use crate::runtime::oci::Process;

/// The default PATH when neither image nor pod sets one (containerd's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Expands `$(VAR)` references as Kubernetes does: defined names are replaced, `$$` is a
/// literal `$`, anything else is kept as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Reads a file of the image (`etc/passwd`…) from the topmost layer that has it as a regular
/// file. Symlinks are not followed: they could point anywhere on the host.
fn image_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    for layer in layers.iter().rev() {
        let p = layer.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_file() => return std::fs::read_to_string(&p).ok(),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

fn lookup(table: Option<&str>, name: &str) -> Option<(u32, Option<u32>)> {
    table?.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| (f[2].parse().ok(), f.get(3).and_then(|g| g.parse().ok())))
            .and_then(|(id, g)| id.map(|id| (id, g)))
    })
}

fn passwd_gid_of(table: Option<&str>, uid: u32) -> Option<u32> {
    table?.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid))
            .then(|| f[3].parse().ok())
            .flatten()
    })
}

/// Resolves the image's `User` ("uid", "uid:gid", "name", "name:group") to numbers.
fn resolve_user(user: &str, layers: &[PathBuf]) -> Result<(u32, u32), ConfigError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let passwd = image_file(layers, "etc/passwd");
    let group = image_file(layers, "etc/group");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (uid, passwd_gid_of(passwd.as_deref(), uid)),
        Err(_) => {
            lookup(passwd.as_deref(), u).ok_or_else(|| ConfigError::UnknownUser(u.to_string()))?
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup(group.as_deref(), g)
                .map(|(gid, _)| gid)
                .ok_or_else(|| ConfigError::UnknownGroup(g.to_string()))?,
        },
        None => primary.unwrap_or(0),
    };
    Ok((uid, gid))
}

/// The image config fields the process depends on.
#[derive(Clone, Debug, Default)]
pub struct ImageDefaults {
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Cmd.
    pub cmd: Vec<String>,
    /// Env, `KEY=value`.
    pub env: Vec<String>,
    /// WorkingDir.
    pub working_dir: String,
    /// User.
    pub user: String,
}

impl ImageDefaults {
    /// Reads them from an OCI image configuration.
    pub fn from_config(config: &oci_spec::image::ImageConfiguration) -> Self {
        let c = config.config().clone().unwrap_or_default();
        ImageDefaults {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            user: c.user().clone().unwrap_or_default(),
        }
    }
}

/// Where `env[].valueFrom` and `envFrom` read from: the pod's ConfigMaps, Secrets and fields.
pub trait EnvSources {
    /// A ConfigMap's data in the pod's namespace.
    fn config_map(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>>;
    /// A Secret's data (decoded) in the pod's namespace.
    fn secret(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>>;
    /// A `fieldRef` path (`metadata.name`, `status.podIP`, `metadata.labels['app']`…).
    fn field(&self, path: &str) -> Option<String>;
    /// The volume a PersistentVolumeClaim of the pod's namespace is bound to, or why it
    /// cannot be used yet.
    fn claim(&self, name: &str) -> Result<super::volumes::ClaimVolume, super::volumes::ClaimWait> {
        Err(super::volumes::ClaimWait::NotFound(name.to_string()))
    }
    /// A token of the pod's ServiceAccount, bound to the pod, valid for about `seconds`.
    fn service_account_token(&self, seconds: i64) -> Result<String, ConfigError> {
        let _ = seconds;
        Err(ConfigError::Token("no ServiceAccount tokens here".into()))
    }
    /// The variables kubelet sets from Services before the container's own (the
    /// `kubernetes` Service's `KUBERNETES_SERVICE_HOST`…).
    fn service_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The variables kubelet derives from a Service (Docker links): `<NAME>_SERVICE_HOST`,
/// `<NAME>_SERVICE_PORT`, `<NAME>_SERVICE_PORT_<PORT NAME>`, `<NAME>_PORT` and
/// `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`; `ports` as (name, port, protocol).
pub fn service_link_env(
    service: &str,
    ip: &str,
    ports: &[(String, u16, String)],
) -> Vec<(String, String)> {
    let name = service.to_ascii_uppercase().replace('-', "_");
    let mut env = vec![(format!("{name}_SERVICE_HOST"), ip.to_string())];
    let Some((_, first, first_proto)) = ports.first() else {
        return env;
    };
    env.push((format!("{name}_SERVICE_PORT"), first.to_string()));
    for (port_name, port, _) in ports.iter().filter(|p| !p.0.is_empty()) {
        let port_name = port_name.to_ascii_uppercase().replace('-', "_");
        env.push((format!("{name}_SERVICE_PORT_{port_name}"), port.to_string()));
    }
    let url = |port: u16, proto: &str| format!("{}://{ip}:{port}", proto.to_ascii_lowercase());
    env.push((format!("{name}_PORT"), url(*first, first_proto)));
    for (_, port, proto) in ports {
        let prefix = format!("{name}_PORT_{port}_{}", proto.to_ascii_uppercase());
        env.push((prefix.clone(), url(*port, proto)));
        env.push((format!("{prefix}_PROTO"), proto.to_ascii_lowercase()));
        env.push((format!("{prefix}_PORT"), port.to_string()));
        env.push((format!("{prefix}_ADDR"), ip.to_string()));
    }
    env
}

/// No sources (containers that use none).
pub struct NoSources;

impl EnvSources for NoSources {
    fn config_map(&self, _: &str) -> Option<std::collections::BTreeMap<String, String>> {
        None
    }
    fn secret(&self, _: &str) -> Option<std::collections::BTreeMap<String, String>> {
        None
    }
    fn field(&self, _: &str) -> Option<String> {
        None
    }
}

/// The container's own variables in order — `envFrom` first, then `env` — with `valueFrom`
/// resolved and literal values expanded against the variables before them, as kubelet does.
/// A missing ConfigMap, Secret or key (not `optional`) is an error in kubelet's words.
pub fn pod_env(
    container: &Container,
    sources: &dyn EnvSources,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env = EnvList::default();
    for (k, v) in sources.service_env() {
        env.set(k, v);
    }
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        for (k, v) in env_from(from, sources)? {
            env.set(format!("{prefix}{k}"), v);
        }
    }
    for e in container.env.as_deref().unwrap_or_default() {
        let value = match &e.value_from {
            None => expand(e.value.as_deref().unwrap_or_default(), &env.vars),
            Some(src) => match value_from(&e.name, src, sources)? {
                Some(v) => v,
                None => continue,
            },
        };
        env.set(e.name.clone(), value);
    }
    Ok(env.out)
}

/// Variables in order of first definition, a later definition replacing the value.
#[derive(Default)]
struct EnvList {
    /// The variables defined so far, for `$(VAR)` expansion.
    vars: HashMap<String, String>,
    out: Vec<(String, String)>,
}

impl EnvList {
    fn set(&mut self, k: String, v: String) {
        self.vars.insert(k.clone(), v.clone());
        match self.out.iter_mut().find(|(ok, _)| *ok == k) {
            Some(slot) => slot.1 = v,
            None => self.out.push((k, v)),
        }
    }
}

/// The variables of one `envFrom` source (none for an optional one that is missing).
fn env_from(
    from: &EnvFromSource,
    sources: &dyn EnvSources,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let (data, what, name, optional) = if let Some(r) = &from.config_map_ref {
        (
            sources.config_map(&r.name),
            "configmap",
            r.name.clone(),
            r.optional.unwrap_or(false),
        )
    } else if let Some(r) = &from.secret_ref {
        (
            sources.secret(&r.name),
            "secret",
            r.name.clone(),
            r.optional.unwrap_or(false),
        )
    } else {
        return Ok(BTreeMap::new());
    };
    match data {
        Some(d) => Ok(d),
        None if optional => Ok(BTreeMap::new()),
        None => Err(ConfigError::NotFound { kind: what, name }),
    }
}

/// The value of the variable `name` from its `valueFrom` (`None`: an optional key that is
/// missing, the variable is left out).
fn value_from(
    name: &str,
    src: &EnvVarSource,
    sources: &dyn EnvSources,
) -> Result<Option<String>, ConfigError> {
    if let Some(r) = &src.config_map_key_ref {
        key_of(
            sources.config_map(&r.name),
            ("configmap", "ConfigMap"),
            &r.name,
            &r.key,
            r.optional.unwrap_or(false),
        )
    } else if let Some(r) = &src.secret_key_ref {
        key_of(
            sources.secret(&r.name),
            ("secret", "Secret"),
            &r.name,
            &r.key,
            r.optional.unwrap_or(false),
        )
    } else if let Some(f) = &src.field_ref {
        sources
            .field(&f.field_path)
            .map(Some)
            .ok_or_else(|| ConfigError::UnsupportedFieldRef(f.field_path.clone()))
    } else {
        Err(ConfigError::UnsupportedValueFrom(name.to_owned()))
    }
}

/// `key` of a ConfigMap's or Secret's `data`; `kind` is how errors name the object (the
/// `NotFound` kind, the `MissingKey` object).
fn key_of(
    data: Option<BTreeMap<String, String>>,
    kind: (&'static str, &str),
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, ConfigError> {
    match data.map(|d| d.get(key).cloned()) {
        Some(Some(v)) => Ok(Some(v)),
        _ if optional => Ok(None),
        Some(None) => Err(ConfigError::MissingKey {
            key: key.to_owned(),
            object: format!("{} {name}", kind.1),
        }),
        None => Err(ConfigError::NotFound {
            kind: kind.0,
            name: name.to_owned(),
        }),
    }
}

/// Decides the process of `container` in a pod named `hostname` whose security context is
/// `pod_security`.
pub fn process(
    container: &Container,
    pod_security: Option<&PodSecurityContext>,
    image: &ImageDefaults,
    layers: &[PathBuf],
    hostname: &str,
    sources: &dyn EnvSources,
) -> Result<Process, ConfigError> {
    // Environment: the pod's variables, each expanded against those before it.
    let pod_env = pod_env(container, sources)?;
    let vars: HashMap<String, String> = pod_env.iter().cloned().collect();
    let env = environment(image, pod_env, hostname);
    let argv = argv(container, image, &vars)?;
    let cwd = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !Path::new(&cwd).is_absolute() {
        return Err(ConfigError::RelativeWorkingDir(cwd));
    }
    let (uid, gid) = user(container, pod_security, image, layers)?;
    // The pod's supplemental groups, and its fsGroup (its volumes' group), as kubelet adds it.
    let additional_gids = pod_security
        .map(|s| {
            let groups = s.supplemental_groups.iter().flatten().chain(&s.fs_group);
            groups.map(|g| *g as u32).collect()
        })
        .unwrap_or_default();
    let sc = container.security_context.as_ref();
    Ok(Process {
        args: argv,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd,
        uid,
        gid,
        additional_gids,
        dropped_capabilities: capabilities(container, |c| c.drop.as_ref()),
        added_capabilities: capabilities(container, |c| c.add.as_ref()),
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        read_only_root: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        privileged: sc.and_then(|s| s.privileged) == Some(true),
        unmasked_proc: sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked"),
        sysctls: pod_security
            .and_then(|s| s.sysctls.as_ref())
            .into_iter()
            .flatten()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
        seccomp: seccomp(container, pod_security),
    })
}

/// The container's `seccompProfile` (the pod's when it says none): `RuntimeDefault` filters,
/// `Localhost` filters with the admin's profile (loaded by the worker), `Unconfined` does not.
/// Nothing said is `RuntimeDefault`, as kubelet's `--seccomp-default` (and Docker, and
/// podman) run containers: Kubernetes' own default, unconfined, leaves `keyctl`, `bpf`,
/// `userfaultfd`, `unshare` and the like — the host kernel's most exploited entry points — open
/// to every container.
fn seccomp(
    container: &Container,
    pod_security: Option<&PodSecurityContext>,
) -> Option<crate::runtime::oci::Seccomp> {
    use crate::runtime::oci::Seccomp;
    let Some(profile) = container
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_security.and_then(|s| s.seccomp_profile.as_ref()))
    else {
        return Some(Seccomp::RuntimeDefault);
    };
    match profile.type_.as_str() {
        "RuntimeDefault" => Some(Seccomp::RuntimeDefault),
        "Localhost" => Some(Seccomp::Localhost(
            profile.localhost_profile.clone().unwrap_or_default(),
        )),
        _ => None,
    }
}

/// `capabilities.drop` or `.add` as `CAP_…` names (Kubernetes writes them without the
/// prefix), `ALL` kept.
fn capabilities(
    container: &Container,
    list: impl Fn(&k8s_openapi::api::core::v1::Capabilities) -> Option<&Vec<String>>,
) -> Vec<String> {
    let names = container
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(list);
    names
        .into_iter()
        .flatten()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c == "ALL" || c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            }
        })
        .collect()
}

/// The image's environment overridden by the pod's, with a default `PATH` and `HOSTNAME`.
fn environment(
    image: &ImageDefaults,
    pod_env: Vec<(String, String)>,
    hostname: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = image
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    for (k, v) in pod_env {
        match env.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    if !env.iter().any(|(k, _)| k == "HOSTNAME") {
        env.push(("HOSTNAME".into(), hostname.into()));
    }
    env
}

/// `command` and `args` (expanded) over the image's entrypoint and cmd, as Kubernetes combines
/// them.
fn argv(
    container: &Container,
    image: &ImageDefaults,
    vars: &HashMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    let expanded = |list: &Option<Vec<String>>| -> Vec<String> {
        list.as_deref()
            .unwrap_or_default()
            .iter()
            .map(|s| expand(s, vars))
            .collect()
    };
    let command = expanded(&container.command);
    let args = expanded(&container.args);
    let argv: Vec<String> = if !command.is_empty() {
        command.into_iter().chain(args).collect()
    } else if container.args.is_some() {
        image.entrypoint.iter().cloned().chain(args).collect()
    } else {
        image.entrypoint.iter().chain(&image.cmd).cloned().collect()
    };
    if argv.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    Ok(argv)
}

/// The uid and gid: the image's user (resolved in its own `/etc/passwd`), overridden by
/// `runAsUser` (with that user's group from the image) and `runAsGroup` — the container's
/// over the pod's, as kubelet merges them. With `runAsNonRoot`, uid 0 is refused, and so is an
/// image user given by name with no `runAsUser` (kubelet cannot verify it; neither do we).
fn user(
    container: &Container,
    pod: Option<&PodSecurityContext>,
    image: &ImageDefaults,
    layers: &[PathBuf],
) -> Result<(u32, u32), ConfigError> {
    let sc = container.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|p| p.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(pod.and_then(|p| p.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    let (mut uid, mut gid) = resolve_user(&image.user, layers)?;
    if let Some(u) = run_as_user {
        uid = u as u32;
        gid = passwd_gid_of(image_file(layers, "etc/passwd").as_deref(), uid).unwrap_or(0);
    }
    if let Some(g) = run_as_group {
        gid = g as u32;
    }
    if non_root {
        let image_uid = image.user.split(':').next().unwrap_or_default();
        if run_as_user.is_none() && !image_uid.is_empty() && image_uid.parse::<u32>().is_err() {
            return Err(ConfigError::NonNumericUser(image.user.clone()));
        }
        if uid == 0 {
            return Err(ConfigError::RunsAsRoot);
        }
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubernetes_service_gives_kubelets_variables() {
        let env = service_link_env(
            "kubernetes",
            "10.43.0.1",
            &[("https".into(), 443, "TCP".into())],
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.43.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP"), Some("tcp://10.43.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PROTO"), Some("tcp"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.43.0.1"));
        assert_eq!(env.len(), 8);
    }
    use k8s_openapi::api::core::v1::EnvVar;

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/bin".into(), "GREETING=image".into()],
            working_dir: "/app".into(),
            user: String::new(),
        }
    }

    #[test]
    fn command_and_args_merge_like_kubernetes() {
        let c = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "c".into(),
            command: command.map(|v| v.into_iter().map(String::from).collect()),
            args: args.map(|v| v.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let p = |c: &Container| {
            process(c, None, &image(), &[], "h", &NoSources)
                .unwrap()
                .args
        };
        assert_eq!(p(&c(None, None)), vec!["/entry", "default"]);
        assert_eq!(p(&c(None, Some(vec!["x"]))), vec!["/entry", "x"]);
        assert_eq!(p(&c(Some(vec!["sh"]), None)), vec!["sh"]);
        assert_eq!(
            p(&c(Some(vec!["sh"]), Some(vec!["-c", "y"]))),
            vec!["sh", "-c", "y"]
        );
    }

    #[test]
    fn env_overrides_and_expands() {
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                EnvVar {
                    name: "GREETING".into(),
                    value: Some("pod".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "MSG".into(),
                    value: Some("$(GREETING) and $$(GREETING) and $(NOPE)".into()),
                    ..Default::default()
                },
            ]),
            args: Some(vec!["$(MSG)".into()]),
            ..Default::default()
        };
        let p = process(&c, None, &image(), &[], "h", &NoSources).unwrap();
        assert!(p.env.contains(&"GREETING=pod".to_string()));
        assert!(p
            .env
            .contains(&"MSG=pod and $(GREETING) and $(NOPE)".to_string()));
        assert!(p.env.contains(&"PATH=/bin".to_string()));
        assert_eq!(p.args, vec!["/entry", "pod and $(GREETING) and $(NOPE)"]);
        assert_eq!(p.cwd, "/app");
    }

    #[test]
    fn pod_security_context_applies_and_the_containers_wins() {
        use k8s_openapi::api::core::v1::SecurityContext;
        let pod = PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            supplemental_groups: Some(vec![4000, 5000]),
            ..Default::default()
        };
        let mut c = Container::default();
        let p = process(&c, Some(&pod), &image(), &[], "h", &NoSources).unwrap();
        assert_eq!(
            (p.uid, p.gid, p.additional_gids),
            (1000, 3000, vec![4000, 5000])
        );
        c.security_context = Some(SecurityContext {
            run_as_user: Some(2000),
            ..Default::default()
        });
        let p = process(&c, Some(&pod), &image(), &[], "h", &NoSources).unwrap();
        assert_eq!((p.uid, p.gid), (2000, 3000));
    }

    #[test]
    fn run_as_non_root_refuses_root_and_unverifiable_users() {
        let non_root = PodSecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        };
        let c = Container::default();
        let e = process(&c, Some(&non_root), &image(), &[], "h", &NoSources).unwrap_err();
        assert_eq!(
            e.to_string(),
            "container has runAsNonRoot and image will run as root"
        );
        let mut named = image();
        named.user = "app".into();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "app:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        let layers = vec![dir.path().to_path_buf()];
        let e = process(&c, Some(&non_root), &named, &layers, "h", &NoSources).unwrap_err();
        assert!(e.to_string().contains("non-numeric user (app)"), "{e}");
        let with_user = PodSecurityContext {
            run_as_user: Some(1000),
            ..non_root
        };
        let p = process(&c, Some(&with_user), &named, &layers, "h", &NoSources).unwrap();
        assert_eq!(p.uid, 1000);
    }

    #[test]
    fn user_names_resolve_in_the_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let layers = vec![dir.path().to_path_buf()];
        assert_eq!(resolve_user("app", &layers).unwrap(), (1000, 1001));
        assert_eq!(resolve_user("app:staff", &layers).unwrap(), (1000, 50));
        assert_eq!(resolve_user("7:8", &layers).unwrap(), (7, 8));
        assert!(resolve_user("nobody", &layers)
            .unwrap_err()
            .to_string()
            .contains("nobody"));
    }
}
