//! Addresses: `RequestAddress` (a given one, the gateway, or the next free one) and
//! `ReleaseAddress`, each answered only after its change is durable.

use crate::alloc::Kind;
use crate::error::IpamError;
use crate::model::{AddressGrant, AddressRelease, AddressRequest};
use crate::sys::HostRoutes;

use super::{lock, now, Ipam};

/// A specific address asked for this soon after the pool, before any container address, is
/// taken to be an `--aux-address` (dockerd sends them right after the gateway while it creates
/// the network; it does not say which is which).
const AUX_WINDOW_SECS: i64 = 10;

impl<R: HostRoutes> Ipam<R> {
    /// `RequestAddress`: the given address, or the gateway's first usable one, or the next
    /// free one of the range.
    pub async fn request_address(&self, req: AddressRequest) -> Result<AddressGrant, IpamError> {
        let arc = self.pool(&req.pool_id)?;
        let grant = {
            let mut pool = lock(&arc);
            if pool.released {
                return Err(IpamError::UnknownPool(req.pool_id));
            }
            let (n, change, kind) = match req.address {
                Some(a) => {
                    if a.v6 != pool.subnet.v6 {
                        return Err(IpamError::Outside {
                            addr: a.to_string(),
                            pool: pool.subnet.to_string(),
                        });
                    }
                    let kind = if req.gateway {
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
                None if req.gateway => {
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
            AddressGrant {
                address: crate::addr::Addr {
                    v6: pool.subnet.v6,
                    n,
                },
                prefix_len: pool.subnet.len,
                kind,
                pool_id: pool.record.id.clone(),
            }
        };
        self.store.flush().await?;
        Ok(grant)
    }

    /// `ReleaseAddress`: releasing an address that is not held succeeds (the goal state holds).
    pub async fn release_address(&self, req: AddressRelease) -> Result<(), IpamError> {
        let arc = self.pool(&req.pool_id)?;
        let a = req.address;
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
}
