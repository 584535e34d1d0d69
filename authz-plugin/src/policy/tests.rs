//! Table tests: requests → decisions for every rule kind, the built-ins and fail-closed cases;
//! property test: no spelling of a denied request is allowed.

use super::*;
use proptest::prelude::*;

const POLICY: &str = r#"
default = "allow"

[[rule]]
name = "no-privileged"
effect = "deny"
message = "privileged is not allowed"
privileged = true

[[rule]]
name = "no-caps"
effect = "deny"
message = "dangerous capability"
cap_add = ["SYS_ADMIN", "NET_ADMIN"]

[[rule]]
name = "no-devices"
effect = "deny"
message = "no devices"
devices = true

[[rule]]
name = "no-host-ns"
effect = "deny"
message = "host namespaces are not allowed"
host_namespaces = ["*"]

[[rule]]
name = "no-unconfined"
effect = "deny"
message = "unconfined security options are not allowed"
security_opt = ["seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"]

[[rule]]
name = "binds-allowed"
effect = "deny"
message = "host path outside the allowed list"
host_path_outside = ["/srv/data", "/tmp"]

[[rule]]
name = "no-sysctl-kernel"
effect = "deny"
message = "kernel sysctls are not allowed"
sysctls = ["kernel.*"]

[[rule]]
name = "images"
effect = "deny"
message = "image not allowed"
image_not_in = ["local/*", "docker.io/library/*"]

[[rule]]
name = "no-root-exec"
effect = "deny"
message = "exec as root is not allowed"
exec_root = true

[[rule]]
name = "alice-no-delete"
effect = "deny"
message = "alice may not delete"
users = ["alice"]
methods = ["DELETE"]

[[rule]]
name = "no-secrets-path"
effect = "deny"
message = "no secrets"
paths = ["/secrets*"]

[[rule]]
name = "hide-info"
effect = "deny"
phase = "response"
message = "info is hidden"
actions = ["system.info"]
"#;

fn builtins() -> Builtins {
    Builtins {
        self_names: vec!["outboard-authz:latest".into()],
        self_id: Some("0123456789abcdef".repeat(4)),
        self_protection: true,
        allow_unknown_routes: false,
    }
}

fn req<'a>(method: &'a str, uri: &'a str, body: Option<&'a str>) -> Request<'a> {
    Request {
        user: None,
        method,
        uri,
        body: body.map(|b| Ok(b.as_bytes())),
        content_type: body.map(|_| "application/json"),
        content_length: None,
        containers: None,
        host: None,
    }
}

fn decide(p: &Policy, r: &Request<'_>) -> (Effect, String) {
    let v = p.evaluate_request(r, &builtins());
    (v.effect, v.rule)
}

