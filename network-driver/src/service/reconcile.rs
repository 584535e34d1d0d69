//! Restart safety: the kernel brought in line with the store at start (bridges re-created or
//! adopted, veths re-attached, links of this instance that belong to nothing deleted, the
//! firewall re-applied).

use std::collections::{BTreeMap, BTreeSet};

use super::{short, Service};
use crate::error::NetworkError;
use crate::naming::{self, Owner};
use crate::sys::Sys;

impl<S: Sys> Service<S> {
    // ----- restart safety -----

    /// Bring the kernel in line with the store: re-create missing bridges, adopt existing
    /// links, re-attach veths, delete links of this instance that belong to nothing known,
    /// and re-apply the firewall table.
    pub async fn reconcile(&self) -> Result<ReconcileReport, NetworkError> {
        let _g = self.net_lock.lock().await;
        let _gate = self.ep_gate.write().await;
        let mut report = ReconcileReport::default();
        let mut nets = BTreeMap::new();
        for r in self.networks.iter() {
            let (_, n) = r?;
            nets.insert(n.id.clone(), n);
        }
        let mut usable = BTreeSet::new();
        for net in nets.values() {
            let existed = self
                .sys
                .link(&net.bridge)
                .await
                .map_err(NetworkError::sys("listing links"))?
                .is_some();
            match self.ensure_bridge(net).await {
                Ok(()) if existed => {
                    report.adopted += 1;
                    usable.insert(net.id.clone());
                }
                Ok(()) => {
                    report.recreated += 1;
                    usable.insert(net.id.clone());
                }
                Err(e) => {
                    tracing::error!(network = %short(&net.id), error = %e, "cannot restore network");
                    report.errors.push(e.to_string());
                }
            }
        }
        let links = self
            .sys
            .list_links()
            .await
            .map_err(NetworkError::sys("listing links"))?;
        let by_name: BTreeMap<&str, &crate::sys::Link> =
            links.iter().map(|l| (l.name.as_str(), l)).collect();
        let mut keep: BTreeSet<String> = nets.values().map(|n| n.bridge.clone()).collect();
        let mut eps = BTreeSet::new();
        let mut stale_eps = Vec::new();
        for r in self.endpoints.iter() {
            let (key, ep) = r?;
            let Some(net) = nets.get(&ep.network_id) else {
                stale_eps.push((key, ep));
                continue;
            };
            keep.insert(ep.host.clone());
            keep.insert(ep.peer.clone());
            eps.insert(ep.id.clone());
            if !usable.contains(&net.id) {
                // Its bridge is missing or foreign: nothing is attached to it.
                continue;
            }
            let bridge_index = by_name.get(net.bridge.as_str()).map(|l| l.index);
            if let Some(l) = by_name.get(ep.host.as_str()) {
                let mine = l.alias.as_deref().and_then(|a| naming::owner(&self.tag, a))
                    == Some(Owner::Endpoint(ep.id.clone()));
                if !mine {
                    let e = format!(
                        "link {} of endpoint {} is not this driver's: left untouched",
                        ep.host,
                        short(&ep.id)
                    );
                    tracing::warn!("{e}");
                    report.errors.push(e);
                    continue;
                }
                if bridge_index.is_none() || l.controller != bridge_index || !l.up {
                    match self.sys.attach(&ep.host, &net.bridge).await {
                        Ok(()) => report.reattached += 1,
                        Err(e) => report.errors.push(format!("attaching {}: {e}", ep.host)),
                    }
                }
            }
        }
        for (key, ep) in stale_eps {
            self.delete_quietly(&ep.host, &Owner::Endpoint(ep.id.clone()))
                .await;
            self.endpoints.remove(&key)?;
            report.deleted += 1;
        }
        for l in &links {
            if keep.contains(&l.name) {
                continue;
            }
            let owner = l.alias.as_deref().and_then(|a| naming::owner(&self.tag, a));
            let stale = match owner {
                Some(Owner::Network(id)) => !nets.contains_key(&id),
                Some(Owner::Endpoint(id)) => !eps.contains(&id),
                None => {
                    if naming::is_generated(&self.tag, &l.name) {
                        // Our naming but not our mark: an administrator's link, or one left in
                        // the instant between creating a link and marking it. Never touched.
                        tracing::warn!(link = %l.name, "a link with this driver's naming but no mark: left alone");
                        report
                            .errors
                            .push(format!("unmarked link {} left alone", l.name));
                    }
                    false
                }
            };
            if stale {
                match self.sys.delete_link(&l.name).await {
                    Ok(_) => {
                        tracing::info!(link = %l.name, "deleted a link of ours that belongs to nothing known");
                        report.deleted += 1;
                    }
                    Err(e) => report.errors.push(format!("deleting {}: {e}", l.name)),
                }
            }
        }
        self.store.flush().await?;
        if self.firewall_disabled().is_some() {
            // FIREWALL=false after a run with the firewall: the old table (isolation drops,
            // DNATs of ports no longer published) must not outlive the setting.
            match self.sys.remove_firewall(&self.table()).await {
                Ok(()) => {
                    tracing::info!(table = %self.table(), "FIREWALL=false: this instance's nftables table removed (if it existed)")
                }
                Err(e) => {
                    tracing::warn!(table = %self.table(), error = %e, "FIREWALL=false: cannot remove an old nftables table")
                }
            }
        } else if let Err(e) = self.refresh_firewall().await {
            tracing::warn!(error = %e, "firewall unavailable: plain bridging only");
            report.errors.push(e.to_string());
        }
        Ok(report)
    }
}

/// What reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Bridges found and kept.
    pub adopted: usize,
    /// Bridges made again.
    pub recreated: usize,
    /// Veths put back on their bridge.
    pub reattached: usize,
    /// Links (and stale endpoint records) removed.
    pub deleted: usize,
    /// Problems that did not stop reconcile.
    pub errors: Vec<String>,
}
