//! The real overlay host: the bridge mode's [`NetlinkSys`] for bridges, veths and deletion,
//! plus its own rtnetlink connection for VXLAN devices and FDB entries. Never runs a command.

use std::net::Ipv4Addr;

use futures::StreamExt;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkUnspec, LinkVxlan};

use super::{OverlaySys, VxlanSpec};
use crate::sys::real::NetlinkSys;
use crate::sys::{BridgeSpec, Link, Sys, SysError, VethSpec};

/// The real host: the bridge mode's netlink side plus a connection for VXLAN and FDB.
#[derive(Clone, Debug)]
pub struct OverlayNetlink {
    base: NetlinkSys,
    handle: rtnetlink::Handle,
}

fn map_err(e: rtnetlink::Error) -> SysError {
    match e {
        rtnetlink::Error::NetlinkError(m) => match m.code {
            Some(code) => SysError::from_errno(-code.get()),
            None => SysError::Other(m.to_string()),
        },
        other => SysError::Other(other.to_string()),
    }
}

impl OverlayNetlink {
    /// Open the rtnetlink connections (their tasks run on the current runtime).
    pub fn new() -> Result<Self, SysError> {
        let base = NetlinkSys::new()?;
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| SysError::Other(format!("rtnetlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Self { base, handle })
    }

    async fn index_of(&self, name: &str) -> Result<u32, SysError> {
        self.base
            .link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| SysError::from_errno(libc::ENODEV))
    }

    async fn fdb(&self, dev: &str, peer: Ipv4Addr, add: bool) -> Result<(), SysError> {
        let index = self.index_of(dev).await?;
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = index;
        m.header.state = NeighbourState::Permanent;
        m.header.flags = NeighbourFlags::Own;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                peer,
            )));
        let mut req = NetlinkMessage::from(if add {
            RouteNetlinkMessage::NewNeighbour(m)
        } else {
            RouteNetlinkMessage::DelNeighbour(m)
        });
        req.header.flags = if add {
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        };
        let mut h = self.handle.clone();
        let mut resp = h.request(req).map_err(map_err)?;
        while let Some(msg) = resp.next().await {
            if let NetlinkPayload::Error(e) = msg.payload {
                if e.code.is_none() {
                    continue;
                }
                let err = map_err(rtnetlink::Error::NetlinkError(e));
                let benign = if add { libc::EEXIST } else { libc::ENOENT };
                if err.errno() == Some(benign) {
                    return Ok(());
                }
                return Err(err);
            }
        }
        Ok(())
    }
}

impl OverlaySys for OverlayNetlink {
    async fn links(&self) -> Result<Vec<Link>, SysError> {
        self.base.list_links().await
    }

    async fn bridge(&self, name: &str, mtu: u32, alias: &str) -> Result<(), SysError> {
        self.base
            .create_bridge(&BridgeSpec {
                tmp_name: name.to_string(),
                name: name.to_string(),
                mtu,
                alias: alias.to_string(),
                nf_call_iptables: false,
            })
            .await
    }

    async fn vxlan(&self, spec: &VxlanSpec) -> Result<(), SysError> {
        let bridge = self.index_of(&spec.bridge).await?;
        let mut b = LinkVxlan::new(&spec.name, spec.vni)
            .port(spec.port)
            .learning(true)
            .mtu(spec.mtu);
        if let Some(l) = spec.local {
            b = b.local(l);
        }
        self.handle
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(map_err)?;
        let index = self.index_of(&spec.name).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .alias(spec.alias.clone())
                    .controller(bridge)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(map_err)
    }

    async fn veth(&self, spec: &VethSpec) -> Result<(), SysError> {
        self.base.create_veth(spec).await
    }

    async fn attach(&self, link: &str, bridge: &str) -> Result<(), SysError> {
        self.base.attach(link, bridge).await
    }

    async fn delete(&self, name: &str) -> Result<bool, SysError> {
        self.base.delete_link(name).await
    }

    async fn fdb_add(&self, dev: &str, peer: Ipv4Addr) -> Result<(), SysError> {
        self.fdb(dev, peer, true).await
    }

    async fn fdb_del(&self, dev: &str, peer: Ipv4Addr) -> Result<(), SysError> {
        self.fdb(dev, peer, false).await
    }
}
