//! Default pools: the first candidate of the configured `base/size` lists that overlaps
//! neither a pool of the same address space nor (local space) a host route.

use crate::addr::Prefix;
use crate::config::DefaultPool;
use crate::error::IpamError;
use crate::model::Space;
use crate::sys::HostRoutes;

use super::{Ipam, Registry};

impl<R: HostRoutes> Ipam<R> {
    pub(super) fn defaults(&self, space: Space) -> &[DefaultPool] {
        match space {
            Space::Global => &self.settings.global_defaults,
            Space::Local => &self.settings.local_defaults,
        }
    }

    /// The host's routed prefixes, when default pools of `space` must avoid them (read
    /// before the registry lock is taken: netlink is async).
    pub(super) async fn routes_to_avoid(&self, space: Space) -> Result<Vec<Prefix>, IpamError> {
        if space == Space::Local && self.settings.avoid_host_routes {
            self.routes.routes().await.map_err(IpamError::Routes)
        } else {
            Ok(Vec::new())
        }
    }

    /// The first default-pool candidate that overlaps neither a pool of `space` nor a route.
    pub(super) fn pick_default(
        &self,
        reg: &Registry,
        space: Space,
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
                let conflict = reg
                    .overlap(space.name(), &cand)
                    .map(|(last, _)| last)
                    .or_else(|| {
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

    /// The error when no default pool of the family is free.
    pub(super) fn no_default_pool(&self, space: Space, v6: bool, routes: &[Prefix]) -> IpamError {
        let pools: Vec<String> = self
            .defaults(space)
            .iter()
            .filter(|d| d.base.v6 == v6)
            .map(|d| format!("{}/{}", d.base, d.size))
            .collect();
        IpamError::NoDefaultPool {
            family: if v6 { "IPv6" } else { "IPv4" },
            pools: if pools.is_empty() {
                "(none configured)".into()
            } else {
                pools.join(",")
            },
            space: space.name().into(),
            routes: if routes.is_empty() || pools.is_empty() {
                String::new()
            } else {
                " (candidates overlapping host routes were skipped)".into()
            },
        }
    }
}
