//! Request-URI normalisation and the route table: method + normalised path → an action name that
//! does not depend on the API version (`container.create`, `plugin.disable`, …; `unknown`
//! otherwise). This module only classifies; it never decides.
//!
//! Normalisation (what a policy sees, and why each step):
//! 1. split off the query at the first `?` (dockerd routes on the path alone);
//! 2. percent-decode once (Go decodes `URL.Path` once; gorilla/mux routes on the decoded path);
//! 3. collapse `//`, `/./`, `/../` and a trailing `/` (gorilla cleans the path the same way);
//! 4. strip every leading `/vX.Y` (dockerd strips one; stripping more only classifies paths
//!    dockerd would answer 404 anyway, so it can never let an action slip through unrecognised).
//!
//! Parameters in dockerd's routes are `{name:.*}` and may contain `/`, so a pattern's `*`
//! matches one or more whole segments.

use std::collections::BTreeMap;

/// The action of a route nobody listed.
pub const UNKNOWN: &str = "unknown";

/// One request, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Upper-case HTTP method.
    pub method: String,
    /// Normalised path without API version or query (e.g. `/containers/create`).
    pub path: String,
    /// Action name (e.g. `container.create`), [`UNKNOWN`] when no route matched.
    pub action: &'static str,
    /// The `{name}` parameter of the route, if it has one (e.g. the plugin or container name).
    pub name: Option<String>,
    /// Decoded query parameters; every value of a repeated key is kept.
    pub query: BTreeMap<String, Vec<String>>,
}

