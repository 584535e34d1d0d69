//! The overlay's logic. Manager side: `AllocateNetwork` picks a VNI (unique, durable) and the
//! options every node gets; `FreeNetwork` frees it. Node side: a bridge + VXLAN device per
//! network, a veth per endpoint, one all-zero FDB entry per peer (head-end replication; MACs
//! are learnt), peers from node discovery kept in the store (dockerd never replays them).
//! All calls run one at a time (`lock`): they are rare and small.
//!
//! Layout: this module holds the service, its state and the helpers every call uses;
//! `manager` VNI allocation, `discovery` swarm peers, `network` a node's networks
//! (bridge + VXLAN device), `endpoint` its endpoints, `reconcile` restart safety.
//! Requests arrive as model types, validated by the overlay's handlers.

use std::net::Ipv4Addr;

use common::{Store, Tree};

use super::model::{Allocation, OverlayEp, OverlayNet};
use super::sys::OverlaySys;
use crate::error::NetworkError;
use crate::naming;

mod discovery;
mod endpoint;
mod manager;
mod network;
mod reconcile;

pub use reconcile::Report;

const META: &str = "meta";
const TAG_KEY: &str = "instance_tag";
const SELF_KEY: &str = "self_address";
const ALIAS: &str = "outboard-overlay";

/// Settings the service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Default VXLAN UDP port for new networks (never 4789: Docker's overlay holds it).
    pub vxlan_port: u16,
    /// Underlay MTU the default overlay MTU is derived from.
    pub underlay_mtu: u32,
}

/// The overlay driver.
pub struct Overlay<S: OverlaySys> {
    sys: S,
    store: Store,
    meta: Tree<String>,
    alloc: Tree<Allocation>,
    nets: Tree<OverlayNet>,
    eps: Tree<OverlayEp>,
    peers: Tree<String>,
    tag: String,
    settings: Settings,
    lock: tokio::sync::Mutex<()>,
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl<S: OverlaySys> Overlay<S> {
    /// Open the state.
    pub fn new(sys: S, store: Store, settings: Settings) -> Result<Self, NetworkError> {
        let meta: Tree<String> = store.tree(META)?;
        let tag = match meta.get(TAG_KEY)? {
            Some(t) => t,
            None => {
                let t = naming::new_tag();
                meta.insert(TAG_KEY, &t)?;
                store.flush_blocking()?;
                t
            }
        };
        Ok(Self {
            alloc: store.tree("alloc")?,
            nets: store.tree("networks")?,
            eps: store.tree("endpoints")?,
            peers: store.tree("peers")?,
            meta,
            store,
            sys,
            tag,
            settings,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// This instance's tag (in link names and aliases).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The host side (tests).
    pub fn sys(&self) -> &S {
        &self.sys
    }

    pub(super) fn alias(&self, kind: &str, id: &str) -> String {
        format!("{ALIAS} {} {kind} {id}", self.tag)
    }

    /// (kind, id) of a link alias of this instance.
    pub(super) fn owner<'a>(&self, alias: &'a str) -> Option<(&'a str, &'a str)> {
        let mut p = alias.split(' ');
        if p.next()? != ALIAS || p.next()? != self.tag {
            return None;
        }
        Some((p.next()?, p.next()?))
    }

    /// The peers known, sorted.
    pub fn peers(&self) -> Result<Vec<Ipv4Addr>, NetworkError> {
        let mut out = Vec::new();
        for r in self.peers.iter() {
            let (k, _) = r?;
            if let Ok(a) = k.parse() {
                out.push(a);
            }
        }
        out.sort();
        Ok(out)
    }

    pub(super) fn self_addr(&self) -> Result<Option<Ipv4Addr>, NetworkError> {
        Ok(self.meta.get(SELF_KEY)?.and_then(|s| s.parse().ok()))
    }
}
