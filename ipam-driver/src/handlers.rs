//! The HTTP edge: every route of the plugin. Wire requests become `model` types here with
//! `TryFrom` (all input validation that needs no state happens here, with `IpamError` as the
//! one error type); the service decides; its result is mapped back to the wire reply.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use common::http::reply;
use common::DockerJson;

use crate::addr::{Addr, Prefix};
use crate::api;
use crate::error::IpamError;
use crate::model::{
    AddressGrant, AddressRelease, AddressRequest, PoolFilter, PoolGrant, PoolRequest, Space,
    GLOBAL_SPACE, LOCAL_SPACE,
};
use crate::service::Ipam;
use crate::sys::HostRoutes;

/// The option dockerd sets on the gateway's `RequestAddress`.
const ADDRESS_TYPE: &str = "RequestAddressType";
const GATEWAY_TYPE: &str = "com.docker.network.gateway";
/// Ranges no pool may touch: this host, loopback, multicast/reserved, IPv6 unspecified and
/// multicast.
const SPECIAL: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "224.0.0.0/3",
    "::/16",
    "ff00::/8",
];

/// Every route of the plugin.
pub fn router<R: HostRoutes>(ipam: Arc<Ipam<R>>) -> axum::Router {
    axum::Router::new()
        .route("/IpamDriver.GetCapabilities", post(capabilities))
        .route("/IpamDriver.GetDefaultAddressSpaces", post(address_spaces))
        .route("/IpamDriver.RequestPool", post(request_pool::<R>))
        .route("/IpamDriver.ReleasePool", post(release_pool::<R>))
        .route("/IpamDriver.RequestAddress", post(request_address::<R>))
        .route("/IpamDriver.ReleaseAddress", post(release_address::<R>))
        .route("/outboard/v1/pools", get(pools::<R>))
        .with_state(ipam)
}

type St<R> = State<Arc<Ipam<R>>>;

async fn capabilities() -> Response {
    // No MAC needed; no replay needed after a daemon restart: every pool is in the store.
    reply(api::CapabilitiesResponse {
        requires_mac_address: false,
        requires_request_replay: false,
    })
}

async fn address_spaces() -> Response {
    reply(api::AddressSpacesResponse {
        local: LOCAL_SPACE.into(),
        global: GLOBAL_SPACE.into(),
    })
}

async fn request_pool<R: HostRoutes>(
    State(i): St<R>,
    DockerJson(req): DockerJson<api::RequestPoolRequest>,
) -> Result<Response, IpamError> {
    let grant = i.request_pool(req.try_into()?).await?;
    Ok(reply(api::RequestPoolResponse::from(grant)))
}

async fn release_pool<R: HostRoutes>(
    State(i): St<R>,
    DockerJson(req): DockerJson<api::ReleasePoolRequest>,
) -> Result<Response, IpamError> {
    i.release_pool(&req.pool_id).await?;
    Ok(reply(api::Empty {}))
}

async fn request_address<R: HostRoutes>(
    State(i): St<R>,
    DockerJson(req): DockerJson<api::RequestAddressRequest>,
) -> Result<Response, IpamError> {
    let grant = i.request_address(req.try_into()?).await?;
    Ok(reply(api::RequestAddressResponse::from(grant)))
}

async fn release_address<R: HostRoutes>(
    State(i): St<R>,
    DockerJson(req): DockerJson<api::ReleaseAddressRequest>,
) -> Result<Response, IpamError> {
    i.release_address(req.try_into()?).await?;
    Ok(reply(api::Empty {}))
}

async fn pools<R: HostRoutes>(State(i): St<R>, Query(q): Query<api::PoolsQuery>) -> Response {
    reply(i.pools_view(&PoolFilter {
        pool: q.pool,
        limit: q.limit.unwrap_or(1000),
    }))
}

/// dockerd sends plain IPs; a CIDR form is tolerated (its prefix is ignored).
fn plain_addr(s: &str) -> Result<Addr, IpamError> {
    Addr::parse(s.split('/').next().unwrap_or_default()).map_err(IpamError::Invalid)
}

