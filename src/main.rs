//! The `skiff` binary: command-line parsing and wiring, nothing else.
//!
//! `skiff server` starts the daemon: the store, the control plane (`skiff_controller`), the
//! node agent (`skiff_agent`) and the images folder. `skiff shim` is the per-container
//! process the agent starts; it must run before any thread exists, so it is dispatched first.

#![forbid(unsafe_code)]

mod backup;
mod chart;
mod charts;
mod check;
mod cluster;
mod config;
mod get;
mod handover;
mod image;
mod machine;
mod node;
mod server;
mod systemd;
mod token;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
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
    /// Check the configuration, registries.yaml and every file of the manifests folder as
    /// `skiff server` would read them (the same flags), without starting anything.
    CheckConfig(config::ServerArgs),
    /// Work with the image store.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Work with Helm charts (rendered natively, no helm binary).
    #[command(subcommand)]
    Chart(chart::ChartCommand),
    /// Show objects from the store (`skiff get pods`, `skiff get deploy web -o yaml`).
    Get(get::GetArgs),
    /// Stop the daemon, every container and shim of a data directory, and remove their
    /// mounts, cgroups and runtime state.
    Killall(DataDirArg),
    /// Write a backup of a data directory into FILE, while the daemon runs: the store (a
    /// consistent snapshot), the API's CA, keys and tokens, the ACME account, seccomp profiles
    /// and every PersistentVolume directory. FILE is made 0600: it holds every Secret.
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty or new data directory (then start `skiff server` on it).
    Restore(backup::RestoreArgs),
    /// Manage API tokens (e.g. a CI pipeline's token for one namespace).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// (internal) The per-container shim the agent starts.
    #[command(hide = true)]
    Shim {
        /// Remove the container's libcontainer state and cgroups instead of running it.
        #[arg(long)]
        delete: bool,
        /// Make a pod's shared PID namespace and hold it (DIR is the pod's directory).
        #[arg(long, conflicts_with_all = ["delete", "exec"])]
        pid_namespace: bool,
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

#[derive(Args, Clone)]
pub(crate) struct DataDirArg {
    /// The data directory.
    #[arg(long, default_value = "/var/lib/skiff")]
    pub(crate) data_dir: PathBuf,
}

fn main() {
    // A pod's PID namespace holder (`skiff shim --pid-namespace` execs itself under this name).
    let holder = skiff_agent::runtime::pidns::HOLDER_NAME.to_bytes();
    if std::env::args_os()
        .next()
        .is_some_and(|a| a.as_encoded_bytes() == holder)
    {
        skiff_agent::runtime::pidns::hold();
    }
    let cli = Cli::parse();
    // The shim first: it must stay single-threaded (no logging threads, no runtime).
    if let Command::Shim {
        delete,
        pid_namespace,
        exec,
        tty,
        dir,
        command,
    } = &cli.command
    {
        let code = if *pid_namespace {
            skiff_agent::runtime::pidns::main(dir)
        } else if *exec {
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
        Command::Server(args) => server::run(args),
        Command::CheckConfig(args) => check::run(args),
        Command::Image(cmd) => image::run(cmd),
        Command::Get(args) => get::run(&args),
        Command::Chart(cmd) => chart::run(cmd),
        Command::Killall(data) => killall(&data.data_dir),
        Command::Token(cmd) => token::run(cmd),
        Command::Backup(args) => backup::backup(&args),
        Command::Restore(args) => backup::restore(&args),
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if stderr_is_journal() {
        // journald stamps each line itself and reads `<N>` at a line's start as its syslog
        // priority (sd-daemon(3)): no timestamp, no level word, no colours.
        builder
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .event_format(JournalPriority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false)
                    .with_target(false)
                    .with_ansi(false),
            ))
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Whether stderr is connected to journald: `JOURNAL_STREAM` (set by systemd) names its
/// device and inode (systemd.exec(5): compare them, a child may have redirected stderr).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(2) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

/// An event format that starts each line with its syslog priority as `<N>` (sd-daemon(3)).
struct JournalPriority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The syslog priority of a level: err 3, warning 4, info 6, debug 7.
fn syslog_priority(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
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
