//! `--ipam-opt` options of a pool: parsed and validated before anything is allocated. Unknown
//! keys and malformed values are refused with a message naming the key and what is allowed.
//! Keys under `com.docker.` belong to the daemon and are accepted and ignored.
//!
//! | key | value |
//! |---|---|
//! | `order` | `serial` (default: continue after the last address handed out) or `lowest` |
//! | `reserved` | comma-separated addresses, `first-last` ranges or CIDRs inside the subnet that are never handed out dynamically (they can still be asked for with `--ip`, `--gateway` or `--aux-address`) |
//! | `label` | free text (≤ 64 printable characters) naming the pool in errors and `/outboard/v1/pools` |

use std::collections::BTreeMap;

use crate::addr::{Addr, Prefix};
use crate::alloc::Order;

/// Option keys this plugin understands.
pub const KNOWN_KEYS: &[&str] = &["order", "reserved", "label"];

/// The validated options of one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolOptions {
    /// Allocation order of dynamic addresses.
    pub order: Order,
    /// Sorted, merged, inclusive ranges excluded from dynamic allocation.
    pub reserved: Vec<(u128, u128)>,
    /// Operator's name for the pool.
    pub label: Option<String>,
}

/// Parse the options of a pool with subnet `pool`.
pub fn parse(opts: &BTreeMap<String, String>, pool: &Prefix) -> Result<PoolOptions, String> {
    let mut out = PoolOptions::default();
    for (k, v) in opts {
        match k.as_str() {
            "order" => {
                out.order = match v.trim() {
                    "serial" => Order::Serial,
                    "lowest" => Order::Lowest,
                    _ => {
                        return Err(format!(
                            "ipam option order={v:?} is invalid: allowed are serial and lowest"
                        ))
                    }
                }
            }
            "reserved" => out.reserved = parse_reserved(v, pool)?,
            "label" => {
                if v.is_empty() || v.chars().count() > 64 || v.chars().any(|c| c.is_control()) {
                    return Err(format!(
                        "ipam option label={v:?} is invalid: 1 to 64 printable characters"
                    ));
                }
                out.label = Some(v.clone());
            }
            k if k.starts_with("com.docker.") => {}
            _ => {
                return Err(format!(
                    "unknown ipam option {k:?}: known options are {}",
                    KNOWN_KEYS.join(", ")
                ))
            }
        }
    }
    Ok(out)
}

fn parse_reserved(v: &str, pool: &Prefix) -> Result<Vec<(u128, u128)>, String> {
    let bad = |item: &str, why: &str| {
        format!(
            "ipam option reserved={v:?} is invalid at {item:?}: {why} (allowed: comma-separated \
             addresses, first-last ranges or CIDRs inside {pool})"
        )
    };
    let mut ranges = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(bad(item, "empty item"));
        }
        let (s, e) = if item.contains('/') {
            let p = Prefix::parse(item).map_err(|e| bad(item, &e))?;
            (
                Addr {
                    v6: p.v6,
                    n: p.first(),
                },
                Addr {
                    v6: p.v6,
                    n: p.last(),
                },
            )
        } else if let Some((a, b)) = item.split_once('-') {
            (
                Addr::parse(a).map_err(|e| bad(item, &e))?,
                Addr::parse(b).map_err(|e| bad(item, &e))?,
            )
        } else {
            let a = Addr::parse(item).map_err(|e| bad(item, &e))?;
            (a, a)
        };
        if !pool.contains(s) || !pool.contains(e) {
            return Err(bad(item, "not inside the subnet"));
        }
        if s.n > e.n {
            return Err(bad(item, "first address after last"));
        }
        ranges.push((s.n, e.n));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn valid_options() {
        let p = Prefix::parse("10.98.0.0/24").unwrap();
        let o = parse(
            &opts(&[
                ("order", "lowest"),
                (
                    "reserved",
                    "10.98.0.10-10.98.0.20, 10.98.0.21,10.98.0.128/30",
                ),
                ("label", "web tier"),
                ("com.docker.network.ipam.serial", "true"),
            ]),
            &p,
        )
        .unwrap();
        assert_eq!(o.order, Order::Lowest);
        let base = p.net;
        assert_eq!(
            o.reserved,
            vec![(base + 10, base + 21), (base + 128, base + 131)]
        );
        assert_eq!(o.label.as_deref(), Some("web tier"));
        assert_eq!(parse(&BTreeMap::new(), &p).unwrap(), PoolOptions::default());
    }

    #[test]
    fn invalid_options() {
        let p = Prefix::parse("10.98.0.0/24").unwrap();
        for (kv, needle) in [
            (("order", "random"), "serial and lowest"),
            (("bogus", "1"), "unknown ipam option"),
            (("reserved", "10.98.1.5"), "not inside"),
            (
                ("reserved", "10.98.0.9-10.98.0.5"),
                "first address after last",
            ),
            (("reserved", "10.98.0.5,,"), "empty item"),
            (("reserved", "x"), "not an IP address"),
            (("label", ""), "printable"),
        ] {
            let e = parse(&opts(&[kv]), &p).unwrap_err();
            assert!(e.contains(needle), "{kv:?}: {e}");
        }
    }
}
