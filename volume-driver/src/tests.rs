//! Router tests (`oneshot`, bodies as dockerd sends them: no Content-Type, `{}` or empty), the
//! config.json check, and one real unix-socket exchange.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::Value;

use super::*;
use crate::sys::FakeSys;

fn app() -> (axum::Router, Arc<FakeSys>) {
    let fake = Arc::new(FakeSys::new());
    let config = Config {
        bind_allowed: "/srv".into(),
        ..Config::default()
    };
    let plugin =
        Plugin::with_sys(&config, common::Store::temporary().unwrap(), fake.clone()).unwrap();
    let rt = common::RuntimeConfig::default();
    let routes = router(plugin.service().clone());
    (
        common::http::app(routes, <Plugin as common::Plugin>::IMPLEMENTS, &rt),
        fake,
    )
}

async fn call(app: &axum::Router, path: &str, body: &str) -> (StatusCode, Value) {
    common::testing::call(app, "POST", path, body.to_string()).await
}

#[tokio::test]
async fn capabilities_and_empty_list_with_dockerd_bodies() {
    let (app, _) = app();
    for body in ["{}\n", ""] {
        let (s, v) = call(&app, "/VolumeDriver.Capabilities", body).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, serde_json::json!({"Capabilities": {"Scope": "local"}}));
        let (s, v) = call(&app, "/VolumeDriver.List", body).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, serde_json::json!({"Volumes": []}));
    }
}

