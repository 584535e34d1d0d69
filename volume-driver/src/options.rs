//! Validation of what users type: volume names and `-o key=value` options.
//!
//! Pure functions: nothing here touches the filesystem. A name that passes [`validate_name`] is a
//! single safe path component; an option set that passes [`parse_options`] is a [`Spec`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::VolumeError;

/// Longest accepted volume name, in bytes (leaves room under NAME_MAX and PATH_MAX).
pub const MAX_NAME_LEN: usize = 200;

/// Largest `size` accepted (1 PiB): bigger is a typo, not a plan.
pub const MAX_SIZE: u64 = 1 << 50;

const NAME_RULE: &str = "use 1-200 characters from A-Z a-z 0-9 _ . - not starting with '.' or '-'";

/// Check that `name` is safe as one path component and a sensible volume name.
pub fn validate_name(name: &str) -> Result<(), VolumeError> {
    let bad = |reason: &str| VolumeError::InvalidName {
        name: name.to_string(),
        reason: format!("{reason}; {NAME_RULE}"),
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(&format!("the name is {} bytes long", name.len())));
    }
    if name.contains('\0') {
        return Err(bad("the name contains a NUL byte"));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(bad("the name contains a path separator"));
    }
    if name.contains("..") {
        return Err(bad("the name contains '..'"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(bad("the name starts with '.' or '-'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(bad(&format!("the name contains {c:?}")));
    }
    Ok(())
}

/// Where a volume's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A directory under the plugin's data root (default).
    Dir,
    /// A tmpfs mounted while the volume is in use.
    Tmpfs,
    /// An existing host directory under an allowed prefix.
    Bind,
}

impl Kind {
    /// The `type=` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Tmpfs => "tmpfs",
            Kind::Bind => "bind",
        }
    }

    /// The option keys this backend accepts.
    pub fn valid_options(self) -> &'static [&'static str] {
        match self {
            Kind::Dir => &["type", "uid", "gid", "mode", "size"],
            Kind::Tmpfs => &["type", "uid", "gid", "mode", "size"],
            Kind::Bind => &["type", "path"],
        }
    }
}

/// A validated volume specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Backend.
    pub kind: Kind,
    /// Owner applied at creation (dir) or at mount (tmpfs).
    pub uid: Option<u32>,
    /// Group applied at creation (dir) or at mount (tmpfs).
    pub gid: Option<u32>,
    /// Permission bits of the volume's root directory.
    pub mode: Option<u32>,
    /// Size limit in bytes.
    pub size: Option<u64>,
    /// Host path (bind), as given; the service resolves it.
    pub path: Option<String>,
}

/// Parse `-o` options. Unknown keys and malformed values are errors naming the option.
pub fn parse_options(opts: &BTreeMap<String, String>) -> Result<Spec, VolumeError> {
    let kind = match opts.get("type").map(String::as_str) {
        None | Some("dir") => Kind::Dir,
        Some("tmpfs") => Kind::Tmpfs,
        Some("bind") => Kind::Bind,
        Some(other) => {
            return Err(VolumeError::InvalidOption {
                option: "type".into(),
                value: other.into(),
                reason: "valid types: dir (default), tmpfs, bind".into(),
            })
        }
    };
    let valid = kind.valid_options();
    if let Some(key) = opts.keys().find(|k| !valid.contains(&k.as_str())) {
        return Err(VolumeError::UnknownOption {
            option: key.clone(),
            backend: kind.as_str(),
            valid: valid.join(", "),
        });
    }
    let mut spec = Spec {
        kind,
        uid: None,
        gid: None,
        mode: None,
        size: None,
        path: None,
    };
    for (key, value) in opts {
        let invalid = |reason: &str| VolumeError::InvalidOption {
            option: key.clone(),
            value: value.clone(),
            reason: reason.into(),
        };
        match key.as_str() {
            "uid" | "gid" => {
                let id = value
                    .parse::<u32>()
                    .ok()
                    .filter(|id| *id != u32::MAX)
                    .ok_or_else(|| invalid("a numeric id from 0 to 4294967294"))?;
                if key == "uid" {
                    spec.uid = Some(id);
                } else {
                    spec.gid = Some(id);
                }
            }
            "mode" => spec.mode = Some(parse_mode(value).ok_or_else(|| invalid("octal permission bits from 0 to 7777, e.g. 0750"))?),
            "size" => spec.size = Some(parse_size(value).ok_or_else(|| invalid("a positive byte count up to 1P with an optional suffix k, m, g, t, p (powers of 1024), e.g. 64m"))?),
            "path" => {
                if !value.starts_with('/') || value.contains('\0') {
                    return Err(invalid("an absolute host path"));
                }
                spec.path = Some(value.clone());
            }
            _ => {}
        }
    }
    if kind == Kind::Bind && spec.path.is_none() {
        return Err(VolumeError::InvalidOption {
            option: "path".into(),
            value: String::new(),
            reason: "type=bind needs -o path=/host/directory".into(),
        });
    }
    Ok(spec)
}

/// Octal mode: `750`, `0750`, `0o750`; at most `7777`.
pub fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

/// Byte count with an optional binary suffix: `65536`, `64k`, `64m`, `1G`, `1.5g`, `64MiB`, `64MB`.
pub fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return None;
    }
    let bytes = if num.contains('.') {
        let f: f64 = num.parse().ok()?;
        let b = f * mult as f64;
        if !b.is_finite() || b > MAX_SIZE as f64 {
            return None;
        }
        b as u64
    } else {
        num.parse::<u64>().ok()?.checked_mul(mult)?
    };
    (bytes > 0 && bytes <= MAX_SIZE).then_some(bytes)
}

