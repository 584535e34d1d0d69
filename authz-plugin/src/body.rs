//! Request bodies, read the way dockerd reads them and then some: a strict JSON decoder that
//! folds keys like Go's `encoding/json` (ASCII case-insensitive, `ſ`→`s`, `K`→`k`) and refuses
//! any object with duplicate or case-variant keys, and the extraction of the [`Facts`] that
//! policy predicates look at. Nothing here decides; unknown shapes only ever add facts.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::containers::Risk;
use crate::route::clean_path;

/// Host namespace names, as facts and policies spell them.
pub const HOST_NAMESPACES: &[&str] = &["network", "pid", "ipc", "uts", "userns", "cgroup"];

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

/// Fields whose value Go decodes into a map (`map[string]…`): their keys are data, matched
/// exactly, never folded (moby `api/types/container.Config`/`HostConfig`, `network`, `volume`,
/// `swarm` types). Every other object is a struct, whose keys Go matches case-insensitively.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "sysctls",
    "driveropts",
    "options",
    "storageopt",
    "tmpfs",
    "exposedports",
    "portbindings",
    "volumes",
    "config",
    "annotations",
    "endpointsconfig",
    "buildargs",
];

/// Decode `bytes` as one JSON value. Struct field names are folded (Go matches them
/// case-insensitively) and a duplicate or case-variant field is an error, because Go merges
/// such duplicates in ways a reader of the first one would miss; keys of map-valued fields
/// ([`MAP_FIELDS`]) are kept as sent, and only an exact duplicate there is an error.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, BodyError> {
    let text = go_lenient(bytes);
    let mut de = serde_json::Deserializer::from_str(&text);
    let v = Strict { map: false }
        .deserialize(&mut de)
        .map_err(|e| BodyError::Invalid(e.to_string()))?;
    de.end().map_err(|e| BodyError::Invalid(e.to_string()))?;
    Ok(v)
}

/// Accept what Go's decoder accepts and serde_json refuses, with Go's meaning (encoding/json
/// `unquote`): invalid UTF-8 and an escaped lone surrogate (`\ud800`) in a string both become
/// U+FFFD. Returns the text unchanged when neither occurs.
fn go_lenient(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let text = String::from_utf8_lossy(bytes);
    let b = text.as_bytes();
    let hex4 = |i: usize| -> Option<u32> {
        let h = b.get(i..i + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut out: Option<String> = None;
    let (mut i, mut copied, mut in_str) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'"' => {
                in_str = !in_str;
                i += 1;
            }
            b'\\' if in_str => {
                if b.get(i + 1) != Some(&b'u') {
                    i += 2;
                    continue;
                }
                let Some(cp) = hex4(i + 2) else {
                    i += 2;
                    continue;
                };
                let pair = (0xD800..0xDC00).contains(&cp)
                    && b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex4(i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                if pair {
                    i += 12;
                } else if (0xD800..0xE000).contains(&cp) {
                    let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    o.push_str(&text[copied..i]);
                    o.push_str("\\ufffd");
                    i += 6;
                    copied = i;
                } else {
                    i += 6;
                }
            }
            _ => i += 1,
        }
    }
    match out {
        None => text,
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// One value; `map`: it is the value of a map-valued field (its keys are data).
struct Strict {
    map: bool,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { map: self.map })
    }
}

struct StrictVisitor {
    map: bool,
}

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
        while let Some(v) = seq.next_element_seed(Strict { map: false })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        if self.map {
            // Map keys are data: kept exactly (Go's decoder never folds them).
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate map key {key:?}"
                    )));
                }
                let v = map.next_value_seed(Strict { map: false })?;
                out.insert(key, v);
            }
            return Ok(Value::Object(out));
        }
        while let Some(folded) = map.next_key_seed(FoldedKey)? {
            if out.contains_key(&folded) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate or case-variant key {folded:?} (keys compared case-insensitively)"
                )));
            }
            let is_map = MAP_FIELDS.contains(&folded.as_str());
            let v = map.next_value_seed(Strict { map: is_map })?;
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
    /// Why volume options (of `volume create` or a mount's volume driver config) are not
    /// provably safe ([`volume_risk`]).
    pub unsafe_volumes: Vec<String>,
    /// Containers whose namespaces (`container:X`) or volumes (`VolumesFrom`) are shared.
    pub shared_with: Vec<String>,
    /// Containers shared or acted on that the plugin has no record of
    /// ([`crate::containers`]); filled when the request is resolved against the records.
    pub unseen: Vec<String>,
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
    /// Volume options are not provably safe.
    pub const UNSAFE_VOLUMES: u16 = 1 << 9;
    /// Another container's namespaces or volumes are shared.
    pub const SHARED: u16 = 1 << 10;
    /// A container shared or acted on is unknown to the plugin.
    pub const UNSEEN: u16 = 1 << 11;
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

