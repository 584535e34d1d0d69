//! IPAM benchmark (not a timed test): `cargo bench -p ipam-driver --bench ipam [-- OPTIONS]`.
//!
//! Without options it measures in-process: the pure allocator (throughput, RSS of a /8 with
//! 1,000,000 addresses held, contiguous and worst-case fragmented) and the durable service
//! (`RequestAddress` with a group-committed flush before each answer) with 1 and 32 concurrent
//! callers. With `--socket PATH [--pid PID]` it drives a running `outboard-ipam` (legacy mode)
//! over its unix socket with raw keep-alive HTTP/1.1: 1 and 32 clients, then fills a /8 to
//! 1,000,000 held addresses and reads the plugin's RSS from /proc.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipam_driver::addr::Prefix;
use ipam_driver::alloc::{Allocator, Layout, Order};
use ipam_driver::api;
use ipam_driver::config::parse_default_pools;
use ipam_driver::model::{AddressRequest, PoolRequest, Space, LOCAL_SPACE};
use ipam_driver::service::{Ipam, Settings};
use ipam_driver::store::IpamStore;
use ipam_driver::sys::FakeRoutes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const MILLION: u128 = 1_000_000;

fn rss_kib(pid: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn p(lat: &mut [u32], q: f64) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    lat.sort_unstable();
    let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
    f64::from(lat[i]) / 1000.0
}

fn report(what: &str, n: usize, took: Duration, lat: &mut [u32]) {
    println!(
        "{what:<48} {:>10.0} allocs/s   p50 {:>6.3} ms   p99 {:>6.3} ms   ({n} in {:.2} s)",
        n as f64 / took.as_secs_f64(),
        p(lat, 0.5),
        p(lat, 0.99),
        took.as_secs_f64()
    );
}

fn slash8() -> Layout {
    let net = 10u128 << 24;
    Layout {
        net,
        top: net + (1 << 24) - 1,
        first: net + 1,
        last: net + (1 << 24) - 2,
        win_lo: net + 1,
        win_hi: net + (1 << 24) - 2,
        reserved: Vec::new(),
    }
}

fn allocator_bench() {
    let me = std::process::id().to_string();
    let (base, _) = rss_kib(&me);
    let mut a = Allocator::new(slash8(), Order::Serial);
    let t = Instant::now();
    for _ in 0..MILLION {
        if let Ok((_, c)) = a.plan_next() {
            a.apply(&c);
        }
    }
    let took = t.elapsed();
    let (rss, _) = rss_kib(&me);
    println!(
        "{:<48} {:>10.0} allocs/s   /8 with {} held: {} runs, RSS +{} KiB",
        "allocator in-process (memory only)",
        MILLION as f64 / took.as_secs_f64(),
        a.held_count(),
        a.run_count(),
        rss.saturating_sub(base)
    );
    drop(a);
    // Worst case: every other address held, so 1,000,000 runs of one address.
    let (base, _) = rss_kib(&me);
    let mut a = Allocator::new(slash8(), Order::Serial);
    for _ in 0..2 * MILLION {
        if let Ok((_, c)) = a.plan_next() {
            a.apply(&c);
        }
    }
    let first = slash8().first;
    for i in 0..MILLION {
        if let Some(c) = a.plan_release(first + 2 * i) {
            a.apply(&c);
        }
    }
    let (rss, _) = rss_kib(&me);
    println!(
        "{:<48} /8 with {} held in {} runs (fragmented): RSS +{} KiB",
        "allocator in-process, worst case",
        a.held_count(),
        a.run_count(),
        rss.saturating_sub(base)
    );
}

async fn durable_bench(clients: usize, total: usize) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return println!("tempdir: {e}"),
    };
    let store = match common::Store::open(dir.path(), 1) {
        Ok(s) => s,
        Err(e) => return println!("store: {e}"),
    };
    let settings = Settings {
        local_defaults: parse_default_pools("DEFAULT_POOLS", "").unwrap_or_default(),
        ..Settings::default()
    };
    let ipam =
        match IpamStore::open(store).and_then(|s| Ipam::new(settings, s, FakeRoutes::default())) {
            Ok(i) => Arc::new(i),
            Err(e) => return println!("ipam: {e}"),
        };
    let pool = ipam
        .request_pool(PoolRequest {
            space: Space::Local,
            v6: false,
            explicit: Prefix::parse("10.0.0.0/8").ok().map(|p| (p, None)),
            options: Default::default(),
        })
        .await;
    let Ok(pool) = pool else {
        return println!("pool: {pool:?}");
    };
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let ipam = ipam.clone();
        let id = pool.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total / clients);
            for _ in 0..total / clients {
                let s = Instant::now();
                let r = ipam
                    .request_address(AddressRequest {
                        pool_id: id.clone(),
                        address: None,
                        gateway: false,
                    })
                    .await;
                if r.is_err() {
                    break;
                }
                lat.push(s.elapsed().as_micros() as u32);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let took = t.elapsed();
    report(
        &format!("service in-process, durable, {clients} callers"),
        lat.len(),
        took,
        &mut lat,
    );
}

