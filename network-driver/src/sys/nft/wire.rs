//! The nfnetlink byte encoding: constants of `linux/netfilter/nf_tables.h` and netlink,
//! the attribute builder and the batch of messages (one kernel transaction). Knows message
//! layouts, not what the rules mean.

use super::encode::table_mark;
use super::rules::Rule;

// netlink
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLM_F_APPEND: u16 = 0x800;
pub(super) const NLMSG_ERROR: u16 = 0x2;
pub(super) const NLA_F_NESTED: u16 = 0x8000;
// nfnetlink
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub(super) const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `inet`: one table whose chains see IPv4 and IPv6 alike, so isolation by interface holds for
/// both families.
pub(super) const NFPROTO_INET: u8 = 1;
pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_IPV6: u8 = 10;
// nf_tables message types
pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_DELTABLE: u16 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(super) const NFT_MSG_DELCHAIN: u16 = 5;
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
pub(super) const NFT_MSG_DELRULE: u16 = 8;
pub(super) const NFT_MSG_NEWSET: u16 = 9;
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;
// attributes
pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_TABLE_FLAGS: u16 = 2;
pub(super) const NFTA_TABLE_USERDATA: u16 = 6;
pub(super) const NFT_MSG_GETTABLE: u16 = 1;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_POLICY: u16 = 5;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
pub(super) const NFTA_EXPR_NAME: u16 = 1;
pub(super) const NFTA_EXPR_DATA: u16 = 2;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;
pub(super) const NFTA_SET_TABLE: u16 = 1;
pub(super) const NFTA_SET_NAME: u16 = 2;
pub(super) const NFTA_SET_FLAGS: u16 = 3;
pub(super) const NFTA_SET_KEY_TYPE: u16 = 4;
pub(super) const NFTA_SET_KEY_LEN: u16 = 5;
pub(super) const NFTA_SET_DATA_TYPE: u16 = 6;
pub(super) const NFTA_SET_DATA_LEN: u16 = 7;
pub(super) const NFTA_SET_ID: u16 = 10;
pub(super) const NFTA_SET_USERDATA: u16 = 13;
pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_LOOKUP_SET: u16 = 1;
pub(super) const NFTA_LOOKUP_SREG: u16 = 2;
pub(super) const NFTA_LOOKUP_DREG: u16 = 3;
pub(super) const NFT_SET_MAP: u32 = 0x8;
pub(super) const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// nft's own type numbers (userspace metadata only: `nft list` prints keys with them):
/// ifname; inet_proto . inet_service; ipv4_addr . inet_proto . inet_service; and
/// ipv4_addr . inet_service (a concatenation packs 6 bits per type).
pub(super) const TYPE_IFNAME: u32 = 41;
pub(super) const TYPE_PROTO_SERVICE: u32 = (12 << 6) | 13;
pub(super) const TYPE_ADDR_PROTO_SERVICE: u32 = (7 << 12) | (12 << 6) | 13;
pub(super) const TYPE_ADDR_SERVICE: u32 = (7 << 6) | 13;
pub(super) const TYPE_ADDR6_PROTO_SERVICE: u32 = (8 << 12) | (12 << 6) | 13;
pub(super) const TYPE_ADDR6_SERVICE: u32 = (8 << 6) | 13;
// hooks
pub(super) const NF_INET_PRE_ROUTING: u32 = 0;
pub(super) const NF_INET_FORWARD: u32 = 2;
pub(super) const NF_INET_LOCAL_OUT: u32 = 3;
pub(super) const NF_INET_POST_ROUTING: u32 = 4;
// verdicts
pub(super) const NF_DROP: u32 = 0;
pub(super) const NF_ACCEPT: u32 = 1;
pub(super) const NFT_JUMP: u32 = (-3i32) as u32;
pub(super) const NFT_RETURN: u32 = (-5i32) as u32;
// registers
pub(super) const REG_VERDICT: u32 = 0;
pub(super) const REG_1: u32 = 1;
/// The first two 32-bit registers (they overlap `REG_1`): a concatenated key.
pub(super) const REG32_00: u32 = 8;
pub(super) const REG32_01: u32 = 9;
pub(super) const REG32_04: u32 = 12;
// meta keys
pub(super) const META_IIFNAME: u32 = 6;
pub(super) const META_OIFNAME: u32 = 7;
pub(super) const META_L4PROTO: u32 = 16;
pub(super) const META_NFPROTO: u32 = 15;
// ct keys and bits
pub(super) const CT_STATE: u32 = 0;
pub(super) const CT_STATUS: u32 = 2;
pub(super) const CT_STATE_ESTABLISHED_RELATED: u32 = 2 | 4;
pub(super) const CT_STATUS_DST_NAT: u32 = 1 << 5;
// payload bases
pub(super) const PAYLOAD_NETWORK: u32 = 1;
pub(super) const PAYLOAD_TRANSPORT: u32 = 2;
// cmp ops
pub(super) const CMP_EQ: u32 = 0;
pub(super) const CMP_NEQ: u32 = 1;
// fib
pub(super) const FIB_RESULT_ADDRTYPE: u32 = 3;
pub(super) const FIB_F_DADDR: u32 = 1 << 1;
pub(super) const RTN_LOCAL: u32 = 2;
// nat
pub(super) const NAT_DNAT: u32 = 1;

