//! IPAM gauges for `GET /metrics`: pools, and addresses held/free per pool (exhaustion visible
//! before it bites), from the same read model as `GET /outboard/v1/pools`.

use common::metrics::{Kind, MetricsText};

use crate::model::PoolsView;

/// Append the IPAM families for `view` (every pool, runs not needed).
pub fn render(view: &PoolsView, w: &mut MetricsText) {
    w.single(
        "outboard_ipam_pools",
        Kind::Gauge,
        "Pools held for dockerd's networks.",
        view.pools.len() as f64,
    );
    w.family(
        "outboard_ipam_addresses_held",
        Kind::Gauge,
        "Addresses held per pool (gateway, aux and container addresses).",
    );
    for p in &view.pools {
        let labels = [
            ("pool", p.pool.as_str()),
            ("space", p.address_space.as_str()),
        ];
        w.sample("outboard_ipam_addresses_held", &labels, p.held as f64);
    }
    w.family(
        "outboard_ipam_addresses_free",
        Kind::Gauge,
        "Usable addresses still free per pool (capacity minus held; huge IPv6 pools are capped by f64 precision).",
    );
    for p in &view.pools {
        let labels = [
            ("pool", p.pool.as_str()),
            ("space", p.address_space.as_str()),
        ];
        w.sample(
            "outboard_ipam_addresses_free",
            &labels,
            p.capacity.saturating_sub(p.held) as f64,
        );
    }
    w.family(
        "outboard_ipam_pool_utilisation_ratio",
        Kind::Gauge,
        "Held / usable addresses per pool, 0 to 1.",
    );
    for p in &view.pools {
        let labels = [
            ("pool", p.pool.as_str()),
            ("space", p.address_space.as_str()),
        ];
        let ratio = if p.capacity == 0 {
            1.0
        } else {
            p.held as f64 / p.capacity as f64
        };
        w.sample("outboard_ipam_pool_utilisation_ratio", &labels, ratio);
    }
}
