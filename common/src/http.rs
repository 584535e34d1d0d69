//! The HTTP side every plugin shares: the body extractor that copes with what dockerd sends (no
//! Content-Type, empty or `null` bodies), the `{"Err": …}` envelope, `/Plugin.Activate`, the
//! JSON 404/405 fallbacks, one log line per request, and `serve_plugin` (bind, serve, shut down).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;

use crate::config::RuntimeConfig;
use crate::discovery::{self, Bound};
use crate::metrics::{Metrics, MetricsText};
use crate::store::Store;
use crate::{BoxError, Context, Plugin};

/// Content type of plugin replies (what the Go SDK sends; dockerd ignores it).
pub const PLUGIN_CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// An error answered as a non-200 status with `{"Err": "message"}` (how dockerd reads errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (dockerd treats every non-200 alike; 500 is the SDK's choice).
    pub status: StatusCode,
    /// Human-readable message shown to the user after `<Method>: `.
    pub message: String,
}

impl ApiError {
    /// A failure of the operation (HTTP 500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// A request the plugin refuses as malformed (HTTP 400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// Something named in the request does not exist (HTTP 404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// The request conflicts with current state (HTTP 409).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }
}

/// The error text, kept in response extensions so the request log line can show it.
#[derive(Debug, Clone)]
pub struct ErrText(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // IPAM reads `Error` on 200 replies and `Err` otherwise; sending both is harmless.
        let body = serde_json::json!({ "Err": self.message, "Error": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        resp.extensions_mut().insert(ErrText(self.message));
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e.to_string())
    }
}

/// Request body limit in force, inserted by the server so extractors can read it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Whether request bodies are logged (DEBUG=true).
#[derive(Debug, Clone, Copy)]
struct LogBodies(bool);

/// JSON request body decoded the way dockerd needs: no Content-Type required; an empty,
/// whitespace-only or `null` body is `T::default()`; malformed JSON is a 400 with `Err`.
#[derive(Debug)]
pub struct DockerJson<T>(pub T);

/// Read the raw body up to the configured limit.
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map(|l| l.0)
        .unwrap_or(crate::config::DEFAULT_BODY_LIMIT);
    let log = req.extensions().get::<LogBodies>().is_some_and(|l| l.0);
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "request body unreadable or larger than the limit of {limit} bytes ({e})"
            ))
        })?;
    if log {
        tracing::debug!(body = %String::from_utf8_lossy(&bytes), "request body");
    }
    Ok(bytes)
}

/// Decode a body with dockerd's conventions (see [`DockerJson`]).
pub fn decode_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Ok(T::default());
    }
    serde_json::from_slice(trimmed)
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
}

impl<S, T> FromRequest<S> for DockerJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        decode_body(&bytes).map(DockerJson)
    }
}

/// Answer 200 with a JSON body (the success shape dockerd expects; never an empty body).
pub fn reply<T: serde::Serialize>(value: T) -> Response {
    let mut resp = Json(value).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(PLUGIN_CONTENT_TYPE) {
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, v);
    }
    resp
}

/// Log one line per request: method, path, status, latency, and the error text if any.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let micros = start.elapsed().as_micros() as u64;
    let status = resp.status().as_u16();
    match resp.extensions().get::<ErrText>() {
        Some(ErrText(err)) => {
            tracing::warn!(%method, %path, status, micros, err = %err, "request failed")
        }
        None => tracing::info!(%method, %path, status, micros, "request"),
    }
    resp
}

async fn unknown_endpoint(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("unknown endpoint: {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("method {method} not allowed on {}", uri.path()),
    }
}

/// Wrap a plugin's routes with what every plugin has: `/Plugin.Activate`, JSON fallbacks,
/// the body limit and the request log.
pub fn app(routes: Router, implements: &'static [&'static str], rt: &RuntimeConfig) -> Router {
    routes
        .route(
            "/Plugin.Activate",
            post(move || async move { reply(serde_json::json!({ "Implements": implements })) }),
        )
        .fallback(unknown_endpoint)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(crate::metrics::count_requests))
        .layer(Extension(BodyLimit(rt.body_limit)))
        .layer(Extension(LogBodies(rt.debug)))
        .layer(axum::middleware::from_fn(log_request))
}

/// The operating routes (`GET /metrics`, `/health`, `/ready`) for plugin `P`; served on the
/// plugin socket and, with `METRICS_LISTEN`, alone on a TCP port.
pub fn ops_routes<P: Plugin>(plugin: Arc<P>, metrics: Arc<Metrics>, name: String) -> Router {
    let m_ready = metrics.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let plugin = plugin.clone();
                let metrics = metrics.clone();
                async move {
                    let mut w = MetricsText::default();
                    metrics.render(&mut w);
                    plugin.metrics(&mut w).await;
                    crate::metrics::text_response(w.into_string())
                }
            }),
        )
        .route(
            "/health",
            get(move || async move { crate::metrics::health(&name) }),
        )
        .route(
            "/ready",
            get(move || async move { crate::metrics::ready(&m_ready) }),
        )
}

