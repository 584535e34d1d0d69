//! Request bodies, read the way dockerd reads them and then some: a strict JSON decoder that
//! folds keys like Go's `encoding/json` (ASCII case-insensitive, `ſ`→`s`, `K`→`k`) and refuses
//! any object with duplicate or case-variant keys, and the extraction of the [`Facts`] that
//! policy predicates look at. Nothing here decides; unknown shapes only ever add facts.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::route::clean_path;

/// Fold a JSON key the way Go matches struct fields: ASCII case-insensitively, plus the two
/// non-ASCII letters Go folds onto ASCII (U+017F long s, U+212A Kelvin sign).
pub fn fold_key(k: &str) -> String {
    if k.is_ascii() {
        return k.to_ascii_lowercase();
    }
    k.chars()
        .map(|c| match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, trailing garbage, too deep, or a duplicate / case-variant key.
    #[error("request body is not strict JSON: {0}")]
    Invalid(String),
}

/// Decode `bytes` as one JSON value with folded object keys; any duplicate key after folding is
/// an error at every nesting level.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict
        .deserialize(&mut de)
        .map_err(|e| BodyError::Invalid(e.to_string()))?;
    de.end().map_err(|e| BodyError::Invalid(e.to_string()))?;
    Ok(v)
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(folded) = map.next_key_seed(FoldedKey)? {
            if out.contains_key(&folded) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate or case-variant key {folded:?} (keys compared case-insensitively)"
                )));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(folded, v);
        }
        Ok(Value::Object(out))
    }
}

/// An object key, folded while it is read (one allocation per key).
struct FoldedKey;

impl<'de> DeserializeSeed<'de> for FoldedKey {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FoldedKey {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(fold_key(v))
    }
}

/// What the predicates look at, extracted once per request from its body (and query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `Privileged` set (create, legacy start host config, exec).
    pub privileged: bool,
    /// Added capabilities (`CapAdd`, `Capabilities`, service `CapabilityAdd`), upper-case,
    /// without `CAP_`.
    pub caps: Vec<String>,
    /// Any `Devices`, `DeviceRequests` or `DeviceCgroupRules`.
    pub devices: bool,
    /// Host namespaces asked for: `network`, `pid`, `ipc`, `uts`, `userns`, `cgroup`.
    pub host_namespaces: Vec<&'static str>,
    /// Security options normalised to `key=value` (`seccomp:unconfined` → `seccomp=unconfined`);
    /// empty `MaskedPaths` shows as `systempaths=unconfined`.
    pub security_opts: Vec<String>,
    /// Host paths bound into a container or a volume, lexically cleaned.
    pub host_paths: Vec<String>,
    /// Sysctl names.
    pub sysctls: Vec<String>,
    /// Image references named.
    pub images: Vec<String>,
    /// For each of `images`, the names it is matched by ([`image_names`]); filled by
    /// [`Facts::finish`] so that rules do not recompute them.
    pub image_names: Vec<Vec<String>>,
    /// Which facts are present (bits of [`present`]); filled by [`Facts::finish`]. A rule whose
    /// predicates need an absent fact is skipped without being looked at.
    pub present: u16,
    /// An exec that runs as root (`User` empty, `root`, `0`, `root:…`, `0:…`).
    pub exec_root: bool,
}

/// Bits of [`Facts::present`].
pub mod present {
    /// `privileged` is true.
    pub const PRIVILEGED: u16 = 1;
    /// Capabilities are added.
    pub const CAPS: u16 = 1 << 1;
    /// Devices are asked for.
    pub const DEVICES: u16 = 1 << 2;
    /// Host namespaces are asked for.
    pub const HOST_NS: u16 = 1 << 3;
    /// Security options are given.
    pub const SECURITY_OPTS: u16 = 1 << 4;
    /// Host paths are bound.
    pub const HOST_PATHS: u16 = 1 << 5;
    /// Sysctls are set.
    pub const SYSCTLS: u16 = 1 << 6;
    /// Images are named.
    pub const IMAGES: u16 = 1 << 7;
    /// The exec runs as root.
    pub const EXEC_ROOT: u16 = 1 << 8;
}

