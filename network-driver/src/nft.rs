//! A minimal nftables netlink encoder: turns a [`Ruleset`] into one nfnetlink batch (one
//! kernel transaction) that builds the plugin's table, or a change between two rulesets into a
//! batch that touches only what changed, and sends it.
//!
//! Layout of the table: four base chains whose only rules look the packet up in verdict maps
//! (`iifname`/`oifname` in forward and postrouting, `l4proto . dport` in the NAT chains) and
//! jump to one regular chain per network side (`in_B`, `out_B`, `pin_B`, `pout_B` for bridge
//! `B`) or per published host port (`port_P_N`). Adding or removing a network or a port is
//! then a few chains and map elements, at 10 networks as at 1,000.
//!
//! Why our own: `rustables` 0.9 needs libclang at build time (bindgen) and is GPL-3.0; the few
//! message types we need (table, base chain, rule with meta/cmp/bitwise/ct/payload/fib/
//! immediate/nat/masq expressions) are small and stable kernel ABI (`linux/netfilter/
//! nf_tables.h`).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use crate::firewall::{FwNetwork, FwPort, Ruleset};
use crate::sys::SysError;

// netlink
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
// nfnetlink
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `inet`: one table whose chains see IPv4 and IPv6 alike, so isolation by interface holds for
/// both families.
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
// nf_tables message types
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
// attributes
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFT_MSG_GETTABLE: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFT_SET_MAP: u32 = 0x8;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// nft's own type numbers (userspace metadata only: `nft list` prints keys with them):
/// ifname; inet_proto . inet_service; ipv4_addr . inet_proto . inet_service; and
/// ipv4_addr . inet_service (a concatenation packs 6 bits per type).
const TYPE_IFNAME: u32 = 41;
const TYPE_PROTO_SERVICE: u32 = (12 << 6) | 13;
const TYPE_ADDR_PROTO_SERVICE: u32 = (7 << 12) | (12 << 6) | 13;
const TYPE_ADDR_SERVICE: u32 = (7 << 6) | 13;
const TYPE_ADDR6_PROTO_SERVICE: u32 = (8 << 12) | (12 << 6) | 13;
const TYPE_ADDR6_SERVICE: u32 = (8 << 6) | 13;
// hooks
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
// verdicts
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_JUMP: u32 = (-3i32) as u32;
const NFT_RETURN: u32 = (-5i32) as u32;
// registers
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
/// The first two 32-bit registers (they overlap `REG_1`): a concatenated key.
const REG32_00: u32 = 8;
const REG32_01: u32 = 9;
const REG32_04: u32 = 12;
// meta keys
const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_L4PROTO: u32 = 16;
const META_NFPROTO: u32 = 15;
// ct keys and bits
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const CT_STATE_ESTABLISHED_RELATED: u32 = 2 | 4;
const CT_STATUS_DST_NAT: u32 = 1 << 5;
// payload bases
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
// cmp ops
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
// fib
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_DADDR: u32 = 1 << 1;
const RTN_LOCAL: u32 = 2;
// nat
const NAT_DNAT: u32 = 1;

/// Chain names inside our table.
const CHAIN_FORWARD: &str = "forward";
const CHAIN_PREROUTING: &str = "prerouting";
const CHAIN_OUTPUT: &str = "output";
const CHAIN_POSTROUTING: &str = "postrouting";

/// Verdict maps dispatching from the base chains to per-network and per-port chains, so a
/// change touches only its own chains and one map element whatever the number of networks:
/// forward by input and output interface, postrouting by input and output interface, and
/// prerouting/output NAT by `l4proto . dport`.
const MAP_FWD_IIF: &str = "fwd_iif";
const MAP_FWD_OIF: &str = "fwd_oif";
const MAP_POST_IIF: &str = "post_iif";
const MAP_POST_OIF: &str = "post_oif";
/// Published ports: DNAT data maps (no chains, no jumps: adding one costs the same with 10 or
/// 10,000 ports), keyed by `l4proto . dport` for bindings on every local address and by
/// `daddr . l4proto . dport` for bindings on one host address; the value is the container's
/// `address . port`.
const MAP_PORTS_ANY: &str = "ports_any";
const MAP_PORTS_IP: &str = "ports_ip";
const MAP_PORTS6_ANY: &str = "ports6_any";
const MAP_PORTS6_IP: &str = "ports6_ip";
/// The DNAT maps in lookup order: bindings on one host address before those on all.
const PORT_MAPS: [&str; 4] = [MAP_PORTS_IP, MAP_PORTS_ANY, MAP_PORTS6_IP, MAP_PORTS6_ANY];

