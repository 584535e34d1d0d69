//! Settings: built-in defaults, then an optional TOML file (`CONFIG_FILE`), then environment
//! variables. Env names are the upper-cased field names; they are exactly what
//! `deploy/<plugin>/config.json` declares settable, so `docker plugin set P KEY=value` works.
//! This module only parses and validates; it never acts on a setting.

use std::collections::BTreeSet;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings every plugin shares.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RuntimeConfig {
    /// `DEBUG`: debug-level logs, including request bodies.
    pub debug: bool,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `NAME`: the legacy plugin name dockerd looks up (socket and discovery file stem);
    /// empty means the binary's name, e.g. `outboard-ipam`.
    pub name: String,
    /// `LISTEN`: `unix:///path.sock` or `tcp://host:port`; empty means
    /// `unix:///run/docker/plugins/<name>.sock` (the managed and the legacy location alike).
    pub listen: String,
    /// `STATE_DIR`: where the sled store lives; empty means `/var/lib/outboard/<name>`.
    pub state_dir: String,
    /// `SPEC_DIR`: where `.spec`/`.json` discovery files go in TCP mode.
    pub spec_dir: String,
    /// `BODY_LIMIT`: largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `TLS_CERT`: PEM certificate chain; with `TLS_KEY` the TCP listener serves TLS.
    pub tls_cert: String,
    /// `TLS_KEY`: PEM private key for `TLS_CERT`.
    pub tls_key: String,
    /// `TLS_CLIENT_CA`: PEM CA bundle; when set, clients must present a certificate it signed.
    pub tls_client_ca: String,
    /// `DAEMON_TLS_CA`/`_CERT`/`_KEY`: paths written into the `.json` discovery file for dockerd
    /// (the CA that signed our certificate, and dockerd's client certificate and key).
    pub daemon_tls_ca: String,
    /// See `daemon_tls_ca`.
    pub daemon_tls_cert: String,
    /// See `daemon_tls_ca`.
    pub daemon_tls_key: String,
    /// `CONFIG_FILE`: optional TOML file read between the defaults and the environment.
    pub config_file: String,
    /// `METRICS_LISTEN`: `tcp://host:port` serving only `/metrics`, `/health` and `/ready`;
    /// empty (the default) serves them on the plugin socket alone.
    pub metrics_listen: String,
}

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            debug: false,
            log_format: LogFormat::Text,
            name: String::new(),
            listen: String::new(),
            state_dir: String::new(),
            spec_dir: "/etc/docker/plugins".into(),
            body_limit: DEFAULT_BODY_LIMIT,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_client_ca: String::new(),
            daemon_tls_ca: String::new(),
            daemon_tls_cert: String::new(),
            daemon_tls_key: String::new(),
            config_file: String::new(),
            metrics_listen: String::new(),
        }
    }
}

impl RuntimeConfig {
    /// The plugin name for discovery: `NAME`, or `default` (the binary's name).
    pub fn plugin_name<'a>(&'a self, default: &'a str) -> &'a str {
        if self.name.is_empty() {
            default
        } else {
            &self.name
        }
    }

    /// The listen address with the default filled in for plugin `name`.
    pub fn listen_addr(&self, name: &str) -> String {
        if self.listen.is_empty() {
            format!("unix:///run/docker/plugins/{name}.sock")
        } else {
            self.listen.clone()
        }
    }

