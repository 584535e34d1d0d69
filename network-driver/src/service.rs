//! The network driver's logic: networks as bridges, endpoints as veth pairs, published ports
//! and isolation as one nftables table, all recorded in the store before a call is answered,
//! and reconciled with the kernel at start. Knows nothing of HTTP.
//!
//! Ordering rules: kernel objects are made first and recorded second (a crash in between
//! leaves tagged links that reconcile deletes); on any failure what this call made is removed
//! again; the firewall is recomputed from the store after the store changed. Network-level
//! changes and port allocation hold `net_lock`; firewall writes hold `fw_lock` (always in that
//! order). Endpoint create/join take no lock: dockerd never races calls for one endpoint, and
//! their kernel objects are named after the endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::RwLock;

use common::{Store, Tree};
use ipnet::IpNet;

use crate::api::{self, Options, PortBinding};
use crate::error::NetworkError;
use crate::firewall::{self, FwNetwork, FwPort, Ruleset};
use crate::naming::{self, Owner};
use crate::options;
use crate::state::{self, EndpointState, NetworkState, PublishedPort};
use crate::sys::{BridgeSpec, Sys, VethSpec};

const OPT_PORTMAP: &str = "com.docker.network.portmap";
/// Start of the firewall status text when the `FIREWALL` setting is off.
const DISABLED: &str = "disabled";
/// Range for host ports the driver picks (`-p 80` without a host port), like dockerd's.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49153..=65535;

/// Whether the firewall can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallStatus {
    /// Not yet tried (treated as available).
    Unknown,
    /// Applied successfully.
    Available,
    /// Disabled by the `FIREWALL` setting or refused by the kernel (the reason).
    Unavailable(String),
}

/// The driver.
pub struct Service<S: Sys> {
    sys: S,
    store: Store,
    networks: Tree<NetworkState>,
    endpoints: Tree<EndpointState>,
    tag: String,
    net_lock: tokio::sync::Mutex<()>,
    fw_lock: tokio::sync::Mutex<()>,
    /// Endpoint calls hold it shared, reconcile exclusively: reconcile must not see a veth
    /// whose record is still being written (it would take it for a leftover).
    ep_gate: tokio::sync::RwLock<()>,
    /// Striped per-endpoint locks: CreateEndpoint, Join, DeleteEndpoint and the port calls of
    /// one endpoint run one at a time, so a record never outlives its veth or the reverse.
    /// Taken before `net_lock` when both are held.
    ep_locks: Vec<tokio::sync::Mutex<()>>,
    firewall: RwLock<FirewallStatus>,
}

impl<S: Sys> std::fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

