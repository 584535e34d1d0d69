//! A node's endpoints: a veth pair on the network's bridge (`CreateEndpoint`), `Join`,
//! `DeleteEndpoint`, `EndpointOperInfo`.

use std::net::Ipv4Addr;

use super::{short, Overlay};
use crate::error::NetworkError;
use crate::model::{format_mac, CreatedEndpoint, EndpointRef, Joined};
use crate::overlay::model::{NewOverlayEndpoint, OverlayEndpointInfo, OverlayEp};
use crate::overlay::sys::OverlaySys;
use crate::sys::VethSpec;

/// `02:42` + the IPv4 address (unique: the manager's IPAM hands out swarm-wide unique
/// addresses), else bytes of the endpoint ID.
fn mac_for(v4: Option<Ipv4Addr>, ep: &str) -> [u8; 6] {
    match v4 {
        Some(ip) => {
            let o = ip.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        None => {
            let mut m = [0x02, 0x43, 0, 0, 0, 0];
            for (i, b) in ep.bytes().take(8).collect::<Vec<_>>().chunks(2).enumerate() {
                let hex = std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok());
                m[2 + i] = hex.unwrap_or(0);
            }
            m
        }
    }
}

impl<S: OverlaySys> Overlay<S> {
    // ----- node: endpoints -----

    /// `CreateEndpoint`: a veth pair on the network's bridge.
    pub async fn create_endpoint(
        &self,
        req: NewOverlayEndpoint,
    ) -> Result<CreatedEndpoint, NetworkError> {
        let (mac, generated) = match req.mac {
            None => (mac_for(req.v4, &req.id), true),
            Some(m) => (m, false),
        };
        let _g = self.lock.lock().await;
        let n = self
            .nets
            .get(&req.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&req.network_id).into()))?;
        let id8 = req.id.get(..8).unwrap_or(&req.id);
        let ep = OverlayEp {
            id: req.id.clone(),
            network_id: n.id.clone(),
            host: format!("oxh{}{id8}", self.tag),
            peer: format!("oxc{}{id8}", self.tag),
            mac: format_mac(&mac),
            mac_generated: generated,
        };
        if let Some(old) = self.eps.get(&ep.id)? {
            if old == ep {
                return Ok(created(&ep));
            }
            return Err(NetworkError::Conflict(format!(
                "endpoint {} exists with other settings",
                short(&ep.id)
            )));
        }
        let present = self.present().await?;
        if present.contains(&ep.host) || present.contains(&ep.peer) {
            return Err(NetworkError::Conflict(format!(
                "a link named {} or {} already exists (endpoint IDs sharing a prefix?)",
                ep.host, ep.peer
            )));
        }
        self.sys
            .veth(&VethSpec {
                host: ep.host.clone(),
                peer: ep.peer.clone(),
                mtu: n.mtu,
                peer_mac: mac,
                bridge: n.bridge.clone(),
                alias: self.alias("ep", &ep.id),
            })
            .await
            .map_err(NetworkError::sys(format!("creating veth {}", ep.host)))?;
        let rec = async {
            self.eps.insert(&ep.id, &ep)?;
            self.store.flush().await?;
            Ok::<(), NetworkError>(())
        }
        .await;
        if let Err(e) = rec {
            let _ = self.eps.remove(&ep.id);
            let _ = self.sys.delete(&ep.host).await;
            return Err(e);
        }
        Ok(created(&ep))
    }

    /// `Join`: the container end, no gateway of ours (dockerd's gateway service gives non-internal
    /// networks their way out, as for its own overlay).
    pub async fn join(&self, req: EndpointRef) -> Result<Joined, NetworkError> {
        let ep = self
            .eps
            .get(&req.endpoint_id)?
            .filter(|e| e.network_id == req.network_id)
            .ok_or_else(|| NetworkError::EndpointNotFound(short(&req.endpoint_id).into()))?;
        let n = self
            .nets
            .get(&ep.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&ep.network_id).into()))?;
        Ok(Joined {
            src_name: ep.peer,
            dst_prefix: "eth".into(),
            gateway: None,
            gateway_v6: None,
            disable_gateway_service: n.internal,
        })
    }

    /// `DeleteEndpoint`.
    pub async fn delete_endpoint(&self, req: EndpointRef) -> Result<(), NetworkError> {
        let _g = self.lock.lock().await;
        let Some(ep) = self.eps.get(&req.endpoint_id)? else {
            return Ok(());
        };
        self.sys
            .delete(&ep.host)
            .await
            .map_err(NetworkError::sys(format!("deleting {}", ep.host)))?;
        self.eps.remove(&ep.id)?;
        self.store.flush().await?;
        Ok(())
    }

    /// `EndpointOperInfo`.
    pub async fn oper_info(&self, req: EndpointRef) -> Result<OverlayEndpointInfo, NetworkError> {
        let ep = self
            .eps
            .get(&req.endpoint_id)?
            .ok_or_else(|| NetworkError::EndpointNotFound(short(&req.endpoint_id).into()))?;
        let n = self
            .nets
            .get(&ep.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&ep.network_id).into()))?;
        Ok(OverlayEndpointInfo {
            vni: n.vni,
            vxlan_port: n.port,
            bridge: n.bridge,
            host_veth: ep.host,
            mac: ep.mac,
        })
    }
}

/// The MAC goes back only when the driver made it (dockerd refuses a reply that "changes" a
/// MAC it gave).
fn created(ep: &OverlayEp) -> CreatedEndpoint {
    CreatedEndpoint {
        generated_mac: ep.mac_generated.then(|| ep.mac.clone()),
    }
}
