//! The default-deny security profile: every security-relevant field of a container create,
//! update, exec, legacy start and service spec must hold a value the profile allows, and a field
//! this plugin does not know that holds a non-zero value is refused (future API fields fail
//! closed). Modelled on the Kubernetes Pod Security Standards: `baseline` refuses the known
//! privilege escalations, `restricted` also refuses added capabilities other than
//! `NET_BIND_SERVICE`. Under both, host binds (resolved on the host, [`crate::hostfs`]) must lie
//! under an allowed root and be read-only unless their root is marked writable.
//!
//! Input is the body as [`crate::body::parse_strict`] decodes it: struct field names folded the
//! way Go's `encoding/json` matches them, map keys as sent. Pure: no files, no state.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::body::{self, path_under};
use crate::containers::{Containers, Risk};
use crate::hostfs::{self, HostFs};

/// What the profile may consult besides the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    /// The containers the plugin has seen.
    pub containers: Option<&'a dyn Containers>,
    /// The host's filesystem, to resolve bind sources (`None`: judged lexically).
    pub host: Option<&'a dyn HostFs>,
}

/// Which profile a policy enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No profile: only the rules decide.
    #[default]
    None,
    /// Known privilege escalations refused, unknown fields refused.
    Baseline,
    /// Baseline, plus only `NET_BIND_SERVICE` may be added.
    Restricted,
}

/// The profile and its settings, as compiled from the policy.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// The level.
    pub level: Level,
    /// Host path roots that binds may name (cleaned); empty: no host binds at all.
    pub bind_roots: Vec<String>,
    /// Of those, the roots that may be bound writable.
    pub writable_roots: Vec<String>,
}

mod fields;
mod judge;

use fields::*;
use judge::*;

/// Does a JSON value hold Go's zero value (absent, null, false, 0, "", [], {})?
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

type Verdict = Result<(), String>;

impl Profile {
    /// Whether a profile is in force.
    pub fn active(&self) -> bool {
        self.level != Level::None
    }

    /// Judge the body of `action`; `Err` names the first field the profile refuses. Actions the
    /// profile does not cover pass. A covered action without a body passes only when the body
    /// could not carry anything (the caller denies bodies that were sent but not forwarded).
    pub fn judge(&self, action: &str, body: Option<&Value>, seen: &Seen<'_>) -> Verdict {
        Judge {
            p: self,
            containers: seen.containers,
            host: seen.host,
        }
        .judge(action, body)
    }

    /// Judge the container an exec, attach or archive request acts on: its recorded facts must
    /// satisfy the profile, and an unseen container fails closed.
    pub fn judge_target(&self, reference: &str, seen: &Seen<'_>) -> Verdict {
        if !self.active() {
            return Ok(());
        }
        Judge {
            p: self,
            containers: seen.containers,
            host: seen.host,
        }
        .shared("the container acted on", reference)
    }

    /// Whether a container with these facts may be shared or acted on under the profile.
    fn risk_ok(&self, r: &Risk) -> Result<(), String> {
        if r.privileged {
            return Err("it is privileged".into());
        }
        if r.devices {
            return Err("it has host devices".into());
        }
        if let Some(ns) = r.host_namespaces.first() {
            return Err(format!("it uses the host {ns} namespace"));
        }
        if let Some(c) = r.caps.iter().find(|c| !self.cap_ok(c)) {
            return Err(format!("it has capability CAP_{c}"));
        }
        if let Some(o) = r
            .security_opts
            .iter()
            .find(|o| !o.starts_with("label=level:"))
        {
            return Err(format!("it runs with {o}"));
        }
        if let Some(p) = r
            .host_paths
            .iter()
            .find(|p| !self.bind_roots.iter().any(|root| path_under(p, root)))
        {
            return Err(format!("it binds host path {p:?}"));
        }
        if let Some(s) = r
            .sysctls
            .iter()
            .find(|s| !SAFE_SYSCTLS.contains(&s.as_str()))
        {
            return Err(format!("it sets sysctl {s}"));
        }
        if let Some(v) = r.unsafe_volumes.first() {
            return Err(format!("it has an unsafe volume ({v})"));
        }
        if let Some(u) = r.unseen.first() {
            return Err(format!(
                "it shares container {u:?}, of which the plugin has no record"
            ));
        }
        Ok(())
    }

    fn cap_ok(&self, c: &str) -> bool {
        match self.level {
            Level::Restricted => c == "NET_BIND_SERVICE",
            _ => DEFAULT_CAPS.contains(&c),
        }
    }
}
