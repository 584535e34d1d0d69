//! The HTTP edge of the bridge driver: every `/NetworkDriver.*` route. Wire requests become
//! [`crate::model`] types here with `TryFrom` (all input validation that needs no state, with
//! [`NetworkError`] as the one error type); the service decides; its result is mapped back to
//! the wire reply. Nothing here touches the store or the kernel.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use common::http::reply;
use common::{ApiError, DockerJson};
use ipnet::IpNet;

use crate::api;
use crate::error::NetworkError;
use crate::model::{
    self, CreatedEndpoint, EndpointInfo, EndpointRef, Joined, NewEndpoint, NewNetwork, PortRequest,
    PortSpec,
};
use crate::naming;
use crate::options;
use crate::service::Service;
use crate::sys::Sys;

/// The `ProgramExternalConnectivity` option that carries the port map.
const OPT_PORTMAP: &str = "com.docker.network.portmap";

type Svc<S> = State<Arc<Service<S>>>;
type Reply = Result<Response, ApiError>;

/// All routes of the network driver: dockerd's, and the operator's check.
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
        .route("/outboard/v1/check", get(check::<S>))
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
    s.create_network(req.try_into()?).await?;
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
    let created = s.create_endpoint(req.try_into()?).await?;
    Ok(reply(api::CreateEndpointResponse::from(created)))
}

async fn delete_endpoint<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.delete_endpoint(req.into()).await?;
    Ok(reply(api::Empty {}))
}

async fn oper_info<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    let info = s.endpoint_oper_info(req.into()).await?;
    Ok(reply(api::EndpointOperInfoResponse::from(info)))
}

async fn join<S: Sys>(State(s): Svc<S>, DockerJson(req): DockerJson<api::JoinRequest>) -> Reply {
    let joined = s.join(req.into()).await?;
    Ok(reply(api::JoinResponse::from(joined)))
}

async fn leave<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.leave(req.into()).await?;
    Ok(reply(api::Empty {}))
}

async fn program_external<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::ExternalConnectivityRequest>,
) -> Reply {
    s.program_external(req.try_into()?).await?;
    Ok(reply(api::Empty {}))
}

