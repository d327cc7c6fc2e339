//! The HelmChart reconciler (k3s's `helm.cattle.io/v1` HelmChart, without a helm Job): a
//! HelmChart's chart is fetched ([`ChartFetcher`]), rendered with `skiff-helm`, and its objects
//! applied as **one** transaction with prune through the manifests folder's
//! [`apply_source`] (source `helmchart/<ns>/<name>`); hooks run around it; each change of the
//! input (the spec, its HelmChartConfig, the fetched chart's digest) makes a release revision
//! stored as Helm stores it ([`release`]). Deleting the HelmChart uninstalls through the
//! finalizer [`FINALIZER`]. Status conditions and Events say what happened; a failure names the
//! template, line and message and changes nothing of what the previous revision applied.
//!
//! Unlike the workload reconcilers this one writes its objects into the store directly (the
//! folder's transaction — the API has none), and everything else (status, Events, hooks,
//! release Secrets, namespaces) through the API. It runs in its own loop, since a hook Job may
//! be waited for.

pub mod hooks;
pub mod release;
pub mod spec;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use skiff_helm::source::{ChartFetcher, Fetched};
use tokio::sync::{broadcast, watch};

use crate::client::events::{record_via, Source, Type};
use crate::client::view::View;
use crate::folder::apply::{apply_source, Applied, Document};
use crate::model::declared::HELMCHART_SOURCE_PREFIX;
use crate::model::store::{now_rfc3339, ObjectKey, Store};
use crate::model::validate::helmchart::parse_duration;
use crate::model::{kinds, meta};

use hooks::Hook;

pub use crate::model::validate::helmchart::FINALIZER;

/// k3s's default `spec.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A pass also runs this often without changes (a chart under the charts folder may change).
const RESYNC: Duration = Duration::from_secs(10);

/// What the reconciler works with.
pub struct HelmCharts {
    /// The caches and the API client.
    pub view: Arc<View>,
    /// The store, for the one-transaction apply.
    pub store: Arc<Store>,
    /// Where charts come from.
    pub fetcher: Arc<dyn ChartFetcher>,
    /// The charts folder (`<data-dir>/charts`): `spec.chart` paths are inside it.
    pub charts_dir: PathBuf,
}

/// The Kubernetes version and API versions skiff serves, as `.Capabilities` shows them.
pub fn capabilities() -> (String, Vec<String>) {
    let version = crate::api::discovery::version();
    let kube_version = version["gitVersion"]
        .as_str()
        .unwrap_or("v1.32.0")
        .to_string();
    let mut api_versions: Vec<String> = Vec::new();
    for k in kinds::KINDS {
        for v in [
            k.api_version.to_string(),
            format!("{}/{}", k.api_version, k.kind),
        ] {
            if !api_versions.contains(&v) {
                api_versions.push(v);
            }
        }
    }
    (kube_version, api_versions)
}

/// Runs the reconciler until `shutdown` flips: a pass on every change of a HelmChart or
/// HelmChartConfig, and every [`RESYNC`].
pub async fn run(hc: HelmCharts, mut shutdown: watch::Receiver<bool>) {
    let mut events = hc.view.subscribe();
    loop {
        hc.pass().await;
        // The next pass must see this one's writes (a release Secret not yet cached would make
        // the same input look new).
        if !hc.view.wait_settled(Duration::from_secs(10)).await {
            tracing::warn!("the caches did not show the HelmChart reconciler's writes within 10 s");
        }
        let resync = tokio::time::sleep(RESYNC);
        tokio::pin!(resync);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = &mut resync => break,
                e = events.recv() => match e {
                    Ok("HelmChart" | "HelmChartConfig") | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
    }
}

/// Why an install or upgrade failed: a one-word reason and the message.
struct Failure {
    reason: &'static str,
    message: String,
    /// The revision's objects had been applied (a post hook failed): an upgrade is rolled back.
    applied: bool,
}

fn failure(reason: &'static str) -> impl FnOnce(String) -> Failure {
    move |message| Failure {
        reason,
        message,
        applied: false,
    }
}

/// On the release Secret a rollback wrote: the failure it undid (the HelmChart stays Failed).
const ROLLED_BACK_ANNOTATION: &str = "skiff.io/helmchart-rolled-back";

/// What a revision records, filled as far as the install got.
#[derive(Default)]
struct Draft {
    chart: Value,
    config: Value,
    manifest: String,
    hooks: Vec<Value>,
    notes: String,
}

/// The HelmChart's namespace lookups for `authSecret` and `repoCAConfigMap`.
struct NamespaceLookup<'a> {
    view: &'a View,
    namespace: &'a str,
}

