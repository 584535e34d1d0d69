//! What the plugin knows about containers it has seen: their risk facts (privileged, host
//! namespaces, host binds, …), learnt from the create request dockerd accepted (its `AuthZRes`
//! carries the new ID) and from every `docker inspect` reply (the settings dockerd applied).
//! Requests that share a container (`container:X` modes, `VolumesFrom`) or act on one (exec,
//! attach, archive) are judged against X's facts; an X with no record is "unseen" and a policy
//! denies it unless a rule allows it. Pure data: persistence is the service's job.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::body::Facts;

/// The facts of a container that make sharing it or acting on it dangerous.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// Privileged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Added capabilities (normalised, without `CAP_`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Host devices.
    #[serde(default, skip_serializing_if = "is_false")]
    pub devices: bool,
    /// Host namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_namespaces: Vec<String>,
    /// Relaxed security options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opts: Vec<String>,
    /// Host paths bound (cleaned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_paths: Vec<String>,
    /// Sysctls set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<String>,
    /// Why its volume options are unsafe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsafe_volumes: Vec<String>,
    /// Containers it shares that the plugin had no record of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unseen: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Risk {
    /// Both sets of facts together.
    pub fn union(&self, other: &Risk) -> Risk {
        fn join(a: &[String], b: &[String]) -> Vec<String> {
            let mut v = a.to_vec();
            for x in b {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
            v
        }
        Risk {
            privileged: self.privileged || other.privileged,
            caps: join(&self.caps, &other.caps),
            devices: self.devices || other.devices,
            host_namespaces: join(&self.host_namespaces, &other.host_namespaces),
            security_opts: join(&self.security_opts, &other.security_opts),
            host_paths: join(&self.host_paths, &other.host_paths),
            sysctls: join(&self.sysctls, &other.sysctls),
            unsafe_volumes: join(&self.unsafe_volumes, &other.unsafe_volumes),
            unseen: join(&self.unseen, &other.unseen),
        }
    }

    /// The risk facts of a request's facts (after its own shares were absorbed).
    pub fn of(f: &Facts) -> Risk {
        Risk {
            privileged: f.privileged,
            caps: f.caps.clone(),
            devices: f.devices,
            host_namespaces: f.host_namespaces.iter().map(|s| s.to_string()).collect(),
            security_opts: f.security_opts.clone(),
            host_paths: f.host_paths.clone(),
            sysctls: f.sysctls.clone(),
            unsafe_volumes: f.unsafe_volumes.clone(),
            unseen: f.unseen.clone(),
        }
    }
}

/// One container the plugin has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Full ID (64 hex digits).
    pub id: String,
    /// Name without the leading `/` (empty when unknown).
    pub name: String,
    /// Its risk facts.
    pub risk: Risk,
    /// Insertion order, for evicting the oldest records first.
    pub seq: u64,
}

/// Look up a container as dockerd resolves a reference (moby `daemon.GetContainer`: full ID,
/// then name, then unique ID prefix).
pub trait Containers: std::fmt::Debug + Send + Sync {
    /// X's risk facts; `None` when the plugin has no record of X (or X is ambiguous).
    fn lookup(&self, reference: &str) -> Option<Risk>;
}

/// Records kept at most; past it the oldest tenth is forgotten (a forgotten container is
/// unseen again until it is inspected). Containers removed by dockerd itself (`--rm`) are never
/// reported to the plugin, so without a bound the records would only grow.
pub const MAX_RECORDS: usize = 50_000;

/// The records, by ID and by name.
#[derive(Debug, Default)]
pub struct Registry {
    by_id: BTreeMap<String, Record>,
    by_name: HashMap<String, String>,
    next_seq: u64,
}

/// Is `s` a full container ID?
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// A name as dockerd indexes it: without one leading `/`.
pub fn bare_name(n: &str) -> &str {
    n.strip_prefix('/').unwrap_or(n)
}

impl Registry {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Resolve a reference the way dockerd does: full ID, name, unique ID prefix.
    pub fn resolve(&self, reference: &str) -> Option<&Record> {
        let r = reference.trim();
        if r.is_empty() {
            return None;
        }
        if let Some(rec) = self.by_id.get(r) {
            return Some(rec);
        }
        if let Some(rec) = self
            .by_name
            .get(bare_name(r))
            .and_then(|id| self.by_id.get(id))
        {
            return Some(rec);
        }
        if !r.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let lower = r.to_ascii_lowercase();
        let mut hits = self
            .by_id
            .range(lower.clone()..)
            .take_while(|(id, _)| id.starts_with(&lower));
        match (hits.next(), hits.next()) {
            (Some((_, rec)), None) => Some(rec),
            _ => None, // unknown, or ambiguous (dockerd refuses an ambiguous prefix too)
        }
    }

