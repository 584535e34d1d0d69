//! [`RealSys`]: the policy file, the audit file and the plugin log on the real filesystem.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Stamp, Sys};
use crate::hostfs::{HostFs, RealHostFs};

/// The real filesystem.
#[derive(Debug)]
pub struct RealSys {
    audit_path: Option<PathBuf>,
    audit: Mutex<Option<File>>,
    file_buf: Mutex<Vec<u8>>,
    log_buf: Mutex<Vec<u8>>,
    plugin_log: bool,
    /// Rotate the audit file to `<path>.1` once it reaches this size (0: never).
    max_bytes: u64,
    host: Option<RealHostFs>,
}

/// Queued plugin-log bytes past which a line flushes at once.
const LOG_BUF_MAX: usize = 64 << 10;

impl RealSys {
    /// Audit lines go to `audit_path` (if any) and, with `plugin_log`, to the plugin log.
    pub fn new(audit_path: Option<PathBuf>, plugin_log: bool) -> Self {
        Self {
            audit_path,
            audit: Mutex::new(None),
            file_buf: Mutex::new(Vec::new()),
            log_buf: Mutex::new(Vec::new()),
            plugin_log,
            max_bytes: 0,
            host: None,
        }
    }

    /// Rotate the audit file to `<path>.1` when it reaches `max_bytes` (0: never).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Resolve bind sources against the host's `/` seen at `root`.
    pub fn with_host_root(mut self, root: PathBuf) -> Self {
        self.host = Some(RealHostFs::new(root));
        self
    }
}

/// Whether the open audit file is no longer the one at `path` (logrotate `create` renamed it,
/// or it was deleted): then the path is opened (created) again. `copytruncate` needs nothing:
/// the file is O_APPEND, so writes land at its new end.
fn moved_away(open: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (open.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev() || a.ino() != b.ino(),
        _ => true,
    }
}

impl RealSys {
    /// Write the queued file lines: one write(2) on an O_APPEND file, so batches never
    /// interleave. The file lock is taken first and held while writing, so batches keep their
    /// order.
    fn write_file(&self) -> io::Result<()> {
        let Some(path) = &self.audit_path else {
            return Ok(());
        };
        let mut guard = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = std::mem::take(&mut *self.file_buf.lock().unwrap_or_else(|p| p.into_inner()));
        if bytes.is_empty() {
            return Ok(());
        }
        if guard.as_ref().is_some_and(|f| moved_away(f, path)) {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(OpenOptions::new().create(true).append(true).open(path)?);
        }
        let res = guard
            .as_mut()
            .map(|f| f.write_all(&bytes))
            .unwrap_or(Ok(()));
        if res.is_err() {
            // Reopen next time (the directory may have been replaced).
            *guard = None;
        }
        let full = self.max_bytes > 0
            && guard
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .is_some_and(|m| m.len() >= self.max_bytes);
        if full {
            // Size cap: the full file becomes `<path>.1` (replacing an older one); the next
            // write starts a new file.
            let mut rotated = path.as_os_str().to_owned();
            rotated.push(".1");
            match std::fs::rename(path, &rotated) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "audit file reached AUDIT_MAX_BYTES: rotated to .1")
                }
                Err(e) => tracing::warn!("cannot rotate the audit file: {e}"),
            }
            *guard = None;
        }
        res
    }

    fn write_log(&self) {
        let bytes = std::mem::take(&mut *self.log_buf.lock().unwrap_or_else(|p| p.into_inner()));
        if !bytes.is_empty() {
            // One write for the batch; a failing stdout must not fail decisions.
            let _ = io::stdout().lock().write_all(&bytes);
        }
    }
}

impl Sys for RealSys {
    fn policy_stamp(&self, path: &Path) -> io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            mtime: m.modified().ok(),
            len: m.len(),
            ino: m.ino(),
        })
    }

    fn read_policy(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn append_audit(&self, line: &str, urgent: bool) -> io::Result<()> {
        let log_full = self.plugin_log && {
            let mut buf = self.log_buf.lock().unwrap_or_else(|p| p.into_inner());
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            buf.len() > LOG_BUF_MAX
        };
        if log_full {
            self.write_log();
        }
        if self.audit_path.is_none() {
            return Ok(());
        }
        let file_full = {
            let mut buf = self.file_buf.lock().unwrap_or_else(|p| p.into_inner());
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            buf.len() > LOG_BUF_MAX
        };
        if urgent || file_full {
            return self.write_file();
        }
        Ok(())
    }

    fn flush_log(&self) {
        if let Err(e) = self.write_file() {
            tracing::warn!("cannot write the audit file: {e}");
        }
        self.write_log();
    }

    fn self_id(&self) -> Option<String> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        plugin_id_from_mountinfo(&info)
    }

    fn reopen_audit(&self) {
        // Write what is queued to the file it was meant for, then let go of it.
        if let Err(e) = self.write_file() {
            tracing::warn!("cannot write the audit file: {e}");
        }
        *self.audit.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn host_fs(&self) -> Option<&dyn HostFs> {
        self.host.as_ref().map(|h| h as &dyn HostFs)
    }
}

/// dockerd bind-mounts `<exec-root>/plugins/<id>` onto `/run/docker/plugins` in a managed plugin:
/// the mount's root names our ID.
pub fn plugin_id_from_mountinfo(info: &str) -> Option<String> {
    common::mountinfo::parse(info).into_iter().find_map(|m| {
        if m.mount_point != std::path::Path::new("/run/docker/plugins") {
            return None;
        }
        let id = m.root.file_name()?.to_str()?.to_string();
        (id.len() == 64 && id.bytes().all(|c| c.is_ascii_hexdigit())).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_file_batches_allows_and_writes_denials_at_once() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let path = dir.path().join("audit.log");
        let sys = RealSys::new(Some(path.clone()), true);
        let read = || std::fs::read_to_string(&path).unwrap_or_default();
        assert!(sys.append_audit("a1", false).is_ok());
        assert_eq!(read(), "", "allows are batched");
        assert!(sys.append_audit("d1", true).is_ok());
        assert_eq!(
            read(),
            "a1\nd1\n",
            "a denial writes everything before it, in order"
        );
        assert!(sys.append_audit("a2", false).is_ok());
        sys.flush_log();
        assert_eq!(read(), "a1\nd1\na2\n");
    }

    #[test]
    fn id_from_mountinfo() {
        let id = "a".repeat(64);
        let info = format!(
            "22 1 0:21 / / rw - overlay overlay rw\n\
             30 22 0:25 /docker/plugins/{id} /run/docker/plugins rw,nosuid shared:5 - tmpfs tmpfs rw\n"
        );
        assert_eq!(plugin_id_from_mountinfo(&info), Some(id));
        assert_eq!(
            plugin_id_from_mountinfo("22 1 0:21 / / rw - overlay overlay rw\n"),
            None
        );
    }
}
