//! Logging to stderr (dockerd files a managed plugin's output under `plugin=<id>`): `info` by
//! default, `debug` (with request bodies) when `DEBUG=true`, JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, RuntimeConfig};

/// Install the global subscriber. Safe to call twice (the second call is a no-op).
pub fn init(rt: &RuntimeConfig) {
    let level = if rt.debug { "debug" } else { "info" };
    // Our crates at `level`; noisy dependencies stay at warn.
    let filter = EnvFilter::new(format!("warn,common={level},volume_driver={level},network_driver={level},ipam_driver={level},authz_plugin={level},audit=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match rt.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
