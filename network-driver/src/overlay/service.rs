//! The overlay's logic. Manager side: `AllocateNetwork` picks a VNI (unique, durable) and the
//! options every node gets; `FreeNetwork` frees it. Node side: a bridge + VXLAN device per
//! network, a veth per endpoint, one all-zero FDB entry per peer (head-end replication; MACs
//! are learnt), peers from node discovery kept in the store (dockerd never replays them).
//! All calls run one at a time (`lock`): they are rare and small.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::{Store, Tree};

use super::model::{self, Allocation, OverlayEp, OverlayNet};
use super::sys::{OverlaySys, VxlanSpec};
use crate::api;
use crate::error::NetworkError;
use crate::naming;
use crate::sys::VethSpec;

const META: &str = "meta";
const TAG_KEY: &str = "instance_tag";
const SELF_KEY: &str = "self_address";
const ALIAS: &str = "outboard-overlay";

/// Settings the service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Default VXLAN UDP port for new networks (never 4789: Docker's overlay holds it).
    pub vxlan_port: u16,
    /// Underlay MTU the default overlay MTU is derived from.
    pub underlay_mtu: u32,
}

/// The overlay driver.
pub struct Overlay<S: OverlaySys> {
    sys: S,
    store: Store,
    meta: Tree<String>,
    alloc: Tree<Allocation>,
    nets: Tree<OverlayNet>,
    eps: Tree<OverlayEp>,
    peers: Tree<String>,
    tag: String,
    settings: Settings,
    lock: tokio::sync::Mutex<()>,
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
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

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Networks whose links were made again.
    pub recreated: usize,
    /// Links of ours that belonged to nothing, deleted.
    pub deleted: usize,
    /// FDB entries (re)installed.
    pub fdb: usize,
    /// Problems that did not stop reconcile.
    pub errors: Vec<String>,
}

