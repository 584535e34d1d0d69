//! Outboard network plugin (`NetworkDriver`, `docker.networkdriver/1.0`): a Linux bridge per
//! network and a veth pair per endpoint over rtnetlink, isolation, masquerade and published
//! ports in the plugin's own nftables table (netlink, one transaction per change), durable
//! state and start-up reconciliation.
//!
//! Layout: [`api`] wire types, [`handlers`] the HTTP edge (wire → [`model`] with `TryFrom`,
//! the result back to the wire), [`options`] validation of `-o` options and pools, [`service`]
//! the logic, [`state`] the stored records, [`naming`] link names and ownership tags,
//! [`firewall`] the rules as data, [`sys`] the OS trait with its real and fake sides and the
//! rules' netlink encoding ([`sys::nft`]), [`heal`] firewall self-healing, [`error`] the one
//! error enum, [`overlay`] the swarm mode. This module holds the settings and the plugin
//! wiring.

pub mod api;
pub mod error;
pub mod firewall;
pub mod handlers;
pub mod heal;
pub mod model;
pub mod naming;
pub mod options;
pub mod overlay;
pub mod service;
pub mod state;
pub mod sys;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::handlers::router;
use crate::service::Service;
use crate::sys::real::NetlinkSys;

/// Settings of this plugin (env names are the upper-cased field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `FIREWALL`: `true` programs the plugin's nftables table (isolation, masquerade,
    /// published ports); `false` gives plain bridging and refuses options that need the table.
    pub firewall: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { firewall: true }
    }
}

/// The plugin: the service behind the HTTP routes.
pub struct Plugin {
    service: Arc<Service<NetlinkSys>>,
}

impl common::Plugin for Plugin {
    const NAME: &'static str = "outboard-network";
    const IMPLEMENTS: &'static [&'static str] = &["NetworkDriver"];
    type Config = Config;

    fn new(ctx: common::Context<Config>) -> Result<Self, common::BoxError> {
        let sys = NetlinkSys::new()?;
        let service = Service::new(sys, ctx.store, ctx.config.firewall)?;
        tracing::info!(instance = %service.tag(), "network driver ready");
        Ok(Self {
            service: Arc::new(service),
        })
    }

    fn router(self: Arc<Self>) -> axum::Router {
        router(self.service.clone())
    }

    async fn metrics(&self, w: &mut common::metrics::MetricsText) {
        self.service.render_metrics(w);
    }

    async fn start(self: Arc<Self>) {
        heal::spawn(self.service.clone());
        match self.service.reconcile().await {
            Ok(r) => tracing::info!(
                adopted = r.adopted,
                recreated = r.recreated,
                reattached = r.reattached,
                deleted = r.deleted,
                problems = r.errors.len(),
                firewall = ?self.service.firewall_status(),
                "reconciled with the kernel"
            ),
            Err(e) => tracing::error!("reconciliation failed: {e}"),
        }
    }
}

#[cfg(test)]
mod handlers_tests;
