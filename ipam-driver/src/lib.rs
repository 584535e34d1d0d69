//! Outboard IPAM plugin (`IpamDriver`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Settings of this plugin (env names are the upper-cased field names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {}

/// The plugin.
pub struct Plugin {}

impl common::Plugin for Plugin {
    const NAME: &'static str = "outboard-ipam";
    const IMPLEMENTS: &'static [&'static str] = &["IpamDriver"];
    type Config = Config;

    fn new(_ctx: common::Context<Config>) -> Result<Self, common::BoxError> {
        Ok(Self {})
    }

    fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
}
