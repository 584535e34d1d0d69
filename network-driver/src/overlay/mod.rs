//! `outboard-overlay`: the global-scope (swarm) mode of the network driver — a VXLAN overlay
//! between swarm nodes, built over netlink like the bridge mode.
//!
//! Why a second plugin name rather than one plugin answering both scopes: dockerd asks a
//! driver's capabilities once and applies its scope to every network of that driver; a
//! global-scope driver's networks exist only on a swarm manager, so one name could not also
//! serve plain `docker network create` bridges on a single host. The bridge mode stays
//! `outboard-network` (local), untouched; both modes share this crate's wire types, naming
//! rules and netlink code.
//!
//! Layout: [`handlers`] the HTTP edge (wire → [`model`] with `TryFrom`, results back to the
//! wire), [`model`] records and validated requests, [`options`] decoding and validation of the
//! wire input, [`service`] the logic, [`sys`] the host side. This module holds the settings
//! and the plugin wiring.

pub mod handlers;
pub mod model;
pub mod options;
pub mod service;
pub mod sys;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use handlers::router;
use service::{Overlay, Settings};
use sys::OverlayNetlink;

/// Settings of the overlay plugin (env names are the upper-cased field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `VXLAN_PORT`: UDP port of networks created without `-o vxlan_port` (read on the
    /// manager; every node uses the port the manager chose). Never 4789 (Docker's overlay).
    pub vxlan_port: u16,
    /// `UNDERLAY_MTU`: MTU of the nodes' underlay; overlays default to it minus 50.
    pub underlay_mtu: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            vxlan_port: 4790,
            underlay_mtu: 1500,
        }
    }
}

/// The plugin.
pub struct Plugin {
    service: Arc<Overlay<OverlayNetlink>>,
}

impl common::Plugin for Plugin {
    const NAME: &'static str = "outboard-overlay";
    const IMPLEMENTS: &'static [&'static str] = &["NetworkDriver"];
    type Config = Config;

    fn new(ctx: common::Context<Config>) -> Result<Self, common::BoxError> {
        let c = ctx.config;
        if c.vxlan_port == 0 || c.vxlan_port == 4789 {
            return Err(format!(
                "VXLAN_PORT={} is not usable (4789 is Docker's own overlay)",
                c.vxlan_port
            )
            .into());
        }
        if !(626..=9000).contains(&c.underlay_mtu) {
            return Err(format!("UNDERLAY_MTU={} is not 626-9000", c.underlay_mtu).into());
        }
        let settings = Settings {
            vxlan_port: c.vxlan_port,
            underlay_mtu: c.underlay_mtu,
        };
        let service = Overlay::new(OverlayNetlink::new()?, ctx.store, settings)?;
        tracing::info!(instance = %service.tag(), "overlay driver ready");
        Ok(Self {
            service: Arc::new(service),
        })
    }

    fn router(self: Arc<Self>) -> axum::Router {
        router(self.service.clone())
    }

    async fn start(self: Arc<Self>) {
        match self.service.reconcile().await {
            Ok(r) => tracing::info!(
                recreated = r.recreated,
                deleted = r.deleted,
                fdb = r.fdb,
                problems = r.errors.len(),
                "overlay reconciled with the kernel"
            ),
            Err(e) => tracing::error!("overlay reconciliation failed: {e}"),
        }
    }
}

#[cfg(test)]
mod handlers_tests;
