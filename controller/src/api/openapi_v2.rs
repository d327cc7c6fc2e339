//! `/openapi/v2`: the OpenAPI 3 document of every served kind ([`super::openapi`], the same
//! trimmed schemas `kubectl explain` reads through v3) converted to Swagger 2.0 — definitions
//! under `#/definitions/`, `$ref`s rewritten, keywords Swagger 2.0 does not have dropped,
//! `x-kubernetes-*` extensions kept — and encoded as gnostic's protobuf `openapi.v2.Document`
//! (the messages below carry the field numbers of gnostic's `openapiv2/OpenAPIv2.proto`; the
//! ones skiff never fills are left out). The document is written the way kube-openapi's
//! `proto.NewOpenAPIData` (kubectl's reader) parses it: a `$ref` stands alone but for its
//! `description`, every array has one `items` schema, every type is a single word.

use serde_json::{json, Map, Value};

const V3_REF: &str = "#/components/schemas/";
const V2_REF: &str = "#/definitions/";

/// The keywords of a Swagger 2.0 schema (besides `$ref`, `items`, `allOf`, `properties`,
/// `additionalProperties` and `x-` extensions, which are converted).
const SCHEMA_KEYWORDS: &[&str] = &[
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "discriminator",
    "readOnly",
    "example",
];

/// The Swagger 2.0 form of OpenAPI 3 schema `s`.
fn schema(s: &Value) -> Value {
    let Value::Object(map) = s else {
        return s.clone();
    };
    let mut out = Map::new();
    for (key, v) in map {
        let v = match key.as_str() {
            "$ref" => v2_ref(v),
            // schemars puts a `$ref` with siblings (a field's description) into `allOf`;
            // Swagger 2.0 (and Kubernetes' own document) writes it beside them.
            "allOf" => match v.as_array().map(Vec::as_slice) {
                Some([one])
                    if one.as_object().is_some_and(|o| o.len() == 1)
                        && one.get("$ref").is_some() =>
                {
                    out.insert("$ref".into(), v2_ref(&one["$ref"]));
                    continue;
                }
                _ => Value::Array(v.as_array().into_iter().flatten().map(schema).collect()),
            },
            "items" | "additionalProperties" => schema(v),
            "properties" => Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, p)| (name.clone(), schema(p)))
                    .collect(),
            ),
            k if k.starts_with("x-") || SCHEMA_KEYWORDS.contains(&k) => v.clone(),
            // OpenAPI 3 only: `nullable`, `oneOf`, `anyOf`, `not`, `writeOnly`, `deprecated`…
            _ => continue,
        };
        out.insert(key.clone(), v);
    }
    // Beside a `$ref` Swagger 2.0 keeps only what describes the field.
    if out.contains_key("$ref") {
        out.retain(|k, _| k == "$ref" || k == "description");
    }
    Value::Object(out)
}

fn v2_ref(r: &Value) -> Value {
    match r.as_str() {
        Some(r) => Value::String(match r.strip_prefix(V3_REF) {
            Some(name) => format!("{V2_REF}{name}"),
            None => r.to_string(),
        }),
        None => r.clone(),
    }
}

/// The Swagger 2.0 form of an OpenAPI 3 operation: query parameters typed in place, the
/// request body a `body` parameter.
fn operation(op: &Value) -> Value {
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut q = json!({"name": p["name"], "in": p["in"]});
            for (k, v) in p["schema"].as_object().into_iter().flatten() {
                q[k] = v.clone();
            }
            q
        })
        .collect();
    if let Some(body) = op["requestBody"]["content"]["application/json"].get("schema") {
        params.insert(
            0,
            json!({"name": "body", "in": "body", "required": true, "schema": schema(body)}),
        );
    }
    let mut out = json!({
        "operationId": op["operationId"],
        "consumes": ["application/json", "application/yaml"],
        "produces": ["application/json", "application/yaml"],
        "parameters": params,
        "responses": op["responses"],
    });
    for (k, v) in op.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            out[k] = v.clone();
        }
    }
    out
}

