//! Domain types of the authorization service: one Docker API call as the plugin judges it
//! (decoded at the HTTP edge from dockerd's `AuthZReq`/`AuthZRes` body), the decision, and the
//! counters. No serde: `handlers.rs` maps them to and from the wire (`api.rs`).

use std::collections::BTreeMap;

/// One API call dockerd asks about, with its base64 bodies already decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiCall {
    /// TLS client certificate subject CN (`None` on the unix socket or when empty).
    pub user: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Raw request target, version prefix and query included.
    pub uri: String,
    /// The request body: `None` when dockerd forwarded none, `Err` when it was not base64.
    pub body: Option<Result<Vec<u8>, String>>,
    /// The client's `Content-Type` header.
    pub content_type: Option<String>,
    /// The client's `Content-Length` header.
    pub content_length: Option<String>,
    /// `AuthZRes` only: the status the handler set.
    pub response_status: Option<i64>,
    /// `AuthZRes` only: the response body (as `body`).
    pub response_body: Option<Result<Vec<u8>, String>>,
}

/// The answer to one call (a denial is an answer, not an error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may proceed.
    pub allow: bool,
    /// Why not (empty when allowed).
    pub msg: String,
}

/// One rule's counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCount {
    /// Rule name, or a built-in name such as `default`, `builtin:self-protection`.
    pub name: String,
    /// `allow` or `deny`.
    pub effect: &'static str,
    /// Decisions it made since the policy was loaded.
    pub hits: u64,
}

/// The service's counters and the policy in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// `enforce` or `audit`.
    pub mode: &'static str,
    /// Hash of the policy in force (`none` while no valid policy is loaded).
    pub policy_hash: String,
    /// Policy file path inside the plugin.
    pub policy_path: String,
    /// Successful loads since start.
    pub reloads: u64,
    /// The last load error, if the newest file was rejected.
    pub last_error: String,
    /// Decisions since start: allow, deny, would-deny.
    pub decisions: BTreeMap<&'static str, u64>,
    /// Per-rule counters, rules in file order then the built-ins.
    pub rules: Vec<RuleCount>,
}
