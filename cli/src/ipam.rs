//! `outboard ipam …`: pools and addresses as the plugin holds them, and the leaks: pools no
//! dockerd network uses, addresses no endpoint, gateway or aux address of its network has.
//! A leak is reported only if it is seen in two looks a second apart and its pool is older
//! than `OUTBOARD_MIN_AGE` seconds (default 30), so a network or container being created
//! right now is never taken for one; `release` looks again right before it acts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::docker::{self, Docker, Plugin};
use crate::{plugin, plugin_call, plugin_get, table, Fail, Out, OK, PROBLEM};

/// Most addresses listed per run of a pool (a /64 could hold billions in theory).
const EXPAND_CAP: u128 = 65_536;

fn pools_of(p: &Plugin, pool: Option<&str>) -> Result<Vec<Value>, Fail> {
    let q = match pool {
        Some(x) => format!("?limit=100000&pool={}", docker::encode(x)),
        None => "?limit=100000".into(),
    };
    let v = plugin_get(p, &format!("/outboard/v1/pools{q}"))?;
    Ok(v["pools"].as_array().cloned().unwrap_or_default())
}

/// `outboard ipam pools`.
pub(crate) fn pools(d: &Docker) -> Result<Out, Fail> {
    let p = plugin(d, "ipam")?;
    let pools = pools_of(&p, None)?;
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|x| {
            let cap = x["capacity"].as_f64().unwrap_or(0.0);
            let held = x["held"].as_f64().unwrap_or(0.0);
            vec![
                x["pool"].as_str().unwrap_or("").into(),
                x["address_space"].as_str().unwrap_or("").into(),
                x["gateway"].as_str().unwrap_or("-").into(),
                format!("{held}"),
                format!("{}", (cap - held).max(0.0)),
                format!("{:.1}%", x["utilisation_percent"].as_f64().unwrap_or(0.0)),
                x["id"].as_str().unwrap_or("").into(),
            ]
        })
        .collect();
    Ok(Out::new(
        OK,
        table(
            &["POOL", "SPACE", "GATEWAY", "HELD", "FREE", "USED", "ID"],
            &rows,
        ),
        json!(pools),
    ))
}

/// Every held address of a pool view, with its kind.
fn held(pool: &Value) -> Vec<(IpAddr, String)> {
    let mut out = Vec::new();
    for r in pool["runs"].as_array().into_iter().flatten() {
        let (Some(first), Some(last)) = (
            r["first"].as_str().and_then(|s| s.parse::<IpAddr>().ok()),
            r["last"].as_str().and_then(|s| s.parse::<IpAddr>().ok()),
        ) else {
            continue;
        };
        let kind = r["kind"].as_str().unwrap_or("").to_string();
        let (a, b) = (num(first), num(last));
        let mut n = a;
        while n <= b && n - a < EXPAND_CAP {
            out.push((from_num(n, first.is_ipv6()), kind.clone()));
            n += 1;
        }
    }
    out
}

