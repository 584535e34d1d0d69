//! The batches the driver sends: the table built whole from a [`Ruleset`], the change between
//! two rulesets (only the networks and ports that differ), and the table's removal.

use std::collections::{BTreeMap, HashMap};

use super::rules::*;
use super::wire::*;
use crate::firewall::{FwNetwork, Ruleset};

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
