//! The firewall policy as data: what the plugin's own nftables table must contain for the
//! networks and published ports it knows. [`Ruleset`] is computed from the store after every
//! change; the difference to the last applied ruleset goes to the kernel in one transaction
//! (its own chains and map elements only, see `sys/nft/`), so the kernel never holds a
//! half-applied change, one change costs the same at 10 or 1,000 networks, and reconcile (or
//! repair after an outside change) is "build the whole table again".
//!
//! Policy, per network bridge `B` (IPv4):
//! - `iif B oif B`: accept, or drop with `icc=false` (bridged traffic reaches netfilter because
//!   such bridges are created with `nf_call_iptables`);
//! - internal: `iif B` drop, `oif B` drop (nothing enters or leaves the bridge);
//! - otherwise: `oif B` accept replies (ct established/related) and published ports (ct status
//!   dnat), drop anything else entering `B` — which isolates our networks from each other and
//!   from the outside also when the host forwards;
//! - masquerade: `ip saddr <subnet> oif != B` masquerade (for traffic entering from `B`);
//! - published ports: DNAT in prerouting (and output, except towards 127/8 and ::1) for local
//!   destination addresses (or the given host IP) to the container, IPv4 to the container's
//!   IPv4 address and IPv6 to its IPv6 address.

use std::net::IpAddr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// One network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwNetwork {
    /// Bridge name.
    pub bridge: String,
    /// IPv4 subnets on the bridge.
    pub subnets: Vec<Ipv4Net>,
    /// Nothing enters or leaves the bridge.
    pub internal: bool,
    /// Containers on the bridge may talk to each other.
    pub icc: bool,
    /// Masquerade traffic leaving the bridge.
    pub masquerade: bool,
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwPort {
    /// 6 tcp, 17 udp, 132 sctp.
    pub proto: u8,
    /// Only this host address (`None`: any local address of the family).
    pub host_ip: Option<IpAddr>,
    /// Host port.
    pub host_port: u16,
    /// Container address (its family is the binding's).
    pub container_ip: IpAddr,
    /// Container port.
    pub container_port: u16,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    /// Table name (family `ip`), unique per plugin instance.
    pub table: String,
    /// Networks in a stable order.
    pub networks: Vec<FwNetwork>,
    /// Published ports in a stable order.
    pub ports: Vec<FwPort>,
}

impl Ruleset {
    /// Whether the table would hold nothing (then it is removed instead).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.ports.is_empty()
    }
}

/// Name of the table of plugin instance `tag`.
pub fn table_name(tag: &str) -> String {
    format!("outboard_network_{tag}")
}
