//! k3s's `helm.cattle.io/v1` HelmChart and HelmChartConfig: their types (the field names of
//! k3s-io/helm-controller's `pkg/apis/helm.cattle.io/v1/types.go`), their OpenAPI schemas, and
//! what skiff honours of them. skiff renders charts itself (`skiff-helm`), so the fields that
//! configure k3s's helm Job are refused by name, with that reason.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{err, FieldError};

/// A reference to an object in the HelmChart's own namespace (`corev1.LocalObjectReference`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LocalRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `spec` of a HelmChart, as k3s names its fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_namespace: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "repoCA")]
    pub repo_ca: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "repoCAConfigMap"
    )]
    pub repo_ca_config_map: Option<LocalRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<BTreeMap<String, IntOrString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<LocalRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_pass_credentials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "plainHTTP")]
    pub plain_http: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_registry_secret: Option<LocalRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Value>,
}

/// `spec` of a HelmChartConfig.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<String>,
}

/// A whole object of one of the two kinds (`S` its spec).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<S>,
    /// The reconciler's; kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// `helm.cattle.io/v1` HelmChart.
pub type HelmChart = Object<HelmChartSpec>;
/// `helm.cattle.io/v1` HelmChartConfig.
pub type HelmChartConfig = Object<HelmChartConfigSpec>;

fn str_prop(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn bool_prop(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

fn local_ref(description: &str) -> Value {
    json!({"type": "object", "description": description,
           "properties": {"name": {"type": "string"}}})
}

fn object_schema(
    generator: &mut SchemaGenerator,
    description: &str,
    spec: Value,
    status: Value,
) -> Schema {
    let meta = generator.subschema_for::<ObjectMeta>().to_value();
    Schema::try_from(json!({
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": str_prop("helm.cattle.io/v1"),
            "kind": str_prop("The kind."),
            "metadata": meta,
            "spec": spec,
            "status": status,
        },
    }))
    .expect("an object schema")
}

impl JsonSchema for Object<HelmChartSpec> {
    fn schema_name() -> Cow<'static, str> {
        "io.cattle.helm.v1.HelmChart".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let unsupported =
            "Not supported by skiff: skiff renders the chart itself and runs no helm Job.";
        let spec = json!({"type": "object", "description": "The chart to install and how.", "properties": {
            "chart": str_prop("The chart: a name in `repo`, a path under <data-dir>/charts/, `oci://host/path/name` or an `https://…/x.tgz` URL."),
            "repo": str_prop("An HTTP(S) chart repository (with index.yaml)."),
            "version": str_prop("The chart version or semver range (empty: the latest stable)."),
            "targetNamespace": str_prop("The release's namespace (default: the HelmChart's)."),
            "createNamespace": bool_prop("Create targetNamespace if it does not exist."),
            "valuesContent": str_prop("Values, as a YAML document, over the chart's defaults."),
            "set": {"type": "object", "description": "Values by path (`a.b=1` as Helm's --set), applied last.",
                    "additionalProperties": {"x-kubernetes-int-or-string": true}},
            "chartContent": str_prop("The chart as a base64-encoded .tgz."),
            "repoCA": str_prop("PEM certificates trusted for the repository."),
            "repoCAConfigMap": local_ref("A ConfigMap in this namespace with PEM certificates (any key)."),
            "authSecret": local_ref("A kubernetes.io/basic-auth Secret in this namespace for the repository."),
            "authPassCredentials": bool_prop("Send the credentials to chart URLs on other hosts too."),
            "insecureSkipTLSVerify": bool_prop("Do not verify the repository's certificate."),
            "plainHTTP": bool_prop("OCI: talk HTTP to the registry."),
            "helmVersion": str_prop("Only v3 (or empty)."),
            "timeout": str_prop("How long hooks may take (Go duration, default 300s)."),
            "failurePolicy": str_prop("abort (the default: a failed upgrade keeps the previous objects); reinstall is not supported by skiff."),
            "bootstrap": bool_prop(unsupported),
            "jobImage": str_prop(unsupported),
            "backOffLimit": {"type": "integer", "format": "int32", "description": unsupported},
            "dockerRegistrySecret": local_ref(unsupported),
            "podSecurityContext": {"type": "object", "description": unsupported},
            "securityContext": {"type": "object", "description": unsupported},
        }});
        let status = json!({"type": "object", "description": "What skiff did with it.", "properties": {
            "jobName": str_prop("Always empty in skiff (no helm Job)."),
            "revision": {"type": "integer", "description": "The installed release revision."},
            "chartVersion": str_prop("The installed chart's version."),
            "chartDigest": str_prop("sha256 of the installed chart archive."),
            "observedGeneration": {"type": "integer"},
            "conditions": {"type": "array", "items": {"type": "object", "properties": {
                "type": str_prop("Installed or Failed."),
                "status": str_prop("True, False or Unknown."),
                "reason": str_prop("Why, in one word."),
                "message": str_prop("What happened."),
                "lastTransitionTime": str_prop("When it last changed."),
            }}},
        }});
        object_schema(
            generator,
            "A Helm chart release managed by skiff (k3s's HelmChart).",
            spec,
            status,
        )
    }
}

