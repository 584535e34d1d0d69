//! The authorization service: holds the policy in force (swapped atomically on reload), turns
//! each daemon call into a decision, applies the mode (enforce / audit = dry run), writes the
//! audit trail and keeps counters. Knows nothing of HTTP or of the wire types: it takes an
//! [`ApiCall`] and answers a [`Decision`] (`handlers.rs` converts both).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::body::{parse_strict, Facts};
use crate::containers::{Containers, Record, Registry, Risk};
use crate::hostfs::{self, HostFs};
use crate::model::{ApiCall, Counters, Decision, RuleCount};
use crate::policy::{Builtins, Effect, Policy, Request, Verdict, BUILTINS};
use crate::route;
use crate::sys::{Stamp, Sys};

/// Enforce decisions, or only log them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Denials are answered as denials.
    Enforce,
    /// Dry run: everything is allowed; what would be denied is logged as `would-deny`.
    Audit,
}

impl Mode {
    /// The mode's name in audit lines and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }

    /// What `effect` amounts to in this mode: `allow`, `deny` or `would-deny`.
    pub fn decision(self, effect: Effect) -> &'static str {
        match (effect, self) {
            (Effect::Allow, _) => "allow",
            (Effect::Deny, Mode::Enforce) => "deny",
            (Effect::Deny, Mode::Audit) => "would-deny",
        }
    }
}

/// Settings of the service (from the plugin's config).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Policy file path.
    pub policy_path: PathBuf,
    /// Enforce or audit.
    pub mode: Mode,
    /// Write audit lines at all.
    pub audit: bool,
    /// Log only denials (and would-denials).
    pub denials_only: bool,
    /// Built-in checks.
    pub builtins: Builtins,
}

/// Result of a reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file did not change.
    Unchanged,
    /// A new policy is in force.
    Loaded(String),
    /// The file is invalid or unreadable; the previous policy stays.
    Rejected(String),
}

/// The service, over the real filesystem or a test's fake.
pub struct Service<S: Sys> {
    settings: Settings,
    sys: Arc<S>,
    policy: RwLock<Arc<Policy>>,
    seen: Mutex<Option<Stamp>>,
    reloads: AtomicU64,
    /// Rejected loads since start (for `GET /metrics`).
    reload_failures: AtomicU64,
    last_error: Mutex<String>,
    allowed: AtomicU64,
    denied: AtomicU64,
    would_deny: AtomicU64,
    /// Containers seen (see [`crate::containers`]).
    containers: RwLock<Registry>,
    /// Where the container records are kept across restarts (none in unit tests).
    records: Option<(common::Store, common::Tree<Record>)>,
}

/// Name of the store tree of container records (key: container ID).
pub const RECORDS_TREE: &str = "containers";

