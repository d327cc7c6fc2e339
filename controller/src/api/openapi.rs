//! The OpenAPI documents: `/openapi/v3` (the index kubectl reads first) and one document per
//! group-version, whose schemas are the served kinds' `k8s-openapi` schemas (with their
//! documentation, through the crate's `schemars` feature) trimmed to the fields skiff accepts
//! (`model::validate::SchemaTrim` over the allowlist) — so `kubectl explain` shows exactly
//! what skiff takes — and whose operations advertise the `fieldValidation` parameter, so
//! kubectl leaves validation to the server. Built once, on first use, and kept as bytes; the
//! index names each document by the hash of its bytes, which is also its ETag.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::SchemaGenerator;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::discovery::{group_version, group_versions};
use crate::model::kinds::KINDS;
use crate::model::validate::{with_type, KindType, SchemaTrim, WithType};

fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The content type of `/openapi/v2` (gnostic's protobuf `openapi.v2.Document`).
pub const OPENAPI_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Clone, PartialEq, prost::Message)]
struct OpenApiV2Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<OpenApiV2Info>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OpenApiV2Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `/openapi/v2`, which kubectl reads (as protobuf) only to validate a `kind: List` file on the
/// client side — for Lists it never asks whether the server validates — and for `explain`
/// when there is no v3. The document has no definitions: kubectl then leaves the items'
/// validation to the server, which validates each one strictly (unknown fields refused by
/// name), as it does every other object; `explain` reads v3.
pub fn openapi_v2() -> Vec<u8> {
    use prost::Message;
    OpenApiV2Document {
        swagger: "2.0".into(),
        info: Some(OpenApiV2Info {
            title: "skiff".into(),
            version: format!("v1.32.0+skiff.{}", env!("CARGO_PKG_VERSION")),
        }),
    }
    .encode_to_vec()
}

/// One built document: the hash of its bytes and the bytes.
pub struct Document {
    /// Hex SHA-256 of `body`: the index's `?hash=` and the ETag.
    pub hash: String,
    /// The JSON document.
    pub body: bytes::Bytes,
}

