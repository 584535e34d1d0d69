//! Outboard volume plugin (`VolumeDriver`, `docker.volumedriver/1.0`): named volumes with owner
//! and mode, `dir` / `tmpfs` / `bind` backends, mount accounting by caller ID, durable state and
//! start-up reconciliation.
//!
//! Layout: [`api`] wire types, [`options`] input validation, [`service`] the logic, [`state`] the
//! stored records, [`sys`] the OS trait with its real side (`sys::real`, also `linux`) and its
//! test fake, [`error`] the one error enum. This module holds the settings, the plugin wiring and the HTTP handlers, which
//! only translate between the wire and the service.

pub mod api;
pub mod error;
mod handlers;
pub use handlers::router;
pub use sys::real as linux;
pub mod options;
pub mod service;
pub mod state;
pub mod sys;

use std::sync::Arc;

use common::ConfigError;
use serde::{Deserialize, Serialize};

use crate::service::{Paths, Service};

/// Settings of this plugin (env names are the upper-cased field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `DATA_DIR`: where `dir` volumes keep their data (the plugin's `data` mount).
    pub data_dir: String,
    /// `MOUNT_ROOT`: where volumes are mounted for dockerd; must be the `propagatedMount`.
    pub mount_root: String,
    /// `HOST_ROOT`: where the host's `/` is visible inside the plugin (the `host` mount).
    pub host_root: String,
    /// `BIND_ALLOWED`: comma-separated host directories under which `bind` volumes may point;
    /// empty allows none.
    pub bind_allowed: String,
    /// `MAX_TMPFS_SIZE`: largest `size` of a tmpfs volume, and the size of one created without
    /// `size` (a tmpfs without a cap may take half the host's memory).
    pub max_tmpfs_size: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: "/data".into(),
            mount_root: "/mnt/volumes".into(),
            host_root: "/host".into(),
            bind_allowed: String::new(),
            max_tmpfs_size: "1g".into(),
        }
    }
}

impl Config {
    /// `MAX_TMPFS_SIZE` in bytes.
    pub fn max_tmpfs_bytes(&self) -> Result<u64, ConfigError> {
        options::parse_size(&self.max_tmpfs_size).ok_or_else(|| {
            ConfigError::invalid(
                "MAX_TMPFS_SIZE",
                &self.max_tmpfs_size,
                "a positive byte count with an optional suffix k, m, g, t (e.g. 1g)",
            )
        })
    }

    /// Check the paths and parse `BIND_ALLOWED` into normalized prefixes.
    pub fn validate(&self) -> Result<Vec<String>, ConfigError> {
        for (key, value) in [
            ("DATA_DIR", &self.data_dir),
            ("MOUNT_ROOT", &self.mount_root),
            ("HOST_ROOT", &self.host_root),
        ] {
            if !value.starts_with('/') || value.split('/').any(|c| c == "..") {
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "an absolute path without '..'",
                ));
            }
        }
        let mut prefixes = Vec::new();
        for p in self
            .bind_allowed
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if !p.starts_with('/') || p.split('/').any(|c| c == ".." || c == ".") {
                return Err(ConfigError::invalid(
                    "BIND_ALLOWED",
                    &self.bind_allowed,
                    "comma-separated absolute host paths without '.' or '..' components, or empty",
                ));
            }
            let trimmed = p.trim_end_matches('/');
            prefixes.push(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.to_string()
            });
        }
        Ok(prefixes)
    }
}

/// Refuse a `BIND_ALLOWED` that reaches the plugin's own roots (or lies inside them): a bind
/// volume there would let one volume's user redirect or read another volume's data.
fn check_own_roots(
    sys: &impl sys::Sys,
    paths: &Paths,
    allowed: &[String],
    raw: &str,
) -> Result<(), ConfigError> {
    for (what, dir) in [
        ("the data directory", &paths.data_dir),
        ("the mount root", &paths.mount_root),
    ] {
        let Ok(Some(host)) = sys.host_path_of(dir, &paths.host_root) else {
            continue;
        };
        let inside = |a: &str, b: &str| {
            let b = b.trim_end_matches('/');
            b.is_empty() || a == b || a.starts_with(&format!("{b}/"))
        };
        if let Some(p) = allowed
            .iter()
            .find(|p| inside(&host, p) || inside(p, &host))
        {
            return Err(ConfigError::invalid(
                "BIND_ALLOWED",
                raw,
                &format!(
                    "host paths that neither contain nor lie inside {what} of this plugin ({p} \
                     overlaps {host})"
                ),
            ));
        }
    }
    Ok(())
}

/// The plugin: the service behind the HTTP routes (over the real OS unless a test says
/// otherwise).
pub struct Plugin<S: sys::Sys = linux::LinuxSys> {
    service: Arc<Service<S>>,
}

impl<S: sys::Sys> Plugin<S> {
    /// Build the plugin over any [`sys::Sys`] (the fake in tests).
    pub fn with_sys(
        config: &Config,
        store: common::Store,
        sys: Arc<S>,
    ) -> Result<Self, common::BoxError> {
        let allowed = config.validate()?;
        let paths = Paths {
            data_dir: config.data_dir.clone().into(),
            mount_root: config.mount_root.clone().into(),
            host_root: config.host_root.clone().into(),
        };
        check_own_roots(sys.as_ref(), &paths, &allowed, &config.bind_allowed)?;
        let max_tmpfs = config.max_tmpfs_bytes()?;
        let service = Service::new(sys, store, paths, allowed)?.with_max_tmpfs(max_tmpfs);
        service.prepare()?;
        Ok(Self {
            service: Arc::new(service),
        })
    }

    /// The service (for tests and benchmarks).
    pub fn service(&self) -> &Arc<Service<S>> {
        &self.service
    }
}

impl common::Plugin for Plugin {
    const NAME: &'static str = "outboard-volume";
    const IMPLEMENTS: &'static [&'static str] = &["VolumeDriver"];
    type Config = Config;

    fn new(ctx: common::Context<Config>) -> Result<Self, common::BoxError> {
        Self::with_sys(&ctx.config, ctx.store, Arc::new(linux::LinuxSys))
    }

    fn router(self: Arc<Self>) -> axum::Router {
        handlers::router(self.service.clone())
    }

    async fn metrics(&self, w: &mut common::metrics::MetricsText) {
        self.service.render_metrics(w);
    }

    async fn start(self: Arc<Self>) {
        // Runs after the socket answers: Get/List work meanwhile (they read the store only).
        if let Err(e) = self.service.reconcile().await {
            tracing::error!("reconciliation failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
