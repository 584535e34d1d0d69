//! What an operator sees and repairs (`outboard volume …`, `GET /metrics`): every volume with
//! its mount references, problems and measured size, and releasing the references of callers
//! dockerd never unmounted. Served on the plugin socket under `/outboard/v1/`; dockerd only
//! ever calls `/VolumeDriver.*`, so these are not reachable through the plugin protocol.

use std::collections::BTreeMap;

use common::metrics::{Kind as MKind, MetricsText};
use serde::Serialize;

use super::Service;
use crate::error::VolumeError;
use crate::options::{Kind, VolumeName};
use crate::state::VolumeRecord;
use crate::sys::Sys;

/// One volume in `GET /outboard/v1/volumes`.
#[derive(Debug, Clone, Serialize)]
pub struct OpsVolume {
    /// Volume name.
    pub name: String,
    /// Backend: `dir`, `tmpfs` or `bind`.
    pub backend: &'static str,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Outstanding mount references by caller ID (dockerd's mount IDs).
    pub mounts: BTreeMap<String, u32>,
    /// Whether the mount point is mounted now (the mount table, not the count).
    pub mounted: bool,
    /// Where dockerd sees the volume while mounted.
    pub mountpoint: String,
    /// Last problem seen (reconcile, unmount), if any.
    pub problem: Option<String>,
    /// Measured size in bytes (dir/bind, after the last unmount or reconcile), if known.
    pub bytes: Option<u64>,
}

/// Reply of `POST /outboard/v1/volumes/release-mounts`.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    /// Volume name.
    pub name: String,
    /// The references dropped (caller → count).
    pub released: BTreeMap<String, u32>,
    /// Whether the mount point was unmounted.
    pub unmounted: bool,
}

fn backend(k: Kind) -> &'static str {
    match k {
        Kind::Dir => "dir",
        Kind::Tmpfs => "tmpfs",
        Kind::Bind => "bind",
    }
}

impl<S: Sys> Service<S> {
    fn ops_view(
        &self,
        rec: VolumeRecord,
        mounted: &std::collections::BTreeSet<std::path::PathBuf>,
    ) -> OpsVolume {
        let target = self.mountpoint(&rec.name);
        let bytes = self
            .usage
            .read()
            .ok()
            .and_then(|u| u.get(&rec.name).map(|u| u.bytes));
        OpsVolume {
            backend: backend(rec.spec.kind),
            created_at: rec.created_at,
            mounted: mounted.contains(&target),
            mountpoint: target.display().to_string(),
            problem: self.problem(&rec.name),
            bytes,
            mounts: rec.mounts,
            name: rec.name,
        }
    }

    /// Every volume, or the one named (404 when unknown).
    pub fn ops_volumes(&self, name: Option<&VolumeName>) -> Result<Vec<OpsVolume>, VolumeError> {
        let mounted = self
            .sys
            .mounts_under(&self.paths.mount_root)
            .unwrap_or_default();
        if let Some(name) = name {
            let rec = self.stored(name)?;
            return Ok(vec![self.ops_view(rec, &mounted)]);
        }
        let mut out = Vec::new();
        for item in self.volumes.iter() {
            match item {
                Ok((_, rec)) => out.push(self.ops_view(rec, &mounted)),
                Err(e) => tracing::error!("unreadable volume record: {e}"),
            }
        }
        Ok(out)
    }

    /// Drop every mount reference of `name` and unmount it. The caller (the `outboard`
    /// command) has checked that no running container uses the volume; the references left
    /// are of callers dockerd never unmounted (e.g. a daemon crash between Mount and Unmount).
    pub async fn release_mounts(&self, name: &VolumeName) -> Result<Released, VolumeError> {
        let name: &str = name;
        let _guard = self.lock(name).await;
        let mut rec = self.stored(name)?;
        let target = self.mountpoint(name);
        let was_mounted = self.is_mounted(&target);
        let released = std::mem::take(&mut rec.mounts);
        if was_mounted {
            self.sys
                .release_mountpoint(&target)
                .map_err(|e| Self::io(name, "unmount", &target, e))?;
        }
        self.save(&rec).await?;
        self.set_problem(name, None);
        tracing::warn!(volume = name, refs = ?released, unmounted = was_mounted, "mount references released by an operator");
        Ok(Released {
            name: name.to_string(),
            released,
            unmounted: was_mounted,
        })
    }

    /// Gauges: volumes by backend and state, bytes used by backend.
    pub fn render_metrics(&self, w: &mut MetricsText) {
        let vols = self.ops_volumes(None).unwrap_or_default();
        let mut by: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut bytes: BTreeMap<&str, u64> = BTreeMap::new();
        let mut refs = 0u64;
        for b in ["dir", "tmpfs", "bind"] {
            for s in ["mounted", "unmounted", "problem"] {
                by.insert((b, s), 0);
            }
            bytes.insert(b, 0);
        }
        for v in &vols {
            let state = if v.problem.is_some() {
                "problem"
            } else if v.mounted {
                "mounted"
            } else {
                "unmounted"
            };
            *by.entry((v.backend, state)).or_default() += 1;
            *bytes.entry(v.backend).or_default() += v.bytes.unwrap_or(0);
            refs += v.mounts.values().map(|n| u64::from(*n)).sum::<u64>();
        }
        w.family(
            "outboard_volumes",
            MKind::Gauge,
            "Volumes by backend and state (problem: the last operation on it failed).",
        );
        for ((b, s), n) in &by {
            w.sample(
                "outboard_volumes",
                &[("backend", b), ("state", s)],
                *n as f64,
            );
        }
        w.family(
            "outboard_volume_bytes_used",
            MKind::Gauge,
            "Measured bytes of dir and bind volumes by backend (measured after unmount and at start).",
        );
        for (b, n) in &bytes {
            w.sample("outboard_volume_bytes_used", &[("backend", b)], *n as f64);
        }
        w.single(
            "outboard_volume_mount_references",
            MKind::Gauge,
            "Outstanding mount references (Mount without Unmount) over all volumes.",
            refs as f64,
        );
    }
}
