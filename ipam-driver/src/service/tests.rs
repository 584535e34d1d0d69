//! Service tests: requests go through the same wire conversions as dockerd's (`handlers`), so
//! validation and decisions are tested together, without HTTP.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::addr::{to_ip, Addr};
use crate::alloc::Kind;
use crate::api;
use crate::config::parse_default_pools;
use crate::model::{AddressRelease, AddressRequest, PoolFilter, PoolRequest};
use crate::store::IpamStore;
use crate::sys::FakeRoutes;

const ADDRESS_TYPE: &str = "RequestAddressType";
const GATEWAY_TYPE: &str = "com.docker.network.gateway";

/// The wire round trip of each call, as the handlers do it.
trait Wire {
    async fn wire_pool(
        &self,
        r: api::RequestPoolRequest,
    ) -> Result<api::RequestPoolResponse, IpamError>;
    async fn wire_address(
        &self,
        r: api::RequestAddressRequest,
    ) -> Result<api::RequestAddressResponse, IpamError>;
    async fn wire_release(&self, r: api::ReleaseAddressRequest) -> Result<(), IpamError>;
}

impl<R: HostRoutes> Wire for Ipam<R> {
    async fn wire_pool(
        &self,
        r: api::RequestPoolRequest,
    ) -> Result<api::RequestPoolResponse, IpamError> {
        let g = self.request_pool(PoolRequest::try_from(r)?).await?;
        Ok(g.into())
    }
    async fn wire_address(
        &self,
        r: api::RequestAddressRequest,
    ) -> Result<api::RequestAddressResponse, IpamError> {
        let g = self.request_address(AddressRequest::try_from(r)?).await?;
        Ok(g.into())
    }
    async fn wire_release(&self, r: api::ReleaseAddressRequest) -> Result<(), IpamError> {
        self.release_address(AddressRelease::try_from(r)?).await
    }
}

fn all() -> PoolFilter {
    PoolFilter {
        pool: None,
        limit: 1000,
    }
}

fn settings(local: &str) -> Settings {
    Settings {
        local_defaults: parse_default_pools("DEFAULT_POOLS", local).unwrap(),
        global_defaults: parse_default_pools("GLOBAL_DEFAULT_POOLS", "10.0.0.0/8/24").unwrap(),
        avoid_host_routes: true,
    }
}

fn ipam(store: &common::Store, routes: FakeRoutes) -> Ipam<FakeRoutes> {
    Ipam::new(
        settings("10.200.0.0/16/24,fd00:42::/48/64"),
        IpamStore::open(store.clone()).unwrap(),
        routes,
    )
    .unwrap()
}

