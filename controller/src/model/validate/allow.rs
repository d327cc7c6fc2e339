//! Layer 2 of validation: the fields skiff implements, as patterns (`spec.containers[].image`,
//! `*` for any map key). A field Kubernetes knows but no pattern allows is refused by name —
//! "not supported by skiff" — never silently ignored. Adding support for a field starts here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{err, join, FieldError};

/// A tree of the fields skiff implements.
#[derive(Default, Debug)]
pub(super) struct Allow {
    leaf: bool,
    children: BTreeMap<String, Allow>,
    any_key: Option<Box<Allow>>,
    items: Option<Box<Allow>>,
}

impl Allow {
    fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Allow {
        let mut root = Allow::default();
        for p in patterns {
            let mut node = &mut root;
            for seg in p.split('.') {
                let (name, list) = match seg.strip_suffix("[]") {
                    Some(n) => (n, true),
                    None => (seg, false),
                };
                node = if name == "*" {
                    node.any_key.get_or_insert_with(Default::default)
                } else {
                    node.children.entry(name.to_string()).or_default()
                };
                if list {
                    node = node.items.get_or_insert_with(Default::default);
                }
            }
            node.leaf = true;
        }
        root
    }

    pub(super) fn check(&self, v: &Value, path: &str, out: &mut Vec<FieldError>) {
        /// The refusal of a field outside the allowlist, with what to use instead where a
        /// kubectl command sets it (`kubectl run -i` / `-it`: a container's stdin and terminal).
        fn unsupported(key: &str) -> &'static str {
            match key {
                "stdin" | "stdinOnce" | "tty" => "field is not supported by skiff (a container's stdin and terminal, which `kubectl run -i` and `kubectl attach` use): start the pod, then `kubectl exec -it POD -- sh`",
                _ => "field is not supported by skiff",
            }
        }
        if self.leaf {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if child.is_null() {
                        continue;
                    }
                    let p = join(path, k);
                    match self.children.get(k).or(self.any_key.as_deref()) {
                        Some(node) => node.check(child, &p, out),
                        // `securityContext: {}`, `tolerations: []`: nothing said, nothing
                        // ignored (generated manifests are full of them).
                        None if says_nothing(child) => {}
                        None => out.push(err(p, unsupported(k))),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(node) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        node.check(item, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

const METADATA: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.generateName",
    "metadata.namespace",
    "metadata.labels.*",
    "metadata.annotations.*",
    "metadata.ownerReferences",
    // Set by the server; a client sending back what it read is fine (the store overwrites them).
    "metadata.uid",
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.deletionGracePeriodSeconds",
];

/// Fields of a PodSpec skiff implements (relative to the spec).
const POD_SPEC: &[&str] = &[
    "containers[].name",
    "containers[].image",
    "containers[].command",
    "containers[].args",
    "containers[].workingDir",
    "containers[].env[].name",
    "containers[].env[].value",
    "containers[].env[].valueFrom.configMapKeyRef.name",
    "containers[].env[].valueFrom.configMapKeyRef.key",
    "containers[].env[].valueFrom.configMapKeyRef.optional",
    "containers[].env[].valueFrom.secretKeyRef.name",
    "containers[].env[].valueFrom.secretKeyRef.key",
    "containers[].env[].valueFrom.secretKeyRef.optional",
    "containers[].env[].valueFrom.fieldRef.fieldPath",
    "containers[].env[].valueFrom.fieldRef.apiVersion",
    "containers[].envFrom[].prefix",
    "containers[].envFrom[].configMapRef.name",
    "containers[].envFrom[].configMapRef.optional",
    "containers[].envFrom[].secretRef.name",
    "containers[].envFrom[].secretRef.optional",
    "containers[].ports[].containerPort",
    "containers[].ports[].name",
    "containers[].ports[].protocol",
    "containers[].ports[].hostPort",
    "containers[].ports[].hostIP",
    "containers[].imagePullPolicy",
    "containers[].terminationMessagePath",
    "containers[].terminationMessagePolicy",
    "containers[].resources.limits.cpu",
    "containers[].resources.limits.memory",
    "containers[].resources.requests.cpu",
    "containers[].resources.requests.memory",
    // Enforced by the agent as kubelet does (agent/src/pod/eviction.rs): a pod over its
    // limit is evicted; requests count against the node's allocatable at scheduling.
    "containers[].resources.limits.ephemeral-storage",
    "containers[].resources.requests.ephemeral-storage",
    "containers[].securityContext.runAsUser",
    "containers[].securityContext.runAsGroup",
    "containers[].securityContext.runAsNonRoot",
    // Adding privileges is for the admin: Pod Security admission (api/admission.rs) holds
    // namespace tokens to their namespace's level.
    "containers[].securityContext.capabilities.drop",
    "containers[].securityContext.capabilities.add",
    "containers[].securityContext.allowPrivilegeEscalation",
    "containers[].securityContext.readOnlyRootFilesystem",
    "containers[].securityContext.privileged",
    "containers[].securityContext.procMount",
    "containers[].securityContext.seccompProfile.type",
    "containers[].securityContext.seccompProfile.localhostProfile",
    "securityContext.seccompProfile.type",
    "securityContext.seccompProfile.localhostProfile",
    "securityContext.sysctls[].name",
    "securityContext.sysctls[].value",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.runAsNonRoot",
    "securityContext.supplementalGroups",
    "securityContext.fsGroup",
    "securityContext.fsGroupChangePolicy",
    "containers[].volumeMounts[].name",
    "containers[].volumeMounts[].mountPath",
    "containers[].volumeMounts[].readOnly",
    "containers[].volumeMounts[].subPath",
    "containers[].volumeMounts[].subPathExpr",
    "volumes[].name",
    "volumes[].emptyDir.medium",
    "volumes[].emptyDir.sizeLimit",
    "volumes[].hostPath.path",
    "volumes[].hostPath.type",
    "volumes[].configMap.name",
    "volumes[].configMap.items[].key",
    "volumes[].configMap.items[].path",
    "volumes[].configMap.items[].mode",
    "volumes[].configMap.defaultMode",
    "volumes[].configMap.optional",
    "volumes[].secret.secretName",
    "volumes[].secret.items[].key",
    "volumes[].secret.items[].path",
    "volumes[].secret.items[].mode",
    "volumes[].secret.defaultMode",
    "volumes[].secret.optional",
    "volumes[].persistentVolumeClaim.claimName",
    "volumes[].persistentVolumeClaim.readOnly",
    "containers[].livenessProbe.httpGet.path",
    "containers[].livenessProbe.httpGet.port",
    "containers[].livenessProbe.httpGet.host",
    "containers[].livenessProbe.httpGet.scheme",
    "containers[].livenessProbe.httpGet.httpHeaders[].name",
    "containers[].livenessProbe.httpGet.httpHeaders[].value",
    "containers[].livenessProbe.tcpSocket.port",
    "containers[].livenessProbe.tcpSocket.host",
    "containers[].livenessProbe.exec.command",
    "containers[].livenessProbe.grpc.port",
    "containers[].livenessProbe.grpc.service",
    "containers[].livenessProbe.initialDelaySeconds",
    "containers[].livenessProbe.periodSeconds",
    "containers[].livenessProbe.timeoutSeconds",
    "containers[].livenessProbe.successThreshold",
    "containers[].livenessProbe.failureThreshold",
    "containers[].readinessProbe.httpGet.path",
    "containers[].readinessProbe.httpGet.port",
    "containers[].readinessProbe.httpGet.host",
    "containers[].readinessProbe.httpGet.scheme",
    "containers[].readinessProbe.httpGet.httpHeaders[].name",
    "containers[].readinessProbe.httpGet.httpHeaders[].value",
    "containers[].readinessProbe.tcpSocket.port",
    "containers[].readinessProbe.tcpSocket.host",
    "containers[].readinessProbe.exec.command",
    "containers[].readinessProbe.grpc.port",
    "containers[].readinessProbe.grpc.service",
    "containers[].readinessProbe.initialDelaySeconds",
    "containers[].readinessProbe.periodSeconds",
    "containers[].readinessProbe.timeoutSeconds",
    "containers[].readinessProbe.successThreshold",
    "containers[].readinessProbe.failureThreshold",
    "containers[].startupProbe.httpGet.path",
    "containers[].startupProbe.httpGet.port",
    "containers[].startupProbe.httpGet.host",
    "containers[].startupProbe.httpGet.scheme",
    "containers[].startupProbe.httpGet.httpHeaders[].name",
    "containers[].startupProbe.httpGet.httpHeaders[].value",
    "containers[].startupProbe.tcpSocket.port",
    "containers[].startupProbe.tcpSocket.host",
    "containers[].startupProbe.exec.command",
    "containers[].startupProbe.grpc.port",
    "containers[].startupProbe.grpc.service",
    "containers[].startupProbe.initialDelaySeconds",
    "containers[].startupProbe.periodSeconds",
    "containers[].startupProbe.timeoutSeconds",
    "containers[].startupProbe.successThreshold",
    "containers[].startupProbe.failureThreshold",
    // Hooks: `httpGet.host` must be empty (the pod's own address; semantics.rs), `tcpSocket`
    // (deprecated, a no-op in kubelet) is refused.
    "containers[].lifecycle.postStart.exec.command",
    "containers[].lifecycle.postStart.httpGet.path",
    "containers[].lifecycle.postStart.httpGet.port",
    "containers[].lifecycle.postStart.httpGet.host",
    "containers[].lifecycle.postStart.httpGet.scheme",
    "containers[].lifecycle.postStart.httpGet.httpHeaders[].name",
    "containers[].lifecycle.postStart.httpGet.httpHeaders[].value",
    "containers[].lifecycle.postStart.sleep.seconds",
    "containers[].lifecycle.preStop.exec.command",
    "containers[].lifecycle.preStop.httpGet.path",
    "containers[].lifecycle.preStop.httpGet.port",
    "containers[].lifecycle.preStop.httpGet.host",
    "containers[].lifecycle.preStop.httpGet.scheme",
    "containers[].lifecycle.preStop.httpGet.httpHeaders[].name",
    "containers[].lifecycle.preStop.httpGet.httpHeaders[].value",
    "containers[].lifecycle.preStop.sleep.seconds",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "hostNetwork",
    // `false` only (semantics.rs refuses `true`): charts write both out.
    "hostPID",
    "hostIPC",
    "dnsPolicy",
    "dnsConfig.nameservers",
    "dnsConfig.searches",
    "dnsConfig.options[].name",
    "dnsConfig.options[].value",
    "hostAliases[].ip",
    "hostAliases[].hostnames",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "hostname",
    "subdomain",
    "imagePullSecrets[].name",
    "nodeName",
    "schedulerName",
    // Scheduling, evaluated against the node by controllers/scheduler.rs.
    "nodeSelector.*",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions[].key",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions[].operator",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions[].values",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[].key",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[].operator",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[].values",
    // Preferences: with one node they cannot change the choice (accepted, nothing to do).
    "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution",
    "affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution",
    "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchLabels.*",
    "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions",
    "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].topologyKey",
    "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaces",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchLabels.*",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].topologyKey",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaces",
    "tolerations[].key",
    "tolerations[].operator",
    "tolerations[].value",
    "tolerations[].effect",
    "tolerations[].tolerationSeconds",
    "topologySpreadConstraints[].maxSkew",
    "topologySpreadConstraints[].topologyKey",
    "topologySpreadConstraints[].whenUnsatisfiable",
    "topologySpreadConstraints[].labelSelector.matchLabels.*",
    "topologySpreadConstraints[].labelSelector.matchExpressions",
    "priorityClassName",
    // Set from the PriorityClass at creation; a client sending back what it read is fine.
    "priority",
    "preemptionPolicy",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "enableServiceLinks",
    // The token volume the ServiceAccount admission adds (and the same written by hand).
    "volumes[].projected.defaultMode",
    "volumes[].projected.sources[].serviceAccountToken.path",
    "volumes[].projected.sources[].serviceAccountToken.expirationSeconds",
    "volumes[].projected.sources[].configMap.name",
    "volumes[].projected.sources[].configMap.items[].key",
    "volumes[].projected.sources[].configMap.items[].path",
    "volumes[].projected.sources[].configMap.items[].mode",
    "volumes[].projected.sources[].configMap.optional",
    "volumes[].projected.sources[].secret.name",
    "volumes[].projected.sources[].secret.items[].key",
    "volumes[].projected.sources[].secret.items[].path",
    "volumes[].projected.sources[].secret.items[].mode",
    "volumes[].projected.sources[].secret.optional",
    "volumes[].projected.sources[].downwardAPI.items[].path",
    "volumes[].projected.sources[].downwardAPI.items[].mode",
    "volumes[].projected.sources[].downwardAPI.items[].fieldRef.fieldPath",
    "volumes[].projected.sources[].downwardAPI.items[].fieldRef.apiVersion",
];

/// Fields of a Job's spec skiff implements (relative to the spec; the pod template's spec
/// apart). `selector` and `manualSelector` pass here so that `job.rs` can accept the selector
/// the server generated and refuse a manual one by name.
const JOB_SPEC: &[&str] = &[
    "parallelism",
    "completions",
    "completionMode",
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "suspend",
    "selector.matchLabels.*",
    "manualSelector",
    // A pod template's name is ignored, as Kubernetes ignores it (pods get generated names).
    "template.metadata.name",
    "template.metadata.labels.*",
    "template.metadata.annotations.*",
];

/// An init container allows the fields of an app container, and `restartPolicy` (a sidecar).
/// (`semantics.rs` refuses probes and hooks on the others, in Kubernetes' words.)
fn init_container_patterns() -> impl Iterator<Item = String> {
    POD_SPEC
        .iter()
        .filter_map(|p| p.strip_prefix("containers[]."))
        .map(|p| format!("initContainers[].{p}"))
        .chain(["initContainers[].restartPolicy".to_string()])
}

/// Whether a value asks for nothing: null, an empty list, or a map of such values.
fn says_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(says_nothing),
        _ => false,
    }
}

/// The allowed fields of `kind`. (Long: a table, one arm per kind, read as a list.)
/// OpenAPI schemas trimmed to the fields skiff implements, so that `kubectl explain` and
/// editors show exactly what skiff takes: `defs` are the full schemas (k8s-openapi's, by
/// definition name, referenced as `#/components/schemas/<name>`); each kind's schema keeps
/// only the properties its allowlist names (a map whose allowed keys are named gets them as
/// properties), and what a pattern allows whole is kept whole. `status` is the server's and
/// kept as it is. Trimmed definitions land in `out` under their name (a second, different
/// trimming of the same definition gets `_2`, `_3`…).
pub struct SchemaTrim<'a> {
    defs: &'a serde_json::Map<String, Value>,
    /// The trimmed definitions.
    pub out: serde_json::Map<String, Value>,
}