/// `--subnet`: the family asked for, not wider than /8 (v4) or /16 (v6) — a wider pool
/// swallows every default pool and the host's own routes (a /0 would hand out 0.0.0.1) —
/// not narrower than /30 or /127, and outside the special-purpose ranges.
fn subnet(s: &str, v6: bool) -> Result<Prefix, IpamError> {
    let subnet = Prefix::parse(s).map_err(IpamError::Invalid)?;
    if subnet.v6 != v6 {
        let family = if v6 { "IPv6" } else { "IPv4" };
        return Err(IpamError::Invalid(format!(
            "subnet {subnet} is not an {family} subnet"
        )));
    }
    let min = if v6 { 16 } else { 8 };
    if subnet.len < min {
        return Err(IpamError::Invalid(format!(
            "subnet {subnet} is too large: the shortest prefix allowed is /{min}"
        )));
    }
    for r in SPECIAL.iter().filter_map(|r| Prefix::parse(r).ok()) {
        if r.overlaps(&subnet) {
            return Err(IpamError::Invalid(format!(
                "subnet {subnet} lies in the special-purpose range {r} (this host, loopback, \
                 multicast or reserved)"
            )));
        }
    }
    let max = if v6 { 127 } else { 30 };
    if subnet.len > max {
        return Err(IpamError::Invalid(format!(
            "subnet {subnet} is too small: the longest prefix allowed is /{max}"
        )));
    }
    Ok(subnet)
}

impl TryFrom<api::RequestPoolRequest> for PoolRequest {
    type Error = IpamError;

    fn try_from(req: api::RequestPoolRequest) -> Result<Self, IpamError> {
        let space = match req.address_space.as_str() {
            LOCAL_SPACE => Space::Local,
            GLOBAL_SPACE => Space::Global,
            other => {
                return Err(IpamError::UnknownSpace(
                    other.into(),
                    LOCAL_SPACE.into(),
                    GLOBAL_SPACE.into(),
                ))
            }
        };
        let explicit = if req.pool.is_empty() {
            if !req.sub_pool.is_empty() {
                return Err(IpamError::Invalid(format!(
                    "an ip-range ({}) needs a subnet",
                    req.sub_pool
                )));
            }
            None
        } else {
            let subnet = subnet(&req.pool, req.v6)?;
            let range = if req.sub_pool.is_empty() {
                None
            } else {
                let r = Prefix::parse(&req.sub_pool).map_err(IpamError::Invalid)?;
                if !subnet.covers(&r) {
                    return Err(IpamError::Invalid(format!(
                        "ip-range {r} is not inside subnet {subnet}"
                    )));
                }
                Some(r)
            };
            Some((subnet, range))
        };
        Ok(PoolRequest {
            space,
            v6: req.v6,
            explicit,
            options: req.options.unwrap_or_default(),
        })
    }
}

impl From<PoolGrant> for api::RequestPoolResponse {
    fn from(g: PoolGrant) -> Self {
        let mut data = BTreeMap::new();
        data.insert("outboard.pool-id".to_string(), g.id.clone());
        if let Some(r) = g.range {
            data.insert("outboard.ip-range".to_string(), r.to_string());
        }
        data.insert(
            "outboard.from-defaults".to_string(),
            g.from_defaults.to_string(),
        );
        api::RequestPoolResponse {
            pool_id: g.id,
            pool: g.subnet.to_string(),
            data,
        }
    }
}

impl TryFrom<api::RequestAddressRequest> for AddressRequest {
    type Error = IpamError;

    fn try_from(req: api::RequestAddressRequest) -> Result<Self, IpamError> {
        let gateway = req
            .options
            .as_ref()
            .and_then(|o| o.get(ADDRESS_TYPE))
            .is_some_and(|t| t == GATEWAY_TYPE);
        let address = if req.address.is_empty() {
            None
        } else {
            Some(plain_addr(&req.address)?)
        };
        Ok(AddressRequest {
            pool_id: req.pool_id,
            address,
            gateway,
        })
    }
}

impl From<AddressGrant> for api::RequestAddressResponse {
    fn from(g: AddressGrant) -> Self {
        let mut data = BTreeMap::new();
        data.insert("outboard.kind".to_string(), g.kind.name().to_string());
        data.insert("outboard.pool-id".to_string(), g.pool_id);
        // CIDR with the pool's prefix length: dockerd makes it the interface's netmask.
        api::RequestAddressResponse {
            address: format!("{}/{}", g.address, g.prefix_len),
            data,
        }
    }
}

impl TryFrom<api::ReleaseAddressRequest> for AddressRelease {
    type Error = IpamError;

    fn try_from(req: api::ReleaseAddressRequest) -> Result<Self, IpamError> {
        Ok(AddressRelease {
            address: plain_addr(&req.address)?,
            pool_id: req.pool_id,
        })
    }
}
