//! The driver's effects on the host, at the level of intent: bridges, veth pairs, addresses,
//! link deletion and the firewall table. [`Sys`] is implemented by [`real::NetlinkSys`]
//! (rtnetlink and nftables over netlink, never a shell command) and by [`fake::FakeSys`]
//! (records calls, can fail the Nth one) for tests that run without privilege.
//!
//! This module decides nothing: names, order and rollback belong to the service. [`nft`] is
//! the nftables netlink encoding the real side sends.

/// The recording fake, for tests only (never in the release binary).
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod nft;
pub mod real;

use std::future::Future;

use ipnet::IpNet;

use crate::firewall::Ruleset;

/// A kernel (or fake) failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SysError {
    /// The kernel refused with an errno.
    #[error("{message} (errno {errno})")]
    Kernel {
        /// Positive errno.
        errno: i32,
        /// Its description.
        message: String,
    },
    /// Anything else (socket setup, malformed replies, injected failures).
    #[error("{0}")]
    Other(String),
}

impl SysError {
    /// The errno, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            Self::Other(_) => None,
        }
    }

    /// Build from a positive errno.
    pub fn from_errno(errno: i32) -> Self {
        Self::Kernel {
            errno,
            message: std::io::Error::from_raw_os_error(errno).to_string(),
        }
    }
}

/// A network interface as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `bridge`, `veth`, … (`None` for physical links).
    pub kind: Option<String>,
    /// The interface alias (`ifalias`): our ownership tag.
    pub alias: Option<String>,
    /// Index of the bridge this link is enslaved to.
    pub controller: Option<u32>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
}

/// A bridge to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Name to create it under first (carries our instance tag, so a crash before the rename
    /// leaves a link reconcile recognises).
    pub tmp_name: String,
    /// Final name (may equal `tmp_name`).
    pub name: String,
    /// MTU.
    pub mtu: u32,
    /// Ownership tag stored as the interface alias.
    pub alias: String,
    /// Send bridged IPv4 traffic through netfilter (needed to filter container-to-container).
    pub nf_call_iptables: bool,
}

/// A veth pair to create, host end enslaved to `bridge` and up, container end down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// Host end name.
    pub host: String,
    /// Container end name (dockerd moves and renames it).
    pub peer: String,
    /// MTU of both ends.
    pub mtu: u32,
    /// MAC of the container end.
    pub peer_mac: [u8; 6],
    /// Bridge for the host end.
    pub bridge: String,
    /// Ownership tag on the host end.
    pub alias: String,
}

/// The driver's effects on the host. Every operation is idempotent where the name says so.
pub trait Sys: Send + Sync + 'static {
    /// All links in the host namespace.
    fn list_links(&self) -> impl Future<Output = Result<Vec<Link>, SysError>> + Send;
    /// The link named `name`, if any.
    fn link(&self, name: &str) -> impl Future<Output = Result<Option<Link>, SysError>> + Send;
    /// Create a bridge (down under `tmp_name`, then renamed, tagged and set up).
    fn create_bridge(&self, spec: &BridgeSpec)
        -> impl Future<Output = Result<(), SysError>> + Send;
    /// Set an existing link's MTU and bring it up.
    fn ensure_up(&self, name: &str, mtu: u32) -> impl Future<Output = Result<(), SysError>> + Send;
    /// Add an address to a link (present already: fine).
    fn add_address(
        &self,
        link: &str,
        addr: IpNet,
    ) -> impl Future<Output = Result<(), SysError>> + Send;
    /// Create a veth pair as described.
    fn create_veth(&self, spec: &VethSpec) -> impl Future<Output = Result<(), SysError>> + Send;
    /// Enslave `link` to `bridge` and bring it up.
    fn attach(&self, link: &str, bridge: &str)
        -> impl Future<Output = Result<(), SysError>> + Send;
    /// Delete a link; `Ok(false)` when it did not exist.
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<bool, SysError>> + Send;
    /// Replace the driver's firewall table with `rules` in one transaction.
    fn apply_firewall(&self, rules: &Ruleset) -> impl Future<Output = Result<(), SysError>> + Send;
    /// Remove the driver's firewall table (absent: fine).
    fn remove_firewall(&self, table: &str) -> impl Future<Output = Result<(), SysError>> + Send;
    /// Forget what the table was made to hold: the next `apply_firewall` rebuilds it whole
    /// (after the table was changed from outside).
    fn forget_firewall(&self);
}
