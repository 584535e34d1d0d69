//! Wire types of `docker.networkdriver/1.0` (libnetwork's remote driver) as dockerd 20.10 sends
//! and reads them.
//!
//! Serde only: no HTTP, no store, no netlink. Field names are Docker's spelling (explicit
//! renames); requests tolerate unknown and missing fields and `null` where Go may send one.
//! Replies never echo what dockerd supplied (it refuses a driver that "modifies" an address or
//! MAC it gave).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A JSON object of driver options (`Options` fields): values are strings, booleans, arrays.
pub type Options = BTreeMap<String, serde_json::Value>;

/// Reply of `GetCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    /// `local` (one host) or `global` (needs swarm/KV store).
    #[serde(rename = "Scope")]
    pub scope: String,
    /// Where connectivity reaches: `local` here.
    #[serde(rename = "ConnectivityScope")]
    pub connectivity_scope: String,
}

/// One `IPv4Data`/`IPv6Data` element: a pool the IPAM driver handed out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpamData {
    /// IPAM address space (`LocalDefault` for the built-in IPAM).
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// The pool in CIDR form, e.g. `10.99.0.0/24`.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// The gateway in CIDR form, e.g. `10.99.0.1/24` (may be empty).
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// `--aux-address` entries: name → CIDR; absent when none.
    #[serde(rename = "AuxAddresses")]
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

/// `/NetworkDriver.CreateNetwork` (also the body of `AllocateNetwork`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateNetworkRequest {
    /// 64 hex chosen by dockerd.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// `com.docker.network.enable_ipv6` (bool), `com.docker.network.generic` (the `-o` values),
    /// `com.docker.network.internal` (true with `--internal`).
    #[serde(rename = "Options")]
    pub options: Option<Options>,
    /// IPv4 pools with their gateways.
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Option<Vec<IpamData>>,
    /// IPv6 pools (`[]` unless `--ipv6`).
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Option<Vec<IpamData>>,
}

/// Requests that carry only a network ID: `DeleteNetwork`, `FreeNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkRequest {
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// The addresses of an endpoint's interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointInterface {
    /// IPv4 address in CIDR form from IPAM (empty when none).
    #[serde(rename = "Address", skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// IPv6 address in CIDR form (empty unless IPv6 is on).
    #[serde(rename = "AddressIPv6", skip_serializing_if = "String::is_empty")]
    pub address_ipv6: String,
    /// `xx:xx:xx:xx:xx:xx`; empty unless the user gave `--mac-address`.
    #[serde(rename = "MacAddress", skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

/// `/NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateEndpointRequest {
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// 64 hex chosen by dockerd.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// What dockerd already decided about the interface.
    #[serde(rename = "Interface")]
    pub interface: Option<EndpointInterface>,
    /// Exposed ports, port map, DNS servers, `--driver-opt` values.
    #[serde(rename = "Options")]
    pub options: Option<Options>,
}

/// Reply of `CreateEndpoint`: only the fields dockerd left empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateEndpointResponse {
    /// The generated MAC, when dockerd gave none; absent otherwise.
    #[serde(rename = "Interface", skip_serializing_if = "Option::is_none")]
    pub interface: Option<EndpointInterface>,
}

/// Requests that name one endpoint: `DeleteEndpoint`, `EndpointOperInfo`, `Leave`,
/// `RevokeExternalConnectivity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointRequest {
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// Reply of `EndpointOperInfo`: free-form information shown nowhere dockerd checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointOperInfoResponse {
    /// Driver-specific key/values.
    #[serde(rename = "Value")]
    pub value: Options,
}

/// `/NetworkDriver.Join`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JoinRequest {
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Path of the container's network namespace (may not exist yet during `Join`).
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// The container's exposed ports and port map.
    #[serde(rename = "Options")]
    pub options: Option<Options>,
}

/// Which host link dockerd moves into the container, and its name prefix there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceName {
    /// Name of the link in the host namespace.
    #[serde(rename = "SrcName")]
    pub src_name: String,
    /// Prefix inside the container (`eth` → `eth0`, `eth1`, …).
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

