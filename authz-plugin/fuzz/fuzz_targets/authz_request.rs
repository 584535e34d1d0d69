//! The whole request decoder: the JSON of an `AuthZReq`/`AuthZRes` call as dockerd sends it
//! (base64 body, `RequestUri`, headers) through routing, strict body decoding, facts, profile and
//! rules. Never a panic; a denial always says why.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = authz_plugin::parse(data) else {
        return;
    };
    for s in common::services() {
        let r = s.authz_request(&req);
        assert!(r.allow || !r.msg.is_empty(), "a denial without a message");
        let _ = s.authz_response(&req);
    }
    // What a reply teaches about containers (create, inspect, rename, delete, prune), then a
    // decision against those records; a fresh service so that inputs stay independent.
    if req.response_status.is_some() {
        let s = common::service(common::EXAMPLE);
        s.observe_response(&req);
        let r = s.authz_request(&req);
        assert!(r.allow || !r.msg.is_empty(), "a denial without a message");
    }
});
