//! Where dockerd finds us. Managed (v2) plugins and legacy unix-socket plugins listen on
//! `/run/docker/plugins/<name>.sock`; legacy TCP plugins also need a `.spec` (URL) or, with TLS,
//! a `.json` (`Name`, `Addr`, `TLSConfig`) file in the spec directory. Everything this module
//! creates is removed again when the returned [`Cleanup`] is dropped (after serving).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::RuntimeConfig;
use crate::tls::TlsListener;
use crate::BoxError;

/// A bound listener of one of the supported kinds.
pub enum Listener {
    /// Unix domain socket (managed and legacy plugins).
    Unix(tokio::net::UnixListener),
    /// Plain TCP (legacy, `.spec` discovery).
    Tcp(tokio::net::TcpListener),
    /// TCP with TLS (legacy, `.json` discovery).
    Tls(TlsListener),
}

/// A bound listener plus the files to remove when serving ends.
pub struct Bound {
    /// The listener to serve on.
    pub listener: Listener,
    /// Removes the socket/discovery files on drop.
    pub cleanup: Cleanup,
}

/// Removes the files it holds when dropped.
#[derive(Debug, Default)]
pub struct Cleanup {
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for f in &self.files {
            match std::fs::remove_file(f) {
                Ok(()) => tracing::debug!(file = %f.display(), "removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %f.display(), "cannot remove: {e}"),
            }
        }
    }
}

/// Bind `addr` (`unix:///path` or `tcp://host:port`) for plugin `name`, writing discovery files
/// for TCP. A stale socket file left by a crashed run is replaced; a live one is an error.
pub async fn bind(name: &str, addr: &str, rt: &RuntimeConfig) -> Result<Bound, BoxError> {
    if let Some(path) = addr.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        let listener = bind_unix(&path).await?;
        return Ok(Bound {
            listener: Listener::Unix(listener),
            cleanup: Cleanup { files: vec![path] },
        });
    }
    let hostport = addr
        .strip_prefix("tcp://")
        .ok_or_else(|| format!("LISTEN={addr:?}: expected unix:///path or tcp://host:port"))?;
    let tcp = tokio::net::TcpListener::bind(hostport)
        .await
        .map_err(|e| format!("cannot listen on {hostport}: {e}"))?;
    let local = tcp.local_addr()?;
    std::fs::create_dir_all(&rt.spec_dir)
        .map_err(|e| format!("cannot create spec dir {}: {e}", rt.spec_dir))?;
    if rt.tls_cert.is_empty() {
        let file = Path::new(&rt.spec_dir).join(format!("{name}.spec"));
        write_atomic(&file, format!("tcp://{local}\n").as_bytes())?;
        Ok(Bound {
            listener: Listener::Tcp(tcp),
            cleanup: Cleanup { files: vec![file] },
        })
    } else {
        let tls = TlsListener::new(tcp, rt)?;
        let file = Path::new(&rt.spec_dir).join(format!("{name}.json"));
        let doc = JsonSpec {
            name,
            addr: format!("https://{local}"),
            tls_config: TlsSpec {
                insecure_skip_verify: rt.daemon_tls_ca.is_empty(),
                ca_file: &rt.daemon_tls_ca,
                cert_file: &rt.daemon_tls_cert,
                key_file: &rt.daemon_tls_key,
            },
        };
        let bytes = serde_json::to_vec_pretty(&doc)?;
        write_atomic(&file, &bytes)?;
        Ok(Bound {
            listener: Listener::Tls(tls),
            cleanup: Cleanup { files: vec![file] },
        })
    }
}

/// The `.json` discovery document dockerd reads.
#[derive(Serialize)]
struct JsonSpec<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Addr")]
    addr: String,
    #[serde(rename = "TLSConfig")]
    tls_config: TlsSpec<'a>,
}

#[derive(Serialize)]
struct TlsSpec<'a> {
    #[serde(rename = "InsecureSkipVerify")]
    insecure_skip_verify: bool,
    #[serde(rename = "CAFile")]
    ca_file: &'a str,
    #[serde(rename = "CertFile")]
    cert_file: &'a str,
    #[serde(rename = "KeyFile")]
    key_file: &'a str,
}

