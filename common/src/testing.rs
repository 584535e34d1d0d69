//! Helpers for the plugin crates' router and socket tests: talk to a plugin the way dockerd does.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// One request through `app` in memory (`oneshot`), shaped like dockerd's: the plugin Accept
/// header and no Content-Type. Returns the status and the JSON reply (`Null` when the body is
/// not JSON). Panics on an empty body: dockerd fails on one, so no route may send it.
pub async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: impl Into<Body>,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Accept", crate::http::PLUGIN_CONTENT_TYPE)
        .body(body.into());
    let req = match req {
        Ok(r) => r,
        Err(e) => panic!("cannot build a request for {path}: {e}"),
    };
    let resp = match app.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let status = resp.status();
    let bytes = match axum::body::to_bytes(resp.into_body(), 1 << 26).await {
        Ok(b) => b,
        Err(e) => panic!("reading the reply of {path}: {e}"),
    };
    assert!(
        !bytes.is_empty(),
        "{path}: empty reply body (dockerd fails on one)"
    );
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Send one request shaped exactly like dockerd 20.10's (POST, empty `Host`, no Content-Type,
/// the plugin Accept header) over the unix socket `sock`; returns the raw HTTP response.
pub async fn dockerd_post(sock: &Path, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = tokio::net::UnixStream::connect(sock).await?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n\
         Accept: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        crate::http::PLUGIN_CONTENT_TYPE,
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// A plugin app served on a unix socket in a fresh directory, for one crate's socket test.
pub struct SocketServer {
    /// The socket path to talk to.
    pub sock: std::path::PathBuf,
    dir: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), crate::BoxError>>,
}

/// Bind a socket in a new temporary directory and serve `app` on it until [`SocketServer::stop`].
pub async fn serve_on_socket(app: axum::Router) -> Result<SocketServer, crate::BoxError> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("outboard-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join("p.sock");
    let rt = crate::RuntimeConfig::default();
    let bound = crate::discovery::bind("test", &format!("unix://{}", sock.display()), &rt).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(crate::http::serve(bound, app, async {
        let _ = rx.await;
    }));
    Ok(SocketServer {
        sock,
        dir,
        stop: Some(tx),
        task,
    })
}

impl SocketServer {
    /// Shut down gracefully (the socket file is removed) and delete the directory.
    pub async fn stop(mut self) -> Result<(), crate::BoxError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let served = (&mut self.task).await.map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&self.dir);
        served
    }
}
