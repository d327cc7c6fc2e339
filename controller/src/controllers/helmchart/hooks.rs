//! Chart hooks as Helm runs them: documents annotated `helm.sh/hook` are not part of the
//! release's objects; each runs at its events (pre/post install, upgrade, delete), ordered by
//! `helm.sh/hook-weight`, then name (then Helm's kind order), created one after the other —
//! a Job waited for until it completes (bounded by the HelmChart's timeout) — and deleted by
//! `helm.sh/hook-delete-policy` (`before-hook-creation`, the default, `hook-succeeded`,
//! `hook-failed`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::client::view::View;
use crate::model::store::ObjectKey;

/// The hook events skiff runs.
pub const EVENTS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-upgrade",
    "post-upgrade",
    "pre-delete",
    "post-delete",
];

/// Events skiff accepts and never fires: `helm test` and rollbacks are not run by it.
const NEVER: &[&str] = &[
    "test",
    "test-success",
    "test-failure",
    "pre-rollback",
    "post-rollback",
];

/// One hook of a chart.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The object, namespaced as it will be created.
    pub object: Value,
    /// The template it came from.
    pub path: String,
    /// Its document as rendered.
    pub manifest: String,
    pub events: Vec<String>,
    pub weight: i64,
    pub delete_policies: Vec<String>,
}

impl Hook {
    /// Reads a hook's annotations. Unknown events and policies are refused by name.
    pub fn new(object: Value, path: &str, manifest: &str) -> Result<Hook, String> {
        let ann = |k: &str| {
            object["metadata"]["annotations"][k]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let list = |s: String| -> Vec<String> {
            s.split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect()
        };
        let what = format!("{path}: hook {}", ObjectKey::of(&object));
        let events = list(ann("helm.sh/hook"));
        for e in &events {
            if !EVENTS.contains(&e.as_str()) && !NEVER.contains(&e.as_str()) {
                return Err(format!("{what}: unknown helm.sh/hook event {e:?}"));
            }
        }
        let weight = match ann("helm.sh/hook-weight").trim() {
            "" => 0,
            w => w
                .parse()
                .map_err(|_| format!("{what}: helm.sh/hook-weight {w:?} is not an integer"))?,
        };
        let delete_policies = list(ann("helm.sh/hook-delete-policy"));
        for p in &delete_policies {
            if !matches!(
                p.as_str(),
                "before-hook-creation" | "hook-succeeded" | "hook-failed"
            ) {
                return Err(format!(
                    "{what}: unknown helm.sh/hook-delete-policy {p:?} (before-hook-creation, hook-succeeded, hook-failed)"
                ));
            }
        }
        Ok(Hook {
            object,
            path: path.to_string(),
            manifest: manifest.to_string(),
            events,
            weight,
            delete_policies,
        })
    }

    fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    fn has_policy(&self, p: &str) -> bool {
        self.delete_policies.iter().any(|x| x == p)
            || (p == "before-hook-creation" && self.delete_policies.is_empty())
    }

    /// Helm's `release.Hook` JSON, for the release record.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name(),
            "kind": self.kind(),
            "path": self.path,
            "manifest": self.manifest,
            "events": self.events,
            "last_run": {"started_at": "", "completed_at": "", "phase": ""},
            "weight": self.weight,
            "delete_policies": self.delete_policies,
        })
    }
}

/// The hooks of `event` in the order Helm runs them: weight, then name, then Helm's kind order.
pub fn for_event<'a>(hooks: &'a [Hook], event: &str) -> Vec<&'a Hook> {
    let order = |k: &str| {
        skiff_helm::INSTALL_ORDER
            .iter()
            .position(|o| *o == k)
            .unwrap_or(usize::MAX)
    };
    let mut out: Vec<&Hook> = hooks
        .iter()
        .filter(|h| h.events.iter().any(|e| e == event))
        .collect();
    out.sort_by(|a, b| {
        (a.weight, a.name(), order(a.kind())).cmp(&(b.weight, b.name(), order(b.kind())))
    });
    out
}

