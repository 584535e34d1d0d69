//! A minimal nftables netlink encoder: turns a [`Ruleset`] into one nfnetlink batch (one
//! kernel transaction) that replaces the plugin's table, and sends it.
//!
//! Why our own: `rustables` 0.9 needs libclang at build time (bindgen) and is GPL-3.0; the few
//! message types we need (table, base chain, rule with meta/cmp/bitwise/ct/payload/fib/
//! immediate/nat/masq expressions) are small and stable kernel ABI (`linux/netfilter/
//! nf_tables.h`). The batch is "add table; per chain: add chain, flush it; add rules": one
//! transaction that makes the table exactly the ruleset whether or not it existed before.

use std::net::Ipv4Addr;

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
// nf_tables message types
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
// attributes
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
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
// hooks
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
// verdicts
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
// registers
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
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

fn immediate_data(dreg: u32, value: &[u8]) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, dreg).nest(2, data_value(value));
    Expr {
        name: "immediate",
        data,
    }
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

fn dnat(addr_reg: u32, port_reg: u32) -> Expr {
    let mut data = Attrs::default();
    data.be32(1, NAT_DNAT)
        .be32(2, u32::from(NFPROTO_IPV4))
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

/// `meta nfproto ipv4`: in the `inet` table, guards every match on IPv4 header fields.
fn is_ipv4() -> Vec<Expr> {
    vec![
        meta(META_NFPROTO, REG_1),
        cmp(CMP_EQ, REG_1, &[NFPROTO_IPV4]),
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
    chain: &'static str,
    exprs: Vec<Expr>,
}

fn rule(chain: &'static str, parts: Vec<Vec<Expr>>, last: Expr) -> Rule {
    let mut exprs: Vec<Expr> = parts.into_iter().flatten().collect();
    exprs.push(last);
    Rule { chain, exprs }
}

fn network_rules(n: &FwNetwork, out: &mut Vec<Rule>) {
    let b = n.bridge.as_str();
    let icc = if n.icc { NF_ACCEPT } else { NF_DROP };
    out.push(rule(
        CHAIN_FORWARD,
        vec![iif_is(b, true), oif_is(b, true)],
        verdict(icc),
    ));
    if n.internal {
        out.push(rule(CHAIN_FORWARD, vec![iif_is(b, true)], verdict(NF_DROP)));
        out.push(rule(CHAIN_FORWARD, vec![oif_is(b, true)], verdict(NF_DROP)));
        return;
    }
    out.push(rule(
        CHAIN_FORWARD,
        vec![
            oif_is(b, true),
            ct_has(CT_STATE, CT_STATE_ESTABLISHED_RELATED),
        ],
        verdict(NF_ACCEPT),
    ));
    out.push(rule(
        CHAIN_FORWARD,
        vec![oif_is(b, true), ct_has(CT_STATUS, CT_STATUS_DST_NAT)],
        verdict(NF_ACCEPT),
    ));
    out.push(rule(CHAIN_FORWARD, vec![oif_is(b, true)], verdict(NF_DROP)));
    // Hairpin: a container reaching a published port of its own network through a host
    // address is DNATed back onto the bridge; masquerade it so the reply returns via the host.
    for s in &n.subnets {
        out.push(rule(
            CHAIN_POSTROUTING,
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
                CHAIN_POSTROUTING,
                vec![ip_in(12, *s, true), oif_is(b, false)],
                masq(),
            ));
        }
    }
}

fn port_rules(p: &FwPort, out: &mut Vec<Rule>) {
    let loopback = ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).ok();
    for chain in [CHAIN_PREROUTING, CHAIN_OUTPUT] {
        let mut parts = vec![
            is_ipv4(),
            dest_match(p.host_ip),
            vec![meta(META_L4PROTO, REG_1), cmp(CMP_EQ, REG_1, &[p.proto])],
            vec![
                payload(PAYLOAD_TRANSPORT, 2, 2, REG_1),
                cmp(CMP_EQ, REG_1, &p.host_port.to_be_bytes()),
            ],
        ];
        if chain == CHAIN_OUTPUT {
            if let Some(lo) = loopback {
                parts.push(ip_in(16, lo, false));
            }
        }
        parts.push(vec![
            immediate_data(REG_1, &p.container_ip.octets()),
            immediate_data(REG_2, &p.container_port.to_be_bytes()),
        ]);
        out.push(rule(chain, parts, dnat(REG_1, REG_2)));
    }
}

