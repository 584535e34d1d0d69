//! Pools: geometry, `RequestPool` (explicit subnets or a default pool) and `ReleasePool`.

use std::sync::{Arc, Mutex};

use crate::addr::{to_ip, Prefix};
use crate::alloc::{AllocError, Allocator, Kind, Layout};
use crate::error::IpamError;
use crate::model::{PoolGrant, PoolRequest, Space};
use crate::options::{self, PoolOptions};
use crate::store::{PoolRecord, StoredPool};
use crate::sys::HostRoutes;

use super::{lock, now, Ipam};

/// One pool in memory: its record, geometry, options and held set.
pub(super) struct Pool {
    pub(super) record: PoolRecord,
    pub(super) subnet: Prefix,
    pub(super) range: Option<Prefix>,
    pub(super) opts: PoolOptions,
    pub(super) alloc: Allocator,
    /// Set under the pool lock by `ReleasePool`: a request that found the pool before it was
    /// released must not write to it any more.
    pub(super) released: bool,
    /// A container address was handed out (ends the aux-address window).
    pub(super) seen_container: bool,
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

fn pool_id(space: Space, subnet: &Prefix, range: Option<&Prefix>) -> String {
    match range {
        Some(r) => format!("{}/{subnet}/{r}", space.name()),
        None => format!("{}/{subnet}", space.name()),
    }
}

impl Pool {
    pub(super) fn from_stored(sp: StoredPool) -> Result<Self, IpamError> {
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

    pub(super) fn ip(&self, n: u128) -> String {
        to_ip(self.subnet.v6, n).to_string()
    }

    pub(super) fn capacity(&self) -> u128 {
        let l = self.alloc.layout();
        l.last - l.first + 1
    }

    pub(super) fn alloc_error(&self, e: AllocError) -> IpamError {
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
}
impl<R: HostRoutes> Ipam<R> {
    /// `RequestPool`: an explicit subnet (refused if it overlaps a pool of the same space) or
    /// the next free default pool. Options are validated against the chosen subnet before
    /// anything is written.
    pub async fn request_pool(&self, req: PoolRequest) -> Result<PoolGrant, IpamError> {
        let space = req.space;
        let routes = match req.explicit {
            Some(_) => Vec::new(),
            None => self.routes_to_avoid(space).await?,
        };
        let grant = {
            let mut reg = self.write();
            let (subnet, range, from_defaults) = match req.explicit {
                Some((subnet, range)) => {
                    if let Some((_, id)) = reg.overlap(space.name(), &subnet) {
                        return Err(self.overlap_error(&reg, space, &subnet, &id));
                    }
                    (subnet, range, false)
                }
                None => match self.pick_default(&reg, space, req.v6, &routes) {
                    Some(p) => (p, None, true),
                    None => return Err(self.no_default_pool(space, req.v6, &routes)),
                },
            };
            let opts = options::parse(&req.options, &subnet).map_err(IpamError::Invalid)?;
            let l = layout(&subnet, range.as_ref(), opts.reserved.clone())?;
            let id = pool_id(space, &subnet, range.as_ref());
            let record = PoolRecord {
                id: id.clone(),
                space: space.name().into(),
                pool: subnet.to_string(),
                range: range.map(|r| r.to_string()),
                options: req.options,
                from_defaults,
                created: now(),
            };
            self.store.put_pool(&record)?;
            let alloc = Allocator::new(l, opts.order);
            reg.index
                .entry(space.name().into())
                .or_default()
                .insert((subnet.v6, subnet.first()), (subnet.last(), id.clone()));
            reg.pools.insert(
                id.clone(),
                Arc::new(Mutex::new(Pool {
                    record,
                    subnet,
                    range,
                    opts,
                    alloc,
                    released: false,
                    seen_container: false,
                })),
            );
            PoolGrant {
                id,
                subnet,
                range,
                from_defaults,
            }
        };
        self.store.flush().await?;
        tracing::info!(pool = %grant.subnet, id = %grant.id, from_defaults = grant.from_defaults, "pool allocated");
        Ok(grant)
    }

    /// The error naming the pool an explicit subnet overlaps (subnet, PoolID, label, age).
    fn overlap_error(
        &self,
        reg: &super::Registry,
        space: Space,
        subnet: &Prefix,
        id: &str,
    ) -> IpamError {
        let p = reg.pools.get(id).map(|p| lock(p).view(0));
        let label = p
            .as_ref()
            .and_then(|p| p.label.clone())
            .map(|l| format!(", label {l:?}"))
            .unwrap_or_default();
        let (existing, created) = p.map(|p| (p.pool, p.created)).unwrap_or_default();
        IpamError::Overlap(format!(
            "{subnet} overlaps pool {existing} (PoolID {id:?}{label}, created {created}) already \
             held in address space {}",
            space.name()
        ))
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
}