const REF_PREFIX: &str = "#/components/schemas/";

impl<'a> SchemaTrim<'a> {
    /// Trims into an empty set of definitions.
    pub fn new(defs: &'a serde_json::Map<String, Value>) -> Self {
        SchemaTrim {
            defs,
            out: serde_json::Map::new(),
        }
    }

    /// Trims the schema `name` of `kind` (its top-level definition) and returns the name it is
    /// kept under.
    pub fn kind(&mut self, kind: &str, name: &str) -> Option<String> {
        let full = self.defs.get(name)?.clone();
        let mut trimmed = self.walk(&full, Some(&allowlist(kind)), 0);
        if let Some(status) = full["properties"].get("status") {
            let status = self.walk(status, None, 0);
            trimmed["properties"]["status"] = status;
        }
        Some(self.register(name, trimmed))
    }

    fn register(&mut self, name: &str, schema: Value) -> String {
        let mut candidate = name.to_string();
        for n in 2.. {
            match self.out.get(&candidate) {
                None => {
                    self.out.insert(candidate.clone(), schema);
                    return candidate;
                }
                Some(same) if *same == schema => return candidate,
                Some(_) => candidate = format!("{name}_{n}"),
            }
        }
        unreachable!("some name is free")
    }

    /// `schema` trimmed to `allow` (`None`: kept whole), its references registered.
    fn walk(&mut self, schema: &Value, allow: Option<&Allow>, depth: usize) -> Value {
        let allow = allow.filter(|a| !a.leaf);
        let Value::Object(map) = schema else {
            return schema.clone();
        };
        let mut out = serde_json::Map::new();
        for (key, v) in map {
            let v = match key.as_str() {
                "$ref" => {
                    let target = v.as_str().and_then(|r| r.strip_prefix(REF_PREFIX));
                    match target.and_then(|t| Some((t, self.defs.get(t)?.clone()))) {
                        Some((t, def)) if depth < 64 => {
                            let trimmed = self.walk(&def, allow, depth + 1);
                            json_str(format!("{REF_PREFIX}{}", self.register(t, trimmed)))
                        }
                        _ => v.clone(),
                    }
                }
                "allOf" | "anyOf" | "oneOf" => Value::Array(
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| self.walk(s, allow, depth))
                        .collect(),
                ),
                "items" => {
                    let items = match allow {
                        Some(a) => a.items.as_deref().or(Some(a)),
                        None => None,
                    };
                    self.walk(v, items, depth)
                }
                "properties" => {
                    let mut props = serde_json::Map::new();
                    for (name, p) in v.as_object().into_iter().flatten() {
                        match allow {
                            None => {
                                props.insert(name.clone(), self.walk(p, None, depth));
                            }
                            Some(a) => {
                                if let Some(child) = a.children.get(name).or(a.any_key.as_deref()) {
                                    props.insert(name.clone(), self.walk(p, Some(child), depth));
                                }
                            }
                        }
                    }
                    Value::Object(props)
                }
                "additionalProperties" => match allow {
                    None => self.walk(v, None, depth),
                    Some(a) => match a.any_key.as_deref() {
                        Some(any) => self.walk(v, Some(any), depth),
                        None => {
                            // A map whose allowed keys are named (`limits.cpu`): those keys.
                            let mut props = serde_json::Map::new();
                            for (name, child) in &a.children {
                                props.insert(name.clone(), self.walk(v, Some(child), depth));
                            }
                            out.insert("properties".into(), Value::Object(props));
                            continue;
                        }
                    },
                },
                _ => v.clone(),
            };
            out.insert(key.clone(), v);
        }
        // `required` names only properties that are kept.
        if let (Some(Value::Array(required)), Some(Value::Object(props))) =
            (out.get("required"), out.get("properties"))
        {
            let kept: Vec<Value> = required
                .iter()
                .filter(|r| r.as_str().is_some_and(|r| props.contains_key(r)))
                .cloned()
                .collect();
            out.insert("required".into(), Value::Array(kept));
        }
        Value::Object(out)
    }
}