/// The base chains: name, type, hook, priority.
const CHAINS: [(&str, &str, u32, i32); 4] = [
    (CHAIN_FORWARD, "filter", NF_INET_FORWARD, 0),
    (CHAIN_PREROUTING, "nat", NF_INET_PRE_ROUTING, -100),
    (CHAIN_OUTPUT, "nat", NF_INET_LOCAL_OUT, -100),
    (CHAIN_POSTROUTING, "nat", NF_INET_POST_ROUTING, 100),
];

/// Builder of netlink attributes into a byte buffer.
#[derive(Default)]
struct Attrs {
    buf: Vec<u8>,
}

impl Attrs {
    fn put(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
    fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(kind, &v)
    }
    fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.put(kind, &v.to_be_bytes())
    }
    fn nest(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.buf)
    }
}

/// One nftables expression: name and its attributes.
struct Expr {
    name: &'static str,
    data: Attrs,
}

fn data_value(bytes: &[u8]) -> Attrs {
    let mut a = Attrs::default();
    a.put(NFTA_DATA_VALUE, bytes);
    a
}

fn meta(key: u32, dreg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg).be32(2, key);
    Expr { name: "meta", data }
}

fn cmp(op: u32, sreg: u32, value: &[u8]) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, sreg).be32(2, op).nest(3, data_value(value));
    Expr { name: "cmp", data }
}

fn bitwise(reg: u32, mask: &[u8]) -> Expr {
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

fn ct(key: u32, dreg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg).be32(2, key);
    Expr { name: "ct", data }
}

fn payload(base: u32, offset: u32, len: u32, dreg: u32) -> Expr {
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

fn fib_daddr_type(dreg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg)
        .be32(2, FIB_RESULT_ADDRTYPE)
        .be32(3, FIB_F_DADDR);
    Expr { name: "fib", data }
}

fn verdict(code: u32) -> Expr {
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

fn dnat(family: u8, addr_reg: u32, port_reg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, NAT_DNAT)
        .be32(2, u32::from(family))
        .be32(3, addr_reg)
        .be32(5, port_reg);
    Expr { name: "nat", data }
}

fn masq() -> Expr {
    Expr {
        name: "masq",
        data: Attrs::default(),
    }
}

fn ifname(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, c) in name.bytes().take(15).enumerate() {
        b[i] = c;
    }
    b
}

fn iif_is(name: &str, eq: bool) -> Vec<Expr> {
    vec![
        meta(META_IIFNAME, REG_1),
        cmp(if eq { CMP_EQ } else { CMP_NEQ }, REG_1, &ifname(name)),
    ]
}

fn oif_is(name: &str, eq: bool) -> Vec<Expr> {
    vec![
        meta(META_OIFNAME, REG_1),
        cmp(if eq { CMP_EQ } else { CMP_NEQ }, REG_1, &ifname(name)),
    ]
}

/// `ct <key> & bits != 0`: the register holds the value in host byte order.
fn ct_has(key: u32, bits: u32) -> Vec<Expr> {
    vec![
        ct(key, REG_1),
        bitwise(REG_1, &bits.to_ne_bytes()),
        cmp(CMP_NEQ, REG_1, &[0, 0, 0, 0]),
    ]
}

