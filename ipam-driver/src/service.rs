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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::addr::{to_ip, Addr, Prefix};
use crate::alloc::{AllocError, Allocator, Kind, Layout};
use crate::api;
use crate::config::DefaultPool;
use crate::error::IpamError;
use crate::options::{self, PoolOptions};
use crate::store::{IpamStore, PoolRecord, StoredPool};
use crate::sys::HostRoutes;

/// Name of the local address space (what `GetDefaultAddressSpaces` answers).
pub const LOCAL_SPACE: &str = "OutboardLocal";
/// Name of the global address space.
pub const GLOBAL_SPACE: &str = "OutboardGlobal";
/// The option dockerd sets on the gateway's `RequestAddress`.
const ADDRESS_TYPE: &str = "RequestAddressType";
const GATEWAY_TYPE: &str = "com.docker.network.gateway";
/// A specific address asked for this soon after the pool, before any container address, is
/// taken to be an `--aux-address` (dockerd sends them right after the gateway while it creates
/// the network; it does not say which is which).
const AUX_WINDOW_SECS: i64 = 10;

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

struct Pool {
    record: PoolRecord,
    subnet: Prefix,
    range: Option<Prefix>,
    opts: PoolOptions,
    alloc: Allocator,
    /// Set under the pool lock by `ReleasePool`: a request that found the pool before it was
    /// released must not write to it any more.
    released: bool,
    /// A container address was handed out (ends the aux-address window).
    seen_container: bool,
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

/// Geometry of a pool: usable addresses exclude the network address and (IPv4) broadcast.
fn layout(
    subnet: &Prefix,
    range: Option<&Prefix>,
    reserved: Vec<(u128, u128)>,
) -> Result<Layout, IpamError> {
    let (net, top) = (subnet.first(), subnet.last());
    let first = net + 1;
    let last = if subnet.v6 { top } else { top - 1 };
    let (win_lo, win_hi) = match range {
        Some(r) => (r.first().max(first), r.last().min(last)),
        None => (first, last),
    };
    if win_lo > win_hi {
        return Err(IpamError::Invalid(format!(
            "ip-range {} has no usable address in {subnet}",
            range.map(|r| r.to_string()).unwrap_or_default()
        )));
    }
    Ok(Layout {
        net,
        top,
        first,
        last,
        win_lo,
        win_hi,
        reserved,
    })
}

fn pool_id(space: &str, subnet: &Prefix, range: Option<&Prefix>) -> String {
    match range {
        Some(r) => format!("{space}/{subnet}/{r}"),
        None => format!("{space}/{subnet}"),
    }
}

impl Pool {
    fn from_stored(sp: StoredPool) -> Result<Self, IpamError> {
        let id = sp.record.id.clone();
        let bad = |e: String| IpamError::Corrupt(format!("pool {id:?}: {e}"));
        let subnet = Prefix::parse(&sp.record.pool).map_err(bad)?;
        let range = sp
            .record
            .range
            .as_deref()
            .map(Prefix::parse)
            .transpose()
            .map_err(bad)?;
        let opts = options::parse(&sp.record.options, &subnet).map_err(bad)?;
        let l = layout(&subnet, range.as_ref(), opts.reserved.clone())?;
        let alloc = Allocator::restore(l, opts.order, sp.cursor, sp.runs).map_err(bad)?;
        let seen_container = alloc
            .runs()
            .any(|(_, r)| matches!(r.kind, Kind::Dynamic | Kind::Static));
        Ok(Self {
            record: sp.record,
            subnet,
            range,
            opts,
            alloc,
            released: false,
            seen_container,
        })
    }

    fn ip(&self, n: u128) -> String {
        to_ip(self.subnet.v6, n).to_string()
    }

    fn capacity(&self) -> u128 {
        let l = self.alloc.layout();
        l.last - l.first + 1
    }

    fn alloc_error(&self, e: AllocError) -> IpamError {
        let pool = self.subnet.to_string();
        match e {
            AllocError::Outside(a) => IpamError::Outside {
                addr: self.ip(a),
                pool,
            },
            AllocError::NotUsable(a) => IpamError::NotUsable {
                addr: self.ip(a),
                pool,
            },
            AllocError::InUse(a, kind) => IpamError::InUse {
                addr: self.ip(a),
                pool,
                kind: kind.name(),
            },
            AllocError::Exhausted => IpamError::Exhausted {
                pool,
                range: self
                    .range
                    .map(|r| format!(" (ip-range {r})"))
                    .unwrap_or_default(),
                held: self.alloc.held_count(),
                capacity: self.capacity(),
            },
        }
    }

