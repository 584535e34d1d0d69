//! Overlay router tests over the in-memory host, and the edge's conversions on their own.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::service::{Overlay, Settings};
use super::sys::fake::FakeOverlay;

const NET: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NET2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const EP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn svc(fake: &FakeOverlay, store: &common::Store) -> Arc<Overlay<FakeOverlay>> {
    let s = Settings {
        vxlan_port: 4790,
        underlay_mtu: 1500,
    };
    Arc::new(Overlay::new(fake.clone(), store.clone(), s).unwrap())
}

async fn call(s: &Arc<Overlay<FakeOverlay>>, path: &str, body: &str) -> (StatusCode, Value) {
    let path = format!("/NetworkDriver.{path}");
    common::testing::call(&super::router(s.clone()), "POST", &path, body.to_string()).await
}

fn node(addr: &str, me: bool) -> String {
    json!({"DiscoveryType": 1, "DiscoveryData": {"Address": addr, "BindAddress": "", "Self": me}})
        .to_string()
}

fn create(id: &str, generic: Value, internal: bool) -> String {
    json!({"NetworkID": id, "Options": {"com.docker.network.generic": generic,
           "com.docker.network.internal": internal},
           "IPv4Data": [{"AddressSpace": "", "Pool": "10.78.0.0/24", "Gateway": "10.78.0.1/24"}]})
    .to_string()
}

#[tokio::test]
async fn global_scope() {
    let s = svc(
        &FakeOverlay::default(),
        &common::Store::temporary().unwrap(),
    );
    let (st, v) = call(&s, "GetCapabilities", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v, json!({"Scope": "global", "ConnectivityScope": "global"}));
}

#[tokio::test]
async fn vnis_unique_durable_and_freed() {
    let store = common::Store::temporary().unwrap();
    let s = svc(&FakeOverlay::default(), &store);
    let (st, a) = call(
        &s,
        "AllocateNetwork",
        &json!({"NetworkID": NET, "Options": {}}).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(a["Options"]["outboard.vni"], "10001");
    assert_eq!(a["Options"]["outboard.vxlan_port"], "4790");
    assert_eq!(a["Options"]["outboard.mtu"], "1450");
    let (_, again) = call(
        &s,
        "AllocateNetwork",
        &json!({"NetworkID": NET, "Options": {}}).to_string(),
    )
    .await;
    assert_eq!(again, a, "a repeated allocation gets the same answer");
    let (_, b) = call(
        &s,
        "AllocateNetwork",
        &json!({"NetworkID": NET2}).to_string(),
    )
    .await;
    assert_eq!(b["Options"]["outboard.vni"], "10002");
    // A restarted plugin sees the same allocations.
    drop(s);
    let s = svc(&FakeOverlay::default(), &store);
    let n3 = "3".repeat(64);
    let (st, c) = call(
        &s,
        "AllocateNetwork",
        &json!({"NetworkID": n3, "Options": {"vni": "10002"}}).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(
        c["Err"]
            .as_str()
            .unwrap()
            .contains("VNI 10002 is already used"),
        "{c}"
    );
    let (st, _) = call(&s, "FreeNetwork", &json!({"NetworkID": NET2}).to_string()).await;
    assert_eq!(st, StatusCode::OK);
    let (st, c) = call(
        &s,
        "AllocateNetwork",
        &json!({"NetworkID": n3, "Options": {"vni": "10002"}}).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{c}");
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let fake = FakeOverlay::default();
    let s = svc(&fake, &common::Store::temporary().unwrap());
    for (path, body) in [
        ("AllocateNetwork", "{not json".to_string()),
        ("AllocateNetwork", json!({"NetworkID": "x"}).to_string()),
        (
            "AllocateNetwork",
            json!({"NetworkID": NET, "Options": {"bogus": "1"}}).to_string(),
        ),
        (
            "AllocateNetwork",
            json!({"NetworkID": NET, "Options": {"vni": "0"}}).to_string(),
        ),
        (
            "AllocateNetwork",
            json!({"NetworkID": NET, "Options": {"vxlan_port": "4789"}}).to_string(),
        ),
        ("DiscoverNew", "[]".to_string()),
        (
            "DiscoverNew",
            json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "nope"}}).to_string(),
        ),
        (
            "DiscoverNew",
            json!({"DiscoveryType": 1, "DiscoveryData": 7}).to_string(),
        ),
        ("DiscoverDelete", node("10.77.0.99", false)),
        ("CreateNetwork", create(NET, json!({}), false)),
    ] {
        let (st, v) = call(&s, path, &body).await;
        assert!(st.is_client_error(), "{path} {body}: {st}");
        assert!(
            !v["Err"].as_str().unwrap_or("").is_empty(),
            "{path} {body}: {v}"
        );
    }
    assert!(s.peers().unwrap().is_empty());
    assert!(fake.names().is_empty());
    let (_, a) = call(
        &s,
        "AllocateNetwork",
        &json!({"NetworkID": NET}).to_string(),
    )
    .await;
    assert_eq!(
        a["Options"]["outboard.vni"], "10001",
        "nothing was allocated by the refused calls"
    );
}