fn num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_num(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

/// `outboard ipam addresses POOL`.
pub(crate) fn addresses(d: &Docker, pool: &str) -> Result<Out, Fail> {
    let p = plugin(d, "ipam")?;
    let pools = pools_of(&p, Some(pool))?;
    let x = pools
        .first()
        .ok_or_else(|| Fail::problem(format!("no pool {pool}")))?;
    let users = docker_addresses(d, &p)?;
    let subnet = x["pool"].as_str().unwrap_or("");
    let owners = users.get(subnet);
    let mut rows = Vec::new();
    let mut js = Vec::new();
    for (a, kind) in held(x) {
        let who = match owners {
            Some(o) => o.holders.get(&a).cloned().unwrap_or_else(|| {
                if kind == "gateway" {
                    format!("{} gateway", o.network)
                } else {
                    "-".into()
                }
            }),
            None => "-".into(),
        };
        rows.push(vec![a.to_string(), kind.clone(), who.clone()]);
        js.push(json!({"address": a.to_string(), "kind": kind, "dockerd": who}));
    }
    Ok(Out::new(
        OK,
        table(&["ADDRESS", "KIND", "DOCKERD"], &rows),
        json!({"pool": subnet, "id": x["id"], "addresses": js}),
    ))
}

/// What dockerd has on one subnet of our IPAM: the network and each address's holder.
#[derive(Debug, Default)]
struct Live {
    network: String,
    holders: BTreeMap<IpAddr, String>,
}

fn strip_prefix_len(s: &str) -> Option<IpAddr> {
    s.split('/').next().and_then(|a| a.parse().ok())
}

/// Subnet (as written by the plugin) → what dockerd has there, for networks using our IPAM.
fn docker_addresses(d: &Docker, p: &Plugin) -> Result<BTreeMap<String, Live>, Fail> {
    let nets = d.networks().map_err(Fail::unreachable)?;
    let mut out: BTreeMap<String, Live> = BTreeMap::new();
    for n in nets {
        let driver = n["IPAM"]["Driver"].as_str().unwrap_or("");
        if !docker::same_plugin(driver, &p.name) {
            continue;
        }
        let name = n["Name"].as_str().unwrap_or("").to_string();
        for c in n["IPAM"]["Config"].as_array().into_iter().flatten() {
            let Some(subnet) = c["Subnet"].as_str() else {
                continue;
            };
            let live = out.entry(subnet.to_string()).or_default();
            live.network = name.clone();
            if let Some(g) = c["Gateway"].as_str().and_then(strip_prefix_len) {
                live.holders.insert(g, format!("{name} gateway"));
            }
            for (aux, a) in c["AuxiliaryAddresses"].as_object().into_iter().flatten() {
                if let Some(a) = a.as_str().and_then(strip_prefix_len) {
                    live.holders.insert(a, format!("{name} aux {aux}"));
                }
            }
        }
        for (_, ep) in n["Containers"].as_object().into_iter().flatten() {
            let who = format!("{name} {}", ep["Name"].as_str().unwrap_or("?"));
            for k in ["IPv4Address", "IPv6Address"] {
                if let Some(a) = ep[k].as_str().and_then(strip_prefix_len) {
                    for live in out.values_mut().filter(|l| l.network == name) {
                        live.holders.insert(a, who.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A leak: a whole pool, or one address of a live pool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Leak {
    Pool {
        id: String,
        pool: String,
    },
    Address {
        id: String,
        pool: String,
        address: IpAddr,
        kind: String,
    },
}

fn min_age() -> u64 {
    std::env::var("OUTBOARD_MIN_AGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn leaks(d: &Docker, p: &Plugin) -> Result<BTreeSet<Leak>, Fail> {
    let pools = pools_of(p, None)?;
    let live = docker_addresses(d, p)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = BTreeSet::new();
    for x in &pools {
        let id = x["id"].as_str().unwrap_or("").to_string();
        let subnet = x["pool"].as_str().unwrap_or("").to_string();
        let age = x["created"]
            .as_str()
            .and_then(epoch_of)
            .map(|t| now.saturating_sub(t))
            .unwrap_or(u64::MAX);
        match live.get(&subnet) {
            None if age >= min_age() => {
                out.insert(Leak::Pool { id, pool: subnet });
            }
            None => {}
            Some(l) => {
                for (a, kind) in held(x) {
                    // dockerd does not show a gateway it did not ask for by address; it belongs
                    // to the network as long as the pool does.
                    if kind != "gateway" && !l.holders.contains_key(&a) {
                        out.insert(Leak::Address {
                            id: id.clone(),
                            pool: subnet.clone(),
                            address: a,
                            kind,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Leaks seen in two looks a second apart (a container or network being set up is in only one).
fn stable_leaks(d: &Docker, p: &Plugin) -> Result<BTreeSet<Leak>, Fail> {
    let first = leaks(d, p)?;
    if first.is_empty() {
        return Ok(first);
    }
    std::thread::sleep(Duration::from_secs(1));
    let second = leaks(d, p)?;
    Ok(first.intersection(&second).cloned().collect())
}

/// `outboard ipam check`, `ipam release [--dry-run]`.
pub(crate) fn check(d: &Docker, release: bool, dry_run: bool) -> Result<Out, Fail> {
    let p = plugin(d, "ipam")?;
    let found = stable_leaks(d, &p)?;
    let mut rows = Vec::new();
    let mut js = Vec::new();
    let mut released = 0;
    for l in &found {
        let (what, pool, addr, action) = match l {
            Leak::Pool { id, pool } => {
                let action = if release && !dry_run {
                    plugin_call(
                        &p,
                        "POST",
                        "/IpamDriver.ReleasePool",
                        Some(&json!({"PoolID": id})),
                    )?;
                    released += 1;
                    "released"
                } else if release {
                    "would release"
                } else {
                    "leaked"
                };
                ("pool", pool.clone(), "-".to_string(), action)
            }
            Leak::Address {
                id,
                pool,
                address,
                kind,
            } => {
                let action = if release && !dry_run {
                    plugin_call(
                        &p,
                        "POST",
                        "/IpamDriver.ReleaseAddress",
                        Some(&json!({"PoolID": id, "Address": address.to_string()})),
                    )?;
                    released += 1;
                    "released"
                } else if release {
                    "would release"
                } else {
                    "leaked"
                };
                (
                    if kind.is_empty() {
                        "address"
                    } else {
                        kind.as_str()
                    },
                    pool.clone(),
                    address.to_string(),
                    action,
                )
            }
        };
        rows.push(vec![what.into(), pool.clone(), addr.clone(), action.into()]);
        js.push(json!({"kind": what, "pool": pool, "address": addr, "action": action}));
    }
    let text = if found.is_empty() {
        "no leaked pools or addresses\n".to_string()
    } else {
        table(&["KIND", "POOL", "ADDRESS", "ACTION"], &rows)
    };
    // check and dry-run: 1 when something leaked; release: 0 once everything was released.
    let code = if found.is_empty() || (release && !dry_run && released == found.len()) {
        OK
    } else {
        PROBLEM
    };
    Ok(Out::new(code, text, json!({"leaks": js})))
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-01-02T03:04:05[.frac]Z`).
fn epoch_of(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_to_epoch() {
        assert_eq!(epoch_of("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_of("2026-12-03T07:04:27.123Z"), Some(1_796_281_467));
    }

    #[test]
    fn runs_expand_to_addresses() {
        let v = json!({"runs": [{"first": "10.0.0.1", "last": "10.0.0.3", "kind": "container"}]});
        let h = held(&v);
        assert_eq!(h.len(), 3);
        assert_eq!(h[2].0.to_string(), "10.0.0.3");
    }
}
