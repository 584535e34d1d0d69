//! The operating-system side of the volume driver, behind one small trait at the level of intent
//! (make a volume directory, bind it, mount a tmpfs, release a mount point, measure usage, resolve
//! a host path). `real.rs` ([`LinuxSys`]) is the real implementation (nix syscalls, never a
//! shell); `fake.rs` (`FakeSys`, tests and the `testing` feature only) is an in-memory recording
//! fake that can fail the Nth call. Nothing here decides anything: the service does.

#[cfg(any(test, feature = "testing"))]
mod fake;
pub mod real;

#[cfg(any(test, feature = "testing"))]
pub use fake::FakeSys;
pub use real::LinuxSys;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

/// Owner and permission bits to apply to a directory or tmpfs root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Owner uid (unchanged when `None`).
    pub uid: Option<u32>,
    /// Owner gid (unchanged when `None`).
    pub gid: Option<u32>,
    /// Permission bits (unchanged when `None`).
    pub mode: Option<u32>,
}

/// Filesystem-wide figures from `statfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    /// Filesystem type name (`tmpfs`, `ext4`, …).
    pub fs_type: String,
    /// Total bytes.
    pub total: u64,
    /// Used bytes.
    pub used: u64,
}

/// Result of a bounded directory walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirUsage {
    /// Allocated bytes of everything counted.
    pub bytes: u64,
    /// Entries counted.
    pub entries: u64,
    /// False when the walk stopped at its entry limit (the figures are then a lower bound).
    pub complete: bool,
}

/// What the volume driver needs from the OS.
pub trait Sys: Send + Sync + 'static {
    /// Create `path` and its parents if missing (plugin-owned roots such as the data directory).
    fn make_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Create the single directory `path` (its parent must exist) if missing, then apply `own`.
    /// Returns whether it already existed.
    fn make_volume_dir(&self, path: &Path, own: Ownership) -> io::Result<bool>;
    /// Delete `path` and everything below it without following symlinks; missing is fine.
    fn remove_tree(&self, path: &Path) -> io::Result<()>;
    /// Rename `from` to `to` (same filesystem; used to move a removed volume's data aside).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// Names of the entries of directory `path`.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Bind-mount directory `source` on `target` (created if missing).
    fn bind(&self, source: &Path, target: &Path) -> io::Result<()>;
    /// Resolve `host_path` inside `root` (symlinks and `..` cannot leave it), check it still
    /// resolves to `host_path`, and bind that exact directory on `target` (created if missing).
    fn bind_host_dir(&self, root: &Path, host_path: &str, target: &Path) -> io::Result<()>;
    /// Mount a fresh tmpfs on `target` (created if missing).
    fn mount_tmpfs(&self, target: &Path, size: Option<u64>, own: Ownership) -> io::Result<()>;
    /// Unmount everything stacked on `target` (lazily: users keep their view) and remove the
    /// then-empty directory. Not mounted or missing is fine.
    fn release_mountpoint(&self, target: &Path) -> io::Result<()>;
    /// Mount points strictly below `root`, from `/proc/self/mountinfo`.
    fn mounts_under(&self, root: &Path) -> io::Result<BTreeSet<PathBuf>>;
    /// The host path of `inner` (inside the plugin) as seen below `host_root`, if that
    /// filesystem is visible there (from `/proc/self/mountinfo`).
    fn host_path_of(&self, inner: &Path, host_root: &Path) -> io::Result<Option<String>>;
    /// `statfs` figures of the filesystem holding `path`.
    fn fs_info(&self, path: &Path) -> io::Result<FsInfo>;
    /// Walk `path` (not crossing filesystems, not following symlinks) counting at most
    /// `max_entries` entries.
    fn dir_usage(&self, path: &Path, max_entries: u64) -> io::Result<DirUsage>;
    /// Resolve `path` as if `root` were `/` (openat2 `RESOLVE_IN_ROOT`): returns the absolute
    /// path relative to `root` of the directory it names.
    fn resolve_in_root(&self, root: &Path, path: &str) -> io::Result<String>;
}
