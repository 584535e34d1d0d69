//! Endpoints: `CreateEndpoint` (a veth pair on the network's bridge), `Join`, `Leave`,
//! `DeleteEndpoint` and `EndpointOperInfo`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{check_id, format_mac, generate_mac, parse_addr, parse_mac, short, Service};
use crate::api::{self, Options};
use crate::error::NetworkError;
use crate::naming::{self, Owner};
use crate::options;
use crate::state::{EndpointState, NetworkState};
use crate::sys::{Sys, VethSpec};

impl<S: Sys> Service<S> {
    // ----- endpoints -----

    /// `CreateEndpoint`: a veth pair on the network's bridge.
    pub async fn create_endpoint(
        &self,
        req: api::CreateEndpointRequest,
    ) -> Result<api::CreateEndpointResponse, NetworkError> {
        check_id("EndpointID", &req.endpoint_id)?;
        let _gate = self.ep_gate.read().await;
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let net = self
            .networks
            .get(&req.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&req.network_id).to_string()))?;
        let iface = req.interface.unwrap_or_default();
        let v4 = parse_addr("Address", &iface.address, false)?;
        let v6 = parse_addr("AddressIPv6", &iface.address_ipv6, true)?;
        let given_mac = if iface.mac_address.is_empty() {
            None
        } else {
            Some(parse_mac(&iface.mac_address).ok_or_else(|| {
                NetworkError::InvalidRequest(format!(
                    "Interface.MacAddress {:?} is not a MAC address",
                    iface.mac_address
                ))
            })?)
        };
        let eid = req.endpoint_id;
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

    fn endpoint_response(ep: &EndpointState) -> api::CreateEndpointResponse {
        api::CreateEndpointResponse {
            interface: ep.mac_generated.then(|| api::EndpointInterface {
                mac_address: ep.mac.clone(),
                ..Default::default()
            }),
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
    pub async fn join(&self, req: api::JoinRequest) -> Result<api::JoinResponse, NetworkError> {
        let _gate = self.ep_gate.read().await;
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let ep = self.endpoint(&req.network_id, &req.endpoint_id)?;
        let net = self.network(&req.network_id)?;
        self.ensure_veth(&net, &ep).await?;
        let mut resp = api::JoinResponse {
            interface_name: api::InterfaceName {
                src_name: ep.peer.clone(),
                dst_prefix: net.spec.iface_prefix.clone(),
            },
            ..Default::default()
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
        if let Some(gw) = pick(&net.spec.v4, ep.v4) {
            resp.gateway = gw.to_string();
        }
        if ep.v6.is_some() {
            if let Some(gw) = pick(&net.spec.v6, ep.v6) {
                resp.gateway_ipv6 = gw.to_string();
            }
        }
        // Without any gateway dockerd would attach docker_gwbridge: say there is none on purpose.
        resp.disable_gateway_service = resp.gateway.is_empty() && resp.gateway_ipv6.is_empty();
        Ok(resp)
    }

    /// `Leave`: dockerd moves the interface back after this; nothing to undo here.
    pub async fn leave(&self, req: api::EndpointRequest) -> Result<(), NetworkError> {
        if self.endpoints.get(&req.endpoint_id)?.is_none() {
            tracing::debug!(endpoint = %short(&req.endpoint_id), "leave of an unknown endpoint");
        }
        Ok(())
    }

    /// `DeleteEndpoint`: the veth pair goes (unknown endpoints are fine).
    pub async fn delete_endpoint(&self, req: api::EndpointRequest) -> Result<(), NetworkError> {
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
    pub async fn endpoint_oper_info(
        &self,
        req: api::EndpointRequest,
    ) -> Result<api::EndpointOperInfoResponse, NetworkError> {
        let ep = self.endpoint(&req.network_id, &req.endpoint_id)?;
        let net = self.network(&req.network_id)?;
        let mut value = Options::new();
        value.insert("bridge".into(), net.bridge.into());
        value.insert("host_veth".into(), ep.host.into());
        value.insert("mac_address".into(), ep.mac.into());
        let ports: Vec<serde_json::Value> = ep
            .ports
            .iter()
            .map(|p| {
                serde_json::json!({
                    "Proto": p.proto,
                    "HostIP": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    "HostPort": p.host_port,
                    "Port": p.container_port,
                })
            })
            .collect();
        value.insert("published_ports".into(), ports.into());
        Ok(api::EndpointOperInfoResponse { value })
    }
}
