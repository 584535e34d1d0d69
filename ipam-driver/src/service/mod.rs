//! The IPAM service: pools per address space, addresses per pool, default-pool selection and
//! durability. It knows nothing of HTTP: handlers translate requests to calls here.
//!
//! Concurrency: a registry (`RwLock`) maps PoolIDs to pools and indexes pool prefixes per address
//! space; each pool has its own `Mutex`. Lock order is always registry → pool. An allocation
//! plans under the pool lock, writes the batch to the store, applies it in memory, releases the
//! lock and only then awaits the group-commit flush, so concurrent requests share fsyncs while
//! two requests can never plan against the same held set. A reply is sent only after the flush:
//! after a crash, everything acknowledged is on disk, and an address whose release was
//! acknowledged is gone from disk too.

//!
//! Layout: `pool.rs` (pools: geometry, request, release), `defaults.rs` (default-pool choice),
//! `address.rs` (addresses), `view.rs` (the operator's read model). The service takes and
//! returns `model` types only; `handlers.rs` owns the wire.

mod address;
mod defaults;
mod pool;
#[cfg(test)]
mod tests;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::addr::Prefix;
use crate::config::DefaultPool;
use crate::error::IpamError;
use crate::store::IpamStore;
use crate::sys::HostRoutes;

pub use crate::model::{GLOBAL_SPACE, LOCAL_SPACE};
use pool::Pool;

/// Validated settings of the service.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Default pools of the local space.
    pub local_defaults: Vec<DefaultPool>,
    /// Default pools of the global space.
    pub global_defaults: Vec<DefaultPool>,
    /// Skip default-pool candidates overlapping host routes (local space only, like dockerd).
    pub avoid_host_routes: bool,
}

/// (family, first address) → (last address, PoolID) of the pools of one address space.
type SpaceIndex = BTreeMap<(bool, u128), (u128, String)>;

#[derive(Default)]
struct Registry {
    pools: BTreeMap<String, Arc<Mutex<Pool>>>,
    /// Per address space: (family, first address) → (last address, PoolID). Pools of one
    /// space never overlap, which makes the overlap query one range lookup.
    index: HashMap<String, SpaceIndex>,
}

impl Registry {
    fn overlap(&self, space: &str, p: &Prefix) -> Option<(u128, String)> {
        let idx = self.index.get(space)?;
        idx.range(..=(p.v6, p.last()))
            .next_back()
            .filter(|((v6, _), (last, _))| *v6 == p.v6 && *last >= p.first())
            .map(|(_, (last, id))| (*last, id.clone()))
    }
}

/// The IPAM service.
pub struct Ipam<R> {
    settings: Settings,
    store: IpamStore,
    routes: R,
    reg: RwLock<Registry>,
}

impl<R> std::fmt::Debug for Ipam<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipam").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding a pool lock; if one ever did, its state is still the last
    // fully applied change (changes are applied after the store write, in one call).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

impl<R: HostRoutes> Ipam<R> {
    /// Build the service and load every pool from the store (the store is the only truth:
    /// dockerd does not replay, `RequiresRequestReplay` is false).
    pub fn new(settings: Settings, store: IpamStore, routes: R) -> Result<Self, IpamError> {
        let mut reg = Registry::default();
        for sp in store.load()? {
            let stored_runs = sp.runs.clone();
            let pool = Pool::from_stored(sp)?;
            let mut normal: Vec<_> = pool.alloc.runs().collect();
            let mut before = stored_runs;
            before.sort_by_key(|(s, _)| *s);
            if before != normal {
                // A crash interrupted a change: store the united runs so that later changes,
                // planned on memory, address exactly the records on disk.
                tracing::warn!(pool = %pool.record.id, "normalising run records left by a crash");
                normal.sort_by_key(|(s, _)| *s);
                store.rewrite_runs(&pool.record.id, &normal)?;
            }
            let id = pool.record.id.clone();
            if let Some((_, other)) = reg.overlap(&pool.record.space, &pool.subnet) {
                return Err(IpamError::Corrupt(format!(
                    "stored pools {id:?} and {other:?} overlap"
                )));
            }
            reg.index
                .entry(pool.record.space.clone())
                .or_default()
                .insert(
                    (pool.subnet.v6, pool.subnet.first()),
                    (pool.subnet.last(), id.clone()),
                );
            reg.pools.insert(id, Arc::new(Mutex::new(pool)));
        }
        Ok(Self {
            settings,
            store,
            routes,
            reg: RwLock::new(reg),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.reg.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.reg.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn pool(&self, id: &str) -> Result<Arc<Mutex<Pool>>, IpamError> {
        self.read()
            .pools
            .get(id)
            .cloned()
            .ok_or_else(|| IpamError::UnknownPool(id.into()))
    }
}