#[tokio::test]
async fn full_lifecycle_over_http() {
    let (app, _) = app();
    // dockerd: Get (must fail for an unknown volume) → Create.
    let (s, v) = call(&app, "/VolumeDriver.Get", "{\"Name\":\"v1\"}\n").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["Err"], "no such volume: v1");
    let (s, v) = call(
        &app,
        "/VolumeDriver.Create",
        "{\"Name\":\"v1\",\"Opts\":{\"uid\":\"1000\",\"mode\":\"0750\"}}\n",
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, serde_json::json!({})));
    let (s, v) = call(
        &app,
        "/VolumeDriver.Create",
        "{\"Name\":\"v2\",\"Opts\":null}\n",
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, serde_json::json!({})));

    let (s, v) = call(&app, "/VolumeDriver.Get", "{\"Name\":\"v1\"}\n").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Volume"]["Name"], "v1");
    assert_eq!(v["Volume"]["Mountpoint"], "/mnt/volumes/v1");
    assert!(v["Volume"]["CreatedAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(v["Volume"]["Status"]["Owner"], "1000:0");

    let (_, v) = call(&app, "/VolumeDriver.List", "{}\n").await;
    let names: Vec<_> = v["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["v1", "v2"]);

    let id = "a".repeat(64);
    let m = format!("{{\"Name\":\"v1\",\"ID\":\"{id}\"}}\n");
    let (s, v) = call(&app, "/VolumeDriver.Mount", &m).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Mountpoint"], "/mnt/volumes/v1");
    let (_, v) = call(&app, "/VolumeDriver.Path", "{\"Name\":\"v1\"}\n").await;
    assert_eq!(v["Mountpoint"], "/mnt/volumes/v1");
    let (s, v) = call(&app, "/VolumeDriver.Remove", "{\"Name\":\"v1\"}\n").await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(v["Err"].as_str().unwrap().contains(&id), "{v}");
    let (s, _) = call(&app, "/VolumeDriver.Unmount", &m).await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&app, "/VolumeDriver.Path", "{\"Name\":\"v1\"}\n").await;
    assert_eq!(v["Mountpoint"], "");
    let (s, v) = call(&app, "/VolumeDriver.Remove", "{\"Name\":\"v1\"}\n").await;
    assert_eq!((s, v), (StatusCode::OK, serde_json::json!({})));
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let (app, fake) = app();
    fake.clear_calls();
    for (body, needle) in [
        ("{\"Name\":\"../x\"}", "invalid volume name"),
        ("{\"Name\":\"\"}", "the name is empty"),
        ("{\"Name\":\"v\",\"Opts\":{\"size\":\"1x\"}}", "option size"),
        (
            "{\"Name\":\"v\",\"Opts\":{\"type\":\"bind\",\"path\":\"/etc\"}}",
            "no such directory",
        ),
        ("{\"Name\":", "malformed request body"),
        (
            "{\"Name\":\"v\",\"Opts\":{\"uid\":1}}",
            "malformed request body",
        ),
    ] {
        let (s, v) = call(&app, "/VolumeDriver.Create", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(v["Err"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    assert!(fake
        .calls()
        .iter()
        .all(|c| !c.starts_with("make_volume_dir")));
    let (_, v) = call(&app, "/VolumeDriver.List", "{}").await;
    assert_eq!(v["Volumes"], serde_json::json!([]));
}

#[test]
fn config_json_declares_every_setting() {
    common::config::check_config_json::<Config>(include_str!("../../deploy/volume/config.json"))
        .unwrap();
}

#[test]
fn config_validation() {
    let c = Config {
        bind_allowed: " /srv/ , /data/x,/".into(),
        ..Config::default()
    };
    assert_eq!(c.validate().unwrap(), ["/srv", "/data/x", "/"]);
    for bad in ["srv", "/srv/../etc", "/a,./b"] {
        let c = Config {
            bind_allowed: bad.into(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("BIND_ALLOWED"), "{e}");
    }
    let c = Config {
        data_dir: "data".into(),
        ..Config::default()
    };
    assert!(c.validate().unwrap_err().to_string().contains("DATA_DIR"));
    assert!(Config::default().validate().unwrap().is_empty());
}

/// A `BIND_ALLOWED` covering (or inside) the plugin's own data or mount root is refused at
/// start; one beside them is fine.
#[test]
fn bind_allowed_must_not_reach_the_plugins_own_roots() {
    let fake = Arc::new(FakeSys::new());
    fake.set_host_path("/data", "/var/lib/outboard/volume-data");
    fake.set_host_path(
        "/mnt/volumes",
        "/var/lib/docker/plugins/abc/propagated-mount",
    );
    let start = |allowed: &str| {
        let c = Config {
            bind_allowed: allowed.into(),
            ..Config::default()
        };
        Plugin::with_sys(&c, common::Store::temporary().unwrap(), fake.clone())
    };
    for bad in [
        "/",
        "/var",
        "/srv,/var/lib/outboard",
        "/var/lib/outboard/volume-data",
        "/var/lib/outboard/volume-data/v1",
        "/var/lib/docker",
    ] {
        let e = start(bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("BIND_ALLOWED"), "{bad}: {e:?}");
    }
    for good in ["", "/srv", "/var/lib/outboard/volume-data2", "/srv,/home"] {
        assert!(start(good).is_ok(), "{good}");
    }
}

#[test]
fn config_json_has_the_mounts_the_design_needs() {
    let v: Value = serde_json::from_str(include_str!("../../deploy/volume/config.json")).unwrap();
    assert_eq!(v["propagatedMount"], Config::default().mount_root);
    let mounts: BTreeMap<String, Value> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m.clone()))
        .collect();
    assert_eq!(mounts["data"]["destination"], Config::default().data_dir);
    assert_eq!(mounts["host"]["destination"], Config::default().host_root);
    assert_eq!(mounts["data"]["settable"], serde_json::json!(["source"]));
}

/// One real exchange over a unix socket, written the way dockerd writes it (empty Host,
/// no Content-Type).
#[tokio::test]
async fn unix_socket_round_trip() {
    let (app, _) = app();
    let server = common::testing::serve_on_socket(app).await.unwrap();
    let body = "{\"Name\":\"sock1\",\"Opts\":null}\n";
    let out = common::testing::dockerd_post(&server.sock, "/VolumeDriver.Create", body)
        .await
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("{}"), "{out}");
    server.stop().await.unwrap();
}

/// Names and caller IDs are validated at the edge, before the service or the OS sees them:
/// a bad one is a clear `Err` and nothing is mounted or recorded.
#[tokio::test]
async fn bad_names_and_ids_are_refused_at_the_edge() {
    let (app, fake) = app();
    let (s, _) = call(&app, "/VolumeDriver.Create", "{\"Name\":\"v\"}").await;
    assert_eq!(s, StatusCode::OK);
    let huge = "x".repeat(300);
    for body in [
        "{\"Name\":\"v\",\"ID\":\"\"}".to_string(),
        format!("{{\"Name\":\"v\",\"ID\":\"{huge}\"}}"),
        "{\"Name\":\"v\",\"ID\":\"a\\nb\"}".to_string(),
    ] {
        for route in ["/VolumeDriver.Mount", "/VolumeDriver.Unmount"] {
            let (s, v) = call(&app, route, &body).await;
            assert!(s.is_client_error(), "{route} {body}: {s}");
            assert!(v["Err"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }
    }
    for name in ["../etc", ".hidden", "a/b", ""] {
        let body = format!("{{\"Name\":\"{name}\",\"ID\":\"c1\"}}");
        for route in [
            "/VolumeDriver.Mount",
            "/VolumeDriver.Get",
            "/VolumeDriver.Remove",
        ] {
            let (s, v) = call(&app, route, &body).await;
            assert!(s.is_client_error(), "{route} {body}: {s}");
            assert!(v["Err"].as_str().is_some_and(|e| e.contains("name")), "{v}");
        }
    }
    assert!(fake.mounts().is_empty());
    let (_, v) = call(&app, "/VolumeDriver.Get", "{\"Name\":\"v\"}").await;
    assert_eq!(v["Volume"]["Status"]["Mounts"], 0);
}
