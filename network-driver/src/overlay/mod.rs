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
//! Layout: [`model`] records and input decoding, [`service`] the logic, [`sys`] the host side.

pub mod model;
pub mod service;
pub mod sys;

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use common::http::reply;
use common::{ApiError, DockerJson};
use serde::{Deserialize, Serialize};

use crate::api;
use service::{Overlay, Settings};
use sys::{OverlayNetlink, OverlaySys};

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

type Svc<S> = State<Arc<Overlay<S>>>;
type Reply = Result<Response, ApiError>;

/// All routes of the overlay driver.
pub fn router<S: OverlaySys>(service: Arc<Overlay<S>>) -> axum::Router {
    axum::Router::new()
        .route("/NetworkDriver.GetCapabilities", post(capabilities))
        .route("/NetworkDriver.AllocateNetwork", post(allocate::<S>))
        .route("/NetworkDriver.FreeNetwork", post(free::<S>))
        .route("/NetworkDriver.DiscoverNew", post(discover_new::<S>))
        .route("/NetworkDriver.DiscoverDelete", post(discover_delete::<S>))
        .route("/NetworkDriver.CreateNetwork", post(create_network::<S>))
        .route("/NetworkDriver.DeleteNetwork", post(delete_network::<S>))
        .route("/NetworkDriver.CreateEndpoint", post(create_endpoint::<S>))
        .route("/NetworkDriver.DeleteEndpoint", post(delete_endpoint::<S>))
        .route("/NetworkDriver.EndpointOperInfo", post(oper_info::<S>))
        .route("/NetworkDriver.Join", post(join::<S>))
        .route("/NetworkDriver.Leave", post(nothing))
        .route("/NetworkDriver.ProgramExternalConnectivity", post(nothing))
        .route("/NetworkDriver.RevokeExternalConnectivity", post(nothing))
        .with_state(service)
}

async fn capabilities() -> Response {
    reply(api::CapabilitiesResponse {
        scope: "global".into(),
        connectivity_scope: "global".into(),
    })
}

/// Calls with nothing to do here (ports are not published on an overlay).
async fn nothing(DockerJson(_r): DockerJson<serde_json::Value>) -> Response {
    reply(api::Empty {})
}

async fn allocate<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::CreateNetworkRequest>,
) -> Reply {
    Ok(reply(s.allocate(r).await?))
}

async fn free<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::NetworkRequest>,
) -> Reply {
    s.free(&r.network_id).await?;
    Ok(reply(api::Empty {}))
}

async fn discover_new<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::DiscoveryRequest>,
) -> Reply {
    s.discover_new(r).await?;
    Ok(reply(api::Empty {}))
}

async fn discover_delete<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::DiscoveryRequest>,
) -> Reply {
    s.discover_delete(r).await?;
    Ok(reply(api::Empty {}))
}

async fn create_network<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::CreateNetworkRequest>,
) -> Reply {
    s.create_network(r).await?;
    Ok(reply(api::Empty {}))
}

async fn delete_network<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::NetworkRequest>,
) -> Reply {
    s.delete_network(&r.network_id).await?;
    Ok(reply(api::Empty {}))
}

async fn create_endpoint<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::CreateEndpointRequest>,
) -> Reply {
    Ok(reply(s.create_endpoint(r).await?))
}

async fn delete_endpoint<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.delete_endpoint(r).await?;
    Ok(reply(api::Empty {}))
}

async fn oper_info<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::EndpointRequest>,
) -> Reply {
    Ok(reply(s.oper_info(r).await?))
}

async fn join<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::JoinRequest>,
) -> Reply {
    Ok(reply(s.join(r).await?))
}

#[cfg(test)]
mod tests;