/// Write-then-rename, so dockerd never reads a half-written discovery file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BoxError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, BoxError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        // Someone answering there means another instance runs: refuse rather than steal it.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "{} is in use by a running process; stop it first",
                path.display()
            )
            .into());
        }
        tracing::warn!(socket = %path.display(), "replacing stale socket from an earlier run");
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn roundtrip_unix(path: &Path) -> String {
        crate::testing::dockerd_post(path, "/Plugin.Activate", "")
            .await
            .unwrap()
    }

    fn app() -> axum::Router {
        crate::http::app(
            axum::Router::new(),
            &["IpamDriver"],
            &RuntimeConfig::default(),
        )
    }

    #[tokio::test]
    async fn unix_socket_serves_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("p.sock");
        let rt = RuntimeConfig::default();
        let bound = bind("p", &format!("unix://{}", sock.display()), &rt)
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::serve(bound, app(), async {
            let _ = rx.await;
        }));
        let out = roundtrip_unix(&sock).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains(r#"{"Implements":["IpamDriver"]}"#), "{out}");
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(!sock.exists(), "socket removed on shutdown");
    }

    #[tokio::test]
    async fn shutdown_finishes_in_flight_requests() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("slow.sock");
        let bound = bind(
            "p",
            &format!("unix://{}", sock.display()),
            &RuntimeConfig::default(),
        )
        .await
        .unwrap();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let started_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(started_tx)));
        let routes = axum::Router::new().route(
            "/Slow.Call",
            axum::routing::post(move || {
                let tx = started_tx.clone();
                async move {
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    crate::http::reply(serde_json::json!({"done": true}))
                }
            }),
        );
        let app = crate::http::app(routes, &["VolumeDriver"], &RuntimeConfig::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::serve(bound, app, async {
            let _ = rx.await;
        }));
        let client = tokio::spawn({
            let sock = sock.clone();
            async move {
                let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
                s.write_all(b"POST /Slow.Call HTTP/1.1\r\nHost:\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        });
        started_rx.await.unwrap();
        tx.send(()).unwrap(); // SIGTERM arrives while the request is in flight
        let out = client.await.unwrap();
        assert!(
            out.contains(r#"{"done":true}"#),
            "in-flight request finished: {out}"
        );
        server.await.unwrap().unwrap();
        assert!(!sock.exists());
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("p.sock");
        // A socket file nobody listens on, as a crashed run leaves it.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(sock.exists());
        let rt = RuntimeConfig::default();
        let addr = format!("unix://{}", sock.display());
        let bound = bind("p", &addr, &rt).await.unwrap();
        // Now it is live: a second instance must not steal it.
        let err = bind("p", &addr, &rt).await.err().unwrap().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(bound);
    }

    #[tokio::test]
    async fn tcp_writes_spec_file_and_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let rt = RuntimeConfig {
            spec_dir: dir.path().display().to_string(),
            ..RuntimeConfig::default()
        };
        let bound = bind("legacy", "tcp://127.0.0.1:0", &rt).await.unwrap();
        let spec = dir.path().join("legacy.spec");
        let url = std::fs::read_to_string(&spec).unwrap();
        assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::serve(bound, app(), async {
            let _ = rx.await;
        }));
        let mut s = tokio::net::TcpStream::connect(url.trim().trim_start_matches("tcp://"))
            .await
            .unwrap();
        s.write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.contains("IpamDriver"), "{out}");
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(!spec.exists(), "spec file removed on shutdown");
    }

    #[tokio::test]
    async fn tls_writes_json_file_and_requires_client_certs() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, ca.cert.pem()).unwrap();
        std::fs::write(&key, ca.key_pair.serialize_pem()).unwrap();
        let rt = RuntimeConfig {
            spec_dir: dir.path().display().to_string(),
            tls_cert: cert.display().to_string(),
            tls_key: key.display().to_string(),
            tls_client_ca: cert.display().to_string(),
            daemon_tls_ca: cert.display().to_string(),
            ..RuntimeConfig::default()
        };
        let bound = bind("secure", "tcp://127.0.0.1:0", &rt).await.unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("secure.json")).unwrap())
                .unwrap();
        assert_eq!(json["Name"], "secure");
        assert!(json["Addr"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"));
        assert_eq!(json["TLSConfig"]["InsecureSkipVerify"], false);
        let addr = json["Addr"]
            .as_str()
            .unwrap()
            .trim_start_matches("https://")
            .to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::serve(bound, app(), async {
            let _ = rx.await;
        }));
        // A client without a certificate is refused during the handshake.
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        let cfg = tokio_rustls::rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let result = async {
            let mut s = connector.connect(name, tcp).await?;
            s.write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            Ok::<String, std::io::Error>(out)
        }
        .await;
        assert!(
            result
                .as_ref()
                .map(|o| !o.contains("Implements"))
                .unwrap_or(true),
            "no client certificate must not get an answer: {result:?}"
        );
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(!dir.path().join("secure.json").exists());
    }
}
