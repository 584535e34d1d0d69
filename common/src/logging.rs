//! Logging to stderr (dockerd files a managed plugin's output under `plugin=<id>`): `info` by
//! default, `debug` (with request bodies) when `DEBUG=true`, JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, RuntimeConfig};

/// Install the global subscriber. Safe to call twice (the second call is a no-op).
/// `plugin_crate` is the calling plugin's crate (its log target), so `common` names no plugin.
pub fn init(rt: &RuntimeConfig, plugin_crate: &str) {
    let level = if rt.debug { "debug" } else { "info" };
    // This crate and the plugin's at `level`; noisy dependencies stay at warn.
    let filter = EnvFilter::new(format!(
        "warn,common={level},{plugin_crate}={level},audit=info"
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match rt.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
