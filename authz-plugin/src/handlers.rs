//! The HTTP edge of the authz plugin: every route. dockerd's `AuthZReq`/`AuthZRes` bodies are
//! parsed here and become [`ApiCall`]s (base64 bodies decoded, the headers the policy reads
//! picked out); the service decides; its [`Decision`] and [`Counters`] are mapped back to the
//! wire types of [`crate::api`] here.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use common::http::reply;
use common::DockerJson;

use crate::api::{AuthZRequest, AuthZResponse, RuleStats, Stats};
use crate::model::{decode_base64, ApiCall, Counters, Decision};
use crate::service::ops::{check_policy, CheckRequest};
use crate::service::{Reload, Service};
use crate::sys::Sys;
use crate::AuthzError;

type Svc<S> = State<Arc<Service<S>>>;

/// Every route of the plugin: dockerd's two calls and the operator's.
pub fn router<S: Sys>(service: Arc<Service<S>>) -> axum::Router {
    axum::Router::new()
        .route("/AuthZPlugin.AuthZReq", post(authz_req::<S>))
        .route("/AuthZPlugin.AuthZRes", post(authz_res::<S>))
        .route("/outboard/v1/stats", get(stats::<S>))
        .route("/outboard/v1/reload", post(reload::<S>))
        .route("/outboard/v1/policy/check", post(check))
        .route("/outboard/v1/explain", post(explain::<S>))
        .with_state(service)
}

/// Decode the body of an `AuthZReq`/`AuthZRes` call into the call it describes (public for
/// the fuzz targets).
pub fn parse(bytes: &[u8]) -> Result<ApiCall, AuthzError> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(AuthzError::BadRequest("empty body".into()));
    }
    let wire: AuthZRequest =
        serde_json::from_slice(trimmed).map_err(|e| AuthzError::BadRequest(e.to_string()))?;
    Ok(ApiCall::from(&wire))
}

impl From<&AuthZRequest> for ApiCall {
    fn from(r: &AuthZRequest) -> Self {
        Self {
            user: r.user.clone(),
            method: r.request_method.clone(),
            uri: r.request_uri.clone(),
            body: r
                .request_body
                .as_deref()
                .map(|b64| decode_base64("RequestBody", b64)),
            content_type: r.header("Content-Type").map(String::from),
            content_length: r.header("Content-Length").map(String::from),
            response_status: r.response_status_code,
            response_body_b64: r.response_body.clone(),
        }
    }
}

fn wire_decision(d: Decision) -> AuthZResponse {
    AuthZResponse {
        allow: d.allow,
        msg: d.msg,
    }
}

fn wire_stats(c: Counters) -> Stats {
    Stats {
        mode: c.mode.into(),
        policy_hash: c.policy_hash,
        policy_path: c.policy_path,
        reloads: c.reloads,
        last_error: c.last_error,
        decisions: c
            .decisions
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        rules: c
            .rules
            .into_iter()
            .map(|r| RuleStats {
                name: r.name,
                effect: r.effect.into(),
                hits: r.hits,
            })
            .collect(),
    }
}

async fn authz_req<S: Sys>(
    State(s): Svc<S>,
    req: axum::extract::Request,
) -> Result<Response, common::ApiError> {
    let bytes = common::http::read_body(req).await?;
    let call = parse(&bytes)?;
    Ok(reply(wire_decision(s.authz_request(&call))))
}

async fn authz_res<S: Sys>(
    State(s): Svc<S>,
    req: axum::extract::Request,
) -> Result<Response, common::ApiError> {
    let bytes = common::http::read_body(req).await?;
    let call = parse(&bytes)?;
    let decision = s.authz_response(&call);
    // What the reply teaches about containers is durable before dockerd goes on.
    if s.observe_response(&call) {
        s.sync_records().await;
    }
    Ok(reply(wire_decision(decision)))
}

async fn stats<S: Sys>(State(s): Svc<S>) -> Response {
    reply(wire_stats(s.stats()))
}

async fn reload<S: Sys>(State(s): Svc<S>) -> Response {
    let out = tokio::task::spawn_blocking(move || s.reload(true)).await;
    let v = match out {
        Ok(Reload::Loaded(h)) => serde_json::json!({"Loaded": h}),
        Ok(Reload::Rejected(e)) => serde_json::json!({"Rejected": e}),
        Ok(Reload::Unchanged) => serde_json::json!({}),
        Err(e) => serde_json::json!({"Rejected": e.to_string()}),
    };
    reply(v)
}

async fn check(DockerJson(r): DockerJson<CheckRequest>) -> Response {
    reply(check_policy(&r.policy))
}

async fn explain<S: Sys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<AuthZRequest>,
) -> Result<Response, common::ApiError> {
    if r.request_method.is_empty() || r.request_uri.is_empty() {
        return Err(common::ApiError::bad_request(
            "RequestMethod and RequestUri are required",
        ));
    }
    Ok(reply(s.explain(&ApiCall::from(&r))))
}
