//! Parsing and validation of what `docker network create` hands the driver: the `-o` options
//! (ours and the built-in bridge driver's names), `--internal`, `--ipv6` and the IPAM pools.
//!
//! Pure functions: they decide what a network should look like and refuse bad input with a
//! message naming the option; they never touch the kernel or the store.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::api::{IpamData, Options};
use crate::error::NetworkError;

/// Option keys dockerd itself puts at the top level of `Options`.
const OPT_GENERIC: &str = "com.docker.network.generic";
const OPT_IPV6: &str = "com.docker.network.enable_ipv6";
const OPT_INTERNAL: &str = "com.docker.network.internal";

/// Accepted `-o` keys: (our short name, the built-in bridge driver's name).
const KEY_BRIDGE: [&str; 2] = ["bridge_name", "com.docker.network.bridge.name"];
const KEY_MTU: [&str; 2] = ["mtu", "com.docker.network.driver.mtu"];
const KEY_ICC: [&str; 2] = ["icc", "com.docker.network.bridge.enable_icc"];
const KEY_MASQ: [&str; 2] = [
    "masquerade",
    "com.docker.network.bridge.enable_ip_masquerade",
];
const KEY_HOST_IP: [&str; 2] = ["host_ip", "com.docker.network.bridge.host_binding_ipv4"];
const KEY_PREFIX: [&str; 2] = ["iface_prefix", "com.docker.network.container_iface_prefix"];

/// Every accepted key, for the "unknown option" message.
pub const VALID_KEYS: &str = "bridge_name (com.docker.network.bridge.name), mtu \
     (com.docker.network.driver.mtu), icc (com.docker.network.bridge.enable_icc), masquerade \
     (com.docker.network.bridge.enable_ip_masquerade), host_ip \
     (com.docker.network.bridge.host_binding_ipv4), iface_prefix \
     (com.docker.network.container_iface_prefix)";

/// Smallest and largest MTU accepted (IPv4 minimum; the kernel's maximum for bridge and veth).
pub const MTU_MIN: u32 = 68;
/// See [`MTU_MIN`].
pub const MTU_MAX: u32 = 65535;
/// Default MTU when none is given.
pub const MTU_DEFAULT: u32 = 1500;

/// One address pool of the network with its gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The subnet, e.g. `10.99.0.0/24`.
    pub subnet: IpNet,
    /// The gateway with the subnet's prefix, e.g. `10.99.0.1/24`; put on the bridge.
    pub gateway: Option<IpNet>,
}

/// What a network is, as decided from the request (stored as part of the network's state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Bridge name the user asked for (`None`: generated from the network ID).
    pub bridge_name: Option<String>,
    /// MTU of the bridge and of every veth.
    pub mtu: u32,
    /// Whether containers on the network may talk to each other.
    pub icc: bool,
    /// Outbound masquerade; `None` means "default" (on when the firewall is available).
    pub masquerade: Option<bool>,
    /// `--internal`: no gateway, no traffic leaves the bridge.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// Default host address for published ports without one.
    pub host_ip: Option<IpAddr>,
    /// Interface name prefix inside containers.
    pub iface_prefix: String,
    /// IPv4 pools.
    pub v4: Vec<Pool>,
    /// IPv6 pools (only with `ipv6`).
    pub v6: Vec<Pool>,
}

impl NetworkSpec {
    /// Whether the network needs the firewall because the user explicitly asked for something
    /// only nftables can do (the option's name, for the error).
    pub fn firewall_demand(&self) -> Option<&'static str> {
        if !self.icc {
            Some("icc=false")
        } else if self.masquerade == Some(true) {
            Some("masquerade=true")
        } else if self.internal {
            Some("--internal")
        } else {
            None
        }
    }
}

fn invalid(option: &str, value: &str, reason: impl Into<String>) -> NetworkError {
    NetworkError::InvalidOption {
        option: option.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Go's `strconv.ParseBool`, which the built-in bridge driver uses.
fn parse_bool(option: &str, value: &str) -> Result<bool, NetworkError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(option, value, "expected true or false")),
    }
}