/// `(method, pattern, action)`; `*` in a pattern is one or more segments (dockerd's `{name:.*}`).
/// Order matters where two patterns can match the same path: the first wins, as in gorilla/mux.
pub const ROUTES: &[(&str, &str, &str)] = &[
    // system
    ("GET", "/_ping", "_ping"),
    ("HEAD", "/_ping", "_ping"),
    ("GET", "/info", "system.info"),
    ("GET", "/version", "system.version"),
    ("GET", "/events", "system.events"),
    ("GET", "/system/df", "system.df"),
    ("POST", "/auth", "system.auth"),
    // containers
    ("GET", "/containers/json", "container.list"),
    ("POST", "/containers/create", "container.create"),
    ("POST", "/containers/prune", "container.prune"),
    ("HEAD", "/containers/*/archive", "container.archive.head"),
    ("GET", "/containers/*/archive", "container.archive.get"),
    ("PUT", "/containers/*/archive", "container.archive.put"),
    ("GET", "/containers/*/export", "container.export"),
    ("GET", "/containers/*/changes", "container.changes"),
    ("GET", "/containers/*/json", "container.inspect"),
    ("GET", "/containers/*/top", "container.top"),
    ("GET", "/containers/*/logs", "container.logs"),
    ("GET", "/containers/*/stats", "container.stats"),
    ("GET", "/containers/*/attach/ws", "container.attach.ws"),
    ("GET", "/containers/*/checkpoints", "checkpoint.list"),
    ("POST", "/containers/*/checkpoints", "checkpoint.create"),
    ("DELETE", "/containers/*/checkpoints/*", "checkpoint.delete"),
    ("POST", "/containers/*/kill", "container.kill"),
    ("POST", "/containers/*/pause", "container.pause"),
    ("POST", "/containers/*/unpause", "container.unpause"),
    ("POST", "/containers/*/restart", "container.restart"),
    ("POST", "/containers/*/start", "container.start"),
    ("POST", "/containers/*/stop", "container.stop"),
    ("POST", "/containers/*/wait", "container.wait"),
    ("POST", "/containers/*/resize", "container.resize"),
    ("POST", "/containers/*/attach", "container.attach"),
    ("POST", "/containers/*/copy", "container.copy"),
    ("POST", "/containers/*/exec", "container.exec"),
    ("POST", "/containers/*/rename", "container.rename"),
    ("POST", "/containers/*/update", "container.update"),
    ("DELETE", "/containers/*", "container.delete"),
    ("POST", "/commit", "container.commit"),
    // exec
    ("GET", "/exec/*/json", "exec.inspect"),
    ("POST", "/exec/*/start", "exec.start"),
    ("POST", "/exec/*/resize", "exec.resize"),
    // images (`/images/create` is `image.pull` or `image.import`, decided by the query)
    ("GET", "/images/json", "image.list"),
    ("GET", "/images/search", "image.search"),
    ("GET", "/images/get", "image.save"),
    ("GET", "/images/*/get", "image.save"),
    ("GET", "/images/*/history", "image.history"),
    ("GET", "/images/*/json", "image.inspect"),
    ("POST", "/images/load", "image.load"),
    ("POST", "/images/create", "image.create"),
    ("POST", "/images/prune", "image.prune"),
    ("POST", "/images/*/push", "image.push"),
    ("POST", "/images/*/tag", "image.tag"),
    ("DELETE", "/images/*", "image.delete"),
    ("GET", "/distribution/*/json", "distribution.inspect"),
    // build
    ("POST", "/build", "image.build"),
    ("POST", "/build/prune", "build.prune"),
    ("POST", "/build/cancel", "build.cancel"),
    ("POST", "/session", "session"),
    ("POST", "/grpc", "grpc"),
    // volumes
    ("GET", "/volumes", "volume.list"),
    ("POST", "/volumes/create", "volume.create"),
    ("POST", "/volumes/prune", "volume.prune"),
    ("GET", "/volumes/*", "volume.inspect"),
    ("DELETE", "/volumes/*", "volume.remove"),
    // networks
    ("GET", "/networks", "network.list"),
    ("POST", "/networks/create", "network.create"),
    ("POST", "/networks/prune", "network.prune"),
    ("POST", "/networks/*/connect", "network.connect"),
    ("POST", "/networks/*/disconnect", "network.disconnect"),
    ("GET", "/networks/*", "network.inspect"),
    ("DELETE", "/networks/*", "network.remove"),
    // plugins
    ("GET", "/plugins", "plugin.list"),
    ("GET", "/plugins/privileges", "plugin.privileges"),
    ("POST", "/plugins/pull", "plugin.pull"),
    ("POST", "/plugins/create", "plugin.create"),
    ("GET", "/plugins/*/json", "plugin.inspect"),
    ("POST", "/plugins/*/enable", "plugin.enable"),
    ("POST", "/plugins/*/disable", "plugin.disable"),
    ("POST", "/plugins/*/push", "plugin.push"),
    ("POST", "/plugins/*/upgrade", "plugin.upgrade"),
    ("POST", "/plugins/*/set", "plugin.set"),
    ("DELETE", "/plugins/*", "plugin.remove"),
    // swarm
    ("GET", "/swarm", "swarm.inspect"),
    ("GET", "/swarm/unlockkey", "swarm.unlockkey"),
    ("POST", "/swarm/init", "swarm.init"),
    ("POST", "/swarm/join", "swarm.join"),
    ("POST", "/swarm/leave", "swarm.leave"),
    ("POST", "/swarm/update", "swarm.update"),
    ("POST", "/swarm/unlock", "swarm.unlock"),
    ("GET", "/services", "service.list"),
    ("POST", "/services/create", "service.create"),
    ("GET", "/services/*/logs", "service.logs"),
    ("POST", "/services/*/update", "service.update"),
    ("GET", "/services/*", "service.inspect"),
    ("DELETE", "/services/*", "service.remove"),
    ("GET", "/nodes", "node.list"),
    ("POST", "/nodes/*/update", "node.update"),
    ("GET", "/nodes/*", "node.inspect"),
    ("DELETE", "/nodes/*", "node.remove"),
    ("GET", "/tasks", "task.list"),
    ("GET", "/tasks/*/logs", "task.logs"),
    ("GET", "/tasks/*", "task.inspect"),
    ("GET", "/secrets", "secret.list"),
    ("POST", "/secrets/create", "secret.create"),
    ("POST", "/secrets/*/update", "secret.update"),
    ("GET", "/secrets/*", "secret.inspect"),
    ("DELETE", "/secrets/*", "secret.remove"),
    ("GET", "/configs", "config.list"),
    ("POST", "/configs/create", "config.create"),
    ("POST", "/configs/*/update", "config.update"),
    ("GET", "/configs/*", "config.inspect"),
    ("DELETE", "/configs/*", "config.remove"),
];

/// Actions produced by the query rather than the table.
const EXTRA_ACTIONS: &[&str] = &["image.pull", "image.import", "options", UNKNOWN];

/// Every action name a request can be classified as (for validating policies).
pub fn all_actions() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = ROUTES.iter().map(|r| r.2).collect();
    v.extend(EXTRA_ACTIONS);
    v.retain(|a| *a != "image.create");
    v.sort_unstable();
    v.dedup();
    v
}

/// The methods an action can be requested with (`None`: any, for `unknown` and `options`).
pub fn methods_of(action: &str) -> Option<Vec<&'static str>> {
    let table = match action {
        "image.pull" | "image.import" => "image.create",
        a => a,
    };
    let mut m: Vec<&'static str> = ROUTES
        .iter()
        .filter(|r| r.2 == table)
        .map(|r| r.0)
        .collect();
    m.dedup();
    (!m.is_empty()).then_some(m)
}

/// The one normalised path an action always has, when its routes have no parameter
/// (`container.create` → `/containers/create`).
pub fn static_path(action: &str) -> Option<&'static str> {
    let table = match action {
        "image.pull" | "image.import" => "image.create",
        a => a,
    };
    let mut paths = ROUTES.iter().filter(|r| r.2 == table).map(|r| r.1);
    let first = paths.next()?;
    (!first.contains('*') && paths.all(|p| p == first)).then_some(first)
}

