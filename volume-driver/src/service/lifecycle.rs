//! `Create`, `Remove`, `Mount`, `Unmount`, `Path`: the calls that change a volume, each under
//! the volume's lock, OS effects first and the record flushed before the reply.

use super::*;

impl<S: Sys> Service<S> {
    /// `Create`: validate everything first, then make the data, then record it.
    pub async fn create(
        &self,
        name: &VolumeName,
        opts: Option<BTreeMap<String, String>>,
    ) -> Result<(), VolumeError> {
        let name: &str = name;
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
    pub async fn remove(&self, name: &VolumeName) -> Result<(), VolumeError> {
        let name: &str = name;
        let _guard = self.lock(name).await;
        let rec = self.stored(name)?;
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
    pub(super) fn delete_in_background(&self, path: PathBuf) {
        let sys = self.sys.clone();
        tokio::task::spawn_blocking(move || match sys.remove_tree(&path) {
            Ok(()) => tracing::debug!(path = %path.display(), "deleted removed volume data"),
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot delete removed volume data (retried at next start): {e}")
            }
        });
    }

    /// Make the volume's data appear at its mount point.
    pub(super) fn activate(&self, rec: &VolumeRecord, target: &Path) -> Result<(), VolumeError> {
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

    pub(super) fn is_mounted(&self, target: &Path) -> bool {
        self.sys
            .mounts_under(&self.paths.mount_root)
            .map(|m| m.contains(target))
            .unwrap_or(false)
    }

    /// `Mount`: first reference mounts; every call with an ID adds one reference to it.
    pub async fn mount(&self, name: &VolumeName, id: &CallerId) -> Result<String, VolumeError> {
        let name: &str = name;
        let id: &str = id;
        let _guard = self.lock(name).await;
        let mut rec = self.stored(name)?;
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
    pub async fn unmount(
        self: &Arc<Self>,
        name: &VolumeName,
        id: &CallerId,
    ) -> Result<(), VolumeError> {
        let name: &str = name;
        let id: &str = id;
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
    pub fn path(&self, name: &VolumeName) -> Result<String, VolumeError> {
        let name: &str = name;
        let rec = self.stored(name)?;
        Ok(if rec.mount_count() > 0 {
            self.mountpoint(name).display().to_string()
        } else {
            String::new()
        })
    }
}
