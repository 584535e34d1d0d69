//! Restart safety: the kernel made to match the store (bridges, VXLAN devices, FDB entries,
//! veths on their bridge); links of this instance that belong to nothing are deleted.

use std::collections::BTreeSet;

use super::Overlay;
use crate::error::NetworkError;
use crate::overlay::sys::OverlaySys;

impl<S: OverlaySys> Overlay<S> {
    // ----- restart safety -----

    /// Make the kernel match the store: bridges, VXLAN devices, FDB entries toward every
    /// stored peer, veths on their bridge; links of ours that belong to nothing are deleted.
    pub async fn reconcile(&self) -> Result<Report, NetworkError> {
        let _g = self.lock.lock().await;
        let mut rep = Report::default();
        let links = self
            .sys
            .links()
            .await
            .map_err(NetworkError::sys("listing links"))?;
        let present: BTreeSet<String> = links.iter().map(|l| l.name.clone()).collect();
        let mut nets = BTreeSet::new();
        for r in self.nets.iter() {
            let (_, n) = r?;
            nets.insert(n.id.clone());
            match self.build(&n, &present).await {
                Ok(made) => {
                    rep.recreated += usize::from(made);
                    rep.fdb += self.peers()?.len();
                }
                Err(e) => rep.errors.push(e.to_string()),
            }
        }
        let mut eps = BTreeSet::new();
        for r in self.eps.iter() {
            let (k, e) = r?;
            match self.nets.get(&e.network_id)? {
                None => {
                    let _ = self.sys.delete(&e.host).await;
                    self.eps.remove(&k)?;
                    rep.deleted += 1;
                }
                Some(n) => {
                    eps.insert(e.id.clone());
                    if present.contains(&e.host) {
                        if let Err(err) = self.sys.attach(&e.host, &n.bridge).await {
                            rep.errors.push(format!("attaching {}: {err}", e.host));
                        }
                    }
                }
            }
        }
        for l in &links {
            let Some((kind, id)) = l.alias.as_deref().and_then(|a| self.owner(a)) else {
                continue;
            };
            let known = match kind {
                "net" | "vx" => nets.contains(id),
                "ep" => eps.contains(id),
                _ => true,
            };
            if !known {
                match self.sys.delete(&l.name).await {
                    Ok(_) => rep.deleted += 1,
                    Err(e) => rep.errors.push(format!("deleting {}: {e}", l.name)),
                }
            }
        }
        self.store.flush().await?;
        Ok(rep)
    }
}

/// What reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Networks whose links were made again.
    pub recreated: usize,
    /// Links of ours that belonged to nothing, deleted.
    pub deleted: usize,
    /// FDB entries (re)installed.
    pub fdb: usize,
    /// Problems that did not stop reconcile.
    pub errors: Vec<String>,
}
