//! The driver's own request and result types: what `handlers.rs` (and the overlay's) build
//! from the wire with `TryFrom`, where all input validation that needs no state happens, and
//! what the services answer. Nothing here knows dockerd's field names or JSON.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::options::NetworkSpec;
use crate::state::PublishedPort;

/// A validated `CreateNetwork` of the bridge driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNetwork {
    /// dockerd's network ID (checked to be one).
    pub id: String,
    /// The options and pools, validated.
    pub spec: NetworkSpec,
}

/// A validated `CreateEndpoint` of the bridge driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    /// The network it attaches to (not checked here: the service knows the networks).
    pub network_id: String,
    /// dockerd's endpoint ID (checked to be one).
    pub id: String,
    /// IPv4 address with prefix, from IPAM.
    pub v4: Option<IpNet>,
    /// IPv6 address with prefix.
    pub v6: Option<IpNet>,
    /// The MAC dockerd gave (`--mac-address`); `None`: the driver picks one.
    pub mac: Option<[u8; 6]>,
}

/// What `CreateEndpoint` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedEndpoint {
    /// The MAC the driver generated, when dockerd gave none (dockerd refuses a reply that
    /// "changes" a MAC it supplied, so a given one is never returned).
    pub generated_mac: Option<String>,
}

/// A call that names one endpoint of one network (`Join`, `Leave`, `DeleteEndpoint`,
/// `EndpointOperInfo`, `RevokeExternalConnectivity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRef {
    /// The network's ID.
    pub network_id: String,
    /// The endpoint's ID.
    pub endpoint_id: String,
}

/// What `Join` tells dockerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The link dockerd moves into the container.
    pub src_name: String,
    /// Its name prefix inside the container (`eth` → `eth0`).
    pub dst_prefix: String,
    /// IPv4 default gateway.
    pub gateway: Option<IpAddr>,
    /// IPv6 default gateway.
    pub gateway_v6: Option<IpAddr>,
    /// No gateway on purpose: dockerd must not add its gateway service.
    pub disable_gateway_service: bool,
}

/// What `EndpointOperInfo` of the bridge driver shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The network's bridge.
    pub bridge: String,
    /// Host end of the veth pair.
    pub host_veth: String,
    /// MAC of the container end.
    pub mac: String,
    /// Published ports.
    pub ports: Vec<PublishedPort>,
}

/// A validated `ProgramExternalConnectivity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    /// The endpoint whose ports are published.
    pub endpoint: EndpointRef,
    /// The port map (`docker run -p`), in dockerd's order.
    pub bindings: Vec<PortSpec>,
}

/// One `-p` binding as dockerd sent it. Decoded at the edge but checked by the service: an
/// internal network ignores every binding (a bad one there is no error), and whether a
/// binding fits depends on the endpoint's addresses and the network's default host IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSpec {
    /// IP protocol number (6 tcp, 17 udp, 132 sctp are accepted).
    pub proto: u8,
    /// Container port.
    pub container_port: u16,
    /// Host IP as given (empty: the network's default).
    pub host_ip: String,
    /// Host port (0: the driver picks one).
    pub host_port: u16,
    /// End of a host port range, or equal to `host_port`, or 0.
    pub host_port_end: u16,
}

/// A MAC in `xx:xx:xx:xx:xx:xx` form.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
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

/// A MAC as `xx:xx:xx:xx:xx:xx` (lower case).
pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}
