//! The IPAM plugin's durable state, typed. Logic never sees sled bytes.
//!
//! Key layout (one sled tree, `ipam`, so every change of a pool is one atomic batch):
//!
//! | key | value |
//! |---|---|
//! | `pool|<PoolID>` | [`PoolRecord`] as JSON |
//! | `run|<PoolID>|<first address, 32 hex digits>` | 16 bytes big-endian last address + 1 byte holder kind |
//! | `cursor|<PoolID>` | 16 bytes big-endian serial cursor |
//!
//! `|` never occurs in a PoolID (we build them from address spaces and CIDRs).
//!
//! Address changes are written as plain inserts/removes in the order the allocator planned them,
//! not as sled batches or transactions: in sled 0.34 each batch and each transaction writes and
//! syncs the log by itself (measured: two `pwrite`+`sync_file_range` per batch), which would
//! defeat group commit. Instead the planned order makes every prefix safe (see
//! `alloc::Change`) and [`crate::alloc::Allocator::restore`] unites what a crash left
//! overlapping; sled recovers its log in order, so a later write is never recovered without an
//! earlier one. Durability comes from [`IpamStore::flush`] (group commit), awaited before every
//! answer. Pool deletion (rare) is one atomic batch.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::alloc::{Change, Kind, Op, Run};
use crate::error::IpamError;

/// What is stored about a pool (its allocations are separate run records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    /// The PoolID handed to dockerd.
    pub id: String,
    /// Address space.
    pub space: String,
    /// Subnet, CIDR.
    pub pool: String,
    /// `--ip-range`, CIDR.
    pub range: Option<String>,
    /// `--ipam-opt` as given (re-validated on load).
    pub options: BTreeMap<String, String>,
    /// Chosen from the default pools.
    pub from_defaults: bool,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// A pool as loaded at start-up.
#[derive(Debug, Clone)]
pub struct StoredPool {
    /// The pool record.
    pub record: PoolRecord,
    /// Held runs.
    pub runs: Vec<(u128, Run)>,
    /// Serial cursor, if one was written.
    pub cursor: Option<u128>,
}

/// Typed access to the `ipam` tree.
#[derive(Clone)]
pub struct IpamStore {
    store: common::Store,
    tree: sled::Tree,
}

impl std::fmt::Debug for IpamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpamStore").finish_non_exhaustive()
    }
}

fn pool_key(id: &str) -> String {
    format!("pool|{id}")
}

fn cursor_key(id: &str) -> String {
    format!("cursor|{id}")
}

fn run_key(id: &str, start: u128) -> String {
    format!("run|{id}|{start:032x}")
}

fn encode_run(run: &Run) -> [u8; 17] {
    let mut v = [0u8; 17];
    v[..16].copy_from_slice(&run.end.to_be_bytes());
    v[16] = run.kind.code();
    v
}

fn sled_err(e: sled::Error) -> IpamError {
    IpamError::Store(common::StoreError::Sled(e))
}

impl IpamStore {
    /// Open the tree in the plugin's store.
    pub fn open(store: common::Store) -> Result<Self, IpamError> {
        let tree = store.byte_tree("ipam")?;
        Ok(Self { store, tree })
    }

    /// Write a new pool record.
    pub fn put_pool(&self, rec: &PoolRecord) -> Result<(), IpamError> {
        let v =
            serde_json::to_vec(rec).map_err(|e| IpamError::Store(common::StoreError::Encode(e)))?;
        self.tree.insert(pool_key(&rec.id), v).map_err(sled_err)?;
        Ok(())
    }

    /// Write a planned change of pool `id`, op by op in the planned order, cursor last.
    pub fn apply(&self, id: &str, change: &Change) -> Result<(), IpamError> {
        for op in &change.ops {
            match op {
                Op::Put(s, run) => {
                    self.tree
                        .insert(run_key(id, *s).as_bytes(), &encode_run(run)[..])
                        .map_err(sled_err)?;
                }
                Op::Del(s) => {
                    self.tree
                        .remove(run_key(id, *s).as_bytes())
                        .map_err(sled_err)?;
                }
            }
        }
        if let Some(c) = change.cursor {
            self.tree
                .insert(cursor_key(id).as_bytes(), &c.to_be_bytes()[..])
                .map_err(sled_err)?;
        }
        Ok(())
    }

    /// Replace every run record of pool `id` by `runs` in one atomic batch (after
    /// [`crate::alloc::Allocator::restore`] normalised what a crash left), and sync it.
    pub fn rewrite_runs(&self, id: &str, runs: &[(u128, Run)]) -> Result<(), IpamError> {
        let mut batch = sled::Batch::default();
        for kv in self.tree.scan_prefix(format!("run|{id}|").as_bytes()) {
            let (k, _) = kv.map_err(sled_err)?;
            batch.remove(k);
        }
        for (s, run) in runs {
            batch.insert(run_key(id, *s).as_bytes(), &encode_run(run)[..]);
        }
        self.tree.apply_batch(batch).map_err(sled_err)?;
        self.store.flush_blocking()?;
        Ok(())
    }

