//! The one error type of the network driver and its mapping to the `{"Err": …}` reply.
//!
//! Messages are written for the person who typed the `docker` command: they name the option,
//! the network, the link or the step that failed.

use common::ApiError;

use crate::sys::SysError;

/// Everything that can go wrong in the network driver.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// An `-o` key this driver does not know.
    #[error("unknown option {option:?}; valid options: {valid}")]
    UnknownOption {
        /// The key given.
        option: String,
        /// The accepted keys.
        valid: &'static str,
    },
    /// A known option with a bad value.
    #[error("invalid value for option {option}={value:?}: {reason}")]
    InvalidOption {
        /// The key.
        option: String,
        /// The value given.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// A request field dockerd filled in a way we cannot use.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No such network in this driver.
    #[error("network {0} is not known to this driver")]
    NetworkNotFound(String),
    /// No such endpoint in this driver.
    #[error("endpoint {0} is not known to this driver")]
    EndpointNotFound(String),
    /// The request conflicts with existing networks, endpoints or host links.
    #[error("{0}")]
    Conflict(String),
    /// An option needs nftables, which this host or plugin cannot use.
    #[error("{what} needs the plugin's nftables firewall, which is not available here: {reason}")]
    FirewallUnavailable {
        /// The option or feature.
        what: String,
        /// Why the firewall is unavailable.
        reason: String,
    },
    /// A kernel operation failed (the step is named; what was made before it is removed).
    #[error("{step}: {source}")]
    Sys {
        /// What the driver was doing.
        step: String,
        /// The kernel's answer.
        source: SysError,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] common::StoreError),
}

impl NetworkError {
    /// Wrap a kernel error with the step it happened in.
    pub fn sys(step: impl Into<String>) -> impl FnOnce(SysError) -> Self {
        let step = step.into();
        move |source| Self::Sys { step, source }
    }
}

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> Self {
        let msg = e.to_string();
        match e {
            NetworkError::UnknownOption { .. }
            | NetworkError::InvalidOption { .. }
            | NetworkError::InvalidRequest(_)
            | NetworkError::FirewallUnavailable { .. } => ApiError::bad_request(msg),
            NetworkError::NetworkNotFound(_) | NetworkError::EndpointNotFound(_) => {
                ApiError::not_found(msg)
            }
            NetworkError::Conflict(_) => ApiError::conflict(msg),
            NetworkError::Sys { .. } | NetworkError::Store(_) => ApiError::internal(msg),
        }
    }
}
