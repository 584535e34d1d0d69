//! The HTTP edge of the overlay driver: every `/NetworkDriver.*` route. Wire requests become
//! [`super::model`] (and [`crate::model`]) types here with `TryFrom`, where all input
//! validation that needs no state happens (with [`super::options`]); the service decides; its result is mapped back to
//! the wire reply. Nothing here touches the store or the kernel.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use common::http::reply;
use common::{ApiError, DockerJson};

use super::model::{
    AllocateRequest, Discovery, NewOverlayEndpoint, NodeNetwork, OverlayEndpointInfo,
};
use super::options;
use super::service::Overlay;
use super::sys::OverlaySys;
use crate::api;
use crate::error::NetworkError;
use crate::handlers::check_id;

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
    let a = s.allocate(r.try_into()?).await?;
    Ok(reply(api::AllocateNetworkResponse {
        options: a.options(),
    }))
}

async fn free<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::NetworkRequest>,
) -> Reply {
    check_id("NetworkID", &r.network_id)?;
    s.free(&r.network_id).await?;
    Ok(reply(api::Empty {}))
}

async fn discover_new<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::DiscoveryRequest>,
) -> Reply {
    s.discover_new(r.try_into()?).await?;
    Ok(reply(api::Empty {}))
}

async fn discover_delete<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::DiscoveryRequest>,
) -> Reply {
    s.discover_delete(r.try_into()?).await?;
    Ok(reply(api::Empty {}))
}

async fn create_network<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::CreateNetworkRequest>,
) -> Reply {
    s.create_network(r.try_into()?).await?;
    Ok(reply(api::Empty {}))
}

async fn delete_network<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::NetworkRequest>,
) -> Reply {
    check_id("NetworkID", &r.network_id)?;
    s.delete_network(&r.network_id).await?;
    Ok(reply(api::Empty {}))
}

async fn create_endpoint<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::CreateEndpointRequest>,
) -> Reply {
    let created = s.create_endpoint(r.try_into()?).await?;
    Ok(reply(api::CreateEndpointResponse::from(created)))
}

async fn delete_endpoint<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.delete_endpoint(r.into()).await?;
    Ok(reply(api::Empty {}))
}

async fn oper_info<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::EndpointRequest>,
) -> Reply {
    let info = s.oper_info(r.into()).await?;
    Ok(reply(api::EndpointOperInfoResponse::from(info)))
}

async fn join<S: OverlaySys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::JoinRequest>,
) -> Reply {
    let joined = s.join(r.into()).await?;
    Ok(reply(api::JoinResponse::from(joined)))
}

// ----- wire → domain -----

impl TryFrom<api::CreateNetworkRequest> for AllocateRequest {
    type Error = NetworkError;

    fn try_from(req: api::CreateNetworkRequest) -> Result<Self, NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        let asked = options::parse_asked(&options::flat_options(req.options.as_ref())?)?;
        if asked.port == Some(4789) {
            return Err(NetworkError::InvalidOption {
                option: "vxlan_port".into(),
                value: "4789".into(),
                reason: "Docker's built-in overlay uses 4789 on every swarm node".into(),
            });
        }
        Ok(Self {
            network_id: req.network_id,
            asked,
        })
    }
}

impl TryFrom<api::CreateNetworkRequest> for NodeNetwork {
    type Error = NetworkError;

    fn try_from(req: api::CreateNetworkRequest) -> Result<Self, NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        let opts = options::flat_options(req.options.as_ref())?;
        let (vni, port, mtu) = options::parse_assigned(&opts)?;
        let internal = matches!(
            req.options
                .as_ref()
                .and_then(|o| o.get("com.docker.network.internal")),
            Some(serde_json::Value::Bool(true))
        );
        Ok(Self {
            id: req.network_id,
            vni,
            port,
            mtu,
            internal,
        })
    }
}

/// Node discovery (1) is handled; encryption keys (2) concern Docker's own overlay only.
impl TryFrom<api::DiscoveryRequest> for Discovery {
    type Error = NetworkError;

    fn try_from(req: api::DiscoveryRequest) -> Result<Self, NetworkError> {
        match req.discovery_type {
            1 => Ok(Self::Node(options::parse_node(&req.discovery_data)?)),
            2 => Ok(Self::EncryptionKeys),
            other => Err(NetworkError::InvalidRequest(format!(
                "DiscoveryType {other} is not a discovery type (1 node, 2 encryption keys)"
            ))),
        }
    }
}

impl TryFrom<api::CreateEndpointRequest> for NewOverlayEndpoint {
    type Error = NetworkError;

    fn try_from(req: api::CreateEndpointRequest) -> Result<Self, NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        check_id("EndpointID", &req.endpoint_id)?;
        let iface = req.interface.unwrap_or_default();
        let v4 = if iface.address.is_empty() {
            None
        } else {
            match iface.address.parse::<ipnet::IpNet>() {
                Ok(ipnet::IpNet::V4(n)) => Some(n.addr()),
                _ => {
                    return Err(NetworkError::InvalidRequest(format!(
                        "Interface.Address {:?} is not an IPv4 address in CIDR form",
                        iface.address
                    )))
                }
            }
        };
        let mac = if iface.mac_address.is_empty() {
            None
        } else {
            Some(crate::model::parse_mac(&iface.mac_address).ok_or_else(|| {
                NetworkError::InvalidRequest(format!(
                    "Interface.MacAddress {:?} is not a MAC",
                    iface.mac_address
                ))
            })?)
        };
        Ok(Self {
            network_id: req.network_id,
            id: req.endpoint_id,
            v4,
            mac,
        })
    }
}

// ----- domain → wire -----

impl From<OverlayEndpointInfo> for api::EndpointOperInfoResponse {
    fn from(info: OverlayEndpointInfo) -> Self {
        let mut value = api::Options::new();
        value.insert("vni".into(), info.vni.into());
        value.insert("vxlan_port".into(), info.vxlan_port.into());
        value.insert("bridge".into(), info.bridge.into());
        value.insert("host_veth".into(), info.host_veth.into());
        value.insert("mac_address".into(), info.mac.into());
        Self { value }
    }
}
