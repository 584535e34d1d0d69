//! Start-up reconciliation: the store against the mount table and the data directory
//! (re-mount, adopt, unmount stale mounts, settle moved-aside data).

use super::*;

impl<S: Sys> Service<S> {
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
                Kind::Dir => self.data_missing(name),
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
    pub(super) async fn settle_trash(&self, owner: &str, entry: &str, known: &[String]) {
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
    pub(super) fn put_back_trash(&self, name: &str) {
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
}
