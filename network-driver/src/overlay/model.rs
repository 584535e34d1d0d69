//! The overlay's stored records, its validated requests and results, and the decoding of what
//! dockerd sends it (options of `AllocateNetwork`/`CreateNetwork`, `DiscoverNew` data), which
//! the overlay's handlers call from their `TryFrom` conversions: validation happens at the
//! edge, the service receives these types.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::api::Options;
use crate::error::NetworkError;

/// VNIs the manager hands out (Docker's own overlay starts at 4096; ours never meets it on
/// the wire anyway: another UDP port).
pub const VNI_MIN: u32 = 10_001;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 16_777_215;
/// Outer IPv4 + UDP + VXLAN + inner Ethernet headers.
pub const ENCAP: u32 = 50;
/// Option keys the manager puts into the network's options (every node reads them).
pub const OPT_VNI: &str = "outboard.vni";
/// See [`OPT_VNI`].
pub const OPT_PORT: &str = "outboard.vxlan_port";
/// See [`OPT_VNI`].
pub const OPT_MTU: &str = "outboard.mtu";
/// `-o` keys a user may give.
pub const VALID: &str = "vni, vxlan_port, mtu (or com.docker.network.driver.mtu)";

/// What the manager decided for one network (tree `alloc`, manager only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// dockerd's network ID.
    pub network_id: String,
    /// Its VNI, unique in this manager's store.
    pub vni: u32,
    /// VXLAN UDP port.
    pub port: u16,
    /// MTU inside the overlay.
    pub mtu: u32,
}

impl Allocation {
    /// The options every node receives.
    pub fn options(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OPT_VNI.to_string(), self.vni.to_string()),
            (OPT_PORT.to_string(), self.port.to_string()),
            (OPT_MTU.to_string(), self.mtu.to_string()),
        ])
    }
}

/// One overlay network on this node (tree `networks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayNet {
    /// dockerd's network ID.
    pub id: String,
    /// VNI, port and MTU from the manager.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// MTU.
    pub mtu: u32,
    /// `--internal`: no gateway service.
    pub internal: bool,
    /// Bridge name.
    pub bridge: String,
    /// VXLAN device name.
    pub vxlan: String,
}

/// One endpoint on this node (tree `endpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayEp {
    /// dockerd's endpoint ID.
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// Host end (on the bridge).
    pub host: String,
    /// Container end.
    pub peer: String,
    /// MAC of the container end.
    pub mac: String,
    /// Whether dockerd left the MAC to us (then it is returned).
    pub mac_generated: bool,
}

/// A validated `AllocateNetwork` (manager side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocateRequest {
    /// dockerd's network ID (checked to be one).
    pub network_id: String,
    /// What the user asked for with `-o`.
    pub asked: Asked,
}

/// A validated `CreateNetwork` on a node: what the manager assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    /// dockerd's network ID (checked to be one).
    pub id: String,
    /// VNI.
    pub vni: u32,
    /// VXLAN UDP port.
    pub port: u16,
    /// MTU inside the overlay.
    pub mtu: u32,
    /// `--internal`.
    pub internal: bool,
}

/// A validated `DiscoverNew`/`DiscoverDelete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Node discovery (type 1).
    Node(Node),
    /// Encryption keys (type 2): they concern Docker's own overlay only.
    EncryptionKeys,
}

/// A validated overlay `CreateEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOverlayEndpoint {
    /// The network's ID (checked to be one).
    pub network_id: String,
    /// dockerd's endpoint ID (checked to be one).
    pub id: String,
    /// The IPv4 address from IPAM (the prefix is not needed).
    pub v4: Option<Ipv4Addr>,
    /// The MAC dockerd gave; `None`: the driver derives one.
    pub mac: Option<[u8; 6]>,
}

/// What overlay `EndpointOperInfo` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayEndpointInfo {
    /// The network's VNI.
    pub vni: u32,
    /// Its VXLAN UDP port.
    pub vxlan_port: u16,
    /// Its bridge.
    pub bridge: String,
    /// Host end of the endpoint's veth pair.
    pub host_veth: String,
    /// MAC of the container end.
    pub mac: String,
}

/// `DiscoveryData` of a node discovery (type 1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeData {
    /// The node's underlay address.
    #[serde(rename = "Address")]
    pub address: String,
    /// Unused.
    #[serde(rename = "BindAddress", default)]
    pub bind_address: String,
    /// This node itself.
    #[serde(rename = "Self", default)]
    pub is_self: bool,
}

/// A node discovery, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Underlay address.
    pub addr: Ipv4Addr,
    /// This node itself.
    pub is_self: bool,
}

