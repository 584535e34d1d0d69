//! The volume driver's durable records.
//!
//! Key layout (sled, via `common::store`):
//! - tree `volumes`: key = volume name (already validated: `[A-Za-z0-9_.-]`, ≤ 200 bytes),
//!   value = [`VolumeRecord`] as JSON. One record holds everything about a volume, including
//!   its mount references, so every mutation is one insert of one key (made under the
//!   volume's lock stripe in the service, which orders them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::options::Spec;

/// Name of the tree holding the volumes.
pub const VOLUMES_TREE: &str = "volumes";

/// One volume as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// The name (also the key).
    pub name: String,
    /// Validated specification.
    pub spec: Spec,
    /// The options exactly as given at create (shown in `Status`, compared on re-create).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// For `bind`: the host path after resolving symlinks and `..` at create.
    #[serde(default)]
    pub host_path: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Mount references: caller ID → how many times it mounted without unmounting.
    #[serde(default)]
    pub mounts: BTreeMap<String, u32>,
}

impl VolumeRecord {
    /// Total outstanding mount references.
    pub fn mount_count(&self) -> u32 {
        self.mounts.values().sum()
    }
}

/// Only the name of a record: lets `List` skip decoding the rest.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NameAndTime {
    /// The name.
    pub name: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}