fn json_str(s: String) -> Value {
    Value::String(s)
}

pub(super) fn allowlist(kind: &str) -> Allow {
    let mut patterns: Vec<String> = METADATA.iter().map(|s| s.to_string()).collect();
    let pod = |prefix: &'static str| {
        POD_SPEC
            .iter()
            .map(|p| p.to_string())
            .chain(init_container_patterns())
            .map(move |p| format!("{prefix}{p}"))
    };
    match kind {
        "Namespace" => {}
        // Every k3s field passes here; `helmchart.rs` refuses the ones skiff does not honour
        // by name, with the reason (no helm Job).
        "HelmChart" | "HelmChartConfig" => {
            patterns.push("spec".into());
            if kind == "HelmChart" {
                // The reconciler's own, which holds a deletion until the uninstall is done.
                patterns.push("metadata.finalizers".into());
            }
        }
        "Node" => patterns.extend(
            [
                "spec.taints[].key",
                "spec.taints[].value",
                "spec.taints[].effect",
                "spec.taints[].timeAdded",
                "spec.unschedulable",
            ]
            .map(String::from),
        ),
        // Kept and given its status (`controllers/disruption.rs`); skiff has no eviction API
        // for it to guard. `matchExpressions` is refused by name, as for workloads.
        "PodDisruptionBudget" => patterns.extend(
            [
                "spec.minAvailable",
                "spec.maxUnavailable",
                "spec.selector.matchLabels.*",
                "spec.unhealthyPodEvictionPolicy",
            ]
            .map(String::from),
        ),
        "Lease" => patterns.extend(
            [
                "spec.holderIdentity",
                "spec.leaseDurationSeconds",
                "spec.acquireTime",
                "spec.renewTime",
                "spec.leaseTransitions",
            ]
            .map(String::from),
        ),
        "PriorityClass" => patterns.extend(
            ["value", "globalDefault", "description", "preemptionPolicy"].map(String::from),
        ),
        "Service" => patterns.extend(
            [
                "spec.type",
                "spec.selector.*",
                "spec.ports[].name",
                "spec.ports[].protocol",
                "spec.ports[].port",
                "spec.ports[].targetPort",
                "spec.ports[].nodePort",
                "spec.ports[].appProtocol",
                "spec.clusterIP",
                "spec.clusterIPs",
                "spec.sessionAffinity",
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "spec.loadBalancerIP",
                "spec.loadBalancerSourceRanges",
                "spec.ipFamilies",
                "spec.ipFamilyPolicy",
                "spec.internalTrafficPolicy",
                "spec.externalTrafficPolicy",
                "spec.allocateLoadBalancerNodePorts",
                "spec.publishNotReadyAddresses",
            ]
            .map(String::from),
        ),
        "EndpointSlice" => patterns.extend(["addressType", "endpoints", "ports"].map(String::from)),
        "IngressClass" => patterns.extend(["spec.controller"].map(String::from)),
        "Ingress" => patterns.extend(
            [
                "spec.ingressClassName",
                "spec.defaultBackend.service.name",
                "spec.defaultBackend.service.port.number",
                "spec.defaultBackend.service.port.name",
                "spec.rules[].host",
                "spec.rules[].http.paths[].path",
                "spec.rules[].http.paths[].pathType",
                "spec.rules[].http.paths[].backend.service.name",
                "spec.rules[].http.paths[].backend.service.port.number",
                "spec.rules[].http.paths[].backend.service.port.name",
                "spec.tls[].hosts",
                "spec.tls[].secretName",
            ]
            .map(String::from),
        ),
        "Event" => patterns.extend(
            [
                "involvedObject",
                "reason",
                "message",
                "source",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "type",
                "eventTime",
                "series",
                "action",
                "related",
                "reportingComponent",
                "reportingInstance",
            ]
            .map(String::from),
        ),
        "ConfigMap" => patterns.extend(["data.*", "binaryData.*", "immutable"].map(String::from)),
        "Secret" => {
            patterns.extend(["type", "data.*", "stringData.*", "immutable"].map(String::from))
        }
        "Pod" => patterns.extend(pod("spec.")),
        "PersistentVolumeClaim" | "PersistentVolume" | "StorageClass" => {
            patterns.extend(storage(kind).iter().map(|p| p.to_string()))
        }
        "Deployment" | "ReplicaSet" => {
            patterns.extend(
                [
                    "spec.replicas",
                    "spec.selector.matchLabels.*",
                    "spec.template.metadata.name",
                    "spec.template.metadata.labels.*",
                    "spec.template.metadata.annotations.*",
                    "spec.minReadySeconds",
                    "spec.revisionHistoryLimit",
                    "spec.progressDeadlineSeconds",
                    "spec.strategy.type",
                    "spec.strategy.rollingUpdate.maxSurge",
                    "spec.strategy.rollingUpdate.maxUnavailable",
                ]
                .map(String::from),
            );
            if kind == "Deployment" {
                patterns.push("spec.paused".into());
            }
            patterns.extend(pod("spec.template.spec."));
        }
        "StatefulSet" => {
            patterns.extend(
                [
                    "spec.replicas",
                    "spec.selector.matchLabels.*",
                    "spec.template.metadata.name",
                    "spec.template.metadata.labels.*",
                    "spec.template.metadata.annotations.*",
                    "spec.serviceName",
                    "spec.podManagementPolicy",
                    "spec.updateStrategy.type",
                    "spec.updateStrategy.rollingUpdate.partition",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    "spec.minReadySeconds",
                    "spec.revisionHistoryLimit",
                    "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
                    "spec.persistentVolumeClaimRetentionPolicy.whenScaled",
                    "spec.volumeClaimTemplates[].apiVersion",
                    "spec.volumeClaimTemplates[].kind",
                    "spec.volumeClaimTemplates[].metadata.name",
                    "spec.volumeClaimTemplates[].metadata.labels.*",
                    "spec.volumeClaimTemplates[].metadata.annotations.*",
                ]
                .map(String::from),
            );
            // A claim template's spec is a claim's (its finalizers are the claim's own).
            let claim = storage("PersistentVolumeClaim").iter();
            patterns.extend(
                claim
                    .filter_map(|p| p.strip_prefix("spec."))
                    .map(|p| format!("spec.volumeClaimTemplates[].spec.{p}")),
            );
            patterns.extend(pod("spec.template.spec."));
        }
        "NetworkPolicy" => patterns.extend(network_policy()),
        "Job" => {
            patterns.extend(JOB_SPEC.iter().map(|p| format!("spec.{p}")));
            patterns.extend(pod("spec.template.spec."));
        }
        "CronJob" => {
            patterns.extend(
                [
                    "spec.schedule",
                    "spec.timeZone",
                    "spec.concurrencyPolicy",
                    "spec.suspend",
                    "spec.startingDeadlineSeconds",
                    "spec.successfulJobsHistoryLimit",
                    "spec.failedJobsHistoryLimit",
                    "spec.jobTemplate.metadata.labels.*",
                    "spec.jobTemplate.metadata.annotations.*",
                    // `kubectl create cronjob` sets it; Kubernetes ignores it too (a Job is
                    // named `<cronjob>-<minutes>`).
                    "spec.jobTemplate.metadata.name",
                ]
                .map(String::from),
            );
            patterns.extend(
                JOB_SPEC
                    .iter()
                    .map(|p| format!("spec.jobTemplate.spec.{p}")),
            );
            patterns.extend(pod("spec.jobTemplate.spec.template.spec."));
        }
        "DaemonSet" => {
            patterns.extend(
                [
                    "spec.selector.matchLabels.*",
                    "spec.template.metadata.name",
                    "spec.template.metadata.labels.*",
                    "spec.template.metadata.annotations.*",
                    "spec.updateStrategy.type",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    "spec.updateStrategy.rollingUpdate.maxSurge",
                    "spec.minReadySeconds",
                    "spec.revisionHistoryLimit",
                ]
                .map(String::from),
            );
            patterns.extend(pod("spec.template.spec."));
        }
        // Written by the StatefulSet and DaemonSet controllers: a revision's template, whole.
        "ServiceAccount" => patterns.extend(
            [
                "automountServiceAccountToken",
                "imagePullSecrets[].name",
                // The legacy list of the account's token Secrets: kept, used for nothing
                // (Kubernetes stopped using it in 1.24; charts still write it).
                "secrets[].name",
                "secrets[].namespace",
            ]
            .map(String::from),
        ),
        // `nonResourceURLs` and `aggregationRule` are not implemented: refused by name.
        "Role" | "ClusterRole" => patterns.extend(
            [
                "rules[].apiGroups",
                "rules[].resources",
                "rules[].verbs",
                "rules[].resourceNames",
            ]
            .map(String::from),
        ),
        "RoleBinding" | "ClusterRoleBinding" => patterns.extend(
            [
                "subjects[].kind",
                "subjects[].name",
                "subjects[].namespace",
                "subjects[].apiGroup",
                "roleRef.apiGroup",
                "roleRef.kind",
                "roleRef.name",
            ]
            .map(String::from),
        ),
        "ControllerRevision" => patterns.extend(["data", "revision"].map(String::from)),
        _ => {}
    }
    Allow::from_patterns(patterns.iter().map(String::as_str))
}

