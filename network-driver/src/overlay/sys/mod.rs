//! The overlay's effects on the host: bridges and veths (through the bridge mode's
//! [`crate::sys::Sys`]), VXLAN devices and head-end replication FDB entries (rtnetlink, never a
//! command).
//!
//! Layout as in the bridge mode's `sys`: this module holds the trait, [`real`] the rtnetlink
//! side ([`OverlayNetlink`]), `fake` the in-memory host for tests (never in the release
//! binary).

/// The in-memory host, for tests only.
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod real;

use std::future::Future;
use std::net::Ipv4Addr;

pub use real::OverlayNetlink;

use crate::sys::{Link, SysError, VethSpec};

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
