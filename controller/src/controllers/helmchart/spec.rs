//! What a HelmChart asks for: its spec as a [`ChartSource`], and its values merged in k3s's
//! order — chart defaults ← `valuesContent` ← the HelmChartConfig's `valuesContent` ← `set`.

use std::path::{Component, Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use skiff_helm::source::{Access, BasicAuth, ChartSource};
use skiff_helm::values::{apply_set, merge_into, parse_values, Table};

/// Objects the spec refers to in the HelmChart's own namespace (`authSecret`,
/// `repoCAConfigMap`), looked up by the caller.
pub trait Lookup {
    /// A Secret or ConfigMap of the HelmChart's namespace.
    fn get(&self, kind: &str, name: &str) -> Option<Value>;
}

/// The chart source of a HelmChart. `charts_dir` is the charts folder (`<data-dir>/charts`):
/// a `spec.chart` without `repo` that is no URL names a directory or `.tgz` inside it.
pub fn source(spec: &Value, charts_dir: &Path, lookup: &dyn Lookup) -> Result<ChartSource, String> {
    let text = |f: &str| spec[f].as_str().unwrap_or_default().trim().to_string();
    let content = text("chartContent");
    if !content.is_empty() {
        let tgz = B64
            .decode(content.split_whitespace().collect::<String>())
            .map_err(|e| format!("spec.chartContent is not base64: {e}"))?;
        return Ok(ChartSource::Content(tgz));
    }
    let chart = text("chart");
    let version = text("version");
    if chart.starts_with("oci://") || chart.starts_with("https://") || chart.starts_with("http://")
    {
        if !text("repo").is_empty() {
            return Err(format!(
                "spec.repo may not be given when spec.chart is a URL ({chart})"
            ));
        }
        return Ok(ChartSource::Url {
            url: chart,
            version,
            access: access(spec, lookup)?,
        });
    }
    let repo = text("repo");
    if !repo.is_empty() {
        return Ok(ChartSource::Repo {
            url: repo,
            chart,
            version,
            access: access(spec, lookup)?,
        });
    }
    Ok(ChartSource::Local(local_path(&chart, charts_dir)?))
}

/// `chart` as a path inside `charts_dir` (relative; no `..`, no absolute path).
fn local_path(chart: &str, charts_dir: &Path) -> Result<PathBuf, String> {
    let rel = Path::new(chart);
    let escapes = rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if chart.is_empty() || escapes {
        return Err(format!(
            "spec.chart {chart:?}: without spec.repo it must be a path inside the charts folder {} (relative, no ..), an oci:// reference or an https:// URL of a .tgz",
            charts_dir.display()
        ));
    }
    let path = charts_dir.join(rel);
    // A symlink inside the folder must not lead out of it either.
    if let (Ok(real), Ok(root)) = (path.canonicalize(), charts_dir.canonicalize()) {
        if !real.starts_with(&root) {
            return Err(format!(
                "spec.chart {chart:?} leads out of the charts folder {}",
                charts_dir.display()
            ));
        }
    }
    Ok(path)
}

/// Credentials and trust from the spec and the objects it names.
fn access(spec: &Value, lookup: &dyn Lookup) -> Result<Access, String> {
    let flag = |f: &str| spec[f].as_bool().unwrap_or(false);
    let mut a = Access {
        insecure_skip_tls_verify: flag("insecureSkipTLSVerify"),
        plain_http: flag("plainHTTP"),
        pass_credentials: flag("authPassCredentials"),
        ..Access::default()
    };
    let decoded = |s: &Value, key: &str| -> Option<String> {
        let v = s["data"][key].as_str()?;
        B64.decode(v)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    if let Some(name) = spec["authSecret"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        let s = lookup.get("Secret", name).ok_or_else(|| {
            format!("spec.authSecret: the Secret {name:?} does not exist in this namespace")
        })?;
        match (decoded(&s, "username"), decoded(&s, "password")) {
            (Some(username), Some(password)) => a.auth = Some(BasicAuth { username, password }),
            _ => {
                return Err(format!(
                    "spec.authSecret: the Secret {name:?} needs the keys username and password (kubernetes.io/basic-auth)"
                ))
            }
        }
    }
    let mut ca = spec["repoCA"].as_str().unwrap_or_default().to_string();
    if let Some(name) = spec["repoCAConfigMap"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        let cm = lookup.get("ConfigMap", name).ok_or_else(|| {
            format!("spec.repoCAConfigMap: the ConfigMap {name:?} does not exist in this namespace")
        })?;
        for v in cm["data"].as_object().into_iter().flat_map(|m| m.values()) {
            ca.push('\n');
            ca.push_str(v.as_str().unwrap_or_default());
        }
    }
    if !ca.trim().is_empty() {
        a.ca_pem = Some(ca.trim().as_bytes().to_vec());
    }
    Ok(a)
}

/// The user values of a release (Helm's `config`): `valuesContent`, then the HelmChartConfig's
/// `valuesContent`, then `set` (ints and `true`/`false` typed, other strings as strings — k3s
/// passes those with `--set-string`). The chart's defaults go under them at render time.
pub fn user_values(spec: &Value, config_spec: Option<&Value>) -> Result<Table, String> {
    let mut values = Table::new();
    let overlay = |values: &mut Table, text: Option<&str>, what: &str| -> Result<(), String> {
        if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
            let t = parse_values(text, what).map_err(|e| format!("{what}: {e}"))?;
            merge_into(values, &t);
        }
        Ok(())
    };
    overlay(
        &mut values,
        spec["valuesContent"].as_str(),
        "spec.valuesContent",
    )?;
    if let Some(c) = config_spec {
        overlay(
            &mut values,
            c["valuesContent"].as_str(),
            "HelmChartConfig spec.valuesContent",
        )?;
    }
    for (key, v) in spec["set"].as_object().into_iter().flatten() {
        let (text, typed) = match v {
            Value::Number(n) => (n.to_string(), true),
            Value::String(s) => (
                s.clone(),
                matches!(s.to_ascii_lowercase().as_str(), "true" | "false"),
            ),
            other => (other.to_string(), false),
        };
        apply_set(&mut values, &format!("{key}={text}"), !typed)
            .map_err(|e| format!("spec.set.{key}: {e}"))?;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    struct Objects(BTreeMap<(String, String), Value>);
    impl Lookup for Objects {
        fn get(&self, kind: &str, name: &str) -> Option<Value> {
            self.0.get(&(kind.into(), name.into())).cloned()
        }
    }

    fn none() -> Objects {
        Objects(BTreeMap::new())
    }

    #[test]
    fn spec_to_source() {
        let dir = Path::new("/var/lib/skiff/charts");
        let s = |spec: Value| source(&spec, dir, &none());
        assert_eq!(
            s(json!({"chartContent": B64.encode(b"tgz"), "chart": "ignored-name"})),
            Ok(ChartSource::Content(b"tgz".to_vec()))
        );
        assert_eq!(
            s(json!({"chart": "web/app-1.0.0.tgz"})),
            Ok(ChartSource::Local(dir.join("web/app-1.0.0.tgz")))
        );
        for bad in ["../etc", "/etc/passwd", "a/../../b", ""] {
            let e = s(json!({ "chart": bad })).unwrap_err();
            assert!(e.contains("inside the charts folder"), "{bad}: {e}");
        }
        assert_eq!(
            s(json!({"chart": "grafana", "repo": "https://charts.example/", "version": "^8"})),
            Ok(ChartSource::Repo {
                url: "https://charts.example/".into(),
                chart: "grafana".into(),
                version: "^8".into(),
                access: Access::default()
            })
        );
        assert_eq!(
            s(
                json!({"chart": "oci://registry.local/charts/web", "version": "1.2.3", "plainHTTP": true})
            ),
            Ok(ChartSource::Url {
                url: "oci://registry.local/charts/web".into(),
                version: "1.2.3".into(),
                access: Access {
                    plain_http: true,
                    ..Access::default()
                }
            })
        );
        assert!(s(json!({"chart": "https://x/y.tgz", "repo": "https://x/"})).is_err());
    }

    #[test]
    fn credentials_and_ca_come_from_the_namespace() {
        let mut objs = BTreeMap::new();
        objs.insert(
            ("Secret".to_string(), "creds".to_string()),
            json!({"data": {"username": B64.encode("u"), "password": B64.encode("p")}}),
        );
        objs.insert(
            ("ConfigMap".to_string(), "ca".to_string()),
            json!({"data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----"}}),
        );
        let objs = Objects(objs);
        let spec = json!({"chart": "web", "repo": "https://r/", "authSecret": {"name": "creds"},
            "repoCA": "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----",
            "repoCAConfigMap": {"name": "ca"}, "insecureSkipTLSVerify": true});
        let ChartSource::Repo { access, .. } = source(&spec, Path::new("/c"), &objs).unwrap()
        else {
            panic!("a repo")
        };
        let auth = access.auth.unwrap();
        assert_eq!((auth.username.as_str(), auth.password.as_str()), ("u", "p"));
        let ca = String::from_utf8(access.ca_pem.unwrap()).unwrap();
        assert!(ca.contains("\nA\n") && ca.contains("\nB\n"), "{ca}");
        assert!(access.insecure_skip_tls_verify);
        let missing = json!({"chart": "web", "repo": "https://r/", "authSecret": {"name": "nope"}});
        let e = source(&missing, Path::new("/c"), &objs).unwrap_err();
        assert!(e.contains("\"nope\" does not exist"), "{e}");
    }

    #[test]
    fn values_merge_in_k3s_order() {
        let spec = json!({
            "valuesContent": "a: spec\nb: spec\nc: spec\nnested: {x: 1, y: 1}\n",
            "set": {"c": "set", "n": 5, "flag": "true", "nested.y": 2},
        });
        let config = json!({"valuesContent": "b: config\nc: config\nnested: {x: 2}\n"});
        let v = super::super::release::table_json(&user_values(&spec, Some(&config)).unwrap());
        assert_eq!(v["a"], "spec");
        assert_eq!(v["b"], "config");
        assert_eq!(v["c"], "set");
        assert_eq!(v["n"], 5);
        assert_eq!(v["flag"], true);
        assert_eq!(v["nested"], json!({"x": 2, "y": 2}));
        let e = user_values(&json!({"valuesContent": "a: [1"}), None).unwrap_err();
        assert!(e.starts_with("spec.valuesContent"), "{e}");
    }
}
