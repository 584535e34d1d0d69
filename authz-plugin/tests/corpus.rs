//! The attack corpus: every row of `tests/corpus.jsonl` (a crafted `AuthZReq` with the decision
//! the shipped example policy must reach, and why) is decided by the policy that
//! `make plugin-install` installs. All mismatches are reported at once.

use authz_plugin::containers::{Registry, Risk};
use authz_plugin::hostfs::{Entry, MapFs};
use authz_plugin::policy::{Builtins, Effect, Policy, Request};
use base64::Engine;
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    name: String,
    method: String,
    uri: String,
    body: Option<String>,
    body_b64: Option<String>,
    content_type: Option<String>,
    content_length: Option<String>,
    user: Option<String>,
    expect: String,
    why: String,
}

fn example_policy() -> Policy {
    let text = include_str!("../../deploy/authz/policy.example.toml");
    match Policy::compile(text) {
        Ok(p) => p,
        Err(e) => panic!("example policy does not compile: {e:?}"),
    }
}

/// The containers the plugin has seen when the corpus runs (rows that share or act on other
/// names find them unseen).
fn seen() -> Registry {
    let mut r = Registry::default();
    let id = |c: &str| format!("{c}{}", "0".repeat(64 - c.len()));
    let risk = |f: &dyn Fn(&mut Risk)| {
        let mut x = Risk::default();
        f(&mut x);
        x
    };
    r.insert(&id("abc"), "abc", Risk::default());
    r.insert(&"b".repeat(64), "web", Risk::default());
    r.insert(&"c".repeat(64), "privbox", risk(&|x| x.privileged = true));
    r.insert(
        &"d".repeat(64),
        "hostnet",
        risk(&|x| x.host_namespaces = vec!["network".into()]),
    );
    r.insert(
        &"e".repeat(64),
        "sockbox",
        risk(&|x| x.host_paths = vec!["/var/run/docker.sock".into()]),
    );
    r.insert(
        &"f".repeat(64),
        "dataro",
        risk(&|x| x.host_paths = vec!["/srv/containers/data".into()]),
    );
    r.insert(&id("1"), "sharer", risk(&|x| x.unseen = vec!["zzz".into()]));
    r.insert(
        &id("2"),
        "capbox",
        risk(&|x| x.caps = vec!["SYS_ADMIN".into()]),
    );
    r.insert(
        &id("3"),
        "unconf",
        risk(&|x| x.security_opts = vec!["seccomp=unconfined".into()]),
    );
    r.insert(
        &id("4"),
        "admin-box",
        risk(&|x| x.host_paths = vec!["/".into()]),
    );
    r.insert(&id("aa1"), "amb1", Risk::default());
    r.insert(&id("aa2"), "amb2", Risk::default());
    r
}

/// The host's filesystem the corpus runs against: links planted under the allowed root
/// (`hostfs.json`: path, kind, link target; the oracle e2e test plants the same links on the
/// real host).
fn host() -> MapFs {
    let table: Vec<(String, String, Option<String>)> =
        match serde_json::from_str(include_str!("hostfs.json")) {
            Ok(t) => t,
            Err(e) => panic!("hostfs.json: {e}"),
        };
    MapFs {
        entries: table
            .into_iter()
            .map(|(path, kind, target)| match (kind.as_str(), target) {
                ("link", Some(t)) => (path, Entry::Link(t)),
                _ => (path, Entry::Other),
            })
            .collect(),
    }
}

#[test]
fn corpus_decisions_match() {
    let seen = seen();
    let host = host();
    let policy = example_policy();
    let builtins = Builtins {
        self_names: vec!["outboard-authz:latest".into(), "outboard-authz".into()],
        self_id: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()),
        self_protection: true,
        allow_unknown_routes: false,
    };
    let text = include_str!("corpus.jsonl");
    let mut failures = Vec::new();
    let (mut attacks, mut benign) = (0, 0);
    for (i, line) in text.lines().enumerate() {
        let row: Row = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => panic!("corpus line {}: {e}", i + 1),
        };
        let raw: Option<Vec<u8>> = match (&row.body, &row.body_b64) {
            (_, Some(b)) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default(),
            ),
            (Some(b), None) => Some(b.clone().into_bytes()),
            (None, None) => None,
        };
        let req = Request {
            user: row.user.as_deref(),
            method: &row.method,
            uri: &row.uri,
            body: raw.as_deref().map(Ok),
            content_type: row.content_type.as_deref(),
            content_length: row.content_length.as_deref(),
            containers: Some(&seen),
            host: Some(&host),
        };
        let v = policy.evaluate_request(&req, &builtins);
        let want = match row.expect.as_str() {
            "allow" => Effect::Allow,
            _ => Effect::Deny,
        };
        if want == Effect::Deny {
            attacks += 1;
        } else {
            benign += 1;
        }
        if v.effect != want {
            failures.push(format!(
                "line {}: {} — expected {} ({}), got {:?} by {} ({})",
                i + 1,
                row.name,
                row.expect,
                row.why,
                v.effect,
                v.rule,
                v.message
            ));
        }
    }
    assert!(attacks >= 200, "only {attacks} attack rows");
    assert!(benign >= 40, "only {benign} benign rows");
    assert!(
        failures.is_empty(),
        "{} of {} rows wrong:\n{}",
        failures.len(),
        attacks + benign,
        failures.join("\n")
    );
}
