//! `skiff get`: objects from the store, as a table or as Kubernetes JSON/YAML. Reads the data
//! directory directly, so it works whether or not the daemon runs.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use skiff_controller::{kinds, store::Store};

/// Arguments of `skiff get`.
#[derive(Args)]
pub struct GetArgs {
    /// The kind: pods, deployments, replicasets, configmaps, secrets, namespaces (or short names).
    kind: String,
    /// One object's name.
    name: Option<String>,
    /// The namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// All namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format: json or yaml (default: a table).
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// The data directory.
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
}

fn age(obj: &Value) -> String {
    let Some(t) = obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let s = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn pod_status(pod: &Value) -> String {
    if pod["metadata"].get("deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    for c in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            return r.into();
        }
        if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            return r.into();
        }
    }
    pod["status"]["phase"].as_str().unwrap_or("Pending").into()
}

fn row(kind: &str, o: &Value) -> Vec<String> {
    let name = o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let n = |v: &Value| v.as_i64().unwrap_or(0).to_string();
    match kind {
        "Pod" => {
            let cs = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = cs
                .iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum();
            vec![
                name,
                format!("{ready}/{total}"),
                pod_status(o),
                restarts.to_string(),
                age(o),
            ]
        }
        "Deployment" => vec![
            name,
            format!(
                "{}/{}",
                n(&o["status"]["readyReplicas"]),
                n(&o["spec"]["replicas"])
            ),
            n(&o["status"]["updatedReplicas"]),
            n(&o["status"]["availableReplicas"]),
            age(o),
        ],
        "ReplicaSet" => vec![
            name,
            n(&o["spec"]["replicas"]),
            n(&o["status"]["replicas"]),
            n(&o["status"]["readyReplicas"]),
            age(o),
        ],
        "ConfigMap" => vec![
            name,
            (o["data"].as_object().map_or(0, |m| m.len())
                + o["binaryData"].as_object().map_or(0, |m| m.len()))
            .to_string(),
            age(o),
        ],
        "Secret" => vec![
            name,
            o["type"].as_str().unwrap_or("Opaque").into(),
            o["data"].as_object().map_or(0, |m| m.len()).to_string(),
            age(o),
        ],
        "Namespace" => vec![
            name,
            o["status"]["phase"].as_str().unwrap_or("Active").into(),
            age(o),
        ],
        _ => vec![name, age(o)],
    }
}

fn header(kind: &str) -> Vec<&'static str> {
    match kind {
        "Pod" => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "Deployment" => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "ReplicaSet" => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "ConfigMap" => vec!["NAME", "DATA", "AGE"],
        "Secret" => vec!["NAME", "TYPE", "DATA", "AGE"],
        "Namespace" => vec!["NAME", "STATUS", "AGE"],
        _ => vec!["NAME", "AGE"],
    }
}

/// Runs `skiff get`.
pub fn run(args: &GetArgs) -> Result<()> {
    let Some(info) = kinds::by_name(&args.kind) else {
        bail!("the server doesn't have a resource type {:?}", args.kind);
    };
    if !args.data_dir.join("state.db").exists() {
        bail!("no skiff store in {}", args.data_dir.display());
    }
    let store = Store::open(&args.data_dir).context("opening the store")?;
    let ns = if !info.namespaced || args.all_namespaces {
        None
    } else {
        Some(args.namespace.as_str())
    };
    let mut objects: Vec<Value> = store
        .list(info.kind, ns)
        .iter()
        .map(|o| (**o).clone())
        .collect();
    if let Some(name) = &args.name {
        objects.retain(|o| o["metadata"]["name"].as_str() == Some(name));
        if objects.is_empty() {
            bail!(
                "Error from server (NotFound): {} {:?} not found",
                info.plural,
                name
            );
        }
    }
    let single = args.name.is_some();
    let value = if single {
        objects[0].clone()
    } else {
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": objects})
    };
    match args.output.as_deref() {
        Some("json") => println!("{}", serde_json::to_string_pretty(&value)?),
        Some("yaml") => print!("{}", serde_yaml_ng::to_string(&value)?),
        Some(other) => bail!("unknown output format {other:?} (json, yaml)"),
        None => {
            if objects.is_empty() {
                eprintln!(
                    "No resources found{}.",
                    ns.map(|n| format!(" in {n} namespace")).unwrap_or_default()
                );
                return Ok(());
            }
            let mut head: Vec<String> = header(info.kind).into_iter().map(String::from).collect();
            let mut rows: Vec<Vec<String>> = objects.iter().map(|o| row(info.kind, o)).collect();
            if ns.is_none() && info.namespaced {
                head.insert(0, "NAMESPACE".into());
                for (r, o) in rows.iter_mut().zip(&objects) {
                    r.insert(
                        0,
                        o["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                    );
                }
            }
            let mut widths: Vec<usize> = head.iter().map(String::len).collect();
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&head).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
    }
    Ok(())
}
