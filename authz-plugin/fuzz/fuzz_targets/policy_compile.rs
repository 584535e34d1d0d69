//! Policy compilation: any text is either a policy or a list of errors that say where and
//! what; a compiled policy decides a handful of fixed requests without panicking.
#![no_main]

use authz_plugin::policy::{Builtins, Policy, Request};
use libfuzzer_sys::fuzz_target;

const REQUESTS: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/v1.41/containers/create",
        r#"{"Image":"busybox","HostConfig":{"Privileged":true,"Binds":["/:/h"],"CapAdd":["SYS_ADMIN"]}}"#,
    ),
    (
        "POST",
        "/v1.41/containers/x/exec",
        r#"{"User":"","Cmd":["sh"]}"#,
    ),
    (
        "POST",
        "/v1.41/volumes/create",
        r#"{"Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}"#,
    ),
    (
        "POST",
        "/v1.41/images/create?fromImage=busybox&tag=latest",
        "",
    ),
    ("POST", "/v1.41/plugins/outboard-authz/disable", ""),
    ("POST", "/v1.41/build?networkmode=host", ""),
    ("GET", "/v1.41/containers/json", ""),
    ("HEAD", "/_ping", ""),
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::compile(text) {
        Ok(p) => {
            for user in [None, Some("admin")] {
                for (method, uri, body) in REQUESTS {
                    let req = Request {
                        user,
                        method,
                        uri,
                        body: (!body.is_empty()).then_some(Ok(body.as_bytes())),
                        content_type: (!body.is_empty()).then_some("application/json"),
                        content_length: None,
                        containers: None,
                        host: None,
                    };
                    let _ = p.evaluate_request(&req, &Builtins::default());
                    let _ = p.evaluate_response(&req);
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected without an error");
            assert!(
                errors.iter().all(|e| !e.message.is_empty()),
                "an empty error"
            );
        }
    }
});
