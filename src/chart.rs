//! `skiff chart template`: render a Helm chart offline and print what `helm template` prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use skiff_helm::values::{apply_set, merge_into, parse_values, Table};

#[derive(Subcommand)]
pub(crate) enum ChartCommand {
    /// Render a chart (a directory or a .tgz) with its values and print the manifests,
    /// as `helm template` does.
    Template(TemplateArgs),
}

#[derive(Args)]
pub(crate) struct TemplateArgs {
    /// The chart: a directory with Chart.yaml, or a packaged .tgz.
    chart: PathBuf,
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

fn template(args: &TemplateArgs) -> Result<String> {
    let chart = skiff_helm::load(&args.chart)?;
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