    /// Delete a pool with all its runs and its cursor, atomically.
    pub fn delete_pool(&self, id: &str) -> Result<(), IpamError> {
        let mut batch = sled::Batch::default();
        for kv in self.tree.scan_prefix(format!("run|{id}|").as_bytes()) {
            let (k, _) = kv.map_err(sled_err)?;
            batch.remove(k);
        }
        batch.remove(pool_key(id).as_bytes());
        batch.remove(cursor_key(id).as_bytes());
        self.tree.apply_batch(batch).map_err(sled_err)
    }

    /// Every stored pool with its runs and cursor.
    pub fn load(&self) -> Result<Vec<StoredPool>, IpamError> {
        let mut pools: BTreeMap<String, StoredPool> = BTreeMap::new();
        for kv in self.tree.scan_prefix(b"pool|") {
            let (k, v) = kv.map_err(sled_err)?;
            let record: PoolRecord = serde_json::from_slice(&v)
                .map_err(|e| IpamError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&k))))?;
            pools.insert(
                record.id.clone(),
                StoredPool {
                    record,
                    runs: Vec::new(),
                    cursor: None,
                },
            );
        }
        let mut runs: HashMap<String, Vec<(u128, Run)>> = HashMap::new();
        for kv in self.tree.scan_prefix(b"run|") {
            let (k, v) = kv.map_err(sled_err)?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let corrupt = || IpamError::Corrupt(format!("bad run record {key:?}"));
            let rest = key.strip_prefix("run|").ok_or_else(corrupt)?;
            let (id, start) = rest.rsplit_once('|').ok_or_else(corrupt)?;
            let start = u128::from_str_radix(start, 16).map_err(|_| corrupt())?;
            let bytes: [u8; 17] = v.as_ref().try_into().map_err(|_| corrupt())?;
            let mut end = [0u8; 16];
            end.copy_from_slice(&bytes[..16]);
            let kind = Kind::from_code(bytes[16]).ok_or_else(corrupt)?;
            runs.entry(id.to_string()).or_default().push((
                start,
                Run {
                    end: u128::from_be_bytes(end),
                    kind,
                },
            ));
        }
        for (id, r) in runs {
            match pools.get_mut(&id) {
                Some(p) => p.runs = r,
                // A pool record is deleted in the same batch as its runs; orphans mean damage.
                None => return Err(IpamError::Corrupt(format!("runs of unknown pool {id:?}"))),
            }
        }
        for kv in self.tree.scan_prefix(b"cursor|") {
            let (k, v) = kv.map_err(sled_err)?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let id = key.strip_prefix("cursor|").unwrap_or_default();
            let bytes: [u8; 16] = v
                .as_ref()
                .try_into()
                .map_err(|_| IpamError::Corrupt(format!("bad cursor {key:?}")))?;
            if let Some(p) = pools.get_mut(id) {
                p.cursor = Some(u128::from_be_bytes(bytes));
            }
        }
        Ok(pools.into_values().collect())
    }

    /// Make every write so far durable (group commit shared by concurrent callers).
    pub async fn flush(&self) -> Result<(), IpamError> {
        Ok(self.store.flush().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> PoolRecord {
        PoolRecord {
            id: id.into(),
            space: "OutboardLocal".into(),
            pool: "10.98.0.0/24".into(),
            range: None,
            options: BTreeMap::new(),
            from_defaults: false,
            created: 1,
        }
    }

    #[tokio::test]
    async fn round_trip_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let run = |end, kind| Run { end, kind };
        {
            let s = IpamStore::open(common::Store::open(dir.path(), 1).unwrap()).unwrap();
            s.put_pool(&rec("a/10.98.0.0/24")).unwrap();
            // A pool whose ID is a prefix of the first one's must not see its runs.
            s.put_pool(&rec("a/10.98.0.0/24/10.98.0.0/25")).unwrap();
            s.apply(
                "a/10.98.0.0/24",
                &Change {
                    ops: vec![
                        Op::Put(1, run(1, Kind::Gateway)),
                        Op::Put(2, run(9, Kind::Dynamic)),
                    ],
                    cursor: Some(10),
                },
            )
            .unwrap();
            s.apply(
                "a/10.98.0.0/24",
                &Change {
                    ops: vec![Op::Del(2), Op::Put(3, run(9, Kind::Dynamic))],
                    cursor: None,
                },
            )
            .unwrap();
            s.flush().await.unwrap();
        }
        let s = IpamStore::open(common::Store::open(dir.path(), 1).unwrap()).unwrap();
        let pools = s.load().unwrap();
        assert_eq!(pools.len(), 2);
        let a = pools
            .iter()
            .find(|p| p.record.id == "a/10.98.0.0/24")
            .unwrap();
        assert_eq!(
            a.runs,
            vec![(1, run(1, Kind::Gateway)), (3, run(9, Kind::Dynamic))]
        );
        assert_eq!(a.cursor, Some(10));
        let b = pools
            .iter()
            .find(|p| p.record.id != "a/10.98.0.0/24")
            .unwrap();
        assert!(b.runs.is_empty() && b.cursor.is_none());
        s.delete_pool("a/10.98.0.0/24").unwrap();
        let pools = s.load().unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].record.id, "a/10.98.0.0/24/10.98.0.0/25");
    }
}