    fn view(&self, limit: usize) -> api::PoolView {
        let mut by_kind: BTreeMap<String, u128> = BTreeMap::new();
        let mut runs = Vec::new();
        let mut gateway = None;
        for (s, r) in self.alloc.runs() {
            *by_kind.entry(r.kind.name().to_string()).or_default() += r.end - s + 1;
            if r.kind == Kind::Gateway && gateway.is_none() {
                gateway = Some(self.ip(s));
            }
            if runs.len() < limit {
                runs.push(api::RunView {
                    first: self.ip(s),
                    last: self.ip(r.end),
                    count: r.end - s + 1,
                    kind: r.kind.name().to_string(),
                });
            }
        }
        let held = self.alloc.held_count();
        let capacity = self.capacity();
        api::PoolView {
            id: self.record.id.clone(),
            address_space: self.record.space.clone(),
            pool: self.subnet.to_string(),
            ip_range: self.range.map(|r| r.to_string()),
            from_defaults: self.record.from_defaults,
            label: self.opts.label.clone(),
            order: match self.alloc.order() {
                crate::alloc::Order::Serial => "serial".into(),
                crate::alloc::Order::Lowest => "lowest".into(),
            },
            reserved: self
                .opts
                .reserved
                .iter()
                .map(|(s, e)| format!("{}-{}", self.ip(*s), self.ip(*e)))
                .collect(),
            created: rfc3339(self.record.created),
            gateway,
            capacity,
            held,
            held_by_kind: by_kind,
            utilisation_percent: held as f64 * 100.0 / capacity as f64,
            next: self.ip(self.alloc.cursor()),
            runs_truncated: self.alloc.run_count() > runs.len(),
            runs,
        }
    }
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

    /// `GetCapabilities`.
    pub fn capabilities(&self) -> api::CapabilitiesResponse {
        api::CapabilitiesResponse {
            requires_mac_address: false,
            requires_request_replay: false,
        }
    }

    /// `GetDefaultAddressSpaces`.
    pub fn address_spaces(&self) -> api::AddressSpacesResponse {
        api::AddressSpacesResponse {
            local: LOCAL_SPACE.into(),
            global: GLOBAL_SPACE.into(),
        }
    }

    fn defaults(&self, space: &str) -> &[DefaultPool] {
        if space == GLOBAL_SPACE {
            &self.settings.global_defaults
        } else {
            &self.settings.local_defaults
        }
    }

    /// The first default-pool candidate that overlaps neither a pool of `space` nor a route.
    fn pick_default(
        &self,
        reg: &Registry,
        space: &str,
        v6: bool,
        routes: &[Prefix],
    ) -> Option<Prefix> {
        for d in self.defaults(space).iter().filter(|d| d.base.v6 == v6) {
            let step = 1u128 << (u32::from(Prefix::bits(v6) - d.size));
            let mut c = d.base.first();
            // Each turn returns or jumps past one conflicting pool or route: bounded.
            while c <= d.base.last() {
                let cand = Prefix {
                    v6,
                    net: c,
                    len: d.size,
                };
                let conflict = reg.overlap(space, &cand).map(|(last, _)| last).or_else(|| {
                    routes
                        .iter()
                        // A default route would overlap everything; dockerd ignores it too.
                        .filter(|r| r.len > 0 && r.overlaps(&cand))
                        .map(|r| r.last())
                        .max()
                });
                let Some(end) = conflict else {
                    return Some(cand);
                };
                match end.checked_add(step).map(|n| n & !(step - 1)) {
                    Some(n) if n > c => c = n,
                    _ => break,
                }
            }
        }
        None
    }

