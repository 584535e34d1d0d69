//! The driver's durable state, typed.
//!
//! Key layout (trees of the common store):
//! - `meta`: `instance_tag` → the 4-hex tag of this plugin instance (names and aliases);
//! - `networks`: network ID → [`NetworkState`];
//! - `endpoints`: endpoint ID → [`EndpointState`] (it names its network).
//!
//! Everything needed to rebuild bridges, veths and the firewall after a restart is here; the
//! kernel is reconciled against it, never the other way round.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::options::NetworkSpec;

/// One network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// dockerd's network ID.
    pub id: String,
    /// The bridge's name (given or generated).
    pub bridge: String,
    /// What was asked for.
    pub spec: NetworkSpec,
}

impl NetworkState {
    /// Masquerade in effect: as asked, else on for non-internal networks.
    pub fn masquerade(&self) -> bool {
        self.spec.masquerade.unwrap_or(!self.spec.internal)
    }
}

/// One published port of an endpoint, resolved (host port chosen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// 6 tcp, 17 udp, 132 sctp.
    pub proto: u8,
    /// Host address, or any local address of the family.
    pub host_ip: Option<IpAddr>,
    /// An IPv6 binding (DNAT to the endpoint's IPv6 address). Absent in records written before
    /// IPv6 publishing: those are IPv4.
    #[serde(default)]
    pub v6: bool,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
}

/// One endpoint (a container's attachment to a network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// dockerd's endpoint ID.
    pub id: String,
    /// The network it belongs to.
    pub network_id: String,
    /// Host end of the veth pair (on the bridge).
    pub host: String,
    /// Container end (dockerd moves it into the sandbox).
    pub peer: String,
    /// IPv4 address with prefix, from IPAM.
    pub v4: Option<IpNet>,
    /// IPv6 address with prefix.
    pub v6: Option<IpNet>,
    /// MAC of the container end.
    pub mac: String,
    /// Whether the driver generated the MAC (then `CreateEndpoint` returns it).
    pub mac_generated: bool,
    /// Published ports, set by `ProgramExternalConnectivity`.
    pub ports: Vec<PublishedPort>,
}

/// Tree names.
pub const META: &str = "meta";
/// See the module doc.
pub const NETWORKS: &str = "networks";
/// See the module doc.
pub const ENDPOINTS: &str = "endpoints";
/// Key of the instance tag in `meta`.
pub const TAG_KEY: &str = "instance_tag";
