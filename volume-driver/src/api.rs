//! Wire types of `docker.volumedriver/1.0`: what dockerd 20.10 sends and what it reads back.
//!
//! Serde only: no HTTP, no store, no syscalls. Field names are Docker's spelling (explicit
//! renames); requests tolerate unknown fields (newer daemons add some) and missing ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `/VolumeDriver.Create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateRequest {
    /// Volume name as the user gave it (or 64 hex for an anonymous volume).
    #[serde(rename = "Name")]
    pub name: String,
    /// The `-o key=value` options; `null` when none were given.
    #[serde(rename = "Opts")]
    pub opts: Option<BTreeMap<String, String>>,
}

/// Requests that carry only a volume name: `Remove`, `Path`, `Get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NameRequest {
    /// Volume name.
    #[serde(rename = "Name")]
    pub name: String,
}

/// `/VolumeDriver.Mount` and `/VolumeDriver.Unmount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountRequest {
    /// Volume name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Caller ID: an opaque 64-hex string dockerd keeps per container mount point.
    #[serde(rename = "ID")]
    pub id: String,
}

/// An empty success reply (`{}`): dockerd fails on an empty body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Reply of `Mount` and `Path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountResponse {
    /// Path inside the plugin, under its `propagatedMount`; dockerd maps it to the host.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
}

/// One volume as `Get` and `List` describe it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// The name, echoed exactly (dockerd uses the name from the reply).
    #[serde(rename = "Name")]
    pub name: String,
    /// Where the volume is (or will be) mounted inside the plugin.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    /// RFC 3339 creation time; never `""` (that breaks dockerd's decoding).
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    /// Free-form status shown by `docker volume inspect` (only on `Get`).
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Reply of `Get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetResponse {
    /// The volume.
    #[serde(rename = "Volume")]
    pub volume: Volume,
}

/// Reply of `List`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    /// Every volume the plugin knows.
    #[serde(rename = "Volumes")]
    pub volumes: Vec<Volume>,
}

/// Scope of the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `local`: volumes exist on this host only.
    #[serde(rename = "Scope")]
    pub scope: String,
}

/// Reply of `Capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    /// The capabilities.
    #[serde(rename = "Capabilities")]
    pub capabilities: Capabilities,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as dockerd 20.10 sends them (captured shapes, trailing newline included).
    #[test]
    fn golden_requests_decode() {
        let c: CreateRequest =
            common::http::decode_body(b"{\"Name\":\"v1\",\"Opts\":{\"uid\":\"1000\"}}\n").unwrap();
        assert_eq!(c.name, "v1");
        assert_eq!(c.opts.unwrap()["uid"], "1000");
        let c: CreateRequest =
            common::http::decode_body(b"{\"Name\":\"v1\",\"Opts\":null}\n").unwrap();
        assert_eq!(c.opts, None);
        let m: MountRequest =
            common::http::decode_body(b"{\"Name\":\"v1\",\"ID\":\"0123abcd\",\"Future\":true}\n")
                .unwrap();
        assert_eq!((m.name.as_str(), m.id.as_str()), ("v1", "0123abcd"));
        let n: NameRequest = common::http::decode_body(b"{}\n").unwrap();
        assert_eq!(n.name, "");
    }

    #[test]
    fn replies_use_docker_spelling() {
        let g = GetResponse {
            volume: Volume {
                name: "v".into(),
                mountpoint: "/mnt/volumes/v".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
                status: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"Volume":{"Name":"v","Mountpoint":"/mnt/volumes/v","CreatedAt":"2026-01-01T00:00:00Z"}}"#
        );
        let c = CapabilitiesResponse {
            capabilities: Capabilities {
                scope: "local".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"Capabilities":{"Scope":"local"}}"#
        );
        assert_eq!(serde_json::to_string(&Empty {}).unwrap(), "{}");
    }
}

/// Query of `GET /outboard/v1/volumes` (operator route, not part of the plugin protocol).
#[derive(Debug, Default, Deserialize)]
pub struct VolumesQuery {
    /// Only this volume.
    pub name: Option<String>,
}

/// Body of `POST /outboard/v1/volumes/release-mounts` (operator route).
#[derive(Debug, Default, Deserialize)]
pub struct ReleaseRequest {
    /// The volume whose mount references are released.
    #[serde(rename = "Name", default)]
    pub name: String,
}
