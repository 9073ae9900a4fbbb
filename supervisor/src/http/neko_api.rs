//! A minimal client for neko's HTTP API on its loopback address: login, logout, session
//! list and delete. Only what the relay needs to give each browser a session and to take it
//! back. Every call has a deadline; neko's tokens are never logged.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

/// Largest neko API response read (a session list of a few hundred sessions fits easily).
const MAX_BODY: usize = 4 << 20;

/// A failed neko API call.
#[derive(Debug, thiserror::Error)]
pub enum NekoApiError {
    #[error("neko at {addr} did not answer {what} within {timeout:?}")]
    Timeout {
        addr: SocketAddr,
        what: &'static str,
        timeout: Duration,
    },
    #[error("cannot reach neko at {addr} for {what}: {source}")]
    Connect {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("HTTP error talking to neko at {addr} for {what}: {message}")]
    Http {
        addr: SocketAddr,
        what: &'static str,
        message: String,
    },
    #[error("neko at {addr} refused {what}: HTTP {status}: {body}")]
    Status {
        addr: SocketAddr,
        what: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("unexpected answer from neko at {addr} for {what}: {message}")]
    Decode {
        addr: SocketAddr,
        what: &'static str,
        message: String,
    },
}

/// A session created by `POST /api/login`.
#[derive(Clone, Deserialize)]
pub struct Session {
    pub id: String,
    /// Present because deskd runs neko with cookies off. Secret.
    pub token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// One entry of `GET /api/sessions`.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionInfo {
    pub id: String,
}

/// neko's API at one address.
#[derive(Debug, Clone)]
pub struct NekoApi {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

impl NekoApi {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        NekoApi { addr, timeout }
    }

    /// `POST /api/login` as `username` (noauth accepts any name and creates a new session).
    pub async fn login(&self, username: &str) -> Result<Session, NekoApiError> {
        let body = serde_json::json!({ "username": username, "password": "" }).to_string();
        let (status, bytes) = self
            .call("login", Method::POST, "/api/login", None, Some(body))
            .await?;
        self.expect_ok("login", status, &bytes)?;
        serde_json::from_slice::<Session>(&bytes).map_err(|e| NekoApiError::Decode {
            addr: self.addr,
            what: "login",
            message: format!("{e} (is session.cookie.enabled off?)"),
        })
    }

    /// `POST /api/logout` with the session's own token.
    pub async fn logout(&self, session_token: &str) -> Result<(), NekoApiError> {
        let (status, bytes) = self
            .call(
                "logout",
                Method::POST,
                "/api/logout",
                Some(session_token),
                Some("{}".into()),
            )
            .await?;
        self.expect_ok("logout", status, &bytes)
    }

    /// `DELETE /api/sessions/{id}` with an admin token (deskd's API token).
    pub async fn delete_session(&self, api_token: &str, id: &str) -> Result<(), NekoApiError> {
        let path = format!("/api/sessions/{}", path_escape(id));
        let (status, bytes) = self
            .call(
                "session delete",
                Method::DELETE,
                &path,
                Some(api_token),
                None,
            )
            .await?;
        self.expect_ok("session delete", status, &bytes)
    }

    /// `GET /api/sessions` with any valid token.
    pub async fn sessions(&self, token: &str) -> Result<Vec<SessionInfo>, NekoApiError> {
        let (status, bytes) = self
            .call(
                "session list",
                Method::GET,
                "/api/sessions",
                Some(token),
                None,
            )
            .await?;
        self.expect_ok("session list", status, &bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| NekoApiError::Decode {
            addr: self.addr,
            what: "session list",
            message: e.to_string(),
        })
    }

    fn expect_ok(
        &self,
        what: &'static str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<(), NekoApiError> {
        if status.is_success() {
            Ok(())
        } else {
            Err(NekoApiError::Status {
                addr: self.addr,
                what,
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            })
        }
    }

    async fn call(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), NekoApiError> {
        let fut = self.call_inner(what, method, path, bearer, body);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(NekoApiError::Timeout {
                addr: self.addr,
                what,
                timeout: self.timeout,
            }),
        }
    }

    async fn call_inner(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), NekoApiError> {
        let http_err = |message: String| NekoApiError::Http {
            addr: self.addr,
            what,
            message,
        };
        let stream =
            TcpStream::connect(self.addr)
                .await
                .map_err(|source| NekoApiError::Connect {
                    addr: self.addr,
                    what,
                    source,
                })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http_err(e.to_string()))?;
        let conn_task = tokio::spawn(conn);

        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string());
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(b))),
            None => req.body(Full::new(Bytes::new())),
        }
        .map_err(|e| http_err(e.to_string()))?;

        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| http_err(e.to_string()))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| http_err(e.to_string()))?
            .to_bytes();
        conn_task.abort();
        Ok((status, bytes))
    }
}

/// Session ids are `name-XXXXX` from the alphabet `_-0-9a-zA-Z`; escape anything else.
fn path_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
