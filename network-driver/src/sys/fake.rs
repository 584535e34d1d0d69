//! A recording fake of [`Sys`]: keeps links and the firewall in memory, logs every call as a
//! short line, and fails the Nth mutating call on request (for rollback tests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;

use super::{BridgeSpec, Link, Sys, SysError, VethSpec};
use crate::firewall::Ruleset;

#[derive(Debug, Default)]
struct State {
    links: BTreeMap<String, Link>,
    addrs: BTreeMap<String, Vec<IpNet>>,
    next_index: u32,
    calls: Vec<String>,
    mutations: usize,
    fail_at: Option<usize>,
    firewall: Option<Ruleset>,
    firewall_broken: bool,
}

/// The fake host. Cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct FakeSys {
    state: Arc<Mutex<State>>,
}

impl FakeSys {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Fail the `n`th mutating call from now on (1 = the next one).
    pub fn fail_nth(&self, n: usize) {
        let mut s = self.lock();
        s.fail_at = Some(s.mutations + n);
    }

    /// Make every firewall call fail (a host without nftables).
    pub fn break_firewall(&self) {
        self.lock().firewall_broken = true;
    }

    /// The calls made so far, one line each.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Names of the links present.
    pub fn link_names(&self) -> Vec<String> {
        self.lock().links.keys().cloned().collect()
    }

    /// Addresses on a link.
    pub fn addrs(&self, name: &str) -> Vec<IpNet> {
        self.lock().addrs.get(name).cloned().unwrap_or_default()
    }

    /// The firewall as last applied (`None`: no table).
    pub fn firewall(&self) -> Option<Ruleset> {
        self.lock().firewall.clone()
    }

    /// Add a link made by someone else (e.g. left over from a crash).
    pub fn add_foreign_link(&self, name: &str, kind: &str, alias: Option<&str>) {
        let mut s = self.lock();
        s.next_index += 1;
        let index = s.next_index;
        s.links.insert(
            name.to_string(),
            Link {
                index,
                name: name.to_string(),
                kind: Some(kind.to_string()),
                alias: alias.map(str::to_string),
                controller: None,
                mtu: 1500,
                up: false,
            },
        );
    }

    /// Remove a link behind the driver's back (e.g. a host reboot).
    pub fn remove_link(&self, name: &str) {
        self.lock().links.remove(name);
    }

    /// Record a mutating call; fail it if it is the one chosen.
    fn mutate(s: &mut State, call: String) -> Result<(), SysError> {
        s.mutations += 1;
        s.calls.push(call.clone());
        if s.fail_at == Some(s.mutations) {
            return Err(SysError::Other(format!("injected failure of {call}")));
        }
        Ok(())
    }

    fn new_link(s: &mut State, name: &str, kind: &str, mtu: u32) -> Result<u32, SysError> {
        if s.links.contains_key(name) {
            return Err(SysError::from_errno(libc::EEXIST));
        }
        s.next_index += 1;
        let index = s.next_index;
        s.links.insert(
            name.to_string(),
            Link {
                index,
                name: name.to_string(),
                kind: Some(kind.to_string()),
                alias: None,
                controller: None,
                mtu,
                up: false,
            },
        );
        Ok(index)
    }
}

impl Sys for FakeSys {
    async fn list_links(&self) -> Result<Vec<Link>, SysError> {
        Ok(self.lock().links.values().cloned().collect())
    }

    async fn link(&self, name: &str) -> Result<Option<Link>, SysError> {
        Ok(self.lock().links.get(name).cloned())
    }

    async fn create_bridge(&self, spec: &BridgeSpec) -> Result<(), SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("create_bridge {}", spec.name))?;
        Self::new_link(&mut s, &spec.tmp_name, "bridge", spec.mtu)?;
        if let Some(mut l) = s.links.remove(&spec.tmp_name) {
            if s.links.contains_key(&spec.name) {
                s.links.insert(spec.tmp_name.clone(), l);
                return Err(SysError::from_errno(libc::EEXIST));
            }
            l.name = spec.name.clone();
            l.alias = Some(spec.alias.clone());
            l.up = true;
            s.links.insert(spec.name.clone(), l);
        }
        Ok(())
    }

    async fn ensure_up(&self, name: &str, mtu: u32) -> Result<(), SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("ensure_up {name}"))?;
        let l = s
            .links
            .get_mut(name)
            .ok_or_else(|| SysError::from_errno(libc::ENODEV))?;
        l.mtu = mtu;
        l.up = true;
        Ok(())
    }

    async fn add_address(&self, link: &str, addr: IpNet) -> Result<(), SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("add_address {link} {addr}"))?;
        if !s.links.contains_key(link) {
            return Err(SysError::from_errno(libc::ENODEV));
        }
        let list = s.addrs.entry(link.to_string()).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
        Ok(())
    }

    async fn create_veth(&self, spec: &VethSpec) -> Result<(), SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("create_veth {} {}", spec.host, spec.peer))?;
        let bridge = s
            .links
            .get(&spec.bridge)
            .map(|l| l.index)
            .ok_or_else(|| SysError::from_errno(libc::ENODEV))?;
        if s.links.contains_key(&spec.peer) {
            return Err(SysError::from_errno(libc::EEXIST));
        }
        Self::new_link(&mut s, &spec.host, "veth", spec.mtu)?;
        Self::new_link(&mut s, &spec.peer, "veth", spec.mtu)?;
        if let Some(l) = s.links.get_mut(&spec.host) {
            l.alias = Some(spec.alias.clone());
            l.controller = Some(bridge);
            l.up = true;
        }
        Ok(())
    }

    async fn attach(&self, link: &str, bridge: &str) -> Result<(), SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("attach {link} {bridge}"))?;
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
        l.up = true;
        Ok(())
    }

    async fn delete_link(&self, name: &str) -> Result<bool, SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("delete_link {name}"))?;
        let Some(l) = s.links.remove(name) else {
            return Ok(false);
        };
        s.addrs.remove(name);
        // A veth takes its peer with it: the fake pairs `…v…`/`…c…` names by position.
        if l.kind.as_deref() == Some("veth") {
            let peer: Option<String> = s
                .links
                .keys()
                .find(|k| crate::naming::veth_peer_of(name).as_deref() == Some(k.as_str()))
                .cloned();
            if let Some(p) = peer {
                s.links.remove(&p);
            }
        }
        // Deleting a bridge frees its ports.
        if l.kind.as_deref() == Some("bridge") {
            for other in s.links.values_mut() {
                if other.controller == Some(l.index) {
                    other.controller = None;
                }
            }
        }
        Ok(true)
    }

    async fn apply_firewall(&self, rules: &Ruleset) -> Result<(), SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("apply_firewall {}", rules.table))?;
        if s.firewall_broken {
            return Err(SysError::from_errno(libc::EPROTONOSUPPORT));
        }
        s.firewall = Some(rules.clone());
        Ok(())
    }

    fn forget_firewall(&self) {
        self.lock().calls.push("forget_firewall".into());
    }

    async fn remove_firewall(&self, table: &str) -> Result<(), SysError> {
        let mut s = self.lock();
        Self::mutate(&mut s, format!("remove_firewall {table}"))?;
        if s.firewall_broken {
            return Err(SysError::from_errno(libc::EPROTONOSUPPORT));
        }
        s.firewall = None;
        Ok(())
    }
}