#[tokio::test]
async fn peers_persist_and_fdb_follows() {
    let store = common::Store::temporary().unwrap();
    let fake = FakeOverlay::default();
    let s = svc(&fake, &store);
    assert_eq!(
        call(&s, "DiscoverNew", &node("10.77.0.11", true)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s, "DiscoverNew", &node("10.77.0.12", false)).await.0,
        StatusCode::OK
    );
    let opts =
        json!({"outboard.vni": "10001", "outboard.vxlan_port": "4790", "outboard.mtu": "1450"});
    let (st, v) = call(&s, "CreateNetwork", &create(NET, opts, false)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let vx = format!("oxv{}002711", s.tag());
    assert_eq!(
        fake.fdb(),
        vec![(vx.clone(), "10.77.0.12".parse().unwrap())]
    );
    assert_eq!(
        call(&s, "DiscoverNew", &node("10.77.0.13", false)).await.0,
        StatusCode::OK
    );
    assert_eq!(fake.fdb().len(), 2);
    // A restart (dockerd replays only Self): peers come from the store, links are rebuilt.
    drop(s);
    fake.vanish(&vx);
    let s = svc(&fake, &store);
    let r = s.reconcile().await.unwrap();
    assert_eq!(r.recreated, 1);
    assert_eq!(
        fake.fdb().len(),
        2,
        "both peers replicated again after restart"
    );
    assert_eq!(
        call(&s, "DiscoverDelete", &node("10.77.0.13", false))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(fake.fdb(), vec![(vx, "10.77.0.12".parse().unwrap())]);
}

#[tokio::test]
async fn endpoints_and_teardown_leave_nothing() {
    let fake = FakeOverlay::default();
    let s = svc(&fake, &common::Store::temporary().unwrap());
    let opts =
        json!({"outboard.vni": "10005", "outboard.vxlan_port": "4790", "outboard.mtu": "1450"});
    assert_eq!(
        call(&s, "CreateNetwork", &create(NET, opts.clone(), true))
            .await
            .0,
        StatusCode::OK
    );
    let (st, v) = call(&s, "CreateNetwork", &create(NET2, opts, false)).await;
    assert_eq!(st, StatusCode::CONFLICT, "same VNI twice on a node: {v}");
    let ep = json!({"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.78.0.2/24"}})
        .to_string();
    let (st, v) = call(&s, "CreateEndpoint", &ep).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["Interface"]["MacAddress"], "02:42:0a:4e:00:02");
    let j = json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x"}).to_string();
    let (_, v) = call(&s, "Join", &j).await;
    assert_eq!(v["DisableGatewayService"], true, "--internal: no way out");
    assert!(v.get("Gateway").is_none());
    assert_eq!(fake.names().len(), 4);
    let e = json!({"NetworkID": NET, "EndpointID": EP}).to_string();
    assert_eq!(call(&s, "DeleteEndpoint", &e).await.0, StatusCode::OK);
    assert_eq!(
        call(&s, "DeleteNetwork", &json!({"NetworkID": NET}).to_string())
            .await
            .0,
        StatusCode::OK
    );
    assert!(fake.names().is_empty(), "{:?}", fake.names());
}

// ----- the edge alone: wire → model, no service -----

#[test]
fn discovery_is_decoded_at_the_edge() {
    use super::model::Discovery;
    let req = |t: i64, data: Value| -> crate::api::DiscoveryRequest {
        serde_json::from_value(json!({"DiscoveryType": t, "DiscoveryData": data})).unwrap()
    };
    // Encryption keys are not even decoded: they concern Docker's own overlay.
    assert_eq!(
        Discovery::try_from(req(2, json!("anything"))).unwrap(),
        Discovery::EncryptionKeys
    );
    let Discovery::Node(n) =
        Discovery::try_from(req(1, json!({"Address": "192.0.2.7", "Self": true}))).unwrap()
    else {
        panic!("a node discovery");
    };
    assert!(n.is_self && n.addr.to_string() == "192.0.2.7");
    let e = Discovery::try_from(req(3, Value::Null)).unwrap_err();
    assert!(e.to_string().contains("DiscoveryType 3"), "{e}");
}
