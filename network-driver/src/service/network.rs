//! Networks: `CreateNetwork` and `DeleteNetwork`, a bridge per network with its gateway
//! addresses, re-created or adopted when the store has it and the kernel lost it.

use super::{short, Service};
use crate::error::NetworkError;
use crate::model::NewNetwork;
use crate::naming::{self, Owner};
use crate::state::NetworkState;
use crate::sys::{BridgeSpec, Sys};

impl<S: Sys> Service<S> {
    // ----- networks -----

    /// `CreateNetwork`.
    pub async fn create_network(&self, req: NewNetwork) -> Result<(), NetworkError> {
        let NewNetwork { id, spec } = req;
        let _g = self.net_lock.lock().await;
        if let Some(existing) = self.networks.get(&id)? {
            if existing.spec == spec {
                // dockerd repeated the call: make sure the bridge is there and answer again.
                self.ensure_bridge(&existing).await?;
                return Ok(());
            }
            return Err(NetworkError::Conflict(format!(
                "network {} already exists in this driver with other options",
                short(&id)
            )));
        }
        let generated = naming::bridge_name(&self.tag, &id);
        let bridge = spec
            .bridge_name
            .clone()
            .unwrap_or_else(|| generated.clone());
        for r in self.networks.iter() {
            let (_, n) = r?;
            if n.bridge == bridge {
                return Err(NetworkError::Conflict(format!(
                    "bridge name {bridge} is already used by network {}",
                    short(&n.id)
                )));
            }
        }
        if let Some(demand) = spec.firewall_demand() {
            if let Some(reason) = self.firewall_disabled() {
                return Err(NetworkError::FirewallUnavailable {
                    what: demand.to_string(),
                    reason,
                });
            }
        }
        if let Some(l) = self
            .sys
            .link(&bridge)
            .await
            .map_err(NetworkError::sys(format!("looking up link {bridge}")))?
        {
            let ours = l.alias.as_deref().and_then(|a| naming::owner(&self.tag, a))
                == Some(Owner::Network(id.clone()));
            if !ours {
                return Err(NetworkError::Conflict(format!(
                    "a network interface named {bridge} already exists on this host; choose \
                     another bridge name"
                )));
            }
            // Left by a crash between creating it and recording the network: start afresh.
            self.delete_owned(&bridge, &Owner::Network(id.clone()))
                .await?;
        }
        if generated != bridge {
            // A marked leftover from a crash before the rename; a foreign link under the
            // generated name fails the request (it is never touched).
            self.delete_owned(&generated, &Owner::Network(id.clone()))
                .await?;
        }
        let me = Owner::Network(id.clone());
        let net = NetworkState {
            id: id.clone(),
            bridge: bridge.clone(),
            spec,
        };
        if let Err(e) = self.make_bridge(&net, &generated).await {
            self.delete_quietly(&bridge, &me).await;
            self.delete_quietly(&generated, &me).await;
            return Err(e);
        }
        let recorded = async {
            self.networks.insert(&id, &net)?;
            self.store.flush().await?;
            Ok::<(), NetworkError>(())
        }
        .await;
        if let Err(e) = recorded {
            let _ = self.networks.remove(&id);
            self.delete_quietly(&bridge, &me).await;
            return Err(e);
        }
        if let Err(e) = self.refresh_firewall().await {
            // Never a 200 for a network the firewall does not isolate (FIREWALL=false is the
            // only way to plain bridging): undo and refuse.
            let what = net
                .spec
                .firewall_demand()
                .unwrap_or("isolation from the other networks")
                .to_string();
            let _ = self.networks.remove(&id);
            let _ = self.store.flush().await;
            self.delete_quietly(&bridge, &me).await;
            let _ = self.refresh_firewall().await;
            return Err(NetworkError::FirewallUnavailable {
                what,
                reason: e.to_string(),
            });
        }
        tracing::info!(network = %short(&id), %bridge, "network created");
        Ok(())
    }

