//! The CLI's client for the admin API: one HTTP/1.1 request per command over
//! the unix or TCP admin socket.

use crate::config::Socket;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the bsm-milter daemon on {socket} (is `bsm-milter serve` running?): {source}")]
    Connect { socket: Socket, source: std::io::Error },
    #[error("admin API: {0}")]
    Http(String),
    /// The API refused the request; `message` is its `error` text.
    #[error("{message}")]
    Api { status: u16, message: String },
}

pub struct Client {
    socket: Socket,
}

/// Percent-encodes one path segment (ids and addresses).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b'+' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    pub fn new(socket: Socket) -> Self {
        Client { socket }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::GET, path, None).await
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let bytes = self.request_raw(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Http(format!("bad JSON from daemon: {e}")))
    }

    /// The response body as bytes (mail messages, mbox); errors as for `request`.
    pub async fn request_raw(&self, method: Method, path: &str, body: Option<Value>) -> Result<Bytes, ClientError> {
        let connect_err = |source| ClientError::Connect { socket: self.socket.clone(), source };
        let http = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bsm-milter")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http(&e))?;
        let resp = match &self.socket {
            Socket::Unix(p) => {
                let stream = tokio::net::UnixStream::connect(p).await.map_err(connect_err)?;
                send(TokioIo::new(stream), req).await?
            }
            Socket::Inet(a) => {
                let stream = tokio::net::TcpStream::connect(a).await.map_err(connect_err)?;
                send(TokioIo::new(stream), req).await?
            }
        };
        let (status, bytes) = resp;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = value.get("error").and_then(Value::as_str).unwrap_or("request failed").to_string();
        Err(ClientError::Api { status, message })
    }
}

async fn send<S>(io: TokioIo<S>, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| http(&e))?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| http(&e))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| http(&e))?.to_bytes();
    Ok((status, bytes))
}
