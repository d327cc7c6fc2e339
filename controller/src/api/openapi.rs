//! The OpenAPI documents: `/openapi/v2` (one Swagger 2.0 document of every kind, converted
//! by `openapi_v2.rs` from the same generation), `/openapi/v3` (the index kubectl reads
//! first) and one document per group-version, whose schemas are the served kinds'
//! `k8s-openapi` schemas (with their documentation, through the crate's `schemars` feature)
//! trimmed to the fields skiff accepts
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
use crate::model::kinds::{KindInfo, KINDS};
use crate::model::validate::{with_type, KindType, SchemaTrim, WithType};

fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The content type `/openapi/v2` answers protobuf with (gnostic's `openapi.v2.Document`), as
/// kube-apiserver does; clients ask for it also under its older name with `@`.
pub const OPENAPI_V2_PB: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: the Swagger 2.0 document of every served kind, converted from the same
/// trimmed schemas and operations as the v3 documents ([`super::openapi_v2`]), as JSON and as
/// gnostic protobuf (what client-go's `OpenAPISchema()` asks for: `kubectl explain
/// --output=plaintext-openapiv2`, kubectl's and Helm's client-side validation). Built once.
pub struct V2 {
    /// The JSON document.
    pub json: Document,
    /// The same document as a protobuf `openapi.v2.Document`.
    pub proto: Document,
}

fn v2() -> &'static V2 {
    static V2_DOC: OnceLock<V2> = OnceLock::new();
    V2_DOC.get_or_init(|| {
        let kinds: Vec<_> = KINDS.iter().collect();
        let swagger = super::openapi_v2::swagger(&document_of(&kinds));
        let json = serde_json::to_vec(&swagger).expect("JSON serializes");
        V2 {
            json: Document::of(json),
            proto: Document::of(super::openapi_v2::encode(&swagger)),
        }
    })
}

/// The representation of `/openapi/v2` the `Accept` header asks for (its content type and the
/// document), as kube-apiserver chooses it: the clauses by quality and specificity, the first
/// that names JSON or the protobuf type (or a wildcard: JSON) wins; `None` (406) when none does.
pub fn openapi_v2(accept: &str) -> Option<(&'static str, &'static Document)> {
    let accept = if accept.trim().is_empty() {
        "*/*"
    } else {
        accept
    };
    let mut clauses: Vec<(f32, &str, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';').map(str::trim);
            let (ty, sub) = parts.next()?.split_once('/')?;
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, ty, sub))
        })
        .filter(|(q, _, _)| *q > 0.0)
        .collect();
    // By quality, then the more specific first (`application/*` after `application/json`).
    let wildcards = |c: &(f32, &str, &str)| (c.1 == "*") as u8 + (c.2 == "*") as u8;
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(wildcards(a).cmp(&wildcards(b))));
    let doc = v2();
    clauses.into_iter().find_map(|(_, ty, sub)| {
        if ty != "application" && ty != "*" {
            return None;
        }
        match sub {
            "json" | "*" => Some(("application/json", &doc.json)),
            "com.github.proto-openapi.spec.v2@v1.0+protobuf"
            | "com.github.proto-openapi.spec.v2.v1.0+protobuf" => Some((OPENAPI_V2_PB, &doc.proto)),
            _ => None,
        }
    })
}

/// One built document: the hash of its bytes and the bytes.
pub struct Document {
    /// Hex SHA-256 of `body`: the index's `?hash=` and the ETag.
    pub hash: String,
    /// The document's bytes.
    pub body: bytes::Bytes,
}

impl Document {
    fn of(body: Vec<u8>) -> Self {
        let hash = hex::encode(Sha256::digest(&body)).to_uppercase();
        Document {
            hash,
            body: body.into(),
        }
    }
}

