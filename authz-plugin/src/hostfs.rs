//! Bind sources resolved on the host. dockerd cleans a bind source lexically (moby
//! `volume/mounts/linux_parser.go`: `path.Clean`), then the kernel follows every symbolic link in
//! it when it mounts. A link planted inside an allowed directory (e.g. through
//! `PUT /containers/{id}/archive` into a container that binds it) would make dockerd bind the
//! link's target, so the plugin resolves each source the way the kernel will, component by
//! component, against the host's filesystem (seen read-only at `HOST_ROOT`), and the policy
//! judges the resolved path.
//!
//! What stays: the check happens before dockerd mounts, so a link planted between the check and
//! the mount is not seen (check-to-use race). Roots containers can write to are the way to plant
//! one, which is why roots are bound read-only unless a policy marks them writable.

use std::io;
use std::path::PathBuf;

use crate::route::clean_path;

/// What one host path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Nothing there (dockerd creates missing bind sources as directories).
    Missing,
    /// A symbolic link with this target.
    Link(String),
    /// A directory, file or device.
    Other,
}

/// Read access to the host's filesystem (never follows the last component).
pub trait HostFs: std::fmt::Debug + Send + Sync {
    /// `lstat` (and `readlink`) one absolute host path whose parent holds no links.
    fn probe(&self, host_path: &str) -> io::Result<Entry>;
}

/// Links followed at most while resolving one path (Linux's `MAXSYMLINKS` is 40).
pub const MAX_LINKS: usize = 40;

/// Resolve `path` (absolute) as the kernel will: lexically cleaned first (as dockerd does),
/// then every link followed, `..` after a link taken from where the link led. A missing
/// component ends the walk (the rest is created by dockerd as plain directories). Refused:
/// too many links, a link under `/proc` (magic links name other processes' roots and files),
/// and any error reading the host.
pub fn resolve(fs: &dyn HostFs, path: &str) -> Result<String, String> {
    let cleaned = clean_path(path);
    let mut todo: Vec<String> = cleaned
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let candidate = format!("/{}", join(&done, &c));
        let entry = fs
            .probe(&candidate)
            .map_err(|e| format!("cannot read host path {candidate:?}: {e}"))?;
        match entry {
            Entry::Other => done.push(c),
            Entry::Missing => {
                done.push(c);
                while let Some(r) = todo.pop() {
                    match r.as_str() {
                        "" | "." => {}
                        ".." => {
                            done.pop();
                        }
                        _ => done.push(r),
                    }
                }
            }
            Entry::Link(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(format!("too many symbolic links in {path:?}"));
                }
                if candidate == "/proc" || candidate.starts_with("/proc/") {
                    return Err(format!(
                        "{path:?} goes through the link {candidate:?} under /proc"
                    ));
                }
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(String::from),
                );
            }
        }
    }
    Ok(format!("/{}", done.join("/")))
}

fn join(done: &[String], c: &str) -> String {
    if done.is_empty() {
        c.to_string()
    } else {
        format!("{}/{c}", done.join("/"))
    }
}

/// The host's root as mounted into the plugin (`HOST_ROOT`, the `hostfs` mount).
#[derive(Debug)]
pub struct RealHostFs {
    root: PathBuf,
    /// Whether `root` shows a host's root at all (it has `proc`); if not, every path would look
    /// missing and pass unresolved, so every probe fails instead.
    mounted: bool,
}

impl RealHostFs {
    /// The host's `/` is seen at `root`.
    pub fn new(root: PathBuf) -> Self {
        let mounted = root.join("proc").is_dir();
        Self { root, mounted }
    }
}

impl HostFs for RealHostFs {
    fn probe(&self, host_path: &str) -> io::Result<Entry> {
        if !self.mounted {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the host's filesystem is not mounted at {}",
                    self.root.display()
                ),
            ));
        }
        let p = self.root.join(host_path.trim_start_matches('/'));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let t = std::fs::read_link(&p)?;
                match t.to_str() {
                    Some(s) => Ok(Entry::Link(s.to_string())),
                    None => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "link target is not UTF-8",
                    )),
                }
            }
            Ok(_) => Ok(Entry::Other),
            // ENOTDIR: a file in the middle; dockerd's mkdir fails there, nothing is bound.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
                Ok(Entry::Missing)
            }
            Err(e) => Err(e),
        }
    }
}

