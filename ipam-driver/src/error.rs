//! The one error type of the IPAM plugin and its mapping to dockerd's `{"Err": …}` replies.

/// Everything an IPAM call can fail with. Messages are what the user sees after
/// `IpamDriver.<Method>: `.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Malformed or contradictory input (bad CIDR, family mismatch, bad option, …).
    #[error("{0}")]
    Invalid(String),
    /// The address space is not one of ours.
    #[error("unknown address space {0:?}: this driver serves {1} and {2}")]
    UnknownSpace(String, String, String),
    /// No pool with this ID.
    #[error("no pool with ID {0:?}")]
    UnknownPool(String),
    /// The requested subnet overlaps a pool already held in the same address space (the
    /// message names that pool: its subnet, PoolID, label and creation time).
    #[error("{0}")]
    Overlap(String),
    /// No default pool is free.
    #[error(
        "no free {family} pool left in the default pools {pools} of address space {space}{routes}"
    )]
    NoDefaultPool {
        /// IPv4 or IPv6.
        family: &'static str,
        /// The configured default pools.
        pools: String,
        /// The address space.
        space: String,
        /// Note about skipped host routes.
        routes: String,
    },
    /// The address is not inside the pool.
    #[error("address {addr} is outside pool {pool}")]
    Outside {
        /// The address.
        addr: String,
        /// The pool's subnet.
        pool: String,
    },
    /// Network or broadcast address.
    #[error("address {addr} is the network or broadcast address of pool {pool}")]
    NotUsable {
        /// The address.
        addr: String,
        /// The pool's subnet.
        pool: String,
    },
    /// Already held.
    #[error("address {addr} of pool {pool} is already in use (held by {kind})")]
    InUse {
        /// The address.
        addr: String,
        /// The pool's subnet.
        pool: String,
        /// Holder kind.
        kind: &'static str,
    },
    /// No free address left.
    #[error("no free address left in pool {pool}{range}: {held} of {capacity} usable addresses are held")]
    Exhausted {
        /// The pool's subnet.
        pool: String,
        /// ` (ip-range X)` or empty.
        range: String,
        /// Held addresses.
        held: u128,
        /// Usable addresses.
        capacity: u128,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] common::StoreError),
    /// Stored state does not decode.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// Reading host routes failed.
    #[error("cannot read host routes: {0}")]
    Routes(String),
}

impl From<IpamError> for common::ApiError {
    fn from(e: IpamError) -> Self {
        let msg = e.to_string();
        match e {
            IpamError::Invalid(_)
            | IpamError::UnknownSpace(..)
            | IpamError::Outside { .. }
            | IpamError::NotUsable { .. } => common::ApiError::bad_request(msg),
            IpamError::UnknownPool(_) => common::ApiError::not_found(msg),
            IpamError::Overlap(_)
            | IpamError::InUse { .. }
            | IpamError::Exhausted { .. }
            | IpamError::NoDefaultPool { .. } => common::ApiError::conflict(msg),
            IpamError::Store(_) | IpamError::Corrupt(_) | IpamError::Routes(_) => {
                common::ApiError::internal(msg)
            }
        }
    }
}

impl axum::response::IntoResponse for IpamError {
    fn into_response(self) -> axum::response::Response {
        common::ApiError::from(self).into_response()
    }
}