/// The Swagger 2.0 document of OpenAPI 3 document `v3`.
pub fn swagger(v3: &Value) -> Value {
    let definitions: Map<String, Value> = v3["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| (name.clone(), schema(s)))
        .collect();
    let paths: Map<String, Value> = v3["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, item)| {
            let ops: Map<String, Value> = item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(method, op)| (method.clone(), operation(op)))
                .collect();
            (path.clone(), Value::Object(ops))
        })
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "skiff", "version": format!("v1.32.0+skiff.{}", env!("CARGO_PKG_VERSION"))},
        "paths": paths,
        "definitions": definitions,
    })
}

/// gnostic's `openapi.v2` messages (field numbers as in `OpenAPIv2.proto`).
pub mod pb {
    /// `Document`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Document {
        #[prost(string, tag = "1")]
        pub swagger: String,
        #[prost(message, optional, tag = "2")]
        pub info: Option<Info>,
        #[prost(message, optional, tag = "8")]
        pub paths: Option<Paths>,
        #[prost(message, optional, tag = "9")]
        pub definitions: Option<Definitions>,
    }

    /// `Info`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Info {
        #[prost(string, tag = "1")]
        pub title: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    /// `Paths`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Paths {
        #[prost(message, repeated, tag = "2")]
        pub path: Vec<NamedPathItem>,
    }

    /// `NamedPathItem`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedPathItem {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<PathItem>,
    }

    /// `PathItem`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathItem {
        #[prost(message, optional, tag = "2")]
        pub get: Option<Operation>,
        #[prost(message, optional, tag = "3")]
        pub put: Option<Operation>,
        #[prost(message, optional, tag = "4")]
        pub post: Option<Operation>,
        #[prost(message, optional, tag = "5")]
        pub delete: Option<Operation>,
        #[prost(message, optional, tag = "8")]
        pub patch: Option<Operation>,
    }

    /// `Operation`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, tag = "5")]
        pub operation_id: String,
        #[prost(string, repeated, tag = "6")]
        pub produces: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub consumes: Vec<String>,
        #[prost(message, repeated, tag = "8")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, optional, tag = "9")]
        pub responses: Option<Responses>,
        #[prost(message, repeated, tag = "13")]
        pub vendor_extension: Vec<NamedAny>,
    }

    /// `ParametersItem` (its `oneof`: a parameter; references are not used).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ParametersItem {
        #[prost(message, optional, tag = "1")]
        pub parameter: Option<Parameter>,
    }

    /// `Parameter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Parameter {
        #[prost(oneof = "ParameterOneof", tags = "1, 2")]
        pub oneof: Option<ParameterOneof>,
    }

    /// `Parameter.oneof`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ParameterOneof {
        #[prost(message, tag = "1", boxed)]
        BodyParameter(Box<BodyParameter>),
        #[prost(message, tag = "2")]
        NonBodyParameter(NonBodyParameter),
    }

    /// `BodyParameter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BodyParameter {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub r#in: String,
        #[prost(bool, tag = "4")]
        pub required: bool,
        #[prost(message, optional, tag = "5")]
        pub schema: Option<Schema>,
    }

    /// `NonBodyParameter` (its `oneof`: the query parameter, the only kind skiff lists).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NonBodyParameter {
        #[prost(message, optional, tag = "3")]
        pub query_parameter_sub_schema: Option<QueryParameterSubSchema>,
    }

    /// `QueryParameterSubSchema`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "6")]
        pub r#type: String,
        #[prost(bool, tag = "20")]
        pub unique_items: bool,
    }

    /// `Responses`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Responses {
        #[prost(message, repeated, tag = "1")]
        pub response_code: Vec<NamedResponseValue>,
    }

    /// `NamedResponseValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedResponseValue {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<ResponseValue>,
    }

    /// `ResponseValue` (its `oneof`: a response).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseValue {
        #[prost(message, optional, tag = "1")]
        pub response: Option<Response>,
    }

    /// `Response`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        #[prost(string, tag = "1")]
        pub description: String,
    }

    /// `Definitions`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Definitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    /// `NamedSchema`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedSchema {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Schema>,
    }

    /// `Properties`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Properties {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    /// `Any` (its YAML text; gnostic's `google.protobuf.Any` value is not used).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "2")]
        pub yaml: String,
    }

    /// `NamedAny`: a vendor extension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedAny {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Any>,
    }

    /// `TypeItem`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }

    /// `ItemsItem`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ItemsItem {
        #[prost(message, repeated, tag = "1")]
        pub schema: Vec<Schema>,
    }

    /// `AdditionalPropertiesItem`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AdditionalPropertiesItem {
        #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
        pub oneof: Option<AdditionalProperties>,
    }

    /// `AdditionalPropertiesItem.oneof`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum AdditionalProperties {
        #[prost(message, tag = "1", boxed)]
        Schema(Box<Schema>),
        #[prost(bool, tag = "2")]
        Boolean(bool),
    }

    /// `Schema` (`xml` and `externalDocs` left out).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Schema {
        #[prost(string, tag = "1")]
        pub xref: String,
        #[prost(string, tag = "2")]
        pub format: String,
        #[prost(string, tag = "3")]
        pub title: String,
        #[prost(string, tag = "4")]
        pub description: String,
        #[prost(message, optional, tag = "5")]
        pub default: Option<Any>,
        #[prost(double, tag = "6")]
        pub multiple_of: f64,
        #[prost(double, tag = "7")]
        pub maximum: f64,
        #[prost(bool, tag = "8")]
        pub exclusive_maximum: bool,
        #[prost(double, tag = "9")]
        pub minimum: f64,
        #[prost(bool, tag = "10")]
        pub exclusive_minimum: bool,
        #[prost(int64, tag = "11")]
        pub max_length: i64,
        #[prost(int64, tag = "12")]
        pub min_length: i64,
        #[prost(string, tag = "13")]
        pub pattern: String,
        #[prost(int64, tag = "14")]
        pub max_items: i64,
        #[prost(int64, tag = "15")]
        pub min_items: i64,
        #[prost(bool, tag = "16")]
        pub unique_items: bool,
        #[prost(int64, tag = "17")]
        pub max_properties: i64,
        #[prost(int64, tag = "18")]
        pub min_properties: i64,
        #[prost(string, repeated, tag = "19")]
        pub required: Vec<String>,
        #[prost(message, repeated, tag = "20")]
        pub r#enum: Vec<Any>,
        #[prost(message, optional, boxed, tag = "21")]
        pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
        #[prost(message, optional, tag = "22")]
        pub r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "23")]
        pub items: Option<ItemsItem>,
        #[prost(message, repeated, tag = "24")]
        pub all_of: Vec<Schema>,
        #[prost(message, optional, tag = "25")]
        pub properties: Option<Properties>,
        #[prost(string, tag = "26")]
        pub discriminator: String,
        #[prost(bool, tag = "27")]
        pub read_only: bool,
        #[prost(message, optional, tag = "30")]
        pub example: Option<Any>,
        #[prost(message, repeated, tag = "31")]
        pub vendor_extension: Vec<NamedAny>,
    }
}

