//! `skiff get`: objects from the store, as a table or as Kubernetes JSON/YAML. Reads the data
//! directory directly, so it works whether or not the daemon runs.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use skiff_controller::model::{kinds, store::Store};

/// Arguments of `skiff get`.
#[derive(Args, Clone)]
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
    /// Output format: json, yaml or wide (default: a table).
    #[arg(short = 'o', long)]
    output: Option<String>,
    #[arg(skip)]
    wide: bool,
    /// The data directory.
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
}

/// Runs `skiff get`.
pub fn run(args: &GetArgs) -> Result<()> {
    let wide = args.output.as_deref() == Some("wide");
    let args = &GetArgs {
        wide,
        output: if wide { None } else { args.output.clone() },
        ..args.clone()
    };
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
            let refs: Vec<&Value> = objects.iter().collect();
            print!(
                "{}",
                skiff_controller::api::table::render(
                    info.kind,
                    &refs,
                    args.wide,
                    ns.is_none() && info.namespaced
                )
            );
        }
    }
    Ok(())
}
