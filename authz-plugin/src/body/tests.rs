use super::*;

#[test]
fn strict_json_refuses_duplicates_and_case_variants() {
    assert!(parse_strict(br#"{"a":1,"b":{"c":2}}"#).is_ok());
    assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
    assert!(parse_strict(br#"{"Privileged":false,"privileged":true}"#).is_err());
    assert!(parse_strict(br#"{"HostConfig":{"Binds":[],"Bind\u017F":["/:/h"]}}"#).is_err());
    assert!(parse_strict(b"{\"x\":[{\"k\":1,\"\xe2\x84\xaa\":2}]}").is_err());
    assert!(parse_strict(br#"{"a":1} {"a":2}"#).is_err());
    assert!(parse_strict(b"").is_err());
    assert!(parse_strict(b"{\"a\":1}\n").is_ok());
    // Go's leniency: lone surrogates and invalid UTF-8 in strings become U+FFFD.
    let v = parse_strict(br#"{"e":["\ud800x","\udc00","\ud83d\ude00"]}"#).unwrap_or_default();
    assert_eq!(v["e"][0], "\u{fffd}x");
    assert_eq!(v["e"][1], "\u{fffd}");
    assert_eq!(v["e"][2], "\u{1F600}");
    let v = parse_strict(b"{\"e\":\"a\xffb\"}").unwrap_or_default();
    assert_eq!(v["e"], "a\u{fffd}b");
    assert!(parse_strict(br#"{"k\\":"\\ud800"}"#).is_ok());
    // Map keys are data: case variants are distinct, struct fields are not.
    let v = parse_strict(br#"{"Labels":{"a":"1","A":"2"}}"#).unwrap_or_default();
    assert_eq!(v["labels"]["A"], "2");
    assert!(parse_strict(br#"{"Labels":{"a":"1","a":"2"}}"#).is_err());
    let v = parse_strict(br#"{"HostConfig":{"Privileged":true}}"#).unwrap_or_default();
    assert_eq!(v["hostconfig"]["privileged"], Value::Bool(true));
}

#[test]
fn facts_of_a_create() {
    let v = parse_strict(
        br#"{"Image":"busybox","Privileged":true,"HostConfig":{"CapAdd":["cap_sys_admin"],
        "Binds":["/etc/../:/host:ro","named:/x"],"Mounts":[{"Type":"bind","Source":"/var//run"},
        {"Type":"volume","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"device":"/srv","o":"bind"}}}}],
        "PidMode":"host","SecurityOpt":["seccomp:unconfined"],"Sysctls":{"net.ipv4.ip_forward":"1"},
        "Devices":[{"PathOnHost":"/dev/kmsg"}]}}"#,
    )
    .unwrap_or_default();
    let f = Facts::from_body("container.create", &v);
    assert!(f.privileged);
    assert_eq!(f.caps, vec!["SYS_ADMIN"]);
    assert_eq!(f.host_paths, vec!["/", "/var/run", "/srv"]);
    assert_eq!(f.host_namespaces, vec!["pid"]);
    assert_eq!(f.security_opts, vec!["seccomp=unconfined"]);
    assert_eq!(f.sysctls, vec!["net.ipv4.ip_forward"]);
    assert!(f.devices);
    assert_eq!(f.images, vec!["busybox"]);
}

#[test]
fn facts_of_exec_and_volume() {
    let v = parse_strict(br#"{"User":"","Cmd":["sh"]}"#).unwrap_or_default();
    assert!(Facts::from_body("container.exec", &v).exec_root);
    let v = parse_strict(br#"{"User":"1000:1000"}"#).unwrap_or_default();
    assert!(!Facts::from_body("container.exec", &v).exec_root);
    let v = parse_strict(
        br#"{"Name":"x","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}"#,
    )
    .unwrap_or_default();
    assert_eq!(
        Facts::from_body("volume.create", &v).host_paths,
        vec!["/etc"]
    );
    let v =
        parse_strict(br#"{"Driver":"local","DriverOpts":{"type":"nfs","device":"host:/export"}}"#)
            .unwrap_or_default();
    assert!(Facts::from_body("volume.create", &v).host_paths.is_empty());
    // Another driver's path-like option names a host path too (outboard-volume type=bind).
    let v =
        parse_strict(br#"{"Driver":"outboard-volume","DriverOpts":{"type":"bind","path":"/etc"}}"#)
            .unwrap_or_default();
    assert_eq!(
        Facts::from_body("volume.create", &v).host_paths,
        vec!["/etc"]
    );
    let v = parse_strict(br#"{"Driver":"other","DriverOpts":{"size":"10G"}}"#).unwrap_or_default();
    assert!(Facts::from_body("volume.create", &v).host_paths.is_empty());
}

#[test]
fn images_and_paths() {
    assert_eq!(
        image_names("busybox"),
        vec!["busybox", "docker.io/library/busybox:latest"]
    );
    assert_eq!(
        image_names("local/busybox:1"),
        vec!["local/busybox:1", "docker.io/local/busybox:1"]
    );
    assert_eq!(
        image_names("localhost:5000/x"),
        vec!["localhost:5000/x", "localhost:5000/x:latest"]
    );
    assert_eq!(
        image_names("sha256:0123456789ab"),
        vec!["sha256:0123456789ab"]
    );
    assert!(path_under("/etc/x", "/etc"));
    assert!(!path_under("/etcx", "/etc"));
    assert!(path_under("/anything", "/"));
}
