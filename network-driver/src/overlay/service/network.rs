//! A node's overlay networks: a bridge and a VXLAN device each, with FDB entries toward every
//! known peer (`CreateNetwork`, `DeleteNetwork`).

use std::collections::BTreeSet;

use super::{short, Overlay};
use crate::error::NetworkError;
use crate::overlay::model::{NodeNetwork, OverlayNet};
use crate::overlay::sys::{OverlaySys, VxlanSpec};

impl<S: OverlaySys> Overlay<S> {
    // ----- node: networks -----

    fn names(&self, vni: u32) -> (String, String) {
        (
            format!("oxb{}{vni:06x}", self.tag),
            format!("oxv{}{vni:06x}", self.tag),
        )
    }

    /// Bridge, VXLAN device and FDB entries of a network (what exists is kept).
    pub(super) async fn build(
        &self,
        n: &OverlayNet,
        present: &BTreeSet<String>,
    ) -> Result<bool, NetworkError> {
        let mut made = false;
        if !present.contains(&n.bridge) {
            self.sys
                .bridge(&n.bridge, n.mtu, &self.alias("net", &n.id))
                .await
                .map_err(NetworkError::sys(format!("creating bridge {}", n.bridge)))?;
            made = true;
        }
        if !present.contains(&n.vxlan) {
            self.sys
                .vxlan(&VxlanSpec {
                    name: n.vxlan.clone(),
                    vni: n.vni,
                    port: n.port,
                    local: self.self_addr()?,
                    mtu: n.mtu,
                    bridge: n.bridge.clone(),
                    alias: self.alias("vx", &n.id),
                })
                .await
                .map_err(NetworkError::sys(format!(
                    "creating VXLAN device {} (VNI {}, port {})",
                    n.vxlan, n.vni, n.port
                )))?;
            made = true;
        }
        for p in self.peers()? {
            self.sys
                .fdb_add(&n.vxlan, p)
                .await
                .map_err(NetworkError::sys(format!(
                    "FDB entry toward {p} on {}",
                    n.vxlan
                )))?;
        }
        Ok(made)
    }

    pub(super) async fn present(&self) -> Result<BTreeSet<String>, NetworkError> {
        Ok(self
            .sys
            .links()
            .await
            .map_err(NetworkError::sys("listing links"))?
            .into_iter()
            .map(|l| l.name)
            .collect())
    }

    /// `CreateNetwork` on a node: the VNI, port and MTU come from the manager's options.
    pub async fn create_network(&self, req: NodeNetwork) -> Result<(), NetworkError> {
        let NodeNetwork {
            id,
            vni,
            port,
            mtu,
            internal,
        } = req;
        let (bridge, vxlan) = self.names(vni);
        let n = OverlayNet {
            id,
            vni,
            port,
            mtu,
            internal,
            bridge,
            vxlan,
        };
        let _g = self.lock.lock().await;
        if let Some(old) = self.nets.get(&n.id)? {
            if old != n {
                return Err(NetworkError::Conflict(format!(
                    "network {} already exists here with VNI {}",
                    short(&n.id),
                    old.vni
                )));
            }
        }
        for r in self.nets.iter() {
            let (_, o) = r?;
            if o.id != n.id && o.vni == n.vni {
                return Err(NetworkError::Conflict(format!(
                    "VNI {vni} is already used on this node by network {}",
                    short(&o.id)
                )));
            }
        }
        let present = self.present().await?;
        for l in self
            .sys
            .links()
            .await
            .map_err(NetworkError::sys("listing links"))?
        {
            if (l.name == n.bridge || l.name == n.vxlan)
                && l.alias
                    .as_deref()
                    .and_then(|a| self.owner(a))
                    .map(|(_, id)| id)
                    != Some(n.id.as_str())
            {
                return Err(NetworkError::Conflict(format!(
                    "a network interface named {} already exists on this node and is not this network's",
                    l.name
                )));
            }
        }
        if let Err(e) = self.build(&n, &present).await {
            let _ = self.sys.delete(&n.vxlan).await;
            let _ = self.sys.delete(&n.bridge).await;
            return Err(e);
        }
        self.nets.insert(&n.id, &n)?;
        self.store.flush().await?;
        tracing::info!(network = %short(&n.id), vni, port, bridge = %n.bridge, "overlay network up on this node");
        Ok(())
    }

    /// `DeleteNetwork`: links and record go.
    pub async fn delete_network(&self, id: &str) -> Result<(), NetworkError> {
        let _g = self.lock.lock().await;
        let Some(n) = self.nets.get(id)? else {
            return Ok(());
        };
        for r in self.eps.iter() {
            let (k, e) = r?;
            if e.network_id == id {
                let _ = self.sys.delete(&e.host).await;
                self.eps.remove(&k)?;
            }
        }
        self.sys
            .delete(&n.vxlan)
            .await
            .map_err(NetworkError::sys(format!("deleting {}", n.vxlan)))?;
        self.sys
            .delete(&n.bridge)
            .await
            .map_err(NetworkError::sys(format!("deleting {}", n.bridge)))?;
        self.nets.remove(id)?;
        self.store.flush().await?;
        tracing::info!(network = %short(id), "overlay network removed from this node");
        Ok(())
    }
}