/// One keep-alive HTTP/1.1 connection speaking to the plugin like dockerd does.
struct Conn {
    r: BufReader<tokio::net::unix::OwnedReadHalf>,
    w: tokio::net::unix::OwnedWriteHalf,
}

impl Conn {
    async fn open(path: &str) -> std::io::Result<Self> {
        let s = tokio::net::UnixStream::connect(path).await?;
        let (r, w) = s.into_split();
        Ok(Self {
            r: BufReader::new(r),
            w,
        })
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: \r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.w.write_all(req.as_bytes()).await?;
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            if self.r.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut buf = vec![0u8; len];
        self.r.read_exact(&mut buf).await?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

async fn socket_phase(sock: &str, pool_id: &str, clients: usize, total: usize) -> Vec<u32> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let sock = sock.to_string();
        let body = format!("{{\"PoolID\":\"{pool_id}\",\"Address\":\"\",\"Options\":null}}\n");
        let n = total / clients;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let Ok(mut c) = Conn::open(&sock).await else {
                return lat;
            };
            for _ in 0..n {
                let s = Instant::now();
                match c.call("POST", "/IpamDriver.RequestAddress", &body).await {
                    Ok((200, _)) => lat.push(s.elapsed().as_micros() as u32),
                    Ok((st, b)) => {
                        eprintln!("RequestAddress: {st} {b}");
                        break;
                    }
                    Err(e) => {
                        eprintln!("RequestAddress: {e}");
                        break;
                    }
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let took = t.elapsed();
    report(
        &format!("through the socket, durable, {clients} clients"),
        lat.len(),
        took,
        &mut lat,
    );
    lat
}

async fn socket_bench(sock: &str, pid: Option<&str>) {
    let mut c = match Conn::open(sock).await {
        Ok(c) => c,
        Err(e) => return println!("cannot connect to {sock}: {e}"),
    };
    let body = format!(
        "{{\"AddressSpace\":\"{LOCAL_SPACE}\",\"Pool\":\"10.0.0.0/8\",\"SubPool\":\"\",\"Options\":{{}},\"V6\":false}}\n"
    );
    let pool_id = match c.call("POST", "/IpamDriver.RequestPool", &body).await {
        Ok((200, b)) => serde_json::from_str::<api::RequestPoolResponse>(&b)
            .map(|r| r.pool_id)
            .unwrap_or_default(),
        other => return println!("RequestPool failed: {other:?}"),
    };
    if let Some(pid) = pid {
        let (rss, _) = rss_kib(pid);
        println!("{:<48} {rss} KiB", "plugin RSS, empty /8 pool");
    }
    let mut done = socket_phase(sock, &pool_id, 1, 5_000).await.len();
    done += socket_phase(sock, &pool_id, 32, 100_000).await.len();
    // Fill up to 1,000,000 held with 32 clients, then measure memory.
    let rest = 1_000_000usize.saturating_sub(done);
    done += socket_phase(sock, &pool_id, 32, rest - rest % 32)
        .await
        .len();
    if done < 1_000_000 {
        done += socket_phase(sock, &pool_id, 1, 1_000_000 - done)
            .await
            .len();
    }
    if done < 1_000_000 {
        println!("only {done} allocations succeeded");
    }
    if let Ok((200, b)) = c
        .call(
            "GET",
            &format!("/outboard/v1/pools?pool={pool_id}&limit=5"),
            "",
        )
        .await
    {
        let held = serde_json::from_str::<api::PoolsView>(&b)
            .ok()
            .and_then(|v| v.pools.first().map(|p| (p.held, p.runs.len())));
        println!("{:<48} {held:?}", "pool view (held, runs)");
    }
    if let Some(pid) = pid {
        let (rss, hwm) = rss_kib(pid);
        println!(
            "{:<48} {rss} KiB ({:.1} MiB), peak {hwm} KiB",
            "plugin RSS, /8 with 1,000,000 held",
            rss as f64 / 1024.0
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return eprintln!("runtime: {e}"),
    };
    if let Some(sock) = opt("--socket") {
        // One client thread: the plugin under test gets the rest of the machine's cores.
        let pid = opt("--pid");
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(socket_bench(&sock, pid.as_deref())),
            Err(e) => eprintln!("runtime: {e}"),
        }
        return;
    }
    allocator_bench();
    rt.block_on(async {
        durable_bench(1, 5_000).await;
        durable_bench(32, 100_000).await;
    });
}
