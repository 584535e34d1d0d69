//! External connectivity: `ProgramExternalConnectivity` publishes an endpoint's ports (host
//! ports chosen and checked against every other binding), `RevokeExternalConnectivity`
//! unpublishes them; the firewall table carries the DNATs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{short, Service};
use crate::error::NetworkError;
use crate::model::{EndpointRef, PortRequest, PortSpec};
use crate::state::{EndpointState, NetworkState, PublishedPort};
use crate::sys::Sys;

/// Range for host ports the driver picks (`-p 80` without a host port), like dockerd's.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49153..=65535;

impl<S: Sys> Service<S> {
    // ----- external connectivity -----

    /// `ProgramExternalConnectivity`: publish the endpoint's ports.
    pub async fn program_external(&self, req: PortRequest) -> Result<(), NetworkError> {
        let PortRequest {
            endpoint: req,
            bindings,
        } = req;
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let _g = self.net_lock.lock().await;
        let mut ep = self.endpoint(&req.network_id, &req.endpoint_id)?;
        let net = self.network(&req.network_id)?;
        if net.spec.internal || bindings.is_empty() {
            return Ok(());
        }
        let what = "publishing ports (-p)";
        if let Some(reason) = self.firewall_disabled() {
            return Err(NetworkError::FirewallUnavailable {
                what: what.into(),
                reason,
            });
        }
        let ports = self.resolve_ports(&net, &ep, &bindings)?;
        if ports == ep.ports {
            return Ok(());
        }
        let old = std::mem::replace(&mut ep.ports, ports);
        self.endpoints.insert(&ep.id, &ep)?;
        self.store.flush().await?;
        if let Err(e) = self.refresh_firewall().await {
            ep.ports = old;
            self.endpoints.insert(&ep.id, &ep)?;
            self.store.flush().await?;
            let _ = self.refresh_firewall().await;
            return Err(NetworkError::FirewallUnavailable {
                what: what.into(),
                reason: e.to_string(),
            });
        }
        Ok(())
    }

    /// Choose host ports and check them against every other published port. A binding is
    /// IPv4 or IPv6 by its host address (`0.0.0.0`/empty: every IPv4 address, `::`: every IPv6
    /// address) and is published to the endpoint's address of that family; two bindings clash
    /// when protocol, port and family match and either is on every address or both on the same.
    fn resolve_ports(
        &self,
        net: &NetworkState,
        ep: &EndpointState,
        bindings: &[PortSpec],
    ) -> Result<Vec<PublishedPort>, NetworkError> {
        type Taken = BTreeMap<(u8, u16, bool), Vec<(Option<IpAddr>, String)>>;
        let mut taken: Taken = BTreeMap::new();
        for r in self.endpoints.iter() {
            let (_, e) = r?;
            if e.id == ep.id {
                continue;
            }
            for p in &e.ports {
                taken
                    .entry((p.proto, p.host_port, p.v6))
                    .or_default()
                    .push((p.host_ip, e.id.clone()));
            }
        }
        let clash = |taken: &Taken, proto: u8, port: u16, v6: bool, ip: Option<IpAddr>| {
            taken.get(&(proto, port, v6)).and_then(|v| {
                v.iter()
                    .find(|(other, _)| other.is_none() || ip.is_none() || *other == ip)
                    .map(|(_, e)| e.clone())
            })
        };
        let has_v4 = matches!(ep.v4, Some(IpNet::V4(_)));
        let has_v6 = matches!(ep.v6, Some(IpNet::V6(_)));
        let mut out = Vec::new();
        for b in bindings {
            let proto_name = match b.proto {
                6 => "tcp",
                17 => "udp",
                132 => "sctp",
                other => {
                    return Err(NetworkError::InvalidRequest(format!(
                        "published port with protocol number {other}: only tcp, udp and sctp"
                    )))
                }
            };
            if b.container_port == 0 {
                return Err(NetworkError::InvalidRequest(format!(
                    "published port {proto_name}/0: the container port must be 1-65535"
                )));
            }
            let given = if b.host_ip.is_empty() {
                net.spec.host_ip
            } else {
                Some(b.host_ip.parse::<IpAddr>().map_err(|_| {
                    NetworkError::InvalidRequest(format!(
                        "published port host IP {:?} is not an IP address",
                        b.host_ip
                    ))
                })?)
            };
            let (v6, host_ip) = match given {
                None => (false, None),
                Some(ip) => (ip.is_ipv6(), Some(ip).filter(|ip| !ip.is_unspecified())),
            };
            if v6 && !has_v6 {
                // `::` beside an IPv4 binding of the same port (dockerd 26 sends both for
                // `-p 8080:80`): on an endpoint without IPv6 the IPv4 binding publishes it.
                let paired = host_ip.is_none()
                    && bindings.iter().any(|o| {
                        o.proto == b.proto
                            && o.container_port == b.container_port
                            && !o.host_ip.contains(':')
                    });
                if paired {
                    continue;
                }
                return Err(NetworkError::InvalidRequest(format!(
                    "publishing {proto_name}/{} on the IPv6 address {} needs an IPv6 address on \
                     the endpoint (create the network with --ipv6)",
                    b.container_port,
                    host_ip
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "::".into())
                )));
            }
            if !v6 && !has_v4 {
                return Err(NetworkError::InvalidRequest(format!(
                    "publishing {proto_name}/{} on IPv4 needs an IPv4 address on the endpoint",
                    b.container_port
                )));
            }
            let range: Vec<u16> = if b.host_port == 0 {
                EPHEMERAL.collect()
            } else if b.host_port_end > b.host_port {
                (b.host_port..=b.host_port_end).collect()
            } else {
                vec![b.host_port]
            };
            let mut chosen = None;
            let mut holder = None;
            for port in range {
                let in_batch = out.iter().any(|p: &PublishedPort| {
                    p.proto == b.proto
                        && p.host_port == port
                        && p.v6 == v6
                        && (p.host_ip.is_none() || host_ip.is_none() || p.host_ip == host_ip)
                });
                match clash(&taken, b.proto, port, v6, host_ip) {
                    None if !in_batch => {
                        chosen = Some(port);
                        break;
                    }
                    Some(e) => holder = Some(e),
                    None => {}
                }
            }
            let Some(port) = chosen else {
                return Err(NetworkError::Conflict(format!(
                    "host port {proto_name}/{} is already published{}",
                    b.host_port,
                    holder
                        .map(|e| format!(" by endpoint {}", short(&e)))
                        .unwrap_or_default()
                )));
            };
            out.push(PublishedPort {
                proto: b.proto,
                host_ip,
                v6,
                host_port: port,
                container_port: b.container_port,
            });
        }
        Ok(out)
    }

    /// `RevokeExternalConnectivity`: unpublish the endpoint's ports.
    pub async fn revoke_external(&self, req: EndpointRef) -> Result<(), NetworkError> {
        let _ep = self.ep_lock(&req.endpoint_id).await;
        let _g = self.net_lock.lock().await;
        let Some(mut ep) = self.endpoints.get(&req.endpoint_id)? else {
            return Ok(());
        };
        if ep.ports.is_empty() {
            return Ok(());
        }
        ep.ports.clear();
        self.endpoints.insert(&ep.id, &ep)?;
        self.store.flush().await?;
        self.refresh_firewall().await
    }
}
