//! Request bodies: the strict decoder (Go's key folding, duplicates, lone surrogates), the facts
//! of every body-carrying action, the profile at both levels, and a full decision of the body
//! sent to each body-carrying route.
#![no_main]

use authz_plugin::api::AuthZRequest;
use authz_plugin::model::ApiCall;
use authz_plugin::body::{parse_strict, Facts};
use base64::Engine;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const ROUTES: &[(&str, &str, &str)] = &[
    ("container.create", "POST", "/v1.41/containers/create"),
    ("container.start", "POST", "/v1.41/containers/x/start"),
    ("container.update", "POST", "/v1.41/containers/x/update"),
    ("container.exec", "POST", "/v1.41/containers/x/exec"),
    ("volume.create", "POST", "/v1.41/volumes/create"),
    ("service.create", "POST", "/v1.41/services/create"),
    ("service.update", "POST", "/v1.41/services/x/update"),
];

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = parse_strict(data) {
        // Decoding is a function of the bytes.
        assert_eq!(parse_strict(data).ok().as_ref(), Some(&v));
        for (action, _, _) in ROUTES {
            let _ = Facts::from_body(action, &v);
            for s in common::services() {
                let _ = s
                    .policy()
                    .profile
                    .judge(action, Some(&v), &Default::default());
            }
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    for (_, method, uri) in ROUTES {
        let req = AuthZRequest {
            request_method: (*method).into(),
            request_uri: (*uri).into(),
            request_body: Some(b64.clone()),
            request_headers: [("Content-Type".to_string(), "application/json".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        for s in common::services() {
            let r = s.authz_request(&ApiCall::from(&req));
            assert!(r.allow || !r.msg.is_empty(), "a denial without a message");
        }
    }
});