/// Builder of netlink attributes into a byte buffer.
#[derive(Default)]
pub(super) struct Attrs {
    pub(super) buf: Vec<u8>,
}

impl Attrs {
    pub(super) fn put(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }
    pub(super) fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
    pub(super) fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(kind, &v)
    }
    pub(super) fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.put(kind, &v.to_be_bytes())
    }
    pub(super) fn nest(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.buf)
    }
}

/// A `NFTA_DATA_VALUE` attribute holding `bytes`.
pub(super) fn data_value(bytes: &[u8]) -> Attrs {
    let mut a = Attrs::default();
    a.put(NFTA_DATA_VALUE, bytes);
    a
}

/// A map to create.
pub(super) struct MapSpec {
    pub(super) name: &'static str,
    pub(super) id: u32,
    pub(super) key_len: u32,
    pub(super) key_type: u32,
    /// `None`: a verdict map; else the value's nft type and length.
    pub(super) data: Option<(u32, u32)>,
}

/// The value of a map element.
#[derive(Clone, Copy)]
pub(super) enum Value<'a> {
    Jump(&'a str),
    Data(&'a [u8]),
    Delete,
}

/// A batch of nfnetlink messages.
pub(super) struct Batch {
    pub(super) buf: Vec<u8>,
    pub(super) seq: u32,
    /// What each sequence number did, for error messages.
    pub(super) what: Vec<(u32, String)>,
    /// Offset of the flags of the last content message, and its sequence number.
    pub(super) last: Option<(usize, u32)>,
}

impl Batch {
    pub(super) fn new(seq: u32) -> Self {
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

    pub(super) fn msg(&mut self, kind: u16, flags: u16, family: u8, attrs: Attrs, what: &str) {
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

    pub(super) fn table(&mut self, kind: u16, name: &str) {
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

    pub(super) fn table_in(&mut self, kind: u16, name: &str, family: u8, a: Attrs, flags: u16) {
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
    pub(super) fn drop_legacy_table(&mut self, name: &str) {
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

    pub(super) fn chain(&mut self, table: &str, name: &str, kind: &str, hook: u32, prio: i32) {
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
    pub(super) fn regular_chain(&mut self, table: &str, name: &str) {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        self.chain_msg(NFT_MSG_NEWCHAIN, flags, table, name, "add");
    }

    /// Delete a chain and its rules (its map element must be gone first, same batch).
    pub(super) fn del_chain(&mut self, table: &str, name: &str) {
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        self.chain_msg(NFT_MSG_DELCHAIN, flags, table, name, "delete");
    }

    pub(super) fn chain_msg(&mut self, kind: u16, flags: u16, table: &str, name: &str, verb: &str) {
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
    pub(super) fn map(&mut self, table: &str, m: MapSpec) {
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
    pub(super) fn elem(&mut self, table: &str, map: &str, key: &[u8], value: Value<'_>) {
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
    pub(super) fn flush_chain(&mut self, table: &str, chain: &str) {
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

    pub(super) fn rule(&mut self, table: &str, r: Rule, n: usize) {
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

    pub(super) fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>) {
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
