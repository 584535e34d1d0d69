//! The policy: its TOML form ([`PolicySpec`]), validation with line numbers, the compiled form
//! ([`Policy`], rules indexed by action so evaluation only looks at candidate rules), and
//! evaluation of one request into a [`Verdict`]. Pure: no files, no clock, no HTTP.
//!
//! ```toml
//! default = "allow"              # what happens when no rule matches (default: "deny")
//! allow_unknown_routes = false   # routes the table does not know are denied unless true
//! audit = true                   # false: no audit lines while this policy is in force
//!
//! [[rule]]
//! name = "no-privileged"
//! effect = "deny"                # "allow" | "deny"
//! message = "privileged containers are not allowed"
//! phase = "request"              # "request" (AuthZReq, default) | "response" (AuthZRes)
//! actions = ["container.create", "container.start", "container.exec"]
//! privileged = true
//! ```
//!
//! A rule matches when every condition it names holds (an omitted condition holds always):
//! `users`, `methods`, `actions` and `paths` (globs, `*` = anything) on the request, and body
//! predicates (see [`RuleSpec`]). A rule with a body predicate only applies to the actions that
//! carry that information. When a deny rule needs a body that is missing, empty or unreadable,
//! the request is denied (fail closed); an allow rule then simply does not match.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::body::{parse_strict, path_under, Facts};
use crate::containers::Containers;
use crate::hostfs::{self, HostFs};
use crate::profile::{Level, Profile};
use crate::route::{self, clean_path, Route};

mod compile;
mod eval;
mod pred;
mod spec;

use pred::{any_glob, Cand, Index, Pred};
pub use pred::{glob, Rule, TARGET_ACTIONS};
use spec::line_col;
pub use spec::{Effect, Phase, PolicyError, PolicySpec, RuleSpec};

/// The compiled policy. Counters live here, so a reload starts them at zero.
#[derive(Debug)]
pub struct Policy {
    /// `sha256:` + hex of the file's bytes (first 16 hex digits).
    pub hash: String,
    /// Default effect.
    pub default: Effect,
    default_message: String,
    /// Whether unknown routes reach the rules.
    pub allow_unknown_routes: bool,
    /// Whether decisions under this policy are audited.
    pub audit: bool,
    /// All rules in file order.
    pub rules: Vec<Rule>,
    /// Request-phase rules that can match each action.
    request_index: Index,
    /// Response-phase rules that can match each action.
    response_index: Index,
    /// Hits of the default and the built-in checks, by name.
    pub builtin_hits: HashMap<&'static str, AtomicU64>,
    /// Whether this is the deny-all stand-in used while no valid policy could be loaded.
    pub placeholder: Option<String>,
    /// The security profile every covered request must satisfy.
    pub profile: Profile,
}

/// Names of the built-in decisions (also the `rule` of their audit lines).
pub const BUILTINS: &[&str] = &[
    "default",
    "builtin:self-protection",
    "builtin:strict-body",
    "builtin:form-body",
    "builtin:unknown-route",
    "builtin:no-policy",
    "builtin:profile",
    "builtin:body-not-forwarded",
];

/// What the daemon sent, in the terms evaluation needs.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// TLS user, if any.
    pub user: Option<&'a str>,
    /// HTTP method.
    pub method: &'a str,
    /// Raw request URI.
    pub uri: &'a str,
    /// Decoded request body, if dockerd forwarded one; `Err` when it was not valid base64.
    pub body: Option<Result<&'a [u8], String>>,
    /// `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// `Content-Length` header, if any.
    pub content_length: Option<&'a str>,
    /// The containers the plugin has seen (`None`: none, every container is unseen).
    pub containers: Option<&'a dyn Containers>,
    /// The host's filesystem, to resolve bind sources (`None`: judged lexically).
    pub host: Option<&'a dyn HostFs>,
}

/// A request classified and its body decoded: the policy-independent half of a decision.
#[derive(Debug)]
pub struct Prepared<'a> {
    /// The request.
    pub req: &'a Request<'a>,
    /// Its route.
    pub route: Route,
    /// Its body: `Ok(None)` when absent or empty, `Err` when not strict JSON or not base64.
    pub body: Result<Option<Value>, String>,
}

impl<'a> Prepared<'a> {
    /// Classify and decode.
    pub fn new(req: &'a Request<'a>) -> Self {
        let body = match &req.body {
            None => Ok(None),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(b)) if b.trim_ascii().is_empty() => Ok(None),
            Some(Ok(b)) => parse_strict(b).map(Some).map_err(|e| e.to_string()),
        };
        Prepared {
            req,
            route: route::classify(req.method, req.uri),
            body,
        }
    }
}

/// Settings that shape the built-in checks.
#[derive(Debug, Clone, Default)]
pub struct Builtins {
    /// Deny plugin.disable/remove/set/upgrade of these names (normalised with [`plugin_ref`]).
    pub self_names: Vec<String>,
    /// Our plugin ID, when known (an ID prefix also names us).
    pub self_id: Option<String>,
    /// Whether self-protection is on.
    pub self_protection: bool,
    /// Let unknown routes reach the rules even if the policy does not say so.
    pub allow_unknown_routes: bool,
}

/// A decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or deny.
    pub effect: Effect,
    /// Rule name (or a built-in name).
    pub rule: String,
    /// Message for the user (empty on allow).
    pub message: String,
    /// The classified route.
    pub action: &'static str,
    /// Normalised path.
    pub path: String,
}

/// Normalise a plugin reference the way dockerd resolves plugin names: strip `docker.io/`,
/// `index.docker.io/` and `library/`, add `:latest` when no tag is given.
pub fn plugin_ref(name: &str) -> String {
    let mut n = name.trim().to_string();
    for pre in ["docker.io/", "index.docker.io/"] {
        if let Some(rest) = n.strip_prefix(pre) {
            n = rest.to_string();
        }
    }
    if let Some(rest) = n.strip_prefix("library/") {
        n = rest.to_string();
    }
    let last = n.rsplit('/').next().unwrap_or("");
    if !last.contains(':') && !n.contains('@') {
        n.push_str(":latest");
    }
    n
}

impl Builtins {
    fn names_self(&self, name: &str) -> bool {
        let r = plugin_ref(name);
        if self.self_names.iter().any(|s| plugin_ref(s) == r) {
            return true;
        }
        let n = name.trim();
        let is_hex = !n.is_empty() && n.bytes().all(|c| c.is_ascii_hexdigit());
        match &self.self_id {
            Some(id) => is_hex && id.starts_with(&n.to_ascii_lowercase()),
            // Without our ID any ID-looking name could be us: refuse (fail closed).
            None => is_hex,
        }
    }
}

#[cfg(test)]
mod tests;
