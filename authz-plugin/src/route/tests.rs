use super::*;
use proptest::prelude::*;

#[test]
fn absolute_form_routes_on_its_path() {
    for (uri, action) in [
        ("http://x/v1.41/containers/create", "container.create"),
        (
            "HTTP://docker/v1.45/containers/create?name=a",
            "container.create",
        ),
        ("http:/v1.41/containers/create", "container.create"),
        (
            "unix://%2Fvar%2Frun/v1.41/plugins/x/disable",
            "plugin.disable",
        ),
        (
            "h+t.p-1://a:b@host:99/containers/create",
            "container.create",
        ),
    ] {
        assert_eq!(classify("POST", uri).action, action, "{uri}");
    }
    assert_eq!(classify("POST", "http:containers/create").action, UNKNOWN);
    assert_eq!(classify("POST", "http://x").action, UNKNOWN);
    assert_eq!(
        classify("POST", "http://x/containers/create?name=a").query["name"],
        vec!["a".to_string()]
    );
}

#[test]
fn table() {
    let cases = [
        ("HEAD", "/_ping", "_ping"),
        ("GET", "/v1.41/containers/json?all=1", "container.list"),
        (
            "POST",
            "/v1.41/containers/create?name=x",
            "container.create",
        ),
        ("POST", "//containers/create", "container.create"),
        ("POST", "/v1.41/containers%2Fcreate", "container.create"),
        ("POST", "/v1.41/%63ontainers/create", "container.create"),
        ("POST", "/containers/create/", "container.create"),
        (
            "POST",
            "/v1.41/./containers/x/../create",
            "container.create",
        ),
        ("POST", "/v1.24/v1.41/containers/create", "container.create"),
        ("POST", "/v1.41/containers/abc/exec", "container.exec"),
        ("POST", "/v1.41/containers/a/b/start", "container.start"),
        ("POST", "/v1.41/exec/abc/start", "exec.start"),
        ("POST", "/v1.41/volumes/create", "volume.create"),
        (
            "POST",
            "/v1.41/plugins/outboard-authz:latest/disable",
            "plugin.disable",
        ),
        (
            "DELETE",
            "/v1.41/plugins/outboard-authz:latest?force=1",
            "plugin.remove",
        ),
        (
            "POST",
            "/v1.41/images/create?fromImage=busybox&tag=latest",
            "image.pull",
        ),
        ("POST", "/v1.41/images/create?fromSrc=-", "image.import"),
        ("GET", "/v1.41/containers//json", "container.list"),
        ("POST", "/v1.41/containers%252Fcreate", UNKNOWN),
        ("GET", "/nope", UNKNOWN),
        ("PATCH", "/containers/create", UNKNOWN),
        ("OPTIONS", "/anything", "options"),
    ];
    for (m, u, a) in cases {
        assert_eq!(classify(m, u).action, a, "{m} {u}");
    }
    assert_eq!(
        classify("POST", "/v1.41/plugins/docker.io/x/y:latest/set")
            .name
            .as_deref(),
        Some("docker.io/x/y:latest")
    );
}

#[test]
fn methods_and_static_paths() {
    assert_eq!(methods_of("container.create"), Some(vec!["POST"]));
    assert_eq!(methods_of("_ping"), Some(vec!["GET", "HEAD"]));
    assert_eq!(methods_of("image.pull"), Some(vec!["POST"]));
    assert_eq!(methods_of(UNKNOWN), None);
    assert_eq!(static_path("container.create"), Some("/containers/create"));
    assert_eq!(static_path("image.pull"), Some("/images/create"));
    assert_eq!(static_path("container.start"), None);
    assert_eq!(static_path("image.save"), None);
    // The fixed path of an action is classified as that action (pull needs its query).
    for a in all_actions() {
        if let (Some(p), Some(m)) = (static_path(a), methods_of(a)) {
            let uri = if a == "image.pull" {
                format!("{p}?fromImage=x")
            } else {
                p.to_string()
            };
            assert_eq!(classify(m[0], &uri).action, a);
        }
    }
}

