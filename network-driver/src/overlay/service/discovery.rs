//! Swarm node discovery: peers kept in the store (dockerd never replays them), and one
//! all-zero FDB entry toward each on every overlay (head-end replication).

use super::{Overlay, SELF_KEY};
use crate::error::NetworkError;
use crate::overlay::model::Discovery;
use crate::overlay::sys::OverlaySys;

impl<S: OverlaySys> Overlay<S> {
    // ----- discovery -----

    /// `DiscoverNew`: remember the node (durably), then replicate toward it on every overlay.
    pub async fn discover_new(&self, req: Discovery) -> Result<(), NetworkError> {
        let Discovery::Node(node) = req else {
            return Ok(());
        };
        let _g = self.lock.lock().await;
        if node.is_self {
            self.meta.insert(SELF_KEY, &node.addr.to_string())?;
            self.store.flush().await?;
            tracing::info!(address = %node.addr, "this node's underlay address");
            return Ok(());
        }
        if self.self_addr()? == Some(node.addr) {
            return Ok(());
        }
        self.peers.insert(&node.addr.to_string(), &String::new())?;
        self.store.flush().await?;
        tracing::info!(peer = %node.addr, "peer added");
        for r in self.nets.iter() {
            let (_, n) = r?;
            self.sys
                .fdb_add(&n.vxlan, node.addr)
                .await
                .map_err(NetworkError::sys(format!(
                    "FDB entry toward {} on {}",
                    node.addr, n.vxlan
                )))?;
        }
        Ok(())
    }

    /// `DiscoverDelete`: forget the node and stop replicating toward it.
    pub async fn discover_delete(&self, req: Discovery) -> Result<(), NetworkError> {
        let Discovery::Node(node) = req else {
            return Ok(());
        };
        if node.is_self {
            return Ok(());
        }
        let _g = self.lock.lock().await;
        if self.peers.remove(&node.addr.to_string())?.is_none() {
            return Err(NetworkError::InvalidRequest(format!(
                "DiscoverDelete for peer {}, which is not known to this driver",
                node.addr
            )));
        }
        self.store.flush().await?;
        tracing::info!(peer = %node.addr, "peer removed");
        for r in self.nets.iter() {
            let (_, n) = r?;
            self.sys
                .fdb_del(&n.vxlan, node.addr)
                .await
                .map_err(NetworkError::sys(format!(
                    "removing the FDB entry toward {} on {}",
                    node.addr, n.vxlan
                )))?;
        }
        Ok(())
    }
}
