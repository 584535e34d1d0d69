//! Measured size of `dir`/`bind` volumes, walked in a blocking task and cached for `Status`.

use super::*;

impl<S: Sys> Service<S> {
    /// Measure `dir`/`bind` volumes in a blocking task and cache the figures.
    pub async fn refresh_usage(self: &Arc<Self>, records: Vec<VolumeRecord>) {
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            for rec in records {
                let path = match rec.spec.kind {
                    Kind::Dir => me.data_path(&rec.name),
                    Kind::Bind => me.paths.host_root.join(
                        rec.host_path
                            .as_deref()
                            .unwrap_or("/")
                            .trim_start_matches('/'),
                    ),
                    Kind::Tmpfs => continue,
                };
                match me.sys.dir_usage(&path, USAGE_WALK_LIMIT) {
                    Ok(u) => {
                        if let Ok(mut cache) = me.usage.write() {
                            cache.insert(
                                rec.name.clone(),
                                Usage {
                                    bytes: u.bytes,
                                    complete: u.complete,
                                    measured_at: now_rfc3339(),
                                },
                            );
                        }
                    }
                    Err(e) => tracing::debug!(volume = %rec.name, "cannot measure: {e}"),
                }
            }
        })
        .await;
        if let Err(e) = res {
            tracing::error!("usage measurement task failed: {e}");
        }
    }
}
