//! `skiff chart template`: render a Helm chart offline and print what `helm template` prints.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use skiff_helm::source::{Access, BasicAuth, ChartFetcher, ChartSource};
use skiff_helm::values::{apply_set, merge_into, parse_values, Table};

#[derive(Subcommand)]
pub(crate) enum ChartCommand {
    /// Render a chart (a directory or a .tgz) with its values and print the manifests,
    /// as `helm template` does.
    Template(TemplateArgs),
}

#[derive(Args)]
pub(crate) struct TemplateArgs {
    /// The chart: a directory with Chart.yaml, a packaged .tgz, a chart name in the
    /// repository `--repo` gives, `oci://host/path/name`, or an `https://…/x.tgz` URL.
    chart: String,
    /// The chart repository's URL (its `index.yaml` lists the chart).
    #[arg(long)]
    repo: Option<String>,
    /// The chart version: a version or a constraint as Helm reads it (`1.2.3`, `^1.2`,
    /// `>=1, <2`); none: the latest release. For oci://, the tag.
    #[arg(long)]
    version: Option<String>,
    /// User name for the repository or registry.
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Password for the repository or registry.
    #[arg(long, requires = "username")]
    password: Option<String>,
    /// CA certificates (PEM) to trust for the repository or registry, besides the system's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// oci:// only: talk HTTP, not HTTPS, to the registry.
    #[arg(long)]
    plain_http: bool,
    /// Send the credentials to chart URLs on other hosts than the repository's.
    #[arg(long)]
    pass_credentials: bool,
    /// Keep fetched charts in this folder (content-addressed, as the daemon's cache under
    /// its data dir): an archive there is not downloaded again, and a repository or
    /// registry that cannot be reached gives the chart it gave last time.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// A values file (repeatable; later files win).
    #[arg(short = 'f', long = "values")]
    values: Vec<PathBuf>,
    /// Set a value: `a.b=1,list[0]=x` (repeatable; applied after the values files).
    #[arg(long = "set")]
    set: Vec<String>,
    /// Set a value, always as a string.
    #[arg(long = "set-string")]
    set_string: Vec<String>,
    /// The release name (`.Release.Name`).
    #[arg(long, default_value = "release-name")]
    name: String,
    /// The release namespace (`.Release.Namespace`).
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
}

pub(crate) fn run(cmd: ChartCommand) -> Result<()> {
    match cmd {
        ChartCommand::Template(args) => {
            print!("{}", template(&args)?);
            Ok(())
        }
    }
}

/// The release facts and skiff's real API versions, as `.Capabilities` shows them.
fn options(args: &TemplateArgs) -> skiff_helm::RenderOptions {
    let (kube_version, api_versions) = skiff_controller::controllers::helmchart::capabilities();
    skiff_helm::RenderOptions {
        release_name: args.name.clone(),
        namespace: args.namespace.clone(),
        revision: 1,
        is_upgrade: false,
        kube_version,
        api_versions,
        lookup: None,
    }
}

/// The remote source the arguments name, or `None` for a local chart.
fn source(args: &TemplateArgs) -> Result<Option<ChartSource>> {
    let remote = args.repo.is_some()
        || ["oci://", "https://", "http://"]
            .iter()
            .any(|p| args.chart.starts_with(p));
    if !remote {
        let local_only = [
            ("--version", args.version.is_some()),
            ("--username", args.username.is_some()),
            ("--ca-file", args.ca_file.is_some()),
            ("--insecure-skip-tls-verify", args.insecure_skip_tls_verify),
            ("--plain-http", args.plain_http),
            ("--pass-credentials", args.pass_credentials),
            ("--cache-dir", args.cache_dir.is_some()),
        ];
        if let Some((flag, _)) = local_only.iter().find(|(_, set)| *set) {
            bail!(
                "{flag} is for charts from a repository (--repo) or a registry (oci://); {} is a local chart",
                args.chart
            );
        }
        let path = Path::new(&args.chart);
        if !path.exists() && args.chart.matches('/').count() == 1 && !args.chart.starts_with('.') {
            bail!(
                "no chart at {}: skiff has no named repositories (helm repo add); give the repository's URL with --repo URL and the chart's name",
                args.chart
            );
        }
        return Ok(None);
    }
    let ca_pem = match &args.ca_file {
        Some(f) => {
            Some(std::fs::read(f).with_context(|| format!("reading --ca-file {}", f.display()))?)
        }
        None => None,
    };
    let access = Access {
        auth: match (&args.username, &args.password) {
            (Some(u), Some(p)) => Some(BasicAuth {
                username: u.clone(),
                password: p.clone(),
            }),
            _ => None,
        },
        ca_pem,
        insecure_skip_tls_verify: args.insecure_skip_tls_verify,
        plain_http: args.plain_http,
        pass_credentials: args.pass_credentials,
    };
    let version = args.version.clone().unwrap_or_default();
    Ok(Some(match &args.repo {
        Some(url) => {
            if args.plain_http {
                bail!("--plain-http is for oci:// charts; a repository's URL says http:// or https:// itself");
            }
            ChartSource::Repo {
                url: url.clone(),
                chart: args.chart.clone(),
                version,
                access,
            }
        }
        None => ChartSource::Url {
            url: args.chart.clone(),
            version,
            access,
        },
    }))
}

/// Fetches a remote chart with the fetcher the daemon uses (`crate::charts`).
fn fetch(args: &TemplateArgs, source: &ChartSource) -> Result<skiff_helm::Chart> {
    let fetcher =
        crate::charts::Fetcher::for_cli(args.cache_dir.as_deref()).map_err(|e| anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let fetched = runtime
        .block_on(fetcher.fetch(source))
        .map_err(|e| anyhow!(e.0))?;
    Ok(skiff_helm::chart::load_archive(
        &fetched.archive,
        &args.chart,
    )?)
}

fn template(args: &TemplateArgs) -> Result<String> {
    let chart = match source(args)? {
        Some(source) => fetch(args, &source)?,
        None => skiff_helm::load(Path::new(&args.chart))?,
    };
    let mut values = Table::new();
    for f in &args.values {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        merge_into(&mut values, &parse_values(&text, &f.display().to_string())?);
    }
    for s in &args.set {
        apply_set(&mut values, s, false)?;
    }
    for s in &args.set_string {
        apply_set(&mut values, s, true)?;
    }
    let rendered = skiff_helm::render(&chart, values, &options(args))?;
    Ok(skiff_helm::template_output(&rendered)?)
}