    async fn make_bridge(&self, net: &NetworkState, tmp: &str) -> Result<(), NetworkError> {
        let bridge = &net.bridge;
        self.sys
            .create_bridge(&BridgeSpec {
                tmp_name: tmp.to_string(),
                name: bridge.clone(),
                mtu: net.spec.mtu,
                alias: naming::network_alias(&self.tag, &net.id),
                nf_call_iptables: !net.spec.icc,
            })
            .await
            .map_err(NetworkError::sys(format!("creating bridge {bridge}")))?;
        self.add_gateways(net).await
    }

    async fn add_gateways(&self, net: &NetworkState) -> Result<(), NetworkError> {
        for p in net.spec.v4.iter().chain(net.spec.v6.iter()) {
            if let Some(gw) = p.gateway {
                self.sys
                    .add_address(&net.bridge, gw)
                    .await
                    .map_err(NetworkError::sys(format!(
                        "adding gateway {gw} to bridge {}",
                        net.bridge
                    )))?;
            }
        }
        Ok(())
    }

    /// Re-create a recorded network's bridge if it is missing; adopt it if it is there.
    pub(super) async fn ensure_bridge(&self, net: &NetworkState) -> Result<(), NetworkError> {
        let me = Owner::Network(net.id.clone());
        let link = self.owned_link(&net.bridge, &me).await.map_err(|e| {
            NetworkError::Conflict(format!(
                "bridge of network {} cannot be used: {e}",
                short(&net.id)
            ))
        })?;
        match link {
            None => {
                let tmp = naming::bridge_name(&self.tag, &net.id);
                if tmp != net.bridge {
                    self.delete_owned(&tmp, &me).await?;
                }
                self.make_bridge(net, &tmp).await?;
                tracing::info!(network = %short(&net.id), bridge = %net.bridge, "bridge re-created");
            }
            Some(l) => {
                if !l.up || l.mtu != net.spec.mtu {
                    self.sys
                        .ensure_up(&net.bridge, net.spec.mtu)
                        .await
                        .map_err(NetworkError::sys(format!("raising bridge {}", net.bridge)))?;
                }
                self.add_gateways(net).await?;
            }
        }
        Ok(())
    }

    /// The network's bridge, checked to carry our mark (re-created when missing); a foreign
    /// link under its name fails the request.
    pub(super) async fn require_bridge(&self, net: &NetworkState) -> Result<(), NetworkError> {
        let me = Owner::Network(net.id.clone());
        match self.owned_link(&net.bridge, &me).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => self.ensure_bridge(net).await,
            Err(e) => Err(NetworkError::Conflict(format!(
                "bridge of network {} cannot be used: {e}",
                short(&net.id)
            ))),
        }
    }

    /// `DeleteNetwork`: bridge, leftover endpoints and rules go; unknown networks are fine.
    pub async fn delete_network(&self, network_id: &str) -> Result<(), NetworkError> {
        let _g = self.net_lock.lock().await;
        let Some(net) = self.networks.get(network_id)? else {
            return Ok(());
        };
        let mut foreign = Vec::new();
        for r in self.endpoints.iter() {
            let (key, ep) = r?;
            if ep.network_id == network_id {
                match self
                    .delete_owned(&ep.host, &Owner::Endpoint(ep.id.clone()))
                    .await
                {
                    Err(NetworkError::Conflict(m)) => foreign.push(m),
                    other => other?,
                }
                self.endpoints.remove(&key)?;
            }
        }
        // dockerd forgets the network whatever this answers (libnetwork honours only
        // "forbidden" errors from DeleteNetwork): a foreign link under our name is left
        // untouched, our record goes, and the error below lands in dockerd's log.
        match self
            .delete_owned(&net.bridge, &Owner::Network(net.id.clone()))
            .await
        {
            Err(NetworkError::Conflict(m)) => foreign.push(m),
            other => other?,
        }
        self.networks.remove(network_id)?;
        self.store.flush().await?;
        if let Err(e) = self.refresh_firewall().await {
            tracing::warn!(error = %e, "firewall not updated after network removal");
        }
        tracing::info!(network = %short(network_id), bridge = %net.bridge, "network deleted");
        if !foreign.is_empty() {
            return Err(NetworkError::Conflict(format!(
                "network {} forgotten, but links under its names were left untouched: {}",
                short(network_id),
                foreign.join("; ")
            )));
        }
        Ok(())
    }
}