/// Strings of a JSON array (or a lone string), other values as their JSON text.
pub fn strings(v: Option<&Value>) -> Vec<String> {
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
pub fn host_path(p: &str) -> String {
    clean_path(p)
}

/// Go's `strings.ToUpper`: per rune, the simple (one-to-one) upper-case mapping, so `ſ` (U+017F)
/// becomes `S` and `ı` (U+0131) becomes `I`; a rune whose upper case is several runes stays.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// A capability as dockerd applies it, without `CAP_`: moby `oci/caps`
/// `NormalizeLegacyCapabilities` upper-cases with Go's `strings.ToUpper` and adds `CAP_` when
/// missing (`ALL` stays `ALL`). Surrounding blanks are trimmed here (dockerd would refuse
/// them), so a spelling can only over-match.
pub fn cap_name(c: &str) -> String {
    let up = go_to_upper(c.trim());
    up.strip_prefix("CAP_").unwrap_or(&up).to_string()
}

/// Go's `strconv.ParseBool`.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A security option as dockerd applies it (moby `daemon/create.go`/`daemon/daemon_unix.go`
/// `parseSecurityOpt`: a bare `no-new-privileges` or `disable`, else split at the first `=`,
/// or at the first `:` for the old syntax), normalised to one of:
/// `seccomp=default|unconfined|custom`, `apparmor=default|<profile>`, `label=disable`,
/// `label=<type|user|role|level>:…`, `no-new-privileges=true|false`,
/// `writable-cgroups=true|false` (dockerd 25+), or the option as written (lower-cased) when
/// dockerd would refuse it.
pub fn security_opt(o: &str) -> String {
    let o = o.trim();
    match o {
        "no-new-privileges" => return "no-new-privileges=true".into(),
        "disable" => return "label=disable".into(),
        _ => {}
    }
    let Some((k, v)) = o.split_once('=').or_else(|| o.split_once(':')) else {
        return o.to_ascii_lowercase();
    };
    let key = k.trim().to_ascii_lowercase();
    let val = v.trim();
    match key.as_str() {
        // 20.10: "" is the default profile, "unconfined" none, anything else a JSON profile;
        // 26.x adds "builtin" for the default.
        "seccomp" => match val {
            "" | "builtin" => "seccomp=default".into(),
            v if v.eq_ignore_ascii_case("unconfined") => "seccomp=unconfined".into(),
            _ => "seccomp=custom".into(),
        },
        "apparmor" => match val {
            "" | "docker-default" => "apparmor=default".into(),
            v => format!("apparmor={}", v.to_ascii_lowercase()),
        },
        "label" => {
            let v = val.to_ascii_lowercase();
            if v == "disable" || v == "disabled" {
                "label=disable".into()
            } else {
                format!("label={v}")
            }
        }
        "no-new-privileges" | "writable-cgroups" => match go_bool(val) {
            Some(b) => format!("{key}={b}"),
            None => format!("{key}={}", val.to_ascii_lowercase()),
        },
        _ => format!("{key}={}", val.to_ascii_lowercase()),
    }
}

/// Paths dockerd masks by default (moby `oci/defaults.go`, 20.10 and 26.x together).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths dockerd makes read-only by default (moby `oci/defaults.go`).
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// dockerd fills `MaskedPaths`/`ReadonlyPaths` with the defaults only when the field is nil
/// (absent or `null`, moby `daemon/oci_linux.go` `WithMaskedPaths`); any other value replaces
/// them, so a value that lacks one of the defaults unmasks it.
pub fn unmasks(v: Option<&Value>, defaults: &[&str]) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => {
            let given: Vec<String> = a.iter().filter_map(Value::as_str).map(clean_path).collect();
            !defaults.iter().all(|d| given.iter().any(|g| g == d))
        }
        Some(_) => true,
    }
}

