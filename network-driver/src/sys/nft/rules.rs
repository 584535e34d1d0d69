//! The plugin's table as a rule model: chain and map names, the expressions rules are made
//! of, the fixed dispatch rules of the base chains, the rules of one network and the map key
//! and value of one published port. Knows what the rules mean, not how messages are framed.

use std::net::{IpAddr, Ipv4Addr};

use super::wire::*;
use crate::firewall::{FwNetwork, FwPort};

/// Chain names inside our table.
pub(super) const CHAIN_FORWARD: &str = "forward";
pub(super) const CHAIN_PREROUTING: &str = "prerouting";
pub(super) const CHAIN_OUTPUT: &str = "output";
pub(super) const CHAIN_POSTROUTING: &str = "postrouting";

/// Verdict maps dispatching from the base chains to per-network and per-port chains, so a
/// change touches only its own chains and one map element whatever the number of networks:
/// forward by input and output interface, postrouting by input and output interface, and
/// prerouting/output NAT by `l4proto . dport`.
pub(super) const MAP_FWD_IIF: &str = "fwd_iif";
pub(super) const MAP_FWD_OIF: &str = "fwd_oif";
pub(super) const MAP_POST_IIF: &str = "post_iif";
pub(super) const MAP_POST_OIF: &str = "post_oif";
/// Published ports: DNAT data maps (no chains, no jumps: adding one costs the same with 10 or
/// 10,000 ports), keyed by `l4proto . dport` for bindings on every local address and by
/// `daddr . l4proto . dport` for bindings on one host address; the value is the container's
/// `address . port`.
pub(super) const MAP_PORTS_ANY: &str = "ports_any";
pub(super) const MAP_PORTS_IP: &str = "ports_ip";
pub(super) const MAP_PORTS6_ANY: &str = "ports6_any";
pub(super) const MAP_PORTS6_IP: &str = "ports6_ip";
/// The DNAT maps in lookup order: bindings on one host address before those on all.
pub(super) const PORT_MAPS: [&str; 4] =
    [MAP_PORTS_IP, MAP_PORTS_ANY, MAP_PORTS6_IP, MAP_PORTS6_ANY];

/// The base chains: name, type, hook, priority.
pub(super) const CHAINS: [(&str, &str, u32, i32); 4] = [
    (CHAIN_FORWARD, "filter", NF_INET_FORWARD, 0),
    (CHAIN_PREROUTING, "nat", NF_INET_PRE_ROUTING, -100),
    (CHAIN_OUTPUT, "nat", NF_INET_LOCAL_OUT, -100),
    (CHAIN_POSTROUTING, "nat", NF_INET_POST_ROUTING, 100),
];

/// One nftables expression: name and its attributes.
pub(super) struct Expr {
    pub(super) name: &'static str,
    pub(super) data: Attrs,
}

pub(super) fn meta(key: u32, dreg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg).be32(2, key);
    Expr { name: "meta", data }
}

pub(super) fn cmp(op: u32, sreg: u32, value: &[u8]) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, sreg).be32(2, op).nest(3, data_value(value));
    Expr { name: "cmp", data }
}

pub(super) fn bitwise(reg: u32, mask: &[u8]) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, reg)
        .be32(2, reg)
        .be32(3, mask.len() as u32)
        .nest(4, data_value(mask))
        .nest(5, data_value(&vec![0u8; mask.len()]));
    Expr {
        name: "bitwise",
        data,
    }
}

pub(super) fn ct(key: u32, dreg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg).be32(2, key);
    Expr { name: "ct", data }
}

pub(super) fn payload(base: u32, offset: u32, len: u32, dreg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg)
        .be32(2, base)
        .be32(3, offset)
        .be32(4, len);
    Expr {
        name: "payload",
        data,
    }
}

pub(super) fn fib_daddr_type(dreg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg)
        .be32(2, FIB_RESULT_ADDRTYPE)
        .be32(3, FIB_F_DADDR);
    Expr { name: "fib", data }
}

