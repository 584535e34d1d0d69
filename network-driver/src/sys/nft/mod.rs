//! A minimal nftables netlink encoder: turns a [`Ruleset`](crate::firewall::Ruleset) into one
//! nfnetlink batch (one kernel transaction) that builds the plugin's table, or a change between
//! two rulesets into a batch that touches only what changed, and sends it.
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
//!
//! Layout: `rules` the table as data (chain and map names, expressions, the rules of the
//! base chains, of a network and of a published port), `wire` their netlink encoding
//! (constants of `nf_tables.h`, attributes, the batch of messages), `encode` the batches
//! the driver sends (full build, change, delete), `transport` the `NETLINK_NETFILTER`
//! socket (send a batch, read the acks, ask whose a table is).

mod encode;
mod rules;
mod transport;
mod wire;

#[cfg(test)]
pub use encode::foreign_table_batch;
pub use encode::{encode_change, encode_delete, encode_full, table_mark, Encoded};
pub use transport::{send, table_is_ours};

#[cfg(test)]
mod tests;
