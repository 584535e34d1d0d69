//! The `NETLINK_NETFILTER` transport: one fresh socket per batch, the kernel's acks read
//! back and mapped to the step that failed, and the query of whose a table is.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send as nl_send, MsgFlags};

use super::encode::table_mark;
use super::wire::*;
use crate::sys::SysError;

/// A fresh `NETLINK_NETFILTER` socket, bound (one per batch or query: nothing is shared).
fn nf_socket() -> Result<OwnedFd, SysError> {
    use nix::sys::socket::{
        bind, socket, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| SysError::Other(format!("nftables netlink socket: {e}")))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
        .map_err(|e| SysError::Other(format!("nftables netlink bind: {e}")))?;
    Ok(fd)
}

/// Whose table `inet <table>` is: `None` when absent, else whether it carries our mark.
pub fn table_is_ours(table: &str) -> Result<Option<bool>, SysError> {
    let fd = nf_socket()?;
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
    let fd = nf_socket()?;
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
pub(super) fn parse_acks(mut b: &[u8]) -> Vec<(u32, i32)> {
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
