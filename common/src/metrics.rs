//! Operating signals every plugin shares: `GET /metrics` (Prometheus text format 0.0.4),
//! `GET /health` (the process answers) and `GET /ready` (store open and the plugin's start-up
//! reconcile finished). A small hand-written encoder: the handful of families here do not
//! justify a metrics crate, and the text format is stable and simple.
//!
//! These routes are GET-only; dockerd's plugin client only ever POSTs to `/<Interface>.<Method>`
//! paths, so it cannot reach them on a user's behalf.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::ErrText;
use crate::store::Store;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Kind of a metric family (the `# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that only goes up (name ends in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
}

/// Text being built for one scrape. Plugins add their own families through
/// [`crate::Plugin::metrics`].
#[derive(Debug, Default)]
pub struct MetricsText {
    out: String,
}

impl MetricsText {
    /// Start a family: `# HELP` and `# TYPE` lines. Samples follow with [`Self::sample`].
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line; label values are escaped as the format requires.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The finished text.
    pub fn into_string(self) -> String {
        self.out
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[derive(Debug, Default, Clone)]
struct EndpointStats {
    requests: u64,
    errors: u64,
    /// Non-cumulative counts per bucket of [`LATENCY_BUCKETS`], plus one for +Inf.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum_seconds: f64,
}

/// Handle a plugin uses to say it is ready (start-up work finished). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<Metrics>);

impl Readiness {
    /// Mark the plugin ready.
    pub fn mark_ready(&self) {
        self.0.set_ready(true);
    }
}

/// Request counters and the readiness flag of one plugin process.
#[derive(Debug)]
pub struct Metrics {
    plugin: String,
    started: SystemTime,
    ready: AtomicBool,
    /// Keyed by (method, route pattern); unmatched paths share one key so a caller cannot grow it.
    endpoints: Mutex<BTreeMap<(String, String), EndpointStats>>,
    store: Mutex<Option<Store>>,
}

impl Metrics {
    /// Counters for plugin `plugin` (its name appears as a label of `outboard_build_info`).
    pub fn new(plugin: &str) -> Arc<Self> {
        Arc::new(Self {
            plugin: plugin.to_string(),
            started: SystemTime::now(),
            ready: AtomicBool::new(false),
            endpoints: Mutex::new(BTreeMap::new()),
            store: Mutex::new(None),
        })
    }

    /// Record the store whose flushes are reported.
    pub fn set_store(&self, store: Store) {
        if let Ok(mut s) = self.store.lock() {
            *s = Some(store);
        }
    }

    /// Mark the plugin ready (its start-up work finished) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The handle plugins get in their [`crate::Context`].
    pub fn readiness(self: &Arc<Self>) -> Readiness {
        Readiness(self.clone())
    }

    /// Whether the store is open and start-up work finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.store.lock().is_ok_and(|s| s.is_some())
    }

    /// Count one answered request.
    pub fn observe(&self, method: &str, route: &str, error: bool, took: Duration) {
        let secs = took.as_secs_f64();
        let Ok(mut map) = self.endpoints.lock() else {
            return;
        };
        let e = map
            .entry((method.to_string(), route.to_string()))
            .or_default();
        e.requests += 1;
        if error {
            e.errors += 1;
        }
        e.sum_seconds += secs;
        let idx = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        e.buckets[idx] += 1;
    }

    /// The shared families: build info, readiness, start time, requests, store flushes.
    pub fn render(&self, w: &mut MetricsText) {
        w.family(
            "outboard_build_info",
            Kind::Gauge,
            "Always 1; labels name the plugin and its version.",
        );
        w.sample(
            "outboard_build_info",
            &[
                ("plugin", &self.plugin),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        );
        w.single(
            "outboard_ready",
            Kind::Gauge,
            "1 once the store is open and start-up reconciliation finished.",
            if self.is_ready() { 1.0 } else { 0.0 },
        );
        let start = self
            .started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        w.single(
            "outboard_process_start_time_seconds",
            Kind::Gauge,
            "Start time of the plugin process since the Unix epoch.",
            start,
        );
        let map = self.endpoints.lock().map(|m| m.clone()).unwrap_or_default();
        w.family(
            "outboard_requests_total",
            Kind::Counter,
            "Requests answered, by method and endpoint.",
        );
        for ((m, r), s) in &map {
            w.sample(
                "outboard_requests_total",
                &[("method", m), ("endpoint", r)],
                s.requests as f64,
            );
        }
        w.family(
            "outboard_request_errors_total",
            Kind::Counter,
            "Requests answered with a non-2xx status, by method and endpoint.",
        );
        for ((m, r), s) in &map {
            w.sample(
                "outboard_request_errors_total",
                &[("method", m), ("endpoint", r)],
                s.errors as f64,
            );
        }
        w.family(
            "outboard_request_duration_seconds",
            Kind::Histogram,
            "Time from request to response, by method and endpoint.",
        );
        for ((m, r), s) in &map {
            let mut cum = 0u64;
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                cum += s.buckets[i];
                let le = format_value(*le);
                w.sample(
                    "outboard_request_duration_seconds_bucket",
                    &[("method", m), ("endpoint", r), ("le", &le)],
                    cum as f64,
                );
            }
            cum += s.buckets[LATENCY_BUCKETS.len()];
            w.sample(
                "outboard_request_duration_seconds_bucket",
                &[("method", m), ("endpoint", r), ("le", "+Inf")],
                cum as f64,
            );
            w.sample(
                "outboard_request_duration_seconds_sum",
                &[("method", m), ("endpoint", r)],
                s.sum_seconds,
            );
            w.sample(
                "outboard_request_duration_seconds_count",
                &[("method", m), ("endpoint", r)],
                s.requests as f64,
            );
        }
        let store = self.store.lock().ok().and_then(|s| s.clone());
        if let Some(store) = store {
            let st = store.flush_stats();
            w.single(
                "outboard_store_flushes_total",
                Kind::Counter,
                "Durable store flushes (sled flush + fdatasync), each covering every waiting write.",
                st.count.load(Ordering::Relaxed) as f64,
            );
            w.single(
                "outboard_store_flush_seconds_total",
                Kind::Counter,
                "Time spent in durable store flushes.",
                st.micros.load(Ordering::Relaxed) as f64 / 1e6,
            );
        }
    }
}

/// Middleware: count every request by its route pattern (never the raw path).
pub async fn count_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let metrics = req.extensions().get::<Arc<Metrics>>().cloned();
    let resp = next.run(req).await;
    if let Some(m) = metrics {
        let error = !resp.status().is_success() || resp.extensions().get::<ErrText>().is_some();
        m.observe(&method, &route, error, start.elapsed());
    }
    resp
}