/// A value as gnostic's `Any`: its YAML text (what kube-openapi unmarshals).
fn any(v: &Value) -> pb::Any {
    pb::Any {
        yaml: serde_yaml_ng::to_string(v).expect("JSON values serialize as YAML"),
    }
}

fn extensions(v: &Value) -> Vec<pb::NamedAny> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| pb::NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn string(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn named_schemas(v: &Value) -> Vec<pb::NamedSchema> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| pb::NamedSchema {
            name: name.clone(),
            value: Some(pb_schema(s)),
        })
        .collect()
}

/// Swagger 2.0 schema `s` as gnostic's `Schema`.
fn pb_schema(s: &Value) -> pb::Schema {
    let f = |k: &str| s[k].as_f64().unwrap_or_default();
    let i = |k: &str| s[k].as_i64().unwrap_or_default();
    let b = |k: &str| s[k].as_bool().unwrap_or_default();
    pb::Schema {
        xref: string(s, "$ref"),
        format: string(s, "format"),
        title: string(s, "title"),
        description: string(s, "description"),
        default: s.get("default").map(any),
        multiple_of: f("multipleOf"),
        maximum: f("maximum"),
        exclusive_maximum: b("exclusiveMaximum"),
        minimum: f("minimum"),
        exclusive_minimum: b("exclusiveMinimum"),
        max_length: i("maxLength"),
        min_length: i("minLength"),
        pattern: string(s, "pattern"),
        max_items: i("maxItems"),
        min_items: i("minItems"),
        unique_items: b("uniqueItems"),
        max_properties: i("maxProperties"),
        min_properties: i("minProperties"),
        required: strings(&s["required"]),
        r#enum: s["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .map(any)
            .collect(),
        additional_properties: s.get("additionalProperties").map(|a| {
            Box::new(pb::AdditionalPropertiesItem {
                oneof: Some(match a {
                    Value::Bool(b) => pb::AdditionalProperties::Boolean(*b),
                    a => pb::AdditionalProperties::Schema(Box::new(pb_schema(a))),
                }),
            })
        }),
        r#type: s.get("type").map(|t| pb::TypeItem {
            value: match t {
                Value::String(t) => vec![t.clone()],
                t => strings(t),
            },
        }),
        items: s.get("items").map(|items| pb::ItemsItem {
            schema: match items {
                Value::Array(all) => all.iter().map(pb_schema).collect(),
                one => vec![pb_schema(one)],
            },
        }),
        all_of: s["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(pb_schema)
            .collect(),
        properties: s.get("properties").map(|p| pb::Properties {
            additional_properties: named_schemas(p),
        }),
        discriminator: string(s, "discriminator"),
        read_only: b("readOnly"),
        example: s.get("example").map(any),
        vendor_extension: extensions(s),
    }
}

