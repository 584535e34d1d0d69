//! The HTTP edge: every `/VolumeDriver.*` route. Wire requests are read here, the service
//! decides, and its domain results (`VolumeInfo`, `VolumeSummary`) are shaped into the wire
//! replies here, `Status` included; the service never sees `api`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use common::http::reply;
use common::{ApiError, DockerJson};
use serde_json::{json, Map, Value};

use crate::api;
use crate::error::VolumeError;
use crate::options::human_size;
use crate::service::{Owner, Service, Used, VolumeInfo, VolumeStatus, VolumeSummary};

type Svc = State<Arc<Service>>;
type Reply = Result<Response, ApiError>;

/// All routes of the volume driver.
pub fn router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route("/VolumeDriver.Create", post(create))
        .route("/VolumeDriver.Remove", post(remove))
        .route("/VolumeDriver.Mount", post(mount))
        .route("/VolumeDriver.Unmount", post(unmount))
        .route("/VolumeDriver.Path", post(path))
        .route("/VolumeDriver.Get", post(get))
        .route("/VolumeDriver.List", post(list))
        .route("/VolumeDriver.Capabilities", post(capabilities))
        .with_state(service)
}

async fn create(State(s): Svc, DockerJson(r): DockerJson<api::CreateRequest>) -> Reply {
    s.create(&r.name, r.opts).await?;
    Ok(reply(api::Empty {}))
}

async fn remove(State(s): Svc, DockerJson(r): DockerJson<api::NameRequest>) -> Reply {
    s.remove(&r.name).await?;
    Ok(reply(api::Empty {}))
}

async fn mount(State(s): Svc, DockerJson(r): DockerJson<api::MountRequest>) -> Reply {
    let mountpoint = s.mount(&r.name, &r.id).await?;
    Ok(reply(api::MountResponse { mountpoint }))
}

async fn unmount(State(s): Svc, DockerJson(r): DockerJson<api::MountRequest>) -> Reply {
    s.unmount(&r.name, &r.id).await?;
    Ok(reply(api::Empty {}))
}

async fn path(State(s): Svc, DockerJson(r): DockerJson<api::NameRequest>) -> Reply {
    let mountpoint = s.path(&r.name)?;
    Ok(reply(api::MountResponse { mountpoint }))
}

async fn get(State(s): Svc, DockerJson(r): DockerJson<api::NameRequest>) -> Reply {
    let volume = wire_volume(s.get(&r.name)?);
    Ok(reply(api::GetResponse { volume }))
}

async fn list(State(s): Svc) -> Reply {
    // The service hands out the reply already encoded (cached between changes): 10,000
    // volumes are ~1 MB of JSON, too much to rebuild for every `docker volume ls`.
    let body = s.list_encoded(encode_list)?;
    let mut resp = Response::new(axum::body::Body::from(body.as_ref().clone()));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(common::http::PLUGIN_CONTENT_TYPE),
    );
    Ok(resp)
}

async fn capabilities() -> Response {
    reply(api::CapabilitiesResponse {
        capabilities: api::Capabilities {
            scope: "local".into(),
        },
    })
}

fn wire_volume(v: VolumeInfo) -> api::Volume {
    api::Volume {
        name: v.name,
        mountpoint: v.mountpoint,
        created_at: v.created_at,
        status: Some(status_json(&v.status)),
    }
}

pub(crate) fn encode_list(volumes: &[VolumeSummary]) -> Result<Vec<u8>, VolumeError> {
    let reply = api::ListResponse {
        volumes: volumes
            .iter()
            .map(|v| api::Volume {
                name: v.name.clone(),
                mountpoint: v.mountpoint.clone(),
                created_at: v.created_at.clone(),
                status: None,
            })
            .collect(),
    };
    serde_json::to_vec(&reply).map_err(|e| VolumeError::Store(common::StoreError::Encode(e)))
}

/// `Status` as `docker volume inspect` shows it: human-readable values, with exact byte counts
/// beside the human sizes for scripts.
pub(crate) fn status_json(st: &VolumeStatus) -> Map<String, Value> {
    let mut s = Map::new();
    s.insert("Backend".into(), json!(st.backend));
    s.insert("Options".into(), json!(st.options));
    match &st.owner {
        Owner::Host { host_path } => {
            s.insert("HostPath".into(), json!(host_path));
            s.insert("Owner".into(), json!("as on the host"));
        }
        Owner::Set { uid, gid, mode } => {
            s.insert("Owner".into(), json!(format!("{uid}:{gid}")));
            s.insert("Mode".into(), json!(format!("{mode:04o}")));
        }
    }
    if let Some(p) = &st.data_path {
        s.insert("DataPath".into(), json!(p));
    }
    s.insert("Mounts".into(), json!(st.mounts));
    s.insert("MountedBy".into(), json!(st.mounted_by));
    if let Some(size) = st.size_limit {
        s.insert("SizeLimit".into(), json!(human_size(size)));
        s.insert("SizeLimitBytes".into(), json!(size));
    }
    match &st.used {
        Used::Tmpfs(used) => {
            s.insert("SizeUsed".into(), json!(human_size(*used)));
            s.insert("SizeUsedBytes".into(), json!(used));
            s.insert(
                "Note".into(),
                json!("tmpfs content lives while at least one container uses the volume"),
            );
        }
        Used::Measured {
            bytes,
            complete,
            at,
        } => {
            let prefix = if *complete { "" } else { "at least " };
            s.insert(
                "SizeUsed".into(),
                json!(format!("{prefix}{}", human_size(*bytes))),
            );
            s.insert("SizeUsedBytes".into(), json!(bytes));
            s.insert("SizeMeasuredAt".into(), json!(at));
        }
        Used::NotMeasured => {
            s.insert("SizeUsed".into(), json!("not measured yet"));
        }
    }
    let state = match &st.problem {
        Some(p) => format!("problem: {p}"),
        None => "ok".into(),
    };
    s.insert("State".into(), json!(state));
    s
}