/// Check a Linux interface name: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn check_ifname(option: &str, name: &str) -> Result<(), NetworkError> {
    if name.is_empty() || name.len() > 15 {
        return Err(invalid(
            option,
            name,
            format!(
                "an interface name has 1 to 15 characters, this one has {}",
                name.len()
            ),
        ));
    }
    if name == "." || name == ".." {
        return Err(invalid(option, name, "not a valid interface name"));
    }
    // `%`: the kernel treats `%d` in a new link's name as a template and picks its own name,
    // which would leave a link this driver cannot find again.
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '%' || c.is_whitespace() || !c.is_ascii_graphic())
    {
        return Err(invalid(
            option,
            name,
            "interface names may not contain '/', ':', '%', spaces or non-ASCII characters",
        ));
    }
    Ok(())
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_pools(data: &[IpamData], family: &str) -> Result<Vec<Pool>, NetworkError> {
    let mut pools = Vec::with_capacity(data.len());
    let v6 = family == "IPv6";
    for d in data {
        let subnet: IpNet = d.pool.parse().map_err(|_| {
            NetworkError::InvalidRequest(format!("{family} pool {:?} is not a CIDR", d.pool))
        })?;
        if matches!(subnet, IpNet::V6(_)) != v6 {
            return Err(NetworkError::InvalidRequest(format!(
                "pool {subnet} in {family}Data is not an {family} pool"
            )));
        }
        let gateway = if d.gateway.is_empty() {
            None
        } else {
            let gw: IpNet = d.gateway.parse().map_err(|_| {
                NetworkError::InvalidRequest(format!(
                    "{family} gateway {:?} is not a CIDR",
                    d.gateway
                ))
            })?;
            if !subnet.contains(&gw.addr()) {
                return Err(NetworkError::InvalidRequest(format!(
                    "{family} gateway {} is outside its pool {subnet}",
                    gw.addr()
                )));
            }
            // The bridge address carries the pool's prefix so the connected route covers it.
            IpNet::new(gw.addr(), subnet.prefix_len()).ok()
        };
        pools.push(Pool {
            subnet: subnet.trunc(),
            gateway,
        });
    }
    Ok(pools)
}