/// A host filesystem given as a table (tests and the corpus): paths not listed are
/// directories when some listed path lies below them, missing otherwise.
#[derive(Debug, Default)]
pub struct MapFs {
    /// `(path, entry)`.
    pub entries: Vec<(String, Entry)>,
}

impl HostFs for MapFs {
    fn probe(&self, host_path: &str) -> io::Result<Entry> {
        if let Some((_, e)) = self.entries.iter().find(|(p, _)| p == host_path) {
            return Ok(e.clone());
        }
        let below = format!("{host_path}/");
        if self.entries.iter().any(|(p, _)| p.starts_with(&below)) {
            Ok(Entry::Other)
        } else {
            Ok(Entry::Missing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> MapFs {
        let link = |p: &str, t: &str| (p.to_string(), Entry::Link(t.to_string()));
        MapFs {
            entries: vec![
                ("/srv/containers/data".into(), Entry::Other),
                link("/srv/containers/etc", "/etc"),
                link("/srv/containers/up", "../.."),
                link("/srv/containers/rel", "data/sub"),
                link("/srv/containers/loop", "loop"),
                link("/srv/containers/viaproc", "/proc/self/root/etc"),
                link("/proc/self", "4242"),
                link("/srv/containers/twice", "/srv/containers/etc"),
                link("/srv/containers/back", "/etc/../srv/containers/data"),
                ("/etc".into(), Entry::Other),
            ],
        }
    }

    #[test]
    fn resolves_like_the_kernel() {
        let f = fs();
        let r = |p: &str| resolve(&f, p);
        assert_eq!(
            r("/srv/containers/data/x"),
            Ok("/srv/containers/data/x".into())
        );
        assert_eq!(r("/srv/containers/etc"), Ok("/etc".into()));
        assert_eq!(r("/srv/containers/etc/shadow"), Ok("/etc/shadow".into()));
        assert_eq!(r("/srv/containers/up/etc"), Ok("/etc".into()));
        assert_eq!(
            r("/srv/containers/rel"),
            Ok("/srv/containers/data/sub".into())
        );
        assert_eq!(r("/srv/containers/twice"), Ok("/etc".into()));
        assert_eq!(r("/srv/containers/back"), Ok("/srv/containers/data".into()));
        // dockerd cleans lexically before the kernel resolves: `etc/..` is gone first.
        assert_eq!(
            r("/srv/containers/etc/../data"),
            Ok("/srv/containers/data".into())
        );
        assert_eq!(
            r("/srv/containers/new/dir"),
            Ok("/srv/containers/new/dir".into())
        );
        assert!(r("/srv/containers/loop").is_err_and(|e| e.contains("too many")));
        assert!(r("/srv/containers/viaproc").is_err_and(|e| e.contains("/proc")));
        assert!(r("/proc/self/root").is_err());
        assert_eq!(r("/"), Ok("/".into()));
    }

    #[test]
    fn real_host_fs() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let root = dir.path();
        let mk = |p: &str| std::fs::create_dir_all(root.join(p)).is_ok();
        assert!(
            resolve(&RealHostFs::new(root.to_path_buf()), "/srv").is_err(),
            "not mounted"
        );
        assert!(mk("srv/containers/data") && mk("etc") && mk("proc"));
        assert!(std::os::unix::fs::symlink("/etc", root.join("srv/containers/etc")).is_ok());
        assert!(std::fs::write(root.join("srv/containers/file"), b"x").is_ok());
        let f = RealHostFs::new(root.to_path_buf());
        assert_eq!(
            resolve(&f, "/srv/containers/etc/passwd"),
            Ok("/etc/passwd".into())
        );
        assert_eq!(
            resolve(&f, "/srv/containers/data"),
            Ok("/srv/containers/data".into())
        );
        assert_eq!(
            resolve(&f, "/srv/containers/file/x"),
            Ok("/srv/containers/file/x".into())
        );
    }
}