fn policy() -> Policy {
    match Policy::compile(POLICY) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn table_of_decisions() {
    use Effect::{Allow, Deny};
    let p = policy();
    let create = "/v1.41/containers/create";
    let cases: &[(&str, &str, Option<&str>, Effect, &str)] = &[
        ("HEAD", "/_ping", None, Allow, "default"),
        ("GET", "/v1.41/containers/json", None, Allow, "default"),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox"}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"local/busybox","HostConfig":{"Privileged":true}}"#),
            Deny,
            "no-privileged",
        ),
        // the deprecated top-level host config dockerd still reads
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","Privileged":true}"#),
            Deny,
            "no-privileged",
        ),
        (
            "POST",
            create,
            Some(r#"{"image":"busybox","hostconfig":{"privileged":true}}"#),
            Deny,
            "no-privileged",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"CapAdd":["sys_admin"]}}"#),
            Deny,
            "no-caps",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"CapAdd":["ALL"]}}"#),
            Deny,
            "no-caps",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Capabilities":["CAP_NET_ADMIN"]}}"#),
            Deny,
            "no-caps",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"CapAdd":["CHOWN"]}}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Devices":[{"PathOnHost":"/dev/kmsg"}]}}"#),
            Deny,
            "no-devices",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"DeviceRequests":[{"Count":-1}]}}"#),
            Deny,
            "no-devices",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"PidMode":"host"}}"#),
            Deny,
            "no-host-ns",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"NetworkMode":"HOST"}}"#),
            Deny,
            "no-host-ns",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"UsernsMode":"host"}}"#),
            Deny,
            "no-host-ns",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"NetworkMode":"bridge"}}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}"#),
            Deny,
            "no-unconfined",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"SecurityOpt":["apparmor:unconfined"]}}"#),
            Deny,
            "no-unconfined",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"MaskedPaths":[]}}"#),
            Deny,
            "no-unconfined",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"SecurityOpt":["no-new-privileges"]}}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Binds":["/:/host"]}}"#),
            Deny,
            "binds-allowed",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Binds":["/srv/data/../../etc:/x"]}}"#),
            Deny,
            "binds-allowed",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Binds":["/srv/data/x:/x:ro","vol:/y"]}}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(
                r#"{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"bind","Source":"/","Target":"/h"}]}}"#,
            ),
            Deny,
            "binds-allowed",
        ),
        (
            "POST",
            create,
            Some(
                r#"{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"volume","Target":"/h","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/etc"}}}}]}}"#,
            ),
            Deny,
            "binds-allowed",
        ),
        (
            "POST",
            "/v1.41/volumes/create",
            Some(
                r#"{"Name":"v","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}"#,
            ),
            Deny,
            "binds-allowed",
        ),
        (
            "POST",
            "/v1.41/volumes/create",
            Some(
                r#"{"Name":"v","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/tmp/x"}}"#,
            ),
            Allow,
            "default",
        ),
        (
            "POST",
            "/v1.41/volumes/create",
            Some(r#"{"Name":"v"}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Sysctls":{"kernel.shm_rmid_forced":"1"}}}"#),
            Deny,
            "no-sysctl-kernel",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Sysctls":{"net.ipv4.ip_forward":"1"}}}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"evil/miner"}"#),
            Deny,
            "images",
        ),
        (
            "POST",
            "/v1.41/images/create?fromImage=evil%2Fminer&tag=latest",
            None,
            Deny,
            "images",
        ),
        (
            "POST",
            "/v1.41/images/create?fromImage=busybox&tag=1.36",
            None,
            Allow,
            "default",
        ),
        (
            "POST",
            "/v1.41/images/create?fromImage=busybox&fromImage=evil/x",
            None,
            Deny,
            "images",
        ),
        (
            "POST",
            "/v1.41/containers/c1/exec",
            Some(r#"{"Cmd":["sh"],"User":""}"#),
            Deny,
            "no-root-exec",
        ),
        (
            "POST",
            "/v1.41/containers/c1/exec",
            Some(r#"{"Cmd":["sh"],"User":"1000"}"#),
            Allow,
            "default",
        ),
        (
            "POST",
            "/v1.41/containers/c1/exec",
            Some(r#"{"Cmd":["sh"],"User":"1000","Privileged":true}"#),
            Deny,
            "no-privileged",
        ),
        ("DELETE", "/v1.41/containers/c1", None, Allow, "default"),
        ("GET", "/v1.41/secrets", None, Deny, "no-secrets-path"),
        // legacy start with a host config body
        (
            "POST",
            "/v1.23/containers/c1/start",
            Some(r#"{"Privileged":true}"#),
            Deny,
            "no-privileged",
        ),
        ("POST", "/v1.41/containers/c1/start", None, Allow, "default"),
        // built-ins
        (
            "POST",
            "/v1.41/plugins/outboard-authz:latest/disable",
            None,
            Deny,
            "builtin:self-protection",
        ),
        (
            "POST",
            "/v1.41/plugins/outboard-authz/disable",
            None,
            Deny,
            "builtin:self-protection",
        ),
        (
            "POST",
            "/v1.41/plugins/docker.io/library/outboard-authz:latest/set",
            Some(r#"["MODE=audit"]"#),
            Deny,
            "builtin:self-protection",
        ),
        (
            "DELETE",
            "/v1.41/plugins/outboard-authz:latest?force=1",
            None,
            Deny,
            "builtin:self-protection",
        ),
        (
            "POST",
            "/v1.41/plugins/0123456789ab/upgrade",
            None,
            Deny,
            "builtin:self-protection",
        ),
        (
            "POST",
            "/v1.41/plugins/outboard-volume:latest/disable",
            None,
            Allow,
            "default",
        ),
        (
            "POST",
            "/v1.41/plugins/fedcba987654/disable",
            None,
            Allow,
            "default",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","Image":"busybox"}"#),
            Deny,
            "builtin:strict-body",
        ),
        (
            "POST",
            create,
            Some(r#"{"Image":"busybox","HostConfig":{"Privileged":false,"PRIVILEGED":true}}"#),
            Deny,
            "builtin:strict-body",
        ),
        (
            "POST",
            create,
            Some("{not json"),
            Deny,
            "builtin:strict-body",
        ),
        (
            "GET",
            "/v1.41/whatever",
            None,
            Deny,
            "builtin:unknown-route",
        ),
        // fail closed: the body a deny rule needs is missing or empty
        ("POST", create, None, Deny, "no-privileged"),
        // sent (a content type, no length: chunked) but not forwarded
        ("POST", create, Some(""), Deny, "builtin:body-not-forwarded"),
        (
            "POST",
            "/v1.41/containers/c1/exec",
            None,
            Deny,
            "no-privileged",
        ),
    ];
    for (m, u, b, effect, rule) in cases {
        let got = decide(&p, &req(m, u, *b));
        assert_eq!(got, (*effect, rule.to_string()), "{m} {u} {b:?}");
    }
}

#[test]
fn users_are_matched() {
    let p = policy();
    let mut r = req("DELETE", "/v1.41/containers/c1", None);
    r.user = Some("alice");
    assert_eq!(decide(&p, &r), (Effect::Deny, "alice-no-delete".into()));
    r.user = Some("bob");
    assert_eq!(decide(&p, &r), (Effect::Allow, "default".into()));
}

#[test]
fn form_bodies_and_unforwarded_start_bodies_are_denied() {
    let p = policy();
    let mut r = req("POST", "/v1.41/images/create", None);
    r.content_type = Some("application/x-www-form-urlencoded");
    assert_eq!(decide(&p, &r).1, "builtin:form-body");
    let mut r = req("POST", "/v1.23/containers/c1/start", None);
    r.content_type = Some("application/json");
    r.content_length = Some("2000000");
    assert_eq!(
        decide(&p, &r),
        (Effect::Deny, "builtin:body-not-forwarded".into())
    );
    let v = p.evaluate_request(&r, &builtins());
    assert!(v.message.contains("not forwarded"), "{}", v.message);
}

#[test]
fn bad_base64_is_denied() {
    let p = policy();
    let mut r = req("POST", "/v1.41/containers/create", None);
    r.body = Some(Err("bad base64".into()));
    assert_eq!(decide(&p, &r), (Effect::Deny, "builtin:strict-body".into()));
}

#[test]
fn response_rules() {
    let p = policy();
    assert_eq!(
        p.evaluate_response(&req("GET", "/v1.41/info", None)).effect,
        Effect::Deny
    );
    assert_eq!(
        p.evaluate_response(&req("GET", "/v1.41/version", None))
            .effect,
        Effect::Allow
    );
    // response rules never decide requests
    assert_eq!(
        decide(&p, &req("GET", "/v1.41/info", None)).0,
        Effect::Allow
    );
}

#[test]
fn allow_rules_with_missing_bodies_do_not_match() {
    let p = match Policy::compile(
        "[[rule]]\nname = \"ok-images\"\neffect = \"allow\"\nimage_in = [\"local/*\"]\n[[rule]]\nname = \"ping\"\neffect = \"allow\"\nactions = [\"_ping\"]\n",
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    let b = builtins();
    let ok = p.evaluate_request(
        &req(
            "POST",
            "/containers/create",
            Some(r#"{"Image":"local/busybox"}"#),
        ),
        &b,
    );
    assert_eq!(ok.effect, Effect::Allow);
    let missing = p.evaluate_request(&req("POST", "/containers/create", None), &b);
    assert_eq!(
        (missing.effect, missing.rule.as_str()),
        (Effect::Deny, "default")
    );
    assert_eq!(
        p.evaluate_request(&req("HEAD", "/_ping", None), &b).effect,
        Effect::Allow
    );
}

#[test]
fn counters_count() {
    let p = policy();
    let b = builtins();
    for _ in 0..3 {
        p.evaluate_request(
            &req("POST", "/containers/create", Some(r#"{"Privileged":true}"#)),
            &b,
        );
    }
    assert_eq!(p.rules[0].hits.load(Ordering::Relaxed), 3);
    assert_eq!(p.builtin_hits["default"].load(Ordering::Relaxed), 0);
}

#[test]
fn errors_carry_line_numbers() {
    let e = Policy::compile("default = \"allow\"\n\n[[rule]]\nname = \"x\"\neffect = \"maybe\"\n")
        .err()
        .unwrap_or_default();
    assert_eq!(e[0].line, Some(5), "{e:?}");
    let e = Policy::compile("[[rule]]\nname = \"x\"\neffect = \"deny\"\nprivileged = true\n\n[[rule]]\nname = \"y\"\neffect = \"deny\"\nactions = [\"container.crate\"]\n")
        .err()
        .unwrap_or_default();
    assert_eq!(e[0].line, Some(6), "{e:?}");
    assert!(e[0].message.contains("container.crate"));
    let e = Policy::compile("[[rule]]\nname = \"x\"\neffect = \"deny\"\nprivilegd = true\n")
        .err()
        .unwrap_or_default();
    assert_eq!(e[0].line, Some(4), "{e:?}");
    let e = Policy::compile("[[rule]]\nname = \"x\"\neffect = \"deny\"\nhost_path_under = [\"etc\"]\n[[rule]]\nname = \"x\"\neffect = \"allow\"\n")
        .err()
        .unwrap_or_default();
    assert_eq!(e.len(), 2, "{e:?}");
    // Fuzz regression: a control character in a comment gave an error with an empty message.
    let e = Policy::compile("# policy\n# edit it on th\u{3}\0h\ndefault = \"allow\"\n")
        .err()
        .unwrap_or_default();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, Some(2), "{e:?}");
    assert!(!e[0].message.is_empty(), "{e:?}");
}

#[test]
fn shipped_example_policy_is_valid() {
    let text = include_str!("../../../deploy/authz/policy.example.toml");
    let p = match Policy::compile(text) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    let b = builtins();
    let deny = |u: &str, body: Option<&str>| {
        let v = p.evaluate_request(&req("POST", u, body), &b);
        assert_eq!(v.effect, Effect::Deny, "{u} {body:?} → {v:?}");
    };
    deny(
        "/v1.41/containers/create",
        Some(r#"{"Image":"x","HostConfig":{"Privileged":true}}"#),
    );
    deny(
        "/v1.41/containers/create",
        Some(r#"{"Image":"x","HostConfig":{"Binds":["/:/host"]}}"#),
    );
    deny(
        "/v1.41/containers/create",
        Some(r#"{"Image":"x","HostConfig":{"PidMode":"host"}}"#),
    );
    deny(
        "/v1.41/volumes/create",
        Some(r#"{"Driver":"local","DriverOpts":{"o":"bind","device":"/etc"}}"#),
    );
    let ok = p.evaluate_request(
        &req(
            "POST",
            "/v1.41/containers/create",
            Some(r#"{"Image":"local/busybox","HostConfig":{}}"#),
        ),
        &b,
    );
    assert_eq!(ok.effect, Effect::Allow, "{ok:?}");
}

/// Spellings of a privileged create that dockerd would route to `container.create`.
fn spelling() -> impl Strategy<Value = String> {
    let enc = |s: &'static str| {
        prop_oneof![
            Just(s.to_string()),
            (0..s.len()).prop_map(move |i| format!(
                "{}%{:02x}{}",
                &s[..i],
                s.as_bytes()[i],
                &s[i + 1..]
            )),
        ]
    };
    let sep = prop_oneof![
        Just("/"),
        Just("//"),
        Just("/./"),
        Just("/a/../"),
        Just("%2F"),
        Just("%2f")
    ];
    let version = prop_oneof![
        Just(""),
        Just("/v1.41"),
        Just("/v1.12"),
        Just("/v1"),
        Just("/v1.41/v1.40")
    ];
    let query = prop_oneof![
        Just(""),
        Just("?name=x"),
        Just("?"),
        Just("?x=/_ping"),
        Just("#frag")
    ];
    (
        version,
        sep.clone(),
        enc("containers"),
        sep,
        enc("create"),
        any::<bool>(),
        query,
    )
        .prop_map(|(v, s1, c, s2, cr, slash, q)| {
            format!("{v}{s1}{c}{s2}{cr}{}{q}", if slash { "/" } else { "" })
        })
}

/// Shapes of a privileged body that dockerd would decode as privileged.
fn privileged_body() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("Privileged"),
        Just("privileged"),
        Just("PRIVILEGED"),
        Just("pRiViLeGeD")
    ];
    let hc = prop_oneof![Just("HostConfig"), Just("hostconfig"), Just("HOSTCONFIG")];
    (key, hc, any::<bool>(), any::<bool>()).prop_map(|(k, h, nested, dup)| {
        let inner = if dup {
            format!(r#""{k}":true,"Privileged":false"#)
        } else {
            format!(r#""{k}":true"#)
        };
        if nested {
            format!(r#"{{"Image":"busybox","{h}":{{{inner}}}}}"#)
        } else {
            format!(r#"{{"Image":"busybox",{inner}}}"#)
        }
    })
}

proptest! {
    #[test]
    fn no_spelling_of_a_privileged_create_is_allowed(
        uri in spelling(),
        body in privileged_body(),
        ct in prop_oneof![Just("application/json"), Just("application/json; charset=utf-8"), Just("Application/JSON")],
    ) {
        let p = policy();
        let mut r = req("POST", &uri, Some(&body));
        r.content_type = Some(ct);
        let v = p.evaluate_request(&r, &builtins());
        prop_assert_eq!(v.effect, Effect::Deny, "{} {} → {:?}", uri, body, v);
    }

    #[test]
    fn no_spelling_of_self_disable_is_allowed(
        v in prop_oneof![Just(""), Just("/v1.41"), Just("//v1.24/")],
        name in prop_oneof![
            Just("outboard-authz:latest"), Just("outboard-authz"), Just("outboard-authz%3Alatest"),
            Just("library/outboard-authz"), Just("docker.io/library/outboard-authz:latest"),
            Just("index.docker.io/outboard-authz"), Just("0123456789abcdef"), Just("%6Futboard-authz")],
        action in prop_oneof![Just(("POST", "/disable")), Just(("POST", "/set")), Just(("POST", "/upgrade")), Just(("DELETE", ""))],
        q in prop_oneof![Just(""), Just("?force=1"), Just("?timeout=0")],
    ) {
        let p = policy();
        let uri = format!("{v}/plugins/{name}{}{q}", action.1);
        let r = req(action.0, &uri, None);
        let verdict = p.evaluate_request(&r, &builtins());
        prop_assert_eq!(verdict.effect, Effect::Deny, "{} {} → {:?}", action.0, uri, verdict);
    }
}