/// Reply of `Join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The veth end to move into the container.
    #[serde(rename = "InterfaceName")]
    pub interface_name: InterfaceName,
    /// IPv4 default gateway, a plain IP (no prefix); absent on internal networks.
    #[serde(rename = "Gateway", skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// IPv6 default gateway, a plain IP; absent without IPv6.
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    /// True when no gateway is given on purpose (stops dockerd adding `docker_gwbridge`).
    #[serde(rename = "DisableGatewayService")]
    pub disable_gateway_service: bool,
}

/// `/NetworkDriver.ProgramExternalConnectivity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalConnectivityRequest {
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// `com.docker.network.portmap` (published ports) and exposed ports.
    #[serde(rename = "Options")]
    pub options: Option<Options>,
}

/// One `com.docker.network.portmap` element (`docker run -p`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortBinding {
    /// IP protocol number: 6 tcp, 17 udp, 132 sctp.
    #[serde(rename = "Proto")]
    pub proto: u8,
    /// Container IP (often empty: the endpoint's address).
    #[serde(rename = "IP")]
    pub ip: String,
    /// Container port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// Host IP to bind (empty: every host address).
    #[serde(rename = "HostIP")]
    pub host_ip: String,
    /// Host port (0: the driver picks one).
    #[serde(rename = "HostPort")]
    pub host_port: u16,
    /// End of a host port range (`-p 8000-8010:80`), or equal to `HostPort`, or 0.
    #[serde(rename = "HostPortEnd")]
    pub host_port_end: u16,
}

/// `/NetworkDriver.DiscoverNew` and `DiscoverDelete` (swarm only; answered and ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryRequest {
    /// 1 = node discovery.
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: i64,
    /// `Address`, `BindAddress`, `Self`.
    #[serde(rename = "DiscoveryData")]
    pub discovery_data: serde_json::Value,
}

/// Reply of `AllocateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateNetworkResponse {
    /// Options to hand to every node (none for a local driver).
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, String>,
}

/// An empty success reply (`{}`): dockerd fails on an empty body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as dockerd 20.10 sends them (see docs/plugin-protocol.md §4).
    #[test]
    fn golden_requests_decode() {
        let create: CreateNetworkRequest = serde_json::from_str(
            r#"{"NetworkID":"3f0c","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"mtu":"1400"}},"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"10.99.0.1/24","Pool":"10.99.0.0/24"}],"IPv6Data":[]}"#,
        )
        .unwrap();
        assert_eq!(create.ipv4_data.unwrap()[0].gateway, "10.99.0.1/24");
        let ep: CreateEndpointRequest = serde_json::from_str(
            r#"{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.99.0.2/24","AddressIPv6":"","MacAddress":""},"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]},"NewField":1}"#,
        )
        .unwrap();
        assert_eq!(ep.interface.unwrap().address, "10.99.0.2/24");
        let pb: PortBinding = serde_json::from_str(
            r#"{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}"#,
        )
        .unwrap();
        assert_eq!((pb.proto, pb.port, pb.host_port), (6, 80, 8080));
        let nulls: CreateEndpointRequest = serde_json::from_str(
            r#"{"NetworkID":"n","EndpointID":"e","Interface":null,"Options":null}"#,
        )
        .unwrap();
        assert!(nulls.interface.is_none());
    }

    #[test]
    fn replies_omit_what_dockerd_supplied() {
        let r = CreateEndpointResponse { interface: None };
        assert_eq!(serde_json::to_string(&r).unwrap(), "{}");
        let r = CreateEndpointResponse {
            interface: Some(EndpointInterface {
                mac_address: "02:42:0a:63:00:02".into(),
                ..Default::default()
            }),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"Interface":{"MacAddress":"02:42:0a:63:00:02"}}"#
        );
        let j = JoinResponse {
            interface_name: InterfaceName {
                src_name: "x".into(),
                dst_prefix: "eth".into(),
            },
            gateway: "10.99.0.1".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"InterfaceName":{"SrcName":"x","DstPrefix":"eth"},"Gateway":"10.99.0.1","DisableGatewayService":false}"#
        );
    }
}
