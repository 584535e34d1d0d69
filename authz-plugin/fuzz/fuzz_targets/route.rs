//! The URI router: `METHOD URI` (first line of the input; the method defaults to POST).
//! Never a panic; the normalised path is canonical (normalising it again changes nothing) and
//! the action is one the policy language knows. The input is also resolved as a host path
//! against a table of links (loops, `..`, `/proc`): a resolved path is absolute and clean.
#![no_main]

use authz_plugin::hostfs::{self, Entry, MapFs};
use authz_plugin::route;
use std::sync::OnceLock;

fn host() -> &'static MapFs {
    static H: OnceLock<MapFs> = OnceLock::new();
    H.get_or_init(|| {
        let link = |p: &str, t: &str| (p.to_string(), Entry::Link(t.to_string()));
        MapFs {
            entries: vec![
                ("/srv/containers/data".into(), Entry::Other),
                link("/srv/containers/etc", "/etc"),
                link("/srv/containers/up", "../.."),
                link("/srv/containers/loop", "loop"),
                link("/srv/containers/a", "b/../a"),
                link("/srv/containers/b", "/srv/containers/a"),
                link("/srv/containers/p", "/proc/self/root"),
                link("/proc/self", "1"),
                link("/x", "/srv/containers/up/srv/containers/etc/.."),
            ],
        }
    })
}
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
    if let Ok(r) = hostfs::resolve(host(), &uri) {
        assert!(r.starts_with('/'), "resolved {r:?} not absolute");
        assert_eq!(route::clean_path(&r), r, "resolved {r:?} not clean");
    }
});
