//! Names and ownership tags of the links this driver makes.
//!
//! Every generated name carries the plugin instance's tag (4 hex, chosen once and kept in the
//! store), so two plugin instances on one host (two private dockerds) never take or delete each
//! other's links: `ob<tag><9 of network ID>` bridges, `ov<tag><9 of endpoint ID>` host veth ends,
//! `oc<tag><9 of endpoint ID>` container ends: 15 characters, the kernel's limit. Links also carry
//! an alias `outboard-network <tag> net|ep <full ID>`, which identifies user-named bridges too.

/// Length of the ID part in generated names.
const ID_CHARS: usize = 9;
/// Alias prefix of every link we own.
const ALIAS_PREFIX: &str = "outboard-network";

/// Check an ID dockerd sent: 12 to 64 lowercase hex/alphanumeric characters.
pub fn valid_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn short(id: &str) -> &str {
    id.get(..ID_CHARS).unwrap_or(id)
}

/// The generated (and temporary) bridge name of a network.
pub fn bridge_name(tag: &str, network_id: &str) -> String {
    format!("ob{tag}{}", short(network_id))
}

/// Host end of an endpoint's veth pair.
pub fn veth_host(tag: &str, endpoint_id: &str) -> String {
    format!("ov{tag}{}", short(endpoint_id))
}

/// Container end of an endpoint's veth pair (the `SrcName` of `Join`).
pub fn veth_peer(tag: &str, endpoint_id: &str) -> String {
    format!("oc{tag}{}", short(endpoint_id))
}

/// The container end belonging to a host end name.
pub fn veth_peer_of(host: &str) -> Option<String> {
    host.strip_prefix("ov").map(|rest| format!("oc{rest}"))
}

/// Whether `name` is a generated name of instance `tag`.
pub fn is_generated(tag: &str, name: &str) -> bool {
    ["ob", "ov", "oc"].iter().any(|p| {
        name.len() == 2 + tag.len() + ID_CHARS
            && name.starts_with(p)
            && name.get(2..2 + tag.len()) == Some(tag)
    })
}

/// Alias of a network's bridge.
pub fn network_alias(tag: &str, network_id: &str) -> String {
    format!("{ALIAS_PREFIX} {tag} net {network_id}")
}

/// Alias of an endpoint's host veth end.
pub fn endpoint_alias(tag: &str, endpoint_id: &str) -> String {
    format!("{ALIAS_PREFIX} {tag} ep {endpoint_id}")
}

/// What an alias says about the owner, if it is ours (this instance's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The bridge of this network.
    Network(String),
    /// The host end of this endpoint.
    Endpoint(String),
}

/// Parse an alias; `None` when it is not an alias of instance `tag`.
pub fn owner(tag: &str, alias: &str) -> Option<Owner> {
    let mut parts = alias.split(' ');
    if parts.next()? != ALIAS_PREFIX || parts.next()? != tag {
        return None;
    }
    let kind = parts.next()?;
    let id = parts.next()?.to_string();
    match kind {
        "net" => Some(Owner::Network(id)),
        "ep" => Some(Owner::Endpoint(id)),
        _ => None,
    }
}

/// A new instance tag: 4 hex characters from the kernel's random pool.
pub fn new_tag() -> String {
    let mut bytes = [0u8; 2];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        // Fall back to time and pid: uniqueness between a few instances is all we need.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id();
        bytes = [(t >> 8) as u8, t as u8];
    }
    format!("{:02x}{:02x}", bytes[0], bytes[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_are_recognised() {
        let id = "3f0c2b1a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
        let b = bridge_name("a1b2", id);
        let h = veth_host("a1b2", id);
        let p = veth_peer("a1b2", id);
        assert_eq!(b, "oba1b23f0c2b1a9");
        assert!(b.len() <= 15 && h.len() <= 15 && p.len() <= 15);
        assert!(is_generated("a1b2", &b) && is_generated("a1b2", &h) && is_generated("a1b2", &p));
        assert!(!is_generated("ffff", &b));
        assert!(!is_generated("a1b2", "eth0"));
        assert_eq!(veth_peer_of(&h).as_deref(), Some(p.as_str()));
    }

    #[test]
    fn aliases_round_trip_and_other_instances_are_not_ours() {
        assert_eq!(
            owner("a1b2", &network_alias("a1b2", "n1")),
            Some(Owner::Network("n1".into()))
        );
        assert_eq!(
            owner("a1b2", &endpoint_alias("a1b2", "e1")),
            Some(Owner::Endpoint("e1".into()))
        );
        assert_eq!(owner("ffff", &network_alias("a1b2", "n1")), None);
        assert_eq!(owner("a1b2", "my uplink"), None);
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id(&"a".repeat(64)));
        assert!(!valid_id("short"));
        assert!(!valid_id(&format!("{}/x", "a".repeat(20))));
        assert_eq!(new_tag().len(), 4);
    }
}
