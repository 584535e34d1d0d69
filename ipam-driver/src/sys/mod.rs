//! The one OS side effect of the IPAM plugin: reading the host's routes (to keep default
//! pools off prefixes that are already routed, e.g. a VPN). A trait at the level of intent,
//! the real rtnetlink implementation in `real.rs`, and a recording fake in `fake.rs` (compiled
//! only for tests and the `testing` feature, never into the release binary).

#[cfg(any(test, feature = "testing"))]
mod fake;
mod real;

#[cfg(any(test, feature = "testing"))]
pub use fake::FakeRoutes;
pub use real::NetlinkRoutes;

use std::future::Future;

use crate::addr::Prefix;

/// Reads the host's routed prefixes.
pub trait HostRoutes: Send + Sync + 'static {
    /// Destination prefixes of the host's main routing table (both families), without the
    /// default routes.
    fn routes(&self) -> impl Future<Output = Result<Vec<Prefix>, String>> + Send;
}