/// Decode `DiscoveryData` of type 1.
pub fn parse_node(data: &serde_json::Value) -> Result<Node, NetworkError> {
    let d: NodeData = serde_json::from_value(data.clone()).map_err(|e| {
        NetworkError::InvalidRequest(format!(
            "DiscoveryData of a node discovery does not decode: {e}"
        ))
    })?;
    let addr: Ipv4Addr = d.address.parse().map_err(|_| {
        NetworkError::InvalidRequest(format!(
            "DiscoveryData.Address {:?} is not an IPv4 address (the overlay runs over IPv4)",
            d.address
        ))
    })?;
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() || addr.is_loopback() {
        return Err(NetworkError::InvalidRequest(format!(
            "DiscoveryData.Address {addr} cannot be a node's underlay address"
        )));
    }
    Ok(Node {
        addr,
        is_self: d.is_self,
    })
}

fn text(key: &str, v: &serde_json::Value) -> Result<String, NetworkError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(NetworkError::InvalidOption {
            option: key.into(),
            value: other.to_string(),
            reason: "expected a string".into(),
        }),
    }
}

/// The driver options as flat strings: `AllocateNetwork` sends them flat, `CreateNetwork`
/// nests them under `com.docker.network.generic`.
pub fn flat_options(o: Option<&Options>) -> Result<BTreeMap<String, String>, NetworkError> {
    let mut out = BTreeMap::new();
    for (k, v) in o.into_iter().flatten() {
        if k == "com.docker.network.generic" {
            match v {
                serde_json::Value::Object(m) => {
                    for (gk, gv) in m {
                        out.insert(gk.clone(), text(gk, gv)?);
                    }
                }
                serde_json::Value::Null => {}
                other => {
                    return Err(NetworkError::InvalidRequest(format!(
                        "com.docker.network.generic is not an object: {other}"
                    )))
                }
            }
        } else {
            out.insert(k.clone(), text(k, v)?);
        }
    }
    Ok(out)
}

/// What the user asked for at `docker network create -o …` (manager side).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    /// `-o vni=N`.
    pub vni: Option<u32>,
    /// `-o vxlan_port=N`.
    pub port: Option<u16>,
    /// `-o mtu=N`.
    pub mtu: Option<u32>,
}

fn num<T: std::str::FromStr>(
    key: &str,
    v: &str,
    ok: impl Fn(&T) -> bool,
    reason: &str,
) -> Result<T, NetworkError> {
    v.parse::<T>()
        .ok()
        .filter(|n| ok(n))
        .ok_or_else(|| NetworkError::InvalidOption {
            option: key.into(),
            value: v.into(),
            reason: reason.into(),
        })
}

/// Validate the user's options of `AllocateNetwork`. dockerd's own keys
/// (`com.docker.network.*` other than the MTU) are ignored; any other key is refused.
pub fn parse_asked(o: &BTreeMap<String, String>) -> Result<Asked, NetworkError> {
    let mut a = Asked::default();
    for (k, v) in o {
        match k.as_str() {
            "vni" => {
                a.vni = Some(num(
                    k,
                    v,
                    |n| (1..=VNI_MAX).contains(n),
                    "a VNI is 1-16777215",
                )?)
            }
            "vxlan_port" => a.port = Some(num(k, v, |n: &u16| *n >= 1, "a UDP port 1-65535")?),
            "mtu" | "com.docker.network.driver.mtu" => {
                a.mtu = Some(num(
                    k,
                    v,
                    |n| (576..=9000 - ENCAP).contains(n),
                    "an MTU 576-8950",
                )?)
            }
            _ if k.starts_with("com.docker.network.") || k.starts_with("outboard.") => {}
            _ => {
                return Err(NetworkError::UnknownOption {
                    option: k.clone(),
                    valid: VALID,
                })
            }
        }
    }
    Ok(a)
}

/// What a node reads from the network's options (put there by the manager).
pub fn parse_assigned(o: &BTreeMap<String, String>) -> Result<(u32, u16, u32), NetworkError> {
    let missing = |k: &str| {
        NetworkError::InvalidRequest(format!(
            "the network's options carry no {k}: outboard-overlay networks are created on a \
             swarm manager (docker network create --scope swarm), which assigns it"
        ))
    };
    let vni = o.get(OPT_VNI).ok_or_else(|| missing(OPT_VNI))?;
    let port = o.get(OPT_PORT).ok_or_else(|| missing(OPT_PORT))?;
    let mtu = o.get(OPT_MTU).ok_or_else(|| missing(OPT_MTU))?;
    Ok((
        num(
            OPT_VNI,
            vni,
            |n| (1..=VNI_MAX).contains(n),
            "a VNI is 1-16777215",
        )?,
        num(OPT_PORT, port, |n: &u16| *n >= 1, "a UDP port 1-65535")?,
        num(
            OPT_MTU,
            mtu,
            |n| (576..=9000).contains(n),
            "an MTU 576-9000",
        )?,
    ))
}