pub(super) fn verdict(code: u32) -> Expr {
    let mut v = Attrs::default();
    v.be32(NFTA_VERDICT_CODE, code);
    let mut d = Attrs::default();
    d.nest(NFTA_DATA_VERDICT, v);
    let mut data = Attrs::default();
    data.be32(1, REG_VERDICT).nest(2, d);
    Expr {
        name: "immediate",
        data,
    }
}

pub(super) fn dnat(family: u8, addr_reg: u32, port_reg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, NAT_DNAT)
        .be32(2, u32::from(family))
        .be32(3, addr_reg)
        .be32(5, port_reg);
    Expr { name: "nat", data }
}

pub(super) fn masq() -> Expr {
    Expr {
        name: "masq",
        data: Attrs::default(),
    }
}

pub(super) fn ifname(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, c) in name.bytes().take(15).enumerate() {
        b[i] = c;
    }
    b
}

pub(super) fn iif_is(name: &str, eq: bool) -> Vec<Expr> {
    vec![
        meta(META_IIFNAME, REG_1),
        cmp(if eq { CMP_EQ } else { CMP_NEQ }, REG_1, &ifname(name)),
    ]
}

pub(super) fn oif_is(name: &str, eq: bool) -> Vec<Expr> {
    vec![
        meta(META_OIFNAME, REG_1),
        cmp(if eq { CMP_EQ } else { CMP_NEQ }, REG_1, &ifname(name)),
    ]
}

/// `ct <key> & bits != 0`: the register holds the value in host byte order.
pub(super) fn ct_has(key: u32, bits: u32) -> Vec<Expr> {
    vec![
        ct(key, REG_1),
        bitwise(REG_1, &bits.to_ne_bytes()),
        cmp(CMP_NEQ, REG_1, &[0, 0, 0, 0]),
    ]
}

/// `ip saddr|daddr in net` (offset 12 = saddr, 16 = daddr), IPv4 packets only.
pub(super) fn ip_in(offset: u32, net: ipnet::Ipv4Net, eq: bool) -> Vec<Expr> {
    vec![
        meta(META_NFPROTO, REG_1),
        cmp(CMP_EQ, REG_1, &[NFPROTO_IPV4]),
        payload(PAYLOAD_NETWORK, offset, 4, REG_1),
        bitwise(REG_1, &net.netmask().octets()),
        cmp(
            if eq { CMP_EQ } else { CMP_NEQ },
            REG_1,
            &net.network().octets(),
        ),
    ]
}

/// A rule: the chain and its expressions.
pub(super) struct Rule {
    pub(super) chain: String,
    pub(super) exprs: Vec<Expr>,
}

pub(super) fn rule(chain: &str, parts: Vec<Vec<Expr>>, last: Expr) -> Rule {
    let mut exprs: Vec<Expr> = parts.into_iter().flatten().collect();
    exprs.push(last);
    Rule {
        chain: chain.to_string(),
        exprs,
    }
}

/// `meta <key>` looked up in verdict map `map` (a match jumps to the element's chain).
pub(super) fn vmap(key: Vec<Expr>, sreg: u32, map: &str) -> Vec<Expr> {
    let mut data = Attrs::default();
    data.str(NFTA_LOOKUP_SET, map)
        .be32(NFTA_LOOKUP_SREG, sreg)
        .be32(NFTA_LOOKUP_DREG, REG_VERDICT);
    let mut v = key;
    v.push(Expr {
        name: "lookup",
        data,
    });
    v
}

