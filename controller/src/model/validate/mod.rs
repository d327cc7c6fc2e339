//! Validation of declared objects, before anything is stored.
//!
//! Three layers, each naming the field it rejects:
//! 1. **Kubernetes schema**: the object must deserialize into its `k8s-openapi` type (types,
//!    enums of shape), and every field must be one Kubernetes knows — found by serializing the
//!    typed value back and looking for what got lost ("unknown field").
//! 2. **skiff's support**: a field Kubernetes knows but skiff does not implement is rejected by
//!    name ("not supported by skiff"), never silently ignored. The allowlist (`allow.rs`) is the
//!    one place that says what skiff implements.
//! 3. **Semantics** (`semantics.rs`): names, selectors matching template labels, unique
//!    container names, ranges.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::model::kinds;

mod allow;
mod daemonset;
pub mod helmchart;
pub mod job;
mod netpol;
pub mod rbac;
mod scheduling;
mod semantics;
mod statefulset;
pub mod storage;

use allow::allowlist;
pub use allow::SchemaTrim;
use semantics::semantics;
pub use semantics::{is_dns_label, is_dns_subdomain};

/// One rejected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

pub(crate) fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates one declared object. `status`, if present, must already be removed.
pub fn validate(obj: &Value) -> Result<(), Vec<FieldError>> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return Err(vec![err("kind", "is required")]);
    }
    if api_version.is_empty() {
        return Err(vec![err("apiVersion", "is required")]);
    }
    let Some(info) = kinds::by_kind(kind) else {
        return Err(vec![err(
            "kind",
            format!(
                "unknown kind {kind:?} (apiVersion {api_version:?}); skiff serves {}",
                kinds::KINDS
                    .iter()
                    .map(|k| k.kind)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]);
    };
    if info.api_version != api_version {
        return Err(vec![err(
            "apiVersion",
            format!(
                "{kind} is served as apiVersion {:?}, not {api_version:?}",
                info.api_version
            ),
        )]);
    }
    let roundtrip = typed_roundtrip(kind, obj)
        .expect("every served kind has a type")
        .map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    unknown_fields(obj, &roundtrip, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    allowlist(kind).check(obj, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    semantics(obj, info.namespaced, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates a change of an existing object (`new` already passed [`validate`]): the fields
/// Kubernetes makes immutable stay as they are.
pub fn validate_update(old: &Value, new: &Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    storage::update(old, new, &mut errors);
    let bound = |o: &Value| {
        o["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let moved = !bound(old).is_empty() && !bound(new).is_empty() && bound(old) != bound(new);
    if new["kind"] == "Pod" && moved {
        errors.push(err(
            "spec.nodeName",
            format!("the pod is bound to {:?}: it cannot move", bound(old)),
        ));
    }
    statefulset::update(old, new, &mut errors);
    job::update(old, new, &mut errors);
    daemonset::update(old, new, &mut errors);
    rbac::update(old, new, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The object with every field Kubernetes does not know removed (what the API server keeps
/// when asked for `fieldValidation=Ignore`).
pub fn known_fields(obj: &Value) -> Result<Value, FieldError> {
    typed_roundtrip(obj["kind"].as_str().unwrap_or_default(), obj)
        .unwrap_or_else(|| Ok(obj.clone()))
}

/// `obj` through its kind's `k8s-openapi` type and back (`None` for a kind skiff does not
/// serve).
fn typed_roundtrip(kind: &str, obj: &Value) -> Option<Result<Value, FieldError>> {
    struct Roundtrip<'a>(&'a Value);
    impl WithType for Roundtrip<'_> {
        type Out = Result<Value, FieldError>;
        fn run<T: KindType>(self) -> Self::Out {
            roundtrip::<T>(self.0)
        }
    }
    with_type(kind, Roundtrip(obj))
}

/// What a kind's `k8s-openapi` type offers: JSON both ways and its OpenAPI schema.
pub trait KindType: DeserializeOwned + Serialize + k8s_openapi::schemars::JsonSchema {}
impl<T: DeserializeOwned + Serialize + k8s_openapi::schemars::JsonSchema> KindType for T {}

/// Something done with a kind's `k8s-openapi` type (see [`with_type`]).
pub trait WithType {
    /// What it gives.
    type Out;
    /// Does it with the type `T`.
    fn run<T: KindType>(self) -> Self::Out;
}

/// Runs `w` with the `k8s-openapi` type of `kind` (`None` for a kind skiff does not serve):
/// the one table of the kinds' types.
pub fn with_type<W: WithType>(kind: &str, w: W) -> Option<W::Out> {
    use k8s_openapi::api::{
        apps, batch, coordination, core, discovery, networking, policy, rbac, scheduling, storage,
    };
    Some(match kind {
        "Namespace" => w.run::<core::v1::Namespace>(),
        "Node" => w.run::<core::v1::Node>(),
        "Lease" => w.run::<coordination::v1::Lease>(),
        "PodDisruptionBudget" => w.run::<policy::v1::PodDisruptionBudget>(),
        "PriorityClass" => w.run::<scheduling::v1::PriorityClass>(),
        "ConfigMap" => w.run::<core::v1::ConfigMap>(),
        "Secret" => w.run::<core::v1::Secret>(),
        "Pod" => w.run::<core::v1::Pod>(),
        "Deployment" => w.run::<apps::v1::Deployment>(),
        "ReplicaSet" => w.run::<apps::v1::ReplicaSet>(),
        "StatefulSet" => w.run::<apps::v1::StatefulSet>(),
        "DaemonSet" => w.run::<apps::v1::DaemonSet>(),
        "ControllerRevision" => w.run::<apps::v1::ControllerRevision>(),
        "Job" => w.run::<batch::v1::Job>(),
        "CronJob" => w.run::<batch::v1::CronJob>(),
        "Event" => w.run::<core::v1::Event>(),
        "Service" => w.run::<core::v1::Service>(),
        "EndpointSlice" => w.run::<discovery::v1::EndpointSlice>(),
        "Ingress" => w.run::<networking::v1::Ingress>(),
        "IngressClass" => w.run::<networking::v1::IngressClass>(),
        "NetworkPolicy" => w.run::<networking::v1::NetworkPolicy>(),
        "PersistentVolumeClaim" => w.run::<core::v1::PersistentVolumeClaim>(),
        "PersistentVolume" => w.run::<core::v1::PersistentVolume>(),
        "StorageClass" => w.run::<storage::v1::StorageClass>(),
        "ServiceAccount" => w.run::<core::v1::ServiceAccount>(),
        "Role" => w.run::<rbac::v1::Role>(),
        "ClusterRole" => w.run::<rbac::v1::ClusterRole>(),
        "RoleBinding" => w.run::<rbac::v1::RoleBinding>(),
        "ClusterRoleBinding" => w.run::<rbac::v1::ClusterRoleBinding>(),
        "HelmChart" => w.run::<helmchart::HelmChart>(),
        "HelmChartConfig" => w.run::<helmchart::HelmChartConfig>(),
        _ => return None,
    })
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, FieldError> {
    let typed: T = serde_path_to_error::deserialize(obj.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        err(path, e.into_inner().to_string())
    })?;
    Ok(serde_json::to_value(typed).expect("k8s-openapi types serialize"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown_fields(orig: &Value, known: &Value, path: &str, out: &mut Vec<FieldError>) {
    match (orig, known) {
        (Value::Object(o), Value::Object(k)) => {
            for (key, v) in o {
                if v.is_null() {
                    continue;
                }
                match k.get(key) {
                    None => out.push(err(join(path, key), format!("unknown field {key:?}"))),
                    Some(kv) => unknown_fields(v, kv, &join(path, key), out),
                }
            }
        }
        (Value::Array(o), Value::Array(k)) => {
            for (i, (v, kv)) in o.iter().zip(k).enumerate() {
                unknown_fields(v, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
          "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web"}},
              "spec":{"hostNetwork":true,"containers":[{"name":"web","image":"demo","args":["a"],
                "ports":[{"containerPort":8080}],"env":[{"name":"A","value":"b"}]}]}}}})
    }

    #[test]
    fn a_supported_deployment_passes() {
        validate(&deployment()).unwrap();
    }

    #[test]
    fn unknown_fields_are_named() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["bogus"] = json!(1);
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.spec.containers[0].bogus");
        assert!(e[0].message.contains("unknown field"), "{}", e[0]);
    }

    #[test]
    fn empty_values_of_unsupported_fields_say_nothing() {
        let mut d = deployment();
        let pod = &mut d["spec"]["template"]["spec"];
        pod["securityContext"] = json!({});
        pod["affinity"] = json!({"nodeAffinity": {}});
        pod["tolerations"] = json!([]);
        pod["containers"][0]["securityContext"] = json!({"capabilities": {}});
        assert_eq!(validate(&d), Ok(()));
        // Privileges are allowed by the schema (admission decides who may ask).
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}, "procMount": "Unmasked",
                   "seccompProfile": {"type": "RuntimeDefault"}});
        assert_eq!(validate(&d), Ok(()));
        // Localhost: a relative path inside the profiles folder.
        let sc = |d: &mut Value, v: Value| {
            d["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
                json!({ "seccompProfile": v });
        };
        sc(
            &mut d,
            json!({"type": "Localhost", "localhostProfile": "profiles/x.json"}),
        );
        assert_eq!(validate(&d), Ok(()));
        let field =
            "spec.template.spec.containers[0].securityContext.seccompProfile.localhostProfile";
        for (bad, says) in [
            (json!({"type": "Localhost"}), "Required value"),
            (
                json!({"type": "Localhost", "localhostProfile": "/etc/x.json"}),
                "relative path",
            ),
            (
                json!({"type": "Localhost", "localhostProfile": "a/../../x.json"}),
                "'..'",
            ),
            (
                json!({"type": "RuntimeDefault", "localhostProfile": "x.json"}),
                "only be set",
            ),
        ] {
            sc(&mut d, bad);
            let errs = validate(&d).unwrap_err();
            assert_eq!(errs[0].field, field, "{errs:?}");
            assert!(errs[0].message.contains(says), "{errs:?}");
        }
        // Sysctls: namespaced only, and not of a namespace shared with the host.
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({});
        d["spec"]["template"]["spec"]["securityContext"] =
            json!({"sysctls": [{"name": "kernel.panic", "value": "1"}]});
        let errs = validate(&d).unwrap_err();
        assert!(
            errs[0].message.contains("not a namespaced sysctl"),
            "{errs:?}"
        );
        d["spec"]["template"]["spec"]["securityContext"] =
            json!({"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]});
        let errs = validate(&d).unwrap_err();
        assert!(errs[0].message.contains("hostNetwork"), "{errs:?}");
        d["spec"]["template"]["spec"]["hostNetwork"] = json!(false);
        assert_eq!(validate(&d), Ok(()));
        d["spec"]["template"]["spec"]["securityContext"] = json!({});
        d["spec"]["template"]["spec"]["shareProcessNamespace"] = json!(true);
        assert_eq!(validate(&d), Ok(()));
        // Something said is still refused by name.
        d["spec"]["template"]["spec"]["hostUsers"] = json!(false);
        let errs = validate(&d).unwrap_err();
        assert_eq!(errs[0].field, "spec.template.spec.hostUsers");
    }

    #[test]
    fn unsupported_fields_are_named() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["stdin"] = json!(true);
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.spec.containers[0].stdin");
        assert!(e[0].message.contains("not supported"), "{}", e[0]);
        // With what to use instead (`kubectl run -i` sets it).
        assert!(e[0].message.contains("kubectl exec -it"), "{}", e[0]);
    }

    #[test]
    fn what_charts_write_out_is_taken_as_kubernetes_takes_it() {
        // hostPID/hostIPC false, a pod template's name (ignored, as Kubernetes ignores it).
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["name"] = json!("web");
        d["spec"]["template"]["spec"]["hostPID"] = json!(false);
        d["spec"]["template"]["spec"]["hostIPC"] = json!(false);
        assert_eq!(validate(&d), Ok(()));
        // `true` is refused by name.
        d["spec"]["template"]["spec"]["hostPID"] = json!(true);
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.spec.hostPID");
        assert!(e[0].message.contains("not supported"), "{}", e[0]);
        // A ServiceAccount's legacy list of token Secrets.
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "app", "namespace": "default"},
            "secrets": [{"name": "app-token"}]});
        assert_eq!(validate(&sa), Ok(()));
    }

    #[test]
    fn node_ports_stay_in_their_range_and_pod_security_labels_are_checked() {
        let svc = |ty: &str, n: i64| {
            json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
              "spec":{"type":ty,"ports":[{"port":80,"nodePort":n}]}})
        };
        assert_eq!(validate(&svc("NodePort", 30080)), Ok(()));
        let e = validate(&svc("NodePort", 70000)).unwrap_err();
        assert_eq!(e[0].field, "spec.ports[0].nodePort");
        assert!(e[0].message.contains("30000-32767"), "{}", e[0]);
        assert!(validate(&svc("ClusterIP", 30080)).is_err());
        let ns = |v: &str| {
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n",
              "labels":{"pod-security.kubernetes.io/enforce":v}}})
        };
        assert_eq!(validate(&ns("restricted")), Ok(()));
        let e = validate(&ns("strict")).unwrap_err();
        assert_eq!(
            e[0].field,
            "metadata.labels[pod-security.kubernetes.io/enforce]"
        );
    }

    #[test]
    fn load_balancer_ip_and_client_ip_affinity_are_checked_by_field() {
        let svc = |extra: Value| {
            let mut s = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
              "spec":{"type":"LoadBalancer","ports":[{"port":80}]}});
            for (k, v) in extra.as_object().unwrap() {
                s["spec"][k] = v.clone();
            }
            s
        };
        let first = |extra: Value| validate(&svc(extra)).unwrap_err().remove(0);
        assert_eq!(
            validate(&svc(json!({"loadBalancerIP": "127.0.0.2"}))),
            Ok(())
        );
        for (ip, says) in [
            ("0.0.0.0", "unicast"),
            ("224.0.0.1", "unicast"),
            ("::1", "IPv6"),
            ("host.lan", "valid IP"),
        ] {
            let e = first(json!({"loadBalancerIP": ip}));
            assert_eq!(e.field, "spec.loadBalancerIP");
            assert!(e.message.contains(says), "{ip}: {e}");
        }
        let e = first(json!({"type": "ClusterIP", "loadBalancerIP": "127.0.0.2"}));
        assert!(
            e.message
                .contains("only be used when `type` is 'LoadBalancer'"),
            "{e}"
        );
        let ranges = |r: Value| json!({"loadBalancerSourceRanges": r});
        assert_eq!(
            validate(&svc(ranges(json!(["10.0.0.0/8", " 192.168.1.0/24"])))),
            Ok(())
        );
        for bad in ["10.0.0.0/33", "fd00::/8", "lan"] {
            let e = first(ranges(json!(["10.0.0.0/8", bad])));
            assert_eq!(e.field, "spec.loadBalancerSourceRanges[1]", "{bad}");
        }
        let e = first(json!({"type": "NodePort", "loadBalancerSourceRanges": ["10.0.0.0/8"]}));
        assert_eq!(e.field, "spec.loadBalancerSourceRanges");

        let affinity = |t: Value| {
            json!({"sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": t}}})
        };
        assert_eq!(validate(&svc(affinity(json!(86400)))), Ok(()));
        assert_eq!(
            validate(&svc(json!({"sessionAffinity": "ClientIP"}))),
            Ok(())
        );
        for t in [0, 86401] {
            let e = first(affinity(json!(t)));
            assert_eq!(
                e.field,
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
            );
        }
        let e = first(json!({"sessionAffinity": "Cookie"}));
        assert_eq!(e.field, "spec.sessionAffinity");
        let e = first(json!({"sessionAffinity": "None",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
        assert_eq!(e.field, "spec.sessionAffinityConfig");
        let mut d = svc(json!({"sessionAffinity": "ClientIP"}));
        crate::model::defaults::apply(&mut d);
        assert_eq!(
            d["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
    }

    #[test]
    fn dns_config_and_host_aliases() {
        let mut d = deployment();
        let pod = &mut d["spec"]["template"]["spec"];
        pod["hostNetwork"] = json!(false);
        pod["dnsPolicy"] = json!("None");
        pod["setHostnameAsFQDN"] = json!(true);
        pod["dnsConfig"] = json!({"nameservers":["192.0.2.1"],"searches":["lan."],
            "options":[{"name":"ndots","value":"2"},{"name":"edns0"}]});
        pod["hostAliases"] = json!([{"ip":"192.0.2.10","hostnames":["db","db.lan"]}]);
        assert_eq!(validate(&d), Ok(()));
        let refused = |field: &str, v: Value| {
            let mut d = d.clone();
            d["spec"]["template"]["spec"][field] = v;
            let e = validate(&d).unwrap_err();
            format!("{}: {}", e[0].field, e[0].message)
        };
        let e = refused("dnsConfig", json!({"searches":["lan"]}));
        assert!(
            e.contains("dnsConfig.nameservers: must provide at least one"),
            "{e}"
        );
        let e = refused("dnsConfig", json!({"nameservers":["a","192.0.2.1"]}));
        assert!(
            e.contains("nameservers[0]") && e.contains("valid IP"),
            "{e}"
        );
        let e = refused(
            "dnsConfig",
            json!({"nameservers":["192.0.2.1"],"searches":["a b\nnameserver 1.1.1.1"]}),
        );
        assert!(e.contains("searches[0]"), "{e}");
        let e = refused(
            "dnsConfig",
            json!({"nameservers":["192.0.2.1"],"options":[{"name":"a b"}]}),
        );
        assert!(e.contains("options[0].name"), "{e}");
        let e = refused("hostAliases", json!([{"ip":"db","hostnames":["x"]}]));
        assert!(e.contains("hostAliases[0].ip"), "{e}");
        let e = refused(
            "hostAliases",
            json!([{"ip":"192.0.2.1","hostnames":["x\n1.2.3.4 y"]}]),
        );
        assert!(e.contains("hostAliases[0].hostnames[0]"), "{e}");
    }

    #[test]
    fn lifecycle_hooks() {
        let mut d = deployment();
        let c = &mut d["spec"]["template"]["spec"]["containers"][0];
        c["lifecycle"] = json!({"postStart":{"exec":{"command":["x"]}},
            "preStop":{"httpGet":{"path":"/quit","port":8080,"host":"",
              "httpHeaders":[{"name":"X","value":"y"}]}}});
        assert_eq!(validate(&d), Ok(()));
        let refused = |lifecycle: Value| {
            let mut d = deployment();
            d["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = lifecycle;
            let e = validate(&d).unwrap_err();
            format!("{}: {}", e[0].field, e[0].message)
        };
        let e = refused(json!({"preStop":{"httpGet":{"port":80,"host":"192.0.2.1"}}}));
        assert!(
            e.contains("lifecycle.preStop.httpGet.host") && e.contains("pod's own address"),
            "{e}"
        );
        let e = refused(json!({"preStop":{"httpGet":{"port":80,"path":"/\r\nX: y"}}}));
        assert!(
            e.contains("preStop.httpGet.path: must not contain CR or LF"),
            "{e}"
        );
        let e = refused(json!({"postStart":{"httpGet":{"port":80,
            "httpHeaders":[{"name":"A","value":"b\nHost: x"}]}}}));
        assert!(e.contains("postStart.httpGet.httpHeaders[0].value"), "{e}");
        let e = refused(json!({"postStart":{"tcpSocket":{"port":80}}}));
        assert!(
            e.contains("postStart.tcpSocket") && e.contains("not supported"),
            "{e}"
        );
        let e = refused(json!({"postStart":{"sleep":{"seconds":1},"exec":{"command":["x"]}}}));
        assert!(e.contains("exactly one handler"), "{e}");
        let e = refused(json!({"postStart":{"httpGet":{"port":80,"scheme":"HTTPS"}}}));
        assert!(e.contains("postStart.httpGet.scheme"), "{e}");
        // grpc probes: a port on the pod's address (no host).
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] =
            json!({"grpc":{"port":9090,"service":"web"}});
        assert_eq!(validate(&d), Ok(()));
        d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] =
            json!({"grpc":{"port":0}});
        assert!(validate(&d).unwrap_err()[0]
            .field
            .ends_with("livenessProbe.grpc.port"));
        // Probes too: no CR/LF in what the node sends.
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
            json!({"httpGet":{"port":80,"path":"/a\rb"}});
        assert!(validate(&d).unwrap_err()[0]
            .field
            .ends_with("readinessProbe.httpGet.path"));
    }

    #[test]
    fn type_errors_name_the_path() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("three");
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.replicas", "{:?}", e);
    }

    #[test]
    fn unknown_kinds_and_versions_are_named() {
        let e = validate(&json!({"apiVersion":"v1","kind":"Gizmo","metadata":{"name":"x"}}))
            .unwrap_err();
        assert!(e[0].message.contains("unknown kind \"Gizmo\""), "{}", e[0]);
        let mut d = deployment();
        d["apiVersion"] = json!("extensions/v1beta1");
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "apiVersion");
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app":"other"});
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn init_containers_allow_what_containers_allow_probes_only_on_sidecars() {
        let mut d = deployment();
        let pod = &mut d["spec"]["template"]["spec"];
        pod["volumes"] = json!([{"name":"w","emptyDir":{}}]);
        pod["initContainers"] = json!([{"name":"init","image":"demo","command":["sh"],
          "env":[{"name":"A","value":"b"}],"volumeMounts":[{"name":"w","mountPath":"/w"}],
          "securityContext":{"runAsUser":1000}}]);
        assert_eq!(validate(&d), Ok(()));
        let field = |d: &Value| validate(d).unwrap_err()[0].to_string();
        let mut dup = d.clone();
        dup["spec"]["template"]["spec"]["initContainers"][0]["name"] = json!("web");
        assert!(
            field(&dup).contains("duplicate container name"),
            "{}",
            field(&dup)
        );
        // A sidecar (restartPolicy: Always) may have probes and lifecycle hooks.
        let mut sidecar = d.clone();
        sidecar["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
        sidecar["spec"]["template"]["spec"]["initContainers"][0]["startupProbe"] =
            json!({"tcpSocket":{"port":80}});
        sidecar["spec"]["template"]["spec"]["initContainers"][0]["readinessProbe"] =
            json!({"exec":{"command":["true"]}});
        sidecar["spec"]["template"]["spec"]["initContainers"][0]["lifecycle"] =
            json!({"postStart":{"exec":{"command":["true"]}}});
        assert_eq!(validate(&sidecar), Ok(()));
        let mut never = d.clone();
        never["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] = json!("Never");
        let e = field(&never);
        assert!(
            e.contains("initContainers[0].restartPolicy")
                && e.contains("Unsupported value: \"Never\": supported values: \"Always\""),
            "{e}"
        );
        let mut probe = d.clone();
        probe["spec"]["template"]["spec"]["initContainers"][0]["readinessProbe"] =
            json!({"exec":{"command":["true"]}});
        let e = field(&probe);
        assert!(
            e.contains("initContainers[0].readinessProbe") && e.contains("Forbidden"),
            "{e}"
        );
        let mut hook = d.clone();
        hook["spec"]["template"]["spec"]["initContainers"][0]["lifecycle"] =
            json!({"preStop":{"exec":{"command":["x"]}}});
        assert!(
            field(&hook).contains("initContainers[0].lifecycle"),
            "{}",
            field(&hook)
        );
        let mut mount = d;
        mount["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["name"] =
            json!("x");
        assert!(
            field(&mount).contains("initContainers[0].volumeMounts[0].name"),
            "{}",
            field(&mount)
        );
    }
}