/// A NetworkPolicy's fields: all of `networking.k8s.io/v1`, enforced by the node's rules.
fn network_policy() -> Vec<String> {
    let selector = |at: &str| {
        [
            "matchLabels.*",
            "matchExpressions[].key",
            "matchExpressions[].operator",
            "matchExpressions[].values",
        ]
        .map(|f| format!("{at}.{f}"))
    };
    let mut out: Vec<String> = selector("spec.podSelector").into();
    out.push("spec.policyTypes".into());
    for (rule, peers) in [("spec.ingress[]", "from[]"), ("spec.egress[]", "to[]")] {
        let peer = format!("{rule}.{peers}");
        out.extend(selector(&format!("{peer}.podSelector")));
        out.extend(selector(&format!("{peer}.namespaceSelector")));
        out.push(format!("{peer}.ipBlock.cidr"));
        out.push(format!("{peer}.ipBlock.except"));
        for f in ["protocol", "port", "endPort"] {
            out.push(format!("{rule}.ports[].{f}"));
        }
    }
    out
}

/// The fields of the storage kinds skiff implements (the finalizers of claims and volumes are
/// the deletion protection's, which skiff keeps).
fn storage(kind: &str) -> &'static [&'static str] {
    match kind {
        "PersistentVolumeClaim" => &[
            "metadata.finalizers",
            "spec.accessModes",
            "spec.resources.requests.storage",
            "spec.storageClassName",
            "spec.volumeName",
            "spec.volumeMode",
            "spec.selector.matchLabels.*",
        ],
        "PersistentVolume" => &[
            "metadata.finalizers",
            "spec.capacity.storage",
            "spec.accessModes",
            "spec.persistentVolumeReclaimPolicy",
            "spec.storageClassName",
            "spec.volumeMode",
            "spec.hostPath.path",
            "spec.hostPath.type",
            "spec.local.path",
            "spec.nodeAffinity.required.nodeSelectorTerms[].matchExpressions[].key",
            "spec.nodeAffinity.required.nodeSelectorTerms[].matchExpressions[].operator",
            "spec.nodeAffinity.required.nodeSelectorTerms[].matchExpressions[].values",
            "spec.claimRef.apiVersion",
            "spec.claimRef.kind",
            "spec.claimRef.namespace",
            "spec.claimRef.name",
            "spec.claimRef.uid",
            "spec.claimRef.resourceVersion",
        ],
        _ => &[
            "provisioner",
            "reclaimPolicy",
            "volumeBindingMode",
            "allowVolumeExpansion",
        ],
    }
}
