//! What an operator asks the authz plugin (`outboard authz check|explain`): compile a policy
//! text with this very binary's compiler, and say which rule would decide a request and why.
//! Served on the plugin socket under `/outboard/v1/`; dockerd only ever calls
//! `/AuthZPlugin.*`, and neither route changes anything.

use serde::{Deserialize, Serialize};

use super::{input, Service};
use crate::model::ApiCall;
use crate::policy::Policy;
use crate::sys::Sys;

/// Body of `POST /outboard/v1/policy/check`.
#[derive(Debug, Default, Deserialize)]
pub struct CheckRequest {
    /// The policy file's text.
    #[serde(rename = "Policy", default)]
    pub policy: String,
}

/// Reply of `POST /outboard/v1/policy/check`.
#[derive(Debug, Serialize)]
pub struct CheckReply {
    /// Errors as `line:column: message` (empty when valid).
    #[serde(rename = "Errors")]
    pub errors: Vec<String>,
    /// Number of rules (when valid).
    #[serde(rename = "Rules")]
    pub rules: usize,
    /// The hash the policy would carry (when valid).
    #[serde(rename = "Hash")]
    pub hash: String,
}

/// Reply of `POST /outboard/v1/explain`.
#[derive(Debug, Serialize)]
pub struct Explain {
    /// `allow`, `deny`, or `would-deny` (audit mode).
    #[serde(rename = "Decision")]
    pub decision: String,
    /// The rule (or built-in) that decided.
    #[serde(rename = "Rule")]
    pub rule: String,
    /// The message a denied user would see.
    #[serde(rename = "Msg")]
    pub msg: String,
    /// The route class of the request.
    #[serde(rename = "Action")]
    pub action: String,
    /// Normalised API path.
    #[serde(rename = "Path")]
    pub path: String,
    /// Hash of the policy that was asked.
    #[serde(rename = "Policy")]
    pub policy: String,
}

/// Compile `text` as a policy file.
pub fn check_policy(text: &str) -> CheckReply {
    match Policy::compile(text) {
        Ok(p) => CheckReply {
            errors: Vec::new(),
            rules: p.rules.len(),
            hash: p.hash.clone(),
        },
        Err(errors) => CheckReply {
            errors: errors.iter().map(|e| e.to_string()).collect(),
            rules: 0,
            hash: String::new(),
        },
    }
}

impl<S: Sys> Service<S> {
    /// Close the audit file so the next line opens its path again (SIGHUP after rotation).
    pub fn reopen_audit(&self) {
        self.sys.reopen_audit();
    }

    /// How the policy in force decides `req` as an `AuthZReq`, without counting the decision
    /// or writing an audit line: evaluated on a fresh compile of the same file (so rule hit
    /// counters stay untouched) when its hash matches the policy in force.
    pub fn explain(&self, req: &ApiCall) -> Explain {
        let in_force = self.policy();
        let fresh = self
            .sys
            .read_policy(&self.settings.policy_path)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| Policy::compile(&t).ok())
            .filter(|p| p.hash == in_force.hash);
        let policy = fresh.as_ref().unwrap_or(&in_force);
        let v = policy.evaluate_request(&input(req), &self.settings.builtins);
        Explain {
            decision: self.settings.mode.decision(v.effect).into(),
            rule: v.rule.clone(),
            msg: v.message.clone(),
            action: v.action.into(),
            path: v.path.clone(),
            policy: policy.hash.clone(),
        }
    }
}