    /// `RequestPool`: an explicit subnet (refused if it overlaps a pool of the same space) or
    /// the next free default pool.
    pub async fn request_pool(
        &self,
        req: api::RequestPoolRequest,
    ) -> Result<api::RequestPoolResponse, IpamError> {
        let space = req.address_space.as_str();
        if space != LOCAL_SPACE && space != GLOBAL_SPACE {
            return Err(IpamError::UnknownSpace(
                space.into(),
                LOCAL_SPACE.into(),
                GLOBAL_SPACE.into(),
            ));
        }
        let family = if req.v6 { "IPv6" } else { "IPv4" };
        let opts_map = req.options.clone().unwrap_or_default();
        let explicit = if req.pool.is_empty() {
            if !req.sub_pool.is_empty() {
                return Err(IpamError::Invalid(format!(
                    "an ip-range ({}) needs a subnet",
                    req.sub_pool
                )));
            }
            None
        } else {
            let subnet = Prefix::parse(&req.pool).map_err(IpamError::Invalid)?;
            if subnet.v6 != req.v6 {
                return Err(IpamError::Invalid(format!(
                    "subnet {subnet} is not an {family} subnet"
                )));
            }
            // A pool wider than this swallows every default pool and overlaps the host's own
            // routes (a /0 would hand out 0.0.0.1): refused, as are special-purpose ranges.
            let min = if subnet.v6 { 16 } else { 8 };
            if subnet.len < min {
                return Err(IpamError::Invalid(format!(
                    "subnet {subnet} is too large: the shortest prefix allowed is /{min}"
                )));
            }
            const RESERVED: &[&str] = &[
                "0.0.0.0/8",
                "127.0.0.0/8",
                "224.0.0.0/3",
                "::/16",
                "ff00::/8",
            ];
            for r in RESERVED {
                if let Ok(r) = Prefix::parse(r) {
                    if r.overlaps(&subnet) {
                        return Err(IpamError::Invalid(format!(
                            "subnet {subnet} lies in the special-purpose range {r} (this host, \
                             loopback, multicast or reserved)"
                        )));
                    }
                }
            }
            let max = if subnet.v6 { 127 } else { 30 };
            if subnet.len > max {
                return Err(IpamError::Invalid(format!(
                    "subnet {subnet} is too small: the longest prefix allowed is /{max}"
                )));
            }
            let range = if req.sub_pool.is_empty() {
                None
            } else {
                let r = Prefix::parse(&req.sub_pool).map_err(IpamError::Invalid)?;
                if !subnet.covers(&r) {
                    return Err(IpamError::Invalid(format!(
                        "ip-range {r} is not inside subnet {subnet}"
                    )));
                }
                Some(r)
            };
            Some((subnet, range))
        };
        // Routes are read before taking the registry lock (netlink is async).
        let routes =
            if explicit.is_none() && space == LOCAL_SPACE && self.settings.avoid_host_routes {
                self.routes.routes().await.map_err(IpamError::Routes)?
            } else {
                Vec::new()
            };
        let (record, subnet, range) = {
            let mut reg = self.write();
            let (subnet, range, from_defaults) = match explicit {
                Some((subnet, range)) => {
                    if let Some((_, id)) = reg.overlap(space, &subnet) {
                        let p = reg.pools.get(&id).map(|p| lock(p).view(0));
                        let label = p
                            .as_ref()
                            .and_then(|p| p.label.clone())
                            .map(|l| format!(", label {l:?}"))
                            .unwrap_or_default();
                        let (existing, created) =
                            p.map(|p| (p.pool, p.created)).unwrap_or_default();
                        return Err(IpamError::Overlap(format!(
                            "{subnet} overlaps pool {existing} (PoolID {id:?}{label}, created \
                             {created}) already held in address space {space}"
                        )));
                    }
                    (subnet, range, false)
                }
                None => match self.pick_default(&reg, space, req.v6, &routes) {
                    Some(p) => (p, None, true),
                    None => {
                        let pools: Vec<String> = self
                            .defaults(space)
                            .iter()
                            .filter(|d| d.base.v6 == req.v6)
                            .map(|d| format!("{}/{}", d.base, d.size))
                            .collect();
                        return Err(IpamError::NoDefaultPool {
                            family,
                            pools: if pools.is_empty() {
                                "(none configured)".into()
                            } else {
                                pools.join(",")
                            },
                            space: space.into(),
                            routes: if routes.is_empty() || pools.is_empty() {
                                String::new()
                            } else {
                                " (candidates overlapping host routes were skipped)".into()
                            },
                        });
                    }
                },
            };
            // Options are validated before anything is written.
            let opts = options::parse(&opts_map, &subnet).map_err(IpamError::Invalid)?;
            let l = layout(&subnet, range.as_ref(), opts.reserved.clone())?;
            let id = pool_id(space, &subnet, range.as_ref());
            let record = PoolRecord {
                id: id.clone(),
                space: space.into(),
                pool: subnet.to_string(),
                range: range.map(|r| r.to_string()),
                options: opts_map,
                from_defaults,
                created: now(),
            };
            self.store.put_pool(&record)?;
            let alloc = Allocator::new(l, opts.order);
            reg.index
                .entry(space.into())
                .or_default()
                .insert((subnet.v6, subnet.first()), (subnet.last(), id.clone()));
            reg.pools.insert(
                id,
                Arc::new(Mutex::new(Pool {
                    record: record.clone(),
                    subnet,
                    range,
                    opts,
                    alloc,
                    released: false,
                    seen_container: false,
                })),
            );
            (record, subnet, range)
        };
        self.store.flush().await?;
        tracing::info!(pool = %subnet, id = %record.id, from_defaults = record.from_defaults, "pool allocated");
        let mut data = BTreeMap::new();
        data.insert("outboard.pool-id".to_string(), record.id.clone());
        if let Some(r) = range {
            data.insert("outboard.ip-range".to_string(), r.to_string());
        }
        data.insert(
            "outboard.from-defaults".to_string(),
            record.from_defaults.to_string(),
        );
        Ok(api::RequestPoolResponse {
            pool_id: record.id,
            pool: subnet.to_string(),
            data,
        })
    }