/// Every group-version's document, by path (`apis/apps/v1`), built on first use.
fn documents() -> &'static BTreeMap<String, Document> {
    static DOCUMENTS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                let kinds: Vec<_> = KINDS
                    .iter()
                    .filter(|k| group_version(k) == (g, v))
                    .collect();
                let body = serde_json::to_vec(&document_of(&kinds)).expect("JSON serializes");
                (openapi_path(g, v), Document::of(body))
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

/// The OpenAPI 3 document of `kinds` (one group-version's for `/openapi/v3`, every kind's for
/// `/openapi/v2`): per kind its trimmed schema (tagged with `x-kubernetes-group-version-kind`,
/// which `kubectl explain` looks for) and its operations, which carry
/// `x-kubernetes-group-version-kind` and the `fieldValidation`, `fieldManager`, `dryRun` and
/// `force` parameters.
fn document_of(kinds: &[&'static KindInfo]) -> Value {
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
        let (g, v) = group_version(k);
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
        assert!(field(&core, "Pod", "spec.hostUsers").is_none());
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

    /// What kube-openapi's `proto.NewOpenAPIData` (kubectl's reader of `/openapi/v2`) refuses:
    /// a `$ref` to no definition or beside a type or properties, an array without exactly one
    /// items schema, more than one type, a primitive type it does not know.
    fn check_kubectl_parses(
        s: &super::super::openapi_v2::pb::Schema,
        defs: &std::collections::HashSet<&str>,
        path: &str,
    ) {
        let types = s
            .r#type
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_default();
        if !s.xref.is_empty() {
            let name = s.xref.strip_prefix("#/definitions/").expect(path);
            assert!(defs.contains(name), "{path}: unknown model {name}");
            assert!(
                types.is_empty() && s.properties.is_none(),
                "{path}: $ref with a type"
            );
            return;
        }
        assert!(types.len() <= 1, "{path}: types {types:?}");
        match types.first().map(String::as_str) {
            Some("array") => {
                let items = &s.items.as_ref().expect(path).schema;
                assert_eq!(items.len(), 1, "{path}: items");
                check_kubectl_parses(&items[0], defs, &format!("{path}[]"));
            }
            Some("object") | None => {}
            Some(t) => assert!(
                ["string", "number", "integer", "boolean"].contains(&t),
                "{path}: type {t}"
            ),
        }
        for p in s.properties.iter().flat_map(|p| &p.additional_properties) {
            check_kubectl_parses(
                p.value.as_ref().unwrap(),
                defs,
                &format!("{path}.{}", p.name),
            );
        }
        if let Some(super::super::openapi_v2::pb::AdditionalProperties::Schema(a)) = s
            .additional_properties
            .as_ref()
            .and_then(|a| a.oneof.as_ref())
        {
            check_kubectl_parses(a, defs, &format!("{path}{{}}"));
        }
    }

    #[test]
    fn openapi_v2_protobuf_decodes_to_the_trimmed_schemas() {
        use super::super::openapi_v2::pb;
        use prost::Message;
        let (content_type, d) =
            openapi_v2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf").unwrap();
        assert_eq!(content_type, OPENAPI_V2_PB);
        let doc = pb::Document::decode(d.body.clone()).unwrap();
        // Round trip: the structs read every byte skiff writes.
        assert_eq!(doc.encode_to_vec(), d.body.to_vec());
        assert_eq!(doc.swagger, "2.0");
        let defs = &doc.definitions.as_ref().unwrap().additional_properties;
        let names: std::collections::HashSet<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        for def in defs {
            check_kubectl_parses(def.value.as_ref().unwrap(), &names, &def.name);
        }
        let get = |name: &str| {
            defs.iter()
                .find(|d| d.name == name)
                .and_then(|d| d.value.clone())
                .unwrap_or_else(|| panic!("{name} in {names:?}"))
        };
        let prop = |s: &pb::Schema, name: &str| {
            s.properties
                .as_ref()
                .and_then(|p| p.additional_properties.iter().find(|p| p.name == name))
                .and_then(|p| p.value.clone())
        };
        let deployment = get("io.k8s.api.apps.v1.Deployment");
        let gvk = &deployment
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .unwrap()
            .value
            .as_ref()
            .unwrap()
            .yaml;
        let gvk: Value = serde_yaml_ng::from_str(gvk).unwrap();
        assert_eq!(
            gvk,
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        let spec = prop(&deployment, "spec").unwrap();
        let spec = get(spec.xref.strip_prefix("#/definitions/").unwrap());
        let strategy = prop(&spec, "strategy").unwrap();
        assert!(
            strategy
                .description
                .contains("deployment strategy to use to replace existing pods"),
            "{strategy:?}"
        );
        assert!(prop(&spec, "paused").is_some());
        // The core group's version-kind names the empty group.
        let pod = get("io.k8s.api.core.v1.Pod");
        let gvk = &pod.vendor_extension[0].value.as_ref().unwrap().yaml;
        let gvk: Value = serde_yaml_ng::from_str(gvk).unwrap();
        assert_eq!(gvk, json!([{"group": "", "version": "v1", "kind": "Pod"}]));
        // Refused fields are not there.
        let pod_spec = get(prop(&pod, "spec")
            .unwrap()
            .xref
            .strip_prefix("#/definitions/")
            .unwrap());
        assert!(prop(&pod_spec, "containers").is_some());
        assert!(prop(&pod_spec, "hostUsers").is_none());
        // The PATCH operation advertises fieldValidation (client-go's v2 parameter check).
        let paths = &doc.paths.as_ref().unwrap().path;
        let item = paths
            .iter()
            .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            .and_then(|p| p.value.clone())
            .unwrap();
        let patch = item.patch.unwrap();
        assert!(patch.parameters.iter().any(|p| matches!(
            p.parameter.as_ref().and_then(|p| p.oneof.as_ref()),
            Some(pb::ParameterOneof::NonBodyParameter(n))
                if n.query_parameter_sub_schema.as_ref().is_some_and(|q| q.name == "fieldValidation")
        )));
    }

    #[test]
    fn openapi_v2_json_is_swagger_with_kubernetes_definition_names() {
        let (content_type, d) = openapi_v2("application/json").unwrap();
        assert_eq!(content_type, "application/json");
        let doc: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        let deployment = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        // References point into the definitions, and OpenAPI 3's wrapping is gone.
        let text = String::from_utf8_lossy(&d.body);
        assert!(!text.contains("#/components/schemas/"));
        assert!(!text.contains("\"nullable\""));
        let spec = deployment["properties"]["spec"]["$ref"].as_str().unwrap();
        assert!(
            doc["definitions"][spec.strip_prefix("#/definitions/").unwrap()]["properties"]
                ["strategy"]
                .is_object()
        );
        // The same document as the protobuf one.
        use prost::Message;
        let (_, pb) =
            openapi_v2("application/com.github.proto-openapi.spec.v2.v1.0+protobuf").unwrap();
        let pb = super::super::openapi_v2::pb::Document::decode(pb.body.clone()).unwrap();
        let mut pb_names: Vec<_> = pb
            .definitions
            .unwrap()
            .additional_properties
            .into_iter()
            .map(|d| d.name)
            .collect();
        pb_names.sort();
        let json_names: Vec<_> = doc["definitions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(pb_names, json_names);
        assert_ne!(
            d.hash,
            openapi_v2("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                .unwrap()
                .1
                .hash
        );
    }

    #[test]
    fn openapi_v2_answers_the_type_asked_for() {
        let ct = |accept: &str| openapi_v2(accept).map(|(ct, _)| ct);
        assert_eq!(ct(""), Some("application/json"));
        assert_eq!(ct("*/*"), Some("application/json"));
        assert_eq!(ct("application/json, */*"), Some("application/json"));
        assert_eq!(
            ct("application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
            Some(OPENAPI_V2_PB)
        );
        assert_eq!(
            ct("*/*, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
            Some(OPENAPI_V2_PB)
        );
        assert_eq!(ct("text/html"), None);
        assert_eq!(ct("application/json;q=0"), None);
    }
}
