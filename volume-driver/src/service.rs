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
use serde_json::{json, Map, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::api;
use crate::error::VolumeError;
use crate::options::{self, human_size, Kind};
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
pub struct Service {
    sys: Arc<dyn Sys>,
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

impl Service {
    /// Build the service over an opened store: no OS calls, one pass over the store to build
    /// the `List` index (~25 ms for 10,000 volumes).
    pub fn new(
        sys: Arc<dyn Sys>,
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

    /// `Create`: validate everything first, then make the data, then record it.
    pub async fn create(
        &self,
        name: &str,
        opts: Option<BTreeMap<String, String>>,
    ) -> Result<(), VolumeError> {
        options::validate_name(name)?;
        let opts = opts.unwrap_or_default();
        let spec = options::parse_options(&opts)?;
        if spec.kind == Kind::Tmpfs && spec.size.is_some_and(|n| n > self.max_tmpfs) {
            return Err(VolumeError::InvalidOption {
                option: "size".into(),
                value: opts.get("size").cloned().unwrap_or_default(),
                reason: format!(
                    "a tmpfs volume may hold at most {} (MAX_TMPFS_SIZE)",
                    options::human_size(self.max_tmpfs)
                ),
            });
        }
        if spec.kind == Kind::Dir && spec.size.is_some() {
            let fs = self
                .sys
                .fs_info(&self.paths.data_dir)
                .map(|i| i.fs_type)
                .unwrap_or_else(|e| format!("an unknown filesystem ({e})"));
            return Err(VolumeError::SizeUnsupported {
                path: self.paths.data_dir.display().to_string(),
                fs,
            });
        }
        let host_path = match (&spec.kind, &spec.path) {
            (Kind::Bind, Some(path)) => Some(self.check_bind_path(path)?),
            _ => None,
        };

        let _guard = self.lock(name).await;
        if let Some(existing) = self.volumes.get(name)? {
            // dockerd skips Create when Get finds the volume; a repeat here is a race or a retry.
            return if existing.options == opts {
                Ok(())
            } else {
                Err(VolumeError::Exists {
                    name: name.into(),
                    existing: fmt_opts(&existing.options),
                })
            };
        }
        let mut created_dir = None;
        if spec.kind == Kind::Dir {
            let path = self.data_path(name);
            let own = Ownership {
                uid: spec.uid,
                gid: spec.gid,
                mode: spec.mode,
            };
            let existed = self
                .sys
                .make_volume_dir(&path, own)
                .map_err(|e| Self::io(name, "create data directory", &path, e))?;
            if existed {
                tracing::warn!(volume = name, path = %path.display(), "adopting an existing data directory (left by an earlier install or an interrupted create)");
            } else {
                created_dir = Some(path);
            }
        }
        let rec = VolumeRecord {
            name: name.to_string(),
            spec,
            options: opts,
            host_path,
            created_at: now_rfc3339(),
            mounts: BTreeMap::new(),
        };
        if let Err(e) = self.save(&rec).await {
            if let Some(p) = created_dir {
                let _ = self.sys.remove_tree(&p);
            }
            let _ = self.volumes.remove(name);
            return Err(e);
        }
        self.set_problem(name, None);
        if let Ok(mut i) = self.index.write() {
            i.insert(name, &rec.created_at);
        }
        if let Ok(mut u) = self.usage.write() {
            u.insert(
                name.to_string(),
                Usage {
                    bytes: 0,
                    complete: true,
                    measured_at: rec.created_at.clone(),
                },
            );
        }
        tracing::info!(volume = name, backend = rec.spec.kind.as_str(), "created");
        Ok(())
    }

    /// Resolve a bind path on the host and check it against the allowed prefixes.
    fn check_bind_path(&self, path: &str) -> Result<String, VolumeError> {
        let resolved = self
            .sys
            .resolve_in_root(&self.paths.host_root, path)
            .map_err(|e| VolumeError::BindPath {
                path: path.into(),
                reason: match e.raw_os_error() {
                    Some(libc::ENOENT) => "no such directory on the host".into(),
                    Some(libc::ENOTDIR) => "not a directory on the host".into(),
                    _ => format!("cannot resolve on the host: {e}"),
                },
            })?;
        // Prefixes are resolved too (a configured /var/run may be a symlink to /run).
        let allowed = self.bind_allowed.iter().any(|prefix| {
            let real = self
                .sys
                .resolve_in_root(&self.paths.host_root, prefix)
                .unwrap_or_else(|_| prefix.clone());
            under_prefix(&resolved, &real) || under_prefix(&resolved, prefix)
        });
        if allowed {
            Ok(resolved)
        } else {
            Err(VolumeError::BindNotAllowed {
                path: path.into(),
                resolved,
                allowed: self.allowed_text(),
            })
        }
    }

    /// `Remove`: refused while mounted; deletes `dir` data, never `bind` host data.
    pub async fn remove(&self, name: &str) -> Result<(), VolumeError> {
        options::validate_name(name)?;
        let _guard = self.lock(name).await;
        let rec = self
            .volumes
            .get(name)?
            .ok_or_else(|| VolumeError::NotFound(name.into()))?;
        let count = rec.mount_count();
        if count > 0 {
            return Err(VolumeError::InUse {
                name: name.into(),
                count,
                ids: rec.mounts.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        let target = self.mountpoint(name);
        self.sys
            .release_mountpoint(&target)
            .map_err(|e| Self::io(name, "unmount", &target, e))?;
        // A dir volume's data is first moved aside (one rename, however big the volume), then
        // the record goes, then the data is deleted in the background: dockerd's 1-minute
        // Remove timeout never meets a long delete, and a crash in between is repaired at start
        // (trash of a still-recorded volume is put back, other trash is deleted).
        let mut trash = None;
        if rec.spec.kind == Kind::Dir {
            let path = self.data_path(name);
            let t = self.paths.data_dir.join(trash_name(name));
            match self.sys.rename(&path, &t) {
                Ok(()) => trash = Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Self::io(name, "move aside", &path, e)),
            }
        }
        let stored = match self.volumes.remove(name) {
            Ok(_) => self.store.flush().await.map_err(VolumeError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stored {
            if let Some(t) = &trash {
                let _ = self.sys.rename(t, &self.data_path(name));
            }
            return Err(e);
        }
        if let Some(t) = trash {
            self.delete_in_background(t);
        }
        if let Ok(mut i) = self.index.write() {
            i.remove(name);
        }
        self.set_problem(name, None);
        if let Ok(mut u) = self.usage.write() {
            u.remove(name);
        }
        tracing::info!(volume = name, "removed");
        Ok(())
    }

    /// Delete a moved-aside data directory without holding up the caller.
    fn delete_in_background(&self, path: PathBuf) {
        let sys = self.sys.clone();
        tokio::task::spawn_blocking(move || match sys.remove_tree(&path) {
            Ok(()) => tracing::debug!(path = %path.display(), "deleted removed volume data"),
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot delete removed volume data (retried at next start): {e}")
            }
        });
    }

    /// Make the volume's data appear at its mount point.
    fn activate(&self, rec: &VolumeRecord, target: &Path) -> Result<(), VolumeError> {
        let name = rec.name.as_str();
        match rec.spec.kind {
            Kind::Dir => {
                let src = self.data_path(name);
                if !self.sys.is_dir(&src).unwrap_or(false) {
                    // The record is here (the caller holds its lock), so trash of this name is
                    // an interrupted Remove that reconcile has not put back yet: do it now
                    // rather than fail the mount.
                    self.put_back_trash(name);
                }
                if !self.sys.is_dir(&src).unwrap_or(false) {
                    let detail = format!("data directory {} does not exist", src.display());
                    self.set_problem(name, Some(detail.clone()));
                    return Err(VolumeError::DataMissing {
                        name: name.into(),
                        detail,
                    });
                }
                self.sys
                    .bind(&src, target)
                    .map_err(|e| Self::io(name, "bind-mount", target, e))
            }
            Kind::Tmpfs => self
                .sys
                .mount_tmpfs(
                    target,
                    // Never uncapped: a tmpfs without `size` gets MAX_TMPFS_SIZE.
                    Some(rec.spec.size.unwrap_or(self.max_tmpfs)),
                    Ownership {
                        uid: rec.spec.uid,
                        gid: rec.spec.gid,
                        mode: rec.spec.mode,
                    },
                )
                .map_err(|e| Self::io(name, "mount tmpfs on", target, e)),
            Kind::Bind => {
                let host = rec.host_path.clone().unwrap_or_default();
                self.sys
                    .bind_host_dir(&self.paths.host_root, &host, target)
                    .map_err(|e| {
                        let detail = format!("host directory {host}: {e}");
                        self.set_problem(name, Some(detail.clone()));
                        VolumeError::DataMissing {
                            name: name.into(),
                            detail,
                        }
                    })
            }
        }
    }

    fn is_mounted(&self, target: &Path) -> bool {
        self.sys
            .mounts_under(&self.paths.mount_root)
            .map(|m| m.contains(target))
            .unwrap_or(false)
    }

    /// `Mount`: first reference mounts; every call with an ID adds one reference to it.
    pub async fn mount(&self, name: &str, id: &str) -> Result<String, VolumeError> {
        options::validate_name(name)?;
        check_id(id)?;
        let _guard = self.lock(name).await;
        let mut rec = self
            .volumes
            .get(name)?
            .ok_or_else(|| VolumeError::NotFound(name.into()))?;
        let target = self.mountpoint(name);
        // Trust the mount table, not the count: it is the truth after crashes.
        let newly = !self.is_mounted(&target);
        if newly {
            self.activate(&rec, &target)?;
        }
        *rec.mounts.entry(id.to_string()).or_insert(0) += 1;
        if let Err(e) = self.save(&rec).await {
            if newly {
                let _ = self.sys.release_mountpoint(&target);
            }
            return Err(e);
        }
        self.set_problem(name, None);
        tracing::info!(volume = name, id, refs = rec.mount_count(), "mounted");
        Ok(target.display().to_string())
    }

    /// `Unmount`: drop one reference of `id`; the last reference unmounts. Unknown IDs and
    /// unknown volumes succeed (dockerd may repeat an Unmount).
    pub async fn unmount(self: &Arc<Self>, name: &str, id: &str) -> Result<(), VolumeError> {
        options::validate_name(name)?;
        check_id(id)?;
        let _guard = self.lock(name).await;
        let Some(mut rec) = self.volumes.get(name)? else {
            tracing::warn!(
                volume = name,
                id,
                "unmount of an unknown volume: nothing to do"
            );
            return Ok(());
        };
        let Some(n) = rec.mounts.get_mut(id) else {
            tracing::warn!(
                volume = name,
                id,
                "unmount by an unknown caller: nothing to do"
            );
            return Ok(());
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            rec.mounts.remove(id);
        }
        let last = rec.mount_count() == 0;
        if last {
            let target = self.mountpoint(name);
            // The caller is gone either way: drop its reference even if the unmount fails
            // (dockerd does not retry Unmount, and a stuck count would block Remove forever).
            // Reconciliation and Remove retry the unmount.
            if let Err(e) = self.sys.release_mountpoint(&target) {
                let err = Self::io(name, "unmount", &target, e);
                tracing::error!("{err}");
                self.set_problem(name, Some(err.to_string()));
            }
        }
        self.save(&rec).await?;
        tracing::info!(volume = name, id, refs = rec.mount_count(), "unmounted");
        if last && rec.spec.kind != Kind::Tmpfs {
            // The data just stopped changing: a good moment to measure it (in the background).
            let me = self.clone();
            tokio::spawn(async move { me.refresh_usage(vec![rec]).await });
        }
        Ok(())
    }

    /// `Path`: the mount point while mounted, `""` otherwise.
    pub fn path(&self, name: &str) -> Result<String, VolumeError> {
        options::validate_name(name)?;
        let rec = self
            .volumes
            .get(name)?
            .ok_or_else(|| VolumeError::NotFound(name.into()))?;
        Ok(if rec.mount_count() > 0 {
            self.mountpoint(name).display().to_string()
        } else {
            String::new()
        })
    }

    /// `Get`: the volume with its `Status`. Cheap: one store read and at most two `stat`s.
    pub fn get(&self, name: &str) -> Result<api::Volume, VolumeError> {
        options::validate_name(name)?;
        let rec = self
            .volumes
            .get(name)?
            .ok_or_else(|| VolumeError::NotFound(name.into()))?;
        Ok(api::Volume {
            name: rec.name.clone(),
            mountpoint: self.mountpoint(name).display().to_string(),
            created_at: rec.created_at.clone(),
            status: Some(self.status(&rec)),
        })
    }

    fn status(&self, rec: &VolumeRecord) -> Map<String, Value> {
        let mut s = Map::new();
        let name = rec.name.as_str();
        let spec = &rec.spec;
        s.insert("Backend".into(), json!(spec.kind.as_str()));
        s.insert("Options".into(), json!(rec.options));
        let id = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "0".into());
        match spec.kind {
            Kind::Bind => {
                s.insert("HostPath".into(), json!(rec.host_path));
                s.insert("Owner".into(), json!("as on the host"));
            }
            Kind::Dir | Kind::Tmpfs => {
                s.insert(
                    "Owner".into(),
                    json!(format!("{}:{}", id(spec.uid), id(spec.gid))),
                );
                s.insert(
                    "Mode".into(),
                    json!(format!("{:04o}", spec.mode.unwrap_or(0o755))),
                );
            }
        }
        if spec.kind == Kind::Dir {
            s.insert(
                "DataPath".into(),
                json!(self.data_path(name).display().to_string()),
            );
        }
        let count = rec.mount_count();
        s.insert("Mounts".into(), json!(count));
        s.insert(
            "MountedBy".into(),
            json!(rec
                .mounts
                .keys()
                .map(|k| k.chars().take(12).collect::<String>())
                .collect::<Vec<_>>()),
        );
        if let Some(size) = spec.size {
            s.insert("SizeLimit".into(), json!(human_size(size)));
            s.insert("SizeLimitBytes".into(), json!(size));
        }
        // Size used: statfs for a mounted tmpfs; the cached walk otherwise.
        if spec.kind == Kind::Tmpfs {
            let used = if count > 0 {
                self.sys
                    .fs_info(&self.mountpoint(name))
                    .ok()
                    .filter(|i| i.fs_type == "tmpfs")
                    .map(|i| i.used)
                    .unwrap_or(0)
            } else {
                0
            };
            s.insert("SizeUsed".into(), json!(human_size(used)));
            s.insert("SizeUsedBytes".into(), json!(used));
            s.insert(
                "Note".into(),
                json!("tmpfs content lives while at least one container uses the volume"),
            );
        } else if let Some(u) = self.usage.read().ok().and_then(|u| u.get(name).cloned()) {
            let prefix = if u.complete { "" } else { "at least " };
            s.insert(
                "SizeUsed".into(),
                json!(format!("{prefix}{}", human_size(u.bytes))),
            );
            s.insert("SizeUsedBytes".into(), json!(u.bytes));
            s.insert("SizeMeasuredAt".into(), json!(u.measured_at));
        } else {
            s.insert("SizeUsed".into(), json!("not measured yet"));
        }
        // A quick existence check so missing data shows at once, not only after a restart.
        let missing = match spec.kind {
            Kind::Dir => {
                let p = self.data_path(name);
                (!self.sys.is_dir(&p).unwrap_or(false))
                    .then(|| format!("data directory {} does not exist", p.display()))
            }
            Kind::Bind => {
                let h = rec.host_path.clone().unwrap_or_default();
                (!self
                    .sys
                    .is_dir(&self.paths.host_root.join(h.trim_start_matches('/')))
                    .unwrap_or(false))
                .then(|| format!("host directory {h} does not exist"))
            }
            Kind::Tmpfs => None,
        };
        let state = match missing.or_else(|| self.problem(name)) {
            Some(p) => format!("problem: {p}"),
            None => "ok".into(),
        };
        s.insert("State".into(), json!(state));
        s
    }

    /// `List`: every volume (name, mount point, creation time), from the in-memory index.
    pub fn list(&self) -> Result<Vec<api::Volume>, VolumeError> {
        let root = self.paths.mount_root.display().to_string();
        let index = self.index.read().map_err(|_| poisoned())?;
        Ok(Self::entries(&index, &root))
    }

    fn entries(index: &Index, root: &str) -> Vec<api::Volume> {
        index
            .volumes
            .iter()
            .map(|(name, created_at)| api::Volume {
                name: name.clone(),
                mountpoint: format!("{root}/{name}"),
                created_at: created_at.clone(),
                status: None,
            })
            .collect()
    }

    /// The `List` reply already encoded as JSON (cached until the next create or remove).
    pub fn list_json(&self) -> Result<Arc<Vec<u8>>, VolumeError> {
        if let Some(e) = self.index.read().map_err(|_| poisoned())?.encoded.clone() {
            return Ok(e);
        }
        let root = self.paths.mount_root.display().to_string();
        let mut index = self.index.write().map_err(|_| poisoned())?;
        if let Some(e) = index.encoded.clone() {
            return Ok(e);
        }
        let reply = api::ListResponse {
            volumes: Self::entries(&index, &root),
        };
        let encoded = Arc::new(
            serde_json::to_vec(&reply)
                .map_err(|e| VolumeError::Store(common::StoreError::Encode(e)))?,
        );
        index.encoded = Some(encoded.clone());
        Ok(encoded)
    }

    /// Number of stored volumes.
    pub fn len(&self) -> usize {
        self.volumes.len()
    }

    /// Whether no volume is stored.
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty()
    }

    /// Start-up reconciliation of the store with the directories and the mount table:
    /// re-mount what is still referenced, adopt what is still mounted, unmount stale mounts,
    /// report (never drop) volumes whose data is missing, log orphan data directories.
    pub async fn reconcile(self: &Arc<Self>) -> Result<(), VolumeError> {
        let root = self.paths.mount_root.clone();
        let mounted = self
            .sys
            .mounts_under(&root)
            .map_err(|e| Self::io("-", "read the mount table for", &root, e))?;
        let mut known = Vec::new();
        for item in self.volumes.iter() {
            match item {
                Ok((name, _)) => known.push(name),
                Err(e) => tracing::error!("unreadable volume record: {e}"),
            }
        }
        // Interrupted removes first, so data put back is not reported missing below.
        let entries = self.sys.list_dir(&self.paths.data_dir).unwrap_or_else(|e| {
            tracing::error!(dir = %self.paths.data_dir.display(), "cannot list the data directory: {e}");
            Vec::new()
        });
        for e in &entries {
            if let Some(owner) = trash_owner(e) {
                self.settle_trash(owner, e, &known).await;
            }
        }
        let mut records = Vec::new();
        for name in &known {
            let _guard = self.lock(name).await;
            // Re-read under the lock: a request may have changed it since the scan.
            let Some(rec) = self.volumes.get(name)? else {
                continue;
            };
            let target = self.mountpoint(name);
            let count = rec.mount_count();
            // The snapshot may be stale for a volume mounted since; re-check before re-mounting.
            let is_mounted = mounted.contains(&target) || (count > 0 && self.is_mounted(&target));
            let missing = match rec.spec.kind {
                Kind::Dir => {
                    let p = self.data_path(name);
                    (!self.sys.is_dir(&p).unwrap_or(false))
                        .then(|| format!("data directory {} does not exist", p.display()))
                }
                Kind::Bind => {
                    let h = rec.host_path.clone().unwrap_or_default();
                    match self.sys.resolve_in_root(&self.paths.host_root, &h) {
                        Ok(r) if r == h => None,
                        Ok(r) => Some(format!("host directory {h} now resolves to {r}")),
                        Err(e) => Some(format!("host directory {h}: {e}")),
                    }
                }
                Kind::Tmpfs => None,
            };
            if let Some(m) = &missing {
                tracing::error!(volume = %name, problem = %m, "volume data missing; the volume is kept and reported in its Status");
            }
            self.set_problem(name, missing.clone());
            match (count > 0, is_mounted) {
                (true, true) => {
                    tracing::info!(volume = %name, refs = count, "adopted an existing mount")
                }
                (true, false) if missing.is_none() => match self.activate(&rec, &target) {
                    Ok(()) => {
                        if rec.spec.kind == Kind::Tmpfs {
                            tracing::warn!(volume = %name, "tmpfs re-mounted empty (its content was lost with the old mount)");
                        } else {
                            tracing::info!(volume = %name, refs = count, "re-mounted");
                        }
                    }
                    Err(e) => tracing::error!(volume = %name, "cannot re-mount: {e}"),
                },
                (true, false) => {}
                (false, true) => {
                    tracing::info!(volume = %name, "unmounting a stale mount (no references)");
                    if let Err(e) = self.sys.release_mountpoint(&target) {
                        tracing::error!(volume = %name, "cannot unmount stale mount: {e}");
                    }
                }
                (false, false) => {}
            }
            if rec.spec.kind != Kind::Tmpfs && missing.is_none() {
                records.push(rec);
            }
        }
        // Mounts of volumes the store does not know (e.g. removed while a crash interrupted).
        for m in &mounted {
            let direct = m.parent() == Some(root.as_path());
            let name = m.file_name().map(|n| n.to_string_lossy().into_owned());
            if let (true, Some(name)) = (direct, name) {
                if !known.contains(&name) {
                    tracing::warn!(mount = %m.display(), "unmounting a mount of an unknown volume");
                    if let Err(e) = self.sys.release_mountpoint(m) {
                        tracing::error!(mount = %m.display(), "cannot unmount: {e}");
                    }
                }
            }
        }
        for e in &entries {
            if trash_owner(e).is_none() && !known.contains(e) {
                tracing::warn!(entry = %e, dir = %self.paths.data_dir.display(), "data directory of no known volume (kept; remove it by hand if unwanted)");
            }
        }
        tracing::info!(volumes = known.len(), "reconciled");
        self.refresh_usage(records).await;
        Ok(())
    }

    /// Data moved aside by a `Remove` that a crash interrupted: put it back if the volume is
    /// still recorded and has no data, delete it otherwise.
    async fn settle_trash(&self, owner: &str, entry: &str, known: &[String]) {
        let trash = self.paths.data_dir.join(entry);
        if known.iter().any(|k| k == owner) {
            let _guard = self.lock(owner).await;
            // `known` was read before this lock: a Remove answered since then has dropped the
            // record, and its data must never come back. Decide from the record as it is now.
            let recorded = match self.volumes.get(owner) {
                Ok(r) => r.is_some(),
                Err(e) => {
                    tracing::error!(volume = owner, "cannot read the record (kept {entry}): {e}");
                    return;
                }
            };
            if !recorded {
                tracing::info!(
                    entry,
                    "deleting the data of a volume removed during start-up"
                );
                self.delete_in_background(trash);
                return;
            }
            let data = self.data_path(owner);
            match self.sys.is_dir(&data) {
                Ok(false) => match self.sys.rename(&trash, &data) {
                    Ok(()) => {
                        tracing::warn!(
                            volume = owner,
                            "put back the data of an interrupted remove"
                        );
                        self.set_problem(owner, None);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(volume = owner, "cannot put back the data of an interrupted remove (kept in {entry}): {e}");
                        return;
                    }
                },
                Ok(true) => {}
                Err(e) => {
                    tracing::error!(
                        volume = owner,
                        "cannot check the data directory (kept {entry}): {e}"
                    );
                    return;
                }
            }
        }
        tracing::info!(entry, "deleting the data of a removed volume");
        self.delete_in_background(trash);
    }

    /// Move the newest trash entry of recorded volume `name` back to its data directory (the
    /// caller holds the volume's lock and has seen the data missing).
    fn put_back_trash(&self, name: &str) {
        let Ok(entries) = self.sys.list_dir(&self.paths.data_dir) else {
            return;
        };
        // `.trash-<name>.<nanos>`: the newest has the largest nanos.
        let newest = entries
            .iter()
            .filter(|e| trash_owner(e) == Some(name))
            .max_by_key(|e| {
                e.rsplit('.')
                    .next()
                    .and_then(|n| n.parse::<u128>().ok())
                    .unwrap_or(0)
            });
        if let Some(entry) = newest {
            let trash = self.paths.data_dir.join(entry);
            match self.sys.rename(&trash, &self.data_path(name)) {
                Ok(()) => tracing::warn!(
                    volume = name,
                    "put back the data of an interrupted remove (on demand)"
                ),
                Err(e) => tracing::error!(volume = name, "cannot put back {entry}: {e}"),
            }
        }
    }

    /// Measure `dir`/`bind` volumes in a blocking task and cache the figures.
    pub async fn refresh_usage(self: &Arc<Self>, records: Vec<VolumeRecord>) {
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            for rec in records {
                let path = match rec.spec.kind {
                    Kind::Dir => me.data_path(&rec.name),
                    Kind::Bind => me.paths.host_root.join(
                        rec.host_path
                            .as_deref()
                            .unwrap_or("/")
                            .trim_start_matches('/'),
                    ),
                    Kind::Tmpfs => continue,
                };
                match me.sys.dir_usage(&path, USAGE_WALK_LIMIT) {
                    Ok(u) => {
                        if let Ok(mut cache) = me.usage.write() {
                            cache.insert(
                                rec.name.clone(),
                                Usage {
                                    bytes: u.bytes,
                                    complete: u.complete,
                                    measured_at: now_rfc3339(),
                                },
                            );
                        }
                    }
                    Err(e) => tracing::debug!(volume = %rec.name, "cannot measure: {e}"),
                }
            }
        })
        .await;
        if let Err(e) = res {
            tracing::error!("usage measurement task failed: {e}");
        }
    }
}

/// Prefix of moved-aside data directories (no volume name starts with '.').
const TRASH_PREFIX: &str = ".trash-";

/// A caller ID is recorded per mount: empty or huge ones are refused (dockerd sends 64 hex
/// characters; other callers get room, but not megabytes in the store).
fn check_id(id: &str) -> Result<(), VolumeError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(VolumeError::InvalidId { len: id.len() });
    }
    Ok(())
}

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

pub mod ops;

#[cfg(test)]
mod tests;
