//! [`FakeSys`]: a recording fake for unit tests and the fuzz targets.

use std::io;
use std::path::Path;
use std::sync::Mutex;

use super::{Stamp, Sys};

/// A recording fake for unit tests.
#[derive(Debug, Default)]
pub struct FakeSys {
    /// Current policy text (`None`: the file does not exist).
    pub policy: Mutex<Option<(String, u64)>>,
    /// Audit lines written.
    pub audit: Mutex<Vec<String>>,
    /// Fail audit writes.
    pub fail_audit: std::sync::atomic::AtomicBool,
    /// The ID to report.
    pub id: Option<String>,
}

impl FakeSys {
    /// Replace the policy text (bumps the stamp).
    pub fn set_policy(&self, text: &str) {
        let mut g = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        let gen = g.as_ref().map_or(1, |(_, n)| n + 1);
        *g = Some((text.to_string(), gen));
    }

    /// Audit lines so far.
    pub fn audit_lines(&self) -> Vec<String> {
        self.audit.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Sys for FakeSys {
    fn policy_stamp(&self, _path: &Path) -> io::Result<Stamp> {
        let g = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        match &*g {
            Some((t, n)) => Ok(Stamp {
                mtime: None,
                len: t.len() as u64,
                ino: *n,
            }),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn read_policy(&self, _path: &Path) -> io::Result<Vec<u8>> {
        let g = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        match &*g {
            Some((t, _)) => Ok(t.as_bytes().to_vec()),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn append_audit(&self, line: &str, _urgent: bool) -> io::Result<()> {
        if self.fail_audit.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(io::Error::other("injected audit failure"));
        }
        self.audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line.to_string());
        Ok(())
    }

    fn flush_log(&self) {}

    fn self_id(&self) -> Option<String> {
        self.id.clone()
    }
}