#[test]
fn clean() {
    assert_eq!(clean_path("/a//b/./c/../d/"), "/a/b/d");
    assert_eq!(clean_path("/../../"), "/");
    assert_eq!(clean_path(""), "/");
    assert_eq!(strip_version("/v1.41"), "/");
    assert_eq!(strip_version("/version"), "/version");
    assert_eq!(strip_version("/v1.41/version"), "/version");
}

#[test]
fn query_decoding() {
    let (_, q) = normalize("/images/create?fromImage=a%2Fb&tag=1&tag=2&x");
    assert_eq!(q["fromImage"], vec!["a/b"]);
    assert_eq!(q["tag"], vec!["1", "2"]);
    assert_eq!(q["x"], vec![""]);
    let (_, q) = normalize("/images/create?a=1;fromImage=good&fromImage=evil");
    assert_eq!(q["fromImage"], vec!["evil"]);
}

/// Random spellings of `/containers/create` that dockerd (or a laxer router) would route.
fn spelling() -> impl Strategy<Value = String> {
    let seg = |s: &'static str| {
        prop_oneof![
            Just(s.to_string()),
            // percent-encode one character
            (0..s.len()).prop_map(move |i| {
                let b = s.as_bytes();
                format!("{}%{:02X}{}", &s[..i], b[i], &s[i + 1..])
            }),
        ]
    };
    let sep = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just("/./".to_string()),
        Just("/x/../".to_string()),
        Just("%2F".to_string()),
    ];
    let version = prop_oneof![
        Just(String::new()),
        Just("/v1.41".to_string()),
        Just("/v1.24".to_string()),
        Just("/v1".to_string()),
        Just("//v1.41/.".to_string()),
    ];
    let query = prop_oneof![
        Just(String::new()),
        Just("?name=x".to_string()),
        Just("?a=/containers/json".to_string()),
        Just("?".to_string()),
    ];
    (
        version,
        sep.clone(),
        seg("containers"),
        sep,
        seg("create"),
        any::<bool>(),
        query,
    )
        .prop_map(|(v, s1, c, s2, cr, slash, q)| {
            format!("{v}{s1}{c}{s2}{cr}{}{q}", if slash { "/" } else { "" })
        })
}

proptest! {
    #[test]
    fn canonical_path_is_idempotent(s in "[/a-z0-9.v%]{0,40}") {
        let once = canonical_path(&s);
        prop_assert_eq!(canonical_path(&once), once.clone());
        prop_assert!(once.starts_with('/'));
    }

    #[test]
    fn normalize_is_idempotent_without_escapes(s in "[/a-z0-9.v?=&]{0,40}") {
        let (p, _) = normalize(&s);
        let (p2, _) = normalize(&p);
        prop_assert_eq!(p2, p);
    }

    #[test]
    fn every_spelling_of_create_is_create(u in spelling()) {
        prop_assert_eq!(classify("POST", &u).action, "container.create", "{}", u);
    }
}

#[test]
fn queries_decode_as_go_parse_query() {
    // `;` drops its pair (Go 1.17+), `+` is a space, escapes decoded once, empty pairs skipped,
    // a key without `=` has an empty value, repeated keys keep every value in order.
    let (_, q) = normalize("/v1.41/build?a=1;b=2&c=%41+b&&d&c=%2B&e=%zz");
    assert_eq!(q.get("a"), None);
    assert_eq!(q.get("c"), Some(&vec!["A b".to_string(), "+".to_string()]));
    assert_eq!(q.get("d"), Some(&vec![String::new()]));
    assert_eq!(q.get("e"), Some(&vec!["%zz".to_string()]));
    assert_eq!(
        percent_decode("/v1.41/containers/%63reate%2"),
        "/v1.41/containers/create%2"
    );
}