fn pool_req(pool: &str, sub: &str, opts: &[(&str, &str)]) -> api::RequestPoolRequest {
    api::RequestPoolRequest {
        address_space: LOCAL_SPACE.into(),
        pool: pool.into(),
        sub_pool: sub.into(),
        options: Some(
            opts.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        v6: pool.contains(':'),
    }
}

fn addr_req(id: &str, addr: &str, gw: bool) -> api::RequestAddressRequest {
    api::RequestAddressRequest {
        pool_id: id.into(),
        address: addr.into(),
        options: gw.then(|| BTreeMap::from([(ADDRESS_TYPE.to_string(), GATEWAY_TYPE.to_string())])),
    }
}

async fn take(i: &Ipam<FakeRoutes>, id: &str, addr: &str) -> Result<String, IpamError> {
    i.wire_address(addr_req(id, addr, false))
        .await
        .map(|r| r.address)
}

#[tokio::test]
async fn absurd_pools_are_refused() {
    let store = common::Store::temporary().unwrap();
    let i = ipam(&store, FakeRoutes::default());
    for p in [
        "0.0.0.0/0",
        "::/0",
        "10.0.0.0/7",
        "127.0.0.0/24",
        "224.0.0.0/24",
        "0.1.0.0/16",
        "ff02::/64",
        "::/64",
    ] {
        let r = i.wire_pool(pool_req(p, "", &[])).await;
        assert!(r.is_err(), "{p} accepted");
    }
    // Nothing was recorded: a default pool is still handed out.
    let d = i.wire_pool(pool_req("", "", &[])).await.unwrap();
    assert_eq!(d.pool, "10.200.0.0/24");
}

#[tokio::test]
async fn a_duplicate_release_is_answered_only_after_a_flush() {
    let store = common::Store::temporary().unwrap();
    let i = ipam(&store, FakeRoutes::default());
    let p = i
        .wire_pool(pool_req("10.97.0.0/24", "", &[]))
        .await
        .unwrap();
    let a = take(&i, &p.pool_id, "").await.unwrap();
    let rel = || api::ReleaseAddressRequest {
        pool_id: p.pool_id.clone(),
        address: a.clone(),
    };
    i.wire_release(rel()).await.unwrap();
    let before = store
        .flush_stats()
        .count
        .load(std::sync::atomic::Ordering::SeqCst);
    // The second release finds nothing held (the first changed memory); it must still not
    // answer before a flush, which covers a concurrent first release still in flight.
    i.wire_release(rel()).await.unwrap();
    assert!(
        store
            .flush_stats()
            .count
            .load(std::sync::atomic::Ordering::SeqCst)
            > before
    );
}

#[tokio::test]
async fn network_create_sequence() {
    let store = common::Store::temporary().unwrap();
    let i = ipam(&store, FakeRoutes::default());
    let p = i
        .wire_pool(pool_req(
            "10.98.0.0/24",
            "10.98.0.128/25",
            &[("label", "web")],
        ))
        .await
        .unwrap();
    assert_eq!(p.pool, "10.98.0.0/24");
    assert_eq!(p.pool_id, "OutboardLocal/10.98.0.0/24/10.98.0.128/25");
    let gw = i
        .wire_address(addr_req(&p.pool_id, "", true))
        .await
        .unwrap();
    assert_eq!(gw.address, "10.98.0.1/24");
    assert_eq!(gw.data["outboard.kind"], "gateway");
    // aux, inside the range
    assert_eq!(
        take(&i, &p.pool_id, "10.98.0.128").await.unwrap(),
        "10.98.0.128/24"
    );
    // containers come from the range, skipping the aux address
    assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.0.129/24");
    assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.0.130/24");
    // --ip outside the range but in the subnet
    assert_eq!(
        take(&i, &p.pool_id, "10.98.0.50").await.unwrap(),
        "10.98.0.50/24"
    );
    let e = take(&i, &p.pool_id, "10.98.0.50")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already in use (held by container-ip)"), "{e}");
    let e = take(&i, &p.pool_id, "10.98.1.5")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside pool 10.98.0.0/24"), "{e}");
    let e = take(&i, &p.pool_id, "10.98.0.255")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("broadcast"), "{e}");
    let v = i.pools_view(&all());
    let kinds: Vec<&str> = v.pools[0].runs.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["gateway", "container-ip", "aux", "container"]);
    assert_eq!(v.pools[0].held, 5);
    assert_eq!(v.pools[0].capacity, 254);
    assert_eq!(v.pools[0].label.as_deref(), Some("web"));
    // release the containers; serial order does not reuse 10.98.0.129 at once
    i.wire_release(api::ReleaseAddressRequest {
        pool_id: p.pool_id.clone(),
        address: "10.98.0.129".into(),
    })
    .await
    .unwrap();
    assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.0.131/24");
    i.release_pool(&p.pool_id).await.unwrap();
    assert!(i.pools_view(&all()).pools.is_empty());
    assert!(matches!(
        take(&i, &p.pool_id, "").await,
        Err(IpamError::UnknownPool(_))
    ));
}

