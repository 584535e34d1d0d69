//! Outboard authorization plugin (`authz`): a fail-closed policy on every Docker API call.
//!
//! dockerd calls `AuthZPlugin.AuthZReq` before and `AuthZPlugin.AuthZRes` after each API
//! request; [`service::Service`] answers from a TOML policy ([`policy`]) that is reloaded when
//! the file changes or on SIGHUP. Requests are normalised ([`route`]) and bodies read strictly
//! ([`body`]) so that no spelling of a request escapes its rule. `handlers` is the HTTP edge
//! (wire ↔ [`model`]); this module holds the settings, the error type, the plugin wiring and the
//! `check` sub-command.

pub mod api;
pub mod body;
pub mod containers;
mod handlers;
pub mod hostfs;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod profile;
pub mod route;
pub mod service;
pub mod sys;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::handlers::{parse, router};
use crate::policy::{Builtins, Policy};
use crate::service::{Mode, Service, Settings};
use crate::sys::{RealSys, Sys};

/// Settings of this plugin (env names are the upper-cased field names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `POLICY`: path of the policy file inside the plugin.
    pub policy: String,
    /// `MODE`: `enforce`, or `audit` (dry run: allow everything, log would-deny).
    pub mode: String,
    /// `AUDIT`: write audit lines at all (to `AUDIT_LOG` and the plugin log).
    pub audit: bool,
    /// `AUDIT_LOG`: file the audit lines are appended to (empty: plugin log only).
    pub audit_log: String,
    /// `AUDIT_PLUGIN_LOG`: also write the audit lines to the plugin log (dockerd's log).
    pub audit_plugin_log: bool,
    /// `AUDIT_MAX_BYTES`: rotate the audit file to `<file>.1` at this size (0: never; use
    /// logrotate, `create` or `copytruncate`, and/or SIGHUP to reopen).
    pub audit_max_bytes: u64,
    /// `AUDIT_DENIALS_ONLY`: log only denials and would-denials.
    pub audit_denials_only: bool,
    /// `SELF_PROTECTION`: deny disable/remove/set/upgrade of this plugin.
    pub self_protection: bool,
    /// `SELF_NAME`: comma-separated names this plugin is installed under.
    pub self_name: String,
    /// `ALLOW_UNKNOWN_ROUTES`: let routes the table does not know reach the rules.
    pub allow_unknown_routes: bool,
    /// `RELOAD_INTERVAL_MS`: how often the policy file is checked for changes (0: only SIGHUP).
    pub reload_interval_ms: u64,
    /// `HOST_ROOT`: where the host's `/` is mounted read-only inside the plugin, to resolve bind
    /// sources (links, `..`) as the kernel will (empty: judge them lexically).
    pub host_root: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy: "/policy/policy.toml".into(),
            mode: "enforce".into(),
            audit: true,
            audit_log: "/audit/audit.log".into(),
            audit_plugin_log: true,
            audit_max_bytes: 0,
            audit_denials_only: false,
            self_protection: true,
            self_name: "outboard-authz:latest".into(),
            allow_unknown_routes: false,
            reload_interval_ms: 1000,
            host_root: "/host".into(),
        }
    }
}

impl Config {
    fn settings(&self, self_id: Option<String>) -> Result<Settings, common::ConfigError> {
        let mode = match self.mode.trim() {
            "enforce" => Mode::Enforce,
            "audit" => Mode::Audit,
            other => {
                return Err(common::ConfigError::invalid(
                    "MODE",
                    other,
                    "enforce or audit",
                ))
            }
        };
        if self.policy.trim().is_empty() {
            return Err(common::ConfigError::invalid(
                "POLICY",
                &self.policy,
                "the path of the policy file",
            ));
        }
        let self_names: Vec<String> = self
            .self_name
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if self.self_protection && self_names.is_empty() {
            return Err(common::ConfigError::invalid(
                "SELF_NAME",
                &self.self_name,
                "at least one plugin name when SELF_PROTECTION is on",
            ));
        }
        Ok(Settings {
            policy_path: PathBuf::from(self.policy.trim()),
            mode,
            audit: self.audit,
            denials_only: self.audit_denials_only,
            builtins: Builtins {
                self_names,
                self_id,
                self_protection: self.self_protection,
                allow_unknown_routes: self.allow_unknown_routes,
            },
        })
    }
}

/// Errors of this crate, mapped to `{"Err"}` replies in one place (dockerd fails the API call
/// closed on any of them).
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The request from dockerd could not be decoded.
    #[error("malformed authorization request: {0}")]
    BadRequest(String),
}