/// `ip saddr|daddr in net` (offset 12 = saddr, 16 = daddr), IPv4 packets only.
fn ip_in(offset: u32, net: ipnet::Ipv4Net, eq: bool) -> Vec<Expr> {
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
struct Rule {
    chain: String,
    exprs: Vec<Expr>,
}

fn rule(chain: &str, parts: Vec<Vec<Expr>>, last: Expr) -> Rule {
    let mut exprs: Vec<Expr> = parts.into_iter().flatten().collect();
    exprs.push(last);
    Rule {
        chain: chain.to_string(),
        exprs,
    }
}

/// `meta <key>` looked up in verdict map `map` (a match jumps to the element's chain).
fn vmap(key: Vec<Expr>, sreg: u32, map: &str) -> Vec<Expr> {
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
fn net_chains(b: &str) -> [(String, &'static str, String); 4] {
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
struct PortKey {
    map: &'static str,
    key: [u8; 24],
    len: usize,
}

impl PortKey {
    fn of(p: &FwPort) -> Self {
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

    fn bytes(&self) -> &[u8] {
        &self.key[..self.len]
    }
}

/// The DNAT target of a binding: `container address . container port`.
fn port_value(p: &FwPort) -> Vec<u8> {
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
fn dnat_lookup(chain: &str, map: &str) -> Rule {
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
fn base_rules() -> Vec<Rule> {
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
fn network_rules(n: &FwNetwork, out: &mut Vec<Rule>) {
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

/// A map to create.
struct MapSpec {
    name: &'static str,
    id: u32,
    key_len: u32,
    key_type: u32,
    /// `None`: a verdict map; else the value's nft type and length.
    data: Option<(u32, u32)>,
}

/// The value of a map element.
#[derive(Clone, Copy)]
enum Value<'a> {
    Jump(&'a str),
    Data(&'a [u8]),
    Delete,
}

/// A batch of nfnetlink messages.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    /// What each sequence number did, for error messages.
    what: Vec<(u32, String)>,
    /// Offset of the flags of the last content message, and its sequence number.
    last: Option<(usize, u32)>,
}

impl Batch {
    fn new(seq: u32) -> Self {
        let mut b = Self {
            buf: Vec::new(),
            seq,
            what: Vec::new(),
            last: None,
        };
        b.msg(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            Attrs::default(),
            "batch",
        );
        b
    }

    fn msg(&mut self, kind: u16, flags: u16, family: u8, attrs: Attrs, what: &str) {
        let len = 16 + 4 + attrs.buf.len();
        let batch = kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END;
        let ty = if batch {
            kind
        } else {
            (NFNL_SUBSYS_NFTABLES << 8) | kind
        };
        // Only the batch's last message asks for an ack (see `finish`): a kernel answer per
        // message overflows the receive buffer on large batches (ENOBUFS from ~40 networks).
        // Errors are reported for any message whether it asked for an ack or not.
        let flags = if batch { flags } else { flags & !NLM_F_ACK };
        self.buf.extend_from_slice(&(len as u32).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        if !batch {
            self.last = Some((self.buf.len(), self.seq));
        }
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, res_id (the subsystem for batch messages), big endian.
        self.buf.push(family);
        self.buf.push(0);
        let res_id: u16 = if batch { NFNL_SUBSYS_NFTABLES } else { 0 };
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(&attrs.buf);
        self.what.push((self.seq, what.to_string()));
        self.seq = self.seq.wrapping_add(1);
    }

    fn table(&mut self, kind: u16, name: &str) {
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, name);
        if kind == NFT_MSG_NEWTABLE {
            a.be32(NFTA_TABLE_FLAGS, 0);
            // Kept from creation on: the mark that says the table is ours (see `table_mark`).
            a.put(NFTA_TABLE_USERDATA, &table_mark(name));
        }
        let flags = NLM_F_REQUEST
            | NLM_F_ACK
            | if kind == NFT_MSG_NEWTABLE {
                NLM_F_CREATE
            } else {
                0
            };
        self.table_in(kind, name, NFPROTO_INET, a, flags);
    }

    fn table_in(&mut self, kind: u16, name: &str, family: u8, a: Attrs, flags: u16) {
        let fam = if family == NFPROTO_INET { "inet" } else { "ip" };
        let what = if kind == NFT_MSG_NEWTABLE {
            format!("add table {fam} {name}")
        } else {
            format!("delete table {fam} {name}")
        };
        self.msg(kind, flags, family, a, &what);
    }

    /// Remove a table of family `ip` left by versions before the `inet` table (absent: fine):
    /// created if missing, then deleted, in the same batch.
    fn drop_legacy_table(&mut self, name: &str) {
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, name);
        a.be32(NFTA_TABLE_FLAGS, 0);
        self.table_in(
            NFT_MSG_NEWTABLE,
            name,
            NFPROTO_IPV4,
            a,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        );
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, name);
        self.table_in(
            NFT_MSG_DELTABLE,
            name,
            NFPROTO_IPV4,
            a,
            NLM_F_REQUEST | NLM_F_ACK,
        );
    }

    fn chain(&mut self, table: &str, name: &str, kind: &str, hook: u32, prio: i32) {
        let mut h = Attrs::default();
        h.be32(NFTA_HOOK_HOOKNUM, hook)
            .be32(NFTA_HOOK_PRIORITY, prio as u32);
        let mut a = Attrs::default();
        a.str(NFTA_CHAIN_TABLE, table)
            .str(NFTA_CHAIN_NAME, name)
            .nest(NFTA_CHAIN_HOOK, h)
            .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            .str(NFTA_CHAIN_TYPE, kind);
        self.msg(
            NFT_MSG_NEWCHAIN,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            NFPROTO_INET,
            a,
            &format!("add chain {name}"),
        );
    }

    /// A regular chain (no hook): reached only through a map element.
    fn regular_chain(&mut self, table: &str, name: &str) {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        self.chain_msg(NFT_MSG_NEWCHAIN, flags, table, name, "add");
    }

    /// Delete a chain and its rules (its map element must be gone first, same batch).
    fn del_chain(&mut self, table: &str, name: &str) {
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        self.chain_msg(NFT_MSG_DELCHAIN, flags, table, name, "delete");
    }

    fn chain_msg(&mut self, kind: u16, flags: u16, table: &str, name: &str, verb: &str) {
        let mut a = Attrs::default();
        a.str(NFTA_CHAIN_TABLE, table).str(NFTA_CHAIN_NAME, name);
        self.msg(
            kind,
            flags,
            NFPROTO_INET,
            a,
            &format!("{verb} chain {name}"),
        );
    }

    /// A map with keys of `key_len` bytes to verdicts (`data` = `None`) or to values of
    /// `(type, length)`.
    fn map(&mut self, table: &str, m: MapSpec) {
        let mut a = Attrs::default();
        a.str(NFTA_SET_TABLE, table)
            .str(NFTA_SET_NAME, m.name)
            .be32(NFTA_SET_FLAGS, NFT_SET_MAP)
            .be32(NFTA_SET_KEY_TYPE, m.key_type)
            .be32(NFTA_SET_KEY_LEN, m.key_len);
        match m.data {
            None => {
                a.be32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
            }
            Some((ty, len)) => {
                a.be32(NFTA_SET_DATA_TYPE, ty).be32(NFTA_SET_DATA_LEN, len);
            }
        }
        a.be32(NFTA_SET_ID, m.id);
        if m.key_type == TYPE_IFNAME {
            // For `nft list` only: interface names are stored in host byte order (libnftnl
            // udata TLV: KEYBYTEORDER = BYTEORDER_HOST_ENDIAN).
            let mut ud = vec![0u8, 4];
            ud.extend_from_slice(&1u32.to_ne_bytes());
            a.put(NFTA_SET_USERDATA, &ud);
        }
        self.msg(
            NFT_MSG_NEWSET,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            NFPROTO_INET,
            a,
            &format!("add map {}", m.name),
        );
    }

    /// Add (with its value) or delete the element `key` of map `map`.
    fn elem(&mut self, table: &str, map: &str, key: &[u8], value: Value<'_>) {
        let mut el = Attrs::default();
        el.nest(NFTA_SET_ELEM_KEY, data_value(key));
        let what = match value {
            Value::Jump(chain) => {
                let mut v = Attrs::default();
                v.be32(NFTA_VERDICT_CODE, NFT_JUMP)
                    .str(NFTA_VERDICT_CHAIN, chain);
                let mut d = Attrs::default();
                d.nest(NFTA_DATA_VERDICT, v);
                el.nest(NFTA_SET_ELEM_DATA, d);
                format!("add element to {map} (jump {chain})")
            }
            Value::Data(bytes) => {
                el.nest(NFTA_SET_ELEM_DATA, data_value(bytes));
                format!("add element to {map}")
            }
            Value::Delete => format!("delete element from {map}"),
        };
        let mut list = Attrs::default();
        list.nest(NFTA_LIST_ELEM, el);
        let mut a = Attrs::default();
        a.str(NFTA_SET_ELEM_LIST_TABLE, table)
            .str(NFTA_SET_ELEM_LIST_SET, map)
            .nest(NFTA_SET_ELEM_LIST_ELEMENTS, list);
        let (kind, flags) = match value {
            Value::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
            _ => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE),
        };
        self.msg(kind, flags, NFPROTO_INET, a, &what);
    }

    /// Delete every rule of a chain (no handle given: the kernel flushes the chain).
    fn flush_chain(&mut self, table: &str, chain: &str) {
        let mut a = Attrs::default();
        a.str(NFTA_RULE_TABLE, table).str(NFTA_RULE_CHAIN, chain);
        self.msg(
            NFT_MSG_DELRULE,
            NLM_F_REQUEST | NLM_F_ACK,
            NFPROTO_INET,
            a,
            &format!("flush chain {chain}"),
        );
    }

    fn rule(&mut self, table: &str, r: Rule, n: usize) {
        let mut list = Attrs::default();
        for e in r.exprs {
            let mut el = Attrs::default();
            el.str(NFTA_EXPR_NAME, e.name);
            if !e.data.buf.is_empty() {
                el.nest(NFTA_EXPR_DATA, e.data);
            }
            list.nest(NFTA_LIST_ELEM, el);
        }
        let mut a = Attrs::default();
        a.str(NFTA_RULE_TABLE, table)
            .str(NFTA_RULE_CHAIN, &r.chain)
            .nest(NFTA_RULE_EXPRESSIONS, list);
        self.msg(
            NFT_MSG_NEWRULE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            NFPROTO_INET,
            a,
            &format!("add rule #{n} in chain {}", r.chain),
        );
    }

    fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>) {
        if let Some((at, _)) = self.last {
            let flags = u16::from_ne_bytes([self.buf[at], self.buf[at + 1]]) | NLM_F_ACK;
            self.buf[at..at + 2].copy_from_slice(&flags.to_ne_bytes());
        }
        self.msg(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            0,
            Attrs::default(),
            "batch end",
        );
        (self.buf, self.what)
    }
}

/// An encoded batch and what each of its sequence numbers does (for error messages).
pub type Encoded = (Vec<u8>, Vec<(u32, String)>);

/// Published ports as map elements: key → value (the first binding of a key wins; the service
/// never records two).
type PortElems = HashMap<PortKey, Vec<u8>>;

fn port_elems(rules: &Ruleset) -> PortElems {
    let mut m = PortElems::with_capacity(rules.ports.len());
    for p in &rules.ports {
        m.entry(PortKey::of(p)).or_insert_with(|| port_value(p));
    }
    m
}

fn networks(rules: &Ruleset) -> BTreeMap<&str, &FwNetwork> {
    rules
        .networks
        .iter()
        .map(|n| (n.bridge.as_str(), n))
        .collect()
}

impl Batch {
    fn add_network(&mut self, t: &str, n: &FwNetwork, rules: &mut Vec<Rule>) {
        for (chain, ..) in net_chains(&n.bridge) {
            self.regular_chain(t, &chain);
        }
        network_rules(n, rules);
    }

    fn link_network(&mut self, t: &str, n: &FwNetwork) {
        for (chain, map, key) in net_chains(&n.bridge) {
            self.elem(t, map, &ifname(&key), Value::Jump(&chain));
        }
    }

    fn drop_network(&mut self, t: &str, bridge: &str) {
        for (_, map, key) in net_chains(bridge) {
            self.elem(t, map, &ifname(&key), Value::Delete);
        }
        for (chain, ..) in net_chains(bridge) {
            self.del_chain(t, &chain);
        }
    }

    fn rules(&mut self, t: &str, rules: Vec<Rule>) {
        for (i, r) in rules.into_iter().enumerate() {
            self.rule(t, r, i + 1);
        }
    }
}

/// The batch building the table from nothing: whatever the table held before (an older
/// layout, a partial state after an outside change) is deleted in the same transaction. Used
/// at start and whenever an incremental change could not be applied.
pub fn encode_full(rules: &Ruleset, seq: u32) -> Encoded {
    let t = rules.table.as_str();
    let mut b = Batch::new(seq);
    b.drop_legacy_table(t);
    b.table(NFT_MSG_NEWTABLE, t);
    b.table(NFT_MSG_DELTABLE, t);
    b.table(NFT_MSG_NEWTABLE, t);
    for (chain, kind, hook, prio) in CHAINS {
        b.chain(t, chain, kind, hook, prio);
    }
    let ifmaps = [MAP_FWD_IIF, MAP_FWD_OIF, MAP_POST_IIF, MAP_POST_OIF];
    for (id, name) in (1..).zip(ifmaps) {
        b.map(
            t,
            MapSpec {
                name,
                id,
                key_len: 16,
                key_type: TYPE_IFNAME,
                data: None,
            },
        );
    }
    for (id, name, key_len, key_type, data) in [
        (
            5,
            MAP_PORTS_ANY,
            8,
            TYPE_PROTO_SERVICE,
            (TYPE_ADDR_SERVICE, 8),
        ),
        (
            6,
            MAP_PORTS_IP,
            12,
            TYPE_ADDR_PROTO_SERVICE,
            (TYPE_ADDR_SERVICE, 8),
        ),
        (
            7,
            MAP_PORTS6_ANY,
            8,
            TYPE_PROTO_SERVICE,
            (TYPE_ADDR6_SERVICE, 20),
        ),
        (
            8,
            MAP_PORTS6_IP,
            24,
            TYPE_ADDR6_PROTO_SERVICE,
            (TYPE_ADDR6_SERVICE, 20),
        ),
    ] {
        b.map(
            t,
            MapSpec {
                name,
                id,
                key_len,
                key_type,
                data: Some(data),
            },
        );
    }
    let mut out = base_rules();
    for n in &rules.networks {
        b.add_network(t, n, &mut out);
    }
    b.rules(t, out);
    for n in &rules.networks {
        b.link_network(t, n);
    }
    let mut elems: Vec<_> = port_elems(rules).into_iter().collect();
    elems.sort_by(|a, b| (a.0.map, a.0.key).cmp(&(b.0.map, b.0.key)));
    for (k, value) in &elems {
        b.elem(t, k.map, k.bytes(), Value::Data(value));
    }
    b.finish()
}

/// The batch turning the table built for `old` into the one for `new` (same table): only the
/// networks and published ports that differ are touched. `None` when nothing differs.
pub fn encode_change(old: &Ruleset, new: &Ruleset, seq: u32) -> Option<Encoded> {
    let t = new.table.as_str();
    let mut b = Batch::new(seq);
    let mut out = Vec::new();
    let mut changed = false;
    let (old_n, new_n) = if old.networks == new.networks {
        (BTreeMap::new(), BTreeMap::new())
    } else {
        (networks(old), networks(new))
    };
    for bridge in old_n.keys().filter(|k| !new_n.contains_key(*k)) {
        b.drop_network(t, bridge);
        changed = true;
    }
    // Most changes touch networks or ports, not both: skip the diff of an unchanged side.
    let (old_p, new_p) = if old.ports == new.ports {
        (PortElems::new(), PortElems::new())
    } else {
        (port_elems(old), port_elems(new))
    };
    for (k, value) in &old_p {
        if new_p.get(k) != Some(value) {
            b.elem(t, k.map, k.bytes(), Value::Delete);
            changed = true;
        }
    }
    let mut link_n = Vec::new();
    for (bridge, n) in &new_n {
        match old_n.get(bridge) {
            None => {
                b.add_network(t, n, &mut out);
                link_n.push(*n);
            }
            Some(o) if o != n => {
                for (chain, ..) in net_chains(bridge) {
                    b.flush_chain(t, &chain);
                }
                network_rules(n, &mut out);
            }
            Some(_) => continue,
        }
        changed = true;
    }
    b.rules(t, out);
    for n in link_n {
        b.link_network(t, n);
    }
    for (k, value) in &new_p {
        if old_p.get(k) != Some(value) {
            b.elem(t, k.map, k.bytes(), Value::Data(value));
            changed = true;
        }
    }
    changed.then(|| b.finish())
}

/// A table as `nft add table inet NAME` makes it (no mark): someone else's, for tests.
#[cfg(test)]
pub fn foreign_table_batch(table: &str) -> Encoded {
    let mut b = Batch::new(1);
    let mut a = Attrs::default();
    a.str(NFTA_TABLE_NAME, table);
    b.table_in(
        NFT_MSG_NEWTABLE,
        table,
        NFPROTO_INET,
        a,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
    );
    b.finish()
}

/// The batch removing the table (absent: fine).
pub fn encode_delete(table: &str, seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
    let mut b = Batch::new(seq);
    b.drop_legacy_table(table);
    b.table(NFT_MSG_NEWTABLE, table);
    b.table(NFT_MSG_DELTABLE, table);
    b.finish()
}

/// The mark our tables carry in their userdata: a table of our name without it belongs to
/// someone else and is never replaced or deleted.
pub fn table_mark(table: &str) -> Vec<u8> {
    format!("outboard-network {table}").into_bytes()
}

/// Whose table `inet <table>` is: `None` when absent, else whether it carries our mark.
pub fn table_is_ours(table: &str) -> Result<Option<bool>, SysError> {
    use nix::sys::socket::{
        bind, recv, send as nl_send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
        SockProtocol, SockType,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| SysError::Other(format!("nftables netlink socket: {e}")))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
        .map_err(|e| SysError::Other(format!("nftables netlink bind: {e}")))?;
    let mut a = Attrs::default();
    a.str(NFTA_TABLE_NAME, table);
    let mut msg = Vec::new();
    let len = (16 + 4 + a.buf.len()) as u32;
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
    msg.extend_from_slice(&a.buf);
    nl_send(fd.as_raw_fd(), &msg, MsgFlags::empty()).map_err(|e| SysError::from_errno(e as i32))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut found = None;
    // Bounded: the kernel answers with the table (if any) and one NLMSG_ERROR (ack or error).
    for _ in 0..16 {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SysError::from_errno(e as i32)),
        };
        let (table_mark_found, done) = parse_table_reply(&buf[..n], &table_mark(table))?;
        if let Some(m) = table_mark_found {
            found = Some(m);
        }
        if done {
            return Ok(found);
        }
    }
    Err(SysError::Other(format!(
        "nftables: no answer about table {table}"
    )))
}

/// One receive buffer of a GETTABLE answer: `(Some(ours?) if the table was in it, finished?)`.
fn parse_table_reply(mut b: &[u8], mark: &[u8]) -> Result<(Option<bool>, bool), SysError> {
    let mut table = None;
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        if ty == NLMSG_ERROR && len >= 20 {
            let err = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
            return match err {
                0 => Ok((table, true)),
                e if -e == libc::ENOENT => Ok((None, true)),
                e => Err(SysError::from_errno(-e)),
            };
        }
        if ty == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE && len >= 20 {
            let mut attrs = &b[20..len];
            let mut ours = false;
            while attrs.len() >= 4 {
                let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let aty = u16::from_ne_bytes([attrs[2], attrs[3]]) & !NLA_F_NESTED;
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if aty == NFTA_TABLE_USERDATA && &attrs[4..alen] == mark {
                    ours = true;
                }
                attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
            }
            table = Some(ours);
        }
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    Ok((table, false))
}

/// Send a batch on a fresh `NETLINK_NETFILTER` socket and collect the kernel's answers. The
/// kernel processes a batch synchronously inside `send`, so every ack is queued when it returns.
pub fn send(batch: &[u8], what: &[(u32, String)]) -> Result<(), SysError> {
    use nix::sys::socket::{
        bind, recv, send as nl_send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
        SockProtocol, SockType,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| SysError::Other(format!("nftables netlink socket: {e}")))?;
    use std::os::fd::AsRawFd;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
        .map_err(|e| SysError::Other(format!("nftables netlink bind: {e}")))?;
    // A batch goes in one sendmsg, limited by the socket's send buffer (EMSGSIZE past ~200 KiB,
    // about 100 networks with the default): size both buffers for this batch (the FORCE
    // variants need CAP_NET_ADMIN, which the plugin has; fall back to the plain ones).
    let want = batch.len().saturating_mul(2).saturating_add(1 << 16);
    {
        use nix::sys::socket::{setsockopt, sockopt};
        if setsockopt(&fd, sockopt::SndBufForce, &want).is_err() {
            let _ = setsockopt(&fd, sockopt::SndBuf, &want);
        }
        if setsockopt(&fd, sockopt::RcvBufForce, &(1 << 20)).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &(1 << 20));
        }
    }
    let sent = nl_send(fd.as_raw_fd(), batch, MsgFlags::empty())
        .map_err(|e| SysError::from_errno(e as i32))?;
    if sent != batch.len() {
        return Err(SysError::Other(format!(
            "nftables batch truncated: sent {sent} of {} bytes",
            batch.len()
        )));
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut first_error: Option<(u32, i32)> = None;
    let last_seq = what
        .iter()
        .rev()
        .find(|(_, w)| w != "batch end")
        .map(|(s, _)| *s);
    let mut acked = false;
    loop {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SysError::from_errno(e as i32)),
        };
        if n == 0 {
            break;
        }
        for (seq, err) in parse_acks(&buf[..n]) {
            if err != 0 && first_error.is_none() {
                first_error = Some((seq, err));
            }
            if err == 0 && Some(seq) == last_seq {
                acked = true;
            }
        }
    }
    match first_error {
        None if acked || last_seq.is_none() => Ok(()),
        None => Err(SysError::Other(
            "nftables: the kernel did not acknowledge the batch".into(),
        )),
        Some((seq, err)) => {
            let step = what
                .iter()
                .find(|(s, _)| *s == seq)
                .map(|(_, w)| w.as_str())
                .unwrap_or("nftables batch");
            let e = SysError::from_errno(-err);
            Err(SysError::Other(format!("nftables: {step}: {e}")))
        }
    }
}