impl spec::Lookup for NamespaceLookup<'_> {
    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        self.view
            .get(&ObjectKey::new(kind, self.namespace, name))
            .map(|v| (*v).clone())
    }
}

/// The release namespace: `spec.targetNamespace`, else the HelmChart's.
fn target_namespace(hc: &Value) -> String {
    match hc["spec"]["targetNamespace"].as_str() {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => meta::namespace(hc).to_string(),
    }
}

fn source_name(hc: &Value) -> String {
    format!(
        "{HELMCHART_SOURCE_PREFIX}{}/{}",
        meta::namespace(hc),
        meta::name(hc)
    )
}

fn has_finalizer(hc: &Value) -> bool {
    hc["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

impl HelmCharts {
    async fn pass(&self) {
        for hc in self.view.list("HelmChart", None) {
            if let Err(e) = self.reconcile(&hc).await {
                tracing::warn!(helmchart = %ObjectKey::of(&hc), "reconcile failed: {e}");
            }
        }
    }

    async fn reconcile(&self, hc: &Value) -> Result<(), String> {
        if meta::is_terminating(hc) {
            if has_finalizer(hc) {
                self.uninstall(hc).await?;
                self.set_finalizer(hc, false).await?;
            }
            return Ok(());
        }
        if !has_finalizer(hc) {
            // The next pass (woken by this change) installs.
            return self.set_finalizer(hc, true).await;
        }
        let (ns, name) = (meta::namespace(hc), meta::name(hc));
        let config = self
            .view
            .get(&ObjectKey::new("HelmChartConfig", ns, name))
            .map(|c| c["spec"].clone());
        let lookup = NamespaceLookup {
            view: &self.view,
            namespace: ns,
        };
        let source = match spec::source(&hc["spec"], &self.charts_dir, &lookup) {
            Ok(s) => s,
            Err(m) => return self.report_failure(hc, "InvalidSpec", &m, None).await,
        };
        let fetched = match self.fetcher.fetch(&source).await {
            Ok(f) => f,
            Err(e) => return self.report_failure(hc, "FetchFailed", &e.0, None).await,
        };
        let input = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(
                serde_json::to_vec(&json!([hc["spec"], config, fetched.digest])).expect("json")
            ))
        );
        let target = target_namespace(hc);
        let secrets = self.view.list("Secret", Some(&target));
        let releases = release::of_release(secrets.iter().map(|s| &**s), name);
        let owner = format!("{ns}/{name}");
        if let Some(other) = releases
            .iter()
            .filter_map(|r| meta::annotation(r, release::OWNER_ANNOTATION))
            .find(|o| !o.is_empty() && *o != owner)
        {
            let m = format!(
                "the release {name:?} in the namespace {target:?} belongs to the HelmChart {other}: give this one another name or targetNamespace"
            );
            return self.report_failure(hc, "ReleaseTaken", &m, None).await;
        }
        if let Some(last) = releases.last() {
            if meta::annotation(last, release::INPUT_ANNOTATION) == Some(&input) {
                return self.keep_status(hc, last, &fetched).await;
            }
        }
        let revision = releases.last().map_or(1, |s| release::version_of(s) + 1);
        let deployed: Vec<Value> = releases
            .iter()
            .filter(|s| s["metadata"]["labels"]["status"] == "deployed")
            .map(|s| (*s).clone())
            .collect();
        let first_deployed = releases
            .first()
            .and_then(|s| release::from_secret(s).ok())
            .and_then(|r| r["info"]["first_deployed"].as_str().map(String::from))
            .unwrap_or_else(now_rfc3339);
        let mut draft = Draft::default();
        let upgrade = !deployed.is_empty();
        let outcome = self
            .install(
                hc,
                &target,
                &fetched,
                config.as_ref(),
                revision,
                upgrade,
                &mut draft,
            )
            .await;
        // An upgrade that failed after its objects were applied (a post-upgrade hook): the
        // last deployed revision's objects are applied again, as `helm upgrade --atomic` does.
        let mut rolled_back = None;
        if let (Err(f), Some(prev)) = (&outcome, deployed.last()) {
            if f.applied {
                rolled_back = Some(self.roll_back(hc, &target, prev).await);
            }
        }
        let (status, mut description) = match &outcome {
            Ok(_) if upgrade => ("deployed", "Upgrade complete".to_string()),
            Ok(_) => ("deployed", "Install complete".to_string()),
            Err(f) => (
                "failed",
                format!(
                    "{} failed: {}",
                    if upgrade { "Upgrade" } else { "Install" },
                    f.message
                ),
            ),
        };
        match &rolled_back {
            Some(Ok(prev)) => description.push_str(&format!(
                "; rolled back to revision {} (as revision {})",
                prev["version"],
                revision + 1
            )),
            Some(Err(e)) => description.push_str(&format!("; the rollback failed: {e}")),
            None => {}
        }
        let now = now_rfc3339();
        let record = release::release_json(release::Record {
            name,
            namespace: &target,
            version: revision,
            status,
            first_deployed: &first_deployed,
            last_deployed: &now,
            description: &description,
            notes: &draft.notes,
            chart: draft.chart,
            config: draft.config,
            manifest: &draft.manifest,
            hooks: draft.hooks,
        });
        self.view
            .create(release::to_secret(&record, &input, &owner))
            .await
            .map_err(|e| format!("writing the release record: {e}"))?;
        if let Some(Ok(prev)) = &rolled_back {
            let mut again = prev.clone();
            again["version"] = json!(revision + 1);
            again["info"]["status"] = json!("deployed");
            again["info"]["description"] = json!(format!("Rollback to {}", prev["version"]));
            again["info"]["last_deployed"] = json!(now);
            let mut secret = release::to_secret(&again, &input, &owner);
            secret["metadata"]["annotations"][ROLLED_BACK_ANNOTATION] = json!(description);
            self.view
                .create(secret)
                .await
                .map_err(|e| format!("writing the rollback's release record: {e}"))?;
        }
        if outcome.is_ok() || matches!(rolled_back, Some(Ok(_))) {
            for old in &deployed {
                let superseded = release::with_status(old, "superseded")?;
                self.view
                    .update(superseded)
                    .await
                    .map_err(|e| format!("marking {} superseded: {e}", meta::name(old)))?;
            }
        }
        self.trim_history(&releases, outcome.is_ok()).await;
        match outcome {
            Ok(summary) => {
                let verb = if upgrade { "Upgraded" } else { "Installed" };
                let message = format!(
                    "{verb} {} {} as release {name} revision {revision} in {target}: {summary}",
                    draft_chart_name(&record),
                    fetched.version
                );
                self.set_status(hc, "Installed", verb, &message, Some((revision, &fetched)))
                    .await?;
                self.event(hc, Type::Normal, verb, &message).await;
                if !draft.notes.trim().is_empty() {
                    self.event(hc, Type::Normal, "Notes", draft.notes.trim())
                        .await;
                }
                Ok(())
            }
            Err(_) if rolled_back.is_some() => {
                self.report_failure(hc, "HookFailed", &description, None)
                    .await
            }
            Err(f) => {
                self.report_failure(hc, f.reason, &f.message, Some((revision, &fetched)))
                    .await
            }
        }
    }

    /// Applies the objects of the deployed release `prev` again (its recorded manifest, as one
    /// transaction with prune); its record, for the rollback's revision.
    async fn roll_back(&self, hc: &Value, target: &str, prev: &Value) -> Result<Value, String> {
        let record = release::from_secret(prev)?;
        let manifest = record["manifest"].as_str().unwrap_or_default();
        let name = meta::name(hc);
        let mut docs = Vec::new();
        for obj in
            objects(manifest, "the deployed revision's manifest", target).map_err(|f| f.message)?
        {
            docs.push(Document {
                index: docs.len() + 1,
                object: release_labels(obj, name, target),
            });
        }
        self.apply(hc, &docs)?;
        Ok(record)
    }

    /// The release's objects applied as the source `helmchart/<ns>/<name>`: one transaction,
    /// what the source held before and `docs` lacks pruned.
    fn apply(&self, hc: &Value, docs: &[Document]) -> Result<Applied, String> {
        apply_source(&self.store, &source_name(hc), docs).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Loads, renders and applies one revision; hooks around the apply.
    #[allow(clippy::too_many_arguments)]
    async fn install(
        &self,
        hc: &Value,
        target: &str,
        fetched: &Fetched,
        config: Option<&Value>,
        revision: i64,
        upgrade: bool,
        draft: &mut Draft,
    ) -> Result<String, Failure> {
        let name = meta::name(hc);
        let chart = skiff_helm::chart::load_archive(&fetched.archive, "the chart")
            .map_err(|e| failure("LoadFailed")(e.to_string()))?;
        refuse_crds(&chart, chart.name()).map_err(failure("Refused"))?;
        let values = spec::user_values(&hc["spec"], config).map_err(failure("InvalidValues"))?;
        draft.chart = release::chart_json(&chart);
        draft.config = release::table_json(&values);
        let (kube_version, api_versions) = capabilities();
        let opts = skiff_helm::RenderOptions {
            release_name: name.to_string(),
            namespace: target.to_string(),
            revision,
            is_upgrade: upgrade,
            kube_version,
            api_versions,
            lookup: Some(lookup(self.view.clone())),
        };
        let rendered = skiff_helm::render(&chart, values, &opts)
            .map_err(|e| failure("RenderFailed")(e.to_string()))?;
        let notes_path = format!("{}/templates/NOTES.txt", chart.name());
        draft.notes = rendered
            .iter()
            .find(|r| r.name == notes_path)
            .map(|r| r.text.clone())
            .unwrap_or_default();
        let (generic, hook_manifests) =
            skiff_helm::manifests(&rendered).map_err(|e| failure("RenderFailed")(e.to_string()))?;
        draft.manifest = skiff_helm::release_manifest(&generic);
        let mut docs = Vec::new();
        for m in &generic {
            for obj in objects(&m.content, &m.source, target)? {
                docs.push(Document {
                    index: docs.len() + 1,
                    object: release_labels(obj, name, target),
                });
            }
        }
        let mut hooks = Vec::new();
        for m in &hook_manifests {
            for obj in objects(&m.content, &m.source, target)? {
                hooks.push(Hook::new(obj, &m.source, &m.content).map_err(failure("Refused"))?);
            }
        }
        draft.hooks = hooks.iter().map(Hook::to_json).collect();
        let rendered_message = format!(
            "Rendered {} {} for revision {revision}: {} objects, {} hooks",
            chart.name(),
            chart.metadata.version,
            docs.len(),
            hooks.len()
        );
        self.event(hc, Type::Normal, "Rendered", &rendered_message)
            .await;
        self.ensure_namespace(hc, target).await?;
        let timeout = hc["spec"]["timeout"]
            .as_str()
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        let (pre, post) = if upgrade {
            ("pre-upgrade", "post-upgrade")
        } else {
            ("pre-install", "post-install")
        };
        hooks::run(&self.view, &hooks, pre, deadline)
            .await
            .map_err(failure("HookFailed"))?;
        let applied = self.apply(hc, &docs).map_err(failure("ApplyFailed"))?;
        hooks::run(&self.view, &hooks, post, deadline)
            .await
            .map_err(|m| Failure {
                applied: true,
                ..failure("HookFailed")(m)
            })?;
        Ok(format!(
            "{} created, {} updated, {} unchanged, {} pruned",
            applied.created.len(),
            applied.updated.len(),
            applied.unchanged.len(),
            applied.deleted.len()
        ))
    }

    /// The release namespace must exist; `createNamespace` makes it.
    async fn ensure_namespace(&self, hc: &Value, target: &str) -> Result<(), Failure> {
        let key = ObjectKey::new("Namespace", "", target);
        if self.view.get(&key).is_some()
            || self
                .view
                .get_live(&key)
                .await
                .map_err(|e| failure("NamespaceMissing")(e.to_string()))?
                .is_some()
        {
            return Ok(());
        }
        if hc["spec"]["createNamespace"] != true {
            return Err(failure("NamespaceMissing")(format!(
                "the namespace {target:?} does not exist (set spec.createNamespace: true to create it)"
            )));
        }
        self.view
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}}))
            .await
            .map(|_| ())
            .map_err(|e| {
                failure("NamespaceMissing")(format!("creating the namespace {target:?}: {e}"))
            })
    }

    /// pre-delete hooks (of the deployed revision), every object of the release, its release
    /// Secrets, post-delete hooks.
    async fn uninstall(&self, hc: &Value) -> Result<(), String> {
        let (name, target) = (meta::name(hc), target_namespace(hc));
        let secrets = self.view.list("Secret", Some(&target));
        // Only this HelmChart's (another's of the same release name made it fail).
        let owner = format!("{}/{name}", meta::namespace(hc));
        let releases: Vec<Value> = release::of_release(secrets.iter().map(|s| &**s), name)
            .into_iter()
            .filter(|s| meta::annotation(s, release::OWNER_ANNOTATION).is_none_or(|o| o == owner))
            .cloned()
            .collect();
        let hooks: Vec<Hook> = releases
            .iter()
            .rev()
            .find(|s| s["metadata"]["labels"]["status"] == "deployed")
            .and_then(|s| release::from_secret(s).ok())
            .map(|r| recorded_hooks(&r, &target))
            .unwrap_or_default();
        let timeout = hc["spec"]["timeout"]
            .as_str()
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        if let Err(e) = hooks::run(&self.view, &hooks, "pre-delete", deadline).await {
            self.event(hc, Type::Warning, "UninstallFailed", &e).await;
            return Err(e);
        }
        let done = self.apply(hc, &[])?;
        for s in &releases {
            self.view
                .delete(&ObjectKey::of(s))
                .await
                .map_err(|e| format!("deleting {}: {e}", meta::name(s)))?;
        }
        if let Err(e) = hooks::run(&self.view, &hooks, "post-delete", deadline).await {
            // The release is gone already; the failure is said, not retried.
            self.event(hc, Type::Warning, "UninstallFailed", &e).await;
        }
        let message = format!(
            "Uninstalled release {name} from {target}: {} objects and {} release records deleted",
            done.deleted.len(),
            releases.len()
        );
        tracing::info!(helmchart = %ObjectKey::of(hc), "{message}");
        self.event(hc, Type::Normal, "Uninstalled", &message).await;
        Ok(())
    }

    /// Keeps the newest [`release::HISTORY_MAX`] revisions (the new one among them), and the
    /// deployed one however old, as Helm's `removeLeastRecent` does.
    /// `new_deployed`: the new revision is the deployed one (the others are superseded now).
    async fn trim_history(&self, before: &[&Value], new_deployed: bool) {
        let excess = (before.len() + 1).saturating_sub(release::HISTORY_MAX);
        let deployed = |s: &Value| s["metadata"]["labels"]["status"] == "deployed";
        let last_deployed = before
            .iter()
            .rev()
            .find(|s| !new_deployed && deployed(s))
            .map(|s| release::version_of(s));
        let oldest = before
            .iter()
            .filter(|s| Some(release::version_of(s)) != last_deployed);
        for old in oldest.take(excess) {
            if let Err(e) = self.view.delete(&ObjectKey::of(old)).await {
                tracing::warn!(secret = %ObjectKey::of(old), "trimming release history: {e}");
            }
        }
    }

    /// Nothing new to install: the status says what the last revision did (if writing it
    /// failed after that revision was recorded, it is written now).
    async fn keep_status(&self, hc: &Value, last: &Value, fetched: &Fetched) -> Result<(), String> {
        let version = release::version_of(last);
        let condition = |t: &str| true_condition(hc, t).is_some();
        let rolled_back = meta::annotation(last, ROLLED_BACK_ANNOTATION);
        match last["metadata"]["labels"]["status"].as_str() {
            // A rollback's revision: the upgrade it undid failed, and the HelmChart says so.
            Some("deployed") if rolled_back.is_some() => match rolled_back {
                Some(m) if !condition("Failed") => {
                    self.set_status(hc, "Failed", "HookFailed", m, None).await
                }
                _ => Ok(()),
            },
            Some("deployed")
                if !(condition("Installed") && hc["status"]["revision"] == version) =>
            {
                let message = format!("release {} revision {version} is deployed", meta::name(hc));
                self.set_status(
                    hc,
                    "Installed",
                    "Installed",
                    &message,
                    Some((version, fetched)),
                )
                .await
            }
            Some("failed") if !condition("Failed") => {
                let description = release::from_secret(last)
                    .ok()
                    .and_then(|r| r["info"]["description"].as_str().map(String::from))
                    .unwrap_or_default();
                self.set_status(hc, "Failed", "Failed", &description, None)
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn set_finalizer(&self, hc: &Value, on: bool) -> Result<(), String> {
        let mut obj = hc.clone();
        let list = meta::metadata_mut(&mut obj)
            .entry("finalizers")
            .or_insert_with(|| json!([]));
        let mut finalizers: Vec<Value> = list.as_array().cloned().unwrap_or_default();
        finalizers.retain(|f| f != FINALIZER);
        if on {
            finalizers.push(json!(FINALIZER));
        }
        *list = Value::Array(finalizers);
        self.view
            .update(obj)
            .await
            .map(|_| ())
            .map_err(|e| format!("setting the finalizer: {e}"))
    }

    async fn report_failure(
        &self,
        hc: &Value,
        reason: &str,
        message: &str,
        installed: Option<(i64, &Fetched)>,
    ) -> Result<(), String> {
        let message = format!("{reason}: {message}");
        // A HelmChart that keeps failing the same way says so once (its status holds it).
        let same = true_condition(hc, "Failed").is_some_and(|c| c["message"] == message);
        if !same {
            tracing::warn!(helmchart = %ObjectKey::of(hc), "{message}");
            self.event(hc, Type::Warning, "Failed", &message).await;
        }
        self.set_status(hc, "Failed", reason, &message, installed)
            .await
    }

    /// Writes the conditions `Installed` and `Failed` (the one named True, the other False),
    /// with the revision and chart of the last attempt when there is one.
    async fn set_status(
        &self,
        hc: &Value,
        true_type: &str,
        reason: &str,
        message: &str,
        revision: Option<(i64, &Fetched)>,
    ) -> Result<(), String> {
        let old = &hc["status"];
        let now = now_rfc3339();
        let conditions: Vec<Value> = ["Installed", "Failed"]
            .iter()
            .map(|t| {
                let status = if *t == true_type { "True" } else { "False" };
                let prev = old["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == *t);
                let since = match prev {
                    Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
                    _ => json!(now),
                };
                let (reason, message) = if *t == true_type {
                    (reason, message)
                } else {
                    ("", "")
                };
                json!({"type": t, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": since})
            })
            .collect();
        let mut status = json!({
            "observedGeneration": hc["metadata"]["generation"],
            "conditions": conditions,
        });
        match revision {
            Some((rev, f)) if true_type == "Installed" => {
                status["revision"] = json!(rev);
                status["chartVersion"] = json!(f.version);
                status["chartDigest"] = json!(f.digest);
            }
            _ => {
                // A failure keeps what is installed.
                for k in ["revision", "chartVersion", "chartDigest"] {
                    if !old[k].is_null() {
                        status[k] = old[k].clone();
                    }
                }
            }
        }
        self.view
            .update_status(&ObjectKey::of(hc), status)
            .await
            .map(|_| ())
            .map_err(|e| format!("writing the status: {e}"))
    }

    async fn event(&self, hc: &Value, ty: Type, reason: &str, message: &str) {
        record_via(
            self.view.client(),
            hc,
            ty,
            reason,
            message,
            Source::HelmController,
        )
        .await;
    }
}

/// Helm's `lookup` against the reconciler's caches (what the API serves; the HelmChart is the
/// admin's, as is what it may read): an object, a list (`name` empty; `namespace` empty: every
/// namespace), or an empty map for what does not exist or is not served at that apiVersion.
fn lookup(view: Arc<View>) -> skiff_helm::engine::Lookup {
    skiff_helm::engine::Lookup(Arc::new(move |api_version, kind, namespace, name| {
        let served = kinds::by_kind(kind).filter(|k| k.api_version == api_version);
        let Some(info) = served.filter(|k| super::KINDS.contains(&k.kind)) else {
            return json!({});
        };
        let namespace = if info.namespaced { namespace } else { "" };
        if name.is_empty() {
            let ns = (!namespace.is_empty()).then_some(namespace);
            let items: Vec<Value> = view.list(kind, ns).iter().map(|o| (**o).clone()).collect();
            return json!({"apiVersion": api_version, "kind": format!("{kind}List"), "items": items});
        }
        view.get(&ObjectKey::new(kind, namespace, name))
            .map_or_else(|| json!({}), |o| (*o).clone())
    }))
}

/// The condition `t` of an object's status, if it is True.
pub(crate) fn true_condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t && c["status"] == "True")
}

fn draft_chart_name(record: &Value) -> String {
    record["chart"]["metadata"]["name"]
        .as_str()
        .unwrap_or("the chart")
        .to_string()
}

/// A chart (or a subchart) with `crds/`: skiff serves no CustomResourceDefinitions.
fn refuse_crds(chart: &skiff_helm::Chart, path: &str) -> Result<(), String> {
    if let Some(f) = chart.files.keys().find(|f| f.starts_with("crds/")) {
        return Err(format!(
            "{path}/{f}: the chart installs CustomResourceDefinitions (crds/), and skiff serves no CustomResourceDefinition kind"
        ));
    }
    for sub in &chart.subcharts {
        refuse_crds(sub, &format!("{path}/charts/{}", sub.name()))?;
    }
    Ok(())
}

/// The objects of one rendered document, namespaced into `target` where they name none; a kind
/// skiff does not serve is refused by name.
fn objects(text: &str, template: &str, target: &str) -> Result<Vec<Value>, Failure> {
    let docs = crate::folder::parse_documents(text)
        .map_err(|e| failure("RenderFailed")(format!("{template}: {e}")))?;
    let mut out = Vec::new();
    for d in docs {
        let mut obj = d.object;
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let info = kinds::by_kind(&kind)
            .filter(|i| i.api_version == api_version)
            .ok_or_else(|| {
                failure("Refused")(format!(
                    "{template}: {kind} ({api_version}) is not a kind skiff serves"
                ))
            })?;
        if info.namespaced
            && obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        {
            meta::metadata_mut(&mut obj).insert("namespace".into(), json!(target));
        }
        out.push(obj);
    }
    Ok(out)
}

/// What Helm 3 marks a release's objects with (`helm` recognises them as the release's).
fn release_labels(mut obj: Value, name: &str, target: &str) -> Value {
    meta::set_annotation(&mut obj, "meta.helm.sh/release-name", name);
    meta::set_annotation(&mut obj, "meta.helm.sh/release-namespace", target);
    let labels = meta::metadata_mut(&mut obj)
        .entry("labels")
        .or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert("app.kubernetes.io/managed-by".into(), json!("Helm"));
    }
    obj
}

/// The hooks a release record holds (Helm's `release.Hook`s), to run at uninstall.
fn recorded_hooks(release: &Value, target: &str) -> Vec<Hook> {
    release["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let path = h["path"].as_str().unwrap_or_default();
            let manifest = h["manifest"].as_str().unwrap_or_default();
            let obj = objects(manifest, path, target).ok()?.into_iter().next()?;
            Hook::new(obj, path, manifest).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn rendered_objects_must_be_served_kinds_and_land_in_the_target() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
        let objs = objects(text, "c/templates/a.yaml", "apps")
            .map_err(|f| f.message)
            .unwrap();
        assert_eq!(objs[0]["metadata"]["namespace"], "apps");
        let explicit =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: other\n";
        let objs = objects(explicit, "t", "apps")
            .map_err(|f| f.message)
            .unwrap();
        assert_eq!(objs[0]["metadata"]["namespace"], "other");
        let cluster = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n";
        let objs = objects(cluster, "t", "apps")
            .map_err(|f| f.message)
            .unwrap();
        assert!(objs[0]["metadata"]["namespace"].is_null());
        for (text, what) in [
            ("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x\n", "CustomResourceDefinition (apiextensions.k8s.io/v1)"),
            ("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: x\n", "HorizontalPodAutoscaler (autoscaling/v2)"),
            ("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: x\n", "Ingress (extensions/v1beta1)"),
        ] {
            let f = objects(text, "c/templates/x.yaml", "apps").unwrap_err();
            assert_eq!(f.reason, "Refused");
            assert!(f.message.starts_with("c/templates/x.yaml: ") && f.message.contains(what), "{}", f.message);
        }
        let labelled = release_labels(
            objects(text, "t", "apps")
                .map_err(|f| f.message)
                .unwrap()
                .remove(0),
            "web",
            "apps",
        );
        assert_eq!(
            labelled["metadata"]["annotations"]["meta.helm.sh/release-name"],
            "web"
        );
        assert_eq!(
            labelled["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm"
        );
    }

    #[test]
    fn crds_are_refused_by_name_in_subcharts_too() {
        let files = |extra: &[(&str, &str)]| {
            let mut f: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            f.insert(
                "Chart.yaml".into(),
                b"apiVersion: v2\nname: top\nversion: 1.0.0\n".to_vec(),
            );
            for (k, v) in extra {
                f.insert(k.to_string(), v.as_bytes().to_vec());
            }
            f
        };
        let plain = skiff_helm::chart::from_files(files(&[]), "t").unwrap();
        assert!(refuse_crds(&plain, "top").is_ok());
        let sub = skiff_helm::chart::from_files(
            files(&[
                (
                    "charts/op/Chart.yaml",
                    "apiVersion: v2\nname: op\nversion: 0.1.0\n",
                ),
                (
                    "charts/op/crds/thing.yaml",
                    "kind: CustomResourceDefinition\n",
                ),
            ]),
            "t",
        )
        .unwrap();
        let e = refuse_crds(&sub, "top").unwrap_err();
        assert!(e.starts_with("top/charts/op/crds/thing.yaml"), "{e}");
    }
}