/// The regular chains of network bridge `b`: forward traffic entering from and leaving to the
/// bridge, postrouting traffic entering from and leaving to it.
pub(super) fn net_chains(b: &str) -> [(String, &'static str, String); 4] {
    [
        (format!("in_{b}"), MAP_FWD_IIF, b.to_string()),
        (format!("out_{b}"), MAP_FWD_OIF, b.to_string()),
        (format!("pin_{b}"), MAP_POST_IIF, b.to_string()),
        (format!("pout_{b}"), MAP_POST_OIF, b.to_string()),
    ]
}

/// The ports map and key of a binding (`[daddr .] l4proto . dport`, a 32-bit register each),
/// fixed-size so that diffing 10,000 bindings allocates little.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct PortKey {
    pub(super) map: &'static str,
    pub(super) key: [u8; 24],
    pub(super) len: usize,
}

impl PortKey {
    pub(super) fn of(p: &FwPort) -> Self {
        let port = p.host_port.to_be_bytes();
        let tail = [p.proto, 0, 0, 0, port[0], port[1], 0, 0];
        let mut key = [0u8; 24];
        let (map, n) = match (p.host_ip, p.container_ip.is_ipv6()) {
            (None, false) => (MAP_PORTS_ANY, 0),
            (None, true) => (MAP_PORTS6_ANY, 0),
            (Some(IpAddr::V4(ip)), _) => {
                key[..4].copy_from_slice(&ip.octets());
                (MAP_PORTS_IP, 4)
            }
            (Some(IpAddr::V6(ip)), _) => {
                key[..16].copy_from_slice(&ip.octets());
                (MAP_PORTS6_IP, 16)
            }
        };
        key[n..n + 8].copy_from_slice(&tail);
        Self {
            map,
            key,
            len: n + 8,
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.key[..self.len]
    }
}

/// The DNAT target of a binding: `container address . container port`.
pub(super) fn port_value(p: &FwPort) -> Vec<u8> {
    let mut v = match p.container_ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let port = p.container_port.to_be_bytes();
    v.extend_from_slice(&[port[0], port[1], 0, 0]);
    v
}

/// `dnat ip[6] to [ip[6] daddr .] meta l4proto . th dport map @map`, for packets of the map's
/// family addressed to this host only (a binding's host address must also be local: traffic
/// merely passing through is never DNATed).
pub(super) fn dnat_lookup(chain: &str, map: &str) -> Rule {
    let v6 = map == MAP_PORTS6_ANY || map == MAP_PORTS6_IP;
    let family = if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 };
    let mut exprs = vec![meta(META_NFPROTO, REG_1), cmp(CMP_EQ, REG_1, &[family])];
    exprs.extend([
        fib_daddr_type(REG_1),
        cmp(CMP_EQ, REG_1, &RTN_LOCAL.to_ne_bytes()),
    ]);
    // Registers: [daddr] then l4proto then dport; the value lands at REG32_00 (address) and
    // right after it (port).
    let (daddr_off, daddr_len, port_reg) = if v6 {
        (24, 16, REG32_04)
    } else {
        (16, 4, REG32_01)
    };
    if map == MAP_PORTS_IP || map == MAP_PORTS6_IP {
        let words = daddr_len / 4;
        exprs.push(payload(PAYLOAD_NETWORK, daddr_off, daddr_len, REG32_00));
        exprs.push(meta(META_L4PROTO, REG32_00 + words));
        exprs.push(payload(PAYLOAD_TRANSPORT, 2, 2, REG32_00 + words + 1));
    } else {
        exprs.push(meta(META_L4PROTO, REG32_00));
        exprs.push(payload(PAYLOAD_TRANSPORT, 2, 2, REG32_01));
    }
    let mut data = Attrs::default();
    data.str(NFTA_LOOKUP_SET, map)
        .be32(NFTA_LOOKUP_SREG, REG32_00)
        .be32(NFTA_LOOKUP_DREG, REG32_00);
    exprs.push(Expr {
        name: "lookup",
        data,
    });
    exprs.push(dnat(family, REG32_00, port_reg));
    Rule {
        chain: chain.to_string(),
        exprs,
    }
}

