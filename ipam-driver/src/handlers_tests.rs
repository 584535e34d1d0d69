//! Router tests (`oneshot` through the full app, as dockerd calls it: POST, no Content-Type,
//! empty bodies) and one real unix-socket test.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::config::parse_default_pools;
use crate::service::Settings;
use crate::store::IpamStore;
use crate::sys::FakeRoutes;
use crate::Ipam;

fn app(store: &common::Store) -> axum::Router {
    let settings = Settings {
        local_defaults: parse_default_pools("DEFAULT_POOLS", "10.200.0.0/16/24").unwrap(),
        global_defaults: Vec::new(),
        avoid_host_routes: true,
    };
    let ipam = Ipam::new(
        settings,
        IpamStore::open(store.clone()).unwrap(),
        FakeRoutes::default(),
    )
    .unwrap();
    common::http::app(
        crate::router(Arc::new(ipam)),
        &["IpamDriver"],
        &common::RuntimeConfig::default(),
    )
}

async fn call(app: &axum::Router, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
    common::testing::call(app, method, path, body.to_string()).await
}

#[tokio::test]
async fn empty_bodies_without_content_type() {
    let store = common::Store::temporary().unwrap();
    let app = app(&store);
    let (s, v) = call(&app, "POST", "/IpamDriver.GetCapabilities", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})
    );
    let (s, v) = call(&app, "POST", "/IpamDriver.GetDefaultAddressSpaces", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"LocalDefaultAddressSpace": "OutboardLocal", "GlobalDefaultAddressSpace": "OutboardGlobal"})
    );
    let (s, v) = call(&app, "POST", "/Plugin.Activate", "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"Implements": ["IpamDriver"]}));
}

#[tokio::test]
async fn full_network_lifecycle_and_pools_view() {
    let store = common::Store::temporary().unwrap();
    let app = app(&store);
    let (s, v) = call(&app, "POST", "/IpamDriver.RequestPool",
        "{\"AddressSpace\":\"OutboardLocal\",\"Pool\":\"10.98.0.0/24\",\"SubPool\":\"10.98.0.64/26\",\"Options\":{},\"V6\":false}\n").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["PoolID"].as_str().unwrap().to_string();
    assert_eq!(v["Pool"], "10.98.0.0/24");
    let (s, v) = call(&app, "POST", "/IpamDriver.RequestAddress",
        &format!("{{\"PoolID\":\"{id}\",\"Address\":\"10.98.0.254\",\"Options\":{{\"RequestAddressType\":\"com.docker.network.gateway\"}}}}\n")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Address"], "10.98.0.254/24");
    let (_, v) = call(
        &app,
        "POST",
        "/IpamDriver.RequestAddress",
        &format!("{{\"PoolID\":\"{id}\",\"Address\":\"10.98.0.64\",\"Options\":null}}\n"),
    )
    .await;
    assert_eq!(v["Address"], "10.98.0.64/24");
    let (_, v) = call(
        &app,
        "POST",
        "/IpamDriver.RequestAddress",
        &format!("{{\"PoolID\":\"{id}\",\"Address\":\"\",\"Options\":null}}\n"),
    )
    .await;
    assert_eq!(v["Address"], "10.98.0.65/24");
    assert_eq!(v["Data"]["outboard.kind"], "container");

    let (s, v) = call(&app, "GET", "/outboard/v1/pools", "").await;
    assert_eq!(s, StatusCode::OK);
    let p = &v["pools"][0];
    assert_eq!(p["id"], id.as_str());
    assert_eq!(p["pool"], "10.98.0.0/24");
    assert_eq!(p["ip_range"], "10.98.0.64/26");
    assert_eq!(p["gateway"], "10.98.0.254");
    assert_eq!(p["held"], 3);
    assert_eq!(
        p["held_by_kind"],
        json!({"aux": 1, "container": 1, "gateway": 1})
    );
    assert_eq!(
        p["runs"][0],
        json!({"first": "10.98.0.64", "last": "10.98.0.64", "count": 1, "kind": "aux"})
    );
    let (_, v) = call(&app, "GET", "/outboard/v1/pools?pool=10.99.0.0/24", "").await;
    assert_eq!(v, json!({"pools": []}));
    let (_, v) = call(
        &app,
        "GET",
        "/outboard/v1/pools?pool=10.98.0.0/24&limit=1",
        "",
    )
    .await;
    assert_eq!(v["pools"][0]["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["pools"][0]["runs_truncated"], true);

    let (s, _) = call(
        &app,
        "POST",
        "/IpamDriver.ReleaseAddress",
        &format!("{{\"PoolID\":\"{id}\",\"Address\":\"10.98.0.65\"}}\n"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(
        &app,
        "POST",
        "/IpamDriver.ReleasePool",
        &format!("{{\"PoolID\":\"{id}\"}}\n"),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let (_, v) = call(&app, "GET", "/outboard/v1/pools", "").await;
    assert_eq!(v, json!({"pools": []}));
}

#[tokio::test]
async fn errors_are_non_200_with_err() {
    let store = common::Store::temporary().unwrap();
    let app = app(&store);
    let (s, v) = call(&app, "POST", "/IpamDriver.RequestPool", "{\"AddressSpace\":\"OutboardLocal\",\"Pool\":\"10.98.0.0/24\",\"Options\":{\"colour\":\"red\"}}").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["Err"]
            .as_str()
            .unwrap()
            .contains("unknown ipam option \"colour\""),
        "{v}"
    );
    assert_eq!(v["Err"], v["Error"]);
    let (s, v) = call(
        &app,
        "POST",
        "/IpamDriver.RequestAddress",
        "{\"PoolID\":\"nope\",\"Address\":\"\"}",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["Err"].as_str().unwrap().contains("no pool with ID"));
    let (s, v) = call(&app, "POST", "/IpamDriver.RequestPool", "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["Err"].as_str().unwrap().contains("malformed"));
    let (s, _) = call(&app, "POST", "/IpamDriver.Bogus", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing was allocated by the failed calls.
    let (_, v) = call(&app, "GET", "/outboard/v1/pools", "").await;
    assert_eq!(v, json!({"pools": []}));
}

/// The real thing: a unix socket, a raw HTTP/1.1 request as dockerd writes it.
#[tokio::test]
async fn serves_on_a_unix_socket() {
    let store = common::Store::temporary().unwrap();
    let server = common::testing::serve_on_socket(app(&store)).await.unwrap();
    let sock = server.sock.clone();
    let body = "{\"AddressSpace\":\"OutboardLocal\",\"Pool\":\"\",\"SubPool\":\"\",\"Options\":{},\"V6\":false}\n";
    let out = common::testing::dockerd_post(&sock, "/IpamDriver.RequestPool", body)
        .await
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"Pool\":\"10.200.0.0/24\""), "{out}");
    server.stop().await.unwrap();
    assert!(!sock.exists());
}
