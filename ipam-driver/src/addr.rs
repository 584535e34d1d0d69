//! Addresses and prefixes as plain numbers: an IPv4 or IPv6 address is a `u128` plus a family
//! flag, so the allocator and the overlap index do integer arithmetic only. This module owns
//! parsing and printing; it knows nothing of pools, the store or HTTP.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address of either family as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    /// IPv6 (true) or IPv4 (false).
    pub v6: bool,
    /// The address as an integer (IPv4 in the low 32 bits).
    pub n: u128,
}

impl Addr {
    /// Parse a plain address (no prefix).
    pub fn parse(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<IpAddr>()
            .map(Self::from)
            .map_err(|_| format!("{s:?} is not an IP address"))
    }

    /// The standard library form.
    pub fn ip(self) -> IpAddr {
        to_ip(self.v6, self.n)
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self {
                v6: false,
                n: u128::from(u32::from(a)),
            },
            IpAddr::V6(a) => Self {
                v6: true,
                n: u128::from(a),
            },
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

/// The address `n` of family `v6` in standard form (IPv4 keeps the low 32 bits).
pub fn to_ip(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from((n & u128::from(u32::MAX)) as u32))
    }
}

/// A CIDR prefix, always stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// IPv6 (true) or IPv4 (false).
    pub v6: bool,
    /// Network address as an integer.
    pub net: u128,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Address width of the family: 32 or 128.
    pub fn bits(v6: bool) -> u8 {
        if v6 {
            128
        } else {
            32
        }
    }

    /// Build a prefix, clearing host bits. `len` must not exceed the family width.
    pub fn new(v6: bool, n: u128, len: u8) -> Result<Self, String> {
        if len > Self::bits(v6) {
            return Err(format!("prefix length /{len} is too long"));
        }
        let p = Self { v6, net: 0, len };
        Ok(Self {
            net: n & !p.host_mask(),
            ..p
        })
    }

    /// Parse `addr/len`. Host bits are cleared (`10.0.0.5/24` is `10.0.0.0/24`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR prefix (address/length)"))?;
        let addr = Addr::parse(a).map_err(|_| format!("{s:?} is not a CIDR prefix"))?;
        let len: u8 = l
            .parse()
            .map_err(|_| format!("{s:?} has an invalid prefix length"))?;
        Self::new(addr.v6, addr.n, len).map_err(|e| format!("{s:?}: {e}"))
    }

    /// Mask of the host bits.
    pub fn host_mask(&self) -> u128 {
        let host = u32::from(Self::bits(self.v6) - self.len);
        if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        }
    }

    /// First address (the network address).
    pub fn first(&self) -> u128 {
        self.net
    }

    /// Last address (the IPv4 broadcast address).
    pub fn last(&self) -> u128 {
        self.net | self.host_mask()
    }

    /// Whether `a` lies inside.
    pub fn contains(&self, a: Addr) -> bool {
        a.v6 == self.v6 && a.n >= self.first() && a.n <= self.last()
    }

    /// Whether `other` lies entirely inside.
    pub fn covers(&self, other: &Prefix) -> bool {
        self.v6 == other.v6 && other.first() >= self.first() && other.last() <= self.last()
    }

    /// Whether the two share at least one address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.v6 == other.v6 && self.first() <= other.last() && other.first() <= self.last()
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub fn size(&self) -> u128 {
        self.host_mask().saturating_add(1)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", to_ip(self.v6, self.net), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let p = Prefix::parse("10.98.0.5/24").unwrap();
        assert_eq!(p.to_string(), "10.98.0.0/24");
        assert_eq!(p.size(), 256);
        assert!(p.contains(Addr::parse("10.98.0.255").unwrap()));
        assert!(!p.contains(Addr::parse("10.98.1.0").unwrap()));
        let v6 = Prefix::parse("fd00:1::/64").unwrap();
        assert_eq!(v6.to_string(), "fd00:1::/64");
        assert_eq!(v6.size(), 1 << 64);
        assert!(!v6.contains(Addr::parse("10.98.0.1").unwrap()));
        assert_eq!(Prefix::parse("::/0").unwrap().size(), u128::MAX);
        assert!(Prefix::parse("10.0.0.0/33").is_err());
        assert!(Prefix::parse("10.0.0.0").is_err());
        assert!(Prefix::parse("nope/8").is_err());
    }

    #[test]
    fn overlap_and_cover() {
        let a = Prefix::parse("10.98.0.0/16").unwrap();
        let b = Prefix::parse("10.98.5.0/24").unwrap();
        let c = Prefix::parse("10.99.0.0/24").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a) && a.covers(&b) && !b.covers(&a));
        assert!(!a.overlaps(&c));
    }
}