/// Every group-version's document, by path (`apis/apps/v1`), built on first use.
fn documents() -> &'static BTreeMap<String, Document> {
    static DOCUMENTS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                let body: bytes::Bytes = serde_json::to_vec(&document(g, v))
                    .expect("JSON serializes")
                    .into();
                let hash = hex::encode(Sha256::digest(&body)).to_uppercase();
                (openapi_path(g, v), Document { hash, body })
            })
            .collect()
    })
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_index() -> Value {
    let paths: serde_json::Map<String, Value> = documents()
        .iter()
        .map(|(p, d)| {
            (
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", d.hash)}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// `/openapi/v3/<path>`.
pub fn openapi_document(path: &str) -> Option<&'static Document> {
    documents().get(path)
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// The generator's reference to a kind's type (registering its schemas).
struct SchemaOf<'a>(&'a mut SchemaGenerator);

impl WithType for SchemaOf<'_> {
    type Out = Value;
    fn run<T: KindType>(self) -> Value {
        self.0.subschema_for::<T>().to_value()
    }
}

/// The OpenAPI 3 document of one group-version: per kind its trimmed schema (tagged with
/// `x-kubernetes-group-version-kind`, which `kubectl explain` looks for) and its operations,
/// which carry `x-kubernetes-group-version-kind` and the `fieldValidation`, `fieldManager`,
/// `dryRun` and `force` parameters.
fn document(g: &str, v: &str) -> Value {
    let kinds: Vec<_> = KINDS
        .iter()
        .filter(|k| group_version(k) == (g, v))
        .collect();
    let mut generator = SchemaSettings::openapi3().into_generator();
    let refs: Vec<Option<String>> = kinds
        .iter()
        .map(|k| {
            let r = with_type(k.kind, SchemaOf(&mut generator))?;
            r["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .map(String::from)
        })
        .collect();
    let defs = generator.take_definitions(true);
    let mut trim = SchemaTrim::new(&defs);
    let mut paths = serde_json::Map::new();
    let mut names = Vec::new();
    for (k, full) in kinds.iter().zip(&refs) {
        let Some(name) = full.as_deref().and_then(|n| trim.kind(k.kind, n)) else {
            continue;
        };
        names.push((k, name));
    }
    let mut schemas = trim.out;
    for (k, name) in names {
        let gvk = json!({"group": g, "version": v, "kind": k.kind});
        schemas[&name]["x-kubernetes-group-version-kind"] = json!([gvk]);
        let body = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}});
        let write_params = vec![
            param("dryRun"),
            param("fieldManager"),
            param("fieldValidation"),
        ];
        let mut patch_params = write_params.clone();
        patch_params.push(param("force"));
        let op = |verb: &str, params: &Vec<Value>| {
            json!({
                "operationId": format!("{verb}{}", k.kind),
                "parameters": params,
                "requestBody": body,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let prefix = if g.is_empty() {
            format!("/api/{v}")
        } else {
            format!("/apis/{g}/{v}")
        };
        let (collection, object) = if k.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", k.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", k.plural),
            )
        } else {
            (
                format!("{prefix}/{}", k.plural),
                format!("{prefix}/{}/{{name}}", k.plural),
            )
        };
        paths.insert(
            collection,
            json!({"post": op("post", &write_params), "get": op("list", &vec![])}),
        );
        paths.insert(
            object,
            json!({"get": op("get", &vec![]), "put": op("put", &write_params), "patch": op("patch", &patch_params), "delete": op("delete", &vec![])}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "skiff", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str) -> Value {
        serde_json::from_slice(&openapi_document(path).unwrap().body).unwrap()
    }

    /// Follows `$ref` (also inside `allOf`) to the definition.
    fn resolve<'a>(d: &'a Value, s: &'a Value) -> &'a Value {
        let r = s["$ref"]
            .as_str()
            .or_else(|| s["allOf"][0]["$ref"].as_str());
        match r {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                resolve(d, &d["components"]["schemas"][name])
            }
            None => s,
        }
    }

    fn field<'a>(d: &'a Value, kind: &str, path: &str) -> Option<&'a Value> {
        let schemas = d["components"]["schemas"].as_object().unwrap();
        let mut s = schemas
            .values()
            .find(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == kind)?;
        for seg in path.split('.') {
            let p = resolve(d, s);
            s = p["properties"].get(seg).or_else(|| {
                let items = resolve(d, &p["items"]);
                items["properties"].get(seg)
            })?;
        }
        Some(s)
    }

    #[test]
    fn schemas_document_the_fields_skiff_takes_and_only_those() {
        let apps = doc("apis/apps/v1");
        let strategy = field(&apps, "Deployment", "spec.strategy").expect("strategy");
        assert!(
            strategy["description"]
                .as_str()
                .unwrap()
                .contains("deployment strategy to use to replace existing pods"),
            "{strategy}"
        );
        assert!(field(&apps, "Deployment", "spec.strategy.rollingUpdate.maxSurge").is_some());
        assert!(field(&apps, "Deployment", "spec.paused").is_some());
        assert!(field(&apps, "ReplicaSet", "spec.paused").is_none());
        assert!(field(&apps, "Deployment", "status.conditions").is_some());
        let core = doc("api/v1");
        assert!(field(&core, "Pod", "spec.containers.image").is_some());
        // Refused fields are not documented.
        assert!(field(&core, "Pod", "spec.hostPID").is_none());
        // Named keys of a map become its properties.
        assert!(field(&core, "Pod", "spec.containers.resources.limits.memory").is_some());
        assert!(field(&core, "Pod", "spec.containers.resources.claims").is_none());
    }

    #[test]
    fn the_index_names_each_document_by_its_hash() {
        let index = openapi_index();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        let d = openapi_document("apis/apps/v1").unwrap();
        assert_eq!(url, format!("/openapi/v3/apis/apps/v1?hash={}", d.hash));
        assert_eq!(d.hash.len(), 64);
    }
}
