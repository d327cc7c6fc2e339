//! `values.schema.json`: a chart's values checked against its JSON Schema before anything is
//! rendered, as Helm does — each chart with its own values after coalescing (the parent's
//! merged values, each enabled subchart with the part under its name), every violation
//! listed with the path it is at. The `jsonschema` crate without its resolvers: a `$ref` to a
//! remote or file URL is never fetched (a chart cannot make the renderer read or send): it
//! stands for `{}`, and a schema that still cannot be compiled without it is not applied
//! (Helm would fetch it; offline, skiff renders the chart unchecked rather than refuse it).

use crate::chart::Chart;
use crate::value::to_json;
use crate::values::Table;

/// The violations of `chart`'s schema by `values` (`- at '/path': message` lines), or a
/// schema that cannot be used, named as such. Empty when the chart has no schema.
pub(crate) fn violations(chart: &Chart, values: &Table) -> Vec<String> {
    let Some(text) = &chart.schema else {
        return Vec::new();
    };
    let schema: serde_json::Value = match serde_json::from_slice(text) {
        Ok(s) => s,
        Err(e) => return vec![format!("- values.schema.json is not JSON: {e}")],
    };
    let validator = match jsonschema::options().with_retriever(Offline).build(&schema) {
        Ok(v) => v,
        // Helm fetches a remote `$ref` (bjw-s' app-template points at its library's schema
        // by URL); skiff never does: such a schema is not applied, rather than refusing the
        // chart offline.
        Err(_) if remote_refs(&schema) => return Vec::new(),
        Err(e) => return vec![format!("- values.schema.json cannot be used: {e}")],
    };
    let instance = to_json(&gotmpl::Value::Map(gotmpl::MapRef::new(values.clone())));
    validator
        .iter_errors(&instance)
        .map(|e| format!("- at '{}': {}", e.instance_path(), message(&e)))
        .collect()
}

/// Remote references resolve to the schema that takes everything (`{}`): nothing is fetched.
struct Offline;

impl jsonschema::Retrieve for Offline {
    fn retrieve(
        &self,
        _uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        Ok(serde_json::json!({}))
    }
}

/// Whether the schema has a `$ref` outside itself.
fn remote_refs(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "$ref" && v.as_str().is_some_and(|r| !r.starts_with('#'))) || remote_refs(v)
        }),
        serde_json::Value::Array(a) => a.iter().any(remote_refs),
        _ => false,
    }
}

/// A violation in the words Helm (santhosh-tekuri/jsonschema) uses for the common kinds —
/// chart tests match on them (`does not match pattern`) —, else the crate's own.
fn message(e: &jsonschema::ValidationError) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let value = e.instance();
    let shown = match value.as_ref() {
        serde_json::Value::String(s) => format!("'{s}'"),
        v => v.to_string(),
    };
    match e.kind() {
        K::Pattern { pattern } => format!("{shown} does not match pattern '{pattern}'"),
        K::Required { property } => {
            format!(
                "missing property '{}'",
                property.as_str().unwrap_or_default()
            )
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::chart::from_files;
    use std::collections::BTreeMap;

    fn chart(schema: &str, sub_schema: Option<&str>) -> crate::Chart {
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut add = |p: &str, t: &str| {
            files.insert(p.to_string(), t.as_bytes().to_vec());
        };
        add(
            "Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n- name: db\n  version: 0.1.0\n",
        );
        add("values.yaml", "replicas: 1\nimage: {tag: v1}\n");
        add("values.schema.json", schema);
        add("templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  r: {{ .Values.replicas | quote }}\n");
        add(
            "charts/db/Chart.yaml",
            "apiVersion: v2\nname: db\nversion: 0.1.0\n",
        );
        add("charts/db/values.yaml", "port: 5432\n");
        if let Some(s) = sub_schema {
            add("charts/db/values.schema.json", s);
        }
        from_files(files, "web").unwrap()
    }

    fn render(c: &crate::Chart, values: &str) -> Result<(), String> {
        let v = crate::values::parse_values(values, "values").unwrap();
        crate::render(c, v, &crate::RenderOptions::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    const SCHEMA: &str = r#"{"$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object", "required": ["replicas"],
        "properties": {"replicas": {"type": "integer", "minimum": 1},
                       "image": {"type": "object", "properties": {"tag": {"type": "string"}}}}}"#;

    #[test]
    fn values_are_checked_against_the_schema_with_their_paths() {
        let c = chart(
            SCHEMA,
            Some(r#"{"properties": {"port": {"type": "integer"}}}"#),
        );
        render(&c, "").unwrap();
        render(&c, "replicas: 3\ndb: {port: 5433}\n").unwrap();
        let e = render(&c, "replicas: 0\nimage: {tag: 7}\ndb: {port: high}\n").unwrap_err();
        assert!(
            e.contains(
                "values don't meet the specifications of the schema(s) in the following chart(s)"
            ),
            "{e}"
        );
        assert!(
            e.contains("web:\n") && e.contains("- at '/replicas'"),
            "{e}"
        );
        assert!(e.contains("- at '/image/tag'"), "{e}");
        assert!(e.contains("db:\n") && e.contains("- at '/port'"), "{e}");
        // null deletes the default: the required key is then missing.
        let e = render(&c, "replicas: null\n").unwrap_err();
        assert!(e.contains("- at '': missing property 'replicas'"), "{e}");
    }

    #[test]
    fn a_remote_reference_is_not_fetched() {
        // The remote part takes anything; the local part still applies.
        let c = chart(
            r#"{"properties": {"image": {"$ref": "http://127.0.0.1:9/image.json"},
                               "replicas": {"type": "integer"}}}"#,
            None,
        );
        render(&c, "image: {anything: [1]}\n").unwrap();
        let e = render(&c, "replicas: many\n").unwrap_err();
        assert!(e.contains("- at '/replicas'"), "{e}");
        // A pointer into a document skiff does not fetch: the schema is not applied.
        let c = chart(
            r#"{"$ref": "http://127.0.0.1:9/defs.json#/definitions/values"}"#,
            None,
        );
        render(&c, "replicas: many\n").unwrap();
        let c = chart(
            r#"{"type": "object", "properties": {"replicas": {"type": 7}}}"#,
            None,
        );
        let e = render(&c, "").unwrap_err();
        assert!(e.contains("values.schema.json cannot be used"), "{e}");
        let c = chart("{not json", None);
        assert!(render(&c, "").unwrap_err().contains("is not JSON"));
    }
}
