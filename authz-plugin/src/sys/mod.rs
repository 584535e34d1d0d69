//! The plugin's side effects, behind one small trait: reading the policy file, appending audit
//! lines, learning our own plugin ID. [`RealSys`] (`real.rs`) touches the filesystem; `FakeSys`
//! (`fake.rs`, compiled only for tests and the `testing` feature the fuzz targets use, never into
//! the release binary) records and can be told to fail.

#[cfg(any(test, feature = "testing"))]
mod fake;
mod real;

#[cfg(any(test, feature = "testing"))]
pub use fake::FakeSys;
pub use real::{plugin_id_from_mountinfo, RealSys};

use std::io;
use std::path::Path;
use std::time::SystemTime;

use crate::hostfs::HostFs;

/// Identity of one version of the policy file (changes when the file is edited or replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Modification time.
    pub mtime: Option<SystemTime>,
    /// Size in bytes.
    pub len: u64,
    /// Inode number (changes on rename-over).
    pub ino: u64,
}

/// What the service needs from the outside world.
pub trait Sys: Send + Sync + 'static {
    /// Cheap identity of the policy file, to notice edits without reading it.
    fn policy_stamp(&self, path: &Path) -> io::Result<Stamp>;
    /// The policy file's bytes.
    fn read_policy(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Queue one audit line (without the newline) for the audit file and the plugin log; an
    /// `urgent` line (a denial) is written to the file before this returns, with all before it.
    fn append_audit(&self, line: &str, urgent: bool) -> io::Result<()>;
    /// Write the queued audit lines to the file and to the plugin log (stdout, which dockerd
    /// collects).
    fn flush_log(&self);
    /// Our managed-plugin ID, if it can be learnt.
    fn self_id(&self) -> Option<String>;
    /// Close the audit file; the next write opens the path again (SIGHUP, after rotation).
    fn reopen_audit(&self) {}
    /// The host's filesystem, read-only, to resolve bind sources (`None`: not mounted).
    fn host_fs(&self) -> Option<&dyn HostFs> {
        None
    }
}