async fn revoke_external<S: Sys>(
    State(s): Svc<S>,
    DockerJson(req): DockerJson<api::EndpointRequest>,
) -> Reply {
    s.revoke_external(req.into()).await?;
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

/// `GET /outboard/v1/check` (`outboard network check`): the stored state against the kernel.
async fn check<S: Sys>(State(s): Svc<S>) -> Reply {
    Ok(reply(s.check().await?))
}

// ----- wire → domain -----

/// A dockerd ID in field `kind`, or the request is refused.
pub(crate) fn check_id(kind: &str, id: &str) -> Result<(), NetworkError> {
    if naming::valid_id(id) {
        Ok(())
    } else {
        Err(NetworkError::InvalidRequest(format!(
            "{kind} {id:?} is not a dockerd ID (12 to 64 alphanumeric characters)"
        )))
    }
}

fn parse_addr(field: &str, s: &str, v6: bool) -> Result<Option<IpNet>, NetworkError> {
    if s.is_empty() {
        return Ok(None);
    }
    let net: IpNet = s.parse().map_err(|_| {
        NetworkError::InvalidRequest(format!(
            "Interface.{field} {s:?} is not an address in CIDR form"
        ))
    })?;
    if matches!(net, IpNet::V6(_)) != v6 {
        return Err(NetworkError::InvalidRequest(format!(
            "Interface.{field} {s:?} has the wrong address family"
        )));
    }
    Ok(Some(net))
}

impl TryFrom<api::CreateNetworkRequest> for NewNetwork {
    type Error = NetworkError;

    fn try_from(req: api::CreateNetworkRequest) -> Result<Self, NetworkError> {
        check_id("NetworkID", &req.network_id)?;
        let spec = options::parse_network(
            req.options.as_ref(),
            req.ipv4_data.as_deref().unwrap_or_default(),
            req.ipv6_data.as_deref().unwrap_or_default(),
        )?;
        Ok(Self {
            id: req.network_id,
            spec,
        })
    }
}

impl TryFrom<api::CreateEndpointRequest> for NewEndpoint {
    type Error = NetworkError;

    fn try_from(req: api::CreateEndpointRequest) -> Result<Self, NetworkError> {
        check_id("EndpointID", &req.endpoint_id)?;
        let iface = req.interface.unwrap_or_default();
        let v4 = parse_addr("Address", &iface.address, false)?;
        let v6 = parse_addr("AddressIPv6", &iface.address_ipv6, true)?;
        let mac = if iface.mac_address.is_empty() {
            None
        } else {
            Some(model::parse_mac(&iface.mac_address).ok_or_else(|| {
                NetworkError::InvalidRequest(format!(
                    "Interface.MacAddress {:?} is not a MAC address",
                    iface.mac_address
                ))
            })?)
        };
        Ok(Self {
            network_id: req.network_id,
            id: req.endpoint_id,
            v4,
            v6,
            mac,
        })
    }
}

impl From<api::EndpointRequest> for EndpointRef {
    fn from(req: api::EndpointRequest) -> Self {
        Self {
            network_id: req.network_id,
            endpoint_id: req.endpoint_id,
        }
    }
}

impl From<api::JoinRequest> for EndpointRef {
    fn from(req: api::JoinRequest) -> Self {
        Self {
            network_id: req.network_id,
            endpoint_id: req.endpoint_id,
        }
    }
}

impl TryFrom<api::ExternalConnectivityRequest> for PortRequest {
    type Error = NetworkError;

    fn try_from(req: api::ExternalConnectivityRequest) -> Result<Self, NetworkError> {
        let bindings: Vec<api::PortBinding> =
            match req.options.as_ref().and_then(|o| o.get(OPT_PORTMAP)) {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                    NetworkError::InvalidRequest(format!("{OPT_PORTMAP} does not decode: {e}"))
                })?,
            };
        Ok(Self {
            endpoint: EndpointRef {
                network_id: req.network_id,
                endpoint_id: req.endpoint_id,
            },
            bindings: bindings.into_iter().map(PortSpec::from).collect(),
        })
    }
}

impl From<api::PortBinding> for PortSpec {
    fn from(b: api::PortBinding) -> Self {
        Self {
            proto: b.proto,
            container_port: b.port,
            host_ip: b.host_ip,
            host_port: b.host_port,
            host_port_end: b.host_port_end,
        }
    }
}

// ----- domain → wire -----

impl From<CreatedEndpoint> for api::CreateEndpointResponse {
    fn from(c: CreatedEndpoint) -> Self {
        Self {
            interface: c.generated_mac.map(|mac| api::EndpointInterface {
                mac_address: mac,
                ..Default::default()
            }),
        }
    }
}

impl From<Joined> for api::JoinResponse {
    fn from(j: Joined) -> Self {
        let ip = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        Self {
            interface_name: api::InterfaceName {
                src_name: j.src_name,
                dst_prefix: j.dst_prefix,
            },
            gateway: ip(j.gateway),
            gateway_ipv6: ip(j.gateway_v6),
            disable_gateway_service: j.disable_gateway_service,
        }
    }
}

impl From<EndpointInfo> for api::EndpointOperInfoResponse {
    fn from(info: EndpointInfo) -> Self {
        let mut value = api::Options::new();
        value.insert("bridge".into(), info.bridge.into());
        value.insert("host_veth".into(), info.host_veth.into());
        value.insert("mac_address".into(), info.mac.into());
        let ports: Vec<serde_json::Value> = info
            .ports
            .iter()
            .map(|p| {
                serde_json::json!({
                    "Proto": p.proto,
                    "HostIP": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    "HostPort": p.host_port,
                    "Port": p.container_port,
                })
            })
            .collect();
        value.insert("published_ports".into(), ports.into());
        Self { value }
    }
}
