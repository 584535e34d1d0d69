//! A small typed store over sled: named trees of serde values (JSON-encoded), raw byte trees,
//! a schema version, and a group-commit `flush` so concurrent requests share one fsync.
//!
//! Durability guarantee: when [`Store::flush`] returns `Ok`, every write made before the call is
//! on stable storage, also against power loss or a kernel crash. sled 0.34's own `flush` is only
//! `pwrite` + `sync_file_range`, which persists neither the file's size/extent metadata nor the
//! disk's write cache, so after it the store `fdatasync`s sled's data file (`db`) and, when its
//! entries may have changed since the last sync (new snapshot files: rare), the store directory.
//! One sync covers every caller waiting at that moment (group commit). Values stored as separate
//! sled blob files (values over sled's blob threshold, far larger than anything the plugins
//! store) are outside this guarantee.
//!
//! Key layout: the default tree holds `outboard/schema_version` (u32, big endian); each plugin
//! owns the named trees it opens and documents their keys in its own store module.
//! Logic never sees sled bytes: only `Tree<T>` with string keys and `T` values.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

const SCHEMA_KEY: &[u8] = b"outboard/schema_version";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode as the expected type.
    #[error("state store: bad value under {key:?}: {source}")]
    Decode {
        /// The key whose value is bad.
        key: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A value could not be encoded.
    #[error("state store: cannot encode value: {0}")]
    Encode(serde_json::Error),
    /// The state was written by a newer, incompatible version.
    #[error("state store at {dir} has schema version {found}, this plugin understands up to {supported}")]
    Schema {
        /// Store directory.
        dir: String,
        /// Version found on disk.
        found: u32,
        /// Highest version this binary knows.
        supported: u32,
    },
    /// Syncing the store's files to stable storage failed (e.g. an I/O error, no space).
    #[error("state store: cannot sync to disk: {0}")]
    Sync(std::io::Error),
    /// The flush task could not run.
    #[error("state store: flush task failed: {0}")]
    Join(String),
}

struct Inner {
    db: sled::Db,
    /// Number of flush requests issued (a ticket per caller).
    requested: AtomicU64,
    /// Highest ticket known to be durable.
    flushed: AtomicU64,
    /// Held by the one caller running a flush; others wait here and usually find their ticket
    /// already covered when they get it (group commit).
    flush_lock: tokio::sync::Mutex<()>,
    /// The file to `fdatasync` after sled's flush (`None` for temporary stores).
    data_file: Option<std::fs::File>,
    /// The store directory, synced when its entries may have changed (`None` for temporary
    /// stores).
    dir: Option<std::fs::File>,
    /// The directory's change stamp at its last sync, when that stamp can be trusted.
    dir_synced: std::sync::Mutex<Option<DirStamp>>,
    /// Set when a sync failed (I/O error, no space left); cleared by the next good sync.
    failing: AtomicBool,
    /// Completed durable flushes and the time they took (for metrics).
    stats: FlushStats,
}

/// Counters of durable flushes.
#[derive(Debug, Default)]
pub struct FlushStats {
    /// Number of completed flushes (each one sled flush + fsyncs).
    pub count: AtomicU64,
    /// Sum of their durations in microseconds.
    pub micros: AtomicU64,
    /// Directory syncs done (the others were skipped: the directory had not changed).
    pub dir_syncs: AtomicU64,
}

/// When a directory's entries last changed, as `fstat` shows it: adding, removing or renaming
/// an entry sets both the directory's mtime and ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirStamp {
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// How far in the past a stamp must be before it is trusted. The kernel stamps inodes from a
/// coarse clock (one tick, a few ms): a second change in the same tick as a sync would leave
/// the stamp unchanged, so a stamp that young could hide a change made after the sync.
const DIR_STAMP_SETTLE_NS: i128 = 50_000_000;

