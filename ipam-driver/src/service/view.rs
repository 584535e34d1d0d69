//! The operator's read model (`GET /outboard/v1/pools`): utilisation and holders per pool.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::alloc::{Kind, Order};
use crate::model::{PoolFilter, PoolView, PoolsView, RunView};
use crate::sys::HostRoutes;

use super::pool::Pool;
use super::{lock, rfc3339, Ipam};

impl Pool {
    /// The pool as operators see it, with at most `limit` runs.
    pub(super) fn view(&self, limit: usize) -> PoolView {
        let mut by_kind: BTreeMap<String, u128> = BTreeMap::new();
        let mut runs = Vec::new();
        let mut gateway = None;
        for (s, r) in self.alloc.runs() {
            *by_kind.entry(r.kind.name().to_string()).or_default() += r.end - s + 1;
            if r.kind == Kind::Gateway && gateway.is_none() {
                gateway = Some(self.ip(s));
            }
            if runs.len() < limit {
                runs.push(RunView {
                    first: self.ip(s),
                    last: self.ip(r.end),
                    count: r.end - s + 1,
                    kind: r.kind.name().to_string(),
                });
            }
        }
        let held = self.alloc.held_count();
        let capacity = self.capacity();
        PoolView {
            id: self.record.id.clone(),
            address_space: self.record.space.clone(),
            pool: self.subnet.to_string(),
            ip_range: self.range.map(|r| r.to_string()),
            from_defaults: self.record.from_defaults,
            label: self.opts.label.clone(),
            order: match self.alloc.order() {
                Order::Serial => "serial".into(),
                Order::Lowest => "lowest".into(),
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
    /// Every pool the filter selects.
    pub fn pools_view(&self, q: &PoolFilter) -> PoolsView {
        let arcs: Vec<Arc<Mutex<Pool>>> = self.read().pools.values().cloned().collect();
        let pools = arcs
            .iter()
            .filter_map(|arc| {
                let p = lock(arc);
                let wanted = match q.pool.as_deref() {
                    None | Some("") => true,
                    Some(f) => f == p.record.id || f == p.record.pool,
                };
                wanted.then(|| p.view(q.limit))
            })
            .collect();
        PoolsView { pools }
    }
}
