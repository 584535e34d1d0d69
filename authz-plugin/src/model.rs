//! Domain types of the authorization service: one Docker API call as the plugin judges it
//! (decoded at the HTTP edge from dockerd's `AuthZReq`/`AuthZRes` body), the decision, and the
//! counters. No serde: `handlers.rs` maps them to and from the wire (`api.rs`).

use std::collections::BTreeMap;

/// One API call dockerd asks about, with its base64 bodies already decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiCall {
    /// TLS client certificate subject CN (`None` on the unix socket).
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
    /// `AuthZRes` only: the response body as dockerd sent it (base64). Most responses are
    /// never read, so it is decoded on demand ([`ApiCall::response_bytes`]), not at the edge.
    pub response_body_b64: Option<String>,
}

impl ApiCall {
    /// The response body, decoded: `None` when absent, `Err` when not valid base64.
    pub fn response_bytes(&self) -> Option<Result<Vec<u8>, String>> {
        self.response_body_b64
            .as_deref()
            .map(|b64| decode_base64("ResponseBody", b64))
    }
}

/// Decode one of dockerd's base64 fields (`field` names it in the error).
pub fn decode_base64(field: &str, b64: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("{field} is not valid base64: {e}"))
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