    /// `ReleasePool`: forget the pool and every address still held in it.
    pub async fn release_pool(&self, id: &str) -> Result<(), IpamError> {
        {
            let mut reg = self.write();
            let arc = reg
                .pools
                .get(id)
                .cloned()
                .ok_or_else(|| IpamError::UnknownPool(id.into()))?;
            let mut pool = lock(&arc);
            // Delete on disk first: if that fails, nothing changed in memory either.
            self.store.delete_pool(id)?;
            pool.released = true;
            reg.pools.remove(id);
            let space = pool.record.space.clone();
            if let Some(idx) = reg.index.get_mut(&space) {
                idx.remove(&(pool.subnet.v6, pool.subnet.first()));
            }
        }
        self.store.flush().await?;
        tracing::info!(id, "pool released");
        Ok(())
    }

    fn pool(&self, id: &str) -> Result<Arc<Mutex<Pool>>, IpamError> {
        self.read()
            .pools
            .get(id)
            .cloned()
            .ok_or_else(|| IpamError::UnknownPool(id.into()))
    }

    /// `RequestAddress`: the given address, or the gateway's first usable one, or the next
    /// free one of the range. Answers CIDR with the pool's prefix length.
    pub async fn request_address(
        &self,
        req: api::RequestAddressRequest,
    ) -> Result<api::RequestAddressResponse, IpamError> {
        let arc = self.pool(&req.pool_id)?;
        let gateway = req
            .options
            .as_ref()
            .and_then(|o| o.get(ADDRESS_TYPE))
            .is_some_and(|t| t == GATEWAY_TYPE);
        let wanted = if req.address.is_empty() {
            None
        } else {
            // dockerd sends plain IPs; tolerate a CIDR form.
            let plain = req.address.split('/').next().unwrap_or_default();
            Some(Addr::parse(plain).map_err(IpamError::Invalid)?)
        };
        let resp = {
            let mut pool = lock(&arc);
            if pool.released {
                return Err(IpamError::UnknownPool(req.pool_id));
            }
            let (n, change, kind) = match wanted {
                Some(a) => {
                    if a.v6 != pool.subnet.v6 {
                        return Err(IpamError::Outside {
                            addr: a.to_string(),
                            pool: pool.subnet.to_string(),
                        });
                    }
                    let kind = if gateway {
                        Kind::Gateway
                    } else if !pool.seen_container && now() - pool.record.created < AUX_WINDOW_SECS
                    {
                        Kind::Aux
                    } else {
                        Kind::Static
                    };
                    let c = pool
                        .alloc
                        .plan_take(a.n, kind)
                        .map_err(|e| pool.alloc_error(e))?;
                    (a.n, c, kind)
                }
                None if gateway => {
                    let (n, c) = pool.alloc.plan_gateway().map_err(|e| pool.alloc_error(e))?;
                    (n, c, Kind::Gateway)
                }
                None => {
                    let (n, c) = pool.alloc.plan_next().map_err(|e| pool.alloc_error(e))?;
                    (n, c, Kind::Dynamic)
                }
            };
            self.store.apply(&pool.record.id, &change)?;
            pool.alloc.apply(&change);
            if matches!(kind, Kind::Dynamic | Kind::Static) {
                pool.seen_container = true;
            }
            let mut data = BTreeMap::new();
            data.insert("outboard.kind".to_string(), kind.name().to_string());
            data.insert("outboard.pool-id".to_string(), pool.record.id.clone());
            api::RequestAddressResponse {
                address: format!("{}/{}", pool.ip(n), pool.subnet.len),
                data,
            }
        };
        self.store.flush().await?;
        Ok(resp)
    }

