//! What a pod's env (`valueFrom`, `envFrom`) and volumes read from the cluster: ConfigMaps,
//! Secrets, PersistentVolumeClaims with their volumes, and the pod's own fields.

use k8s_openapi::api::core::v1::{HostPathVolumeSource, Pod};

use super::process;
use super::volumes::{ClaimVolume, ClaimWait};
use crate::Cluster;

/// `env[].valueFrom` and `envFrom` sources of one pod, read from the cluster.
pub(super) struct PodEnvSources<'a> {
    pub(super) cluster: &'a dyn Cluster,
    pub(super) pod: &'a Pod,
    pub(super) pod_ip: Option<std::net::Ipv4Addr>,
    pub(super) node_name: &'a str,
    /// The node's address: the pod's `hostIP`, and a hostNetwork pod's `podIP`.
    pub(super) host_ip: std::net::Ipv4Addr,
}

impl process::EnvSources for PodEnvSources<'_> {
    fn config_map(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let cm = self.cluster.object("ConfigMap", ns, name)?;
        Some(
            cm["data"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    fn secret(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let secret = self.cluster.secret(ns, name)?;
        Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
                .collect(),
        )
    }

    fn claim(&self, name: &str) -> Result<ClaimVolume, ClaimWait> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let find = |kind: &str, ns: &str, name: &str| self.cluster.object(kind, ns, name);
        let claim = find("PersistentVolumeClaim", ns, name)
            .ok_or_else(|| ClaimWait::NotFound(name.to_string()))?;
        let volume_name = claim["spec"]["volumeName"].as_str().unwrap_or_default();
        if volume_name.is_empty() || claim["status"]["phase"] != "Bound" {
            return Err(ClaimWait::Unbound(name.to_string()));
        }
        let volume = find("PersistentVolume", "", volume_name)
            .filter(|v| v["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"])
            .ok_or_else(|| ClaimWait::NoVolume(volume_name.to_string()))?;
        let source = if volume["spec"]["hostPath"].is_object() {
            serde_json::from_value(volume["spec"]["hostPath"].clone()).ok()
        } else {
            volume["spec"]["local"]["path"]
                .as_str()
                .map(|path| HostPathVolumeSource {
                    path: path.to_string(),
                    type_: Some("Directory".into()),
                })
        };
        Ok(ClaimVolume {
            source: source.ok_or_else(|| ClaimWait::NoVolume(volume_name.to_string()))?,
            terminating: claim["metadata"]["deletionTimestamp"].is_string(),
            provisioned: volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"]
                == "rancher.io/local-path",
        })
    }

    fn service_account_token(&self, seconds: i64) -> Result<String, super::error::ConfigError> {
        self.cluster
            .service_account_token(self.pod, seconds)
            .map_err(|e| super::error::ConfigError::Token(e.to_string()))
    }

    /// Kubelet's service links: the `kubernetes` Service of `default` always, and with
    /// `enableServiceLinks` (the default) every Service of the pod's namespace that has a
    /// cluster IP, in name order.
    fn service_env(&self) -> Vec<(String, String)> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let links = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let mut chosen: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
        for svc in self.cluster.objects("Service") {
            let (svc_ns, name) = (
                svc["metadata"]["namespace"].as_str().unwrap_or_default(),
                svc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            if matches!(svc["spec"]["clusterIP"].as_str(), None | Some("" | "None")) {
                continue;
            }
            if svc_ns == "default" && name == "kubernetes" {
                chosen.entry(name).or_insert(svc);
            } else if svc_ns == ns && links {
                chosen.insert(name, svc);
            }
        }
        chosen
            .iter()
            .flat_map(|(name, svc)| {
                let ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
                let ports: Vec<(String, u16, String)> = svc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        Some((
                            p["name"].as_str().unwrap_or_default().to_string(),
                            u16::try_from(p["port"].as_u64()?).ok()?,
                            p["protocol"].as_str().unwrap_or("TCP").to_string(),
                        ))
                    })
                    .collect();
                process::service_link_env(name, ip, &ports)
            })
            .collect()
    }

    fn field(&self, path: &str) -> Option<String> {
        let m = &self.pod.metadata;
        let keyed = |prefix: &str, map: &Option<std::collections::BTreeMap<String, String>>| {
            let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
            Some(
                map.as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        match path {
            "metadata.name" => m.name.clone(),
            "metadata.namespace" => m.namespace.clone(),
            "metadata.uid" => m.uid.clone(),
            "spec.nodeName" => self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .or_else(|| Some(self.node_name.to_string())),
            "spec.serviceAccountName" => Some(
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".into()),
            ),
            "status.hostIP" => Some(self.host_ip.to_string()),
            "status.podIP" => Some(match self.pod_ip {
                Some(ip) => ip.to_string(),
                // A hostNetwork pod's address is the node's (before its first status too).
                None if self.pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) => {
                    self.host_ip.to_string()
                }
                None => self
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_else(|| "127.0.0.1".into()),
            }),
            _ => keyed("metadata.labels['", &m.labels)
                .or_else(|| keyed("metadata.annotations['", &m.annotations)),
        }
    }
}
