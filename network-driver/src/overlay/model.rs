//! The overlay's stored records and its own request and result types: what the overlay's
//! handlers build from the wire (decoded and validated by [`super::options`]) and what the
//! service answers. Nothing here knows dockerd's field names.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

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

/// A node discovery, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Underlay address.
    pub addr: Ipv4Addr,
    /// This node itself.
    pub is_self: bool,
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
