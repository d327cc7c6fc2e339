//! `skiff token create|list|revoke`: API tokens, e.g. a CI pipeline's token for one namespace.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::DataDirArg;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it. With --namespace it may act only inside that namespace.
    Create {
        /// Limit the token to this namespace (without it: a cluster-admin token).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Also write a kubeconfig using this token (server and CA from the admin kubeconfig).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// The admin kubeconfig to take the server and CA from.
        #[arg(long, default_value = "/etc/skiff/kubeconfig.yaml")]
        admin_kubeconfig: PathBuf,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// List tokens (ids, scopes; never the secrets).
    List {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (from `skiff token list`).
        id: String,
        #[command(flatten)]
        data: DataDirArg,
    },
}

/// Runs one `skiff token` command.
pub fn run(cmd: TokenCommand) -> Result<()> {
    use skiff_controller::api::auth::Tokens;
    match cmd {
        TokenCommand::Create {
            namespace,
            kubeconfig,
            admin_kubeconfig,
            data,
        } => {
            let tokens = Tokens::open(&data.data_dir).context("opening the token table")?;
            let (id, token) = tokens.create(namespace.as_deref(), None)?;
            if let Some(path) = kubeconfig {
                let admin = std::fs::read_to_string(&admin_kubeconfig).with_context(|| {
                    format!(
                        "reading the admin kubeconfig {}",
                        admin_kubeconfig.display()
                    )
                })?;
                let mut doc: serde_json::Value =
                    serde_yaml_ng::from_str(&admin).context("parsing the admin kubeconfig")?;
                doc["users"] = serde_json::json!([{"name": id, "user": {"token": token}}]);
                doc["contexts"] = serde_json::json!([{"name": "skiff", "context": {"cluster": "skiff", "user": id, "namespace": namespace.clone().unwrap_or_else(|| "default".into())}}]);
                skiff_controller::files::write_private(
                    &path,
                    serde_yaml_ng::to_string(&doc)?.as_bytes(),
                )
                .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("token {id} written into {}", path.display());
            }
            println!("{token}");
        }
        TokenCommand::List { data } => {
            let tokens = Tokens::open(&data.data_dir).context("opening the token table")?;
            println!("{:<32} {:<20} CREATED", "ID", "NAMESPACE");
            for t in tokens.list()? {
                println!(
                    "{:<32} {:<20} {}",
                    t.id,
                    t.namespace.as_deref().unwrap_or("<all: admin>"),
                    t.created
                );
            }
        }
        TokenCommand::Revoke { id, data } => {
            let tokens = Tokens::open(&data.data_dir).context("opening the token table")?;
            if !tokens.revoke(&id)? {
                bail!("no token with id {id:?}");
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}
