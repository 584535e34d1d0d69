//! The volume service: what `Create`, `Remove`, `Mount`, `Unmount`, `Path`, `Get`, `List` mean,
//! plus start-up reconciliation. Knows nothing of HTTP; talks to the OS only through [`Sys`].
//!
//! Rules it keeps:
//! - Every mutation is in the store and flushed before it returns (a `kill -9` after the reply
//!   loses nothing); OS effects happen first and are rolled back if the store write fails.
//! - Operations on one volume are serialized by a striped lock; different volumes run in parallel.
//! - `Get`/`List` read the store only, never wait for reconciliation, and never answer "not
//!   found" for a stored volume: problems (missing data) are reported in `Status`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use common::{Store, Tree};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::VolumeError;
use crate::options::{self, CallerId, Kind, VolumeName};
use crate::state::{NameAndTime, VolumeRecord, VOLUMES_TREE};
use crate::sys::{Ownership, Sys};

/// Number of lock stripes (operations on volumes hashing to the same stripe serialize).
const STRIPES: usize = 64;
/// A usage walk stops after this many entries (the figure is then a lower bound).
const USAGE_WALK_LIMIT: u64 = 200_000;

/// Where things are, inside the plugin.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Root of `dir` volumes' data (the plugin's `data` mount).
    pub data_dir: PathBuf,
    /// Where volumes are mounted for dockerd (the plugin's `propagatedMount`).
    pub mount_root: PathBuf,
    /// Where the host's `/` is visible (for `bind` volumes).
    pub host_root: PathBuf,
}

/// A cached size figure for a volume.
#[derive(Debug, Clone)]
struct Usage {
    bytes: u64,
    complete: bool,
    measured_at: String,
}

/// The volume service.
pub struct Service<S: Sys> {
    sys: Arc<S>,
    store: Store,
    volumes: Tree<VolumeRecord>,
    paths: Paths,
    bind_allowed: Vec<String>,
    /// Largest tmpfs size, and the size of a tmpfs created without one.
    max_tmpfs: u64,
    locks: Vec<Mutex<()>>,
    /// Problems found by reconciliation or on the way (volume → text), shown in `Status`.
    problems: RwLock<HashMap<String, String>>,
    /// Cached sizes of `dir`/`bind` volumes (a walk per `Get` would slow every container start).
    usage: RwLock<HashMap<String, Usage>>,
    /// Name → creation time of every stored volume, for `List`: decoding 10,000 sled records
    /// costs ~25 ms, this map ~2 ms. Written after the store on create/remove, under the
    /// volume's lock.
    index: RwLock<Index>,
}

/// The `List` index and its encoded reply, rebuilt lazily after a create or remove (dockerd
/// asks for `List` on every `docker volume ls`; most of those see no change).
#[derive(Debug, Default)]
struct Index {
    /// Name → RFC 3339 creation time.
    volumes: BTreeMap<String, String>,
    /// The JSON `List` reply for `volumes`, if encoded since the last change.
    encoded: Option<Arc<Vec<u8>>>,
}

impl Index {
    fn insert(&mut self, name: &str, created_at: &str) {
        self.volumes
            .insert(name.to_string(), created_at.to_string());
        self.encoded = None;
    }

    fn remove(&mut self, name: &str) {
        self.volumes.remove(name);
        self.encoded = None;
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Whether `path` equals `prefix` or lies below it (component-wise, both absolute and resolved).
fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.starts_with(&format!("{prefix}/"))
}

impl<S: Sys> Service<S> {
    /// Build the service over an opened store: no OS calls, one pass over the store to build
    /// the `List` index (~25 ms for 10,000 volumes).
    pub fn new(
        sys: Arc<S>,
        store: Store,
        paths: Paths,
        bind_allowed: Vec<String>,
    ) -> Result<Self, VolumeError> {
        let names: Tree<NameAndTime> = store.tree(VOLUMES_TREE)?;
        let mut index = BTreeMap::new();
        for item in names.iter() {
            match item {
                Ok((_, v)) => {
                    index.insert(v.name, v.created_at);
                }
                Err(e) => tracing::error!("unreadable volume record: {e}"),
            }
        }
        Ok(Self {
            sys,
            volumes: store.tree(VOLUMES_TREE)?,
            index: RwLock::new(Index {
                volumes: index,
                encoded: None,
            }),
            store,
            paths,
            bind_allowed,
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            problems: RwLock::new(HashMap::new()),
            usage: RwLock::new(HashMap::new()),
            max_tmpfs: DEFAULT_MAX_TMPFS,
        })
    }