/// Answer a scrape with `text`.
pub fn text_response(text: String) -> Response {
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// `GET /health`: the process is alive and serving.
pub fn health(plugin: &str) -> Response {
    crate::http::reply(serde_json::json!({
        "Live": true,
        "Plugin": plugin,
        "Version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /ready`: 200 once ready, 503 with `Err` before.
pub fn ready(m: &Metrics) -> Response {
    if m.is_ready() {
        crate::http::reply(serde_json::json!({ "Ready": true }))
    } else {
        let mut resp = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "Ready": false,
                "Err": "starting: store or start-up reconciliation not finished",
            })),
        )
            .into_response();
        resp.extensions_mut().insert(ErrText("not ready".into()));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_values_formatted() {
        let mut w = MetricsText::default();
        w.family("x_total", Kind::Counter, "a\nb");
        w.sample("x_total", &[("a", "q\"\\\n")], 3.0);
        w.sample("x_total", &[], 0.25);
        let t = w.into_string();
        assert_eq!(
            t,
            "# HELP x_total a\\nb\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 3\nx_total 0.25\n"
        );
    }

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::new("t");
        m.observe("POST", "/A", false, Duration::from_micros(100));
        m.observe("POST", "/A", true, Duration::from_millis(30));
        m.observe("POST", "/A", false, Duration::from_secs(9));
        let mut w = MetricsText::default();
        m.render(&mut w);
        let t = w.into_string();
        assert!(t.contains("outboard_requests_total{method=\"POST\",endpoint=\"/A\"} 3\n"));
        assert!(t.contains("outboard_request_errors_total{method=\"POST\",endpoint=\"/A\"} 1\n"));
        assert!(t.contains(
            "outboard_request_duration_seconds_bucket{method=\"POST\",endpoint=\"/A\",le=\"0.0005\"} 1\n"
        ));
        assert!(t.contains(
            "outboard_request_duration_seconds_bucket{method=\"POST\",endpoint=\"/A\",le=\"0.05\"} 2\n"
        ));
        assert!(t.contains(
            "outboard_request_duration_seconds_bucket{method=\"POST\",endpoint=\"/A\",le=\"5\"} 2\n"
        ));
        assert!(t.contains(
            "outboard_request_duration_seconds_bucket{method=\"POST\",endpoint=\"/A\",le=\"+Inf\"} 3\n"
        ));
        assert!(t.contains("outboard_ready 0\n"));
    }

    #[test]
    fn ready_needs_store_and_start() {
        let m = Metrics::new("t");
        m.set_ready(true);
        assert!(!m.is_ready());
        m.set_store(Store::temporary().unwrap());
        assert!(m.is_ready());
    }
}
