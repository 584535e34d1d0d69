//! In-memory host for unit tests: links by name, FDB entries per device, a call log.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::{OverlaySys, VxlanSpec};
use crate::sys::{Link, SysError, VethSpec};

#[derive(Debug, Default)]
struct St {
    links: BTreeMap<String, Link>,
    fdb: BTreeSet<(String, Ipv4Addr)>,
    next: u32,
}

/// The fake host (clones share state).
#[derive(Debug, Clone, Default)]
pub struct FakeOverlay {
    st: Arc<Mutex<St>>,
}

impl FakeOverlay {
    fn with<R>(&self, f: impl FnOnce(&mut St) -> R) -> R {
        let mut g = match self.st.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }
    fn add(
        &self,
        name: &str,
        kind: &str,
        alias: &str,
        controller: Option<&str>,
    ) -> Result<(), SysError> {
        self.with(|s| {
            if s.links.contains_key(name) {
                return Err(SysError::from_errno(libc::EEXIST));
            }
            let ctl = match controller {
                Some(c) => Some(
                    s.links
                        .get(c)
                        .map(|l| l.index)
                        .ok_or_else(|| SysError::from_errno(libc::ENODEV))?,
                ),
                None => None,
            };
            s.next += 1;
            let l = Link {
                index: s.next,
                name: name.into(),
                kind: Some(kind.into()),
                alias: Some(alias.into()),
                controller: ctl,
                mtu: 1450,
                up: true,
            };
            s.links.insert(name.into(), l);
            Ok(())
        })
    }
    /// Link names present.
    pub fn names(&self) -> Vec<String> {
        self.with(|s| s.links.keys().cloned().collect())
    }
    /// FDB entries present.
    pub fn fdb(&self) -> Vec<(String, Ipv4Addr)> {
        self.with(|s| s.fdb.iter().cloned().collect())
    }
    /// Remove a link behind the driver's back.
    pub fn vanish(&self, name: &str) {
        self.with(|s| {
            s.links.remove(name);
            s.fdb.retain(|(d, _)| d != name);
        })
    }
}

impl OverlaySys for FakeOverlay {
    async fn links(&self) -> Result<Vec<Link>, SysError> {
        Ok(self.with(|s| s.links.values().cloned().collect()))
    }
    async fn bridge(&self, name: &str, _mtu: u32, alias: &str) -> Result<(), SysError> {
        self.add(name, "bridge", alias, None)
    }
    async fn vxlan(&self, spec: &VxlanSpec) -> Result<(), SysError> {
        self.add(&spec.name, "vxlan", &spec.alias, Some(&spec.bridge))
    }
    async fn veth(&self, spec: &VethSpec) -> Result<(), SysError> {
        self.add(&spec.host, "veth", &spec.alias, Some(&spec.bridge))?;
        self.add(&spec.peer, "veth", "", None)
    }
    async fn attach(&self, link: &str, bridge: &str) -> Result<(), SysError> {
        self.with(|s| {
            let b = s
                .links
                .get(bridge)
                .map(|l| l.index)
                .ok_or_else(|| SysError::from_errno(libc::ENODEV))?;
            let l = s
                .links
                .get_mut(link)
                .ok_or_else(|| SysError::from_errno(libc::ENODEV))?;
            l.controller = Some(b);
            Ok(())
        })
    }
    async fn delete(&self, name: &str) -> Result<bool, SysError> {
        Ok(self.with(|s| {
            s.fdb.retain(|(d, _)| d != name);
            if let Some(rest) = name.strip_prefix("oxh") {
                s.links.remove(&format!("oxc{rest}"));
            }
            s.links.remove(name).is_some()
        }))
    }
    async fn fdb_add(&self, dev: &str, peer: Ipv4Addr) -> Result<(), SysError> {
        self.with(|s| {
            if !s.links.contains_key(dev) {
                return Err(SysError::from_errno(libc::ENODEV));
            }
            s.fdb.insert((dev.into(), peer));
            Ok(())
        })
    }
    async fn fdb_del(&self, dev: &str, peer: Ipv4Addr) -> Result<(), SysError> {
        self.with(|s| {
            s.fdb.remove(&(dev.to_string(), peer));
            Ok(())
        })
    }
}
