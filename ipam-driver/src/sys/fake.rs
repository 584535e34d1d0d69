//! A recording fake of [`HostRoutes`] for tests and benches.

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::addr::Prefix;
use crate::sys::HostRoutes;

/// A fake with a settable route list that counts calls and can be told to fail.
#[derive(Debug, Clone, Default)]
pub struct FakeRoutes {
    inner: Arc<Mutex<FakeInner>>,
}

#[derive(Debug, Default)]
struct FakeInner {
    routes: Vec<Prefix>,
    calls: usize,
    fail: bool,
}

impl FakeRoutes {
    /// A fake answering `routes` (CIDR strings that must parse).
    pub fn with(routes: &[&str]) -> Self {
        let f = Self::default();
        f.set(routes);
        f
    }

    /// Replace the routes.
    pub fn set(&self, routes: &[&str]) {
        if let Ok(mut i) = self.inner.lock() {
            i.routes = routes
                .iter()
                .filter_map(|r| Prefix::parse(r).ok())
                .collect();
        }
    }

    /// Make every later call fail.
    pub fn fail(&self, fail: bool) {
        if let Ok(mut i) = self.inner.lock() {
            i.fail = fail;
        }
    }

    /// Number of calls so far.
    pub fn calls(&self) -> usize {
        self.inner.lock().map(|i| i.calls).unwrap_or(0)
    }
}

impl HostRoutes for FakeRoutes {
    fn routes(&self) -> impl Future<Output = Result<Vec<Prefix>, String>> + Send {
        let r = match self.inner.lock() {
            Ok(mut i) => {
                i.calls += 1;
                if i.fail {
                    Err("fake failure".to_string())
                } else {
                    Ok(i.routes.clone())
                }
            }
            Err(_) => Err("poisoned".to_string()),
        };
        async move { r }
    }
}