/// The fixed rules of the base chains: only dispatch.
pub(super) fn base_rules() -> Vec<Rule> {
    let lo = ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).ok();
    let mut out = vec![
        Rule {
            chain: CHAIN_FORWARD.into(),
            exprs: vmap(vec![meta(META_IIFNAME, REG_1)], REG_1, MAP_FWD_IIF),
        },
        Rule {
            chain: CHAIN_FORWARD.into(),
            exprs: vmap(vec![meta(META_OIFNAME, REG_1)], REG_1, MAP_FWD_OIF),
        },
        Rule {
            chain: CHAIN_POSTROUTING.into(),
            exprs: vmap(vec![meta(META_IIFNAME, REG_1)], REG_1, MAP_POST_IIF),
        },
        Rule {
            chain: CHAIN_POSTROUTING.into(),
            exprs: vmap(vec![meta(META_OIFNAME, REG_1)], REG_1, MAP_POST_OIF),
        },
    ];
    for map in PORT_MAPS {
        out.push(dnat_lookup(CHAIN_PREROUTING, map));
    }
    // Locally generated traffic to 127/8 or ::1 is never DNATed: the kernel does not route
    // loopback-sourced packets off the host (route_localnet is off).
    if let Some(lo) = lo {
        out.push(rule(
            CHAIN_OUTPUT,
            vec![ip_in(16, lo, true)],
            verdict(NFT_RETURN),
        ));
    }
    out.push(rule(
        CHAIN_OUTPUT,
        vec![vec![
            meta(META_NFPROTO, REG_1),
            cmp(CMP_EQ, REG_1, &[NFPROTO_IPV6]),
            payload(PAYLOAD_NETWORK, 24, 16, REG_1),
            cmp(CMP_EQ, REG_1, &std::net::Ipv6Addr::LOCALHOST.octets()),
        ]],
        verdict(NFT_RETURN),
    ));
    for map in PORT_MAPS {
        out.push(dnat_lookup(CHAIN_OUTPUT, map));
    }
    out
}

/// The rules of one network, in its own chains (each keeps the full match, so a rule means the
/// same wherever it is read).
pub(super) fn network_rules(n: &FwNetwork, out: &mut Vec<Rule>) {
    let b = n.bridge.as_str();
    let [(cin, ..), (cout, ..), (pin, ..), (pout, ..)] = net_chains(b);
    let icc = if n.icc { NF_ACCEPT } else { NF_DROP };
    out.push(rule(
        &cin,
        vec![iif_is(b, true), oif_is(b, true)],
        verdict(icc),
    ));
    if n.internal {
        out.push(rule(&cin, vec![iif_is(b, true)], verdict(NF_DROP)));
        out.push(rule(&cout, vec![oif_is(b, true)], verdict(NF_DROP)));
        return;
    }
    out.push(rule(
        &cout,
        vec![
            oif_is(b, true),
            ct_has(CT_STATE, CT_STATE_ESTABLISHED_RELATED),
        ],
        verdict(NF_ACCEPT),
    ));
    out.push(rule(
        &cout,
        vec![oif_is(b, true), ct_has(CT_STATUS, CT_STATUS_DST_NAT)],
        verdict(NF_ACCEPT),
    ));
    out.push(rule(&cout, vec![oif_is(b, true)], verdict(NF_DROP)));
    // Hairpin: a container reaching a published port of its own network through a host
    // address is DNATed back onto the bridge; masquerade it so the reply returns via the host.
    for s in &n.subnets {
        out.push(rule(
            &pout,
            vec![
                oif_is(b, true),
                ip_in(12, *s, true),
                ct_has(CT_STATUS, CT_STATUS_DST_NAT),
            ],
            masq(),
        ));
    }
    if n.masquerade {
        for s in &n.subnets {
            out.push(rule(
                &pin,
                vec![ip_in(12, *s, true), oif_is(b, false)],
                masq(),
            ));
        }
    }
}