    /// Add or replace a record (a new record for a name takes the name over). Returns the IDs
    /// forgotten to stay under [`MAX_RECORDS`].
    pub fn insert(&mut self, id: &str, name: &str, risk: Risk) -> (Record, Vec<String>) {
        let name = bare_name(name).to_string();
        if let Some(old) = self.by_id.get(id) {
            if !old.name.is_empty() && old.name != name {
                self.by_name.remove(&old.name);
            }
        }
        self.next_seq += 1;
        let rec = Record {
            id: id.to_string(),
            name: name.clone(),
            risk,
            seq: self.next_seq,
        };
        if !name.is_empty() {
            if let Some(prev) = self.by_name.insert(name, id.to_string()) {
                if prev != id {
                    // dockerd names are unique: the holder of the name before is gone.
                    if let Some(p) = self.by_id.get_mut(&prev) {
                        p.name.clear();
                    }
                }
            }
        }
        self.by_id.insert(id.to_string(), rec.clone());
        (rec, self.evict())
    }

    /// Put back a stored record (at start).
    pub fn restore(&mut self, rec: Record) {
        self.next_seq = self.next_seq.max(rec.seq);
        if !rec.name.is_empty() {
            self.by_name.insert(rec.name.clone(), rec.id.clone());
        }
        self.by_id.insert(rec.id.clone(), rec);
    }

    /// Forget the container `reference` names; returns its ID.
    pub fn remove(&mut self, reference: &str) -> Option<String> {
        let id = self.resolve(reference)?.id.clone();
        if let Some(rec) = self.by_id.remove(&id) {
            if self.by_name.get(&rec.name) == Some(&id) {
                self.by_name.remove(&rec.name);
            }
        }
        Some(id)
    }

    /// Rename; returns the updated record.
    pub fn rename(&mut self, reference: &str, new_name: &str) -> Option<Record> {
        let rec = self.resolve(reference)?.clone();
        Some(self.insert(&rec.id, new_name, rec.risk).0)
    }

    fn evict(&mut self) -> Vec<String> {
        if self.by_id.len() <= MAX_RECORDS {
            return Vec::new();
        }
        let mut seqs: Vec<(u64, String)> =
            self.by_id.values().map(|r| (r.seq, r.id.clone())).collect();
        seqs.sort_unstable();
        let drop: Vec<String> = seqs
            .into_iter()
            .take(MAX_RECORDS / 10)
            .map(|(_, id)| id)
            .collect();
        for id in &drop {
            self.remove(id);
        }
        drop
    }
}

impl Containers for Registry {
    fn lookup(&self, reference: &str) -> Option<Risk> {
        self.resolve(reference).map(|r| r.risk.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn resolves_like_dockerd() {
        let mut r = Registry::default();
        let priv_risk = Risk {
            privileged: true,
            ..Default::default()
        };
        r.insert(&id('a'), "/web", Risk::default());
        r.insert(&format!("ab{}", &id('0')[2..]), "db", priv_risk.clone());
        assert_eq!(r.lookup(&id('a')), Some(Risk::default()));
        assert_eq!(r.lookup("web"), Some(Risk::default()));
        assert_eq!(r.lookup("/web"), Some(Risk::default()));
        assert_eq!(r.lookup("db"), Some(priv_risk.clone()));
        assert_eq!(r.lookup("aaaa"), Some(Risk::default()));
        assert_eq!(r.lookup("AAAA"), Some(Risk::default()));
        assert_eq!(r.lookup("ab0"), Some(priv_risk.clone()));
        assert_eq!(r.lookup("a"), None, "ambiguous prefix");
        assert_eq!(r.lookup("nope"), None);
        assert_eq!(r.lookup(""), None);
        // A name is taken over by the newest container; a rename moves it.
        r.insert(&id('c'), "web", priv_risk.clone());
        assert_eq!(r.lookup("web"), Some(priv_risk.clone()));
        assert!(r.rename("web", "web2").is_some());
        assert_eq!(r.lookup("web"), None);
        assert_eq!(r.lookup("web2"), Some(priv_risk));
        assert_eq!(r.remove("web2"), Some(id('c')));
        assert_eq!(r.lookup("web2"), None);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn bounded() {
        let mut r = Registry::default();
        let mut forgotten = 0;
        for i in 0..MAX_RECORDS + 1 {
            let (_, gone) = r.insert(&format!("{i:064x}"), &format!("c{i}"), Risk::default());
            forgotten += gone.len();
        }
        assert_eq!(forgotten, MAX_RECORDS / 10);
        assert_eq!(r.len(), MAX_RECORDS + 1 - MAX_RECORDS / 10);
        assert_eq!(r.lookup("c0"), None, "the oldest went first");
        assert!(r.lookup(&format!("c{MAX_RECORDS}")).is_some());
    }
}
