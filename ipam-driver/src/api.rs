//! Wire types of `docker.ipamdriver/1.0` (what dockerd 20.10's libnetwork `ipams/remote` sends
//! and reads) and the query of the read-only `GET /outboard/v1/pools` view. Serde only: no
//! logic. The service never sees these: `handlers.rs` converts them to `model` types.
//! Requests tolerate unknown fields (newer daemons add some) and `null` maps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Reply to `IpamDriver.GetCapabilities` (the request body is empty).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapabilitiesResponse {
    /// Whether dockerd should generate a MAC and pass it in `RequestAddress` options.
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    /// Whether dockerd must replay pools and addresses after its restart (we persist: false).
    #[serde(rename = "RequiresRequestReplay")]
    pub requires_request_replay: bool,
}

/// Reply to `IpamDriver.GetDefaultAddressSpaces` (the request body is empty).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AddressSpacesResponse {
    /// Space used by local-scope networks.
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local: String,
    /// Space used by global-scope (swarm) networks.
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global: String,
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RequestPoolRequest {
    /// One of the two names from `GetDefaultAddressSpaces`.
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// `--subnet` in CIDR form, or `""` for "choose one from the defaults".
    #[serde(rename = "Pool")]
    pub pool: String,
    /// `--ip-range` in CIDR form, or `""`.
    #[serde(rename = "SubPool")]
    pub sub_pool: String,
    /// `--ipam-opt` key/values (`{}` from the CLI, may be `null`).
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    /// Whether an IPv6 pool is wanted.
    #[serde(rename = "V6")]
    pub v6: bool,
}

/// Reply to `RequestPool`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestPoolResponse {
    /// Opaque ID dockerd hands back in later calls.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The pool in CIDR form (network address).
    #[serde(rename = "Pool")]
    pub pool: String,
    /// Free metadata (we never set `com.docker.network.gateway`: the gateway is requested).
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ReleasePoolRequest {
    /// A `PoolID` from `RequestPool`.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RequestAddressRequest {
    /// A `PoolID` from `RequestPool`.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// `""` for any address, or a plain IP (`--ip`, `--gateway`, `--aux-address`).
    #[serde(rename = "Address")]
    pub address: String,
    /// `{"RequestAddressType":"com.docker.network.gateway"}` for the gateway, `null` for aux
    /// addresses and containers (or the MAC option when `RequiresMACAddress`).
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
}

/// Reply to `RequestAddress`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestAddressResponse {
    /// The address in CIDR form with the pool's prefix length (it becomes the netmask).
    #[serde(rename = "Address")]
    pub address: String,
    /// Free metadata (holder kind, pool).
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ReleaseAddressRequest {
    /// A `PoolID` from `RequestPool`.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// A plain IP previously handed out.
    #[serde(rename = "Address")]
    pub address: String,
}

/// Empty success reply (`{}`) of the release calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Empty {}

/// Query of `GET /outboard/v1/pools`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PoolsQuery {
    /// Only the pool with this ID or CIDR.
    pub pool: Option<String>,
    /// At most this many runs per pool (default 1000).
    pub limit: Option<usize>,
}

// The operator view is the service's own read model, served as is.
pub use crate::model::{PoolView, PoolsView, RunView};

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as dockerd 20.10 writes them (Go field order, trailing newline).
    #[test]
    fn golden_requests_decode() {
        let r: RequestPoolRequest = serde_json::from_str(
            "{\"AddressSpace\":\"OutboardLocal\",\"Pool\":\"10.98.0.0/16\",\"SubPool\":\"10.98.5.0/24\",\"Options\":{},\"V6\":false,\"Future\":1}\n",
        )
        .unwrap();
        assert_eq!(r.pool, "10.98.0.0/16");
        assert_eq!(r.sub_pool, "10.98.5.0/24");
        let r: RequestAddressRequest = serde_json::from_str(
            "{\"PoolID\":\"p\",\"Address\":\"\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}\n",
        )
        .unwrap();
        assert_eq!(
            r.options.unwrap()["RequestAddressType"],
            "com.docker.network.gateway"
        );
        let r: RequestAddressRequest =
            serde_json::from_str("{\"PoolID\":\"p\",\"Address\":\"10.98.0.5\",\"Options\":null}\n")
                .unwrap();
        assert!(r.options.is_none());
        let r: ReleaseAddressRequest =
            serde_json::from_str("{\"PoolID\":\"p\",\"Address\":\"10.98.0.5\"}\n").unwrap();
        assert_eq!(r.address, "10.98.0.5");
        let r: ReleasePoolRequest = serde_json::from_str("{\"PoolID\":\"p\"}\n").unwrap();
        assert_eq!(r.pool_id, "p");
    }

    #[test]
    fn replies_use_docker_names() {
        let v = serde_json::to_value(CapabilitiesResponse {
            requires_mac_address: false,
            requires_request_replay: false,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})
        );
        let v = serde_json::to_value(RequestPoolResponse {
            pool_id: "id".into(),
            pool: "10.98.0.0/24".into(),
            data: BTreeMap::new(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"PoolID": "id", "Pool": "10.98.0.0/24", "Data": {}})
        );
    }
}
