//! Manager side: `AllocateNetwork` picks a VNI (unique, durable) and the options every node
//! gets; `FreeNetwork` frees it.

use std::collections::BTreeSet;

use super::{short, Overlay};
use crate::error::NetworkError;
use crate::overlay::model::{self, AllocateRequest, Allocation};
use crate::overlay::sys::OverlaySys;

impl<S: OverlaySys> Overlay<S> {
    // ----- manager -----

    /// `AllocateNetwork`: choose (or check) the VNI, record it durably, hand out the options.
    pub async fn allocate(&self, req: AllocateRequest) -> Result<Allocation, NetworkError> {
        let AllocateRequest { network_id, asked } = req;
        let _g = self.lock.lock().await;
        if let Some(a) = self.alloc.get(&network_id)? {
            // dockerd repeated the call (manager restart): the same answer.
            return Ok(a);
        }
        let mut used = BTreeSet::new();
        for r in self.alloc.iter() {
            let (_, a) = r?;
            used.insert(a.vni);
        }
        let vni = match asked.vni {
            Some(v) if used.contains(&v) => {
                let holder = self
                    .alloc
                    .iter()
                    .filter_map(Result::ok)
                    .find(|(_, a)| a.vni == v)
                    .map(|(_, a)| a.network_id)
                    .unwrap_or_default();
                return Err(NetworkError::Conflict(format!(
                    "VNI {v} is already used by network {}",
                    short(&holder)
                )));
            }
            Some(v) => v,
            None => (model::VNI_MIN..=model::VNI_MAX)
                .find(|v| !used.contains(v))
                .ok_or_else(|| NetworkError::Conflict("no free VNI left".into()))?,
        };
        let a = Allocation {
            network_id,
            vni,
            port: asked.port.unwrap_or(self.settings.vxlan_port),
            mtu: asked
                .mtu
                .unwrap_or(self.settings.underlay_mtu.saturating_sub(model::ENCAP)),
        };
        self.alloc.insert(&a.network_id, &a)?;
        self.store.flush().await?;
        tracing::info!(network = %short(&a.network_id), vni, port = a.port, mtu = a.mtu, "overlay allocated");
        Ok(a)
    }

    /// `FreeNetwork`: the VNI is free again (unknown network: nothing to do).
    pub async fn free(&self, network_id: &str) -> Result<(), NetworkError> {
        let _g = self.lock.lock().await;
        if let Some(a) = self.alloc.remove(network_id)? {
            self.store.flush().await?;
            tracing::info!(network = %short(network_id), vni = a.vni, "overlay freed");
        }
        Ok(())
    }
}