/// Decide the network from `CreateNetwork`'s `Options`, `IPv4Data` and `IPv6Data`.
pub fn parse_network(
    options: Option<&Options>,
    v4: &[IpamData],
    v6: &[IpamData],
) -> Result<NetworkSpec, NetworkError> {
    let mut spec = NetworkSpec {
        bridge_name: None,
        mtu: MTU_DEFAULT,
        icc: true,
        masquerade: None,
        internal: false,
        ipv6: false,
        host_ip: None,
        iface_prefix: "eth".into(),
        v4: Vec::new(),
        v6: Vec::new(),
    };
    let empty = Options::new();
    let options = options.unwrap_or(&empty);
    spec.ipv6 = options
        .get(OPT_IPV6)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    spec.internal = match options.get(OPT_INTERNAL) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => parse_bool("--internal", s)?,
        _ => false,
    };
    if let Some(generic) = options.get(OPT_GENERIC).and_then(|g| g.as_object()) {
        for (key, value) in generic {
            let text = value_text(value);
            let k = key.as_str();
            if KEY_BRIDGE.contains(&k) {
                check_ifname(k, &text)?;
                spec.bridge_name = Some(text);
            } else if KEY_MTU.contains(&k) {
                let mtu: u32 = text.trim().parse().map_err(|_| {
                    invalid(
                        k,
                        &text,
                        format!("expected a number from {MTU_MIN} to {MTU_MAX}"),
                    )
                })?;
                if !(MTU_MIN..=MTU_MAX).contains(&mtu) {
                    return Err(invalid(
                        k,
                        &text,
                        format!("the MTU must be from {MTU_MIN} to {MTU_MAX}"),
                    ));
                }
                spec.mtu = mtu;
            } else if KEY_ICC.contains(&k) {
                spec.icc = parse_bool(k, &text)?;
            } else if KEY_MASQ.contains(&k) {
                spec.masquerade = Some(parse_bool(k, &text)?);
            } else if KEY_HOST_IP.contains(&k) {
                let ip: IpAddr = text
                    .parse()
                    .map_err(|_| invalid(k, &text, "expected an IP address"))?;
                spec.host_ip = Some(ip);
            } else if KEY_PREFIX.contains(&k) {
                if text.is_empty()
                    || text.len() > 10
                    || !text.chars().all(|c| c.is_ascii_alphabetic())
                {
                    return Err(invalid(k, &text, "expected 1 to 10 ASCII letters"));
                }
                spec.iface_prefix = text;
            } else {
                return Err(NetworkError::UnknownOption {
                    option: key.clone(),
                    valid: VALID_KEYS,
                });
            }
        }
    }
    if spec.internal && spec.masquerade == Some(true) {
        return Err(invalid(
            "masquerade",
            "true",
            "an --internal network has no outbound traffic to masquerade",
        ));
    }
    spec.v4 = parse_pools(v4, "IPv4")?;
    if spec.ipv6 {
        spec.v6 = parse_pools(v6, "IPv6")?;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(generic: serde_json::Value) -> Options {
        let mut o = Options::new();
        o.insert(OPT_GENERIC.into(), generic);
        o.insert(OPT_IPV6.into(), json!(false));
        o
    }

    fn pool() -> Vec<IpamData> {
        vec![IpamData {
            pool: "10.99.0.0/24".into(),
            gateway: "10.99.0.1/24".into(),
            ..Default::default()
        }]
    }

    #[test]
    fn defaults_and_pools() {
        let s = parse_network(Some(&opts(json!({}))), &pool(), &[]).unwrap();
        assert_eq!(s.mtu, 1500);
        assert!(s.icc && !s.internal && s.masquerade.is_none());
        assert_eq!(s.v4[0].gateway.unwrap().to_string(), "10.99.0.1/24");
        assert_eq!(s.iface_prefix, "eth");
        assert!(s.firewall_demand().is_none());
    }

    #[test]
    fn both_spellings_are_accepted() {
        let s = parse_network(
            Some(&opts(json!({
                "com.docker.network.bridge.name": "obt-x",
                "com.docker.network.driver.mtu": "1400",
                "com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.enable_ip_masquerade": "true"
            }))),
            &pool(),
            &[],
        )
        .unwrap();
        assert_eq!(s.bridge_name.as_deref(), Some("obt-x"));
        assert_eq!((s.mtu, s.icc, s.masquerade), (1400, false, Some(true)));
        let s = parse_network(
            Some(&opts(
                json!({"bridge_name":"b","mtu":"9000","icc":"1","masquerade":"0"}),
            )),
            &pool(),
            &[],
        )
        .unwrap();
        assert_eq!((s.mtu, s.icc, s.masquerade), (9000, true, Some(false)));
    }

    #[test]
    fn bad_input_is_refused_with_the_option_named() {
        let cases = [
            (json!({"colour":"blue"}), "unknown option \"colour\""),
            (json!({"mtu":"abc"}), "mtu"),
            (json!({"mtu":"67"}), "from 68 to 65535"),
            (json!({"mtu":"70000"}), "from 68 to 65535"),
            (
                json!({"bridge_name":"a-very-long-bridge"}),
                "1 to 15 characters",
            ),
            (json!({"bridge_name":"a/b"}), "'/'"),
            (json!({"bridge_name":"ob%d"}), "'%'"),
            (json!({"icc":"maybe"}), "true or false"),
            (json!({"host_ip":"x"}), "IP address"),
        ];
        for (generic, needle) in cases {
            let e = parse_network(Some(&opts(generic.clone())), &pool(), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{generic}: {e}");
        }
        let mut o = opts(json!({"masquerade":"true"}));
        o.insert(OPT_INTERNAL.into(), json!(true));
        assert!(parse_network(Some(&o), &pool(), &[]).is_err());
        let bad_gw = vec![IpamData {
            pool: "10.99.0.0/24".into(),
            gateway: "10.98.0.1/24".into(),
            ..Default::default()
        }];
        assert!(parse_network(None, &bad_gw, &[]).is_err());
        // An IPv6 pool in IPv4Data (and the reverse) is refused.
        let v6_in_v4 = vec![IpamData {
            pool: "fd00:1::/64".into(),
            ..Default::default()
        }];
        let e = parse_network(None, &v6_in_v4, &[]).unwrap_err().to_string();
        assert!(e.contains("not an IPv4 pool"), "{e}");
        let mut o = opts(json!({}));
        o.insert(OPT_IPV6.into(), json!(true));
        let e = parse_network(Some(&o), &pool(), &pool())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an IPv6 pool"), "{e}");
    }

    #[test]
    fn internal_needs_the_firewall() {
        let mut o = opts(json!({}));
        o.insert(OPT_INTERNAL.into(), json!(true));
        let s = parse_network(Some(&o), &pool(), &[]).unwrap();
        assert!(s.internal);
        assert_eq!(s.firewall_demand(), Some("--internal"));
    }
}