impl DirStamp {
    fn of(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether no later change can carry this same stamp (both times older than a few ticks).
    fn settled(&self, now: std::time::SystemTime) -> bool {
        let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let now = now.as_nanos() as i128;
        let ns = |(s, n): (i64, i64)| s as i128 * 1_000_000_000 + n as i128;
        now - ns(self.mtime).max(ns(self.ctime)) > DIR_STAMP_SETTLE_NS
    }
}

impl Inner {
    /// The store over `db`; `files` are its data file and directory (`None`: temporary store,
    /// nothing to sync).
    fn new(db: sled::Db, files: Option<(std::fs::File, std::fs::File)>) -> Self {
        let (data_file, dir) = files.unzip();
        Self {
            db,
            requested: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flush_lock: tokio::sync::Mutex::new(()),
            data_file,
            dir,
            dir_synced: std::sync::Mutex::new(None),
            failing: AtomicBool::new(false),
            stats: FlushStats::default(),
        }
    }

    /// sled's flush, then a real sync of the files it wrote (see the module doc); a failure
    /// marks the store failing until a sync succeeds.
    fn sync(&self) -> Result<(), StoreError> {
        let res = self.sync_inner();
        self.failing.store(res.is_err(), Ordering::SeqCst);
        res
    }

    fn sync_inner(&self) -> Result<(), StoreError> {
        let start = std::time::Instant::now();
        self.db.flush()?;
        if let Some(f) = &self.data_file {
            f.sync_data().map_err(StoreError::Sync)?;
        }
        if let Some(d) = &self.dir {
            self.sync_dir_if_changed(d)?;
        }
        self.stats.count.fetch_add(1, Ordering::Relaxed);
        self.stats
            .micros
            .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// `fsync` the store directory unless it provably has not changed since the last sync: a
    /// sync of an unchanged directory still costs a disk cache flush on every group commit.
    /// Runs under the flush lock (one caller at a time).
    fn sync_dir_if_changed(&self, d: &std::fs::File) -> Result<(), StoreError> {
        let stamp = DirStamp::of(&d.metadata().map_err(StoreError::Sync)?);
        let mut last = self.dir_synced.lock().unwrap_or_else(|p| p.into_inner());
        if *last == Some(stamp) {
            return Ok(());
        }
        // Taken before the sync: a change after this point gets a newer stamp (or the same one
        // only while it is unsettled, and then it is not remembered).
        d.sync_data().map_err(StoreError::Sync)?;
        self.stats.dir_syncs.fetch_add(1, Ordering::Relaxed);
        *last = stamp.settled(std::time::SystemTime::now()).then_some(stamp);
        Ok(())
    }
}

/// The plugin's durable state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Open (or create) the store in `dir` and check its schema version.
    pub fn open(dir: &Path, schema_version: u32) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        match db.get(SCHEMA_KEY)? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > schema_version {
                    return Err(StoreError::Schema {
                        dir: dir.display().to_string(),
                        found,
                        supported: schema_version,
                    });
                }
                if found < schema_version {
                    // No migrations exist yet: older layouts are forward compatible.
                    db.insert(SCHEMA_KEY, &schema_version.to_be_bytes())?;
                }
            }
            None => {
                db.insert(SCHEMA_KEY, &schema_version.to_be_bytes())?;
            }
        }
        // sled 0.34 keeps its log and pages in one file, `db`, synced after every flush; the
        // directory gains snapshot files now and then, synced when it changed.
        let files = (
            std::fs::File::open(dir.join("db")).map_err(StoreError::Sync)?,
            std::fs::File::open(dir).map_err(StoreError::Sync)?,
        );
        let inner = Inner::new(db, Some(files));
        inner.sync()?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// A temporary store for tests (deleted on drop of the last handle).
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Ok(Self {
            inner: Arc::new(Inner::new(db, None)),
        })
    }

    /// Counters of completed durable flushes.
    pub fn flush_stats(&self) -> &FlushStats {
        &self.inner.stats
    }

    /// The schema version recorded on disk.
    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        Ok(self
            .inner
            .db
            .get(SCHEMA_KEY)?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes)))
    }

    /// Open the named tree holding values of type `T`.
    pub fn tree<T>(&self, name: &str) -> Result<Tree<T>, StoreError> {
        Ok(Tree {
            tree: self.inner.db.open_tree(name)?,
            _t: PhantomData,
        })
    }

    /// Make every write made before this call durable. Concurrent callers share one flush:
    /// whoever holds the lock flushes everything written so far, on behalf of all waiters.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.inner.requested.fetch_add(1, Ordering::SeqCst) + 1;
        if self.inner.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let _guard = self.inner.flush_lock.lock().await;
        if self.inner.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every ticket issued up to now belongs to a write that already happened.
        let covered = self.inner.requested.load(Ordering::SeqCst);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.sync())
            .await
            .map_err(|e| StoreError::Join(e.to_string()))??;
        self.inner.flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the last sync failed (the store refuses writes until one succeeds).
    pub fn is_failing(&self) -> bool {
        self.inner.failing.load(Ordering::SeqCst)
    }

    /// Resolves (with the error) when the store cannot recover in place: a sync failed, the
    /// store's filesystem takes writes again (a 256 KiB probe file in `dir` is written, synced
    /// and removed), and still a flush fails. sled 0.34 keeps its first I/O error for good, so
    /// after a full disk only a new process reopens the store; `http::serve_plugin` stops the
    /// plugin then and dockerd restarts it. A flush that succeeds clears the failure instead.
    pub async fn stuck(&self, dir: std::path::PathBuf, every: std::time::Duration) -> String {
        loop {
            tokio::time::sleep(every).await;
            if !self.is_failing() {
                continue;
            }
            let d = dir.clone();
            let space = tokio::task::spawn_blocking(move || probe_space(&d))
                .await
                .unwrap_or(false);
            if !space {
                continue;
            }
            match self.flush().await {
                Ok(()) => tracing::info!("state store writes work again"),
                Err(e) => return e.to_string(),
            }
        }
    }

    /// Flush synchronously (for shutdown and non-async code).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }

    /// A raw byte tree, for a plugin whose keys or values are not JSON (IPAM's ordered
    /// binary keys). Writes to it are covered by [`Store::flush`] like any other tree.
    pub fn byte_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(name)?)
    }
}