impl From<AuthzError> for common::ApiError {
    fn from(e: AuthzError) -> Self {
        match e {
            AuthzError::BadRequest(_) => common::ApiError::bad_request(e.to_string()),
        }
    }
}

/// How often buffered audit lines are written to the plugin log. Batching them keeps dockerd,
/// which reads the plugin's output, from waking up once per decision.
const AUDIT_FLUSH: Duration = Duration::from_millis(200);

/// The plugin, over the real filesystem unless a test injects a fake [`Sys`].
pub struct Plugin<S: Sys = RealSys> {
    service: Arc<Service<S>>,
    reload_interval: Duration,
}

impl<S: Sys> Plugin<S> {
    /// Build from explicit parts (tests inject a fake [`Sys`]).
    pub fn with_sys(config: &Config, sys: Arc<S>) -> Result<Self, common::BoxError> {
        let settings = config.settings(sys.self_id())?;
        if let Some(id) = &settings.builtins.self_id {
            tracing::info!(id = %id, "self-protection also covers our plugin ID");
        }
        Ok(Self {
            service: Arc::new(Service::new(settings, sys)),
            reload_interval: Duration::from_millis(config.reload_interval_ms),
        })
    }

    /// The service (for tests and benchmarks).
    pub fn service(&self) -> &Arc<Service<S>> {
        &self.service
    }
}

impl common::Plugin for Plugin {
    const NAME: &'static str = "outboard-authz";
    const IMPLEMENTS: &'static [&'static str] = &["authz"];
    type Config = Config;

    fn new(ctx: common::Context<Config>) -> Result<Self, common::BoxError> {
        let audit = Some(ctx.config.audit_log.trim())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let mut sys = RealSys::new(audit, ctx.config.audit_plugin_log)
            .with_max_bytes(ctx.config.audit_max_bytes);
        let host_root = ctx.config.host_root.trim();
        if host_root.is_empty() {
            tracing::warn!(
                "HOST_ROOT is empty: bind sources are judged lexically (links not followed)"
            );
        } else {
            let root = PathBuf::from(host_root);
            // A root that is not there makes every bind source unresolvable: denied, not guessed.
            if !root.join("proc").is_dir() {
                tracing::error!(root = %root.display(), "HOST_ROOT does not show the host's filesystem: binds will be denied");
            }
            sys = sys.with_host_root(root);
        }
        let mut plugin = Self::with_sys(&ctx.config, Arc::new(sys))?;
        let service = Arc::try_unwrap(plugin.service)
            .map_err(|_| "the service is shared before start")?
            .with_store(&ctx.store)?;
        plugin.service = Arc::new(service);
        // The policy is compiled before the first request; `start` runs for the plugin's life.
        ctx.ready.mark_ready();
        Ok(plugin)
    }

    fn router(self: Arc<Self>) -> axum::Router {
        router(self.service.clone())
    }

    async fn metrics(&self, w: &mut common::metrics::MetricsText) {
        metrics::render(&self.service, w);
    }

    /// Watch the policy file (polling) and SIGHUP; both reload.
    async fn start(self: Arc<Self>) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot watch SIGHUP: {e}");
                None
            }
        };
        let period = if self.reload_interval.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            self.reload_interval
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(AUDIT_FLUSH);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = flush.tick() => {
                    self.service.flush_audit_log();
                    continue;
                }
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading the policy, reopening the audit file");
                    self.service.reopen_audit();
                    true
                }
            };
            let service = self.service.clone();
            // Reading and compiling a file is blocking work; keep it off the request workers.
            let _ = tokio::task::spawn_blocking(move || service.reload(forced)).await;
        }
    }

    async fn stop(self: Arc<Self>) {
        self.service.flush_audit_log();
    }

    fn command(args: &[String]) -> Option<ExitCode> {
        match args.first().map(String::as_str) {
            Some("check") => Some(check(&args[1..])),
            Some("-h" | "--help" | "help") => {
                println!("usage: outboard-authz            serve (settings from the environment)\n       outboard-authz check POLICY  validate a policy file");
                Some(ExitCode::SUCCESS)
            }
            _ => None,
        }
    }
}

/// `outboard-authz check POLICY`: print every error with its line, exit 1 if any.
fn check(args: &[String]) -> ExitCode {
    let [path] = args else {
        eprintln!("usage: outboard-authz check POLICY");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Policy::compile(&text) {
        Ok(p) => {
            println!(
                "{path}: ok, {} rules, default {:?}, {}",
                p.rules.len(),
                p.default,
                p.hash
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{path}:{e}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
