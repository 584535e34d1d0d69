//! Router tests: the handlers through `oneshot`, with a fake filesystem.

use super::*;
use axum::http::StatusCode;
use base64::Engine;

use crate::sys::FakeSys;

fn app(sys: Arc<FakeSys>) -> axum::Router {
    let plugin = match Plugin::with_sys(&Config::default(), sys) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("{e}"),
    };
    let rt = common::RuntimeConfig::default();
    common::http::app(router(plugin.service().clone()), &["authz"], &rt)
}

async fn call(
    app: axum::Router,
    method: &str,
    path: &str,
    body: String,
) -> (StatusCode, serde_json::Value) {
    common::testing::call(&app, method, path, body).await
}

fn authz_body(method: &str, uri: &str, body: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "RequestMethod": method,
        "RequestUri": uri,
        "RequestHeaders": {"Content-Type": "application/json", "User-Agent": "Docker-Client/20.10.24"},
        "SomethingNew": 1
    });
    if let Some(b) = body {
        v["RequestBody"] = base64::engine::general_purpose::STANDARD.encode(b).into();
    }
    format!("{v}\n")
}

fn sys() -> Arc<FakeSys> {
    let s = Arc::new(FakeSys::default());
    s.set_policy(include_str!("../../deploy/authz/policy.example.toml"));
    s
}

#[tokio::test]
async fn authz_req_allows_and_denies() {
    let a = app(sys());
    let (s, v) = call(
        a.clone(),
        "POST",
        "/AuthZPlugin.AuthZReq",
        authz_body("HEAD", "/_ping", None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::json!({"Allow": true}));
    let (s, v) = call(
        a.clone(),
        "POST",
        "/AuthZPlugin.AuthZReq",
        authz_body(
            "POST",
            "/v1.41/containers/create",
            Some(r#"{"Image":"b","HostConfig":{"Privileged":true}}"#),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Allow"], false);
    assert!(
        v["Msg"]
            .as_str()
            .unwrap_or("")
            .contains("privileged containers"),
        "{v}"
    );
    let (s, v) = call(
        a,
        "POST",
        "/AuthZPlugin.AuthZRes",
        authz_body("HEAD", "/_ping", None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Allow"], true);
}

#[tokio::test]
async fn malformed_requests_fail_closed_with_err() {
    for body in ["", "{", "[1,2]", "{\"RequestMethod\":5}"] {
        let (s, v) = call(
            app(sys()),
            "POST",
            "/AuthZPlugin.AuthZReq",
            body.to_string(),
        )
        .await;
        assert_ne!(s, StatusCode::OK, "{body:?}");
        assert!(
            v["Err"].as_str().is_some_and(|e| !e.is_empty()),
            "{body:?}: {v}"
        );
    }
}

#[tokio::test]
async fn stats_show_hits() {
    let a = app(sys());
    for _ in 0..2 {
        call(
            a.clone(),
            "POST",
            "/AuthZPlugin.AuthZReq",
            authz_body(
                "POST",
                "/v1.41/containers/create",
                Some(r#"{"Image":"b","HostConfig":{"PidMode":"host"}}"#),
            ),
        )
        .await;
    }
    let (s, v) = call(a, "GET", "/outboard/v1/stats", String::new()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Mode"], "enforce");
    let rules = v["Rules"].as_array().cloned().unwrap_or_default();
    let hit = rules
        .iter()
        .find(|r| r["Name"] == "no-host-namespaces")
        .cloned()
        .unwrap_or_default();
    assert_eq!(hit["Hits"], 2, "{v}");
    assert_eq!(v["Decisions"]["deny"], 2);
}

#[test]
fn config_json_declares_every_setting() {
    let r =
        common::config::check_config_json::<Config>(include_str!("../../deploy/authz/config.json"));
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn config_json_defaults_match() {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/authz/config.json")).unwrap_or_default();
    let env = v["env"].as_array().cloned().unwrap_or_default();
    let value = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .and_then(|e| e["value"].as_str().map(String::from))
            .unwrap_or_default()
    };
    let d = Config::default();
    assert_eq!(value("POLICY"), d.policy);
    assert_eq!(value("MODE"), d.mode);
    assert_eq!(value("AUDIT_LOG"), d.audit_log);
    assert_eq!(value("SELF_NAME"), d.self_name);
    assert!(value("BODY_LIMIT").parse::<usize>().unwrap_or(0) >= 4 << 20);
}

#[test]
fn invalid_mode_is_refused() {
    let c = Config {
        mode: "yolo".into(),
        ..Config::default()
    };
    let e = Plugin::with_sys(&c, sys())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("MODE") && e.contains("yolo"), "{e}");
}

#[test]
fn check_command_reports_lines() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let good = dir.path().join("good.toml");
    let bad = dir.path().join("bad.toml");
    let _ = std::fs::write(
        &good,
        include_str!("../../deploy/authz/policy.example.toml"),
    );
    let _ = std::fs::write(
        &bad,
        "default = \"allow\"\n[[rule]]\nname = \"x\"\neffect = \"nope\"\n",
    );
    let run = |p: &std::path::Path| {
        <Plugin as common::Plugin>::command(&["check".into(), p.display().to_string()])
    };
    assert_eq!(run(&good), Some(ExitCode::SUCCESS));
    assert_eq!(run(&bad), Some(ExitCode::FAILURE));
    assert_eq!(<Plugin as common::Plugin>::command(&[]), None);
}
