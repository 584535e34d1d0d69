//! The runtime every Outboard plugin binary shares.
//!
//! A plugin crate supplies a [`Plugin`] implementation (its routes, its `Implements` list and its
//! config type); this crate does the rest: config loading (figment), logging, the HTTP server on a
//! unix socket or TCP(+TLS), discovery files, the durable [`store::Store`], the `{"Err": …}`
//! envelope, and graceful shutdown. It must not know anything about volumes, networks, IPAM or
//! authorization.

pub mod config;
pub mod discovery;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod mountinfo;
pub mod store;
pub mod testing;
mod tls;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

pub use config::{ConfigError, RuntimeConfig};
pub use http::{ApiError, DockerJson};
pub use store::{Store, StoreError, Tree};

/// Boxed error for start-up failures (only `main`-level code turns these into exit codes).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a plugin gets when it is built: its own config, the shared runtime config and the store.
pub struct Context<C> {
    /// The plugin's own settings (defaults < TOML file < environment).
    pub config: C,
    /// The settings every plugin shares (socket, state dir, logging, …).
    pub runtime: RuntimeConfig,
    /// The plugin's durable state, already opened and schema-checked.
    pub store: Store,
    /// Marks the plugin ready (`GET /ready`). Common marks it when [`Plugin::start`] returns;
    /// a plugin whose `start` runs for its whole life marks it itself once it can serve.
    pub ready: metrics::Readiness,
}

/// One Docker plugin. `main.rs` of each binary is `common::main::<ThePlugin>()`.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Binary name, legacy plugin name and socket file stem (e.g. `outboard-volume`).
    const NAME: &'static str;
    /// The `Implements` list answered to `Plugin.Activate` (e.g. `["VolumeDriver"]`).
    const IMPLEMENTS: &'static [&'static str];
    /// Version of the store layout; bump it when the stored types change incompatibly.
    const SCHEMA_VERSION: u32 = 1;
    /// The plugin's own settings; its field names are the lower-cased env names declared as
    /// settable in `deploy/<plugin>/config.json`.
    type Config: serde::de::DeserializeOwned + serde::Serialize + Default + Send + Sync + 'static;

    /// Build the plugin. Must be quick: the socket is already bound and dockerd is waiting.
    /// An error here stops the plugin with the message (use it for invalid settings).
    fn new(ctx: Context<Self::Config>) -> Result<Self, BoxError>;

    /// All routes of the plugin (the common routes such as `/Plugin.Activate` are added).
    fn router(self: Arc<Self>) -> axum::Router;

    /// Slow start-up work (reconciliation), run after the server answers requests.
    fn start(self: Arc<Self>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Called after the server stopped accepting and finished in-flight requests.
    fn stop(self: Arc<Self>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Plugin-specific metric families appended to `GET /metrics` (gauges of its state).
    fn metrics(&self, _w: &mut metrics::MetricsText) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A sub-command given on the command line (e.g. `authz-plugin check FILE`). Returning
    /// `Some` runs it instead of the server.
    fn command(_args: &[String]) -> Option<ExitCode> {
        None
    }
}

/// Entry point for a plugin binary: parse sub-commands, load config, serve until SIGTERM/SIGINT.
pub fn main<P: Plugin>() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = P::command(&args) {
        return code;
    }
    let loaded = match config::load::<P::Config>(P::NAME) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}: invalid configuration: {e}", P::NAME);
            return ExitCode::from(2);
        }
    };
    // The plugin type's path starts with its crate (`ipam_driver::IpamPlugin`).
    let plugin_crate = std::any::type_name::<P>()
        .split("::")
        .next()
        .unwrap_or("outboard");
    logging::init(&loaded.runtime, plugin_crate);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", P::NAME);
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(http::serve_plugin::<P>(
        loaded.runtime,
        loaded.plugin,
        http::shutdown_signal(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}: {e}", P::NAME);
            eprintln!("{}: {e}", P::NAME);
            ExitCode::FAILURE
        }
    }
}