    /// `ReleaseAddress`: releasing an address that is not held succeeds (the goal state holds).
    pub async fn release_address(&self, req: api::ReleaseAddressRequest) -> Result<(), IpamError> {
        let arc = self.pool(&req.pool_id)?;
        let plain = req.address.split('/').next().unwrap_or_default();
        let a = Addr::parse(plain).map_err(IpamError::Invalid)?;
        {
            let mut pool = lock(&arc);
            if pool.released {
                return Err(IpamError::UnknownPool(req.pool_id));
            }
            if !pool.subnet.contains(a) {
                return Err(IpamError::Outside {
                    addr: a.to_string(),
                    pool: pool.subnet.to_string(),
                });
            }
            match pool.alloc.plan_release(a.n) {
                Some(change) => {
                    self.store.apply(&pool.record.id, &change)?;
                    pool.alloc.apply(&change);
                }
                None => {
                    // Not held: possibly because a concurrent release of the same address has
                    // changed memory but is not yet durable. Fall through to the flush, so this
                    // reply, too, is sent only once that release is on disk.
                    tracing::warn!(addr = %a, pool = %pool.subnet, "release of an address that is not held");
                }
            }
        }
        self.store.flush().await?;
        Ok(())
    }

    /// The read-only operator view.
    pub fn pools_view(&self, q: &api::PoolsQuery) -> api::PoolsView {
        let limit = q.limit.unwrap_or(1000);
        let arcs: Vec<Arc<Mutex<Pool>>> = self.read().pools.values().cloned().collect();
        let pools = arcs
            .iter()
            .filter_map(|arc| {
                let p = lock(arc);
                let wanted = match q.pool.as_deref() {
                    None | Some("") => true,
                    Some(f) => f == p.record.id || f == p.record.pool,
                };
                wanted.then(|| p.view(limit))
            })
            .collect();
        api::PoolsView { pools }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_default_pools;
    use crate::sys::FakeRoutes;
    use std::collections::BTreeSet;

    fn settings(local: &str) -> Settings {
        Settings {
            local_defaults: parse_default_pools("DEFAULT_POOLS", local).unwrap(),
            global_defaults: parse_default_pools("GLOBAL_DEFAULT_POOLS", "10.0.0.0/8/24").unwrap(),
            avoid_host_routes: true,
        }
    }

    fn ipam(store: &common::Store, routes: FakeRoutes) -> Ipam<FakeRoutes> {
        Ipam::new(
            settings("10.200.0.0/16/24,fd00:42::/48/64"),
            IpamStore::open(store.clone()).unwrap(),
            routes,
        )
        .unwrap()
    }

    fn pool_req(pool: &str, sub: &str, opts: &[(&str, &str)]) -> api::RequestPoolRequest {
        api::RequestPoolRequest {
            address_space: LOCAL_SPACE.into(),
            pool: pool.into(),
            sub_pool: sub.into(),
            options: Some(
                opts.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            v6: pool.contains(':'),
        }
    }

    fn addr_req(id: &str, addr: &str, gw: bool) -> api::RequestAddressRequest {
        api::RequestAddressRequest {
            pool_id: id.into(),
            address: addr.into(),
            options: gw
                .then(|| BTreeMap::from([(ADDRESS_TYPE.to_string(), GATEWAY_TYPE.to_string())])),
        }
    }

    async fn take(i: &Ipam<FakeRoutes>, id: &str, addr: &str) -> Result<String, IpamError> {
        i.request_address(addr_req(id, addr, false))
            .await
            .map(|r| r.address)
    }

    #[tokio::test]
    async fn absurd_pools_are_refused() {
        let store = common::Store::temporary().unwrap();
        let i = ipam(&store, FakeRoutes::default());
        for p in [
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/7",
            "127.0.0.0/24",
            "224.0.0.0/24",
            "0.1.0.0/16",
            "ff02::/64",
            "::/64",
        ] {
            let r = i.request_pool(pool_req(p, "", &[])).await;
            assert!(r.is_err(), "{p} accepted");
        }
        // Nothing was recorded: a default pool is still handed out.
        let d = i.request_pool(pool_req("", "", &[])).await.unwrap();
        assert_eq!(d.pool, "10.200.0.0/24");
    }

    #[tokio::test]
    async fn a_duplicate_release_is_answered_only_after_a_flush() {
        let store = common::Store::temporary().unwrap();
        let i = ipam(&store, FakeRoutes::default());
        let p = i
            .request_pool(pool_req("10.97.0.0/24", "", &[]))
            .await
            .unwrap();
        let a = take(&i, &p.pool_id, "").await.unwrap();
        let rel = || api::ReleaseAddressRequest {
            pool_id: p.pool_id.clone(),
            address: a.clone(),
        };
        i.release_address(rel()).await.unwrap();
        let before = store
            .flush_stats()
            .count
            .load(std::sync::atomic::Ordering::SeqCst);
        // The second release finds nothing held (the first changed memory); it must still not
        // answer before a flush, which covers a concurrent first release still in flight.
        i.release_address(rel()).await.unwrap();
        assert!(
            store
                .flush_stats()
                .count
                .load(std::sync::atomic::Ordering::SeqCst)
                > before
        );
    }

    #[tokio::test]
    async fn network_create_sequence() {
        let store = common::Store::temporary().unwrap();
        let i = ipam(&store, FakeRoutes::default());
        let p = i
            .request_pool(pool_req(
                "10.98.0.0/24",
                "10.98.0.128/25",
                &[("label", "web")],
            ))
            .await
            .unwrap();
        assert_eq!(p.pool, "10.98.0.0/24");
        assert_eq!(p.pool_id, "OutboardLocal/10.98.0.0/24/10.98.0.128/25");
        let gw = i
            .request_address(addr_req(&p.pool_id, "", true))
            .await
            .unwrap();
        assert_eq!(gw.address, "10.98.0.1/24");
        assert_eq!(gw.data["outboard.kind"], "gateway");
        // aux, inside the range
        assert_eq!(
            take(&i, &p.pool_id, "10.98.0.128").await.unwrap(),
            "10.98.0.128/24"
        );
        // containers come from the range, skipping the aux address
        assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.0.129/24");
        assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.0.130/24");
        // --ip outside the range but in the subnet
        assert_eq!(
            take(&i, &p.pool_id, "10.98.0.50").await.unwrap(),
            "10.98.0.50/24"
        );
        let e = take(&i, &p.pool_id, "10.98.0.50")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("already in use (held by container-ip)"), "{e}");
        let e = take(&i, &p.pool_id, "10.98.1.5")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside pool 10.98.0.0/24"), "{e}");
        let e = take(&i, &p.pool_id, "10.98.0.255")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("broadcast"), "{e}");
        let v = i.pools_view(&api::PoolsQuery::default());
        let kinds: Vec<&str> = v.pools[0].runs.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["gateway", "container-ip", "aux", "container"]);
        assert_eq!(v.pools[0].held, 5);
        assert_eq!(v.pools[0].capacity, 254);
        assert_eq!(v.pools[0].label.as_deref(), Some("web"));
        // release the containers; serial order does not reuse 10.98.0.129 at once
        i.release_address(api::ReleaseAddressRequest {
            pool_id: p.pool_id.clone(),
            address: "10.98.0.129".into(),
        })
        .await
        .unwrap();
        assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.0.131/24");
        i.release_pool(&p.pool_id).await.unwrap();
        assert!(i.pools_view(&api::PoolsQuery::default()).pools.is_empty());
        assert!(matches!(
            take(&i, &p.pool_id, "").await,
            Err(IpamError::UnknownPool(_))
        ));
    }

