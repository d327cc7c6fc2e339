//! Helm charts rendered natively (no helm binary): Go's text/template through the `gotmpl`
//! crate, Sprig's and Helm's functions, values merged as Helm merges them, charts loaded
//! from a directory or a `.tgz` with their subcharts, and `helm template`'s output.
//!
//! Entry points: [`chart::load`], [`values`] (merging, `--set`), [`engine::render`],
//! [`manifests`] / [`template_output`].

#![forbid(unsafe_code)]

pub mod bounds;
pub mod chart;
pub mod crypto;
pub mod engine;
mod extra;
pub mod funcs;
pub mod gotime;
pub mod goyaml;
pub mod repo;
mod rewrite;
mod schema;
pub mod source;
pub mod value;
pub mod values;

pub use chart::{load, Chart};
pub use engine::{render, RenderOptions, Rendered};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("chart: {0}")]
    Chart(String),
    #[error("values: {0}")]
    Values(String),
    #[error("parse error: {0}")]
    Parse(String),
    #[error("render error in {template}: {message}")]
    Render { template: String, message: String },
    #[error("YAML parse error on {template}: {message}")]
    Yaml { template: String, message: String },
}

/// One document of the rendered output, with what Helm reads from its head.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The template it came from (`chart/templates/x.yaml`).
    pub source: String,
    pub content: String,
    pub kind: String,
    /// `helm.sh/hook` annotation, when the document is a hook.
    pub hook: Option<String>,
}

/// Helm's install order of kinds (releaseutil.InstallOrder); unknown kinds go last.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Split rendered files into documents as Helm does (NOTES.txt and partials left out),
/// returning (manifests sorted by install order, hooks sorted the same way).
pub fn manifests(rendered: &[Rendered]) -> Result<(Vec<Manifest>, Vec<Manifest>), Error> {
    let sep = regex::Regex::new(r"(?m)^---[ \t]*").map_err(|e| Error::Parse(e.to_string()))?;
    let mut generic = Vec::new();
    let mut hooks = Vec::new();
    let mut files: Vec<&Rendered> = rendered
        .iter()
        .filter(|r| !r.name.ends_with("NOTES.txt"))
        .filter(|r| !r.name.rsplit('/').next().unwrap_or("").starts_with('_'))
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    for r in files {
        if r.text.trim().is_empty() {
            continue;
        }
        let text = r.text.trim_start();
        for doc in sep.split(text) {
            if doc.trim().is_empty() {
                continue;
            }
            let doc = doc.trim_start().to_string();
            let head: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&doc).map_err(|e| Error::Yaml {
                    template: r.name.clone(),
                    message: e.to_string(),
                })?;
            let kind = head
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("")
                .to_string();
            let hook = head
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get("helm.sh/hook"))
                .and_then(|h| h.as_str())
                .map(str::to_string);
            let m = Manifest {
                source: r.name.clone(),
                content: doc,
                kind,
                hook,
            };
            if m.hook.is_some() {
                hooks.push(m);
            } else {
                generic.push(m);
            }
        }
    }
    let order = |k: &str| INSTALL_ORDER.iter().position(|o| *o == k);
    let by_kind = |a: &Manifest, b: &Manifest| match (order(&a.kind), order(&b.kind)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.kind.cmp(&b.kind),
    };
    generic.sort_by(by_kind);
    hooks.sort_by(by_kind);
    Ok((generic, hooks))
}

/// What `helm template` prints: the release manifest (every manifest as
/// `---\n# Source: <template>\n<document>\n`, trimmed, one newline), then every hook the
/// same way.
pub fn template_output(rendered: &[Rendered]) -> Result<String, Error> {
    let (generic, hooks) = manifests(rendered)?;
    let mut out = format!("{}\n", release_manifest(&generic).trim());
    for m in &hooks {
        push_source(&mut out, m);
    }
    Ok(out)
}

/// A release's `manifest` as Helm records it: every manifest as
/// `---\n# Source: <template>\n<document>\n`, in install order.
pub fn release_manifest(generic: &[Manifest]) -> String {
    let mut manifest = String::new();
    for m in generic {
        push_source(&mut manifest, m);
    }
    manifest
}

fn push_source(out: &mut String, m: &Manifest) {
    out.push_str("---\n# Source: ");
    out.push_str(&m.source);
    out.push('\n');
    out.push_str(&m.content);
    out.push('\n');
}