impl<S: OverlaySys> Overlay<S> {
    /// Open the state.
    pub fn new(sys: S, store: Store, settings: Settings) -> Result<Self, NetworkError> {
        let meta: Tree<String> = store.tree(META)?;
        let tag = match meta.get(TAG_KEY)? {
            Some(t) => t,
            None => {
                let t = naming::new_tag();
                meta.insert(TAG_KEY, &t)?;
                store.flush_blocking()?;
                t
            }
        };
        Ok(Self {
            alloc: store.tree("alloc")?,
            nets: store.tree("networks")?,
            eps: store.tree("endpoints")?,
            peers: store.tree("peers")?,
            meta,
            store,
            sys,
            tag,
            settings,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// This instance's tag (in link names and aliases).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The host side (tests).
    pub fn sys(&self) -> &S {
        &self.sys
    }

    fn alias(&self, kind: &str, id: &str) -> String {
        format!("{ALIAS} {} {kind} {id}", self.tag)
    }

    /// (kind, id) of a link alias of this instance.
    fn owner<'a>(&self, alias: &'a str) -> Option<(&'a str, &'a str)> {
        let mut p = alias.split(' ');
        if p.next()? != ALIAS || p.next()? != self.tag {
            return None;
        }
        Some((p.next()?, p.next()?))
    }

    /// The peers known, sorted.
    pub fn peers(&self) -> Result<Vec<Ipv4Addr>, NetworkError> {
        let mut out = Vec::new();
        for r in self.peers.iter() {
            let (k, _) = r?;
            if let Ok(a) = k.parse() {
                out.push(a);
            }
        }
        out.sort();
        Ok(out)
    }

    fn self_addr(&self) -> Result<Option<Ipv4Addr>, NetworkError> {
        Ok(self.meta.get(SELF_KEY)?.and_then(|s| s.parse().ok()))
    }

    // ----- manager -----

    /// `AllocateNetwork`: choose (or check) the VNI, record it durably, hand out the options.
    pub async fn allocate(
        &self,
        req: api::CreateNetworkRequest,
    ) -> Result<api::AllocateNetworkResponse, NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        let asked = model::parse_asked(&model::flat_options(req.options.as_ref())?)?;
        if asked.port == Some(4789) {
            return Err(NetworkError::InvalidOption {
                option: "vxlan_port".into(),
                value: "4789".into(),
                reason: "Docker's built-in overlay uses 4789 on every swarm node".into(),
            });
        }
        let _g = self.lock.lock().await;
        if let Some(a) = self.alloc.get(&req.network_id)? {
            // dockerd repeated the call (manager restart): the same answer.
            return Ok(api::AllocateNetworkResponse {
                options: a.options(),
            });
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
            network_id: req.network_id.clone(),
            vni,
            port: asked.port.unwrap_or(self.settings.vxlan_port),
            mtu: asked
                .mtu
                .unwrap_or(self.settings.underlay_mtu.saturating_sub(model::ENCAP)),
        };
        self.alloc.insert(&a.network_id, &a)?;
        self.store.flush().await?;
        tracing::info!(network = %short(&a.network_id), vni, port = a.port, mtu = a.mtu, "overlay allocated");
        Ok(api::AllocateNetworkResponse {
            options: a.options(),
        })
    }

    /// `FreeNetwork`: the VNI is free again (unknown network: nothing to do).
    pub async fn free(&self, network_id: &str) -> Result<(), NetworkError> {
        check_id("NetworkID", network_id)?;
        let _g = self.lock.lock().await;
        if let Some(a) = self.alloc.remove(network_id)? {
            self.store.flush().await?;
            tracing::info!(network = %short(network_id), vni = a.vni, "overlay freed");
        }
        Ok(())
    }

    // ----- discovery -----

    /// `DiscoverNew`: remember the node (durably), then replicate toward it on every overlay.
    pub async fn discover_new(&self, req: api::DiscoveryRequest) -> Result<(), NetworkError> {
        if !wanted(req.discovery_type)? {
            return Ok(());
        }
        let node = model::parse_node(&req.discovery_data)?;
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
    pub async fn discover_delete(&self, req: api::DiscoveryRequest) -> Result<(), NetworkError> {
        if !wanted(req.discovery_type)? {
            return Ok(());
        }
        let node = model::parse_node(&req.discovery_data)?;
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

    // ----- node: networks -----

    fn names(&self, vni: u32) -> (String, String) {
        (
            format!("oxb{}{vni:06x}", self.tag),
            format!("oxv{}{vni:06x}", self.tag),
        )
    }

    /// Bridge, VXLAN device and FDB entries of a network (what exists is kept).
    async fn build(
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

    async fn present(&self) -> Result<BTreeSet<String>, NetworkError> {
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
    pub async fn create_network(&self, req: api::CreateNetworkRequest) -> Result<(), NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        let opts = model::flat_options(req.options.as_ref())?;
        let (vni, port, mtu) = model::parse_assigned(&opts)?;
        let internal = matches!(
            req.options
                .as_ref()
                .and_then(|o| o.get("com.docker.network.internal")),
            Some(serde_json::Value::Bool(true))
        );
        let (bridge, vxlan) = self.names(vni);
        let n = OverlayNet {
            id: req.network_id.clone(),
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
        check_id("NetworkID", id)?;
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

    // ----- node: endpoints -----

    /// `CreateEndpoint`: a veth pair on the network's bridge.
    pub async fn create_endpoint(
        &self,
        req: api::CreateEndpointRequest,
    ) -> Result<api::CreateEndpointResponse, NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        check_id("EndpointID", &req.endpoint_id)?;
        let iface = req.interface.unwrap_or_default();
        let v4 = if iface.address.is_empty() {
            None
        } else {
            match iface.address.parse::<ipnet::IpNet>() {
                Ok(ipnet::IpNet::V4(n)) => Some(n.addr()),
                _ => {
                    return Err(NetworkError::InvalidRequest(format!(
                        "Interface.Address {:?} is not an IPv4 address in CIDR form",
                        iface.address
                    )))
                }
            }
        };
        let (mac, generated) = if iface.mac_address.is_empty() {
            (mac_for(v4, &req.endpoint_id), true)
        } else {
            let m = parse_mac(&iface.mac_address).ok_or_else(|| {
                NetworkError::InvalidRequest(format!(
                    "Interface.MacAddress {:?} is not a MAC",
                    iface.mac_address
                ))
            })?;
            (m, false)
        };
        let _g = self.lock.lock().await;
        let n = self
            .nets
            .get(&req.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&req.network_id).into()))?;
        let id8 = req.endpoint_id.get(..8).unwrap_or(&req.endpoint_id);
        let ep = OverlayEp {
            id: req.endpoint_id.clone(),
            network_id: n.id.clone(),
            host: format!("oxh{}{id8}", self.tag),
            peer: format!("oxc{}{id8}", self.tag),
            mac: fmt_mac(&mac),
            mac_generated: generated,
        };
        if let Some(old) = self.eps.get(&ep.id)? {
            if old == ep {
                return Ok(reply_mac(&ep));
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
        Ok(reply_mac(&ep))
    }

    /// `Join`: the container end, no gateway of ours (dockerd's gateway service gives non-internal
    /// networks their way out, as for its own overlay).
    pub async fn join(&self, req: api::JoinRequest) -> Result<api::JoinResponse, NetworkError> {
        let ep = self
            .eps
            .get(&req.endpoint_id)?
            .filter(|e| e.network_id == req.network_id)
            .ok_or_else(|| NetworkError::EndpointNotFound(short(&req.endpoint_id).into()))?;
        let n = self
            .nets
            .get(&ep.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&ep.network_id).into()))?;
        Ok(api::JoinResponse {
            interface_name: api::InterfaceName {
                src_name: ep.peer,
                dst_prefix: "eth".into(),
            },
            gateway: String::new(),
            gateway_ipv6: String::new(),
            disable_gateway_service: n.internal,
        })
    }

    /// `DeleteEndpoint`.
    pub async fn delete_endpoint(&self, req: api::EndpointRequest) -> Result<(), NetworkError> {
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
    pub async fn oper_info(
        &self,
        req: api::EndpointRequest,
    ) -> Result<api::EndpointOperInfoResponse, NetworkError> {
        let ep = self
            .eps
            .get(&req.endpoint_id)?
            .ok_or_else(|| NetworkError::EndpointNotFound(short(&req.endpoint_id).into()))?;
        let n = self
            .nets
            .get(&ep.network_id)?
            .ok_or_else(|| NetworkError::NetworkNotFound(short(&ep.network_id).into()))?;
        let mut value = api::Options::new();
        value.insert("vni".into(), n.vni.into());
        value.insert("vxlan_port".into(), n.port.into());
        value.insert("bridge".into(), n.bridge.into());
        value.insert("host_veth".into(), ep.host.into());
        value.insert("mac_address".into(), ep.mac.into());
        Ok(api::EndpointOperInfoResponse { value })
    }

    // ----- restart safety -----

    /// Make the kernel match the store: bridges, VXLAN devices, FDB entries toward every
    /// stored peer, veths on their bridge; links of ours that belong to nothing are deleted.
    pub async fn reconcile(&self) -> Result<Report, NetworkError> {
        let _g = self.lock.lock().await;
        let mut rep = Report::default();
        let links = self
            .sys
            .links()
            .await
            .map_err(NetworkError::sys("listing links"))?;
        let present: BTreeSet<String> = links.iter().map(|l| l.name.clone()).collect();
        let mut nets = BTreeSet::new();
        for r in self.nets.iter() {
            let (_, n) = r?;
            nets.insert(n.id.clone());
            match self.build(&n, &present).await {
                Ok(made) => {
                    rep.recreated += usize::from(made);
                    rep.fdb += self.peers()?.len();
                }
                Err(e) => rep.errors.push(e.to_string()),
            }
        }
        let mut eps = BTreeSet::new();
        for r in self.eps.iter() {
            let (k, e) = r?;
            match self.nets.get(&e.network_id)? {
                None => {
                    let _ = self.sys.delete(&e.host).await;
                    self.eps.remove(&k)?;
                    rep.deleted += 1;
                }
                Some(n) => {
                    eps.insert(e.id.clone());
                    if present.contains(&e.host) {
                        if let Err(err) = self.sys.attach(&e.host, &n.bridge).await {
                            rep.errors.push(format!("attaching {}: {err}", e.host));
                        }
                    }
                }
            }
        }
        for l in &links {
            let Some((kind, id)) = l.alias.as_deref().and_then(|a| self.owner(a)) else {
                continue;
            };
            let known = match kind {
                "net" | "vx" => nets.contains(id),
                "ep" => eps.contains(id),
                _ => true,
            };
            if !known {
                match self.sys.delete(&l.name).await {
                    Ok(_) => rep.deleted += 1,
                    Err(e) => rep.errors.push(format!("deleting {}: {e}", l.name)),
                }
            }
        }
        self.store.flush().await?;
        Ok(rep)
    }
}

/// Node discovery (1) is handled; encryption keys (2) concern Docker's own overlay only.
fn wanted(kind: i64) -> Result<bool, NetworkError> {
    match kind {
        1 => Ok(true),
        2 => Ok(false),
        other => Err(NetworkError::InvalidRequest(format!(
            "DiscoveryType {other} is not a discovery type (1 node, 2 encryption keys)"
        ))),
    }
}

fn reply_mac(ep: &OverlayEp) -> api::CreateEndpointResponse {
    api::CreateEndpointResponse {
        interface: ep.mac_generated.then(|| api::EndpointInterface {
            mac_address: ep.mac.clone(),
            ..Default::default()
        }),
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}
