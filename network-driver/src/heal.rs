//! Firewall self-healing: the plugin listens to the kernel's nftables notifications
//! (`NFNLGRP_NFTABLES` on a netlink socket, no polling) and, when a transaction it did not make
//! touches its table — `nft flush ruleset`, a firewalld reload, someone deleting a chain —
//! re-applies the table from the store within a second; logged and counted.
//!
//! Which transactions are ours: the kernel ends each with a `NEWGEN` message naming the
//! committing thread (`NFTA_GEN_PROC_NAME`, the thread's comm). The thread that sends our
//! batches names itself [`thread_name`] for the send, so our own applies never trigger a heal.

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::service::Service;
use crate::sys::Sys;

/// Firewall applies that succeeded / failed (every refresh of the table).
pub static APPLIES_OK: AtomicU64 = AtomicU64::new(0);
/// See [`APPLIES_OK`].
pub static APPLIES_FAILED: AtomicU64 = AtomicU64::new(0);
/// Re-applies after an outside change.
pub static HEALS: AtomicU64 = AtomicU64::new(0);
/// Outside changes to our table noticed.
pub static OUTSIDE_CHANGES: AtomicU64 = AtomicU64::new(0);

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWGEN: u16 = 15;
const NFTA_GEN_PROC_NAME: u16 = 3;
/// Attribute 1 is the table name in table, chain, rule, set, element and object messages.
const NFTA_TABLE: u16 = 1;
const NFPROTO_INET: u8 = 1;
/// `NFNLGRP_NFTABLES` (7) as a bind-time group mask.
const GROUP_MASK: u32 = 1 << (7 - 1);

/// The comm our firewall-sending thread carries while it sends (≤ 15 bytes).
pub fn thread_name(tag: &str) -> String {
    format!("obnft-{tag}")
}

/// Run `f` (a send to firewall table `table`) with the current thread named
/// [`thread_name`] of the table's instance tag, then restore the thread's name.
pub fn as_firewall_thread<T>(table: &str, f: impl FnOnce() -> T) -> T {
    let tag = table.rsplit('_').next().unwrap_or(table);
    let old = nix::sys::prctl::get_name().ok();
    if let Ok(n) = CString::new(thread_name(tag)) {
        let _ = nix::sys::prctl::set_name(&n);
    }
    let out = f();
    if let Some(old) = old {
        let _ = nix::sys::prctl::set_name(&old);
    }
    out
}

/// What one batch of notifications says: whether a foreign transaction touched our table.
#[derive(Debug, Default)]
struct Parser {
    touched: bool,
}

impl Parser {
    /// Feed one netlink message; returns `Some(committer)` when a transaction that touched
    /// our table and was not ours ended.
    fn message(&mut self, ty: u16, payload: &[u8], table: &str, ours: &str) -> Option<String> {
        if ty >> 8 != NFNL_SUBSYS_NFTABLES || payload.len() < 4 {
            return None;
        }
        let msg = ty & 0xff;
        let family = payload[0];
        let attrs = &payload[4..];
        if msg == NFT_MSG_NEWGEN {
            let who = attr(attrs, NFTA_GEN_PROC_NAME)
                .map(cstr)
                .unwrap_or_default();
            let touched = std::mem::take(&mut self.touched);
            return (touched && who != ours).then_some(who);
        }
        if family == NFPROTO_INET && attr(attrs, NFTA_TABLE).map(cstr).as_deref() == Some(table) {
            self.touched = true;
        }
        None
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The payload of the first attribute of type `want` (top level only).
fn attr(mut b: &[u8], want: u16) -> Option<&[u8]> {
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        if ty == want {
            return Some(&b[4..len]);
        }
        let next = (len + 3) & !3;
        b = b.get(next..)?;
    }
    None
}

/// Walk the netlink messages of one datagram.
fn messages(mut b: &[u8], mut f: impl FnMut(u16, &[u8])) {
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            return;
        }
        f(ty, &b[16..len]);
        let next = (len + 3) & !3;
        match b.get(next..) {
            Some(rest) => b = rest,
            None => return,
        }
    }
}

