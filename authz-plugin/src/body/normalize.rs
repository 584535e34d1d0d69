//! Single values as dockerd applies them (each cites the moby function it follows):
//! capabilities, security options, masked paths, bind sources, volume options, host paths,
//! image names.

use super::*;

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