    /// The state directory with the default filled in for plugin `name`.
    pub fn state_path(&self, name: &str) -> PathBuf {
        if self.state_dir.is_empty() {
            PathBuf::from(format!("/var/lib/outboard/{name}"))
        } else {
            PathBuf::from(&self.state_dir)
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let name_ok = self
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !self.name.starts_with('.')
            && self.name.len() <= 64;
        if !name_ok {
            return Err(ConfigError::invalid(
                "NAME",
                &self.name,
                "up to 64 letters, digits, '-', '_' or '.', not starting with '.'",
            ));
        }
        if self.body_limit < 1024 || self.body_limit > 64 << 20 {
            return Err(ConfigError::invalid(
                "BODY_LIMIT",
                self.body_limit,
                "a byte count from 1024 to 67108864",
            ));
        }
        let ml = &self.metrics_listen;
        if !ml.is_empty() && (!ml.starts_with("tcp://") || ml.len() == "tcp://".len()) {
            return Err(ConfigError::invalid(
                "METRICS_LISTEN",
                ml,
                "empty (off) or tcp://host:port",
            ));
        }
        let listen = &self.listen;
        if !listen.is_empty() && !listen.starts_with("unix://") && !listen.starts_with("tcp://") {
            return Err(ConfigError::invalid(
                "LISTEN",
                listen,
                "unix:///path/to.sock or tcp://host:port",
            ));
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return Err(ConfigError::invalid(
                "TLS_CERT/TLS_KEY",
                format!("{:?}/{:?}", self.tls_cert, self.tls_key),
                "both set or both empty",
            ));
        }
        if !self.tls_cert.is_empty() && !listen.starts_with("tcp://") {
            return Err(ConfigError::invalid(
                "LISTEN",
                listen,
                "tcp://host:port when TLS_CERT is set",
            ));
        }
        Ok(())
    }
}

/// A setting that stops the plugin at start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value outside what the key allows.
    #[error("{key}={value:?} is invalid: allowed is {allowed}")]
    Invalid {
        /// The env name of the setting.
        key: String,
        /// The value given.
        value: String,
        /// What would have been accepted.
        allowed: String,
    },
    /// A value figment could not parse into the setting's type.
    #[error("{0}")]
    Parse(String),
}

impl ConfigError {
    /// Build an [`ConfigError::Invalid`] naming the key, the value and what is allowed.
    pub fn invalid(key: &str, value: impl std::fmt::Display, allowed: &str) -> Self {
        Self::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }
}

/// Both halves of the configuration of one plugin.
#[derive(Debug)]
pub struct Loaded<C> {
    /// Shared settings.
    pub runtime: RuntimeConfig,
    /// The plugin's own settings.
    pub plugin: C,
}

/// The figment for plugin config type `C`: defaults, then the TOML file, then env.
fn figment<C: Serialize + Default>(config_file: Option<&str>) -> Figment {
    let mut f = Figment::from(Serialized::defaults(RuntimeConfig::default()))
        .merge(Serialized::defaults(C::default()));
    if let Some(path) = config_file.filter(|p| !p.is_empty()) {
        f = f.merge(Toml::file(path));
    }
    let keys = setting_names::<C>();
    f.merge(Env::raw().filter(move |k| keys.contains(&k.as_str().to_ascii_uppercase())))
}

/// Load and validate the configuration from the process environment.
pub fn load<C>(_name: &str) -> Result<Loaded<C>, ConfigError>
where
    C: serde::de::DeserializeOwned + Serialize + Default,
{
    // CONFIG_FILE must be known before the figment is built.
    let file = std::env::var("CONFIG_FILE").ok();
    if let Some(path) = file.as_deref().filter(|p| !p.is_empty()) {
        if !std::path::Path::new(path).is_file() {
            return Err(ConfigError::invalid(
                "CONFIG_FILE",
                path,
                "the path of an existing TOML file, or empty",
            ));
        }
    }
    let fig = figment::<C>(file.as_deref());
    let runtime: RuntimeConfig = fig.extract().map_err(describe)?;
    runtime.validate()?;
    let plugin: C = fig.extract().map_err(describe)?;
    Ok(Loaded { runtime, plugin })
}

/// Turn a figment error into a message naming the env key and the value.
fn describe(e: figment::Error) -> ConfigError {
    let mut msgs = Vec::new();
    for err in e {
        let key = err
            .path
            .last()
            .map(|k| k.to_ascii_uppercase())
            .unwrap_or_else(|| "?".into());
        msgs.push(format!("{key}: {}", err.kind));
    }
    ConfigError::Parse(msgs.join("; "))
}

/// Every env name that configures a plugin with config type `C`: the shared ones and `C`'s
/// fields, upper-cased. Tests compare this with the settable env of `config.json`.
pub fn setting_names<C: Serialize + Default>() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for value in [
        serde_json::to_value(RuntimeConfig::default()),
        serde_json::to_value(C::default()),
    ]
    .into_iter()
    .flatten()
    {
        if let serde_json::Value::Object(map) = value {
            out.extend(map.keys().map(|k| k.to_ascii_uppercase()));
        }
    }
    out
}

/// The env names that a managed-plugin `config.json` declares (settable or fixed).
pub fn config_json_env_names(config_json: &str) -> Result<BTreeSet<String>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Env {
        name: String,
    }
    #[derive(Deserialize)]
    struct Cfg {
        #[serde(default)]
        env: Vec<Env>,
    }
    let cfg: Cfg = serde_json::from_str(config_json)?;
    Ok(cfg.env.into_iter().map(|e| e.name).collect())
}

