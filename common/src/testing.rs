//! Helpers for the plugin crates' socket tests: talk to a plugin the way dockerd does.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send one request shaped exactly like dockerd 20.10's (POST, empty `Host`, no Content-Type,
/// the plugin Accept header) over the unix socket `sock`; returns the raw HTTP response.
pub async fn dockerd_post(sock: &Path, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = tokio::net::UnixStream::connect(sock).await?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n\
         Accept: application/vnd.docker.plugins.v1.2+json\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}
