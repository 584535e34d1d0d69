//! Settings of the IPAM plugin and their validation (default pools, host-route avoidance).
//! Env names are the upper-cased field names, all declared in `deploy/ipam/config.json`.

use serde::{Deserialize, Serialize};

use crate::addr::Prefix;

/// dockerd 20.10's built-in local default pools, in the same order.
pub const DOCKER_LOCAL_POOLS: &str = "172.17.0.0/16/16,172.18.0.0/16/16,172.19.0.0/16/16,\
172.20.0.0/14/16,172.24.0.0/14/16,172.28.0.0/14/16,192.168.0.0/16/20";
/// dockerd 20.10's built-in global default pool.
pub const DOCKER_GLOBAL_POOLS: &str = "10.0.0.0/8/24";

/// Settings of this plugin (env names are the upper-cased field names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// `DEFAULT_POOLS`: pools of the local address space handed out when a network has no
    /// `--subnet`: comma-separated `base/len/size` (e.g. `10.200.0.0/16/24` = /24s carved from
    /// 10.200.0.0/16), IPv4 and IPv6 alike, tried in order.
    pub default_pools: String,
    /// `GLOBAL_DEFAULT_POOLS`: the same for the global (swarm) address space.
    pub global_default_pools: String,
    /// `AVOID_HOST_ROUTES`: skip default-pool candidates that overlap a route on the host.
    pub avoid_host_routes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_pools: DOCKER_LOCAL_POOLS.into(),
            global_default_pools: DOCKER_GLOBAL_POOLS.into(),
            avoid_host_routes: true,
        }
    }
}

/// One default pool: carve prefixes of length `size` out of `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultPool {
    /// The range carved from.
    pub base: Prefix,
    /// Prefix length of each pool handed out.
    pub size: u8,
}

/// Parse a `base/len/size,...` list; `key` names the setting in errors.
pub fn parse_default_pools(
    key: &str,
    value: &str,
) -> Result<Vec<DefaultPool>, common::ConfigError> {
    let allowed = "comma-separated base/len/size entries such as 10.200.0.0/16/24 or \
                   fd00:42::/48/64, with len <= size <= 30 (IPv4) or 127 (IPv6)";
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || common::ConfigError::invalid(key, item, allowed);
        let (base, size) = item.rsplit_once('/').ok_or_else(bad)?;
        let base = Prefix::parse(base).map_err(|_| bad())?;
        let size: u8 = size.parse().map_err(|_| bad())?;
        let max = if base.v6 { 127 } else { 30 };
        if size < base.len || size > max {
            return Err(bad());
        }
        out.push(DefaultPool { base, size });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_declares_every_setting() {
        common::config::check_config_json::<Config>(include_str!("../../deploy/ipam/config.json"))
            .unwrap();
    }

    #[test]
    fn default_pools_parse() {
        let p = parse_default_pools("DEFAULT_POOLS", DOCKER_LOCAL_POOLS).unwrap();
        assert_eq!(p.len(), 7);
        assert_eq!(p[6].base.to_string(), "192.168.0.0/16");
        assert_eq!(p[6].size, 20);
        let p = parse_default_pools("DEFAULT_POOLS", "10.200.0.0/16/24, fd00:42::/48/64").unwrap();
        assert!(p[1].base.v6);
        assert!(parse_default_pools("DEFAULT_POOLS", "").unwrap().is_empty());
        for bad in [
            "10.0.0.0/8",
            "10.0.0.0/16/8",
            "10.0.0.0/8/31",
            "x/8/24",
            "10.0.0.0/8/x",
        ] {
            let e = parse_default_pools("DEFAULT_POOLS", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("DEFAULT_POOLS") && e.contains(bad), "{e}");
        }
    }
}
