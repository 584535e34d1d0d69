//! Endpoints: `CreateEndpoint` (a veth pair on the network's bridge), `Join`, `Leave`,
//! `DeleteEndpoint` and `EndpointOperInfo`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::{short, Service};
use crate::error::NetworkError;
use crate::model::{
    format_mac, parse_mac, CreatedEndpoint, EndpointInfo, EndpointRef, Joined, NewEndpoint,
};
use crate::naming::{self, Owner};
use crate::options;
use crate::state::{EndpointState, NetworkState};
use crate::sys::{Sys, VethSpec};

/// Docker's scheme: `02:42` + the IPv4 address (locally administered, unique per network);
/// random (locally administered, unicast) without IPv4.
fn generate_mac(v4: Option<Ipv4Addr>) -> [u8; 6] {
    match v4 {
        Some(ip) => {
            let o = ip.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        None => {
            let mut m = [0u8; 6];
            let ok = std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut m))
                .is_ok();
            if !ok {
                let n = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                m.copy_from_slice(&n.to_le_bytes()[..6]);
            }
            m[0] = (m[0] & 0xfe) | 0x02;
            m
        }
    }
}

impl<S: Sys> Service<S> {
    // ----- endpoints -----

    /// `CreateEndpoint`: a veth pair on the network's bridge.
    pub async fn create_endpoint(&self, req: NewEndpoint) -> Result<CreatedEndpoint, NetworkError> {
        let _gate = self.ep_gate.read().await;
        let _ep = self.ep_lock(&req.id).await;
        let net = self
            .networks
            .get(&req.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&req.network_id).to_string()))?;
        let NewEndpoint {
            id: eid,
            v4,
            v6,
            mac: given_mac,
            ..
        } = req;
        // An address must lie in one of the network's pools and belong to no other endpoint
        // (dockerd's IPAM guarantees both; a caller on the socket might not).
        for (field, addr, pools) in [
            ("Address", v4, &net.spec.v4),
            ("AddressIPv6", v6, &net.spec.v6),
        ] {
            let Some(a) = addr else { continue };
            if !pools.iter().any(|p| p.subnet.contains(&a.addr())) {
                return Err(NetworkError::InvalidRequest(format!(
                    "Interface.{field} {a} is outside the network's pools"
                )));
            }
        }
        for r in self.endpoints.iter() {
            let (_, other) = r?;
            if other.id == eid || other.network_id != net.id {
                continue;
            }
            let clash = (v4.is_some() && other.v4.map(|o| o.addr()) == v4.map(|a| a.addr()))
                || (v6.is_some() && other.v6.map(|o| o.addr()) == v6.map(|a| a.addr()));
            if clash {
                return Err(NetworkError::Conflict(format!(
                    "an address of endpoint {} is already used by endpoint {}",
                    short(&eid),
                    short(&other.id)
                )));
            }
        }
        if let Some(existing) = self.endpoints.get(&eid)? {
            if existing.network_id != net.id || existing.v4 != v4 || existing.v6 != v6 {
                return Err(NetworkError::Conflict(format!(
                    "endpoint {} already exists with other addresses",
                    short(&eid)
                )));
            }
            self.ensure_veth(&net, &existing).await?;
            return Ok(Self::endpoint_response(&existing));
        }
        let mac = given_mac.unwrap_or_else(|| {
            generate_mac(match v4 {
                Some(IpNet::V4(a)) => Some(a.addr()),
                _ => None,
            })
        });
        // The bridge must be ours before anything is attached to it.
        self.require_bridge(&net).await?;
        let (host, peer) = self.veth_names(&eid)?;
        let ep = EndpointState {
            id: eid.clone(),
            network_id: net.id.clone(),
            host,
            peer,
            v4,
            v6,
            mac: format_mac(&mac),
            mac_generated: given_mac.is_none(),
            ports: Vec::new(),
        };
        self.make_veth(&net, &ep, mac).await?;
        let recorded = async {
            self.endpoints.insert(&eid, &ep)?;
            self.store.flush().await?;
            Ok::<(), NetworkError>(())
        }
        .await;
        if let Err(e) = recorded {
            let _ = self.endpoints.remove(&eid);
            self.delete_quietly(&ep.host, &Owner::Endpoint(eid.clone()))
                .await;
            return Err(e);
        }
        Ok(Self::endpoint_response(&ep))
    }

    /// Host and container end names for endpoint `eid`. Names hold 9 characters of the ID
    /// (the kernel allows 15): when another recorded endpoint already uses them (IDs sharing a
    /// prefix), the last character is replaced by one of `g`–`z`, never a hex digit, so the
    /// variant cannot be another ID's natural name.
    fn veth_names(&self, eid: &str) -> Result<(String, String), NetworkError> {
        let mut used = BTreeSet::new();
        for r in self.endpoints.iter() {
            let (_, ep) = r?;
            if ep.id != eid {
                used.insert(ep.host);
            }
        }
        let host = naming::veth_host(&self.tag, eid);
        let peer = naming::veth_peer(&self.tag, eid);
        if !used.contains(&host) {
            return Ok((host, peer));
        }
        for c in 'g'..='z' {
            let mut h = host.clone();
            let mut p = peer.clone();
            h.pop();
            p.pop();
            h.push(c);
            p.push(c);
            if !used.contains(&h) {
                return Ok((h, p));
            }
        }
        Err(NetworkError::Conflict(format!(
            "too many endpoints share the ID prefix of {}",
            short(eid)
        )))
    }

    fn endpoint_response(ep: &EndpointState) -> CreatedEndpoint {
        CreatedEndpoint {
            generated_mac: ep.mac_generated.then(|| ep.mac.clone()),
        }
    }

    /// Create the pair; a tagged leftover of this endpoint (crash before recording) is replaced.
    async fn make_veth(
        &self,
        net: &NetworkState,
        ep: &EndpointState,
        mac: [u8; 6],
    ) -> Result<(), NetworkError> {
        let spec = VethSpec {
            host: ep.host.clone(),
            peer: ep.peer.clone(),
            mtu: net.spec.mtu,
            peer_mac: mac,
            bridge: net.bridge.clone(),
            alias: naming::endpoint_alias(&self.tag, &ep.id),
        };
        let step = || {
            format!(
                "creating veth pair {}/{} on bridge {}",
                ep.host, ep.peer, net.bridge
            )
        };
        let me = Owner::Endpoint(ep.id.clone());
        match self.sys.create_veth(&spec).await {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                // A leftover of this endpoint (crash before recording) carries its mark and is
                // replaced; a foreign link under either name fails the request, untouched.
                self.delete_owned(&ep.host, &me).await?;
                self.delete_owned(&ep.peer, &me).await?;
                match self.sys.create_veth(&spec).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        self.delete_quietly(&ep.host, &me).await;
                        Err(NetworkError::sys(step())(e))
                    }
                }
            }
            Err(e) => {
                self.delete_quietly(&ep.host, &me).await;
                Err(NetworkError::sys(step())(e))
            }
        }
    }

    async fn ensure_veth(
        &self,
        net: &NetworkState,
        ep: &EndpointState,
    ) -> Result<(), NetworkError> {
        let host = self
            .owned_link(&ep.host, &Owner::Endpoint(ep.id.clone()))
            .await?;
        if host.is_none() {
            self.require_bridge(net).await?;
            let mac = parse_mac(&ep.mac).unwrap_or_else(|| generate_mac(None));
            self.make_veth(net, ep, mac).await?;
        }
        Ok(())
    }

    pub(super) fn endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<EndpointState, NetworkError> {
        match self.endpoints.get(endpoint_id)? {
            Some(ep) if ep.network_id == network_id => Ok(ep),
            _ => Err(NetworkError::EndpointNotFound(
                short(endpoint_id).to_string(),
            )),
        }
    }

    pub(super) fn network(&self, network_id: &str) -> Result<NetworkState, NetworkError> {
        self.networks
            .get(network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(network_id).to_string()))
    }

    /// `Join`: name the veth end to move and the gateway.
    pub async fn join(&self, req: EndpointRef) -> Result<Joined, NetworkError> {
        let _gate = self.ep_gate.read().await;
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let ep = self.endpoint(&req.network_id, &req.endpoint_id)?;
        let net = self.network(&req.network_id)?;
        self.ensure_veth(&net, &ep).await?;
        let mut resp = Joined {
            src_name: ep.peer.clone(),
            dst_prefix: net.spec.iface_prefix.clone(),
            gateway: None,
            gateway_v6: None,
            disable_gateway_service: false,
        };
        if net.spec.internal {
            resp.disable_gateway_service = true;
            return Ok(resp);
        }
        let pick = |pools: &[options::Pool], addr: Option<IpNet>| -> Option<IpAddr> {
            let by_subnet = addr.and_then(|a| {
                pools
                    .iter()
                    .find(|p| p.subnet.contains(&a.addr()))
                    .and_then(|p| p.gateway)
            });
            by_subnet
                .or_else(|| pools.iter().find_map(|p| p.gateway))
                .map(|g| g.addr())
        };
        resp.gateway = pick(&net.spec.v4, ep.v4);
        if ep.v6.is_some() {
            resp.gateway_v6 = pick(&net.spec.v6, ep.v6);
        }
        // Without any gateway dockerd would attach docker_gwbridge: say there is none on purpose.
        resp.disable_gateway_service = resp.gateway.is_none() && resp.gateway_v6.is_none();
        Ok(resp)
    }

    /// `Leave`: dockerd moves the interface back after this; nothing to undo here.
    pub async fn leave(&self, req: EndpointRef) -> Result<(), NetworkError> {
        if self.endpoints.get(&req.endpoint_id)?.is_none() {
            tracing::debug!(endpoint = %short(&req.endpoint_id), "leave of an unknown endpoint");
        }
        Ok(())
    }

    /// `DeleteEndpoint`: the veth pair goes (unknown endpoints are fine).
    pub async fn delete_endpoint(&self, req: EndpointRef) -> Result<(), NetworkError> {
        let _gate = self.ep_gate.read().await;
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let Some(ep) = self.endpoints.get(&req.endpoint_id)? else {
            return Ok(());
        };
        self.delete_owned(&ep.host, &Owner::Endpoint(ep.id.clone()))
            .await?;
        self.endpoints.remove(&req.endpoint_id)?;
        self.store.flush().await?;
        if !ep.ports.is_empty() {
            if let Err(e) = self.refresh_firewall().await {
                tracing::warn!(error = %e, "firewall not updated after endpoint removal");
            }
        }
        Ok(())
    }

    /// `EndpointOperInfo`.
    pub async fn endpoint_oper_info(&self, req: EndpointRef) -> Result<EndpointInfo, NetworkError> {
        let ep = self.endpoint(&req.network_id, &req.endpoint_id)?;
        let net = self.network(&req.network_id)?;
        Ok(EndpointInfo {
            bridge: net.bridge,
            host_veth: ep.host,
            mac: ep.mac,
            ports: ep.ports,
        })
    }
}