/// `(sequence, error)` of each `NLMSG_ERROR` in a receive buffer (error 0 = ack).
fn parse_acks(mut b: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        if len < 16 || len > b.len() {
            break;
        }
        if ty == NLMSG_ERROR && len >= 20 {
            let err = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
            out.push((seq, err));
        }
        let aligned = (len + 3) & !3;
        if aligned >= b.len() {
            break;
        }
        b = &b[aligned..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk a batch: every message's length adds up and every attribute fits its parent.
    fn walk(buf: &[u8]) -> Vec<u16> {
        let mut types = Vec::new();
        let mut b = buf;
        while !b.is_empty() {
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            assert!(
                len >= 20 && len <= b.len() && len.is_multiple_of(4),
                "message length {len}"
            );
            types.push(u16::from_ne_bytes([b[4], b[5]]));
            check_attrs(&b[20..len]);
            b = &b[len..];
        }
        types
    }

    fn check_attrs(mut a: &[u8]) {
        while !a.is_empty() {
            let len = u16::from_ne_bytes([a[0], a[1]]) as usize;
            let ty = u16::from_ne_bytes([a[2], a[3]]);
            assert!(len >= 4 && len <= a.len(), "attribute length {len}");
            if ty & NLA_F_NESTED != 0 {
                check_attrs(&a[4..len]);
            }
            a = &a[((len + 3) & !3).min(a.len())..];
        }
    }

    fn sample() -> Ruleset {
        Ruleset {
            table: "outboard_network_abcd".into(),
            networks: vec![
                FwNetwork {
                    bridge: "obabcd123456789".into(),
                    subnets: vec!["10.99.0.0/24".parse().unwrap()],
                    internal: false,
                    icc: true,
                    masquerade: true,
                },
                FwNetwork {
                    bridge: "obt-int".into(),
                    subnets: vec![],
                    internal: true,
                    icc: false,
                    masquerade: false,
                },
            ],
            ports: vec![FwPort {
                proto: 6,
                host_ip: None,
                host_port: 8080,
                container_ip: Ipv4Addr::new(10, 99, 0, 2).into(),
                container_port: 80,
            }],
        }
    }

    fn count(types: &[u16], m: u16) -> usize {
        types
            .iter()
            .filter(|&&x| x == (NFNL_SUBSYS_NFTABLES << 8) | m)
            .count()
    }

    #[test]
    fn full_batch_is_well_formed() {
        let (buf, what) = encode_full(&sample(), 100);
        let types = walk(&buf);
        assert_eq!(types.first(), Some(&NFNL_MSG_BATCH_BEGIN));
        assert_eq!(types.last(), Some(&NFNL_MSG_BATCH_END));
        let t = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
        // A legacy `ip` table of the same name is added and deleted, then the `inet` table is
        // made empty (added, deleted, added) and filled.
        assert_eq!(types[1], t(NFT_MSG_NEWTABLE));
        assert_eq!(types[2], t(NFT_MSG_DELTABLE));
        assert!(what[1].1.starts_with("add table ip "), "{what:?}");
        assert!(what[3].1.starts_with("add table inet "), "{what:?}");
        // 4 base chains, 4 per network (2); published ports are map elements only.
        assert_eq!(count(&types, NFT_MSG_NEWCHAIN), 4 + 8);
        assert_eq!(count(&types, NFT_MSG_NEWSET), 8);
        assert_eq!(count(&types, NFT_MSG_NEWSETELEM), 8 + 1);
        // base: 4 interface dispatch + 4 DNAT lookups in prerouting, 2 loopback returns + 4 in
        // output = 14; network 1: icc, established, dnat, drop, hairpin, masquerade = 6;
        // internal: 3.
        assert_eq!(count(&types, NFT_MSG_NEWRULE), 14 + 6 + 3);
        assert_eq!(what.len(), types.len());
        assert_eq!(what[0].0, 100);
    }

    #[test]
    fn a_change_touches_only_what_differs() {
        let old = sample();
        assert!(encode_change(&old, &old, 1).is_none());
        // One network more: its 4 chains, 6 rules, 4 elements; nothing else.
        let mut new = old.clone();
        new.networks.push(FwNetwork {
            bridge: "obnew".into(),
            subnets: vec!["10.99.9.0/24".parse().unwrap()],
            internal: false,
            icc: true,
            masquerade: true,
        });
        let (buf, _) = encode_change(&old, &new, 1).unwrap();
        let types = walk(&buf);
        assert_eq!(count(&types, NFT_MSG_NEWCHAIN), 4);
        assert_eq!(count(&types, NFT_MSG_NEWRULE), 6);
        assert_eq!(count(&types, NFT_MSG_NEWSETELEM), 4);
        assert_eq!(count(&types, NFT_MSG_DELCHAIN), 0);
        assert_eq!(count(&types, NFT_MSG_DELTABLE), 0);
        // And back: elements deleted before their chains.
        let (buf, what) = encode_change(&new, &old, 1).unwrap();
        let types = walk(&buf);
        assert_eq!(count(&types, NFT_MSG_DELSETELEM), 4);
        assert_eq!(count(&types, NFT_MSG_DELCHAIN), 4);
        let first_del_chain = what.iter().position(|(_, w)| w.starts_with("delete chain"));
        let last_del_elem = what
            .iter()
            .rposition(|(_, w)| w.starts_with("delete element"));
        assert!(last_del_elem < first_del_chain, "{what:?}");
        // A second binding of the same host port (another host address): one element, no
        // rule or chain.
        let mut more = old.clone();
        more.ports.push(FwPort {
            host_ip: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
            ..old.ports[0].clone()
        });
        let (buf, what) = encode_change(&old, &more, 1).unwrap();
        let types = walk(&buf);
        assert_eq!(count(&types, NFT_MSG_NEWSETELEM), 1, "{what:?}");
        assert!(what.iter().any(|(_, w)| w == "add element to ports_ip"));
        assert_eq!(types.len(), 3);
        // A binding whose container moved: its element is replaced.
        let mut moved = old.clone();
        moved.ports[0].container_ip = Ipv4Addr::new(10, 99, 0, 3).into();
        let (buf, _) = encode_change(&old, &moved, 1).unwrap();
        let types = walk(&buf);
        assert_eq!(count(&types, NFT_MSG_DELSETELEM), 1);
        assert_eq!(count(&types, NFT_MSG_NEWSETELEM), 1);
    }

    #[test]
    fn delete_batch_and_acks() {
        let (buf, what) = encode_delete("t", 1);
        // begin, legacy ip add+delete, inet add+delete, end
        assert_eq!(walk(&buf).len(), 6);
        assert!(
            what.iter().any(|(_, w)| w == "delete table inet t"),
            "{what:?}"
        );
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&0u16.to_ne_bytes());
        ack.extend_from_slice(&7u32.to_ne_bytes());
        ack.extend_from_slice(&0u32.to_ne_bytes());
        ack.extend_from_slice(&(-2i32).to_ne_bytes());
        ack.extend_from_slice(&[0u8; 16]);
        assert_eq!(parse_acks(&ack), vec![(7, -2)]);
    }
}