/// How long to wait between looks at a hook Job or a deletion.
const POLL: Duration = Duration::from_millis(250);

/// Runs the hooks of `event` in order; the first that fails stops the rest. `deadline` bounds
/// the whole run (the HelmChart's `timeout`).
pub async fn run(
    view: &View,
    hooks: &[Hook],
    event: &str,
    deadline: tokio::time::Instant,
) -> Result<usize, String> {
    let todo = for_event(hooks, event);
    for hook in &todo {
        let key = ObjectKey::of(&hook.object);
        let what = format!("{event} hook {key} ({})", hook.path);
        if hook.has_policy("before-hook-creation") {
            delete_and_wait(view, &key, deadline)
                .await
                .map_err(|e| format!("{what}: deleting the previous one: {e}"))?;
        }
        view.create(hook.object.clone())
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let outcome = if hook.kind() == "Job" {
            wait_job(view, &key, deadline).await
        } else {
            Ok(())
        };
        let policy = if outcome.is_ok() {
            "hook-succeeded"
        } else {
            "hook-failed"
        };
        if hook.has_policy(policy) {
            if let Err(e) = view.delete(&key).await {
                tracing::warn!(hook = %key, "deleting a hook ({policy}): {e}");
            }
        }
        outcome.map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(todo.len())
}

async fn delete_and_wait(
    view: &View,
    key: &ObjectKey,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    // Gone already is fine.
    view.delete(key).await.map_err(|e| e.to_string())?;
    loop {
        if view
            .get_live(key)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("it is still being deleted at the timeout".into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for a Job's `Complete` (Ok) or `Failed` (Err) condition.
async fn wait_job(
    view: &View,
    key: &ObjectKey,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    loop {
        let job = view
            .get_live(key)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the Job was deleted before it completed")?;
        let condition = |t: &str| super::true_condition(&job, t);
        if condition("Complete").is_some() {
            return Ok(());
        }
        if let Some(c) = condition("Failed") {
            return Err(format!(
                "the Job failed: {} {}",
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("the Job did not complete within spec.timeout".into());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(kind: &str, name: &str, events: &str, weight: &str) -> Hook {
        let obj = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name,
            "namespace": "default", "annotations": {"helm.sh/hook": events,
            "helm.sh/hook-weight": weight}}});
        Hook::new(obj, "c/templates/h.yaml", "").unwrap()
    }

    #[test]
    fn hooks_run_by_weight_then_name_then_kind() {
        let hooks = vec![
            hook("ConfigMap", "b", "pre-install", "5"),
            hook("ConfigMap", "a", "pre-install,pre-upgrade", "5"),
            hook("ServiceAccount", "a", "pre-install", "5"),
            hook("Job", "z", "pre-install", "-3"),
            hook("ConfigMap", "p", "post-install", "0"),
        ];
        let names: Vec<String> = for_event(&hooks, "pre-install")
            .iter()
            .map(|h| format!("{}/{}", h.kind(), h.name()))
            .collect();
        assert_eq!(
            names,
            ["Job/z", "ServiceAccount/a", "ConfigMap/a", "ConfigMap/b"]
        );
        assert_eq!(for_event(&hooks, "pre-upgrade").len(), 1);
        assert!(hooks[0].has_policy("before-hook-creation"));
    }

    #[test]
    fn bad_annotations_are_refused_by_name() {
        let obj = |ann: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "annotations": ann}});
        let e = Hook::new(obj(json!({"helm.sh/hook": "pre-instal"})), "t", "").unwrap_err();
        assert!(e.contains("\"pre-instal\""), "{e}");
        let e = Hook::new(
            obj(json!({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "x"})),
            "t",
            "",
        )
        .unwrap_err();
        assert!(e.contains("hook-weight"), "{e}");
        let h = Hook::new(obj(json!({"helm.sh/hook": "test"})), "t", "").unwrap();
        assert!(EVENTS
            .iter()
            .all(|e| for_event(std::slice::from_ref(&h), e).is_empty()));
    }
}
