//! Outboard network plugin (`NetworkDriver`, `docker.networkdriver/1.0`): a Linux bridge per
//! network and a veth pair per endpoint over rtnetlink, isolation, masquerade and published
//! ports in the plugin's own nftables table (netlink, one transaction per change), durable
//! state and start-up reconciliation.
//!
//! Layout: [`api`] wire types, [`options`] input validation, [`service`] the logic, [`state`] the
//! stored records, [`naming`] link names and ownership tags, [`firewall`] the rules as data,
//! [`sys`] the OS trait with its real and fake sides and the rules' netlink encoding
//! ([`sys::nft`]), [`error`] the one error enum. This module holds the settings, the plugin wiring and the HTTP handlers,
//! which only translate between the wire and the service.

pub mod api;
pub mod error;
pub mod firewall;
pub mod heal;
pub mod naming;
pub mod options;
pub mod overlay;
pub mod service;
pub mod state;
pub mod sys;

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use common::http::reply;
use common::{ApiError, DockerJson};
use serde::{Deserialize, Serialize};

use crate::service::Service;
use crate::sys::real::NetlinkSys;
use crate::sys::Sys;

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
        router(self.service.clone()).merge(service::ops::routes(self.service.clone()))
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

type Svc<S> = State<Arc<Service<S>>>;
type Reply = Result<Response, ApiError>;

/// All routes of the network driver.
pub fn router<S: Sys>(service: Arc<Service<S>>) -> axum::Router {
    axum::Router::new()
        .route("/NetworkDriver.GetCapabilities", post(capabilities))
        .route("/NetworkDriver.CreateNetwork", post(create_network::<S>))
        .route("/NetworkDriver.DeleteNetwork", post(delete_network::<S>))
        .route("/NetworkDriver.CreateEndpoint", post(create_endpoint::<S>))
        .route("/NetworkDriver.DeleteEndpoint", post(delete_endpoint::<S>))
        .route("/NetworkDriver.EndpointOperInfo", post(oper_info::<S>))
        .route("/NetworkDriver.Join", post(join::<S>))
        .route("/NetworkDriver.Leave", post(leave::<S>))
        .route(
            "/NetworkDriver.ProgramExternalConnectivity",
            post(program_external::<S>),
        )
        .route(
            "/NetworkDriver.RevokeExternalConnectivity",
            post(revoke_external::<S>),
        )
        .route("/NetworkDriver.DiscoverNew", post(discover))
        .route("/NetworkDriver.DiscoverDelete", post(discover))
        .route("/NetworkDriver.AllocateNetwork", post(allocate_network))
        .route("/NetworkDriver.FreeNetwork", post(free_network))
        .with_state(service)
}

async fn capabilities() -> Response {
    reply(api::CapabilitiesResponse {
        scope: "local".into(),
        connectivity_scope: "local".into(),
    })
}

async fn create_network<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::CreateNetworkRequest>,
) -> Reply {
    s.create_network(req).await?;
    Ok(reply(api::Empty {}))
}

async fn delete_network<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::NetworkRequest>,
) -> Reply {
    s.delete_network(&req.network_id).await?;
    Ok(reply(api::Empty {}))
}

async fn create_endpoint<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::CreateEndpointRequest>,
) -> Reply {
    Ok(reply(s.create_endpoint(req).await?))
}

async fn delete_endpoint<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.delete_endpoint(req).await?;
    Ok(reply(api::Empty {}))
}

async fn oper_info<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    Ok(reply(s.endpoint_oper_info(req).await?))
}

async fn join<S: Sys>(State(s): Svc<S>, DockerJson(req): DockerJson<api::JoinRequest>) -> Reply {
    Ok(reply(s.join(req).await?))
}

async fn leave<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.leave(req).await?;
    Ok(reply(api::Empty {}))
}

async fn program_external<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::ExternalConnectivityRequest>,
) -> Reply {
    s.program_external(req).await?;
    Ok(reply(api::Empty {}))
}

async fn revoke_external<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.revoke_external(req).await?;
    Ok(reply(api::Empty {}))
}

/// Swarm node discovery: a local driver has nothing to do with it.
async fn discover(DockerJson(_req): DockerJson<api::DiscoveryRequest>) -> Response {
    reply(api::Empty {})
}

/// Swarm network allocation: a local driver hands out no per-node options.
async fn allocate_network(DockerJson(_req): DockerJson<api::CreateNetworkRequest>) -> Response {
    reply(api::AllocateNetworkResponse::default())
}

async fn free_network(DockerJson(_req): DockerJson<api::NetworkRequest>) -> Response {
    reply(api::Empty {})
}

#[cfg(test)]
mod tests;
