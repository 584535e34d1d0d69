//! The overlay's effects on the host: bridges and veths (through the bridge mode's [`Sys`]),
//! VXLAN devices and head-end replication FDB entries (rtnetlink, never a command).

use std::future::Future;
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

use crate::sys::real::NetlinkSys;
use crate::sys::{BridgeSpec, Link, Sys, SysError, VethSpec};

/// A VXLAN device to create, enslaved to `bridge` and up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Device name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// Local underlay address (`None`: the kernel picks by route).
    pub local: Option<Ipv4Addr>,
    /// MTU (the underlay's minus the encapsulation).
    pub mtu: u32,
    /// The bridge it joins.
    pub bridge: String,
    /// Ownership tag (interface alias).
    pub alias: String,
}

/// What the overlay does to the host.
pub trait OverlaySys: Send + Sync + 'static {
    /// All links.
    fn links(&self) -> impl Future<Output = Result<Vec<Link>, SysError>> + Send;
    /// A bridge without addresses, up.
    fn bridge(
        &self,
        name: &str,
        mtu: u32,
        alias: &str,
    ) -> impl Future<Output = Result<(), SysError>> + Send;
    /// A VXLAN device on a bridge, up.
    fn vxlan(&self, spec: &VxlanSpec) -> impl Future<Output = Result<(), SysError>> + Send;
    /// A veth pair, host end on the bridge.
    fn veth(&self, spec: &VethSpec) -> impl Future<Output = Result<(), SysError>> + Send;
    /// Enslave and raise.
    fn attach(&self, link: &str, bridge: &str)
        -> impl Future<Output = Result<(), SysError>> + Send;
    /// Delete a link (`false`: it was not there).
    fn delete(&self, name: &str) -> impl Future<Output = Result<bool, SysError>> + Send;
    /// Add the all-zero FDB entry toward `peer` on `dev` (present already: fine).
    fn fdb_add(
        &self,
        dev: &str,
        peer: Ipv4Addr,
    ) -> impl Future<Output = Result<(), SysError>> + Send;
    /// Remove that entry (absent: fine).
    fn fdb_del(
        &self,
        dev: &str,
        peer: Ipv4Addr,
    ) -> impl Future<Output = Result<(), SysError>> + Send;
}

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

/// In-memory host for unit tests: links by name, FDB entries per device, a call log.
#[cfg(test)]
pub mod fake {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug, Default)]
    struct St {
        links: BTreeMap<String, Link>,
        fdb: BTreeSet<(String, Ipv4Addr)>,
        next: u32,
    }

    /// The fake host (clones share state).
    #[derive(Debug, Clone, Default)]
    pub struct FakeOverlay {
        st: Arc<Mutex<St>>,
    }

    impl FakeOverlay {
        fn with<R>(&self, f: impl FnOnce(&mut St) -> R) -> R {
            let mut g = match self.st.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            f(&mut g)
        }
        fn add(
            &self,
            name: &str,
            kind: &str,
            alias: &str,
            controller: Option<&str>,
        ) -> Result<(), SysError> {
            self.with(|s| {
                if s.links.contains_key(name) {
                    return Err(SysError::from_errno(libc::EEXIST));
                }
                let ctl = match controller {
                    Some(c) => Some(
                        s.links
                            .get(c)
                            .map(|l| l.index)
                            .ok_or_else(|| SysError::from_errno(libc::ENODEV))?,
                    ),
                    None => None,
                };
                s.next += 1;
                let l = Link {
                    index: s.next,
                    name: name.into(),
                    kind: Some(kind.into()),
                    alias: Some(alias.into()),
                    controller: ctl,
                    mtu: 1450,
                    up: true,
                };
                s.links.insert(name.into(), l);
                Ok(())
            })
        }
        /// Link names present.
        pub fn names(&self) -> Vec<String> {
            self.with(|s| s.links.keys().cloned().collect())
        }
        /// FDB entries present.
        pub fn fdb(&self) -> Vec<(String, Ipv4Addr)> {
            self.with(|s| s.fdb.iter().cloned().collect())
        }
        /// Remove a link behind the driver's back.
        pub fn vanish(&self, name: &str) {
            self.with(|s| {
                s.links.remove(name);
                s.fdb.retain(|(d, _)| d != name);
            })
        }
    }

    impl OverlaySys for FakeOverlay {
        async fn links(&self) -> Result<Vec<Link>, SysError> {
            Ok(self.with(|s| s.links.values().cloned().collect()))
        }
        async fn bridge(&self, name: &str, _mtu: u32, alias: &str) -> Result<(), SysError> {
            self.add(name, "bridge", alias, None)
        }
        async fn vxlan(&self, spec: &VxlanSpec) -> Result<(), SysError> {
            self.add(&spec.name, "vxlan", &spec.alias, Some(&spec.bridge))
        }
        async fn veth(&self, spec: &VethSpec) -> Result<(), SysError> {
            self.add(&spec.host, "veth", &spec.alias, Some(&spec.bridge))?;
            self.add(&spec.peer, "veth", "", None)
        }
        async fn attach(&self, link: &str, bridge: &str) -> Result<(), SysError> {
            self.with(|s| {
                let b = s
                    .links
                    .get(bridge)
                    .map(|l| l.index)
                    .ok_or_else(|| SysError::from_errno(libc::ENODEV))?;
                let l = s
                    .links
                    .get_mut(link)
                    .ok_or_else(|| SysError::from_errno(libc::ENODEV))?;
                l.controller = Some(b);
                Ok(())
            })
        }
        async fn delete(&self, name: &str) -> Result<bool, SysError> {
            Ok(self.with(|s| {
                s.fdb.retain(|(d, _)| d != name);
                if let Some(rest) = name.strip_prefix("oxh") {
                    s.links.remove(&format!("oxc{rest}"));
                }
                s.links.remove(name).is_some()
            }))
        }
        async fn fdb_add(&self, dev: &str, peer: Ipv4Addr) -> Result<(), SysError> {
            self.with(|s| {
                if !s.links.contains_key(dev) {
                    return Err(SysError::from_errno(libc::ENODEV));
                }
                s.fdb.insert((dev.into(), peer));
                Ok(())
            })
        }
        async fn fdb_del(&self, dev: &str, peer: Ipv4Addr) -> Result<(), SysError> {
            self.with(|s| {
                s.fdb.remove(&(dev.to_string(), peer));
                Ok(())
            })
        }
    }
}
