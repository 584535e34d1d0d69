//! `/proc/self/mountinfo`, parsed once for every plugin that needs to know what is mounted
//! where (the volume driver's mounts under its roots, the authz plugin's own ID).
//! Format: proc(5); fields are separated by single spaces and escape space, tab, newline and
//! backslash as 3-digit octal (`\040`).

use std::path::PathBuf;

/// One line of mountinfo: the fields the plugins use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the filesystem (field 3).
    pub device: String,
    /// The directory of that filesystem mounted here (field 4), unescaped.
    pub root: PathBuf,
    /// Where it is mounted (field 5), unescaped.
    pub mount_point: PathBuf,
}

/// Every well-formed line of a mountinfo text, in order (later lines are mounted on top).
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ').skip(2);
            Some(MountEntry {
                device: f.next()?.to_string(),
                root: PathBuf::from(unescape(f.next()?)),
                mount_point: PathBuf::from(unescape(f.next()?)),
            })
        })
        .collect()
}

/// Undo the octal escapes (`\040` for a space) of a mountinfo field.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unescaped() {
        let text = "36 35 98:0 /mnt\\040a /data/x\\134y rw,noatime master:1 - ext3 /dev/root rw\n\
                    short line\n";
        let got = parse(text);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].device, "98:0");
        assert_eq!(got[0].root, PathBuf::from("/mnt a"));
        assert_eq!(got[0].mount_point, PathBuf::from("/data/x\\y"));
    }

    #[test]
    fn a_backslash_without_three_octal_digits_stays() {
        assert_eq!(unescape("a\\09b\\"), "a\\09b\\");
        assert_eq!(unescape("\\011"), "\t");
    }
}
