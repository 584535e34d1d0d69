//! The HTTP edge: every `/VolumeDriver.*` route. Wire requests are read here, the service
//! decides, and its domain results (`VolumeInfo`, `VolumeSummary`) are shaped into the wire
//! replies here, `Status` included; the service never sees `api`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use common::http::reply;
use common::{ApiError, DockerJson};
use serde_json::{json, Map, Value};

use crate::api;
use crate::error::VolumeError;
use crate::options::{human_size, CallerId, VolumeName};
use crate::service::{Owner, Service, Used, VolumeInfo, VolumeStatus, VolumeSummary};
use crate::sys::Sys;

type Svc<S> = State<Arc<Service<S>>>;
type Reply = Result<Response, ApiError>;

/// Every route of the volume plugin: the `VolumeDriver` protocol and the operator routes under
/// `/outboard/v1/` (dockerd only ever calls `/VolumeDriver.*`).
pub fn router<S: Sys>(service: Arc<Service<S>>) -> axum::Router {
    axum::Router::new()
        .route("/VolumeDriver.Create", post(create::<S>))
        .route("/VolumeDriver.Remove", post(remove::<S>))
        .route("/VolumeDriver.Mount", post(mount::<S>))
        .route("/VolumeDriver.Unmount", post(unmount::<S>))
        .route("/VolumeDriver.Path", post(path::<S>))
        .route("/VolumeDriver.Get", post(get_volume::<S>))
        .route("/VolumeDriver.List", post(list::<S>))
        .route("/VolumeDriver.Capabilities", post(capabilities))
        .route("/outboard/v1/volumes", get(ops_volumes::<S>))
        .route(
            "/outboard/v1/volumes/release-mounts",
            post(release_mounts::<S>),
        )
        .with_state(service)
}

async fn create<S: Sys>(State(s): Svc<S>, DockerJson(r): DockerJson<api::CreateRequest>) -> Reply {
    s.create(&VolumeName::try_from(r.name)?, r.opts).await?;
    Ok(reply(api::Empty {}))
}

async fn remove<S: Sys>(State(s): Svc<S>, DockerJson(r): DockerJson<api::NameRequest>) -> Reply {
    s.remove(&VolumeName::try_from(r.name)?).await?;
    Ok(reply(api::Empty {}))
}

async fn mount<S: Sys>(State(s): Svc<S>, DockerJson(r): DockerJson<api::MountRequest>) -> Reply {
    let (name, id) = mount_call(r)?;
    let mountpoint = s.mount(&name, &id).await?;
    Ok(reply(api::MountResponse { mountpoint }))
}

async fn unmount<S: Sys>(State(s): Svc<S>, DockerJson(r): DockerJson<api::MountRequest>) -> Reply {
    let (name, id) = mount_call(r)?;
    s.unmount(&name, &id).await?;
    Ok(reply(api::Empty {}))
}

async fn path<S: Sys>(State(s): Svc<S>, DockerJson(r): DockerJson<api::NameRequest>) -> Reply {
    let mountpoint = s.path(&VolumeName::try_from(r.name)?)?;
    Ok(reply(api::MountResponse { mountpoint }))
}

async fn get_volume<S: Sys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::NameRequest>,
) -> Reply {
    let volume = wire_volume(s.get(&VolumeName::try_from(r.name)?)?);
    Ok(reply(api::GetResponse { volume }))
}

async fn list<S: Sys>(State(s): Svc<S>) -> Reply {
    // The service memoises the encoded reply between changes (see `Service::list_encoded`).
    // Handed to the response as is (shared, not copied: ~1 MB at 10,000 volumes).
    let body = axum::body::Bytes::from_owner(SharedBytes(s.list_encoded(encode_list)?));
    let mut resp = Response::new(axum::body::Body::from(body));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(common::http::PLUGIN_CONTENT_TYPE),
    );
    Ok(resp)
}

async fn ops_volumes<S: Sys>(State(s): Svc<S>, Query(q): Query<api::VolumesQuery>) -> Reply {
    let name = q.name.map(VolumeName::try_from).transpose()?;
    Ok(reply(s.ops_volumes(name.as_ref())?))
}

async fn release_mounts<S: Sys>(
    State(s): Svc<S>,
    DockerJson(r): DockerJson<api::ReleaseRequest>,
) -> Reply {
    Ok(reply(
        s.release_mounts(&VolumeName::try_from(r.name)?).await?,
    ))
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

/// The memoised `List` reply as a response body's owner.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
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

/// The volume and the caller of a `Mount`/`Unmount`, validated in that order.
fn mount_call(r: api::MountRequest) -> Result<(VolumeName, CallerId), VolumeError> {
    Ok((VolumeName::try_from(r.name)?, CallerId::try_from(r.id)?))
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
