//! The kinds skiff serves: their group/version, plural and scope. The one table every other
//! module consults to know whether a kind exists.

/// What skiff knows about one kind.
#[derive(Debug)]
pub struct KindInfo {
    /// `apiVersion` as written in manifests, e.g. `apps/v1`.
    pub api_version: &'static str,
    /// `kind`, e.g. `Deployment`.
    pub kind: &'static str,
    /// The lower-case plural used in API paths and on the command line.
    pub plural: &'static str,
    /// Short names accepted on the command line.
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl KindInfo {
    /// Whether the store tracks `metadata.generation` (kinds with a `spec`).
    pub fn has_generation(&self) -> bool {
        matches!(
            self.kind,
            "Pod"
                | "Deployment"
                | "ReplicaSet"
                | "Ingress"
                | "StatefulSet"
                | "NetworkPolicy"
                | "Job"
                | "CronJob"
                | "DaemonSet"
                | "PodDisruptionBudget"
                | "HelmChart"
                | "HelmChartConfig"
        )
    }

    /// Whether the store holds objects of this kind as their JSON text rather than as a tree
    /// (`model::object`): the kinds that are many and that the reconcilers rarely read —
    /// ConfigMaps and Secrets, read when a pod starts, a chart is installed or the collector
    /// looks at owners; Events, read by `kubectl describe`/`get events` and the API's
    /// expiry every 10 s (a failing pod has a few). A tree is parsed for a reader that needs
    /// one.
    pub fn held_as_text(&self) -> bool {
        matches!(self.kind, "ConfigMap" | "Secret" | "Event")
    }

    /// Whether objects of this kind may carry `metadata.finalizers`, which hold a deletion
    /// back (`deletionTimestamp` set) until the list is empty. Pods have their own graceful
    /// deletion instead.
    pub fn has_finalizers(&self) -> bool {
        matches!(
            self.kind,
            "PersistentVolumeClaim" | "PersistentVolume" | "HelmChart"
        )
    }
}

/// Every kind skiff serves, in the order a folder applies them (namespaces first).
pub static KINDS: &[KindInfo] = &[
    KindInfo {
        api_version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        short_names: &["ns"],
        namespaced: false,
    },
    KindInfo {
        api_version: "v1",
        kind: "Node",
        plural: "nodes",
        short_names: &["no"],
        namespaced: false,
    },
    KindInfo {
        api_version: "scheduling.k8s.io/v1",
        kind: "PriorityClass",
        plural: "priorityclasses",
        short_names: &["pc"],
        namespaced: false,
    },
    KindInfo {
        api_version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        short_names: &["sa"],
        namespaced: true,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        short_names: &[],
        namespaced: false,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        short_names: &[],
        namespaced: false,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        plural: "roles",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        short_names: &["cm"],
        namespaced: true,
    },
    KindInfo {
        api_version: "v1",
        kind: "Secret",
        plural: "secrets",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "storage.k8s.io/v1",
        kind: "StorageClass",
        plural: "storageclasses",
        short_names: &["sc"],
        namespaced: false,
    },
    KindInfo {
        api_version: "v1",
        kind: "PersistentVolume",
        plural: "persistentvolumes",
        short_names: &["pv"],
        namespaced: false,
    },
    KindInfo {
        api_version: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        short_names: &["pvc"],
        namespaced: true,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "Deployment",
        plural: "deployments",
        short_names: &["deploy"],
        namespaced: true,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        short_names: &["rs"],
        namespaced: true,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        short_names: &["sts"],
        namespaced: true,
    },
    KindInfo {
        api_version: "batch/v1",
        kind: "CronJob",
        plural: "cronjobs",
        short_names: &["cj"],
        namespaced: true,
    },
    KindInfo {
        api_version: "batch/v1",
        kind: "Job",
        plural: "jobs",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        short_names: &["ds"],
        namespaced: true,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "v1",
        kind: "Pod",
        plural: "pods",
        short_names: &["po"],
        namespaced: true,
    },
    KindInfo {
        api_version: "v1",
        kind: "Service",
        plural: "services",
        short_names: &["svc"],
        namespaced: true,
    },
    KindInfo {
        api_version: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "networking.k8s.io/v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        short_names: &[],
        namespaced: false,
    },
    KindInfo {
        api_version: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        short_names: &["netpol"],
        namespaced: true,
    },
    KindInfo {
        api_version: "networking.k8s.io/v1",
        kind: "Ingress",
        plural: "ingresses",
        short_names: &["ing"],
        namespaced: true,
    },
    KindInfo {
        api_version: "policy/v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        short_names: &["pdb"],
        namespaced: true,
    },
    KindInfo {
        api_version: "coordination.k8s.io/v1",
        kind: "Lease",
        plural: "leases",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "helm.cattle.io/v1",
        kind: "HelmChart",
        plural: "helmcharts",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "helm.cattle.io/v1",
        kind: "HelmChartConfig",
        plural: "helmchartconfigs",
        short_names: &[],
        namespaced: true,
    },
    KindInfo {
        api_version: "v1",
        kind: "Event",
        plural: "events",
        short_names: &["ev"],
        namespaced: true,
    },
];

/// Looks a kind up by its `kind` name.
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// Looks a kind up the way `kubectl get` accepts it: plural, singular, short name or kind.
pub fn by_name(name: &str) -> Option<&'static KindInfo> {
    let n = name.to_ascii_lowercase();
    KINDS.iter().find(|k| {
        k.plural == n || k.kind.to_ascii_lowercase() == n || k.short_names.contains(&n.as_str())
    })
}
