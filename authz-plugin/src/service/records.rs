//! What replies teach about containers: records learnt from `AuthZRes` of creates, inspects,
//! renames, removals and prunes, kept durable so later calls that share or act on a container
//! are judged by its facts.

use super::*;

impl<S: Sys> Service<S> {
    /// Learn from a reply dockerd sent: a created container (its ID from the reply, its facts
    /// from the request dockerd accepted), an inspected one (the settings dockerd applied), a
    /// rename, a removal, a prune. Returns whether the records changed (the caller makes them
    /// durable before answering).
    pub fn observe_response(&self, req: &ApiCall) -> bool {
        let status = req.response_status.unwrap_or(0);
        if !(200..300).contains(&status) {
            return false;
        }
        let route = route::classify(&req.method, &req.uri);
        let json = |body: Option<&Result<Vec<u8>, String>>| -> Option<serde_json::Value> {
            match body? {
                Ok(bytes) if !bytes.trim_ascii().is_empty() => parse_strict(bytes).ok(),
                _ => None,
            }
        };
        let first = |k: &str| route.query.get(k).and_then(|v| v.first()).cloned();
        let mut reg = self.containers.write().unwrap_or_else(|p| p.into_inner());
        let mut put: Vec<Record> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        match route.action {
            "container.create" => {
                let Some(reply) = json(req.response_bytes().as_ref()) else {
                    return false;
                };
                let Some(id) = reply.get("id").and_then(|v| v.as_str()) else {
                    return false;
                };
                let facts = match json(req.body.as_ref()) {
                    Some(body) => Facts::from_body("container.create", &body),
                    // Created from a body the plugin never saw: all it knows is that it does not
                    // know (fail closed for anything sharing it).
                    None => Facts {
                        unseen: vec![id.to_string()],
                        ..Default::default()
                    },
                };
                let risk = Risk::of(&resolve_shares(facts, &reg, self.sys.host_fs()));
                let (rec, evicted) = reg.insert(id, &first("name").unwrap_or_default(), risk);
                put.push(rec);
                gone = evicted;
            }
            "container.inspect" => {
                let Some(reply) = json(req.response_bytes().as_ref()) else {
                    return false;
                };
                let (Some(id), name) = (
                    reply.get("id").and_then(|v| v.as_str()).map(String::from),
                    reply
                        .get("name")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                ) else {
                    return false;
                };
                let (id, name) = (id.as_str(), name.as_str());
                // The reply's HostConfig is what dockerd applied; its Mounts are the real ones.
                // Its CgroupnsMode is the daemon's default filled in ("host" on cgroup v1 hosts),
                // not a request: an asked-for host cgroup namespace is in the create record.
                let mut reply = reply;
                if let Some(hc) = reply.get_mut("hostconfig").and_then(|h| h.as_object_mut()) {
                    hc.remove("cgroupnsmode");
                }
                let facts = Facts::from_body("container.create", &reply);
                let mut risk = Risk::of(&resolve_shares(facts, &reg, self.sys.host_fs()));
                // Facts never go away: keep what the create request asked for too.
                if let Some(old) = reg.resolve(id) {
                    risk = risk.union(&old.risk);
                    if old.risk == risk && old.name == crate::containers::bare_name(name) {
                        return false;
                    }
                }
                let (rec, evicted) = reg.insert(id, name, risk);
                put.push(rec);
                gone = evicted;
            }
            "container.rename" => {
                let (Some(x), Some(new)) = (route.name.as_deref(), first("name")) else {
                    return false;
                };
                match reg.rename(x, &new) {
                    Some(rec) => put.push(rec),
                    None => return false,
                }
            }
            "container.delete" => {
                let Some(id) = route.name.as_deref().and_then(|x| reg.remove(x)) else {
                    return false;
                };
                gone.push(id);
            }
            "container.prune" => {
                let Some(reply) = json(req.response_bytes().as_ref()) else {
                    return false;
                };
                for id in crate::body::strings(reply.get("containersdeleted")) {
                    if let Some(id) = reg.remove(&id) {
                        gone.push(id);
                    }
                }
            }
            _ => return false,
        }
        drop(reg);
        if let Some((_, tree)) = &self.records {
            for rec in &put {
                if let Err(e) = tree.insert(&rec.id, rec) {
                    tracing::warn!("cannot store the record of container {}: {e}", rec.id);
                }
            }
            for id in &gone {
                if let Err(e) = tree.remove(id) {
                    tracing::warn!("cannot remove the record of container {id}: {e}");
                }
            }
        }
        !(put.is_empty() && gone.is_empty())
    }
}

/// A container's facts with its host paths resolved and the containers it shares taken on
/// (transitively: their records already hold what they shared).
fn resolve_shares(mut f: Facts, reg: &Registry, host: Option<&dyn HostFs>) -> Facts {
    if let Some(h) = host {
        // Record the paths the kernel bound (as the request was judged), `/` if unresolvable.
        for p in &mut f.host_paths {
            *p = hostfs::resolve(h, p).unwrap_or_else(|_| "/".into());
        }
    }
    for x in f.shared_with.clone() {
        let risk = reg.lookup(&x);
        f.absorb(&x, risk.as_ref());
    }
    f
}
