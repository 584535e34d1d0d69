//! An in-memory recording fake of [`Sys`] for tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{DirUsage, FsInfo, Ownership, Sys};

/// In-memory fake: a tiny model of directories, mounts and a host tree with symlinks, plus a
/// log of every call. `fail_nth(n)` makes the n-th following call fail with `EIO`.
#[derive(Debug, Default)]
pub struct FakeSys {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<String>,
    dirs: BTreeMap<PathBuf, Ownership>,
    mounts: BTreeMap<PathBuf, String>,
    host_dirs: BTreeSet<String>,
    host_links: BTreeMap<String, String>,
    fail_in: Option<usize>,
    fs_type: String,
    host_paths: BTreeMap<PathBuf, String>,
}

impl FakeSys {
    /// Say that `inner` (a plugin path) is the host's `host_path`.
    pub fn set_host_path(&self, inner: &str, host_path: &str) {
        self.lock()
            .host_paths
            .insert(PathBuf::from(inner), host_path.to_string());
    }

    /// A fake with no directories, mounts or host paths.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the `n`-th call from now (1 = the next one) fail with `EIO`.
    pub fn fail_nth(&self, n: usize) {
        self.lock().fail_in = Some(n);
    }

    /// Every call so far, one line each (`op path …`).
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Forget the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Add an existing directory (e.g. the data root).
    pub fn add_dir(&self, path: &str) {
        self.lock().dirs.insert(path.into(), Ownership::default());
    }

    /// Remove a directory (simulate data lost behind the plugin's back).
    pub fn remove_dir(&self, path: &str) {
        self.lock().dirs.remove(Path::new(path));
    }

    /// Ownership recorded for a directory, if it exists.
    pub fn dir(&self, path: &str) -> Option<Ownership> {
        self.lock().dirs.get(Path::new(path)).copied()
    }

    /// Current mounts: target → description of what is mounted.
    pub fn mounts(&self) -> BTreeMap<PathBuf, String> {
        self.lock().mounts.clone()
    }

    /// Add a mount behind the plugin's back (a stale mount from a crash).
    pub fn add_mount(&self, target: &str, what: &str) {
        self.lock().mounts.insert(target.into(), what.into());
    }

    /// Add a host directory (as seen through the host root).
    pub fn add_host_dir(&self, path: &str) {
        self.lock().host_dirs.insert(path.into());
    }

    /// Add a host symlink `from` → absolute `to`.
    pub fn add_host_link(&self, from: &str, to: &str) {
        self.lock().host_links.insert(from.into(), to.into());
    }

    /// Set the filesystem type `fs_info` reports.
    pub fn set_fs_type(&self, t: &str) {
        self.lock().fs_type = t.into();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a call and decide whether it fails.
    fn call(&self, line: String) -> io::Result<std::sync::MutexGuard<'_, FakeState>> {
        let mut st = self.lock();
        st.calls.push(line.clone());
        if let Some(n) = st.fail_in {
            if n <= 1 {
                st.fail_in = None;
                return Err(io::Error::other(format!("injected failure: {line}")));
            }
            st.fail_in = Some(n - 1);
        }
        Ok(st)
    }

    fn resolve(st: &FakeState, path: &str) -> io::Result<String> {
        let mut parts: Vec<String> = Vec::new();
        let mut queue: Vec<String> = path.split('/').rev().map(String::from).collect();
        let mut hops = 0;
        while let Some(c) = queue.pop() {
            match c.as_str() {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                _ => {
                    parts.push(c);
                    let cur = format!("/{}", parts.join("/"));
                    if let Some(to) = st.host_links.get(&cur) {
                        hops += 1;
                        if hops > 40 {
                            return Err(io::Error::from_raw_os_error(libc::ELOOP));
                        }
                        if to.starts_with('/') {
                            parts.clear();
                        } else {
                            parts.pop();
                        }
                        queue.extend(to.split('/').rev().map(String::from));
                    }
                }
            }
        }
        let out = format!("/{}", parts.join("/"));
        if out == "/" || st.host_dirs.contains(&out) {
            Ok(out)
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
    }
}

fn own_str(o: Ownership) -> String {
    let f = |v: Option<u32>, octal: bool| match v {
        Some(v) if octal => format!("{v:o}"),
        Some(v) => v.to_string(),
        None => "-".into(),
    };
    format!(
        "uid={} gid={} mode={}",
        f(o.uid, false),
        f(o.gid, false),
        f(o.mode, true)
    )
}

impl Sys for FakeSys {
    fn make_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.call(format!("make_dir_all {}", path.display()))?;
        st.dirs.entry(path.into()).or_default();
        Ok(())
    }

    fn make_volume_dir(&self, path: &Path, own: Ownership) -> io::Result<bool> {
        let mut st = self.call(format!(
            "make_volume_dir {} {}",
            path.display(),
            own_str(own)
        ))?;
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !st.dirs.contains_key(&parent) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let existed = st.dirs.contains_key(path);
        st.dirs.insert(path.into(), own);
        Ok(existed)
    }