/// Decode `%XX` escapes once. Invalid escapes stay as they are (Go rejects them with 400, so such
/// a request never reaches a handler); invalid UTF-8 is replaced, which only makes a path unknown.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Lexically clean an absolute path: collapse `//`, drop `.`, resolve `..` (never above `/`),
/// drop a trailing `/`. Also used for host paths in bind mounts.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for s in &parts {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Is `seg` an API version segment (`v` followed by one or more of `[0-9.]`, as dockerd's
/// `/v{version:[0-9.]+}`)?
fn is_version(seg: &str) -> bool {
    seg.len() > 1
        && seg.starts_with('v')
        && seg[1..].bytes().all(|c| c.is_ascii_digit() || c == b'.')
}

/// Strip all leading version segments from a cleaned path.
pub fn strip_version(clean: &str) -> String {
    let mut rest = clean;
    loop {
        let after = rest.strip_prefix('/').unwrap_or(rest);
        let (seg, tail) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        if is_version(seg) {
            rest = if tail.is_empty() { "/" } else { tail };
        } else {
            return rest.to_string();
        }
    }
}

/// The canonical path of an already-decoded path: cleaned, versions stripped. Idempotent.
pub fn canonical_path(decoded: &str) -> String {
    strip_version(&clean_path(decoded))
}

/// Split a request URI into its normalised path and decoded query.
pub fn normalize(uri: &str) -> (String, BTreeMap<String, Vec<String>>) {
    let uri = origin_form(uri);
    let uri = uri.as_str();
    let (raw_path, raw_query) = match uri.find('?') {
        Some(i) => (&uri[..i], &uri[i + 1..]),
        None => (uri, ""),
    };
    // Go drops a fragment from the request target; be as strict (a `#` never reaches a route).
    let raw_path = raw_path.split('#').next().unwrap_or(raw_path);
    let path = canonical_path(&percent_decode(raw_path));
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // As Go 1.17+ (dockerd 20.10 is built with 1.19): `&` separates, a pair containing `;` is
    // dropped.
    let kept = raw_query
        .split('&')
        .filter(|p| !p.contains(';'))
        .collect::<Vec<_>>()
        .join("&");
    // `+` is a space, then `%XX` escapes, empty pairs skipped: Go's `url.ParseQuery`.
    for (k, v) in form_urlencoded::parse(kept.as_bytes()) {
        query
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    (path, query)
}

/// The request target in origin form (`/path?query`), as Go's `url.ParseRequestURI` reads it
/// (net/url `parse` with `viaRequest`): an absolute-form target `scheme://authority/path?q`
/// routes on its path, `scheme:/path` too; a scheme with an opaque rest (`http:x`) has no path
/// (routes nowhere: returned as an empty path). Anything else is returned unchanged.
pub fn origin_form(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut scheme_end = None;
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i > 0 => {
                scheme_end = Some(i);
                break;
            }
            _ => break,
        }
    }
    let Some(end) = scheme_end else {
        return uri.to_string();
    };
    let rest = &uri[end + 1..];
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let path = if let Some(auth) = rest.strip_prefix("//") {
        match auth.find('/') {
            Some(i) => &auth[i..],
            None => "",
        }
    } else if rest.starts_with('/') {
        rest
    } else {
        ""
    };
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// Match `path` against a pattern; returns the `*` part (joined) when it matches.
fn match_pattern(pattern: &str, path: &str) -> Option<Option<String>> {
    match pattern.split_once('*') {
        None => (pattern == path).then_some(None),
        Some((pre, post)) => {
            let mid = path.strip_prefix(pre)?.strip_suffix(post)?;
            // `*` stands for one or more whole segments.
            if mid.is_empty() || mid.starts_with('/') || mid.ends_with('/') {
                return None;
            }
            Some(Some(mid.to_string()))
        }
    }
}

/// Classify a request.
pub fn classify(method: &str, uri: &str) -> Route {
    let method = method.to_ascii_uppercase();
    let (path, query) = normalize(uri);
    let mut action = UNKNOWN;
    let mut name = None;
    if method == "OPTIONS" {
        action = "options";
    } else {
        for (m, pattern, a) in ROUTES {
            if *m != method {
                continue;
            }
            if let Some(n) = match_pattern(pattern, &path) {
                action = a;
                name = n;
                break;
            }
        }
    }
    if action == "image.create" {
        // dockerd: a non-empty `fromImage` means pull, otherwise import (r.Form.Get = first value).
        let from_image = query
            .get("fromImage")
            .and_then(|v| v.first())
            .is_some_and(|v| !v.is_empty());
        action = if from_image {
            "image.pull"
        } else {
            "image.import"
        };
    }
    Route {
        method,
        path,
        action,
        name,
        query,
    }
}

#[cfg(test)]
mod tests;
