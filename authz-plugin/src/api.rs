//! Wire types of the `docker.authz/1.0` API (moby 20.10 `pkg/authorization/api.go`) and of the
//! plugin's own stats endpoint. Serde only; unknown fields from newer daemons are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Body of `AuthZPlugin.AuthZReq` and `AuthZPlugin.AuthZRes` (every field is `omitempty`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AuthZRequest {
    /// TLS client certificate subject CN; absent on the unix socket.
    #[serde(rename = "User", skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `TLS` when `User` is set.
    #[serde(rename = "UserAuthNMethod", skip_serializing_if = "Option::is_none")]
    pub user_authn_method: Option<String>,
    /// HTTP method of the API call.
    #[serde(rename = "RequestMethod")]
    pub request_method: String,
    /// Raw request URI with version prefix and query (note the spelling `Uri`).
    #[serde(rename = "RequestUri")]
    pub request_uri: String,
    /// Base64 of the raw body; only for JSON bodies under 1 MiB outside `/auth`.
    #[serde(rename = "RequestBody", skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Request headers, Go-canonical names, last value wins; auth headers removed.
    #[serde(rename = "RequestHeaders")]
    pub request_headers: BTreeMap<String, String>,
    /// Base64 PEM blocks of TLS client certificates.
    #[serde(
        rename = "RequestPeerCertificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_peer_certificates: Option<Vec<String>>,
    /// AuthZRes only: status the handler set (absent for pings, streams, archives).
    #[serde(rename = "ResponseStatusCode", skip_serializing_if = "Option::is_none")]
    pub response_status_code: Option<i64>,
    /// AuthZRes only: base64 of a JSON response body.
    #[serde(rename = "ResponseBody", skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// AuthZRes only: response headers set so far.
    #[serde(rename = "ResponseHeaders", skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<BTreeMap<String, String>>,
}

impl AuthZRequest {
    /// A header by name, compared case-insensitively (dockerd sends canonical names).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reply to both calls: a decision (a denial is an answer, not an error).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct AuthZResponse {
    /// Whether the call may proceed.
    #[serde(rename = "Allow")]
    pub allow: bool,
    /// Shown to the user after `authorization denied by plugin <name>: `.
    #[serde(rename = "Msg", skip_serializing_if = "String::is_empty", default)]
    pub msg: String,
}

/// One rule's counter in `GET /outboard/v1/stats`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct RuleStats {
    /// Rule name (or a built-in name such as `default`, `builtin:self-protection`).
    #[serde(rename = "Name")]
    pub name: String,
    /// `allow` or `deny`.
    #[serde(rename = "Effect")]
    pub effect: String,
    /// How many decisions it made since the policy was loaded.
    #[serde(rename = "Hits")]
    pub hits: u64,
}

/// Reply of `GET /outboard/v1/stats`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// `enforce` or `audit`.
    #[serde(rename = "Mode")]
    pub mode: String,
    /// Hash of the policy in force (`none` while no valid policy is loaded).
    #[serde(rename = "PolicyHash")]
    pub policy_hash: String,
    /// Policy file path inside the plugin.
    #[serde(rename = "PolicyPath")]
    pub policy_path: String,
    /// Successful loads since start.
    #[serde(rename = "Reloads")]
    pub reloads: u64,
    /// The last load error, if the newest file was rejected.
    #[serde(
        rename = "LastError",
        skip_serializing_if = "String::is_empty",
        default
    )]
    pub last_error: String,
    /// Decisions since start: allow, deny, would-deny.
    #[serde(rename = "Decisions")]
    pub decisions: BTreeMap<String, u64>,
    /// Per-rule counters, rules in file order then the built-ins.
    #[serde(rename = "Rules")]
    pub rules: Vec<RuleStats>,
}
