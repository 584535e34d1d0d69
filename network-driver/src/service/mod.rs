//! The network driver's logic: networks as bridges, endpoints as veth pairs, published ports
//! and isolation as one nftables table, all recorded in the store before a call is answered,
//! and reconciled with the kernel at start. Knows nothing of HTTP.
//!
//! Ordering rules: kernel objects are made first and recorded second (a crash in between
//! leaves tagged links that reconcile deletes); on any failure what this call made is removed
//! again; the firewall is recomputed from the store after the store changed. Network-level
//! changes and port allocation hold `net_lock`; firewall writes hold `fw_lock` (always in that
//! order). Endpoint create/join take no lock: dockerd never races calls for one endpoint, and
//! their kernel objects are named after the endpoint.
//!
//! Layout: this module holds the service, its locks and the firewall status; `network`
//! networks (bridges), `endpoint` endpoints (veth pairs, join), `ports` external
//! connectivity (published ports), `reconcile` restart safety, `links` link ownership by
//! mark, `ruleset` the firewall table computed from the store and applied, [`ops`] the
//! operator's view. Requests arrive as [`crate::model`] types, already validated by the
//! handlers; results go back as model types too.

use std::sync::RwLock;

use common::{Store, Tree};

use crate::error::NetworkError;
use crate::firewall;
use crate::naming;
use crate::state::{self, EndpointState, NetworkState};
use crate::sys::Sys;

mod endpoint;
mod links;
mod network;
pub mod ops;
mod ports;
mod reconcile;
mod ruleset;

pub use reconcile::ReconcileReport;

/// Start of the firewall status text when the `FIREWALL` setting is off.
const DISABLED: &str = "disabled";

/// Whether the firewall can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallStatus {
    /// Not yet tried (treated as available).
    Unknown,
    /// Applied successfully.
    Available,
    /// Disabled by the `FIREWALL` setting or refused by the kernel (the reason).
    Unavailable(String),
}

/// The driver.
pub struct Service<S: Sys> {
    sys: S,
    store: Store,
    networks: Tree<NetworkState>,
    endpoints: Tree<EndpointState>,
    tag: String,
    net_lock: tokio::sync::Mutex<()>,
    fw_lock: tokio::sync::Mutex<()>,
    /// Endpoint calls hold it shared, reconcile exclusively: reconcile must not see a veth
    /// whose record is still being written (it would take it for a leftover).
    ep_gate: tokio::sync::RwLock<()>,
    /// Striped per-endpoint locks: CreateEndpoint, Join, DeleteEndpoint and the port calls of
    /// one endpoint run one at a time, so a record never outlives its veth or the reverse.
    /// Taken before `net_lock` when both are held.
    ep_locks: Vec<tokio::sync::Mutex<()>>,
    firewall: RwLock<FirewallStatus>,
}

impl<S: Sys> std::fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl<S: Sys> Service<S> {
    /// Open the state and take (or make) the instance tag.
    pub fn new(sys: S, store: Store, firewall_enabled: bool) -> Result<Self, NetworkError> {
        let meta: Tree<String> = store.tree(state::META)?;
        let tag = match meta.get(state::TAG_KEY)? {
            Some(t) => t,
            None => {
                let t = naming::new_tag();
                meta.insert(state::TAG_KEY, &t)?;
                store.flush_blocking()?;
                t
            }
        };
        let firewall = if firewall_enabled {
            FirewallStatus::Unknown
        } else {
            FirewallStatus::Unavailable(format!("{DISABLED} by the plugin setting FIREWALL=false"))
        };
        Ok(Self {
            networks: store.tree(state::NETWORKS)?,
            endpoints: store.tree(state::ENDPOINTS)?,
            store,
            sys,
            tag,
            net_lock: tokio::sync::Mutex::new(()),
            fw_lock: tokio::sync::Mutex::new(()),
            ep_gate: tokio::sync::RwLock::new(()),
            ep_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            firewall: RwLock::new(firewall),
        })
    }

    /// This instance's tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The host effects (for tests).
    pub fn sys(&self) -> &S {
        &self.sys
    }

    /// The lock of endpoint `id` (striped by a hash of the ID).
    async fn ep_lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let i = (h.finish() as usize) % self.ep_locks.len().max(1);
        self.ep_locks[i].lock().await
    }

    /// Current firewall status.
    pub fn firewall_status(&self) -> FirewallStatus {
        match self.firewall.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_firewall_status(&self, s: FirewallStatus) {
        match self.firewall.write() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }

    /// The reason when the firewall is switched off by configuration (then options that need
    /// it are refused up front; a kernel failure is only known by trying).
    fn firewall_disabled(&self) -> Option<String> {
        match self.firewall_status() {
            FirewallStatus::Unavailable(r) if r.starts_with(DISABLED) => Some(r),
            _ => None,
        }
    }

    fn table(&self) -> String {
        firewall::table_name(&self.tag)
    }
}