/// Shared settings a managed plugin's `config.json` must declare. The others (`LISTEN`,
/// `SPEC_DIR`, `TLS_*`, `DAEMON_TLS_*`) only make sense for legacy plugins and may be left out.
pub const MANAGED_SETTINGS: &[&str] = &[
    "DEBUG",
    "LOG_FORMAT",
    "STATE_DIR",
    "BODY_LIMIT",
    "CONFIG_FILE",
];

/// Check that `config.json` declares every setting of the plugin (its own and
/// [`MANAGED_SETTINGS`]) and nothing the plugin does not read. Used by each plugin's tests, so
/// `docker plugin set` reaches every setting and no declared key is dead.
pub fn check_config_json<C: Serialize + Default>(config_json: &str) -> Result<(), String> {
    let declared = config_json_env_names(config_json).map_err(|e| e.to_string())?;
    let known = setting_names::<C>();
    let mut required = setting_names::<()>();
    required.retain(|k| MANAGED_SETTINGS.contains(&k.as_str()));
    required.extend(setting_names_of::<C>());
    let missing: Vec<_> = required.difference(&declared).collect();
    let unknown: Vec<_> = declared.difference(&known).collect();
    if missing.is_empty() && unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "config.json env differs from the settings: not declared {missing:?}, not read {unknown:?}"
        ))
    }
}

/// The upper-cased field names of `C` alone.
fn setting_names_of<C: Serialize + Default>() -> BTreeSet<String> {
    match serde_json::to_value(C::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().map(|k| k.to_ascii_uppercase()).collect(),
        _ => BTreeSet::new(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Demo {
        pool: String,
        retries: u32,
    }
    impl Default for Demo {
        fn default() -> Self {
            Self {
                pool: "10.0.0.0/8".into(),
                retries: 3,
            }
        }
    }

    #[test]
    fn layering_defaults_file_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "retries = 5\npool = \"10.1.0.0/16\"\ndebug = true",
            )?;
            jail.set_env("CONFIG_FILE", "c.toml");
            jail.set_env("RETRIES", "7");
            jail.set_env("UNRELATED_VAR", "x");
            let l = load::<Demo>("t").map_err(|e| e.to_string())?;
            assert_eq!(l.plugin.retries, 7, "env beats file");
            assert_eq!(l.plugin.pool, "10.1.0.0/16", "file beats default");
            assert!(l.runtime.debug);
            assert_eq!(l.runtime.body_limit, DEFAULT_BODY_LIMIT);
            Ok(())
        });
    }

    #[test]
    fn invalid_values_name_key_and_value() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LOG_FORMAT", "xml");
            let e = load::<Demo>("t").unwrap_err().to_string();
            assert!(e.contains("LOG_FORMAT"), "{e}");
            assert!(e.contains("xml"), "{e}");
            assert!(e.contains("json"), "allowed values listed: {e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("RETRIES", "many");
            let e = load::<Demo>("t").unwrap_err().to_string();
            assert!(e.contains("RETRIES") && e.contains("many"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("BODY_LIMIT", "10");
            let e = load::<Demo>("t").unwrap_err().to_string();
            assert!(e.contains("BODY_LIMIT") && e.contains("10"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn config_json_must_match_settings() {
        let mut names: Vec<String> = setting_names::<Demo>().into_iter().collect();
        let env: Vec<_> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "value": ""}))
            .collect();
        let doc = serde_json::json!({ "env": env }).to_string();
        assert!(check_config_json::<Demo>(&doc).is_ok());
        names.retain(|n| n != "RETRIES");
        let env: Vec<_> = names
            .iter()
            .map(|n| serde_json::json!({"name": n}))
            .collect();
        let doc = serde_json::json!({ "env": env }).to_string();
        let e = check_config_json::<Demo>(&doc).unwrap_err();
        assert!(e.contains("RETRIES"), "{e}");
        let doc = r#"{"env":[{"name":"DEBUG"},{"name":"LOG_FORMAT"},{"name":"STATE_DIR"},{"name":"BODY_LIMIT"},{"name":"CONFIG_FILE"},{"name":"POOL"},{"name":"RETRIES"},{"name":"BOGUS"}]}"#;
        let e = check_config_json::<Demo>(doc).unwrap_err();
        assert!(e.contains("BOGUS"), "{e}");
        let doc = doc.replace(r#",{"name":"BOGUS"}"#, "");
        assert!(check_config_json::<Demo>(&doc).is_ok());
    }
}
