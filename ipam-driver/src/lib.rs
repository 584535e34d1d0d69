//! Outboard IPAM plugin (`IpamDriver`, `docker.ipamdriver/1.0`): durable address pools and
//! addresses that are never handed out twice, survive every crash, and are visible on
//! `GET /outboard/v1/pools`.
//!
//! Modules: `api` (wire types), `service` (the decisions), `alloc` (one pool's held set),
//! `options` (`--ipam-opt`), `config` (settings), `store` (typed persistence), `sys`/`netlink`
//! (host routes), `addr` (numbers for addresses), `error`. This file only wires them and holds
//! the HTTP handlers, which translate and nothing else.

pub mod addr;
pub mod alloc;
pub mod api;
pub mod config;
pub mod error;
pub mod netlink;
pub mod options;
pub mod service;
pub mod store;
pub mod sys;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use common::http::reply;
use common::DockerJson;

pub use config::Config;
pub use error::IpamError;
pub use service::Ipam;

use crate::sys::HostRoutes;

/// The plugin: the IPAM service with real host routes.
pub struct Plugin {
    ipam: Arc<Ipam<netlink::NetlinkRoutes>>,
}

/// Validate the settings into the service's form.
pub fn settings(c: &Config) -> Result<service::Settings, common::ConfigError> {
    Ok(service::Settings {
        local_defaults: config::parse_default_pools("DEFAULT_POOLS", &c.default_pools)?,
        global_defaults: config::parse_default_pools(
            "GLOBAL_DEFAULT_POOLS",
            &c.global_default_pools,
        )?,
        avoid_host_routes: c.avoid_host_routes,
    })
}

impl common::Plugin for Plugin {
    const NAME: &'static str = "outboard-ipam";
    const IMPLEMENTS: &'static [&'static str] = &["IpamDriver"];
    type Config = Config;

    fn new(ctx: common::Context<Config>) -> Result<Self, common::BoxError> {
        let settings = settings(&ctx.config)?;
        let store = store::IpamStore::open(ctx.store)?;
        let ipam = Ipam::new(settings, store, netlink::NetlinkRoutes)?;
        Ok(Self {
            ipam: Arc::new(ipam),
        })
    }

    fn router(self: Arc<Self>) -> axum::Router {
        router(self.ipam.clone())
    }
}

/// Every route of the plugin.
pub fn router<R: HostRoutes>(ipam: Arc<Ipam<R>>) -> axum::Router {
    axum::Router::new()
        .route("/IpamDriver.GetCapabilities", post(capabilities::<R>))
        .route(
            "/IpamDriver.GetDefaultAddressSpaces",
            post(address_spaces::<R>),
        )
        .route("/IpamDriver.RequestPool", post(request_pool::<R>))
        .route("/IpamDriver.ReleasePool", post(release_pool::<R>))
        .route("/IpamDriver.RequestAddress", post(request_address::<R>))
        .route("/IpamDriver.ReleaseAddress", post(release_address::<R>))
        .route("/outboard/v1/pools", get(pools::<R>))
        .with_state(ipam)
}

type St<R> = State<Arc<Ipam<R>>>;

async fn capabilities<R: HostRoutes>(State(i): St<R>) -> Response {
    reply(i.capabilities())
}

async fn address_spaces<R: HostRoutes>(State(i): St<R>) -> Response {
    reply(i.address_spaces())
}

async fn request_pool<R: HostRoutes>(
    State(i): St<R>,
    DockerJson(req): DockerJson<api::RequestPoolRequest>,
) -> Result<Response, IpamError> {
    Ok(reply(i.request_pool(req).await?))
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
    Ok(reply(i.request_address(req).await?))
}

async fn release_address<R: HostRoutes>(
    State(i): St<R>,
    DockerJson(req): DockerJson<api::ReleaseAddressRequest>,
) -> Result<Response, IpamError> {
    i.release_address(req).await?;
    Ok(reply(api::Empty {}))
}

async fn pools<R: HostRoutes>(State(i): St<R>, Query(q): Query<api::PoolsQuery>) -> Response {
    reply(i.pools_view(&q))
}

#[cfg(test)]
mod tests;