/// The destination of a published port: the given host IP, or any local address.
fn dest_match(host_ip: Option<Ipv4Addr>) -> Vec<Expr> {
    match host_ip {
        // The given address, and only while it is an address of this host: a HostIP that is
        // not local must not DNAT traffic merely passing through.
        Some(ip) => vec![
            payload(PAYLOAD_NETWORK, 16, 4, REG_1),
            cmp(CMP_EQ, REG_1, &ip.octets()),
            fib_daddr_type(REG_1),
            cmp(CMP_EQ, REG_1, &RTN_LOCAL.to_ne_bytes()),
        ],
        None => vec![
            fib_daddr_type(REG_1),
            cmp(CMP_EQ, REG_1, &RTN_LOCAL.to_ne_bytes()),
        ],
    }
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
            .str(NFTA_RULE_CHAIN, r.chain)
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

/// The batch replacing the table with `rules` (bytes, and what each sequence number does).
pub fn encode_replace(rules: &Ruleset, seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
    let t = rules.table.as_str();
    let mut b = Batch::new(seq);
    // Table and base chains are created if missing and kept otherwise; their rules are flushed
    // and written again. Deleting the table instead would unregister the hooks, and each
    // unregistration waits for an RCU grace period (tens of ms on a small VM).
    b.drop_legacy_table(t);
    b.table(NFT_MSG_NEWTABLE, t);
    for (chain, kind, hook, prio) in CHAINS {
        b.chain(t, chain, kind, hook, prio);
        b.flush_chain(t, chain);
    }
    let mut out = Vec::new();
    for n in &rules.networks {
        network_rules(n, &mut out);
    }
    for p in &rules.ports {
        port_rules(p, &mut out);
    }
    for (i, r) in out.into_iter().enumerate() {
        b.rule(t, r, i + 1);
    }
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
                container_ip: Ipv4Addr::new(10, 99, 0, 2),
                container_port: 80,
            }],
        }
    }

    #[test]
    fn replace_batch_is_well_formed() {
        let (buf, what) = encode_replace(&sample(), 100);
        let types = walk(&buf);
        assert_eq!(types.first(), Some(&NFNL_MSG_BATCH_BEGIN));
        assert_eq!(types.last(), Some(&NFNL_MSG_BATCH_END));
        let t = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
        // A legacy `ip` table of the same name is added and deleted, then the `inet` table.
        assert_eq!(types[1], t(NFT_MSG_NEWTABLE));
        assert_eq!(types[2], t(NFT_MSG_DELTABLE));
        assert_eq!(types[3], t(NFT_MSG_NEWTABLE));
        assert!(what[1].1.starts_with("add table ip "), "{what:?}");
        assert!(what[3].1.starts_with("add table inet "), "{what:?}");
        let count = |m: u16| types.iter().filter(|&&x| x == t(m)).count();
        assert_eq!(count(NFT_MSG_NEWCHAIN), 4);
        assert_eq!(count(NFT_MSG_DELRULE), 4);
        assert_eq!(count(NFT_MSG_DELTABLE), 1);
        // network 1: icc, established, dnat, drop, hairpin, masquerade = 6; internal: 3; port: 2.
        assert_eq!(
            types.iter().filter(|&&x| x == t(NFT_MSG_NEWRULE)).count(),
            11
        );
        assert_eq!(what.len(), types.len());
        assert_eq!(what[0].0, 100);
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
