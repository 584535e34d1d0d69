//! Link ownership by mark: every lookup before using, changing or deleting a link checks the
//! instance's mark in its alias, never its name; foreign links are left untouched.

use super::Service;
use crate::error::NetworkError;
use crate::naming::{self, Owner};
use crate::sys::Sys;

impl<S: Sys> Service<S> {
    /// The link named `name` when it carries this instance's mark for `want`; `Ok(None)` when
    /// no link has that name; an error naming the link when a link this driver does not own
    /// holds the name. Every lookup before using, changing or deleting a link goes through
    /// here: ownership is decided by the mark, never by the name.
    pub(super) async fn owned_link(
        &self,
        name: &str,
        want: &Owner,
    ) -> Result<Option<crate::sys::Link>, NetworkError> {
        let link = self
            .sys
            .link(name)
            .await
            .map_err(NetworkError::sys(format!("looking up link {name}")))?;
        match link {
            None => Ok(None),
            Some(l) => {
                let owner = l.alias.as_deref().and_then(|a| naming::owner(&self.tag, a));
                if owner.as_ref() == Some(want) {
                    Ok(Some(l))
                } else {
                    Err(NetworkError::Conflict(format!(
                        "network interface {name} is not this driver's ({}): it is left untouched; \
                         rename or remove it, or choose another name",
                        match &l.alias {
                            Some(a) if !a.is_empty() => format!("its alias is {a:?}"),
                            _ => "it carries no Outboard mark".to_string(),
                        }
                    )))
                }
            }
        }
    }

    /// Delete `name` if it is ours for `want` (absent: fine; foreign: an error, untouched).
    pub(super) async fn delete_owned(&self, name: &str, want: &Owner) -> Result<(), NetworkError> {
        if self.owned_link(name, want).await?.is_some() {
            self.sys
                .delete_link(name)
                .await
                .map_err(NetworkError::sys(format!("deleting link {name}")))?;
        }
        Ok(())
    }

    /// [`Self::delete_owned`] for cleanup paths: problems are logged, never raised.
    pub(super) async fn delete_quietly(&self, name: &str, want: &Owner) {
        if let Err(e) = self.delete_owned(name, want).await {
            tracing::warn!(link = %name, error = %e, "cleanup: link not deleted");
        }
    }
}
