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

    /// Learn from a reply dockerd sent: a created container (its ID from the reply, its facts
    /// from the request dockerd accepted), an inspected one (the settings dockerd applied), a
    /// rename, a removal, a prune. Returns whether the records changed (the caller makes them
    /// durable before answering).
    pub fn observe_response(&self, req: &ApiCall) -> bool {
        let status = req.response_status.unwrap_or(0);
        if !(200..300).contains(&status) {
            return false;
        }
        let route = route::classify(&req.method, &req.uri);
        let json = |body: &Option<Result<Vec<u8>, String>>| -> Option<serde_json::Value> {
            match body.as_ref()? {
                Ok(bytes) if !bytes.trim_ascii().is_empty() => parse_strict(bytes).ok(),
                _ => None,
            }
        };
        let first = |k: &str| route.query.get(k).and_then(|v| v.first()).cloned();
        let mut reg = self.containers.write().unwrap_or_else(|p| p.into_inner());
        let mut put: Vec<Record> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        match route.action {
            "container.create" => {
                let Some(reply) = json(&req.response_body) else {
                    return false;
                };
                let Some(id) = reply.get("id").and_then(|v| v.as_str()) else {
                    return false;
                };
                let facts = match json(&req.body) {
                    Some(body) => Facts::from_body("container.create", &body),
                    // Created from a body the plugin never saw: all it knows is that it does not
                    // know (fail closed for anything sharing it).
                    None => Facts {
                        unseen: vec![id.to_string()],
                        ..Default::default()
                    },
                };
                let risk = Risk::of(&resolve_shares(facts, &reg, self.sys.host_fs()));
                let (rec, evicted) = reg.insert(id, &first("name").unwrap_or_default(), risk);
                put.push(rec);
                gone = evicted;
            }
            "container.inspect" => {
                let Some(reply) = json(&req.response_body) else {
                    return false;
                };
                let (Some(id), name) = (
                    reply.get("id").and_then(|v| v.as_str()).map(String::from),
                    reply
                        .get("name")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                ) else {
                    return false;
                };
                let (id, name) = (id.as_str(), name.as_str());
                // The reply's HostConfig is what dockerd applied; its Mounts are the real ones.
                // Its CgroupnsMode is the daemon's default filled in ("host" on cgroup v1 hosts),
                // not a request: an asked-for host cgroup namespace is in the create record.
                let mut reply = reply;
                if let Some(hc) = reply.get_mut("hostconfig").and_then(|h| h.as_object_mut()) {
                    hc.remove("cgroupnsmode");
                }
                let facts = Facts::from_body("container.create", &reply);
                let mut risk = Risk::of(&resolve_shares(facts, &reg, self.sys.host_fs()));
                // Facts never go away: keep what the create request asked for too.
                if let Some(old) = reg.resolve(id) {
                    risk = risk.union(&old.risk);
                    if old.risk == risk && old.name == crate::containers::bare_name(name) {
                        return false;
                    }
                }
                let (rec, evicted) = reg.insert(id, name, risk);
                put.push(rec);
                gone = evicted;
            }
            "container.rename" => {
                let (Some(x), Some(new)) = (route.name.as_deref(), first("name")) else {
                    return false;
                };
                match reg.rename(x, &new) {
                    Some(rec) => put.push(rec),
                    None => return false,
                }
            }
            "container.delete" => {
                let Some(id) = route.name.as_deref().and_then(|x| reg.remove(x)) else {
                    return false;
                };
                gone.push(id);
            }
            "container.prune" => {
                let Some(reply) = json(&req.response_body) else {
                    return false;
                };
                for id in crate::body::strings(reply.get("containersdeleted")) {
                    if let Some(id) = reg.remove(&id) {
                        gone.push(id);
                    }
                }
            }
            _ => return false,
        }
        drop(reg);
        if let Some((_, tree)) = &self.records {
            for rec in &put {
                if let Err(e) = tree.insert(&rec.id, rec) {
                    tracing::warn!("cannot store the record of container {}: {e}", rec.id);
                }
            }
            for id in &gone {
                if let Err(e) = tree.remove(id) {
                    tracing::warn!("cannot remove the record of container {id}: {e}");
                }
            }
        }
        !(put.is_empty() && gone.is_empty())
    }

    fn finish(
        &self,
        phase: &str,
        req: &ApiCall,
        policy: &Policy,
        v: &Verdict,
        log: bool,
    ) -> Decision {
        let (decision, reply) = match (v.effect, self.settings.mode) {
            (Effect::Allow, _) => {
                self.allowed.fetch_add(1, Ordering::Relaxed);
                (
                    "allow",
                    Decision {
                        allow: true,
                        msg: String::new(),
                    },
                )
            }
            (Effect::Deny, Mode::Enforce) => {
                self.denied.fetch_add(1, Ordering::Relaxed);
                let msg = format!("{} (rule {})", v.message, v.rule);
                ("deny", Decision { allow: false, msg })
            }
            (Effect::Deny, Mode::Audit) => {
                self.would_deny.fetch_add(1, Ordering::Relaxed);
                (
                    "would-deny",
                    Decision {
                        allow: true,
                        msg: String::new(),
                    },
                )
            }
        };
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
            mode: match self.settings.mode {
                Mode::Enforce => "enforce",
                Mode::Audit => "audit",
            },
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
            mode: match self.settings.mode {
                Mode::Enforce => "enforce",
                Mode::Audit => "audit",
            },
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

/// A container's facts with its host paths resolved and the containers it shares taken on
/// (transitively: their records already hold what they shared).
fn resolve_shares(mut f: Facts, reg: &Registry, host: Option<&dyn HostFs>) -> Facts {
    if let Some(h) = host {
        // Record the paths the kernel bound (as the request was judged), `/` if unresolvable.
        for p in &mut f.host_paths {
            *p = hostfs::resolve(h, p).unwrap_or_else(|_| "/".into());
        }
    }
    for x in f.shared_with.clone() {
        let risk = reg.lookup(&x);
        f.absorb(&x, risk.as_ref());
    }
    f
}

pub mod ops;

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::api::AuthZRequest;
    use crate::sys::FakeSys;

    /// The call as the HTTP edge makes it from dockerd's body.
    fn call(r: AuthZRequest) -> ApiCall {
        ApiCall::from(&r)
    }

    const POLICY: &str = r#"
default = "allow"
[[rule]]
name = "no-privileged"
effect = "deny"
message = "privileged containers are not allowed"
privileged = true
"#;

    fn service(sys: Arc<FakeSys>, mode: Mode, denials_only: bool) -> Service<FakeSys> {
        Service::new(
            Settings {
                policy_path: "/policy/policy.toml".into(),
                mode,
                audit: true,
                denials_only,
                builtins: Builtins {
                    self_names: vec!["outboard-authz:latest".into()],
                    self_id: None,
                    self_protection: true,
                    allow_unknown_routes: false,
                },
            },
            sys,
        )
    }

    fn create(privileged: bool) -> ApiCall {
        call(create_wire(privileged))
    }

    fn create_wire(privileged: bool) -> AuthZRequest {
        let body = format!(r#"{{"Image":"busybox","HostConfig":{{"Privileged":{privileged}}}}}"#);
        AuthZRequest {
            request_method: "POST".into(),
            request_uri: "/v1.41/containers/create".into(),
            request_body: Some(base64::engine::general_purpose::STANDARD.encode(body)),
            request_headers: [("Content-Type".to_string(), "application/json".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn enforce_denies_with_message_and_audits() {
        let sys = Arc::new(FakeSys::default());
        sys.set_policy(POLICY);
        let s = service(sys.clone(), Mode::Enforce, false);
        let r = s.authz_request(&create(true));
        assert!(!r.allow);
        assert!(
            r.msg.contains("privileged containers are not allowed"),
            "{}",
            r.msg
        );
        assert!(r.msg.contains("no-privileged"));
        assert!(s.authz_request(&create(false)).allow);
        let lines = sys.audit_lines();
        assert_eq!(lines.len(), 2);
        let l: serde_json::Value = serde_json::from_str(&lines[0]).unwrap_or_default();
        assert_eq!(l["decision"], "deny");
        assert_eq!(l["action"], "container.create");
        assert_eq!(l["rule"], "no-privileged");
        assert!(l["policy"].as_str().unwrap_or("").starts_with("sha256:"));
        let st = s.stats();
        assert_eq!(st.rules[0].hits, 1);
        assert_eq!(st.decisions["deny"], 1);
    }

    #[test]
    fn audit_mode_allows_and_logs_would_deny() {
        let sys = Arc::new(FakeSys::default());
        sys.set_policy(POLICY);
        let s = service(sys.clone(), Mode::Audit, true);
        assert!(s.authz_request(&create(true)).allow);
        assert!(s.authz_request(&create(false)).allow);
        let lines = sys.audit_lines();
        assert_eq!(lines.len(), 1, "denials only: {lines:?}");
        assert!(lines[0].contains("\"would-deny\""));
    }

    #[test]
    fn reload_swaps_and_rejects_broken_policies() {
        let sys = Arc::new(FakeSys::default());
        sys.set_policy(POLICY);
        let s = service(sys.clone(), Mode::Enforce, false);
        let first = s.policy().hash.clone();
        assert_eq!(s.reload(false), Reload::Unchanged);
        sys.set_policy("default = \"allow\"\n[[rule]]\nname = 1\n");
        assert!(matches!(s.reload(false), Reload::Rejected(e) if e.contains("line 3")));
        assert_eq!(s.policy().hash, first, "old policy stays");
        assert!(!s.authz_request(&create(true)).allow);
        assert!(!s.stats().last_error.is_empty());
        sys.set_policy("default = \"allow\"\n");
        assert!(matches!(s.reload(false), Reload::Loaded(_)));
        assert!(s.authz_request(&create(true)).allow);
        *sys.policy.lock().unwrap_or_else(|p| p.into_inner()) = None;
        assert!(matches!(s.reload(false), Reload::Rejected(_)));
        assert!(
            s.authz_request(&create(true)).allow,
            "missing file keeps the policy"
        );
    }

    #[test]
    fn no_policy_denies_everything() {
        let sys = Arc::new(FakeSys::default());
        let s = service(sys.clone(), Mode::Enforce, false);
        let r = s.authz_request(&call(AuthZRequest {
            request_method: "HEAD".into(),
            request_uri: "/_ping".into(),
            ..Default::default()
        }));
        assert!(!r.allow);
        assert!(r.msg.contains("no valid authorization policy"), "{}", r.msg);
        sys.set_policy(POLICY);
        assert!(matches!(s.reload(false), Reload::Loaded(_)));
        assert!(s.authz_request(&create(false)).allow);
    }

    #[test]
    fn audit_write_failure_does_not_change_the_decision() {
        let sys = Arc::new(FakeSys::default());
        sys.set_policy(POLICY);
        sys.fail_audit.store(true, Ordering::Relaxed);
        let s = service(sys.clone(), Mode::Enforce, false);
        assert!(!s.authz_request(&create(true)).allow);
        assert!(s.authz_request(&create(false)).allow);
    }

    #[test]
    fn a_policy_can_turn_auditing_off() {
        let sys = Arc::new(FakeSys::default());
        sys.set_policy("default = \"allow\"\naudit = false\n");
        let s = service(sys.clone(), Mode::Enforce, false);
        assert!(s.authz_request(&create(true)).allow);
        assert!(sys.audit_lines().is_empty());
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn reply(method: &str, uri: &str, body: Option<&str>, status: i64, out: &str) -> ApiCall {
        call(AuthZRequest {
            request_method: method.into(),
            request_uri: uri.into(),
            request_body: body.map(b64),
            response_status_code: Some(status),
            response_body: Some(b64(out)),
            ..Default::default()
        })
    }

    #[test]
    fn containers_are_learnt_from_replies_and_judged() {
        let sys = Arc::new(FakeSys::default());
        sys.set_policy(include_str!("../../deploy/authz/policy.example.toml"));
        let store = match common::Store::temporary() {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let s = match service(sys.clone(), Mode::Enforce, false).with_store(&store) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let (web, adm) = ("a".repeat(64), "b".repeat(64));
        let share = |x: &str| {
            let body =
                format!(r#"{{"Image":"busybox","HostConfig":{{"PidMode":"container:{x}"}}}}"#);
            call(AuthZRequest {
                request_method: "POST".into(),
                request_uri: "/v1.41/containers/create".into(),
                request_body: Some(b64(&body)),
                request_headers: [("Content-Type".to_string(), "application/json".to_string())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            })
        };
        assert!(!s.authz_request(&share("web")).allow, "unseen");
        // A create dockerd answered 201: the ID from the reply, the facts from the request.
        let created = reply(
            "POST",
            "/v1.41/containers/create?name=web",
            Some(r#"{"Image":"busybox"}"#),
            201,
            &format!(r#"{{"Id":"{web}","Warnings":[]}}"#),
        );
        assert!(s.observe_response(&created));
        assert!(s.authz_request(&share("web")).allow);
        assert!(s.authz_request(&share(&web[..12])).allow, "ID prefix");
        // A refused create (409) teaches nothing.
        let mut refused = created.clone();
        refused.uri = "/v1.41/containers/create?name=other".into();
        refused.response_status = Some(409);
        assert!(!s.observe_response(&refused));
        // An inspect reply: what dockerd applied (a privileged container, a host bind).
        let inspect = format!(
            r#"{{"Id":"{adm}","Name":"/adm","HostConfig":{{"Privileged":true,"CgroupnsMode":"host"}},
            "Mounts":[{{"Type":"bind","Source":"/var/run/docker.sock","Destination":"/s"}}]}}"#
        );
        assert!(s.observe_response(&reply(
            "GET",
            "/v1.41/containers/adm/json",
            None,
            200,
            &inspect
        )));
        let r = s.container_risk("adm").unwrap_or_default();
        assert!(r.privileged);
        assert_eq!(r.host_paths, vec!["/var/run/docker.sock"]);
        assert!(
            r.host_namespaces.is_empty(),
            "the daemon's default cgroupns is no request"
        );
        assert!(
            !s.observe_response(&reply(
                "GET",
                "/v1.41/containers/adm/json",
                None,
                200,
                &inspect
            )),
            "unchanged"
        );
        let v = s.authz_request(&share("adm"));
        assert!(!v.allow && v.msg.contains("privileged"), "{}", v.msg);
        // Rename and remove follow the container.
        assert!(s.observe_response(&reply(
            "POST",
            "/v1.41/containers/web/rename?name=web2",
            None,
            204,
            ""
        )));
        assert!(!s.authz_request(&share("web")).allow);
        assert!(s.authz_request(&share("web2")).allow);
        assert!(s.observe_response(&reply("DELETE", "/v1.41/containers/web2", None, 204, "")));
        assert!(!s.authz_request(&share("web2")).allow);
        // The records are in the store: a new service on it knows adm.
        let sys2 = Arc::new(FakeSys::default());
        sys2.set_policy(include_str!("../../deploy/authz/policy.example.toml"));
        let s2 = match service(sys2, Mode::Enforce, false).with_store(&store) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(s2.container_risk("adm").is_some_and(|r| r.privileged));
        assert!(s2.container_risk(&web).is_none());
        // A prune forgets what it deleted.
        assert!(s2.observe_response(&reply(
            "POST",
            "/v1.41/containers/prune",
            None,
            200,
            &format!(r#"{{"ContainersDeleted":["{adm}"],"SpaceReclaimed":0}}"#)
        )));
        assert!(s2.container_risk("adm").is_none());
    }

    #[test]
    fn bad_base64_is_denied() {
        let sys = Arc::new(FakeSys::default());
        sys.set_policy(POLICY);
        let s = service(sys, Mode::Enforce, false);
        let mut r = create_wire(false);
        r.request_body = Some("!!!not base64".into());
        let out = s.authz_request(&call(r));
        assert!(!out.allow);
        assert!(out.msg.contains("base64"), "{}", out.msg);
    }
}
