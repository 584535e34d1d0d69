//! The firewall table as the store calls for it, and its application to the kernel (one
//! transaction under `fw_lock`; the status it leaves is what the operator sees).

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::{FirewallStatus, Service};
use crate::error::NetworkError;
use crate::firewall::{FwNetwork, FwPort, Ruleset};
use crate::sys::Sys;

impl<S: Sys> Service<S> {
    /// The firewall table the store calls for.
    pub fn ruleset(&self) -> Result<Ruleset, NetworkError> {
        let mut networks = Vec::new();
        let mut nets = BTreeMap::new();
        for r in self.networks.iter() {
            let (_, n) = r?;
            networks.push(FwNetwork {
                bridge: n.bridge.clone(),
                subnets: n
                    .spec
                    .v4
                    .iter()
                    .filter_map(|p| match p.subnet {
                        IpNet::V4(s) => Some(s),
                        IpNet::V6(_) => None,
                    })
                    .collect(),
                internal: n.spec.internal,
                icc: n.spec.icc,
                masquerade: n.masquerade(),
            });
            nets.insert(n.id.clone(), n);
        }
        let mut ports = Vec::new();
        for r in self.endpoints.iter() {
            let (_, e) = r?;
            if !nets.contains_key(&e.network_id) {
                continue;
            }
            for p in &e.ports {
                // Each binding goes to the endpoint's address of its own family.
                let container_ip = if p.v6 { e.v6 } else { e.v4 }.map(|a| a.addr());
                let Some(container_ip) = container_ip else {
                    continue;
                };
                ports.push(FwPort {
                    proto: p.proto,
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    container_ip,
                    container_port: p.container_port,
                });
            }
        }
        Ok(Ruleset {
            table: self.table(),
            networks,
            ports,
        })
    }

    /// Rebuild the kernel's table whole from the store (after it was changed from outside).
    pub async fn rebuild_firewall(&self) -> Result<(), NetworkError> {
        self.sys.forget_firewall();
        self.refresh_firewall().await
    }

    /// Make the kernel's table match the store (one transaction, touching only what changed
    /// since the last apply). With the firewall disabled this does nothing and succeeds.
    pub async fn refresh_firewall(&self) -> Result<(), NetworkError> {
        if self.firewall_disabled().is_some() {
            return Ok(());
        }
        let _g = self.fw_lock.lock().await;
        let rules = self.ruleset()?;
        let res = if rules.is_empty() {
            self.sys.remove_firewall(&rules.table).await
        } else {
            self.sys.apply_firewall(&rules).await
        };
        match res {
            Ok(()) => {
                crate::heal::APPLIES_OK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.set_firewall_status(FirewallStatus::Available);
                Ok(())
            }
            Err(e) => {
                crate::heal::APPLIES_FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.set_firewall_status(FirewallStatus::Unavailable(e.to_string()));
                Err(NetworkError::sys(format!(
                    "programming nftables table {}",
                    rules.table
                ))(e))
            }
        }
    }
}
