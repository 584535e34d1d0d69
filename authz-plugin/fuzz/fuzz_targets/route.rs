//! The URI router: `METHOD URI` (first line of the input; the method defaults to POST).
//! Never a panic; the normalised path is canonical (normalising it again changes nothing) and
//! the action is one the policy language knows.
#![no_main]

use authz_plugin::route;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (method, uri) = match text.split_once(' ') {
        Some((m, u)) if m.len() <= 8 => (m.to_string(), u.to_string()),
        _ => ("POST".to_string(), text.to_string()),
    };
    let actions = route::all_actions();
    for m in [method.as_str(), "GET", "POST", "DELETE", "PUT", "HEAD"] {
        let r = route::classify(m, &uri);
        assert!(actions.contains(&r.action), "action {:?} unknown", r.action);
        assert_eq!(route::canonical_path(&r.path), r.path, "path not canonical");
        assert!(r.path.starts_with('/'), "path {:?} not absolute", r.path);
    }
    let _ = route::origin_form(&uri);
    let p = route::canonical_path(&uri);
    assert_eq!(route::canonical_path(&p), p);
});
