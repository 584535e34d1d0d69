//! Outboard IPAM plugin (`IpamDriver`, `docker.ipamdriver/1.0`): durable address pools and
//! addresses that are never handed out twice, survive every crash, and are visible on
//! `GET /outboard/v1/pools`.
//!
//! The request path: `handlers` (wire → `model` with `TryFrom`, all stateless validation) →
//! `service` (the decisions; pools, defaults, addresses, the operator view) → `alloc` (one
//! pool's held set) and `store` (typed persistence in common's durable store). `api` holds the
//! wire types only, `options` the `--ipam-opt` parser, `config` the settings, `sys` the one OS
//! seam (host routes; real over rtnetlink, fake for tests), `addr` numbers for addresses.

pub mod addr;
pub mod alloc;
pub mod api;
pub mod config;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod model;
pub mod options;
pub mod service;
pub mod store;
pub mod sys;

use std::sync::Arc;

pub use config::Config;
pub use error::IpamError;
pub use handlers::router;
pub use service::Ipam;

/// The plugin: the IPAM service with real host routes.
pub struct Plugin {
    ipam: Arc<Ipam<sys::NetlinkRoutes>>,
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
        let ipam = Ipam::new(settings, store, sys::NetlinkRoutes)?;
        Ok(Self {
            ipam: Arc::new(ipam),
        })
    }

    fn router(self: Arc<Self>) -> axum::Router {
        router(self.ipam.clone())
    }

    async fn metrics(&self, w: &mut common::metrics::MetricsText) {
        let view = self.ipam.pools_view(&model::PoolFilter {
            pool: None,
            limit: 0,
        });
        metrics::render(&view, w);
    }
}

#[cfg(test)]
mod handlers_tests;
