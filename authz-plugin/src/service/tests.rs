use base64::Engine;

use super::*;
use crate::api::AuthZRequest;
use crate::sys::FakeSys;

/// The call as the HTTP edge makes it from dockerd's body.
fn call(r: AuthZRequest) -> ApiCall {
    ApiCall::from(&r)
}

const POLICY: &str = r#"
default = "allow"
[[rule]]
name = "no-privileged"
effect = "deny"
message = "privileged containers are not allowed"
privileged = true
"#;

fn service(sys: Arc<FakeSys>, mode: Mode, denials_only: bool) -> Service<FakeSys> {
    Service::new(
        Settings {
            policy_path: "/policy/policy.toml".into(),
            mode,
            audit: true,
            denials_only,
            builtins: Builtins {
                self_names: vec!["outboard-authz:latest".into()],
                self_id: None,
                self_protection: true,
                allow_unknown_routes: false,
            },
        },
        sys,
    )
}

fn create(privileged: bool) -> ApiCall {
    call(create_wire(privileged))
}

fn create_wire(privileged: bool) -> AuthZRequest {
    let body = format!(r#"{{"Image":"busybox","HostConfig":{{"Privileged":{privileged}}}}}"#);
    AuthZRequest {
        request_method: "POST".into(),
        request_uri: "/v1.41/containers/create".into(),
        request_body: Some(base64::engine::general_purpose::STANDARD.encode(body)),
        request_headers: [("Content-Type".to_string(), "application/json".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

#[test]
fn enforce_denies_with_message_and_audits() {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy(POLICY);
    let s = service(sys.clone(), Mode::Enforce, false);
    let r = s.authz_request(&create(true));
    assert!(!r.allow);
    assert!(
        r.msg.contains("privileged containers are not allowed"),
        "{}",
        r.msg
    );
    assert!(r.msg.contains("no-privileged"));
    assert!(s.authz_request(&create(false)).allow);
    let lines = sys.audit_lines();
    assert_eq!(lines.len(), 2);
    let l: serde_json::Value = serde_json::from_str(&lines[0]).unwrap_or_default();
    assert_eq!(l["decision"], "deny");
    assert_eq!(l["action"], "container.create");
    assert_eq!(l["rule"], "no-privileged");
    assert!(l["policy"].as_str().unwrap_or("").starts_with("sha256:"));
    let st = s.stats();
    assert_eq!(st.rules[0].hits, 1);
    assert_eq!(st.decisions["deny"], 1);
}

#[test]
fn audit_mode_allows_and_logs_would_deny() {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy(POLICY);
    let s = service(sys.clone(), Mode::Audit, true);
    assert!(s.authz_request(&create(true)).allow);
    assert!(s.authz_request(&create(false)).allow);
    let lines = sys.audit_lines();
    assert_eq!(lines.len(), 1, "denials only: {lines:?}");
    assert!(lines[0].contains("\"would-deny\""));
}

#[test]
fn reload_swaps_and_rejects_broken_policies() {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy(POLICY);
    let s = service(sys.clone(), Mode::Enforce, false);
    let first = s.policy().hash.clone();
    assert_eq!(s.reload(false), Reload::Unchanged);
    sys.set_policy("default = \"allow\"\n[[rule]]\nname = 1\n");
    assert!(matches!(s.reload(false), Reload::Rejected(e) if e.contains("line 3")));
    assert_eq!(s.policy().hash, first, "old policy stays");
    assert!(!s.authz_request(&create(true)).allow);
    assert!(!s.stats().last_error.is_empty());
    sys.set_policy("default = \"allow\"\n");
    assert!(matches!(s.reload(false), Reload::Loaded(_)));
    assert!(s.authz_request(&create(true)).allow);
    *sys.policy.lock().unwrap_or_else(|p| p.into_inner()) = None;
    assert!(matches!(s.reload(false), Reload::Rejected(_)));
    assert!(
        s.authz_request(&create(true)).allow,
        "missing file keeps the policy"
    );
}

#[test]
fn no_policy_denies_everything() {
    let sys = Arc::new(FakeSys::default());
    let s = service(sys.clone(), Mode::Enforce, false);
    let r = s.authz_request(&call(AuthZRequest {
        request_method: "HEAD".into(),
        request_uri: "/_ping".into(),
        ..Default::default()
    }));
    assert!(!r.allow);
    assert!(r.msg.contains("no valid authorization policy"), "{}", r.msg);
    sys.set_policy(POLICY);
    assert!(matches!(s.reload(false), Reload::Loaded(_)));
    assert!(s.authz_request(&create(false)).allow);
}

#[test]
fn audit_write_failure_does_not_change_the_decision() {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy(POLICY);
    sys.fail_audit.store(true, Ordering::Relaxed);
    let s = service(sys.clone(), Mode::Enforce, false);
    assert!(!s.authz_request(&create(true)).allow);
    assert!(s.authz_request(&create(false)).allow);
}

#[test]
fn a_policy_can_turn_auditing_off() {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy("default = \"allow\"\naudit = false\n");
    let s = service(sys.clone(), Mode::Enforce, false);
    assert!(s.authz_request(&create(true)).allow);
    assert!(sys.audit_lines().is_empty());
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn reply(method: &str, uri: &str, body: Option<&str>, status: i64, out: &str) -> ApiCall {
    call(AuthZRequest {
        request_method: method.into(),
        request_uri: uri.into(),
        request_body: body.map(b64),
        response_status_code: Some(status),
        response_body: Some(b64(out)),
        ..Default::default()
    })
}

#[test]
fn containers_are_learnt_from_replies_and_judged() {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy(include_str!("../../../deploy/authz/policy.example.toml"));
    let store = match common::Store::temporary() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let s = match service(sys.clone(), Mode::Enforce, false).with_store(&store) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let (web, adm) = ("a".repeat(64), "b".repeat(64));
    let share = |x: &str| {
        let body = format!(r#"{{"Image":"busybox","HostConfig":{{"PidMode":"container:{x}"}}}}"#);
        call(AuthZRequest {
            request_method: "POST".into(),
            request_uri: "/v1.41/containers/create".into(),
            request_body: Some(b64(&body)),
            request_headers: [("Content-Type".to_string(), "application/json".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        })
    };
    assert!(!s.authz_request(&share("web")).allow, "unseen");
    // A create dockerd answered 201: the ID from the reply, the facts from the request.
    let created = reply(
        "POST",
        "/v1.41/containers/create?name=web",
        Some(r#"{"Image":"busybox"}"#),
        201,
        &format!(r#"{{"Id":"{web}","Warnings":[]}}"#),
    );
    assert!(s.observe_response(&created));
    assert!(s.authz_request(&share("web")).allow);
    assert!(s.authz_request(&share(&web[..12])).allow, "ID prefix");
    // A refused create (409) teaches nothing.
    let mut refused = created.clone();
    refused.uri = "/v1.41/containers/create?name=other".into();
    refused.response_status = Some(409);
    assert!(!s.observe_response(&refused));
    // An inspect reply: what dockerd applied (a privileged container, a host bind).
    let inspect = format!(
        r#"{{"Id":"{adm}","Name":"/adm","HostConfig":{{"Privileged":true,"CgroupnsMode":"host"}},
        "Mounts":[{{"Type":"bind","Source":"/var/run/docker.sock","Destination":"/s"}}]}}"#
    );
    assert!(s.observe_response(&reply(
        "GET",
        "/v1.41/containers/adm/json",
        None,
        200,
        &inspect
    )));
    let r = s.container_risk("adm").unwrap_or_default();
    assert!(r.privileged);
    assert_eq!(r.host_paths, vec!["/var/run/docker.sock"]);
    assert!(
        r.host_namespaces.is_empty(),
        "the daemon's default cgroupns is no request"
    );
    assert!(
        !s.observe_response(&reply(
            "GET",
            "/v1.41/containers/adm/json",
            None,
            200,
            &inspect
        )),
        "unchanged"
    );
    let v = s.authz_request(&share("adm"));
    assert!(!v.allow && v.msg.contains("privileged"), "{}", v.msg);
    // Rename and remove follow the container.
    assert!(s.observe_response(&reply(
        "POST",
        "/v1.41/containers/web/rename?name=web2",
        None,
        204,
        ""
    )));
    assert!(!s.authz_request(&share("web")).allow);
    assert!(s.authz_request(&share("web2")).allow);
    assert!(s.observe_response(&reply("DELETE", "/v1.41/containers/web2", None, 204, "")));
    assert!(!s.authz_request(&share("web2")).allow);
    // The records are in the store: a new service on it knows adm.
    let sys2 = Arc::new(FakeSys::default());
    sys2.set_policy(include_str!("../../../deploy/authz/policy.example.toml"));
    let s2 = match service(sys2, Mode::Enforce, false).with_store(&store) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert!(s2.container_risk("adm").is_some_and(|r| r.privileged));
    assert!(s2.container_risk(&web).is_none());
    // A prune forgets what it deleted.
    assert!(s2.observe_response(&reply(
        "POST",
        "/v1.41/containers/prune",
        None,
        200,
        &format!(r#"{{"ContainersDeleted":["{adm}"],"SpaceReclaimed":0}}"#)
    )));
    assert!(s2.container_risk("adm").is_none());
}

#[test]
fn bad_base64_is_denied() {
    let sys = Arc::new(FakeSys::default());
    sys.set_policy(POLICY);
    let s = service(sys, Mode::Enforce, false);
    let mut r = create_wire(false);
    r.request_body = Some("!!!not base64".into());
    let out = s.authz_request(&call(r));
    assert!(!out.allow);
    assert!(out.msg.contains("base64"), "{}", out.msg);
}