impl JsonSchema for Object<HelmChartConfigSpec> {
    fn schema_name() -> Cow<'static, str> {
        "io.cattle.helm.v1.HelmChartConfig".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let spec = json!({"type": "object", "properties": {
            "valuesContent": str_prop("Values over the HelmChart of the same name and namespace's valuesContent."),
            "failurePolicy": str_prop("abort (or empty); reinstall is not supported by skiff."),
        }});
        object_schema(
            generator,
            "Values for the HelmChart of the same name and namespace (k3s's HelmChartConfig).",
            spec,
            json!({"type": "object"}),
        )
    }
}

/// Parses a Go duration as `metav1.Duration` writes it (`300s`, `5m`, `1h30m`, `1.5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 300s, 5m, 1h30m)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (u, tail) = tail.split_at(unit);
        let scale = match u {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

/// The finalizer that holds a deleted HelmChart until its release is uninstalled (k3s's is
/// `wrangler.cattle.io/on-helm-chart-remove`); the only one a HelmChart may carry.
pub const FINALIZER: &str = "skiff.io/helmchart-uninstall";

/// Why skiff refuses a k3s field that configures its helm Job.
const NO_JOB: &str =
    "is not supported by skiff: skiff renders and installs the chart itself and runs no helm Job";

/// The semantics of a HelmChart (or HelmChartConfig) skiff accepts.
pub(super) fn check(obj: &Value, out: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    if obj["kind"] == "HelmChartConfig" {
        failure_policy(&spec["failurePolicy"], out);
        values_content(&spec["valuesContent"], out);
        return;
    }
    for f in obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if f != FINALIZER {
            out.push(err(
                "metadata.finalizers",
                format!("{f}: a HelmChart carries only skiff's own finalizer {FINALIZER:?}, which its reconciler sets and removes"),
            ));
        }
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name.len() > 53 || name.contains('.') {
        // The name is the release's: Helm's rule (a DNS-1123 label of at most 53, which
        // leaves room for the `sh.helm.release.v1.<name>.v<N>` Secret).
        out.push(err(
            "metadata.name",
            format!("{name:?}: a HelmChart's name is its Helm release's, at most 53 characters and without dots"),
        ));
    }
    if !spec.is_object() {
        out.push(err("spec", "is required (spec.chart or spec.chartContent)"));
        return;
    }
    let has = |f: &str| match &spec[f] {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Bool(b) => *b,
        Value::Object(m) => !m.is_empty(),
        _ => true,
    };
    for f in [
        "jobImage",
        "backOffLimit",
        "dockerRegistrySecret",
        "podSecurityContext",
        "securityContext",
    ] {
        if has(f) {
            out.push(err(format!("spec.{f}"), NO_JOB));
        }
    }
    if has("bootstrap") {
        out.push(err(
            "spec.bootstrap",
            "is not supported by skiff: there is no helm Job to run on the host network before the cluster's network is up; skiff installs the chart once the API serves",
        ));
    }
    if let Some(v) = spec["helmVersion"].as_str() {
        if !v.is_empty() && v != "v3" {
            out.push(err(
                "spec.helmVersion",
                format!("{v:?}: skiff renders charts as Helm 3 does (give v3 or nothing)"),
            ));
        }
    }
    failure_policy(&spec["failurePolicy"], out);
    values_content(&spec["valuesContent"], out);
    if let Some(t) = spec["timeout"].as_str() {
        if let Err(e) = parse_duration(t) {
            out.push(err("spec.timeout", e));
        }
    }
    if let Some(ns) = spec["targetNamespace"].as_str() {
        if !ns.is_empty() && !super::is_dns_label(ns) {
            out.push(err(
                "spec.targetNamespace",
                format!("{ns:?} is not a valid namespace name"),
            ));
        }
    }
    if let Some(set) = spec["set"].as_object() {
        if set.keys().any(|k| k.is_empty()) {
            out.push(err("spec.set", "a key is empty"));
        }
    }
    let content = spec["chartContent"].as_str().unwrap_or_default();
    let chart = spec["chart"].as_str().unwrap_or_default();
    if content.is_empty() && chart.is_empty() {
        out.push(err(
            "spec.chart",
            "is required (or spec.chartContent, a base64 .tgz)",
        ));
    }
    if !content.is_empty() {
        if base64::engine::general_purpose::STANDARD
            .decode(content.split_whitespace().collect::<String>())
            .is_err()
        {
            out.push(err("spec.chartContent", "is not valid base64"));
        }
        if has("repo") {
            out.push(err(
                "spec.repo",
                "may not be given with spec.chartContent (the chart is in the object itself)",
            ));
        }
    }
}

fn failure_policy(v: &Value, out: &mut Vec<FieldError>) {
    match v.as_str().unwrap_or_default() {
        "" | "abort" => {}
        "reinstall" => out.push(err(
            "spec.failurePolicy",
            "\"reinstall\" is not supported by skiff: a failed upgrade keeps the previous revision's objects (abort); delete and re-create the HelmChart to reinstall",
        )),
        p => out.push(err(
            "spec.failurePolicy",
            format!("{p:?} is not abort or reinstall"),
        )),
    }
}

fn values_content(v: &Value, out: &mut Vec<FieldError>) {
    let Some(text) = v.as_str() else { return };
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(serde_yaml_ng::Value::Mapping(_) | serde_yaml_ng::Value::Null) => {}
        Ok(_) => out.push(err(
            "spec.valuesContent",
            "must be a YAML mapping of values",
        )),
        Err(e) => out.push(err("spec.valuesContent", format!("is not valid YAML: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(spec: Value) -> Value {
        json!({"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
               "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn a_k3s_helmchart_passes_and_job_fields_are_refused_by_name() {
        let ok = chart(json!({"chart": "web", "repo": "https://charts.example/",
            "version": "^1.2", "targetNamespace": "apps", "createNamespace": true,
            "valuesContent": "a: 1\n", "set": {"b": "x", "c": 2}, "timeout": "5m",
            "authSecret": {"name": "creds"}, "helmVersion": "v3", "failurePolicy": "abort"}));
        super::super::validate(&ok).unwrap();
        let mut bad = ok.clone();
        bad["spec"]["jobImage"] = json!("rancher/klipper-helm:v0.9");
        bad["spec"]["failurePolicy"] = json!("reinstall");
        let e = super::super::validate(&bad).unwrap_err();
        assert_eq!(e[0].field, "spec.jobImage");
        assert!(e[0].message.contains("no helm Job"), "{}", e[0]);
        assert_eq!(e[1].field, "spec.failurePolicy");
        let mut unknown = ok;
        unknown["spec"]["chartz"] = json!("x");
        let e = super::super::validate(&unknown).unwrap_err();
        assert_eq!(e[0].field, "spec.chartz");
        assert!(e[0].message.contains("unknown field"), "{}", e[0]);
    }

    #[test]
    fn chart_or_content_is_required_and_values_must_parse() {
        let e = super::super::validate(&chart(json!({"valuesContent": "a: [1"}))).unwrap_err();
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.valuesContent", "spec.chart"]);
        let e = super::super::validate(&chart(json!({"chartContent": "!!"}))).unwrap_err();
        assert_eq!(e[0].field, "spec.chartContent");
        let e =
            super::super::validate(&chart(json!({"chart": "x", "timeout": "soon"}))).unwrap_err();
        assert_eq!(e[0].field, "spec.timeout");
        let mut long = chart(json!({"chart": "x"}));
        long["metadata"]["name"] = json!("a".repeat(54));
        let e = super::super::validate(&long).unwrap_err();
        assert_eq!(e[0].field, "metadata.name");
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5").is_err());
    }
}