#[tokio::test]
async fn overlap_and_spaces() {
    let store = common::Store::temporary().unwrap();
    let i = ipam(&store, FakeRoutes::default());
    let a = i
        .wire_pool(pool_req("10.98.0.0/16", "", &[("label", "big")]))
        .await
        .unwrap();
    let e = i
        .wire_pool(pool_req("10.98.5.0/24", "", &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("10.98.5.0/24 overlaps pool 10.98.0.0/16")
            && e.contains(&a.pool_id)
            && e.contains("\"big\""),
        "{e}"
    );
    // The same subnet in the global space is fine.
    let mut g = pool_req("10.98.5.0/24", "", &[]);
    g.address_space = GLOBAL_SPACE.into();
    i.wire_pool(g).await.unwrap();
    let mut bad = pool_req("10.99.0.0/24", "", &[]);
    bad.address_space = "Other".into();
    assert!(matches!(
        i.wire_pool(bad).await,
        Err(IpamError::UnknownSpace(..))
    ));
    // Invalid input changes nothing.
    let before = i.pools_view(&all());
    for (req, needle) in [
        (
            pool_req("10.97.0.0/24", "", &[("order", "random")]),
            "serial and lowest",
        ),
        (
            pool_req("10.97.0.0/24", "", &[("nope", "1")]),
            "unknown ipam option",
        ),
        (
            pool_req("10.97.0.0/24", "10.96.0.0/25", &[]),
            "not inside subnet",
        ),
        (pool_req("10.97.0.0/31", "", &[]), "too small"),
        (pool_req("10.97.0.0/33", "", &[]), "prefix length"),
        (pool_req("", "10.97.0.0/25", &[]), "needs a subnet"),
    ] {
        let e = i.wire_pool(req).await.unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    let mut wrong_family = pool_req("10.97.0.0/24", "", &[]);
    wrong_family.v6 = true;
    assert!(i.wire_pool(wrong_family).await.is_err());
    assert_eq!(i.pools_view(&all()), before);
}

#[tokio::test]
async fn default_pools_skip_allocated_and_routes() {
    let store = common::Store::temporary().unwrap();
    let routes = FakeRoutes::with(&["10.200.0.0/24", "10.200.2.0/23", "0.0.0.0/0"]);
    let i = ipam(&store, routes.clone());
    // An explicit pool already takes 10.200.1.0/24.
    i.wire_pool(pool_req("10.200.1.0/24", "", &[]))
        .await
        .unwrap();
    let a = i.wire_pool(pool_req("", "", &[])).await.unwrap();
    assert_eq!(a.pool, "10.200.4.0/24");
    assert_eq!(a.data["outboard.from-defaults"], "true");
    let b = i.wire_pool(pool_req("", "", &[])).await.unwrap();
    assert_eq!(b.pool, "10.200.5.0/24");
    assert_eq!(routes.calls(), 2);
    let mut v6 = pool_req("", "", &[]);
    v6.v6 = true;
    assert_eq!(i.wire_pool(v6).await.unwrap().pool, "fd00:42::/64");
    // Route failures are errors, not silent overlaps.
    routes.fail(true);
    assert!(matches!(
        i.wire_pool(pool_req("", "", &[])).await,
        Err(IpamError::Routes(_))
    ));
    // Exhaustion of the defaults is a clear error.
    let store = common::Store::temporary().unwrap();
    let i = Ipam::new(
        settings("10.201.0.0/23/24"),
        IpamStore::open(store).unwrap(),
        FakeRoutes::default(),
    )
    .unwrap();
    i.wire_pool(pool_req("", "", &[])).await.unwrap();
    i.wire_pool(pool_req("", "", &[])).await.unwrap();
    let e = i
        .wire_pool(pool_req("", "", &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no free IPv4 pool left in the default pools 10.201.0.0/23/24"),
        "{e}"
    );
}

#[tokio::test]
async fn exhausted_pool_is_an_error_and_changes_nothing() {
    let store = common::Store::temporary().unwrap();
    let i = ipam(&store, FakeRoutes::default());
    let p = i
        .wire_pool(pool_req("10.98.7.0/30", "", &[]))
        .await
        .unwrap();
    assert_eq!(
        i.wire_address(addr_req(&p.pool_id, "", true))
            .await
            .unwrap()
            .address,
        "10.98.7.1/30"
    );
    assert_eq!(take(&i, &p.pool_id, "").await.unwrap(), "10.98.7.2/30");
    let e = take(&i, &p.pool_id, "").await.unwrap_err().to_string();
    assert!(
        e.contains("no free address left in pool 10.98.7.0/30: 2 of 2"),
        "{e}"
    );
    assert_eq!(i.pools_view(&all()).pools[0].held, 2);
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let store = common::Store::open(dir.path(), 1).unwrap();
        let i = ipam(&store, FakeRoutes::default());
        id = i
            .wire_pool(pool_req(
                "fd00:98::/64",
                "",
                &[("reserved", "fd00:98::10-fd00:98::20")],
            ))
            .await
            .unwrap()
            .pool_id;
        assert_eq!(
            i.wire_address(addr_req(&id, "", true))
                .await
                .unwrap()
                .address,
            "fd00:98::1/64"
        );
        for _ in 0..3 {
            take(&i, &id, "").await.unwrap();
        }
        take(&i, &id, "fd00:98::ffff:ffff:ffff:ffff").await.unwrap();
    }
    let store = common::Store::open(dir.path(), 1).unwrap();
    let i = ipam(&store, FakeRoutes::default());
    let v = i.pools_view(&all());
    assert_eq!(v.pools[0].held, 5);
    assert_eq!(v.pools[0].capacity, u128::from(u64::MAX));
    assert_eq!(take(&i, &id, "").await.unwrap(), "fd00:98::5/64");
    let e = i
        .wire_pool(pool_req("fd00:98::/48", "", &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("overlaps pool fd00:98::/64"), "{e}");
}

#[tokio::test]
async fn records_left_by_a_crash_mid_change_are_normalised() {
    use crate::alloc::{Change, Op, Run};
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let store = common::Store::open(dir.path(), 1).unwrap();
        let i = ipam(&store, FakeRoutes::default());
        id = i
            .wire_pool(pool_req("10.98.10.0/24", "", &[]))
            .await
            .unwrap()
            .pool_id;
        for _ in 0..3 {
            take(&i, &id, "").await.unwrap(); // 10.98.10.1-3, one run
        }
        // A release of .2 planned as [Put(.3), Put(.1 end .1)] crashed after its first op.
        let base = Prefix::parse("10.98.10.0/24").unwrap().net;
        let partial = Change {
            ops: vec![Op::Put(
                base + 3,
                Run {
                    end: base + 3,
                    kind: Kind::Dynamic,
                },
            )],
            cursor: None,
        };
        IpamStore::open(store.clone())
            .unwrap()
            .apply(&id, &partial)
            .unwrap();
        store.flush().await.unwrap();
    }
    let store = common::Store::open(dir.path(), 1).unwrap();
    let i = ipam(&store, FakeRoutes::default());
    let v = i.pools_view(&all());
    assert_eq!(
        v.pools[0].held, 3,
        "the unacknowledged release left .2 held"
    );
    assert_eq!(v.pools[0].runs.len(), 1);
    let stored = IpamStore::open(store.clone()).unwrap().load().unwrap();
    assert_eq!(
        stored[0].runs.len(),
        1,
        "the store was rewritten to the united run"
    );
    i.wire_release(api::ReleaseAddressRequest {
        pool_id: id.clone(),
        address: "10.98.10.2".into(),
    })
    .await
    .unwrap();
    drop(i);
    drop(store);
    let store = common::Store::open(dir.path(), 1).unwrap();
    let i = ipam(&store, FakeRoutes::default());
    let runs: Vec<String> = i.pools_view(&all()).pools[0]
        .runs
        .iter()
        .map(|r| format!("{}-{}", r.first, r.last))
        .collect();
    assert_eq!(runs, ["10.98.10.1-10.98.10.1", "10.98.10.3-10.98.10.3"]);
}

/// 64 concurrent requests on one small pool: all distinct, all counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_share_an_address() {
    let store = common::Store::temporary().unwrap();
    let i = Arc::new(ipam(&store, FakeRoutes::default()));
    let id = i
        .wire_pool(pool_req("10.98.8.0/25", "", &[]))
        .await
        .unwrap()
        .pool_id;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let i = i.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move { take(&i, &id, "").await }));
    }
    let mut got = BTreeSet::new();
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => assert!(got.insert(a)),
            Err(IpamError::Exhausted { .. }) => exhausted += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len(), 126);
    assert_eq!(exhausted, 200 - 126);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Next,
        Take(u8),
        Release(u8),
        Restart,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => Just(Step::Next),
            2 => any::<u8>().prop_map(Step::Take),
            3 => any::<u8>().prop_map(Step::Release),
            1 => Just(Step::Restart),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        /// Any sequence of allocate/release/restart (reload from the on-disk store) keeps the
        /// held set exactly what was acknowledged, and never hands out a held address.
        #[test]
        fn held_set_is_exact_across_restarts(steps in proptest::collection::vec(step(), 1..80)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let dir = tempfile::tempdir().unwrap();
                // sled's background flusher may hold the file lock a moment after drop.
                let open = || {
                    for _ in 0..200 {
                        if let Ok(store) = common::Store::open(dir.path(), 1) {
                            return ipam(&store, FakeRoutes::default());
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    panic!("store stays locked");
                };
                let mut i = open();
                let id = i.wire_pool(pool_req("10.98.9.0/27", "10.98.9.8/29", &[])).await.unwrap().pool_id;
                let mut model: BTreeSet<String> = BTreeSet::new();
                for s in steps {
                    match s {
                        Step::Next => match take(&i, &id, "").await {
                            Ok(a) => {
                                let ip = a.split('/').next().unwrap().to_string();
                                prop_assert!(model.insert(ip), "duplicate {}", a);
                            }
                            Err(IpamError::Exhausted { .. }) => {}
                            Err(e) => prop_assert!(false, "{}", e),
                        },
                        Step::Take(n) => {
                            let ip = format!("10.98.9.{}", n % 34);
                            match take(&i, &id, &ip).await {
                                Ok(_) => prop_assert!(model.insert(ip)),
                                Err(_) => prop_assert!(model.contains(&ip) || !(1..=30).contains(&(n % 34))),
                            }
                        }
                        Step::Release(n) => {
                            let ip = format!("10.98.9.{}", n % 32);
                            i.wire_release(api::ReleaseAddressRequest { pool_id: id.clone(), address: ip.clone() })
                                .await
                                .unwrap();
                            model.remove(&ip);
                        }
                        Step::Restart => {
                            drop(i);
                            i = open();
                        }
                    }
                    let v = i.pools_view(&all());
                    let held: BTreeSet<String> = v.pools[0]
                        .runs
                        .iter()
                        .flat_map(|r| {
                            let f = Addr::parse(&r.first).unwrap().n;
                            let l = Addr::parse(&r.last).unwrap().n;
                            (f..=l).map(|n| to_ip(false, n).to_string())
                        })
                        .collect();
                    prop_assert_eq!(&held, &model);
                }
                Ok(())
            })?;
        }
    }
}
