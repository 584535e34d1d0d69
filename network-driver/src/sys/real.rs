//! The real [`Sys`]: links and addresses through rtnetlink, the firewall through nfnetlink
//! ([`crate::sys::nft`]). Never runs a command.

use std::net::IpAddr;
use std::sync::{Arc, PoisonError};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{BridgeSpec, Link, Sys, SysError, VethSpec};
use crate::firewall::Ruleset;

/// rtnetlink and nftables over netlink in the host network namespace.
#[derive(Clone)]
pub struct NetlinkSys {
    handle: rtnetlink::Handle,
    /// The ruleset the kernel's table was last made to hold, or `None` when unknown (at start,
    /// after a failed change, after an outside change was noticed): the next apply then
    /// rebuilds the whole table instead of changing it.
    fw_applied: Arc<std::sync::Mutex<Option<Ruleset>>>,
}

impl std::fmt::Debug for NetlinkSys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkSys").finish_non_exhaustive()
    }
}

fn map_err(e: rtnetlink::Error) -> SysError {
    match e {
        rtnetlink::Error::NetlinkError(m) => match m.code {
            Some(code) => SysError::from_errno(-code.get()),
            None => SysError::Other(m.to_string()),
        },
        other => SysError::Other(other.to_string()),
    }
}

/// `Ok(None)` when the link is already gone (ENODEV): deleting or looking up a missing link is
/// not an error for idempotent callers.
fn absent_if_nodev<T>(r: Result<T, rtnetlink::Error>) -> Result<Option<T>, SysError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let e = map_err(e);
            if e.errno() == Some(libc::ENODEV) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

fn to_link(m: LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        ..Link::default()
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::IfAlias(s) => l.alias = Some(s),
            LinkAttribute::Mtu(v) => l.mtu = v,
            LinkAttribute::Controller(c) => l.controller = Some(c),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    l
}

impl NetlinkSys {
    /// Open the rtnetlink connection (its task runs on the current tokio runtime).
    pub fn new() -> Result<Self, SysError> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| SysError::Other(format!("rtnetlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Self {
            handle,
            fw_applied: Arc::default(),
        })
    }

    async fn index_of(&self, name: &str) -> Result<u32, SysError> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| SysError::from_errno(libc::ENODEV))
    }
}

impl Sys for NetlinkSys {
    async fn list_links(&self) -> Result<Vec<Link>, SysError> {
        let mut stream = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(m) = stream.try_next().await.map_err(map_err)? {
            out.push(to_link(m));
        }
        Ok(out)
    }

    async fn link(&self, name: &str) -> Result<Option<Link>, SysError> {
        let mut stream = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        Ok(absent_if_nodev(stream.try_next().await)?
            .flatten()
            .map(to_link))
    }

    async fn create_bridge(&self, spec: &BridgeSpec) -> Result<(), SysError> {
        // Created down under the tagged name; the rename, alias and "up" follow in one setlink.
        let msg = LinkMessageBuilder::<LinkBridge>::new(&spec.tmp_name)
            .mtu(spec.mtu)
            .append_info_data(InfoBridge::NfCallIpTables(spec.nf_call_iptables))
            .append_info_data(InfoBridge::NfCallIp6Tables(spec.nf_call_iptables))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(map_err)?;
        let index = self.index_of(&spec.tmp_name).await?;
        let mut b = LinkUnspec::new_with_index(index).alias(spec.alias.clone());
        if spec.name != spec.tmp_name {
            b = b.name(spec.name.clone());
        }
        self.handle
            .link()
            .set(b.up().build())
            .execute()
            .await
            .map_err(map_err)
    }

