//! What the command learns from dockerd (its API on `DOCKER_HOST`): the installed Outboard
//! plugins and their sockets, and the containers and networks that prove a volume, pool or
//! address is in use.

use std::path::PathBuf;

use serde_json::Value;

use crate::http;

/// The four plugin kinds, in display order.
pub const KINDS: [&str; 4] = ["volume", "network", "ipam", "authz"];

/// One installed Outboard plugin.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// `volume`, `network`, `ipam` or `authz` (from the entrypoint `/bin/outboard-<kind>`).
    pub kind: String,
    /// The name dockerd knows it by, e.g. `outboard-volume:latest`.
    pub name: String,
    /// Plugin ID (empty for a legacy plugin).
    pub id: String,
    /// Whether dockerd has it enabled.
    pub enabled: bool,
    /// Its socket on this host.
    pub socket: PathBuf,
}

/// dockerd's API socket.
#[derive(Debug, Clone)]
pub struct Docker {
    socket: PathBuf,
}

impl Docker {
    /// From `DOCKER_HOST` (only `unix://`), default `/var/run/docker.sock`.
    pub fn from_env() -> Result<Self, String> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        let socket = if host.is_empty() {
            PathBuf::from("/var/run/docker.sock")
        } else if let Some(p) = host.strip_prefix("unix://") {
            PathBuf::from(p)
        } else {
            return Err(format!(
                "DOCKER_HOST={host}: only unix:// sockets are supported (the plugin sockets are local anyway)"
            ));
        };
        Ok(Self { socket })
    }

    /// GET a Docker API path as JSON.
    pub fn get(&self, path: &str) -> Result<Value, String> {
        let r = http::request(&self.socket, "GET", path, None)
            .map_err(|e| format!("docker API: {e}"))?;
        if r.status != 200 {
            return Err(format!(
                "docker API {path}: {} {}",
                r.status,
                r.error_text()
            ));
        }
        r.json()
    }

    /// Every installed Outboard plugin (managed ones through the API; legacy sockets too).
    pub fn plugins(&self) -> Result<Vec<Plugin>, String> {
        let root = PathBuf::from(
            std::env::var("OUTBOARD_PLUGIN_ROOT").unwrap_or_else(|_| "/run/docker/plugins".into()),
        );
        let list = self.get("/plugins")?;
        let mut out = Vec::new();
        for p in list.as_array().into_iter().flatten() {
            let entry = p["Config"]["Entrypoint"]
                .as_array()
                .and_then(|e| e.first())
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(kind) = entry.strip_prefix("/bin/outboard-") else {
                continue;
            };
            if !KINDS.contains(&kind) {
                continue;
            }
            let id = p["Id"].as_str().unwrap_or("").to_string();
            let sock = p["Config"]["Interface"]["Socket"].as_str().unwrap_or("");
            out.push(Plugin {
                kind: kind.to_string(),
                name: p["Name"].as_str().unwrap_or("").to_string(),
                enabled: p["Enabled"].as_bool().unwrap_or(false),
                socket: root.join(&id).join(sock),
                id,
            });
        }
        // Legacy plugins: a socket named after the binary, found by dockerd by name.
        for kind in KINDS {
            let sock = root.join(format!("outboard-{kind}.sock"));
            if sock.exists() && !out.iter().any(|p| p.kind == kind) {
                out.push(Plugin {
                    kind: kind.to_string(),
                    name: format!("outboard-{kind}"),
                    id: String::new(),
                    enabled: true,
                    socket: sock,
                });
            }
        }
        out.sort_by_key(|p| KINDS.iter().position(|k| *k == p.kind));
        Ok(out)
    }

    /// Containers (any state) that mount volume `name`, as (name, state).
    pub fn containers_using_volume(&self, name: &str) -> Result<Vec<(String, String)>, String> {
        let filters = serde_json::json!({ "volume": [name] }).to_string();
        let list = self.get(&format!(
            "/containers/json?all=1&filters={}",
            encode(&filters)
        ))?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let n = c["Names"][0].as_str().unwrap_or("").trim_start_matches('/');
                (n.to_string(), c["State"].as_str().unwrap_or("").to_string())
            })
            .collect())
    }

    /// Every network with its details (IPAM config and endpoints).
    pub fn networks(&self) -> Result<Vec<Value>, String> {
        let list = self.get("/networks")?;
        let mut out = Vec::new();
        for n in list.as_array().into_iter().flatten() {
            let Some(id) = n["Id"].as_str() else { continue };
            // The list omits endpoints; the single-network view has them.
            match self.get(&format!("/networks/{id}")) {
                Ok(full) => out.push(full),
                Err(e) if e.contains(" 404 ") => continue, // removed meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// A container state in which it holds its mounts.
pub fn is_live_state(state: &str) -> bool {
    matches!(state, "running" | "paused" | "restarting" | "removing")
}

/// Percent-encode a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a network's driver name refers to plugin `name` (`x`, `x:latest` alike).
pub fn same_plugin(driver: &str, name: &str) -> bool {
    let strip = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
    !driver.is_empty() && strip(driver) == strip(name)
}
