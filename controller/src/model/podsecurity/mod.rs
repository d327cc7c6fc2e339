//! Pod Security admission as Kubernetes defines it: the Pod Security Standards' levels
//! (`privileged`, `baseline`, `restricted`), chosen per namespace by the labels
//! `pod-security.kubernetes.io/{enforce,warn,audit}` and their `-version`, evaluated by the
//! table of pure checks in [`checks`] (upstream's `pod-security-admission` "policy" package,
//! check for check). Who is held to which level is the API server's decision
//! (`api/admission.rs`); this module only says what a pod spec violates.

use std::fmt;

use serde_json::Value;

pub mod checks;

use super::validate::FieldError;

/// The newest Kubernetes minor version whose checks are implemented: what `latest` means.
pub const LATEST_MINOR: u32 = 37;

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Anything goes.
    Privileged,
    /// Known privilege escalations refused.
    Baseline,
    /// Hardened.
    Restricted,
}

impl Level {
    /// From a label value.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a version (`None`: latest; `Some(n)`: `v1.n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version's minor number, `None` for `latest`.
    pub version: Option<u32>,
}

impl LevelVersion {
    /// `level:latest`.
    pub const fn latest(level: Level) -> Self {
        LevelVersion {
            level,
            version: None,
        }
    }

    fn minor(&self) -> u32 {
        self.version.unwrap_or(LATEST_MINOR).min(LATEST_MINOR)
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            None => write!(f, "{}:latest", self.level.as_str()),
            Some(m) => write!(f, "{}:v1.{m}", self.level.as_str()),
        }
    }
}

/// What a namespace asks for: the enforced level, and the ones that only warn or audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Refused when violated.
    pub enforce: LevelVersion,
    /// Returned to the client as a warning.
    pub warn: LevelVersion,
    /// Logged by the daemon.
    pub audit: LevelVersion,
}

/// The label prefix.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

fn parse_version(s: &str) -> Option<Option<u32>> {
    if s == "latest" {
        return Some(None);
    }
    s.strip_prefix("v1.")?.parse::<u32>().ok().map(Some)
}

/// The namespace's policy from its labels, starting from `default_enforce` (warn and audit
/// default to privileged). Invalid values are errors (the namespace write refuses them); for
/// a namespace that somehow has one, enforce fails closed to `restricted` and warn/audit fail
/// open, as upstream's `PolicyToEvaluate`.
pub fn policy(labels: &Value, default_enforce: LevelVersion) -> (Policy, Vec<FieldError>) {
    let mut p = Policy {
        enforce: default_enforce,
        warn: LevelVersion::latest(Level::Privileged),
        audit: LevelVersion::latest(Level::Privileged),
    };
    let mut errors = Vec::new();
    let label = |mode: &str, suffix: &str| {
        labels[format!("{LABEL_PREFIX}{mode}{suffix}")]
            .as_str()
            .map(String::from)
    };
    let mut has_enforce = false;
    let mut has_warn = (false, false);
    for (mode, fail) in [
        ("enforce", Level::Restricted),
        ("audit", Level::Privileged),
        ("warn", Level::Privileged),
    ] {
        let slot = match mode {
            "enforce" => &mut p.enforce,
            "audit" => &mut p.audit,
            _ => &mut p.warn,
        };
        if let Some(v) = label(mode, "") {
            match Level::parse(&v) {
                Some(l) => {
                    slot.level = l;
                    has_enforce |= mode == "enforce";
                }
                None => {
                    slot.level = fail;
                    errors.push(label_error(
                        mode,
                        "",
                        &v,
                        "must be one of privileged, baseline, restricted",
                    ));
                }
            }
            has_warn.0 |= mode == "warn";
        }
        if let Some(v) = label(mode, "-version") {
            match parse_version(&v) {
                Some(version) => slot.version = version,
                None => {
                    slot.version = None;
                    errors.push(label_error(
                        mode,
                        "-version",
                        &v,
                        "must be \"latest\" or \"v1.x\"",
                    ));
                }
            }
            has_warn.1 |= mode == "warn";
        }
    }
    // Warn defaults to the enforce level when that is explicitly stricter.
    if !has_warn.0 && has_enforce && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if !has_warn.1 {
            p.warn.version = p.enforce.version;
        }
    }
    (p, errors)
}

fn label_error(mode: &str, suffix: &str, value: &str, what: &str) -> FieldError {
    FieldError {
        field: format!("metadata.labels[{LABEL_PREFIX}{mode}{suffix}]"),
        message: format!("Invalid value: {value:?}: {what}"),
    }
}

/// The namespace's pod security labels, checked (a Namespace write with a bad one is refused).
pub fn validate_labels(labels: &Value) -> Vec<FieldError> {
    policy(labels, LevelVersion::latest(Level::Privileged)).1
}

/// What `spec` (with its pod `meta`) violates at `lv`: (reason, detail) per failed check, in
/// upstream's order. Empty: allowed.
pub fn evaluate(lv: &LevelVersion, meta: &Value, spec: &Value) -> Vec<checks::Violation> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let minor = lv.minor();
    let applies = |c: &checks::Check| c.level <= lv.level && c.since <= minor;
    let overridden: Vec<&str> = checks::CHECKS
        .iter()
        .filter(|c| applies(c))
        .flat_map(|c| c.overrides.iter().copied())
        .collect();
    checks::CHECKS
        .iter()
        .filter(|c| applies(c) && !overridden.contains(&c.id))
        .filter_map(|c| (c.run)(meta, spec, minor))
        .collect()
}

/// Upstream's aggregate: `reason (detail), reason (detail)`.
pub fn describe(violations: &[checks::Violation]) -> String {
    violations
        .iter()
        .map(|(r, d)| {
            if d.is_empty() {
                r.clone()
            } else {
                format!("{r} ({d})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where each kind keeps the pod it makes: `None` for kinds without one. A kind with a pod
/// template is one line here (`spec.template` for Deployment, ReplicaSet, StatefulSet,
/// DaemonSet, Job; `spec.jobTemplate.spec.template` for CronJob).
pub fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The pod (metadata, spec) an object runs, if its kind has one.
pub fn pod_of(obj: &Value) -> Option<(&Value, &Value)> {
    let pointer = template_pointer(obj["kind"].as_str().unwrap_or_default())?;
    let pod = obj.pointer(pointer)?;
    Some((&pod["metadata"], &pod["spec"]))
}

#[cfg(test)]
mod tests;