    async fn ensure_up(&self, name: &str, mtu: u32) -> Result<(), SysError> {
        let index = self.index_of(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(map_err)
    }

    async fn add_address(&self, link: &str, addr: IpNet) -> Result<(), SysError> {
        let index = self.index_of(link).await?;
        let ip: IpAddr = addr.addr();
        match self
            .handle
            .address()
            .add(index, ip, addr.prefix_len())
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = map_err(e);
                if e.errno() == Some(libc::EEXIST) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn create_veth(&self, spec: &VethSpec) -> Result<(), SysError> {
        let bridge = self.index_of(&spec.bridge).await?;
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.peer.clone())
            .mtu(spec.mtu)
            .address(spec.peer_mac.to_vec())
            .build();
        // The host end is created enslaved and up in the same message; the peer stays down
        // (dockerd moves, renames, addresses and raises it).
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host.clone())
            .mtu(spec.mtu)
            .controller(bridge)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(map_err)?;
        let index = self.index_of(&spec.host).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .alias(spec.alias.clone())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(map_err)
    }

    async fn attach(&self, link: &str, bridge: &str) -> Result<(), SysError> {
        let b = self.index_of(bridge).await?;
        let index = self.index_of(link).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).controller(b).up().build())
            .execute()
            .await
            .map_err(map_err)
    }

    async fn delete_link(&self, name: &str) -> Result<bool, SysError> {
        let Some(l) = self.link(name).await? else {
            return Ok(false);
        };
        Ok(absent_if_nodev(self.handle.link().del(l.index).execute().await)?.is_some())
    }

    async fn apply_firewall(&self, rules: &Ruleset) -> Result<(), SysError> {
        let applied = self.fw_applied.clone();
        let rules = rules.clone();
        let table = rules.table.clone();
        // Named for the send, so the self-healing watcher knows these transactions are ours.
        tokio::task::spawn_blocking(move || crate::heal::as_firewall_thread(&table, move || {
            let mut last = applied.lock().unwrap_or_else(PoisonError::into_inner);
            let prev = last.take().filter(|p| p.table == rules.table);
            if let Some(prev) = prev {
                let change = crate::sys::nft::encode_change(&prev, &rules, next_seq());
                let res = match change {
                    None => Ok(()),
                    Some((batch, what)) => crate::sys::nft::send(&batch, &what),
                };
                match res {
                    Ok(()) => {
                        *last = Some(rules);
                        return Ok(());
                    }
                    // The table is not what we left (changed from outside?): rebuild it.
                    Err(e) => tracing::warn!(error = %e, "incremental firewall change failed; rebuilding the table"),
                }
            }
            refuse_foreign_table(&rules.table)?;
            let (batch, what) = crate::sys::nft::encode_full(&rules, next_seq());
            crate::sys::nft::send(&batch, &what)?;
            *last = Some(rules);
            Ok(())
        }))
        .await
        .map_err(|e| SysError::Other(format!("firewall task: {e}")))?
    }

    async fn remove_firewall(&self, table: &str) -> Result<(), SysError> {
        self.forget_firewall();
        let (batch, what) = crate::sys::nft::encode_delete(table, next_seq());
        let table = table.to_string();
        tokio::task::spawn_blocking(move || {
            crate::heal::as_firewall_thread(&table, || {
                refuse_foreign_table(&table)?;
                crate::sys::nft::send(&batch, &what)
            })
        })
        .await
        .map_err(|e| SysError::Other(format!("firewall task: {e}")))?
    }

    fn forget_firewall(&self) {
        *self
            .fw_applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Ownership by mark for nftables too: a table under our name that lacks our mark (made by
/// someone else) is neither rebuilt nor deleted.
fn refuse_foreign_table(table: &str) -> Result<(), SysError> {
    match crate::sys::nft::table_is_ours(table)? {
        Some(false) => Err(SysError::Other(format!(
            "nftables table inet {table} exists but was not made by this plugin (no \
             outboard-network mark): left alone; remove or rename it"
        ))),
        _ => Ok(()),
    }
}

/// Sequence numbers for nfnetlink batches (only used to match acks to messages).
fn next_seq() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(1);
    SEQ.fetch_add(1000, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Move this test's thread (and every thread and process it starts from now on) into a
    /// fresh network namespace: the privileged tests below never touch the host's links or
    /// tables, and whatever they leave behind disappears with the thread. Fails (does not
    /// skip) without CAP_SYS_ADMIN.
    fn private_netns() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET) (privileged tests need root)");
        let ns = |p: &str| std::fs::read_link(p).ok();
        assert_ne!(ns("/proc/thread-self/ns/net"), ns("/proc/1/ns/net"));
    }

    /// Privileged: creates and removes a bridge and a veth pair (in a private namespace).
    #[tokio::test]
    async fn real_links_round_trip() {
        private_netns();
        let sys = NetlinkSys::new().unwrap();
        let tag = format!("obu{}", std::process::id() % 10000);
        let br = format!("{tag}b");
        let host = format!("{tag}v");
        let peer = format!("{tag}c");
        let _ = sys.delete_link(&br).await;
        sys.create_bridge(&BridgeSpec {
            tmp_name: format!("{tag}t"),
            name: br.clone(),
            mtu: 1400,
            alias: "outboard-network test net x".into(),
            nf_call_iptables: true,
        })
        .await
        .expect("create bridge (needs CAP_NET_ADMIN)");
        let l = sys.link(&br).await.unwrap().unwrap();
        assert_eq!(l.kind.as_deref(), Some("bridge"));
        assert_eq!(l.alias.as_deref(), Some("outboard-network test net x"));
        assert!(l.up);
        assert_eq!(l.mtu, 1400);
        sys.add_address(&br, "10.99.250.1/24".parse().unwrap())
            .await
            .unwrap();
        sys.add_address(&br, "10.99.250.1/24".parse().unwrap())
            .await
            .unwrap();
        sys.create_veth(&VethSpec {
            host: host.clone(),
            peer: peer.clone(),
            mtu: 1400,
            peer_mac: [2, 0x42, 10, 99, 250, 2],
            bridge: br.clone(),
            alias: "outboard-network test ep y".into(),
        })
        .await
        .unwrap();
        let h = sys.link(&host).await.unwrap().unwrap();
        assert_eq!(h.controller, Some(l.index));
        assert!(h.up);
        let p = sys.link(&peer).await.unwrap().unwrap();
        assert!(!p.up);
        assert_eq!(p.mtu, 1400);
        assert!(sys.delete_link(&host).await.unwrap());
        assert!(sys.link(&peer).await.unwrap().is_none());
        assert!(sys.delete_link(&br).await.unwrap());
        assert!(!sys.delete_link(&br).await.unwrap());
    }

    /// Privileged: the encoder's batch is accepted by the kernel, then the table is removed.
    #[tokio::test]
    async fn real_firewall_round_trip() {
        private_netns();
        use crate::firewall::{FwNetwork, FwPort};
        let sys = NetlinkSys::new().unwrap();
        let table = format!("outboard_network_test{}", std::process::id());
        let rules = Ruleset {
            table: table.clone(),
            networks: vec![FwNetwork {
                bridge: "obtest0".into(),
                subnets: vec!["10.99.251.0/24".parse().unwrap()],
                internal: false,
                icc: false,
                masquerade: true,
            }],
            ports: vec![FwPort {
                proto: 6,
                host_ip: None,
                host_port: 18080,
                container_ip: "10.99.251.2".parse().unwrap(),
                container_port: 80,
            }],
        };
        sys.apply_firewall(&rules)
            .await
            .expect("apply (needs CAP_NET_ADMIN)");
        sys.apply_firewall(&rules)
            .await
            .expect("apply again replaces");
        sys.remove_firewall(&table).await.unwrap();
        sys.remove_firewall(&table).await.unwrap();
    }

    /// `nft list table` as sorted lines (element and chain order are not significant).
    fn listing(table: &str) -> Option<Vec<String>> {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "inet", table])
            .output()
            .ok()?;
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_end_matches(',').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        Some(v)
    }

    /// Privileged: a sequence of incremental changes leaves the kernel's table exactly as a
    /// full build of the final ruleset would (compared with `nft list` where nft exists; the
    /// kernel accepting every batch is checked everywhere).
    #[tokio::test]
    async fn incremental_changes_match_a_full_build() {
        private_netns();
        use crate::firewall::{FwNetwork, FwPort};
        let sys = NetlinkSys::new().unwrap();
        let table = format!("outboard_network_inc{}", std::process::id());
        let net = |i: u8, internal: bool| FwNetwork {
            bridge: format!("obinc{i}"),
            subnets: vec![format!("10.99.{i}.0/24").parse().unwrap()],
            internal,
            icc: i.is_multiple_of(2),
            masquerade: !internal,
        };
        let port = |i: u8, host_port: u16| FwPort {
            proto: 6,
            host_ip: None,
            host_port,
            container_ip: format!("10.99.{i}.2").parse().unwrap(),
            container_port: 80,
        };
        let steps = [
            (vec![net(1, false)], vec![]),
            (vec![net(1, false), net(2, true)], vec![port(1, 18081)]),
            (
                vec![net(1, false), net(2, true), net(3, false)],
                vec![
                    port(1, 18081),
                    port(3, 18082),
                    FwPort {
                        host_ip: Some("192.0.2.1".parse().unwrap()),
                        ..port(3, 18081)
                    },
                    FwPort {
                        container_ip: "fd00:99:3::2".parse().unwrap(),
                        ..port(3, 18083)
                    },
                    FwPort {
                        host_ip: Some("fd00:99:3::1".parse().unwrap()),
                        container_ip: "fd00:99:3::2".parse().unwrap(),
                        ..port(3, 18084)
                    },
                ],
            ),
            (vec![net(2, true), net(3, false)], vec![port(3, 18082)]),
            (vec![net(3, false)], vec![]),
        ];
        for (i, (networks, ports)) in steps.into_iter().enumerate() {
            let rules = Ruleset {
                table: table.clone(),
                networks,
                ports,
            };
            sys.apply_firewall(&rules)
                .await
                .unwrap_or_else(|e| panic!("step {i}: {e}"));
            let inc = listing(&table);
            sys.forget_firewall();
            sys.apply_firewall(&rules).await.unwrap();
            let full = listing(&table);
            assert_eq!(inc, full, "step {i}: incremental and full tables differ");
            if let Some(full) = full.filter(|_| i >= 2) {
                let has = |s: &str| full.iter().any(|l| l.contains(s));
                assert!(has("jump in_obinc3"), "step {i}: {full:?}");
            }
        }
        sys.remove_firewall(&table).await.unwrap();
    }

    /// Privileged: a table of our name made by someone else (no mark) is neither rebuilt nor
    /// deleted; ours is recognised by its mark.
    #[tokio::test]
    async fn a_foreign_table_under_our_name_is_left_alone() {
        private_netns();
        let sys = NetlinkSys::new().unwrap();
        let table = "outboard_network_foreign".to_string();
        assert_eq!(crate::sys::nft::table_is_ours(&table).unwrap(), None);
        let rules = Ruleset {
            table: table.clone(),
            networks: vec![crate::firewall::FwNetwork {
                bridge: "obf0".into(),
                subnets: vec![],
                internal: true,
                icc: false,
                masquerade: false,
            }],
            ports: vec![],
        };
        sys.apply_firewall(&rules).await.unwrap();
        assert_eq!(crate::sys::nft::table_is_ours(&table).unwrap(), Some(true));
        sys.remove_firewall(&table).await.unwrap();
        // Someone else's table (as `nft add table inet NAME` makes it: no userdata).
        let (batch, what) = crate::sys::nft::foreign_table_batch(&table);
        crate::sys::nft::send(&batch, &what).unwrap();
        assert_eq!(crate::sys::nft::table_is_ours(&table).unwrap(), Some(false));
        let e = sys.apply_firewall(&rules).await.unwrap_err().to_string();
        assert!(e.contains("not made by this plugin"), "{e}");
        let e = sys.remove_firewall(&table).await.unwrap_err().to_string();
        assert!(e.contains("not made by this plugin"), "{e}");
        assert_eq!(crate::sys::nft::table_is_ours(&table).unwrap(), Some(false));
    }
}
