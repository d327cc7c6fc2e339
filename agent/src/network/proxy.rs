//! The node's Service implementation — what kube-proxy does, as a loop of its own: on every
//! change of pods, Services, EndpointSlices, NetworkPolicies or Namespaces (the [`Cluster`]'s
//! notifications), and on a periodic tick, it computes the plan ([`services::plan`], and
//! [`netpol::plan`] for NetworkPolicies, as a network plugin would), writes back what the
//! node allocates (virtual IPs, node ports, LoadBalancer status), says once why a
//! LoadBalancer Service is left Pending (a Warning event `SyncLoadBalancerFailed`), updates the
//! cluster DNS records and installs the nftables rules when they changed ([`rules`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::services::{self, Allocation};
use super::{netpol, rules, Network};
use crate::Cluster;

/// The longest the loop waits without a notification (a failed rule installation is retried
/// then). The pod worker, which did this before, woke at least this often.
const TICK: Duration = Duration::from_secs(30);

/// How often the loop checks that another tool has not removed skiff's nftables table, bridge
/// or pod interfaces (`systemctl restart nftables` often starts with `flush ruleset`).
const DRIFT_CHECK: Duration = Duration::from_secs(2);

/// Implements Services on the node.
pub struct ServiceProxy {
    cluster: Arc<dyn Cluster>,
    network: Arc<Network>,
    /// `<data-dir>/pods`, where a pod's network namespace is found to re-attach it.
    pods_dir: PathBuf,
    /// The Service rules last installed (to write nftables only on change).
    installed: Option<rules::Rules>,
    /// The Services left Pending and why, as last said in an event (said once per reason).
    pending: std::collections::HashSet<(String, String, String)>,
}

impl ServiceProxy {
    /// A proxy for the Services of `cluster` over `network`.
    pub fn new(cluster: Arc<dyn Cluster>, network: Arc<Network>, pods_dir: PathBuf) -> Self {
        ServiceProxy {
            cluster,
            network,
            pods_dir,
            installed: None,
            pending: Default::default(),
        }
    }

    /// Syncs at once, then on every change notification and tick, until `shutdown` flips.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.cluster.subscribe();
        let mut drift = tokio::time::interval(DRIFT_CHECK);
        drift.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = true;
        loop {
            if dirty {
                self.sync().await;
            }
            dirty = true;
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = drift.tick() => dirty = self.repair_drift().await,
                r = changes.recv() => {
                    if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                        break;
                    }
                    // Coalesce a burst.
                    while changes.try_recv().is_ok() {}
                }
                _ = tick.tick() => {}
            }
        }
    }

    /// Puts back what another tool removed: the bridge and pod interfaces
    /// ([`Network::repair`]), and the nftables table (installed again by the next pass). True
    /// when a pass must run.
    async fn repair_drift(&mut self) -> bool {
        let (net, pods_dir) = (self.network.clone(), self.pods_dir.clone());
        // Rules not installed yet are installed by the next pass anyway: no `nft` to ask.
        let installed = self.installed.is_some();
        let (table, repaired) = tokio::task::spawn_blocking(move || {
            let table = !installed || rules::table_exists(&net.config);
            (table, net.repair(&pods_dir))
        })
        .await
        .expect("no panic");
        match repaired {
            Ok(r) if !r.is_empty() => {
                tracing::warn!(
                    "another tool removed part of skiff's network; put back: {}",
                    r.join(", ")
                );
                // A re-created bridge comes with an empty table: install the rules again.
                self.installed = None;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("repairing the pod network: {e}"),
        }
        if !table && self.installed.is_some() {
            tracing::warn!(
                "skiff's nftables table {} was removed by another tool: installing it again",
                self.network.config.table()
            );
            self.installed = None;
        }
        self.installed.is_none()
    }

    /// One pass: writes back what it allocates, updates the DNS records, installs the rules
    /// when they changed.
    async fn sync(&mut self) {
        let net = self.network.clone();
        let pods = self.cluster.pods();
        let services = self.cluster.objects("Service");
        let slices = self.cluster.objects("EndpointSlice");
        let mut plan = services::plan(
            &net.config,
            &services,
            &slices,
            &pods,
            &super::HostAddresses::read(&net.config),
        );
        plan.rules.policies = netpol::plan(
            &self.cluster.objects("NetworkPolicy"),
            &self.cluster.objects("Namespace"),
            &pods,
        );
        if !plan.rules.policies.is_empty() {
            rules::require_bridge_filtering();
        }
        for p in &plan.pending {
            if !self.pending.contains(p) {
                let (ns, name, why) = p;
                tracing::warn!("Service {ns}/{name}: {why}");
                self.cluster
                    .service_event(ns, name, true, "SyncLoadBalancerFailed", why);
            }
        }
        self.pending = plan.pending.iter().cloned().collect();
        for a in plan.allocations {
            let r = match a {
                Allocation::Spec {
                    namespace,
                    name,
                    patch,
                } => {
                    self.cluster
                        .update_service(&namespace, &name, Some(patch), None)
                        .await
                }
                Allocation::Status {
                    namespace,
                    name,
                    status,
                } => {
                    self.cluster
                        .update_service(&namespace, &name, None, Some(status))
                        .await
                }
            };
            if let Err(e) = r {
                tracing::warn!("recording a Service allocation: {e}");
            }
        }
        {
            let mut current = net.records.write().unwrap_or_else(|p| p.into_inner());
            if *current != plan.records {
                *current = plan.records;
            }
        }
        if self.installed.as_ref() == Some(&plan.rules) {
            return;
        }
        let config = net.config.clone();
        let rules = plan.rules.clone();
        match tokio::task::spawn_blocking(move || rules::apply(&config, &rules))
            .await
            .expect("no panic")
        {
            Ok(()) => self.installed = Some(plan.rules),
            Err(e) => tracing::error!("installing the Service rules: {e}"),
        }
    }
}
