//! Helm's release records, as Helm 3 stores them: a Secret `sh.helm.release.v1.<name>.v<N>`
//! in the release's namespace, type `helm.sh/release.v1`, labels `owner=helm`, `name`,
//! `status`, `version`, and `data.release` = the release as JSON, gzipped, base64-encoded
//! (Helm's `storage/driver/util.go` `encodeRelease`) — which the Secret's `data` base64-encodes
//! once more, as every Secret value (`secrets.go` stores the string as bytes).

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::{json, Value};

/// The annotation on a release Secret with the digest of what produced it (the HelmChart's
/// spec, its HelmChartConfig's and the chart archive's digest): the same input makes no new
/// revision.
pub const INPUT_ANNOTATION: &str = "skiff.io/helmchart-input";

/// The annotation on a release Secret naming the HelmChart (`<ns>/<name>`) it belongs to: two
/// HelmCharts (in different namespaces) may not share a release name in one target namespace.
pub const OWNER_ANNOTATION: &str = "skiff.io/helmchart";

/// Helm's default `--history-max`: revisions kept per release.
pub const HISTORY_MAX: usize = 10;

/// The Secret name of revision `version` of release `name`.
pub fn secret_name(name: &str, version: i64) -> String {
    format!("sh.helm.release.v1.{name}.v{version}")
}

/// `base64(gzip(json))`, as Helm's `encodeRelease`.
pub fn encode(release: &Value) -> String {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&serde_json::to_vec(release).expect("json"))
        .expect("in memory");
    B64.encode(gz.finish().expect("in memory"))
}

/// The release JSON back from [`encode`]'s text (Helm's `decodeRelease`: gzip is optional).
pub fn decode(text: &str) -> Result<Value, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| format!("the release record is not base64: {e}"))?;
    let json = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..])
            .take(64 << 20)
            .read_to_end(&mut out)
            .map_err(|e| format!("the release record is not gzip: {e}"))?;
        out
    } else {
        bytes
    };
    serde_json::from_slice(&json).map_err(|e| format!("the release record is not JSON: {e}"))
}

/// The release JSON stored in a release Secret (`data.release` is base64 of [`encode`]'s text).
pub fn from_secret(secret: &Value) -> Result<Value, String> {
    let outer = secret["data"]["release"]
        .as_str()
        .ok_or("the Secret has no data.release")?;
    let inner = B64
        .decode(outer)
        .map_err(|e| format!("data.release is not base64: {e}"))?;
    decode(&String::from_utf8_lossy(&inner))
}

/// The Secret that stores `release` (its `name`, `namespace`, `version`, `info.status`).
pub fn to_secret(release: &Value, input: &str, owner: &str) -> Value {
    let name = release["name"].as_str().unwrap_or_default();
    let version = release["version"].as_i64().unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(name, version),
            "namespace": release["namespace"],
            "labels": {
                "name": name,
                "owner": "helm",
                "status": release["info"]["status"],
                "version": version.to_string(),
            },
            "annotations": {INPUT_ANNOTATION: input, OWNER_ANNOTATION: owner},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": B64.encode(encode(release))},
    })
}

/// The release Secrets of `name` among `secrets`, by version (oldest first).
pub fn of_release<'a>(secrets: impl IntoIterator<Item = &'a Value>, name: &str) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = secrets
        .into_iter()
        .filter(|s| s["type"] == "helm.sh/release.v1")
        .filter(|s| s["metadata"]["labels"]["owner"] == "helm")
        .filter(|s| s["metadata"]["labels"]["name"] == name)
        .collect();
    out.sort_by_key(|s| version_of(s));
    out
}

