//! The one error type of the volume driver and its mapping to the `{"Err": …}` reply.
//!
//! Every message is written for the person who typed the `docker` command: it names the volume,
//! the option or the path, and says what would have been accepted.

use common::ApiError;

/// Everything that can go wrong in the volume driver.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The name cannot be used as a volume name.
    #[error("invalid volume name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused and what is allowed.
        reason: String,
    },
    /// A `Mount`/`Unmount` caller ID that is empty or absurdly long.
    #[error("invalid caller ID ({len} bytes): dockerd sends a 64-character container or mount ID")]
    InvalidId {
        /// Its length.
        len: usize,
    },
    /// An option key that is not known for this backend.
    #[error("unknown option {option:?} for type={backend}; valid options: {valid}")]
    UnknownOption {
        /// The option key.
        option: String,
        /// The backend the volume would use.
        backend: &'static str,
        /// The valid keys, comma-separated.
        valid: String,
    },
    /// A known option with a value that does not parse or is out of range.
    #[error("invalid value for option {option}={value:?}: {reason}")]
    InvalidOption {
        /// The option key.
        option: String,
        /// The value given.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// `size` asked for a `dir` volume on a filesystem without project quota support.
    #[error(
        "option size is not supported for type=dir here: the data directory {path} is on {fs}, \
         and this plugin enforces sizes only with project quotas, which are not available; \
         use -o type=tmpfs -o size=… for a size-limited volume"
    )]
    SizeUnsupported {
        /// The data directory.
        path: String,
        /// Its filesystem type.
        fs: String,
    },
    /// A `bind` path outside the allowed host prefixes.
    #[error("bind path {path:?} (resolved to {resolved:?}) is not under an allowed host prefix; allowed: {allowed} (plugin setting BIND_ALLOWED)")]
    BindNotAllowed {
        /// The path given.
        path: String,
        /// The path after resolving `..` and symlinks on the host.
        resolved: String,
        /// The allowed prefixes, or a note that none are.
        allowed: String,
    },
    /// A `bind` path that does not name an existing host directory.
    #[error("bind path {path:?}: {reason}")]
    BindPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such volume.
    #[error("no such volume: {0}")]
    NotFound(String),
    /// A volume of that name exists with other options.
    #[error("volume {name} already exists with different options ({existing}); remove it first")]
    Exists {
        /// The name.
        name: String,
        /// The options it was created with.
        existing: String,
    },
    /// Remove refused: callers still hold the volume mounted.
    #[error("volume {name} is in use: mounted by {count} caller(s): {ids}")]
    InUse {
        /// The volume.
        name: String,
        /// How many references are held.
        count: u32,
        /// The caller IDs, comma-separated.
        ids: String,
    },
    /// The volume's data is not where it should be.
    #[error("volume {name}: data missing: {detail}")]
    DataMissing {
        /// The volume.
        name: String,
        /// What is missing.
        detail: String,
    },
    /// A system call failed.
    #[error("volume {name}: cannot {op} {path}: {source}")]
    Io {
        /// The volume.
        name: String,
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] common::StoreError),
}

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        let msg = e.to_string();
        match e {
            VolumeError::InvalidName { .. }
            | VolumeError::InvalidId { .. }
            | VolumeError::UnknownOption { .. }
            | VolumeError::InvalidOption { .. }
            | VolumeError::SizeUnsupported { .. }
            | VolumeError::BindNotAllowed { .. }
            | VolumeError::BindPath { .. } => ApiError::bad_request(msg),
            VolumeError::NotFound(_) => ApiError::not_found(msg),
            VolumeError::Exists { .. } | VolumeError::InUse { .. } => ApiError::conflict(msg),
            VolumeError::DataMissing { .. } | VolumeError::Io { .. } | VolumeError::Store(_) => {
                ApiError::internal(msg)
            }
        }
    }
}