    #[tokio::test]
    async fn overlap_and_spaces() {
        let store = common::Store::temporary().unwrap();
        let i = ipam(&store, FakeRoutes::default());
        let a = i
            .request_pool(pool_req("10.98.0.0/16", "", &[("label", "big")]))
            .await
            .unwrap();
        let e = i
            .request_pool(pool_req("10.98.5.0/24", "", &[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10.98.5.0/24 overlaps pool 10.98.0.0/16")
                && e.contains(&a.pool_id)
                && e.contains("\"big\""),
            "{e}"
        );
        // The same subnet in the global space is fine.
        let mut g = pool_req("10.98.5.0/24", "", &[]);
        g.address_space = GLOBAL_SPACE.into();
        i.request_pool(g).await.unwrap();
        let mut bad = pool_req("10.99.0.0/24", "", &[]);
        bad.address_space = "Other".into();
        assert!(matches!(
            i.request_pool(bad).await,
            Err(IpamError::UnknownSpace(..))
        ));
        // Invalid input changes nothing.
        let before = i.pools_view(&api::PoolsQuery::default());
        for (req, needle) in [
            (
                pool_req("10.97.0.0/24", "", &[("order", "random")]),
                "serial and lowest",
            ),
            (
                pool_req("10.97.0.0/24", "", &[("nope", "1")]),
                "unknown ipam option",
            ),
            (
                pool_req("10.97.0.0/24", "10.96.0.0/25", &[]),
                "not inside subnet",
            ),
            (pool_req("10.97.0.0/31", "", &[]), "too small"),
            (pool_req("10.97.0.0/33", "", &[]), "prefix length"),
            (pool_req("", "10.97.0.0/25", &[]), "needs a subnet"),
        ] {
            let e = i.request_pool(req).await.unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let mut wrong_family = pool_req("10.97.0.0/24", "", &[]);
        wrong_family.v6 = true;
        assert!(i.request_pool(wrong_family).await.is_err());
        assert_eq!(i.pools_view(&api::PoolsQuery::default()), before);
    }

    #[tokio::test]
    async fn default_pools_skip_allocated_and_routes() {
        let store = common::Store::temporary().unwrap();
        let routes = FakeRoutes::with(&["10.200.0.0/24", "10.200.2.0/23", "0.0.0.0/0"]);
        let i = ipam(&store, routes.clone());
        // An explicit pool already takes 10.200.1.0/24.
        i.request_pool(pool_req("10.200.1.0/24", "", &[]))
            .await
            .unwrap();
        let a = i.request_pool(pool_req("", "", &[])).await.unwrap();
        assert_eq!(a.pool, "10.200.4.0/24");
        assert_eq!(a.data["outboard.from-defaults"], "true");
        let b = i.request_pool(pool_req("", "", &[])).await.unwrap();
        assert_eq!(b.pool, "10.200.5.0/24");
        assert_eq!(routes.calls(), 2);
        let mut v6 = pool_req("", "", &[]);
        v6.v6 = true;
        assert_eq!(i.request_pool(v6).await.unwrap().pool, "fd00:42::/64");
        // Route failures are errors, not silent overlaps.
        routes.fail(true);
        assert!(matches!(
            i.request_pool(pool_req("", "", &[])).await,
            Err(IpamError::Routes(_))
        ));
        // Exhaustion of the defaults is a clear error.
        let store = common::Store::temporary().unwrap();
        let i = Ipam::new(
            settings("10.201.0.0/23/24"),
            IpamStore::open(store).unwrap(),
            FakeRoutes::default(),
        )
        .unwrap();
        i.request_pool(pool_req("", "", &[])).await.unwrap();
        i.request_pool(pool_req("", "", &[])).await.unwrap();
        let e = i
            .request_pool(pool_req("", "", &[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no free IPv4 pool left in the default pools 10.201.0.0/23/24"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn exhausted_pool_is_an_error_and_changes_nothing() {
        let store = common::Store::temporary().unwrap();
        let i = ipam(&store, FakeRoutes::default());
        let p = i
            .request_pool(pool_req("10.98.7.0/30", "", &[]))
            .await
            .unwrap();
        assert_eq!(
            i.request_address(addr_req(&p.pool_id, "", true))
                .await
                .unwrap()
                .address,
            "10.98.7.1/30"
        );
        assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.7.2/30");
        let e = take(&i, &p.pool_id, "").await.unwrap_err().to_string();
        assert!(
            e.contains("no free address left in pool 10.98.7.0/30: 2 of 2"),
            "{e}"
        );
        assert_eq!(i.pools_view(&api::PoolsQuery::default()).pools[0].held, 2);
    }

    #[tokio::test]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let store = common::Store::open(dir.path(), 1).unwrap();
            let i = ipam(&store, FakeRoutes::default());
            id = i
                .request_pool(pool_req(
                    "fd00:98::/64",
                    "",
                    &[("reserved", "fd00:98::10-fd00:98::20")],
                ))
                .await
                .unwrap()
                .pool_id;
            assert_eq!(
                i.request_address(addr_req(&id, "", true))
                    .await
                    .unwrap()
                    .address,
                "fd00:98::1/64"
            );
            for _ in 0..3 {
                take(&i, &id, "").await.unwrap();
            }
            take(&i, &id, "fd00:98::ffff:ffff:ffff:ffff").await.unwrap();
        }
        let store = common::Store::open(dir.path(), 1).unwrap();
        let i = ipam(&store, FakeRoutes::default());
        let v = i.pools_view(&api::PoolsQuery::default());
        assert_eq!(v.pools[0].held, 5);
        assert_eq!(v.pools[0].capacity, u128::from(u64::MAX));
        assert_eq!(take(&i, &id, "").await.unwrap(), "fd00:98::5/64");
        let e = i
            .request_pool(pool_req("fd00:98::/48", "", &[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps pool fd00:98::/64"), "{e}");
    }

    #[tokio::test]
    async fn records_left_by_a_crash_mid_change_are_normalised() {
        use crate::alloc::{Change, Op, Run};
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let store = common::Store::open(dir.path(), 1).unwrap();
            let i = ipam(&store, FakeRoutes::default());
            id = i
                .request_pool(pool_req("10.98.10.0/24", "", &[]))
                .await
                .unwrap()
                .pool_id;
            for _ in 0..3 {
                take(&i, &id, "").await.unwrap(); // 10.98.10.1-3, one run
            }
            // A release of .2 planned as [Put(.3), Put(.1 end .1)] crashed after its first op.
            let base = Prefix::parse("10.98.10.0/24").unwrap().net;
            let partial = Change {
                ops: vec![Op::Put(
                    base + 3,
                    Run {
                        end: base + 3,
                        kind: Kind::Dynamic,
                    },
                )],
                cursor: None,
            };
            IpamStore::open(store.clone())
                .unwrap()
                .apply(&id, &partial)
                .unwrap();
            store.flush().await.unwrap();
        }
        let store = common::Store::open(dir.path(), 1).unwrap();
        let i = ipam(&store, FakeRoutes::default());
        let v = i.pools_view(&api::PoolsQuery::default());
        assert_eq!(
            v.pools[0].held, 3,
            "the unacknowledged release left .2 held"
        );
        assert_eq!(v.pools[0].runs.len(), 1);
        let stored = IpamStore::open(store.clone()).unwrap().load().unwrap();
        assert_eq!(
            stored[0].runs.len(),
            1,
            "the store was rewritten to the united run"
        );
        i.release_address(api::ReleaseAddressRequest {
            pool_id: id.clone(),
            address: "10.98.10.2".into(),
        })
        .await
        .unwrap();
        drop(i);
        drop(store);
        let store = common::Store::open(dir.path(), 1).unwrap();
        let i = ipam(&store, FakeRoutes::default());
        let runs: Vec<String> = i.pools_view(&api::PoolsQuery::default()).pools[0]
            .runs
            .iter()
            .map(|r| format!("{}-{}", r.first, r.last))
            .collect();
        assert_eq!(runs, ["10.98.10.1-10.98.10.1", "10.98.10.3-10.98.10.3"]);
    }

    /// 64 concurrent requests on one small pool: all distinct, all counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_never_share_an_address() {
        let store = common::Store::temporary().unwrap();
        let i = Arc::new(ipam(&store, FakeRoutes::default()));
        let id = i
            .request_pool(pool_req("10.98.8.0/25", "", &[]))
            .await
            .unwrap()
            .pool_id;
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let i = i.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move { take(&i, &id, "").await }));
        }
        let mut got = BTreeSet::new();
        let mut exhausted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(a) => assert!(got.insert(a)),
                Err(IpamError::Exhausted { .. }) => exhausted += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), 126);
        assert_eq!(exhausted, 200 - 126);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Next,
            Take(u8),
            Release(u8),
            Restart,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => Just(Step::Next),
                2 => any::<u8>().prop_map(Step::Take),
                3 => any::<u8>().prop_map(Step::Release),
                1 => Just(Step::Restart),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
            /// Any sequence of allocate/release/restart (reload from the on-disk store) keeps the
            /// held set exactly what was acknowledged, and never hands out a held address.
            #[test]
            fn held_set_is_exact_across_restarts(steps in proptest::collection::vec(step(), 1..80)) {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let dir = tempfile::tempdir().unwrap();
                    // sled's background flusher may hold the file lock a moment after drop.
                    let open = || {
                        for _ in 0..200 {
                            if let Ok(store) = common::Store::open(dir.path(), 1) {
                                return ipam(&store, FakeRoutes::default());
                            }
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                        panic!("store stays locked");
                    };
                    let mut i = open();
                    let id = i.request_pool(pool_req("10.98.9.0/27", "10.98.9.8/29", &[])).await.unwrap().pool_id;
                    let mut model: BTreeSet<String> = BTreeSet::new();
                    for s in steps {
                        match s {
                            Step::Next => match take(&i, &id, "").await {
                                Ok(a) => {
                                    let ip = a.split('/').next().unwrap().to_string();
                                    prop_assert!(model.insert(ip), "duplicate {}", a);
                                }
                                Err(IpamError::Exhausted { .. }) => {}
                                Err(e) => prop_assert!(false, "{}", e),
                            },
                            Step::Take(n) => {
                                let ip = format!("10.98.9.{}", n % 34);
                                match take(&i, &id, &ip).await {
                                    Ok(_) => prop_assert!(model.insert(ip)),
                                    Err(_) => prop_assert!(model.contains(&ip) || !(1..=30).contains(&(n % 34))),
                                }
                            }
                            Step::Release(n) => {
                                let ip = format!("10.98.9.{}", n % 32);
                                i.release_address(api::ReleaseAddressRequest { pool_id: id.clone(), address: ip.clone() })
                                    .await
                                    .unwrap();
                                model.remove(&ip);
                            }
                            Step::Restart => {
                                drop(i);
                                i = open();
                            }
                        }
                        let v = i.pools_view(&api::PoolsQuery::default());
                        let held: BTreeSet<String> = v.pools[0]
                            .runs
                            .iter()
                            .flat_map(|r| {
                                let f = Addr::parse(&r.first).unwrap().n;
                                let l = Addr::parse(&r.last).unwrap().n;
                                (f..=l).map(|n| to_ip(false, n).to_string())
                            })
                            .collect();
                        prop_assert_eq!(&held, &model);
                    }
                    Ok(())
                })?;
            }
        }
    }
}
