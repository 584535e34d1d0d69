//! `Get` and `List`: what dockerd and `docker volume inspect` see, read from the store and the
//! in-memory index only (never waiting for reconciliation). Plain domain views: the HTTP edge
//! (`handlers.rs`) shapes them into the wire reply.

use super::*;

/// One volume as `Get` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Volume name.
    pub name: String,
    /// Where dockerd sees the volume while mounted.
    pub mountpoint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// What `docker volume inspect` shows under `Status`.
    pub status: VolumeStatus,
}

/// One volume as `List` names it (no status: `List` must stay cheap for 10,000 volumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSummary {
    /// Volume name.
    pub name: String,
    /// Where dockerd sees the volume while mounted.
    pub mountpoint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// The facts behind `Status`, as an operator reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeStatus {
    /// `dir`, `tmpfs` or `bind`.
    pub backend: &'static str,
    /// The options the volume was created with.
    pub options: BTreeMap<String, String>,
    /// Who owns the volume's root, and its mode.
    pub owner: Owner,
    /// Where a `dir` volume keeps its data inside the plugin.
    pub data_path: Option<String>,
    /// Mount references now held.
    pub mounts: u32,
    /// The first 12 characters of each caller holding a reference.
    pub mounted_by: Vec<String>,
    /// `size=` limit in bytes.
    pub size_limit: Option<u64>,
    /// How much the volume holds.
    pub used: Used,
    /// `None` when all is well, else what is wrong.
    pub problem: Option<String>,
}

/// Ownership of a volume's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A `bind` volume: ownership and mode are the host directory's own.
    Host {
        /// The host directory.
        host_path: Option<String>,
    },
    /// `dir`/`tmpfs`: what the plugin set (`uid`/`gid` 0 when not given, mode 0755).
    Set {
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
        /// Permission bits.
        mode: u32,
    },
}

/// How much a volume holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Used {
    /// A tmpfs: `statfs` while mounted, 0 otherwise (its content lives only while mounted).
    Tmpfs(u64),
    /// The cached walk of a `dir`/`bind` volume (`complete: false` when the walk hit its limit).
    Measured {
        /// Bytes counted.
        bytes: u64,
        /// Whether every file was counted.
        complete: bool,
        /// RFC 3339 time of the walk.
        at: String,
    },
    /// Not walked yet since the plugin started.
    NotMeasured,
}

impl<S: Sys> Service<S> {
    /// `Get`: the volume with its status. Cheap: one store read and at most two `stat`s.
    pub fn get(&self, name: &VolumeName) -> Result<VolumeInfo, VolumeError> {
        let name: &str = name;
        let rec = self.stored(name)?;
        Ok(VolumeInfo {
            name: rec.name.clone(),
            mountpoint: self.mountpoint(name).display().to_string(),
            created_at: rec.created_at.clone(),
            status: self.status(&rec),
        })
    }

    fn status(&self, rec: &VolumeRecord) -> VolumeStatus {
        let name = rec.name.as_str();
        let spec = &rec.spec;
        let owner = match spec.kind {
            Kind::Bind => Owner::Host {
                host_path: rec.host_path.clone(),
            },
            Kind::Dir | Kind::Tmpfs => Owner::Set {
                uid: spec.uid.unwrap_or(0),
                gid: spec.gid.unwrap_or(0),
                mode: spec.mode.unwrap_or(0o755),
            },
        };
        let count = rec.mount_count();
        // Size used: statfs for a mounted tmpfs; the cached walk otherwise.
        let used = if spec.kind == Kind::Tmpfs {
            Used::Tmpfs(if count > 0 {
                self.sys
                    .fs_info(&self.mountpoint(name))
                    .ok()
                    .filter(|i| i.fs_type == "tmpfs")
                    .map(|i| i.used)
                    .unwrap_or(0)
            } else {
                0
            })
        } else if let Some(u) = self.usage.read().ok().and_then(|u| u.get(name).cloned()) {
            Used::Measured {
                bytes: u.bytes,
                complete: u.complete,
                at: u.measured_at,
            }
        } else {
            Used::NotMeasured
        };
        // A quick existence check so missing data shows at once, not only after a restart.
        let missing = match spec.kind {
            Kind::Dir => self.data_missing(name),
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
        VolumeStatus {
            backend: spec.kind.as_str(),
            options: rec.options.clone(),
            owner,
            data_path: (spec.kind == Kind::Dir).then(|| self.data_path(name).display().to_string()),
            mounts: count,
            mounted_by: rec
                .mounts
                .keys()
                .map(|k| k.chars().take(12).collect())
                .collect(),
            size_limit: spec.size,
            used,
            problem: missing.or_else(|| self.problem(name)),
        }
    }

    /// `List`: every volume (name, mount point, creation time), from the in-memory index.
    pub fn list(&self) -> Result<Vec<VolumeSummary>, VolumeError> {
        let root = self.paths.mount_root.display().to_string();
        let index = self.index.read().map_err(|_| poisoned())?;
        Ok(Self::entries(&index, &root))
    }

    fn entries(index: &Index, root: &str) -> Vec<VolumeSummary> {
        index
            .volumes
            .iter()
            .map(|(name, created_at)| VolumeSummary {
                name: name.clone(),
                mountpoint: format!("{root}/{name}"),
                created_at: created_at.clone(),
            })
            .collect()
    }

    /// The `List` reply as `encode` renders it, memoised until the next create or remove:
    /// 10,000 volumes are ~1 MB of JSON, too much to rebuild for every `docker volume ls`.
    /// The service keeps the bytes without knowing their format.
    pub fn list_encoded(
        &self,
        encode: impl FnOnce(&[VolumeSummary]) -> Result<Vec<u8>, VolumeError>,
    ) -> Result<Arc<Vec<u8>>, VolumeError> {
        if let Some(e) = self.index.read().map_err(|_| poisoned())?.encoded.clone() {
            return Ok(e);
        }
        let root = self.paths.mount_root.display().to_string();
        let mut index = self.index.write().map_err(|_| poisoned())?;
        if let Some(e) = index.encoded.clone() {
            return Ok(e);
        }
        let encoded = Arc::new(encode(&Self::entries(&index, &root))?);
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
}