fn check_id(kind: &str, id: &str) -> Result<(), NetworkError> {
    if naming::valid_id(id) {
        Ok(())
    } else {
        Err(NetworkError::InvalidRequest(format!(
            "{kind} {id:?} is not a dockerd ID (12 to 64 alphanumeric characters)"
        )))
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

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

fn parse_addr(field: &str, s: &str, v6: bool) -> Result<Option<IpNet>, NetworkError> {
    if s.is_empty() {
        return Ok(None);
    }
    let net: IpNet = s.parse().map_err(|_| {
        NetworkError::InvalidRequest(format!(
            "Interface.{field} {s:?} is not an address in CIDR form"
        ))
    })?;
    if matches!(net, IpNet::V6(_)) != v6 {
        return Err(NetworkError::InvalidRequest(format!(
            "Interface.{field} {s:?} has the wrong address family"
        )));
    }
    Ok(Some(net))
}

impl<S: Sys> Service<S> {
    /// Open the state and take (or make) the instance tag.
    pub fn new(sys: S, store: Store, firewall_enabled: bool) -> Result<Self, NetworkError> {
        let meta: Tree<String> = store.tree(state::META)?;
        let tag = match meta.get(state::TAG_KEY)? {
            Some(t) => t,
            None => {
                let t = naming::new_tag();
                meta.insert(state::TAG_KEY, &t)?;
                store.flush_blocking()?;
                t
            }
        };
        let firewall = if firewall_enabled {
            FirewallStatus::Unknown
        } else {
            FirewallStatus::Unavailable(format!("{DISABLED} by the plugin setting FIREWALL=false"))
        };
        Ok(Self {
            networks: store.tree(state::NETWORKS)?,
            endpoints: store.tree(state::ENDPOINTS)?,
            store,
            sys,
            tag,
            net_lock: tokio::sync::Mutex::new(()),
            fw_lock: tokio::sync::Mutex::new(()),
            ep_gate: tokio::sync::RwLock::new(()),
            ep_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            firewall: RwLock::new(firewall),
        })
    }

    /// This instance's tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The host effects (for tests).
    pub fn sys(&self) -> &S {
        &self.sys
    }

    /// The lock of endpoint `id` (striped by a hash of the ID).
    async fn ep_lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let i = (h.finish() as usize) % self.ep_locks.len().max(1);
        self.ep_locks[i].lock().await
    }

    /// Current firewall status.
    pub fn firewall_status(&self) -> FirewallStatus {
        match self.firewall.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_firewall_status(&self, s: FirewallStatus) {
        match self.firewall.write() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }

    /// The reason when the firewall is switched off by configuration (then options that need
    /// it are refused up front; a kernel failure is only known by trying).
    fn firewall_disabled(&self) -> Option<String> {
        match self.firewall_status() {
            FirewallStatus::Unavailable(r) if r.starts_with(DISABLED) => Some(r),
            _ => None,
        }
    }

    fn table(&self) -> String {
        firewall::table_name(&self.tag)
    }

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

    // ----- networks -----

    /// `CreateNetwork`.
    pub async fn create_network(&self, req: api::CreateNetworkRequest) -> Result<(), NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        let spec = options::parse_network(
            req.options.as_ref(),
            req.ipv4_data.as_deref().unwrap_or_default(),
            req.ipv6_data.as_deref().unwrap_or_default(),
        )?;
        let id = req.network_id;
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
    async fn ensure_bridge(&self, net: &NetworkState) -> Result<(), NetworkError> {
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

    /// The link named `name` when it carries this instance's mark for `want`; `Ok(None)` when
    /// no link has that name; an error naming the link when a link this driver does not own
    /// holds the name. Every lookup before using, changing or deleting a link goes through
    /// here: ownership is decided by the mark, never by the name.
    async fn owned_link(
        &self,
        name: &str,
        want: &Owner,
    ) -> Result<Option<crate::sys::Link>, NetworkError> {
        let link = self
            .sys
            .link(name)
            .await
            .map_err(NetworkError::sys(format!("looking up link {name}")))?;
        match link {
            None => Ok(None),
            Some(l) => {
                let owner = l.alias.as_deref().and_then(|a| naming::owner(&self.tag, a));
                if owner.as_ref() == Some(want) {
                    Ok(Some(l))
                } else {
                    Err(NetworkError::Conflict(format!(
                        "network interface {name} is not this driver's ({}): it is left untouched; \
                         rename or remove it, or choose another name",
                        match &l.alias {
                            Some(a) if !a.is_empty() => format!("its alias is {a:?}"),
                            _ => "it carries no Outboard mark".to_string(),
                        }
                    )))
                }
            }
        }
    }

    /// The network's bridge, checked to carry our mark (re-created when missing); a foreign
    /// link under its name fails the request.
    async fn require_bridge(&self, net: &NetworkState) -> Result<(), NetworkError> {
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

    /// Delete `name` if it is ours for `want` (absent: fine; foreign: an error, untouched).
    async fn delete_owned(&self, name: &str, want: &Owner) -> Result<(), NetworkError> {
        if self.owned_link(name, want).await?.is_some() {
            self.sys
                .delete_link(name)
                .await
                .map_err(NetworkError::sys(format!("deleting link {name}")))?;
        }
        Ok(())
    }

    /// [`Self::delete_owned`] for cleanup paths: problems are logged, never raised.
    async fn delete_quietly(&self, name: &str, want: &Owner) {
        if let Err(e) = self.delete_owned(name, want).await {
            tracing::warn!(link = %name, error = %e, "cleanup: link not deleted");
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

    fn endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<EndpointState, NetworkError> {
        match self.endpoints.get(endpoint_id)? {
            Some(ep) if ep.network_id == network_id => Ok(ep),
            _ => Err(NetworkError::EndpointNotFound(
                short(endpoint_id).to_string(),
            )),
        }
    }

    fn network(&self, network_id: &str) -> Result<NetworkState, NetworkError> {
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

    // ----- external connectivity -----

    /// `ProgramExternalConnectivity`: publish the endpoint's ports.
    pub async fn program_external(
        &self,
        req: api::ExternalConnectivityRequest,
    ) -> Result<(), NetworkError> {
        let bindings: Vec<PortBinding> = match req.options.as_ref().and_then(|o| o.get(OPT_PORTMAP))
        {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                NetworkError::InvalidRequest(format!("{OPT_PORTMAP} does not decode: {e}"))
            })?,
        };
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let _g = self.net_lock.lock().await;
        let mut ep = self.endpoint(&req.network_id, &req.endpoint_id)?;
        let net = self.network(&req.network_id)?;
        if net.spec.internal || bindings.is_empty() {
            return Ok(());
        }
        let what = "publishing ports (-p)";
        if let Some(reason) = self.firewall_disabled() {
            return Err(NetworkError::FirewallUnavailable {
                what: what.into(),
                reason,
            });
        }
        let ports = self.resolve_ports(&net, &ep, &bindings)?;
        if ports == ep.ports {
            return Ok(());
        }
        let old = std::mem::replace(&mut ep.ports, ports);
        self.endpoints.insert(&ep.id, &ep)?;
        self.store.flush().await?;
        if let Err(e) = self.refresh_firewall().await {
            ep.ports = old;
            self.endpoints.insert(&ep.id, &ep)?;
            self.store.flush().await?;
            let _ = self.refresh_firewall().await;
            return Err(NetworkError::FirewallUnavailable {
                what: what.into(),
                reason: e.to_string(),
            });
        }
        Ok(())
    }

    /// Choose host ports and check them against every other published port. A binding is
    /// IPv4 or IPv6 by its host address (`0.0.0.0`/empty: every IPv4 address, `::`: every IPv6
    /// address) and is published to the endpoint's address of that family; two bindings clash
    /// when protocol, port and family match and either is on every address or both on the same.
    fn resolve_ports(
        &self,
        net: &NetworkState,
        ep: &EndpointState,
        bindings: &[PortBinding],
    ) -> Result<Vec<PublishedPort>, NetworkError> {
        type Taken = BTreeMap<(u8, u16, bool), Vec<(Option<IpAddr>, String)>>;
        let mut taken: Taken = BTreeMap::new();
        for r in self.endpoints.iter() {
            let (_, e) = r?;
            if e.id == ep.id {
                continue;
            }
            for p in &e.ports {
                taken
                    .entry((p.proto, p.host_port, p.v6))
                    .or_default()
                    .push((p.host_ip, e.id.clone()));
            }
        }
        let clash = |taken: &Taken, proto: u8, port: u16, v6: bool, ip: Option<IpAddr>| {
            taken.get(&(proto, port, v6)).and_then(|v| {
                v.iter()
                    .find(|(other, _)| other.is_none() || ip.is_none() || *other == ip)
                    .map(|(_, e)| e.clone())
            })
        };
        let has_v4 = matches!(ep.v4, Some(IpNet::V4(_)));
        let has_v6 = matches!(ep.v6, Some(IpNet::V6(_)));
        let mut out = Vec::new();
        for b in bindings {
            let proto_name = match b.proto {
                6 => "tcp",
                17 => "udp",
                132 => "sctp",
                other => {
                    return Err(NetworkError::InvalidRequest(format!(
                        "published port with protocol number {other}: only tcp, udp and sctp"
                    )))
                }
            };
            if b.port == 0 {
                return Err(NetworkError::InvalidRequest(format!(
                    "published port {proto_name}/0: the container port must be 1-65535"
                )));
            }
            let given = if b.host_ip.is_empty() {
                net.spec.host_ip
            } else {
                Some(b.host_ip.parse::<IpAddr>().map_err(|_| {
                    NetworkError::InvalidRequest(format!(
                        "published port host IP {:?} is not an IP address",
                        b.host_ip
                    ))
                })?)
            };
            let (v6, host_ip) = match given {
                None => (false, None),
                Some(ip) => (ip.is_ipv6(), Some(ip).filter(|ip| !ip.is_unspecified())),
            };
            if v6 && !has_v6 {
                // `::` beside an IPv4 binding of the same port (dockerd 26 sends both for
                // `-p 8080:80`): on an endpoint without IPv6 the IPv4 binding publishes it.
                let paired = host_ip.is_none()
                    && bindings.iter().any(|o| {
                        o.proto == b.proto && o.port == b.port && !o.host_ip.contains(':')
                    });
                if paired {
                    continue;
                }
                return Err(NetworkError::InvalidRequest(format!(
                    "publishing {proto_name}/{} on the IPv6 address {} needs an IPv6 address on \
                     the endpoint (create the network with --ipv6)",
                    b.port,
                    host_ip
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "::".into())
                )));
            }
            if !v6 && !has_v4 {
                return Err(NetworkError::InvalidRequest(format!(
                    "publishing {proto_name}/{} on IPv4 needs an IPv4 address on the endpoint",
                    b.port
                )));
            }
            let range: Vec<u16> = if b.host_port == 0 {
                EPHEMERAL.collect()
            } else if b.host_port_end > b.host_port {
                (b.host_port..=b.host_port_end).collect()
            } else {
                vec![b.host_port]
            };
            let mut chosen = None;
            let mut holder = None;
            for port in range {
                let in_batch = out.iter().any(|p: &PublishedPort| {
                    p.proto == b.proto
                        && p.host_port == port
                        && p.v6 == v6
                        && (p.host_ip.is_none() || host_ip.is_none() || p.host_ip == host_ip)
                });
                match clash(&taken, b.proto, port, v6, host_ip) {
                    None if !in_batch => {
                        chosen = Some(port);
                        break;
                    }
                    Some(e) => holder = Some(e),
                    None => {}
                }
            }
            let Some(port) = chosen else {
                return Err(NetworkError::Conflict(format!(
                    "host port {proto_name}/{} is already published{}",
                    b.host_port,
                    holder
                        .map(|e| format!(" by endpoint {}", short(&e)))
                        .unwrap_or_default()
                )));
            };
            out.push(PublishedPort {
                proto: b.proto,
                host_ip,
                v6,
                host_port: port,
                container_port: b.port,
            });
        }
        Ok(out)
    }

    /// `RevokeExternalConnectivity`: unpublish the endpoint's ports.
    pub async fn revoke_external(&self, req: api::EndpointRequest) -> Result<(), NetworkError> {
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let _g = self.net_lock.lock().await;
        let Some(mut ep) = self.endpoints.get(&req.endpoint_id)? else {
            return Ok(());
        };
        if ep.ports.is_empty() {
            return Ok(());
        }
        ep.ports.clear();
        self.endpoints.insert(&ep.id, &ep)?;
        self.store.flush().await?;
        self.refresh_firewall().await
    }

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

pub mod ops;