    fn remove_tree(&self, path: &Path) -> io::Result<()> {
        let mut st = self.call(format!("remove_tree {}", path.display()))?;
        st.dirs.retain(|d, _| !d.starts_with(path));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.call(format!("rename {} {}", from.display(), to.display()))?;
        if !st.dirs.contains_key(from) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let moved: Vec<(PathBuf, Ownership)> = st
            .dirs
            .iter()
            .filter(|(d, _)| d.starts_with(from))
            .map(|(d, o)| (d.clone(), *o))
            .collect();
        for (d, o) in moved {
            st.dirs.remove(&d);
            let rest = d
                .strip_prefix(from)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            st.dirs.insert(to.join(rest), o);
        }
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().dirs.contains_key(path))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        Ok(st
            .dirs
            .keys()
            .filter(|d| d.parent() == Some(path))
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn bind(&self, source: &Path, target: &Path) -> io::Result<()> {
        let mut st = self.call(format!("bind {} {}", source.display(), target.display()))?;
        if !st.dirs.contains_key(source) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        st.mounts
            .insert(target.into(), format!("bind {}", source.display()));
        Ok(())
    }

    fn bind_host_dir(&self, root: &Path, host_path: &str, target: &Path) -> io::Result<()> {
        let mut st = self.call(format!(
            "bind_host_dir {} {host_path} {}",
            root.display(),
            target.display()
        ))?;
        if Self::resolve(&st, host_path)? != host_path {
            return Err(io::Error::other("host path now resolves elsewhere"));
        }
        st.mounts
            .insert(target.into(), format!("bind host:{host_path}"));
        Ok(())
    }

    fn mount_tmpfs(&self, target: &Path, size: Option<u64>, own: Ownership) -> io::Result<()> {
        let mut st = self.call(format!(
            "mount_tmpfs {} size={} {}",
            target.display(),
            size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            own_str(own)
        ))?;
        st.mounts.insert(target.into(), "tmpfs".into());
        Ok(())
    }

    fn release_mountpoint(&self, target: &Path) -> io::Result<()> {
        let mut st = self.call(format!("release_mountpoint {}", target.display()))?;
        st.mounts.remove(target);
        Ok(())
    }

    fn host_path_of(&self, inner: &Path, _host_root: &Path) -> io::Result<Option<String>> {
        Ok(self.lock().host_paths.get(inner).cloned())
    }

    fn mounts_under(&self, root: &Path) -> io::Result<BTreeSet<PathBuf>> {
        let st = self.lock();
        Ok(st
            .mounts
            .keys()
            .filter(|m| m.starts_with(root) && m.as_path() != root)
            .cloned()
            .collect())
    }

    fn fs_info(&self, path: &Path) -> io::Result<FsInfo> {
        let st = self.lock();
        let tmpfs = st.mounts.get(path).is_some_and(|m| m == "tmpfs");
        Ok(FsInfo {
            fs_type: if tmpfs {
                "tmpfs".into()
            } else if st.fs_type.is_empty() {
                "ext4".into()
            } else {
                st.fs_type.clone()
            },
            total: 1 << 30,
            used: 4096,
        })
    }

    fn dir_usage(&self, path: &Path, _max_entries: u64) -> io::Result<DirUsage> {
        let st = self.lock();
        let entries = st.dirs.keys().filter(|d| d.starts_with(path)).count() as u64;
        Ok(DirUsage {
            bytes: entries * 4096,
            entries,
            complete: true,
        })
    }

    fn resolve_in_root(&self, _root: &Path, path: &str) -> io::Result<String> {
        let st = self.lock();
        Self::resolve(&st, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_resolves_links_and_dotdot() {
        let f = FakeSys::new();
        f.add_host_dir("/srv");
        f.add_host_dir("/srv/data");
        f.add_host_dir("/etc");
        f.add_host_link("/srv/escape", "/etc");
        let root = Path::new("/host");
        assert_eq!(f.resolve_in_root(root, "/srv/data/").unwrap(), "/srv/data");
        assert_eq!(
            f.resolve_in_root(root, "/srv/data/../../etc").unwrap(),
            "/etc"
        );
        assert_eq!(f.resolve_in_root(root, "/srv/escape").unwrap(), "/etc");
        assert_eq!(f.resolve_in_root(root, "/../../srv").unwrap(), "/srv");
        assert!(f.resolve_in_root(root, "/nope").is_err());
    }

    #[test]
    fn fake_fails_the_nth_call() {
        let f = FakeSys::new();
        f.fail_nth(2);
        assert!(f.make_dir_all(Path::new("/a")).is_ok());
        assert!(f.make_dir_all(Path::new("/b")).is_err());
        assert!(f.make_dir_all(Path::new("/c")).is_ok());
        assert_eq!(f.calls().len(), 3);
    }
}
