//! Conversions between template values (gotmpl's `Value`) and YAML/JSON documents.
//!
//! Numbers follow Helm: values read from YAML or JSON become float64 (Helm decodes values
//! through sigs.k8s.io/yaml into `interface{}`, so every number is a float64), while `--set`
//! integers stay integers. On the way out (toYaml, toJson) an integral float prints as an
//! integer, as Go's encoding/json does.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{MapRef, Value};

/// A YAML document into a template value (numbers become floats, as in Helm).
pub fn from_yaml(v: &serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Nil,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        Y::String(s) => Value::String(s.as_str().into()),
        Y::Sequence(items) => Value::List(items.iter().map(from_yaml).collect::<Vec<_>>().into()),
        Y::Mapping(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                out.insert(yaml_key(k), from_yaml(v));
            }
            Value::Map(MapRef::new(out))
        }
        Y::Tagged(t) => from_yaml(&t.value),
    }
}

/// A map key as Go's YAML-to-JSON conversion writes it.
fn yaml_key(k: &serde_yaml_ng::Value) -> Arc<str> {
    use serde_yaml_ng::Value as Y;
    match k {
        Y::String(s) => s.as_str().into(),
        Y::Null => "null".into(),
        Y::Bool(b) => b.to_string().into(),
        Y::Number(n) => n.to_string().into(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .into(),
    }
}

/// A JSON document into a template value (numbers become floats).
pub fn from_json(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(s.as_str().into()),
        J::Array(items) => Value::List(items.iter().map(from_json).collect::<Vec<_>>().into()),
        J::Object(m) => Value::Map(MapRef::new(
            m.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_json(v)))
                .collect(),
        )),
    }
}

/// A template value as JSON (functions become null, as encoding/json cannot encode them;
/// integral floats become integers).
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil | Value::Function(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Uint(u) => J::from(*u),
        Value::Float(f) => float_json(*f),
        Value::String(s) => J::String(s.to_string()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.read()
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
    }
}

fn float_json(f: f64) -> serde_json::Value {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f.abs() < 9.007_199_254_740_992e15 {
            return serde_json::Value::from(f as i64);
        }
        // Large integral floats: Go prints all digits.
        if let Ok(n) = format!("{f:.0}").parse::<serde_json::Number>() {
            return serde_json::Value::Number(n);
        }
    }
    serde_json::Number::from_f64(f)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// A string value.
pub fn s(v: impl Into<Arc<str>>) -> Value {
    Value::String(v.into())
}

/// A map value from pairs.
pub fn map<I, K>(pairs: I) -> Value
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<Arc<str>>,
{
    Value::Map(MapRef::new(
        pairs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
    ))
}

/// The entries of a map value (empty for anything else).
pub fn entries(v: &Value) -> BTreeMap<Arc<str>, Value> {
    match v {
        Value::Map(m) => m.snapshot(),
        _ => BTreeMap::new(),
    }
}

/// A copy that shares no map with the original (maps are shared by reference, as in Go).
pub fn deep_copy(v: &Value) -> Value {
    match v {
        Value::Map(m) => Value::Map(MapRef::new(
            m.read()
                .iter()
                .map(|(k, v)| (k.clone(), deep_copy(v)))
                .collect(),
        )),
        Value::List(l) => Value::List(l.iter().map(deep_copy).collect::<Vec<_>>().into()),
        other => other.clone(),
    }
}
