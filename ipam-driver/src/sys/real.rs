//! The real [`HostRoutes`]: dumps the main routing table of the plugin's network namespace
//! (the host's: the plugin runs with `network: host`) over rtnetlink, like dockerd's own
//! overlap check (`netutils.FindAvailableNetwork`) does with netlink.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::RouteMessageBuilder;

use crate::addr::{Addr, Prefix};
use crate::sys::HostRoutes;

/// Host routes read with rtnetlink (a fresh netlink socket per call: calls are rare).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetlinkRoutes;

fn main_table(msg: &RouteMessage) -> bool {
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    table == u32::from(RouteHeader::RT_TABLE_MAIN)
}

fn destination(msg: &RouteMessage) -> Option<Prefix> {
    let len = msg.header.destination_prefix_length;
    if len == 0 {
        return None; // default route: overlaps everything, as in dockerd's check
    }
    msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
            let a = Addr::from(std::net::IpAddr::V4(*ip));
            Prefix::new(false, a.n, len).ok()
        }
        RouteAttribute::Destination(RouteAddress::Inet6(ip)) => {
            let a = Addr::from(std::net::IpAddr::V6(*ip));
            Prefix::new(true, a.n, len).ok()
        }
        _ => None,
    })
}

async fn dump() -> Result<Vec<Prefix>, String> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("netlink socket: {e}"))?;
    let task = tokio::spawn(conn);
    let mut out = Vec::new();
    let requests = [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ];
    let mut result = Ok(());
    for req in requests {
        let mut stream = handle.route().get(req).execute();
        loop {
            match stream.try_next().await {
                Ok(Some(msg)) => {
                    if main_table(&msg) {
                        out.extend(destination(&msg));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    result = Err(format!("route dump: {e}"));
                    break;
                }
            }
        }
    }
    task.abort();
    result.map(|()| out)
}

impl HostRoutes for NetlinkRoutes {
    fn routes(&self) -> impl Future<Output = Result<Vec<Prefix>, String>> + Send {
        dump()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs no privilege: any process may dump routes. The loopback network always has a
    /// route in the local table, which must not be reported (main table only).
    #[tokio::test]
    async fn dumps_main_table_routes() {
        let routes = NetlinkRoutes.routes().await.unwrap();
        assert!(routes.iter().all(|r| r.len > 0));
        assert!(
            !routes.iter().any(|r| r.to_string() == "127.0.0.0/8"),
            "{routes:?}"
        );
    }
}