/// Look up a folded key.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

/// A value that is present and not `false`/`null` counts as set (dockerd rejects the odd types,
/// so over-matching them only denies what would fail anyway).
fn truthy(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Null) | Some(Value::Bool(false)))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Resolve a host path the daemon would see: relative paths are taken from `/` (dockerd's cwd).
fn host_path(p: &str) -> String {
    clean_path(p)
}

fn cap_name(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    up.strip_prefix("CAP_").unwrap_or(&up).to_string()
}

fn security_opt(o: &str) -> String {
    // dockerd splits on the first `=`, or on the first `:` for the old syntax.
    let (k, v) = o
        .split_once('=')
        .or_else(|| o.split_once(':'))
        .unwrap_or((o, ""));
    if v.is_empty() && !o.contains(['=', ':']) {
        return k.trim().to_ascii_lowercase();
    }
    format!(
        "{}={}",
        k.trim().to_ascii_lowercase(),
        v.trim().to_ascii_lowercase()
    )
}

impl Facts {
    /// Host-config facts of one object (the `HostConfig`, or the top level where dockerd still
    /// reads the deprecated embedded host config).
    fn add_host_config(&mut self, hc: &Value) {
        if !hc.is_object() {
            return;
        }
        self.privileged |= truthy(get(hc, "privileged"));
        for key in ["capadd", "capabilities"] {
            self.caps
                .extend(strings(get(hc, key)).iter().map(|c| cap_name(c)));
        }
        for key in ["devices", "devicerequests", "devicecgrouprules"] {
            self.devices |= non_empty(get(hc, key));
        }
        for (key, ns) in [
            ("networkmode", "network"),
            ("pidmode", "pid"),
            ("ipcmode", "ipc"),
            ("utsmode", "uts"),
            ("usernsmode", "userns"),
            ("cgroupnsmode", "cgroup"),
        ] {
            if let Some(Value::String(m)) = get(hc, key) {
                if m.trim().eq_ignore_ascii_case("host") && !self.host_namespaces.contains(&ns) {
                    self.host_namespaces.push(ns);
                }
            }
        }
        self.security_opts.extend(
            strings(get(hc, "securityopt"))
                .iter()
                .map(|o| security_opt(o)),
        );
        if matches!(get(hc, "maskedpaths"), Some(Value::Array(a)) if a.is_empty()) {
            self.security_opts.push("systempaths=unconfined".into());
        }
        for bind in strings(get(hc, "binds")) {
            // `src:dst[:opts]`; an absolute src is a host path, anything else a named volume.
            let src = bind.split(':').next().unwrap_or("");
            if src.starts_with('/') {
                self.host_paths.push(host_path(src));
            }
        }
        if let Some(Value::Array(mounts)) = get(hc, "mounts") {
            for m in mounts {
                self.add_mount(m);
            }
        }
        if let Some(Value::Object(s)) = get(hc, "sysctls") {
            self.sysctls.extend(s.keys().cloned());
        }
    }

    /// One entry of `Mounts` (containers and services).
    fn add_mount(&mut self, m: &Value) {
        let kind = match get(m, "type") {
            Some(Value::String(t)) => t.to_ascii_lowercase(),
            _ => String::new(),
        };
        let source = match get(m, "source") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        match kind.as_str() {
            // An empty type is refused by dockerd; count its source as a host path all the same.
            "bind" | "" if !source.is_empty() => self.host_paths.push(host_path(&source)),
            "volume" => {
                // A `local` volume created on the fly with `device=` binds a host path.
                if let Some(dc) = get(m, "volumeoptions").and_then(|o| get(o, "driverconfig")) {
                    self.add_volume_driver(get(dc, "name"), get(dc, "options"));
                }
            }
            _ => {}
        }
    }

    /// A volume driver and its options: for the `local` driver, `device=` is a host path (with
    /// `o=bind` a bind mount, otherwise a device node to mount).
    fn add_volume_driver(&mut self, driver: Option<&Value>, opts: Option<&Value>) {
        let driver = match driver {
            Some(Value::String(d)) => d.trim().to_ascii_lowercase(),
            _ => String::new(),
        };
        if !(driver.is_empty() || driver == "local" || driver == "local:latest") {
            return;
        }
        let Some(Value::Object(opts)) = opts else {
            return;
        };
        for (k, v) in opts {
            if k == "device" {
                if let Value::String(d) = v {
                    // `addr:/export` of nfs/cifs is remote; anything else names a host path.
                    let remote = d.contains(':') && !d.starts_with('/');
                    if !remote {
                        self.host_paths.push(host_path(d));
                    }
                }
            }
        }
    }

    /// Precompute what predicates look at repeatedly.
    pub fn finish(mut self) -> Facts {
        self.image_names = self.images.iter().map(|i| image_names(i)).collect();
        let mut m = 0;
        for (set, bit) in [
            (self.privileged, present::PRIVILEGED),
            (!self.caps.is_empty(), present::CAPS),
            (self.devices, present::DEVICES),
            (!self.host_namespaces.is_empty(), present::HOST_NS),
            (!self.security_opts.is_empty(), present::SECURITY_OPTS),
            (!self.host_paths.is_empty(), present::HOST_PATHS),
            (!self.sysctls.is_empty(), present::SYSCTLS),
            (!self.images.is_empty(), present::IMAGES),
            (self.exec_root, present::EXEC_ROOT),
        ] {
            if set {
                m |= bit;
            }
        }
        self.present = m;
        self
    }

    /// Facts of a request body for `action`.
    pub fn from_body(action: &str, body: &Value) -> Facts {
        let mut f = Facts::default();
        match action {
            "container.create" | "container.start" | "container.update" => {
                f.add_host_config(body);
                if let Some(hc) = get(body, "hostconfig") {
                    f.add_host_config(hc);
                }
                if let Some(Value::String(img)) = get(body, "image") {
                    f.images.push(img.clone());
                }
            }
            "container.exec" => {
                f.privileged = truthy(get(body, "privileged"));
                let user = match get(body, "user") {
                    Some(Value::String(u)) => u.trim().to_string(),
                    _ => String::new(),
                };
                let name = user.split(':').next().unwrap_or("");
                f.exec_root = name.is_empty() || name == "root" || name == "0";
            }
            "volume.create" => f.add_volume_driver(get(body, "driver"), get(body, "driveropts")),
            "service.create" | "service.update" => {
                if let Some(spec) = get(body, "tasktemplate").and_then(|t| get(t, "containerspec"))
                {
                    if let Some(Value::String(img)) = get(spec, "image") {
                        f.images.push(img.clone());
                    }
                    if let Some(Value::Array(mounts)) = get(spec, "mounts") {
                        for m in mounts {
                            f.add_mount(m);
                        }
                    }
                    f.caps.extend(
                        strings(get(spec, "capabilityadd"))
                            .iter()
                            .map(|c| cap_name(c)),
                    );
                    if let Some(Value::Object(s)) = get(spec, "sysctls") {
                        f.sysctls.extend(s.keys().cloned());
                    }
                }
            }
            _ => {}
        }
        f.finish()
    }
}

/// Does `path` lie at or below `prefix` (both cleaned)?
pub fn path_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The names an image reference is matched by: as written, and fully qualified
/// (`busybox` → `docker.io/library/busybox:latest`). An ID (`sha256:…`, hex) is only itself.
pub fn image_names(reference: &str) -> Vec<String> {
    let r = reference.trim();
    let hex = r.strip_prefix("sha256:").unwrap_or(r);
    if hex.len() >= 12 && hex.len() <= 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return vec![r.to_string()];
    }
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    let (repo, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    let (domain, path) = match repo.split_once('/') {
        Some((d, p)) if d.contains(['.', ':']) || d == "localhost" => (d, p.to_string()),
        _ => ("docker.io", repo.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let mut full = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            full.push(':');
            full.push_str(t);
        }
        (None, None) => full.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    vec![r.to_string(), full]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_json_refuses_duplicates_and_case_variants() {
        assert!(parse_strict(br#"{"a":1,"b":{"c":2}}"#).is_ok());
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"{"Privileged":false,"privileged":true}"#).is_err());
        assert!(parse_strict(br#"{"HostConfig":{"Binds":[],"Bind\u017F":["/:/h"]}}"#).is_err());
        assert!(parse_strict(b"{\"x\":[{\"k\":1,\"\xe2\x84\xaa\":2}]}").is_err());
        assert!(parse_strict(br#"{"a":1} {"a":2}"#).is_err());
        assert!(parse_strict(b"").is_err());
        assert!(parse_strict(b"{\"a\":1}\n").is_ok());
        let v = parse_strict(br#"{"HostConfig":{"Privileged":true}}"#).unwrap_or_default();
        assert_eq!(v["hostconfig"]["privileged"], Value::Bool(true));
    }

    #[test]
    fn facts_of_a_create() {
        let v = parse_strict(
            br#"{"Image":"busybox","Privileged":true,"HostConfig":{"CapAdd":["cap_sys_admin"],
            "Binds":["/etc/../:/host:ro","named:/x"],"Mounts":[{"Type":"bind","Source":"/var//run"},
            {"Type":"volume","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"device":"/srv","o":"bind"}}}}],
            "PidMode":"host","SecurityOpt":["seccomp:unconfined"],"Sysctls":{"net.ipv4.ip_forward":"1"},
            "Devices":[{"PathOnHost":"/dev/kmsg"}]}}"#,
        )
        .unwrap_or_default();
        let f = Facts::from_body("container.create", &v);
        assert!(f.privileged);
        assert_eq!(f.caps, vec!["SYS_ADMIN"]);
        assert_eq!(f.host_paths, vec!["/", "/var/run", "/srv"]);
        assert_eq!(f.host_namespaces, vec!["pid"]);
        assert_eq!(f.security_opts, vec!["seccomp=unconfined"]);
        assert_eq!(f.sysctls, vec!["net.ipv4.ip_forward"]);
        assert!(f.devices);
        assert_eq!(f.images, vec!["busybox"]);
    }

    #[test]
    fn facts_of_exec_and_volume() {
        let v = parse_strict(br#"{"User":"","Cmd":["sh"]}"#).unwrap_or_default();
        assert!(Facts::from_body("container.exec", &v).exec_root);
        let v = parse_strict(br#"{"User":"1000:1000"}"#).unwrap_or_default();
        assert!(!Facts::from_body("container.exec", &v).exec_root);
        let v = parse_strict(br#"{"Name":"x","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}"#)
            .unwrap_or_default();
        assert_eq!(
            Facts::from_body("volume.create", &v).host_paths,
            vec!["/etc"]
        );
        let v = parse_strict(
            br#"{"Driver":"local","DriverOpts":{"type":"nfs","device":"host:/export"}}"#,
        )
        .unwrap_or_default();
        assert!(Facts::from_body("volume.create", &v).host_paths.is_empty());
        let v = parse_strict(br#"{"Driver":"other","DriverOpts":{"device":"/etc"}}"#)
            .unwrap_or_default();
        assert!(Facts::from_body("volume.create", &v).host_paths.is_empty());
    }

    #[test]
    fn images_and_paths() {
        assert_eq!(
            image_names("busybox"),
            vec!["busybox", "docker.io/library/busybox:latest"]
        );
        assert_eq!(
            image_names("local/busybox:1"),
            vec!["local/busybox:1", "docker.io/local/busybox:1"]
        );
        assert_eq!(
            image_names("localhost:5000/x"),
            vec!["localhost:5000/x", "localhost:5000/x:latest"]
        );
        assert_eq!(
            image_names("sha256:0123456789ab"),
            vec!["sha256:0123456789ab"]
        );
        assert!(path_under("/etc/x", "/etc"));
        assert!(!path_under("/etcx", "/etc"));
        assert!(path_under("/anything", "/"));
    }
}
