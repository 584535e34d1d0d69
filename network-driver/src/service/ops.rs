//! What an operator sees (`GET /metrics`, `outboard network check`): counts, firewall health,
//! and every stored network and endpoint checked against the kernel's links. Served on the
//! plugin socket under `/outboard/v1/` (the route is in `handlers.rs`); dockerd only ever
//! calls `/NetworkDriver.*`.

use std::sync::atomic::Ordering;

use common::metrics::{Kind, MetricsText};
use serde::Serialize;

use super::{FirewallStatus, Service};
use crate::error::NetworkError;
use crate::heal;
use crate::naming::{self, Owner};
use crate::sys::Sys;

/// Reply of `GET /outboard/v1/check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// This instance's tag (in link and table names).
    pub instance: String,
    /// The firewall table's name.
    pub table: String,
    /// `available`, `unknown`, or the reason it is unavailable/disabled.
    pub firewall: String,
    /// Networks in the store.
    pub networks: Vec<NetworkCheck>,
    /// Endpoints in the store.
    pub endpoints: Vec<EndpointCheck>,
    /// Links carrying our mark that no record explains.
    pub orphan_links: Vec<String>,
    /// Firewall applies and heals since start.
    pub firewall_applies: u64,
    /// Re-applies after an outside change.
    pub firewall_heals: u64,
}

/// One stored network.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkCheck {
    /// dockerd's network ID.
    pub id: String,
    /// Bridge name.
    pub bridge: String,
    /// Empty when the bridge exists, is ours and is up.
    pub problems: Vec<String>,
}

/// One stored endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointCheck {
    /// dockerd's endpoint ID.
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// Host end of the veth.
    pub host: String,
    /// Empty when the host end exists, is ours and sits on the network's bridge.
    pub problems: Vec<String>,
}

impl<S: Sys> Service<S> {
    /// The firewall table's name.
    pub fn table_name(&self) -> String {
        self.table()
    }

    /// Why the firewall is off by configuration, if it is.
    pub fn firewall_disabled_reason(&self) -> Option<String> {
        self.firewall_disabled()
    }

    /// Every stored network and endpoint against the kernel's links.
    pub async fn check(&self) -> Result<CheckReport, NetworkError> {
        let links = self
            .sys
            .list_links()
            .await
            .map_err(NetworkError::sys("listing links".to_string()))?;
        let mut networks = Vec::new();
        let mut bridge_index = std::collections::BTreeMap::new();
        let mut explained = std::collections::BTreeSet::new();
        for r in self.networks.iter() {
            let (_, n) = r?;
            let mut problems = Vec::new();
            match links.iter().find(|l| l.name == n.bridge) {
                None => problems.push(format!("bridge {} is missing", n.bridge)),
                Some(l) => {
                    let owner = l.alias.as_deref().and_then(|a| naming::owner(&self.tag, a));
                    if owner != Some(Owner::Network(n.id.clone())) {
                        problems.push(format!("link {} does not carry our mark", n.bridge));
                    } else {
                        explained.insert(l.name.clone());
                        bridge_index.insert(n.id.clone(), l.index);
                    }
                    if !l.up {
                        problems.push(format!("bridge {} is down", n.bridge));
                    }
                }
            }
            networks.push(NetworkCheck {
                id: n.id,
                bridge: n.bridge,
                problems,
            });
        }
        let mut endpoints = Vec::new();
        for r in self.endpoints.iter() {
            let (_, e) = r?;
            let mut problems = Vec::new();
            match links.iter().find(|l| l.name == e.host) {
                // Before Join the veth exists; after the container left it may be gone
                // until DeleteEndpoint: only a record whose network is gone is wrong.
                None => problems.push(format!("veth {} is missing", e.host)),
                Some(l) => {
                    let owner = l.alias.as_deref().and_then(|a| naming::owner(&self.tag, a));
                    if owner != Some(Owner::Endpoint(e.id.clone())) {
                        problems.push(format!("link {} does not carry our mark", e.host));
                    } else {
                        explained.insert(l.name.clone());
                    }
                    if let Some(want) = bridge_index.get(&e.network_id) {
                        if l.controller != Some(*want) {
                            problems
                                .push(format!("veth {} is not on its network's bridge", e.host));
                        }
                    }
                }
            }
            if !networks.iter().any(|n| n.id == e.network_id) {
                problems.push(format!("network {} is not stored", e.network_id));
            }
            endpoints.push(EndpointCheck {
                id: e.id,
                network_id: e.network_id,
                host: e.host,
                problems,
            });
        }
        let orphan_links = links
            .iter()
            .filter(|l| {
                l.alias
                    .as_deref()
                    .and_then(|a| naming::owner(&self.tag, a))
                    .is_some()
                    && !explained.contains(&l.name)
            })
            .map(|l| l.name.clone())
            .collect();
        Ok(CheckReport {
            instance: self.tag.clone(),
            table: self.table(),
            firewall: match self.firewall_status() {
                FirewallStatus::Available => "available".into(),
                FirewallStatus::Unknown => "unknown".into(),
                FirewallStatus::Unavailable(r) => r,
            },
            networks,
            endpoints,
            orphan_links,
            firewall_applies: heal::APPLIES_OK.load(Ordering::Relaxed),
            firewall_heals: heal::HEALS.load(Ordering::Relaxed),
        })
    }

    /// Gauges and counters for `GET /metrics`.
    pub fn render_metrics(&self, w: &mut MetricsText) {
        w.single(
            "outboard_network_networks",
            Kind::Gauge,
            "Networks in the store.",
            self.networks.iter().count() as f64,
        );
        w.single(
            "outboard_network_endpoints",
            Kind::Gauge,
            "Endpoints in the store.",
            self.endpoints.iter().count() as f64,
        );
        let up = match self.firewall_status() {
            FirewallStatus::Available | FirewallStatus::Unknown => 1.0,
            FirewallStatus::Unavailable(_) => 0.0,
        };
        w.single(
            "outboard_network_firewall_up",
            Kind::Gauge,
            "1 while the firewall table is applied (or not yet needed), 0 when disabled or failing.",
            up,
        );
        w.family(
            "outboard_network_firewall_applies_total",
            Kind::Counter,
            "Firewall table applies (one nftables transaction each) by result.",
        );
        w.sample(
            "outboard_network_firewall_applies_total",
            &[("result", "ok")],
            heal::APPLIES_OK.load(Ordering::Relaxed) as f64,
        );
        w.sample(
            "outboard_network_firewall_applies_total",
            &[("result", "error")],
            heal::APPLIES_FAILED.load(Ordering::Relaxed) as f64,
        );
        w.single(
            "outboard_network_firewall_outside_changes_total",
            Kind::Counter,
            "Transactions by others that touched our firewall table (nftables notifications).",
            heal::OUTSIDE_CHANGES.load(Ordering::Relaxed) as f64,
        );
        w.single(
            "outboard_network_firewall_heals_total",
            Kind::Counter,
            "Re-applies of the firewall table after an outside change.",
            heal::HEALS.load(Ordering::Relaxed) as f64,
        );
    }
}
