//! Firewall apply cost (issue 15): time to apply one network change when the plugin already
//! holds 10, 100 and 1,000 networks, and with 10,000 published ports. Runs the real encoder
//! and the real nfnetlink transaction against the kernel, inside a throwaway network namespace
//! created by this process (needs root; prints a note and exits otherwise). A change is a
//! network created or removed (its chains, rules and map elements, see `sys/nft/`); the first
//! apply of each case is the full build the plugin does at start.
//!
//! `cargo bench -p network-driver --bench firewall` (or `make bench`).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use network_driver::firewall::{FwNetwork, FwPort, Ruleset};
use network_driver::sys::nft;

fn network(i: usize) -> FwNetwork {
    FwNetwork {
        bridge: format!("obbench{i:05}"),
        subnets: vec![
            Ipv4Net::new(Ipv4Addr::new(10, (i / 256) as u8, (i % 256) as u8, 0), 24)
                .unwrap_or_default(),
        ],
        internal: i % 7 == 3,
        icc: i % 5 != 1,
        masquerade: true,
    }
}

fn port(i: usize) -> FwPort {
    FwPort {
        proto: if i.is_multiple_of(2) { 6 } else { 17 },
        host_ip: None,
        host_port: 20_000 + (i % 40_000) as u16,
        container_ip: Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 2) as u8).into(),
        container_port: 80,
    }
}

fn apply(prev: Option<&Ruleset>, rules: &Ruleset, seq: &mut u32) -> Result<Duration, String> {
    *seq += 100_000;
    let t = Instant::now();
    let (batch, what) = match prev {
        Some(p) => match nft::encode_change(p, rules, *seq) {
            Some(b) => b,
            None => return Ok(t.elapsed()),
        },
        None => nft::encode_full(rules, *seq),
    };
    if std::env::var_os("FW_ENCODE_ONLY").is_some() {
        return Ok(t.elapsed());
    }
    nft::send(&batch, &what).map_err(|e| e.to_string())?;
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("firewall bench: needs root (a private network namespace); skipped");
        return;
    }
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        println!("firewall bench: cannot create a network namespace: {e}; skipped");
        return;
    }
    let mut seq = 1;
    println!(
        "{:<40} {:>12} {:>12} {:>14}",
        "case", "median ms", "max ms", "full build ms"
    );
    let cases: [(usize, usize, bool); 6] = [
        (10, 0, false),
        (100, 0, false),
        (1000, 0, false),
        (1000, 0, true),
        (100, 10_000, false),
        (100, 10_000, true),
    ];
    for (nets, ports, port_change) in cases {
        let mut rules = Ruleset {
            table: "outboard_network_bench".into(),
            networks: (0..nets).map(network).collect(),
            ports: (0..ports).map(port).collect(),
        };
        let t = Instant::now();
        if let Err(e) = apply(None, &rules, &mut seq) {
            println!("initial apply with {nets} networks failed: {e}");
            return;
        }
        let full = t.elapsed();
        let mut times = Vec::new();
        for k in 0..20 {
            let prev = rules.clone();
            // One change: a network (or a published port) created, and next turn removed.
            match (port_change, k % 2 == 0) {
                (false, true) => rules.networks.push(network(nets + 1)),
                (false, false) => drop(rules.networks.pop()),
                (true, true) => rules.ports.push(port(ports + 1)),
                (true, false) => drop(rules.ports.pop()),
            }
            match apply(Some(&prev), &rules, &mut seq) {
                Ok(d) => times.push(d),
                Err(e) => {
                    println!("apply failed: {e}");
                    return;
                }
            }
        }
        let max = times.iter().max().copied().unwrap_or_default();
        println!(
            "{:<40} {:>12.2} {:>12.2} {:>14.2}",
            format!(
                "{nets} networks, {ports} ports: one {}",
                if port_change { "port" } else { "network" }
            ),
            median(times).as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            full.as_secs_f64() * 1e3
        );
        let (b, w) = nft::encode_delete(&rules.table, seq + 50_000);
        let _ = nft::send(&b, &w);
    }
}