/// Resolves on SIGTERM or SIGINT (dockerd stops a managed plugin with SIGTERM).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; waiting for ctrl-c");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Run plugin `P`: bind first (dockerd waits under 10 s), open the store, build the plugin,
/// serve, run its start-up work in the background, and on `shutdown` stop accepting, finish
/// in-flight requests, flush the store and remove the socket and discovery files.
pub async fn serve_plugin<P: Plugin>(
    runtime: RuntimeConfig,
    config: P::Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let name = runtime.plugin_name(P::NAME).to_string();
    let addr = runtime.listen_addr(&name);
    let bound = discovery::bind(&name, &addr, &runtime).await?;
    tracing::info!(listen = %addr, "listening");
    let state_dir = runtime.state_path(&name);
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| format!("cannot create state dir {}: {e}", state_dir.display()))?;
    let store = Store::open(&state_dir, P::SCHEMA_VERSION)?;
    let metrics = Metrics::new(&name);
    metrics.set_store(store.clone());
    let plugin = Arc::new(P::new(Context {
        config,
        runtime: runtime.clone(),
        store: store.clone(),
        ready: metrics.readiness(),
    })?);
    let ops = ops_routes(plugin.clone(), metrics.clone(), name.clone());
    let routes = plugin.clone().router().merge(ops.clone());
    let app = app(routes, P::IMPLEMENTS, &runtime).layer(Extension(metrics.clone()));
    let metrics_server = match runtime.metrics_listen.strip_prefix("tcp://") {
        Some(addr) if !addr.is_empty() => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
            tracing::info!(metrics_listen = %addr, "serving /metrics, /health, /ready over TCP");
            let ops = ops
                .fallback(unknown_endpoint)
                .layer(axum::middleware::from_fn(crate::metrics::count_requests))
                .layer(Extension(metrics.clone()));
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, ops).await {
                    tracing::error!("metrics listener failed: {e}");
                }
            }))
        }
        _ => None,
    };
    let ready_flag = metrics.clone();
    let starter_plugin = plugin.clone();
    let starter = tokio::spawn(async move {
        starter_plugin.start().await;
        ready_flag.set_ready(true);
        tracing::info!("ready");
    });
    // A store that failed (a full disk) and cannot recover in place stops the plugin, so that
    // dockerd restarts it and the store is reopened (see `Store::stuck`).
    let (stuck_tx, mut stuck_rx) = tokio::sync::oneshot::channel::<String>();
    let (watch_store, watch_dir) = (store.clone(), state_dir.clone());
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            why = watch_store.stuck(watch_dir, std::time::Duration::from_secs(1)) => {
                tracing::error!(
                    "the state store failed ({why}) and cannot recover in place although space \
                     is back: stopping so that dockerd restarts the plugin and reopens it"
                );
                let _ = stuck_tx.send(why);
            }
        }
    };
    let served = serve(bound, app, stop).await;
    starter.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    plugin.stop().await;
    let flushed = store.flush().await;
    served?;
    if let Ok(why) = stuck_rx.try_recv() {
        return Err(format!("restart needed: the state store failed: {why}").into());
    }
    flushed?;
    tracing::info!("stopped");
    Ok(())
}

/// Serve `app` on an already-bound listener until `shutdown` resolves; then remove the socket
/// and discovery files. Tests call this with a oneshot as `shutdown`.
pub async fn serve(
    bound: Bound,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let Bound { listener, cleanup } = bound;
    let result = match listener {
        discovery::Listener::Unix(l) => axum::serve(l, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(BoxError::from),
        discovery::Listener::Tcp(l) => axum::serve(l, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(BoxError::from),
        discovery::Listener::Tls(l) => axum::serve(l, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(BoxError::from),
    };
    drop(cleanup);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
    struct Echo {
        #[serde(rename = "Name", default)]
        name: String,
    }

    fn test_app(limit: usize) -> Router {
        let routes = Router::new().route(
            "/Test.Echo",
            post(|DockerJson(e): DockerJson<Echo>| async move { reply(e) }),
        );
        let rt = RuntimeConfig {
            body_limit: limit,
            ..RuntimeConfig::default()
        };
        app(routes, &["VolumeDriver"], &rt)
    }

    async fn call(app: Router, path: &str, body: &'static [u8]) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .body(Body::from(body))
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn activation_answers_implements() {
        let (s, v) = call(test_app(1024), "/Plugin.Activate", b"").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, serde_json::json!({"Implements": ["VolumeDriver"]}));
    }

    #[tokio::test]
    async fn empty_null_and_no_content_type_bodies_are_accepted() {
        for body in [&b""[..], b"null", b"null\n", b"  \n", b"{}\n"] {
            let (s, v) = call(test_app(1024), "/Test.Echo", body).await;
            assert_eq!(s, StatusCode::OK, "{body:?}");
            assert_eq!(v["Name"], "");
        }
        let (s, v) = call(test_app(1024), "/Test.Echo", b"{\"Name\":\"v1\"}\n").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["Name"], "v1");
    }

    #[tokio::test]
    async fn malformed_json_is_a_clear_err() {
        let (s, v) = call(test_app(1024), "/Test.Echo", b"{\"Name\":").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["Err"]
            .as_str()
            .unwrap()
            .contains("malformed request body"));
        let (s, v) = call(test_app(1024), "/Test.Echo", b"{\"Name\":5}").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["Err"].as_str().unwrap().contains("invalid type"));
    }

    #[tokio::test]
    async fn oversized_body_is_refused() {
        static BIG: [u8; 4096] = [b' '; 4096];
        let (s, v) = call(test_app(1024), "/Test.Echo", &BIG).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            v["Err"].as_str().unwrap().contains("limit of 1024 bytes"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn unknown_endpoint_is_json_404() {
        let (s, v) = call(test_app(1024), "/VolumeDriver.Nope", b"{}").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(v["Err"].as_str().unwrap().contains("/VolumeDriver.Nope"));
    }

    #[tokio::test]
    async fn wrong_method_is_json_405() {
        let req = Request::builder()
            .method("GET")
            .uri("/Test.Echo")
            .body(Body::empty())
            .unwrap();
        let resp = test_app(1024).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v["Err"].as_str().unwrap().contains("GET"));
    }
}