/// The `version` label of a release Secret.
pub fn version_of(secret: &Value) -> i64 {
    secret["metadata"]["labels"]["version"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// `secret` (a stored release Secret) with its status changed in the label and the record.
pub fn with_status(secret: &Value, status: &str) -> Result<Value, String> {
    let mut release = from_secret(secret)?;
    release["info"]["status"] = json!(status);
    let annotation = |k: &str| {
        secret["metadata"]["annotations"][k]
            .as_str()
            .unwrap_or_default()
    };
    let mut out = to_secret(
        &release,
        annotation(INPUT_ANNOTATION),
        annotation(OWNER_ANNOTATION),
    );
    out["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"].clone();
    Ok(out)
}

/// Go's `time.Time` zero value as encoding/json writes it (`info.deleted` of a live release).
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What a release record says, besides the chart.
pub struct Record<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub version: i64,
    pub status: &'a str,
    pub first_deployed: &'a str,
    pub last_deployed: &'a str,
    pub description: &'a str,
    pub notes: &'a str,
    /// The chart as Helm's `chart.Chart` JSON ([`chart_json`]).
    pub chart: Value,
    /// The user's values (`config`).
    pub config: Value,
    pub manifest: &'a str,
    /// Helm's `release.Hook`s.
    pub hooks: Vec<Value>,
}

/// The release as Helm's `release.Release` JSON.
pub fn release_json(r: Record<'_>) -> Value {
    let mut info = json!({
        "first_deployed": r.first_deployed,
        "last_deployed": r.last_deployed,
        "deleted": GO_ZERO_TIME,
        "description": r.description,
        "status": r.status,
    });
    if !r.notes.is_empty() {
        info["notes"] = json!(r.notes);
    }
    json!({
        "name": r.name,
        "info": info,
        "chart": r.chart,
        "config": r.config,
        "manifest": r.manifest,
        "hooks": r.hooks,
        "version": r.version,
        "namespace": r.namespace,
    })
}

/// A chart as Helm's `chart.Chart` JSON: `metadata` (Chart.yaml), `templates` and `files`
/// (name and base64 data), `values`, `schema`; subcharts are not part of it (Helm's
/// `dependencies` is not serialized either).
pub fn chart_json(chart: &skiff_helm::Chart) -> Value {
    let m = &chart.metadata;
    let mut meta = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        let empty = match &v {
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Bool(b) => !b,
            _ => false,
        };
        if !empty {
            meta.insert(k.to_string(), v);
        }
    };
    put("name", json!(m.name));
    put("home", json!(m.home));
    put("sources", json!(m.sources));
    put("version", json!(m.version));
    put("description", json!(m.description));
    put("keywords", json!(m.keywords));
    put(
        "maintainers",
        Value::Array(
            m.maintainers
                .iter()
                .map(|x| json!({"name": x.name, "email": x.email, "url": x.url}))
                .collect(),
        ),
    );
    put("icon", json!(m.icon));
    put("apiVersion", json!(m.api_version));
    put("condition", json!(m.condition));
    put("tags", json!(m.tags));
    put("appVersion", json!(m.app_version()));
    put("deprecated", json!(m.deprecated));
    put("annotations", json!(m.annotations));
    put("kubeVersion", json!(m.kube_version));
    put(
        "dependencies",
        Value::Array(
            m.dependencies
                .iter()
                .map(|d| {
                    json!({"name": d.name, "version": d.version, "repository": d.repository,
                           "condition": d.condition, "tags": d.tags, "alias": d.alias})
                })
                .collect(),
        ),
    );
    put("type", json!(m.chart_type));
    let file = |name: &str, data: &[u8]| json!({"name": name, "data": B64.encode(data)});
    let templates: Vec<Value> = chart
        .templates
        .iter()
        .map(|(name, text)| file(name, text.as_bytes()))
        .collect();
    let schema = chart
        .files
        .get("values.schema.json")
        .map_or(Value::Null, |s| json!(B64.encode(s)));
    let files: Vec<Value> = chart
        .files
        .iter()
        .filter(|(name, _)| name.as_str() != "values.schema.json")
        .map(|(name, data)| file(name, data))
        .collect();
    json!({
        "metadata": meta,
        "lock": null,
        "templates": templates,
        "values": table_json(&chart.values),
        "schema": schema,
        "files": files,
    })
}

/// Values as JSON.
pub fn table_json(t: &skiff_helm::values::Table) -> Value {
    skiff_helm::value::to_json(&skiff_helm::value::map(t.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_secret_decodes_as_helm_reads_it() {
        let release = release_json(Record {
            name: "web",
            namespace: "apps",
            version: 3,
            status: "deployed",
            first_deployed: "2026-01-01T00:00:00Z",
            last_deployed: "2026-01-02T00:00:00Z",
            description: "Upgrade complete",
            notes: "hello",
            chart: json!({"metadata": {"name": "web", "version": "1.0.0"}, "values": {"a": 1}}),
            config: json!({"replicas": 2}),
            manifest: "---\n# Source: web/templates/cm.yaml\nkind: ConfigMap\n",
            hooks: vec![],
        });
        let secret = to_secret(&release, "sha256:x", "default/web");
        assert_eq!(secret["metadata"]["name"], "sh.helm.release.v1.web.v3");
        assert_eq!(secret["metadata"]["labels"]["owner"], "helm");
        assert_eq!(secret["metadata"]["labels"]["status"], "deployed");
        assert_eq!(secret["metadata"]["labels"]["version"], "3");
        assert_eq!(secret["type"], "helm.sh/release.v1");
        // By hand, as a Helm client reads it: the Secret's base64, Helm's base64, gzip, JSON.
        let outer = B64
            .decode(secret["data"]["release"].as_str().unwrap())
            .unwrap();
        let gz = B64.decode(outer).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let mut json = String::new();
        GzDecoder::new(&gz[..]).read_to_string(&mut json).unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], "web");
        assert_eq!(back["namespace"], "apps");
        assert_eq!(back["version"], 3);
        assert_eq!(back["info"]["status"], "deployed");
        assert_eq!(back["info"]["notes"], "hello");
        assert_eq!(back["config"]["replicas"], 2);
        assert_eq!(back["chart"]["metadata"]["name"], "web");
        assert!(back["manifest"]
            .as_str()
            .unwrap()
            .starts_with("---\n# Source: web/templates/cm.yaml"));
        assert_eq!(from_secret(&secret).unwrap(), back);
        // Superseded: the label and the record change together.
        let old = with_status(&secret, "superseded").unwrap();
        assert_eq!(old["metadata"]["labels"]["status"], "superseded");
        assert_eq!(from_secret(&old).unwrap()["info"]["status"], "superseded");
        assert_eq!(old["metadata"]["annotations"][INPUT_ANNOTATION], "sha256:x");
        assert_eq!(
            old["metadata"]["annotations"][OWNER_ANNOTATION],
            "default/web"
        );
    }
}