/// The host source of a `Binds` entry and its options, when it names a host path. moby
/// `volume/mounts/linux_parser.go` `ParseMountRaw`: `dst` alone is an anonymous volume,
/// `src:dst[:mode]` binds `src` when it is absolute, otherwise names a volume.
pub fn bind_source(spec: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = spec.splitn(3, ':').collect();
    match parts.as_slice() {
        [src, _dst] if src.starts_with('/') => Some((src.to_string(), String::new())),
        [src, _dst, mode] if src.starts_with('/') => Some((src.to_string(), mode.to_string())),
        _ => None,
    }
}

/// Mount flags of moby `pkg/mount` (`parseOptions`) that make the `local` driver's mount a bind
/// (or move/remount) of `device` whatever `type` says.
const BIND_FLAGS: &[&str] = &["bind", "rbind", "remount", "move"];

/// Judge a volume driver and its options together, the way the driver will use them.
///
/// `local` (moby `volume/local/local_unix.go`: `mount(device, path, type, o)`): safe only when
/// provably not a host path or kernel filesystem: `tmpfs` without bind flags (device ignored),
/// `nfs`/`nfs4` with an `addr=` or `host:/export` device, `cifs`/`smb3` with a `//host/share`
/// device; a bind (`o` with `bind`/`rbind`) of an absolute `device` is a host path, pushed to
/// `host_paths` for the path rules. Everything else (`proc`, `sysfs`, `overlay`, block
/// filesystems, any relative `device`, which mount(2) resolves from dockerd's cwd) is a risk.
///
/// Other drivers: an absolute path in an option that names a path (`path`, `device`, `source`,
/// `mountpoint`, `hostpath`, `dir`; Outboard's volume driver uses `path` with `type=bind`) is a
/// host path.
///
/// Returns why the options are unsafe, if they are.
pub fn volume_risk(
    driver: Option<&Value>,
    opts: Option<&Value>,
    host_paths: &mut Vec<String>,
) -> Option<String> {
    let driver = match driver {
        Some(Value::String(d)) => d.trim().to_string(),
        _ => String::new(),
    };
    let Some(Value::Object(opts)) = opts else {
        return None;
    };
    let local = driver.is_empty() || driver == "local" || driver == "local:latest";
    if !local {
        for (k, v) in opts {
            let key = k.to_ascii_lowercase();
            if let Value::String(s) = v {
                if matches!(
                    key.as_str(),
                    "path" | "device" | "source" | "mountpoint" | "hostpath" | "dir"
                ) && s.trim_start().starts_with('/')
                {
                    host_paths.push(host_path(s.trim()));
                }
            }
        }
        return None;
    }
    // The local driver refuses any key but these (validOpts), case-sensitively.
    let get = |k: &str| opts.get(k).and_then(Value::as_str).unwrap_or("");
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "o" | "device" | "size") {
            return Some(format!("local volume option {k:?} is not known"));
        }
    }
    let (kind, o, device) = (get("type"), get("o"), get("device"));
    if kind.is_empty() && o.is_empty() && device.is_empty() {
        return None; // a plain local volume (a directory under dockerd's data root)
    }
    let flags: Vec<&str> = o.split(',').map(str::trim).collect();
    let bind = flags.iter().any(|f| BIND_FLAGS.contains(f));
    if bind {
        if device.starts_with('/') {
            host_paths.push(host_path(device));
            return None;
        }
        return Some(format!(
            "local volume bind of device {device:?} (not an absolute path) is not allowed"
        ));
    }
    match kind {
        "tmpfs" => None,
        "nfs" | "nfs4" => {
            let remote = flags.iter().any(|f| f.starts_with("addr="))
                || (device.contains(":/") && !device.starts_with('/'));
            if remote {
                None
            } else {
                Some(format!("local nfs volume without a remote address ({device:?})"))
            }
        }
        "cifs" | "smb3" => {
            if device.starts_with("//") && device.len() > 2 {
                None
            } else {
                Some(format!("local cifs volume device {device:?} is not //host/share"))
            }
        }
        _ => Some(format!(
            "local volume of type {kind:?} with device {device:?} mounts a host device or kernel filesystem"
        )),
    }
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
        // Options that keep dockerd's defaults are no facts: rules and globs see relaxations only.
        self.security_opts.extend(
            strings(get(hc, "securityopt"))
                .iter()
                .map(|o| security_opt(o))
                .filter(|o| {
                    !matches!(
                        o.as_str(),
                        "seccomp=default" | "apparmor=default" | "no-new-privileges=true"
                    )
                }),
        );
        if unmasks(get(hc, "maskedpaths"), DEFAULT_MASKED_PATHS)
            || unmasks(get(hc, "readonlypaths"), DEFAULT_READONLY_PATHS)
        {
            self.security_opts.push("systempaths=unconfined".into());
        }
        for bind in strings(get(hc, "binds")) {
            if let Some((src, _)) = bind_source(&bind) {
                self.host_paths.push(host_path(&src));
            }
        }
        // `container:X` shares another container's namespace; `VolumesFrom` its mounts.
        for key in ["networkmode", "pidmode", "ipcmode", "cgroup"] {
            if let Some(Value::String(m)) = get(hc, key) {
                // Sliced with `get`: the mode is user text, byte 10 may fall inside a character.
                let m = m.trim();
                match (m.get(..10), m.get(10..)) {
                    (Some(p), Some(x)) if p.eq_ignore_ascii_case("container:") && !x.is_empty() => {
                        self.shared_with.push(x.to_string());
                    }
                    _ => {}
                }
            }
        }
        self.shared_with.extend(
            strings(get(hc, "volumesfrom"))
                .iter()
                .map(|v| v.split(':').next().unwrap_or("").to_string()),
        );
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
            "volume" | "tmpfs" => {
                // A volume created on the fly carries its driver's options.
                if let Some(dc) = get(m, "volumeoptions").and_then(|o| get(o, "driverconfig")) {
                    self.add_volume_driver(get(dc, "name"), get(dc, "options"));
                }
            }
            // `bind`, and any other type (dockerd refuses unknown ones; `npipe`/`cluster` are
            // not for Linux hosts): a source is a host path.
            _ => {
                if !source.is_empty() {
                    self.host_paths.push(host_path(&source));
                }
                if kind != "bind" {
                    self.unsafe_volumes
                        .push(format!("mount type {kind:?} is not allowed"));
                }
            }
        }
    }

    /// A volume driver and its options, judged by [`volume_risk`].
    fn add_volume_driver(&mut self, driver: Option<&Value>, opts: Option<&Value>) {
        if let Some(risk) = volume_risk(driver, opts, &mut self.host_paths) {
            self.unsafe_volumes.push(risk);
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
            (!self.unsafe_volumes.is_empty(), present::UNSAFE_VOLUMES),
            (!self.shared_with.is_empty(), present::SHARED),
            (!self.unseen.is_empty(), present::UNSEEN),
        ] {
            if set {
                m |= bit;
            }
        }
        self.present = m;
        self
    }

    /// Take on the risk of a container this request shares or acts on: sharing a privileged
    /// container's PID namespace or exec-ing into a container with a host bind gives what that
    /// container has. `None`: the plugin has no record of `reference` (fail closed: unseen).
    pub fn absorb(&mut self, reference: &str, risk: Option<&Risk>) {
        let Some(r) = risk else {
            if !self.unseen.iter().any(|u| u == reference) {
                self.unseen.push(reference.to_string());
            }
            return;
        };
        self.privileged |= r.privileged;
        self.devices |= r.devices;
        for (have, add) in [
            (&mut self.caps, &r.caps),
            (&mut self.security_opts, &r.security_opts),
            (&mut self.host_paths, &r.host_paths),
            (&mut self.sysctls, &r.sysctls),
            (&mut self.unsafe_volumes, &r.unsafe_volumes),
            (&mut self.unseen, &r.unseen),
        ] {
            for a in add {
                if !have.contains(a) {
                    have.push(a.clone());
                }
            }
        }
        for ns in &r.host_namespaces {
            if let Some(n) = HOST_NAMESPACES.iter().find(|n| **n == ns.as_str()) {
                if !self.host_namespaces.contains(n) {
                    self.host_namespaces.push(n);
                }
            }
        }
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
                let task = get(body, "tasktemplate");
                // Swarm runs tasks with no further authz request: judge what they will get.
                let nets = strings_of_targets(task.and_then(|t| get(t, "networks")))
                    .into_iter()
                    .chain(strings_of_targets(get(body, "networks")));
                for n in nets {
                    if n == "host" && !f.host_namespaces.contains(&"network") {
                        f.host_namespaces.push("network");
                    }
                }
                if let Some(t) = task {
                    // A plugin task installs a plugin with the privileges it asks for.
                    let runtime = match get(t, "runtime") {
                        Some(Value::String(r)) => r.trim().to_ascii_lowercase(),
                        _ => String::new(),
                    };
                    if runtime == "plugin" || non_empty(get(t, "pluginspec")) {
                        f.privileged = true;
                    }
                    if let Some(g) = get(t, "resources")
                        .and_then(|r| get(r, "reservations"))
                        .and_then(|r| get(r, "genericresources"))
                    {
                        f.devices |= non_empty(Some(g));
                    }
                }
                if let Some(spec) = task.and_then(|t| get(t, "containerspec")) {
                    if let Some(p) = get(spec, "privileges") {
                        if let Some(se) = get(p, "selinuxcontext") {
                            if truthy(get(se, "disable")) {
                                f.security_opts.push("label=disable".into());
                            }
                            for k in ["user", "role", "type", "level"] {
                                if let Some(Value::String(v)) = get(se, k) {
                                    if !v.is_empty() {
                                        f.security_opts
                                            .push(format!("label={k}:{}", v.to_ascii_lowercase()));
                                    }
                                }
                            }
                        }
                        for (k, default) in [("seccomp", "seccomp"), ("apparmor", "apparmor")] {
                            let mode = get(p, k)
                                .and_then(|s| get(s, "mode"))
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_ascii_lowercase();
                            match mode.as_str() {
                                "" | "default" => {}
                                "unconfined" | "disabled" => {
                                    f.security_opts.push(format!("{default}=unconfined"))
                                }
                                _ => f.security_opts.push(format!("{default}=custom")),
                            }
                        }
                        if non_empty(get(p, "credentialspec")) {
                            f.security_opts.push("credentialspec=set".into());
                        }
                    }
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

/// `Target` of each entry of a service's `Networks`.
fn strings_of_targets(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|n| get(n, "target").and_then(Value::as_str))
            .map(|t| t.trim().to_string())
            .collect(),
        _ => Vec::new(),
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
        // Go's leniency: lone surrogates and invalid UTF-8 in strings become U+FFFD.
        let v = parse_strict(br#"{"e":["\ud800x","\udc00","\ud83d\ude00"]}"#).unwrap_or_default();
        assert_eq!(v["e"][0], "\u{fffd}x");
        assert_eq!(v["e"][1], "\u{fffd}");
        assert_eq!(v["e"][2], "\u{1F600}");
        let v = parse_strict(b"{\"e\":\"a\xffb\"}").unwrap_or_default();
        assert_eq!(v["e"], "a\u{fffd}b");
        assert!(parse_strict(br#"{"k\\":"\\ud800"}"#).is_ok());
        // Map keys are data: case variants are distinct, struct fields are not.
        let v = parse_strict(br#"{"Labels":{"a":"1","A":"2"}}"#).unwrap_or_default();
        assert_eq!(v["labels"]["A"], "2");
        assert!(parse_strict(br#"{"Labels":{"a":"1","a":"2"}}"#).is_err());
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
        // Another driver's path-like option names a host path too (outboard-volume type=bind).
        let v = parse_strict(
            br#"{"Driver":"outboard-volume","DriverOpts":{"type":"bind","path":"/etc"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            Facts::from_body("volume.create", &v).host_paths,
            vec!["/etc"]
        );
        let v =
            parse_strict(br#"{"Driver":"other","DriverOpts":{"size":"10G"}}"#).unwrap_or_default();
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
