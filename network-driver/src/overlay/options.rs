//! Decoding and validation of what dockerd sends the overlay: the driver options of
//! `AllocateNetwork`/`CreateNetwork` (flat or nested under `com.docker.network.generic`, the
//! user's `-o` keys, the keys the manager assigned) and the `DiscoveryData` of a node
//! discovery. Called from the overlay's `TryFrom` conversions: validation happens at the edge.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;

use super::model::{Asked, Node, ENCAP, OPT_MTU, OPT_PORT, OPT_VNI, VNI_MAX};
use crate::api::Options;
use crate::error::NetworkError;

/// `-o` keys a user may give.
pub const VALID: &str = "vni, vxlan_port, mtu (or com.docker.network.driver.mtu)";

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