/// Format a byte count for humans (`64.0MiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

/// A volume name that passed [`validate_name`]: safe as one path component. Made at the HTTP
/// edge; the service takes nothing else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeName(String);

impl TryFrom<String> for VolumeName {
    type Error = VolumeError;
    fn try_from(name: String) -> Result<Self, VolumeError> {
        validate_name(&name)?;
        Ok(Self(name))
    }
}

impl TryFrom<&str> for VolumeName {
    type Error = VolumeError;
    fn try_from(name: &str) -> Result<Self, VolumeError> {
        Self::try_from(name.to_string())
    }
}

impl std::ops::Deref for VolumeName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VolumeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The caller of a `Mount`/`Unmount` (dockerd's mount ID), recorded per mount reference:
/// empty or huge ones are refused (dockerd sends 64 hex characters; other callers get room,
/// but not megabytes in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId(String);

impl TryFrom<String> for CallerId {
    type Error = VolumeError;
    fn try_from(id: String) -> Result<Self, VolumeError> {
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(VolumeError::InvalidId { len: id.len() });
        }
        Ok(Self(id))
    }
}

impl TryFrom<&str> for CallerId {
    type Error = VolumeError;
    fn try_from(id: &str) -> Result<Self, VolumeError> {
        Self::try_from(id.to_string())
    }
}

impl std::ops::Deref for CallerId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names() {
        for ok in [
            "v1",
            "a",
            "my_vol.2-x",
            &"f".repeat(64),
            &"a".repeat(MAX_NAME_LEN),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("a/b", "separator"),
            ("../etc", "separator"),
            ("..", "'..'"),
            ("a..b", "'..'"),
            (".hidden", "starts with"),
            ("-rf", "starts with"),
            ("a\0b", "NUL"),
            ("a b", "' '"),
            ("é", "'é'"),
            (&"a".repeat(MAX_NAME_LEN + 1), "bytes long"),
        ] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("invalid volume name"), "{e}");
        }
    }

    #[test]
    fn defaults_to_dir() {
        let s = parse_options(&BTreeMap::new()).unwrap();
        assert_eq!(s.kind, Kind::Dir);
        assert_eq!(s.uid, None);
    }

    #[test]
    fn full_dir_spec() {
        let s =
            parse_options(&opts(&[("uid", "1000"), ("gid", "1001"), ("mode", "0750")])).unwrap();
        assert_eq!(
            (s.uid, s.gid, s.mode),
            (Some(1000), Some(1001), Some(0o750))
        );
    }

    #[test]
    fn unknown_option_names_it_and_lists_valid() {
        let e = parse_options(&opts(&[("colour", "red")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"colour\""), "{e}");
        assert!(e.contains("type, uid, gid, mode, size"), "{e}");
        let e = parse_options(&opts(&[("type", "bind"), ("path", "/srv"), ("uid", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"uid\"") && e.contains("type=bind") && e.contains("type, path"),
            "{e}"
        );
    }

    #[test]
    fn malformed_values() {
        for (k, v, needle) in [
            ("uid", "abc", "numeric id"),
            ("uid", "-1", "numeric id"),
            ("gid", "4294967295", "numeric id"),
            ("mode", "999", "octal"),
            ("mode", "17777", "octal"),
            ("mode", "", "octal"),
            ("size", "lots", "byte count"),
            ("size", "0", "byte count"),
            ("size", "10x", "byte count"),
            ("size", "-5m", "byte count"),
            ("size", "2000p", "byte count"),
            ("type", "nfs", "dir (default), tmpfs, bind"),
        ] {
            let e = parse_options(&opts(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(needle), "{k}={v}: {e}");
        }
        let e = parse_options(&opts(&[("type", "bind"), ("path", "rel/dir")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
        let e = parse_options(&opts(&[("type", "bind")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("path="), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("1p"), Some(MAX_SIZE));
        for bad in [
            "",
            "m",
            "1.",
            ".5m",
            "1..2m",
            "1e3",
            "18446744073709551615k",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(human_size(64 << 20), "64.0MiB");
        assert_eq!(human_size(10), "10B");
    }

    proptest::proptest! {
        /// Whatever dockerd sends, an accepted name is one plain path component.
        #[test]
        fn accepted_names_are_single_safe_components(name in "\\PC{0,40}|[a-z./\\\\-]{0,12}") {
            if validate_name(&name).is_ok() {
                let p = std::path::Path::new("/data").join(&name);
                proptest::prop_assert_eq!(p.parent(), Some(std::path::Path::new("/data")));
                proptest::prop_assert!(!name.contains(".."));
                proptest::prop_assert!(!name.starts_with('.'));
                proptest::prop_assert!(name.len() <= MAX_NAME_LEN);
            }
        }

        /// Sizes either parse to a positive count within the cap or are refused; never panic.
        #[test]
        fn sizes_never_panic(s in "[0-9.]{0,25}[kmgtpbiKMGTPBI]{0,3}") {
            if let Some(n) = parse_size(&s) {
                proptest::prop_assert!(n > 0 && n <= MAX_SIZE);
            }
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("750"), Some(0o750));
        assert_eq!(parse_mode("0o1777"), Some(0o1777));
        assert_eq!(parse_mode("8"), None);
        assert_eq!(parse_mode("0o"), None);
    }
}