/// Whether `dir`'s filesystem takes a 256 KiB synced write now.
fn probe_space(dir: &Path) -> bool {
    use std::io::Write;
    let p = dir.join(".outboard-space-probe");
    let wrote = std::fs::File::create(&p).and_then(|mut f| {
        f.write_all(&[0u8; 256 << 10])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&p);
    wrote.is_ok()
}

/// A named tree of `T` values under string keys.
pub struct Tree<T> {
    tree: sled::Tree,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Tree<T> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Tree<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree").finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned> Tree<T> {
    fn decode(key: &[u8], v: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(v).map_err(|source| StoreError::Decode {
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        })
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree
            .get(key.as_bytes())?
            .map(|v| Self::decode(key.as_bytes(), &v))
            .transpose()
    }

    /// Store `value` under `key`, returning the previous value.
    pub fn insert(&self, key: &str, value: &T) -> Result<Option<T>, StoreError> {
        let bytes = serde_json::to_vec(value).map_err(StoreError::Encode)?;
        self.tree
            .insert(key.as_bytes(), bytes)?
            .map(|v| Self::decode(key.as_bytes(), &v))
            .transpose()
    }

    /// Remove `key`, returning the previous value.
    pub fn remove(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree
            .remove(key.as_bytes())?
            .map(|v| Self::decode(key.as_bytes(), &v))
            .transpose()
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key.as_bytes())?)
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(String, T), StoreError>> + '_ {
        self.tree.iter().map(|r| {
            let (k, v) = r?;
            Ok((
                String::from_utf8_lossy(&k).into_owned(),
                Self::decode(&k, &v)?,
            ))
        })
    }

    /// Entries whose key starts with `prefix`.
    pub fn scan_prefix(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, T), StoreError>> + '_ {
        self.tree.scan_prefix(prefix.as_bytes()).map(|r| {
            let (k, v) = r?;
            Ok((
                String::from_utf8_lossy(&k).into_owned(),
                Self::decode(&k, &v)?,
            ))
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
    struct Vol {
        name: String,
        mounts: u32,
    }

    #[test]
    fn young_dir_stamps_are_not_trusted() {
        let now = std::time::SystemTime::now();
        let at = |ago: std::time::Duration| {
            let t = (now - ago).duration_since(std::time::UNIX_EPOCH).unwrap();
            (t.as_secs() as i64, t.subsec_nanos() as i64)
        };
        let young = DirStamp {
            mtime: at(std::time::Duration::from_millis(1)),
            ctime: at(std::time::Duration::from_secs(5)),
        };
        assert!(
            !young.settled(now),
            "a change in the same clock tick could share it"
        );
        let old = DirStamp {
            mtime: at(std::time::Duration::from_secs(2)),
            ctime: at(std::time::Duration::from_secs(1)),
        };
        assert!(old.settled(now));
    }

    /// The directory is synced when an entry appears, and not on every flush otherwise.
    #[tokio::test]
    async fn directory_synced_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1).unwrap();
        let t: Tree<Vol> = s.tree("vols").unwrap();
        let syncs = || s.flush_stats().dir_syncs.load(Ordering::Relaxed);
        // Let the directory's stamp settle, then one flush remembers it.
        std::thread::sleep(std::time::Duration::from_millis(120));
        s.flush().await.unwrap();
        let settled = syncs();
        for i in 0..5 {
            let v = Vol {
                name: format!("v{i}"),
                mounts: i,
            };
            t.insert(&v.name, &v).unwrap();
            s.flush().await.unwrap();
        }
        assert_eq!(
            syncs(),
            settled,
            "an unchanged directory is not synced again"
        );
        // A new entry (sled's snapshot files appear like this) makes the next flush sync it.
        std::fs::write(dir.path().join("snap.test"), b"x").unwrap();
        t.insert(
            "w",
            &Vol {
                name: "w".into(),
                mounts: 0,
            },
        )
        .unwrap();
        s.flush().await.unwrap();
        assert_eq!(syncs(), settled + 1);
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), 1).unwrap();
            let t: Tree<Vol> = s.tree("volumes").unwrap();
            t.insert(
                "a",
                &Vol {
                    name: "a".into(),
                    mounts: 2,
                },
            )
            .unwrap();
            s.flush().await.unwrap();
        }
        let s = Store::open(dir.path(), 1).unwrap();
        let t: Tree<Vol> = s.tree("volumes").unwrap();
        assert_eq!(t.get("a").unwrap().unwrap().mounts, 2);
        assert_eq!(s.schema_version().unwrap(), Some(1));
    }

    #[tokio::test]
    async fn flush_syncs_sled_data_file() {
        // sled 0.34 keeps everything in `<dir>/db`: the file the store syncs must exist.
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1).unwrap();
        assert!(dir.path().join("db").is_file());
        let t: Tree<u32> = s.tree("x").unwrap();
        t.insert("k", &1).unwrap();
        let before = s.flush_stats().count.load(Ordering::Relaxed);
        s.flush().await.unwrap();
        assert_eq!(s.flush_stats().count.load(Ordering::Relaxed), before + 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), 3).unwrap());
        let e = Store::open(dir.path(), 2).unwrap_err().to_string();
        assert!(e.contains("schema version 3"), "{e}");
    }

    #[test]
    fn byte_tree_is_flushed_with_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), 1).unwrap();
            s.byte_tree("raw")
                .unwrap()
                .insert(b"\x00k", &b"v"[..])
                .unwrap();
            s.flush_blocking().unwrap();
        }
        let s = Store::open(dir.path(), 1).unwrap();
        let got = s.byte_tree("raw").unwrap().get(b"\x00k").unwrap();
        assert_eq!(got.as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_complete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1).unwrap();
        let t: Tree<u32> = s.tree("x").unwrap();
        let mut handles = Vec::new();
        for i in 0..64u32 {
            let s = s.clone();
            let t = t.clone();
            handles.push(tokio::spawn(async move {
                t.insert(&i.to_string(), &i).unwrap();
                s.flush().await.unwrap();
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(t.len(), 64);
    }
}