/// One audit line.
#[derive(serde::Serialize)]
struct AuditLine<'a> {
    time: String,
    phase: &'a str,
    user: &'a str,
    method: &'a str,
    action: &'a str,
    path: &'a str,
    uri: &'a str,
    decision: &'a str,
    rule: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    policy: &'a str,
    mode: &'a str,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl<S: Sys> Service<S> {
    /// Build the service and load the policy (a deny-all stand-in if it cannot be loaded).
    pub fn new(settings: Settings, sys: Arc<S>) -> Self {
        let s = Self {
            settings,
            sys,
            policy: RwLock::new(Arc::new(Policy::deny_all("not loaded yet"))),
            seen: Mutex::new(None),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            would_deny: AtomicU64::new(0),
            containers: RwLock::new(Registry::default()),
            records: None,
        };
        match s.reload(true) {
            Reload::Loaded(h) => tracing::info!(policy = %h, "policy loaded"),
            Reload::Rejected(e) => {
                tracing::error!("no valid policy, denying every request until one is: {e}");
                *s.policy.write().unwrap_or_else(|p| p.into_inner()) =
                    Arc::new(Policy::deny_all(&e));
            }
            Reload::Unchanged => {}
        }
        s
    }

    /// Keep container records in `store`, starting from what it holds (records of containers
    /// seen before a restart).
    pub fn with_store(mut self, store: &common::Store) -> Result<Self, common::StoreError> {
        let tree = store.tree::<Record>(RECORDS_TREE)?;
        let mut reg = Registry::default();
        let mut bad = 0;
        for entry in tree.iter() {
            match entry {
                Ok((_, rec)) => reg.restore(rec),
                // A record that no longer decodes is dropped: that container is unseen again.
                Err(_) => bad += 1,
            }
        }
        tracing::info!(
            containers = reg.len(),
            dropped = bad,
            "container records loaded"
        );
        self.containers = RwLock::new(reg);
        self.records = Some((store.clone(), tree));
        Ok(self)
    }

    /// Make the container records written so far durable (group commit with other callers).
    pub async fn sync_records(&self) {
        if let Some((store, _)) = &self.records {
            if let Err(e) = store.flush().await {
                tracing::warn!("cannot sync the container records: {e}");
            }
        }
    }

    /// The container records (for tests).
    pub fn container_risk(&self, reference: &str) -> Option<Risk> {
        self.containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .lookup(reference)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Re-read the policy if the file changed (or always, with `force`), validate it and swap
    /// it in atomically. An invalid or missing file keeps the policy in force.
    pub fn reload(&self, force: bool) -> Reload {
        let path = &self.settings.policy_path;
        let stamp = self.sys.policy_stamp(path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let current = stamp.as_ref().ok().cloned();
            if !force && *seen == current {
                return Reload::Unchanged;
            }
            // Remember what we looked at, valid or not: a broken file is reported once.
            *seen = current;
        }
        let text = match stamp.and_then(|_| self.sys.read_policy(path)) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => return self.reject(format!("{}: not UTF-8", path.display())),
            },
            Err(e) => return self.reject(format!("cannot read {}: {e}", path.display())),
        };
        match Policy::compile(&text) {
            Ok(p) => {
                let hash = p.hash.clone();
                let rules = p.rules.len();
                *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(p);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                self.last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                tracing::info!(policy = %hash, rules, path = %path.display(), "policy in force");
                Reload::Loaded(hash)
            }
            Err(errors) => {
                let msg = errors
                    .iter()
                    .map(|e| format!("{}:{e}", path.display()))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.reject(msg)
            }
        }
    }

    fn reject(&self, msg: String) -> Reload {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
        let keeping = self.policy().hash.clone();
        tracing::error!(keeping = %keeping, "policy rejected, the previous one stays in force: {msg}");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = msg.clone();
        Reload::Rejected(msg)
    }

    /// Decide an `AuthZReq`.
    pub fn authz_request(&self, req: &ApiCall) -> Decision {
        let policy = self.policy();
        let reg = self.containers.read().unwrap_or_else(|p| p.into_inner());
        let mut input = input(req);
        input.containers = Some(&*reg);
        input.host = self.sys.host_fs();
        let v = policy.evaluate_request(&input, &self.settings.builtins);
        drop(reg);
        self.finish("request", req, &policy, &v, true)
    }

    /// Decide an `AuthZRes`.
    pub fn authz_response(&self, req: &ApiCall) -> Decision {
        let policy = self.policy();
        let reg = self.containers.read().unwrap_or_else(|p| p.into_inner());
        let mut input = input(req);
        input.containers = Some(&*reg);
        let v = policy.evaluate_response(&input);
        drop(reg);
        // Only decisions a rule made are audited here: the default allow of every response
        // would double the trail without saying anything.
        let log = v.rule != "default";
        self.finish("response", req, &policy, &v, log)
    }

    fn finish(
        &self,
        phase: &str,
        req: &ApiCall,
        policy: &Policy,
        v: &Verdict,
        log: bool,
    ) -> Decision {
        let decision = self.settings.mode.decision(v.effect);
        let (counter, reply) = match (v.effect, self.settings.mode) {
            (Effect::Deny, Mode::Enforce) => {
                let msg = format!("{} (rule {})", v.message, v.rule);
                (&self.denied, Decision { allow: false, msg })
            }
            (effect, _) => {
                let counter = if effect == Effect::Allow {
                    &self.allowed
                } else {
                    &self.would_deny
                };
                (
                    counter,
                    Decision {
                        allow: true,
                        msg: String::new(),
                    },
                )
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if log
            && self.settings.audit
            && policy.audit
            && !(self.settings.denials_only && decision == "allow")
        {
            self.audit(phase, req, policy, v, decision);
        }
        reply
    }

    fn audit(&self, phase: &str, req: &ApiCall, policy: &Policy, v: &Verdict, decision: &str) {
        let line = AuditLine {
            time: now(),
            phase,
            user: req.user.as_deref().unwrap_or(""),
            method: &req.method,
            action: v.action,
            path: &v.path,
            uri: &req.uri,
            decision,
            rule: &v.rule,
            message: &v.message,
            policy: &policy.hash,
            mode: self.settings.mode.as_str(),
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        // Denials reach the file at once; allows are written in batches (at most 200 ms later).
        if let Err(e) = self.sys.append_audit(&text, decision != "allow") {
            tracing::warn!("cannot write the audit file: {e}");
        }
    }

    /// Write the audit lines buffered for the plugin log.
    pub fn flush_audit_log(&self) {
        self.sys.flush_log();
    }

    /// Rejected policy loads since start.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// Counters for `GET /outboard/v1/stats` and `/metrics`.
    pub fn stats(&self) -> Counters {
        let p = self.policy();
        let mut rules: Vec<RuleCount> = p
            .rules
            .iter()
            .map(|r| RuleCount {
                name: r.name.clone(),
                effect: effect_name(r.effect),
                hits: r.hits.load(Ordering::Relaxed),
            })
            .collect();
        for b in BUILTINS {
            let effect = if *b == "default" {
                p.default
            } else {
                Effect::Deny
            };
            rules.push(RuleCount {
                name: (*b).into(),
                effect: effect_name(effect),
                hits: p
                    .builtin_hits
                    .get(b)
                    .map_or(0, |c| c.load(Ordering::Relaxed)),
            });
        }
        let mut decisions = BTreeMap::new();
        decisions.insert("allow", self.allowed.load(Ordering::Relaxed));
        decisions.insert("deny", self.denied.load(Ordering::Relaxed));
        decisions.insert("would-deny", self.would_deny.load(Ordering::Relaxed));
        Counters {
            mode: self.settings.mode.as_str(),
            policy_hash: p.hash.clone(),
            policy_path: self.settings.policy_path.display().to_string(),
            reloads: self.reloads.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            decisions,
            rules,
        }
    }
}

fn effect_name(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

fn input(req: &ApiCall) -> Request<'_> {
    Request {
        user: req.user.as_deref().filter(|u| !u.is_empty()),
        method: &req.method,
        uri: &req.uri,
        body: req
            .body
            .as_ref()
            .map(|b| b.as_ref().map(|v| v.as_slice()).map_err(|e| e.clone())),
        content_type: req.content_type.as_deref(),
        content_length: req.content_length.as_deref(),
        containers: None,
        host: None,
    }
}

pub mod ops;
mod records;

#[cfg(test)]
mod tests;