fn pb_operation(op: &Value) -> pb::Operation {
    let parameters = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| pb::ParametersItem {
            parameter: Some(pb::Parameter {
                oneof: Some(if p["in"] == "body" {
                    pb::ParameterOneof::BodyParameter(Box::new(pb::BodyParameter {
                        description: string(p, "description"),
                        name: string(p, "name"),
                        r#in: "body".into(),
                        required: p["required"] == true,
                        schema: p.get("schema").map(pb_schema),
                    }))
                } else {
                    pb::ParameterOneof::NonBodyParameter(pb::NonBodyParameter {
                        query_parameter_sub_schema: Some(pb::QueryParameterSubSchema {
                            required: p["required"] == true,
                            r#in: string(p, "in"),
                            description: string(p, "description"),
                            name: string(p, "name"),
                            r#type: string(p, "type"),
                            unique_items: p["uniqueItems"] == true,
                        }),
                    })
                }),
            }),
        })
        .collect();
    pb::Operation {
        operation_id: string(op, "operationId"),
        produces: strings(&op["produces"]),
        consumes: strings(&op["consumes"]),
        parameters,
        responses: Some(pb::Responses {
            response_code: op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(code, r)| pb::NamedResponseValue {
                    name: code.clone(),
                    value: Some(pb::ResponseValue {
                        response: Some(pb::Response {
                            description: string(r, "description"),
                        }),
                    }),
                })
                .collect(),
        }),
        vendor_extension: extensions(op),
    }
}

/// Swagger 2.0 document `doc` (from [`swagger`]) as gnostic's protobuf `Document`.
pub fn encode(doc: &Value) -> Vec<u8> {
    use prost::Message;
    let op = |item: &Value, method: &str| item.get(method).map(pb_operation);
    pb::Document {
        swagger: string(doc, "swagger"),
        info: Some(pb::Info {
            title: string(&doc["info"], "title"),
            version: string(&doc["info"], "version"),
        }),
        paths: Some(pb::Paths {
            path: doc["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, item)| pb::NamedPathItem {
                    name: name.clone(),
                    value: Some(pb::PathItem {
                        get: op(item, "get"),
                        put: op(item, "put"),
                        post: op(item, "post"),
                        delete: op(item, "delete"),
                        patch: op(item, "patch"),
                    }),
                })
                .collect(),
        }),
        definitions: Some(pb::Definitions {
            additional_properties: named_schemas(&doc["definitions"]),
        }),
    }
    .encode_to_vec()
}