    async fn lock(&self, name: &str) -> MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut h);
        let i = (h.finish() as usize) % self.locks.len().max(1);
        // Invariant: locks has STRIPES entries; index is in range.
        self.locks[i].lock().await
    }

    fn io(name: &str, op: &'static str, path: &Path, source: std::io::Error) -> VolumeError {
        VolumeError::Io {
            name: name.to_string(),
            op,
            path: path.display().to_string(),
            source,
        }
    }

    /// Where volume `name` is mounted for dockerd.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.paths.mount_root.join(name)
    }

    /// Where a `dir` volume's data lives.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.paths.data_dir.join(name)
    }

    fn set_problem(&self, name: &str, problem: Option<String>) {
        if let Ok(mut p) = self.problems.write() {
            match problem {
                Some(t) => p.insert(name.to_string(), t),
                None => p.remove(name),
            };
        }
    }

    fn problem(&self, name: &str) -> Option<String> {
        self.problems.read().ok().and_then(|p| p.get(name).cloned())
    }

    /// The stored record of `name`, or `NotFound`.
    fn stored(&self, name: &str) -> Result<VolumeRecord, VolumeError> {
        self.volumes
            .get(name)?
            .ok_or_else(|| VolumeError::NotFound(name.into()))
    }

    /// Why a `dir` volume's data directory is missing, if it is.
    fn data_missing(&self, name: &str) -> Option<String> {
        let p = self.data_path(name);
        (!self.sys.is_dir(&p).unwrap_or(false))
            .then(|| format!("data directory {} does not exist", p.display()))
    }

    async fn save(&self, rec: &VolumeRecord) -> Result<(), VolumeError> {
        self.volumes.insert(&rec.name, rec)?;
        self.store.flush().await?;
        Ok(())
    }

    /// Create the plugin's own directories (data root, mount root).
    pub fn prepare(&self) -> Result<(), VolumeError> {
        for p in [&self.paths.data_dir, &self.paths.mount_root] {
            self.sys
                .make_dir_all(p)
                .map_err(|e| Self::io("-", "create", p, e))?;
        }
        Ok(())
    }

    fn allowed_text(&self) -> String {
        if self.bind_allowed.is_empty() {
            "none (the setting is empty)".into()
        } else {
            self.bind_allowed.join(", ")
        }
    }

    /// Set the largest tmpfs size (`MAX_TMPFS_SIZE`).
    pub fn with_max_tmpfs(mut self, bytes: u64) -> Self {
        self.max_tmpfs = bytes;
        self
    }
}

/// Prefix of moved-aside data directories (no volume name starts with '.').
const TRASH_PREFIX: &str = ".trash-";

/// `MAX_TMPFS_SIZE` when not set: 1 GiB.
const DEFAULT_MAX_TMPFS: u64 = 1 << 30;

/// `.trash-<name>.<nanos>`: unique even when a name is removed, re-created and removed again.
fn trash_name(name: &str) -> String {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{TRASH_PREFIX}{name}.{nanos}")
}

/// The volume name inside a trash entry name.
fn trash_owner(entry: &str) -> Option<&str> {
    entry
        .strip_prefix(TRASH_PREFIX)
        .and_then(|rest| rest.rsplit_once('.'))
        .map(|(name, _)| name)
        .filter(|n| options::validate_name(n).is_ok())
}

fn poisoned() -> VolumeError {
    VolumeError::Store(common::StoreError::Join(
        "the volume index lock was poisoned by a panic".into(),
    ))
}

fn fmt_opts(o: &BTreeMap<String, String>) -> String {
    if o.is_empty() {
        return "no options".into();
    }
    o.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

mod lifecycle;
pub mod ops;
mod reconcile;
mod usage;
mod view;

pub use view::{Owner, Used, VolumeInfo, VolumeStatus, VolumeSummary};

#[cfg(test)]
mod tests;
