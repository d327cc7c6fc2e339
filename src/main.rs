//! The `skiff` binary: command-line parsing and wiring, nothing else.
//!
//! `skiff server` starts the daemon: the store, the control plane (`skiff_controller`), the
//! node agent (`skiff_agent`) and the images folder. `skiff shim` is the per-container
//! process the agent starts; it must run before any thread exists, so it is dispatched first.

#![forbid(unsafe_code)]

mod cluster;
mod config;
mod get;
mod node;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "A single-node, declarative container orchestrator: Kubernetes YAML in, containers out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of `ServerArgs` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the daemon: store, controllers, node agent, manifests and images folders.
    Server(config::ServerArgs),
    /// Work with the image store.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show objects from the store (`skiff get pods`, `skiff get deploy web -o yaml`).
    Get(get::GetArgs),
    /// Stop the daemon, every container and shim of a data directory, and remove their
    /// mounts, cgroups and runtime state.
    Killall(DataDirArg),
    /// Manage API tokens (e.g. a CI pipeline's token for one namespace).
    #[command(subcommand)]
    Token(TokenCommand),
    /// (internal) The per-container shim the agent starts.
    #[command(hide = true)]
    Shim {
        /// Remove the container's libcontainer state and cgroups instead of running it.
        #[arg(long)]
        delete: bool,
        /// Run COMMAND inside the running container (for `kubectl exec`).
        #[arg(long)]
        exec: bool,
        /// With --exec: give COMMAND a terminal; stdin carries frames (input, window sizes).
        #[arg(long, requires = "exec")]
        tty: bool,
        /// The container's directory.
        dir: PathBuf,
        /// The command for --exec.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import a `docker save` or OCI archive.
    Import {
        /// The archive.
        file: PathBuf,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// List images.
    Ls {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Pull an image from its registry (mirrors, credentials and TLS from registries.yaml).
    Pull {
        /// The image reference ("nginx:1.27", "registry.lan:5000/app@sha256:…").
        reference: String,
        /// k3s-style registries.yaml.
        #[arg(long, default_value = "/etc/skiff/registries.yaml")]
        registries: PathBuf,
        /// The platform to pick from a multi-arch index, as os/arch[/variant].
        #[arg(long)]
        platform: Option<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Remove an image (by name: the name; the image goes with its last name) and the layers
    /// nothing else uses. Refused while a container uses it.
    Rm {
        /// Name, `name@sha256:…` or image id.
        reference: String,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Remove every image no container uses, and their layers.
    Prune {
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
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

#[derive(Args, Clone)]
struct DataDirArg {
    /// The data directory.
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    // The shim first: it must stay single-threaded (no logging threads, no runtime).
    if let Command::Shim {
        delete,
        exec,
        tty,
        dir,
        command,
    } = &cli.command
    {
        let code = if *exec {
            skiff_agent::runtime::exec::main(dir, command.clone(), *tty)
        } else if *delete {
            match skiff_agent::runtime::read_json::<skiff_agent::runtime::ContainerMeta>(
                &dir.join("meta.json"),
            ) {
                Some(meta) => {
                    skiff_agent::runtime::shim::delete_container(&meta);
                    0
                }
                None => 1,
            }
        } else {
            skiff_agent::runtime::shim::main(dir)
        };
        std::process::exit(code);
    }
    init_logging();
    let result = match cli.command {
        Command::Server(args) => server(args),
        Command::Image(ImageCommand::Import { file, data }) => image_import(&file, &data.data_dir),
        Command::Image(ImageCommand::Ls { data }) => image_ls(&data.data_dir),
        Command::Image(ImageCommand::Pull {
            reference,
            registries,
            platform,
            data,
        }) => skiff_agent::image::cli::pull(
            &reference,
            &registries,
            platform.as_deref(),
            &data.data_dir,
        ),
        Command::Image(ImageCommand::Rm { reference, data }) => {
            skiff_agent::image::cli::rm(&reference, &data.data_dir)
        }
        Command::Image(ImageCommand::Prune { data }) => {
            skiff_agent::image::cli::prune(&data.data_dir)
        }
        Command::Get(args) => get::run(&args),
        Command::Killall(data) => killall(&data.data_dir),
        Command::Token(cmd) => token(cmd),
        Command::Shim { .. } => unreachable!("dispatched above"),
    };
    if let Err(e) = result {
        eprintln!("skiff: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn server(args: config::ServerArgs) -> Result<()> {
    let config = args.resolve()?;
    let layout = skiff_agent::runtime::Layout::new(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let run_dir = layout.data_dir.join("run");
    std::fs::create_dir_all(&run_dir)?;
    let me = std::process::id() as i32;
    std::fs::write(
        skiff_agent::runtime::killall::daemon_pid_file(&layout),
        format!(
            "{me} {}\n",
            skiff_agent::runtime::process_start_ticks(me).unwrap_or(0)
        ),
    )?;
    let store = Arc::new(
        skiff_controller::model::store::Store::open(&layout.data_dir)
            .context("opening the store")?,
    );
    let images = Arc::new(
        skiff_agent::image::ImageStore::open(&layout.data_dir)
            .context("opening the image store")?,
    );
    let puller = skiff_agent::image::Puller::new((*images).clone())
        .with_registries(config.registries.clone())
        .without_default_registry_endpoint(config.offline_registries);
    // A broken registries.yaml is reported now (pulls report it again until it is fixed).
    if let Err(e) = puller.registries() {
        tracing::error!("{e}");
    }
    let runtime = skiff_agent::runtime::handle::Runtime::new(layout.clone())?;
    config.network.save(&layout.data_dir)?;
    let network = Arc::new(skiff_agent::network::Network::new(
        config.network.clone(),
        &layout.data_dir,
    ));
    network.setup_host().map_err(|e| {
        anyhow::anyhow!(
            "setting up pod networking ({}, {}): {e}",
            config.network.bridge,
            config.network.cluster_cidr
        )
    })?;
    tracing::info!(
        data_dir = %layout.data_dir.display(),
        manifests = %config.manifests.display(),
        images = %config.images.display(),
        version = env!("CARGO_PKG_VERSION"),
        "skiff server starting"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let node = Arc::new(node::AgentNode {
            layout: layout.clone(),
            pod_network: config.network.cluster_cidr,
        });
        let control = skiff_controller::start(
            store,
            node,
            skiff_controller::Config {
                node_name: config.node_name.clone(),
                api: skiff_controller::api::ApiConfig {
                    listen: config.api,
                    tls_sans: config.tls_sans.clone(),
                    kubeconfig: config.kubeconfig.clone(),
                    data_dir: layout.data_dir.clone(),
                },
                manifests: config.manifests.clone(),
                ingress: config.ingress,
            },
            shutdown.clone(),
        )
        .await?;
        let mut tasks = control.tasks;
        let imported = Arc::new(tokio::sync::Notify::new());
        let (first_pass_tx, first_pass) = tokio::sync::oneshot::channel();
        tasks.push(tokio::spawn(skiff_agent::image::folder::run(
            images.clone(),
            config.images.clone(),
            run_dir.join("images-folder.json"),
            imported.clone(),
            first_pass_tx,
            shutdown.clone(),
        )));
        // Archives already in the images folder are imported before pods are started (for a
        // while at most: a huge archive must not hold the agent back).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), first_pass).await;
        let node_client = skiff_controller::api::local::client(control.api, "skiff-node");
        let (cluster, wake) = cluster::KubeCluster::start(node_client, control.view, shutdown.clone());
        tasks.push(wake);
        tasks.push(tokio::spawn(skiff_agent::network::dns::serve(
            std::net::SocketAddr::new(config.network.cluster_cidr.gateway().into(), 53),
            network.records.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(
            skiff_agent::network::ServiceProxy::new(cluster.clone(), network.clone()).run(shutdown.clone()),
        ));
        let agent = skiff_agent::Agent::new(cluster, runtime, puller, imported).with_network(network);
        tasks.push(tokio::spawn(agent.run(shutdown.clone())));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping (containers keep running)"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping (containers keep running)"),
        }
        let _ = shutdown_tx.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), futures_join(tasks)).await;
        let _ = std::fs::remove_file(run_dir.join("skiff.pid"));
        tracing::info!("skiff server stopped");
        Ok::<(), anyhow::Error>(())
    })?;
    // Tasks may still hold blocking threads (a slow import); do not wait for them.
    rt.shutdown_background();
    Ok(())
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

fn image_import(file: &Path, data_dir: &Path) -> Result<()> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let store =
        skiff_agent::image::ImageStore::open(data_dir).context("opening the image store")?;
    let imported = store
        .import_archive(file)
        .with_context(|| format!("importing {}", file.display()))?;
    for image in imported {
        let names = if image.names.is_empty() {
            "<no name>".to_string()
        } else {
            image.names.join(", ")
        };
        println!("imported {} {}", image.id, names);
    }
    Ok(())
}

fn image_ls(data_dir: &Path) -> Result<()> {
    let store =
        skiff_agent::image::ImageStore::open(data_dir).context("opening the image store")?;
    println!("{:<60} {:<20} LAYERS", "NAME", "ID");
    for image in store.list()? {
        let short = image
            .id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        let names = if image.names.is_empty() {
            vec!["<none>".to_string()]
        } else {
            image.names.clone()
        };
        for name in names {
            println!("{name:<60} {short:<20} {}", image.layers.len());
        }
    }
    Ok(())
}

fn killall(data_dir: &Path) -> Result<()> {
    if !data_dir.exists() {
        bail!("{} does not exist", data_dir.display());
    }
    let summary = skiff_agent::runtime::killall::killall(data_dir)?;
    println!(
        "{}stopped {} container(s), removed {} container director{}",
        if summary.daemon_stopped {
            "stopped the daemon, "
        } else {
            ""
        },
        summary.stopped,
        summary.removed,
        if summary.removed == 1 { "y" } else { "ies" }
    );
    Ok(())
}

fn token(cmd: TokenCommand) -> Result<()> {
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
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(serde_yaml_ng::to_string(&doc)?.as_bytes())?;
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