/// Start the watcher: a thread reading notifications and a task re-applying the table.
/// Does nothing (logged) when the socket cannot be opened.
pub fn spawn<S: Sys>(service: Arc<Service<S>>) {
    let table = service.table_name();
    let ours = thread_name(service.tag());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    let fd = match open() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!("firewall self-healing off: cannot listen to nftables events: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("ob-nft-watch".into())
        .spawn(move || watch(fd, &table, &ours, tx));
    if let Err(e) = spawned {
        tracing::error!("firewall self-healing off: {e}");
        return;
    }
    tokio::spawn(async move {
        while let Some(who) = rx.recv().await {
            // Let the outside transaction burst settle (firewalld writes several), then
            // re-apply once for all of them.
            tokio::time::sleep(Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
            OUTSIDE_CHANGES.fetch_add(1, Ordering::Relaxed);
            if service.firewall_disabled_reason().is_some() {
                continue;
            }
            match service.rebuild_firewall().await {
                Ok(()) => {
                    HEALS.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(by = %who, "firewall table changed from outside: re-applied");
                }
                Err(e) => {
                    tracing::error!(by = %who, "firewall table changed from outside; re-apply failed: {e}")
                }
            }
        }
    });
}

fn open() -> Result<std::os::fd::OwnedFd, String> {
    use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, NetlinkAddr};
    use nix::sys::socket::{SockFlag, SockProtocol, SockType};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| format!("socket: {e}"))?;
    if setsockopt(&fd, sockopt::RcvBufForce, &(4 << 20)).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(4 << 20));
    }
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, GROUP_MASK)).map_err(|e| format!("bind: {e}"))?;
    Ok(fd)
}

fn watch(fd: std::os::fd::OwnedFd, table: &str, ours: &str, tx: tokio::sync::mpsc::Sender<String>) {
    use nix::sys::socket::{recv, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 256 * 1024];
    let mut parser = Parser::default();
    loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => {
                let mut hit = None;
                messages(&buf[..n], |ty, payload| {
                    if let Some(who) = parser.message(ty, payload, table, ours) {
                        hit = Some(who);
                    }
                });
                if let Some(who) = hit {
                    if tx.try_send(who).is_err() && tx.is_closed() {
                        return;
                    }
                }
            }
            // Notifications were lost: we cannot tell what happened, so re-apply.
            Err(nix::errno::Errno::ENOBUFS) => {
                parser = Parser::default();
                let _ = tx.try_send("unknown (notifications lost)".into());
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::error!("firewall self-healing stopped: nftables events: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn payload(family: u8, attrs: &[u8]) -> Vec<u8> {
        let mut v = vec![family, 0, 0, 0];
        v.extend_from_slice(attrs);
        v
    }

    #[test]
    fn foreign_transaction_on_our_table_is_reported_once() {
        let mut p = Parser::default();
        let del = payload(NFPROTO_INET, &nla(1, b"outboard_ab12\0"));
        let gen = |who: &[u8]| payload(0, &[nla(1, &7u32.to_be_bytes()), nla(3, who)].concat());
        let ty = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
        assert_eq!(p.message(ty(2), &del, "outboard_ab12", "obnft-ab12"), None);
        assert_eq!(
            p.message(
                ty(NFT_MSG_NEWGEN),
                &gen(b"nft\0"),
                "outboard_ab12",
                "obnft-ab12"
            ),
            Some("nft".into())
        );
        // Our own transaction: ignored.
        p.message(ty(6), &del, "outboard_ab12", "obnft-ab12");
        assert_eq!(
            p.message(
                ty(NFT_MSG_NEWGEN),
                &gen(b"obnft-ab12\0"),
                "outboard_ab12",
                "obnft-ab12"
            ),
            None
        );
        // Another table (or family): ignored.
        let other = payload(NFPROTO_INET, &nla(1, b"filter\0"));
        p.message(ty(8), &other, "outboard_ab12", "obnft-ab12");
        let ip = payload(2, &nla(1, b"outboard_ab12\0"));
        p.message(ty(8), &ip, "outboard_ab12", "obnft-ab12");
        assert_eq!(
            p.message(
                ty(NFT_MSG_NEWGEN),
                &gen(b"nft\0"),
                "outboard_ab12",
                "obnft-ab12"
            ),
            None
        );
    }
}
