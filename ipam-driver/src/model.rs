//! The IPAM service's own types: validated requests (built from wire types by `handlers.rs`,
//! where all input validation happens), grants (what the service decided) and the operator's
//! read model. Nothing here knows dockerd's field names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::addr::{Addr, Prefix};
use crate::alloc::Kind;

/// Name of the local address space (what `GetDefaultAddressSpaces` answers).
pub const LOCAL_SPACE: &str = "OutboardLocal";
/// Name of the global address space.
pub const GLOBAL_SPACE: &str = "OutboardGlobal";

/// One of the two address spaces this driver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Local-scope networks.
    Local,
    /// Global-scope (swarm) networks.
    Global,
}

impl Space {
    /// The name dockerd uses.
    pub fn name(self) -> &'static str {
        match self {
            Space::Local => LOCAL_SPACE,
            Space::Global => GLOBAL_SPACE,
        }
    }
}

/// A validated `RequestPool`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRequest {
    /// The address space.
    pub space: Space,
    /// IPv6 (true) or IPv4.
    pub v6: bool,
    /// `--subnet` (family checked, neither too wide nor special-purpose) and `--ip-range`
    /// (inside the subnet), or `None` for "the next free default pool".
    pub explicit: Option<(Prefix, Option<Prefix>)>,
    /// `--ipam-opt` key/values (validated against the chosen subnet by the service).
    pub options: BTreeMap<String, String>,
}

/// A pool the service handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolGrant {
    /// The opaque PoolID.
    pub id: String,
    /// The subnet.
    pub subnet: Prefix,
    /// The `--ip-range`, if any.
    pub range: Option<Prefix>,
    /// Chosen from the default pools.
    pub from_defaults: bool,
}

/// A validated `RequestAddress`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressRequest {
    /// The PoolID.
    pub pool_id: String,
    /// A specific address, or `None` for the next free one.
    pub address: Option<Addr>,
    /// dockerd asks for the gateway.
    pub gateway: bool,
}

/// An address the service handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressGrant {
    /// The address.
    pub address: Addr,
    /// The pool's prefix length (the address's netmask).
    pub prefix_len: u8,
    /// Who holds it.
    pub kind: Kind,
    /// The PoolID.
    pub pool_id: String,
}

/// A validated `ReleaseAddress`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressRelease {
    /// The PoolID.
    pub pool_id: String,
    /// The address.
    pub address: Addr,
}

/// Which pools the operator view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolFilter {
    /// Only the pool with this ID or CIDR.
    pub pool: Option<String>,
    /// At most this many runs per pool.
    pub limit: usize,
}

/// `GET /outboard/v1/pools`: every pool with its utilisation and holders.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PoolsView {
    /// Pools in ID order.
    pub pools: Vec<PoolView>,
}

/// One pool as operators see it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PoolView {
    /// The `PoolID` dockerd holds.
    pub id: String,
    /// Address space (local or global).
    pub address_space: String,
    /// Subnet in CIDR form.
    pub pool: String,
    /// `--ip-range`, if any.
    pub ip_range: Option<String>,
    /// Whether it came from the default pools (no `--subnet`).
    pub from_defaults: bool,
    /// `label` option, if any.
    pub label: Option<String>,
    /// `serial` or `lowest`.
    pub order: String,
    /// `reserved` option ranges as `first-last`.
    pub reserved: Vec<String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The gateway address, if one is held.
    pub gateway: Option<String>,
    /// Usable addresses of the subnet (without network and broadcast).
    pub capacity: u128,
    /// Held addresses.
    pub held: u128,
    /// Held per holder kind.
    pub held_by_kind: BTreeMap<String, u128>,
    /// `held / capacity` in percent.
    pub utilisation_percent: f64,
    /// Next candidate of serial allocation.
    pub next: String,
    /// Held addresses as runs of consecutive addresses of one kind.
    pub runs: Vec<RunView>,
    /// Whether `runs` was cut at the limit.
    pub runs_truncated: bool,
}

/// A run of consecutive held addresses of one holder kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunView {
    /// First address.
    pub first: String,
    /// Last address.
    pub last: String,
    /// Number of addresses.
    pub count: u128,
    /// `gateway`, `aux`, `container-ip` (asked for with `--ip`) or `container`.
    pub kind: String,
}
