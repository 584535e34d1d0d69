//! Batch encoding checked without the kernel: every message and attribute is well formed,
//! a change touches only what differs, acks are parsed.

use std::net::Ipv4Addr;

use super::encode::*;
use super::transport::*;
use super::wire::*;
use crate::firewall::{FwNetwork, FwPort, Ruleset};

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
