//! deskd's router on a 127.0.0.1:0 listener in the test process, in front of the neko
//! stand-in, with a `watch` channel standing in for the supervisor. Real sockets, real
//! WebSocket clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deskd::config::HttpSettings;
use deskd::http::auth::Auth;
use deskd::http::relay::RelaySettings;
use deskd::http::AppState;
use deskd::metrics::Metrics;
use deskd::supervisor::{ServiceState, ServiceStatus, Snapshot};
use http_body_util::{BodyExt, Full};
use hyper::http::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::neko_standin::{Options, StandIn};

pub const CONTROL: &str = "control-token-for-tests";
pub const VIEW: &str = "view-token-for-tests";

pub type Client = WebSocketStream<TcpStream>;

pub struct Harness {
    pub addr: SocketAddr,
    pub standin: StandIn,
    pub status: watch::Sender<Snapshot>,
    pub metrics: Arc<Metrics>,
    pub relay: Arc<RelaySettings>,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn neko_status(state: ServiceState, generation: u64) -> ServiceStatus {
    ServiceStatus {
        name: "neko".into(),
        state,
        pid: Some(4242),
        generation,
        restarts: generation.saturating_sub(1),
        critical: true,
        last_exit: None,
        reason: (state != ServiceState::Ready).then(|| "readiness probe running".to_string()),
    }
}

pub fn snapshot(state: ServiceState, generation: u64) -> Snapshot {
    Snapshot {
        services: vec![neko_status(state, generation)],
        stopping: false,
    }
}

pub struct Setup {
    pub http: HttpSettings,
    pub standin: Options,
    pub stall: Duration,
    pub neko_state: ServiceState,
    pub allowed_origins: Vec<String>,
    /// Point the relay somewhere else than the stand-in (e.g. a dead port).
    pub neko_override: Option<SocketAddr>,
    /// The accept loop's limits.
    pub limits: deskd::http::ServeLimits,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            http: HttpSettings::default(),
            standin: Options::default(),
            stall: Duration::from_secs(10),
            neko_state: ServiceState::Ready,
            allowed_origins: vec![],
            neko_override: None,
            limits: deskd::http::ServeLimits::default(),
        }
    }
}

impl Harness {
    pub async fn start(setup: Setup) -> Harness {
        let standin = StandIn::start(setup.standin).await;
        let (status, status_rx) = watch::channel(snapshot(setup.neko_state, 1));
        let metrics = Arc::new(Metrics::new());
        let mut relay = RelaySettings::new(
            setup.neko_override.unwrap_or(standin.addr),
            standin.api_token.clone(),
            &setup.http,
        );
        relay.stall_timeout = setup.stall;
        let relay = Arc::new(relay);
        let state = AppState {
            auth: Arc::new(Auth::new(
                CONTROL,
                Some(VIEW.to_string()),
                setup.allowed_origins,
            )),
            status: status_rx,
            metrics: metrics.clone(),
            relay: Some(relay.clone()),
            desktop: None,
            stream: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        tokio::spawn(deskd::http::serve_with_limits(
            listener,
            state,
            shutdown.clone(),
            setup.limits,
        ));
        Harness {
            addr,
            standin,
            status,
            metrics,
            relay,
            shutdown,
        }
    }

    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Opens `/stream/signaling` with these extra headers.
    pub async fn ws(&self, headers: &[(&str, String)]) -> Result<Client, tungstenite::Error> {
        let mut req = format!("ws://{}/stream/signaling", self.addr).into_client_request()?;
        for (k, v) in headers {
            req.headers_mut().insert(
                hyper::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                v.parse().expect("header value"),
            );
        }
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(tungstenite::Error::Io)?;
        let (ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
        Ok(ws)
    }

    /// A control client (Bearer) that has read `system/init`.
    pub async fn control_client(&self) -> Client {
        let mut c = self.ws(&[bearer(CONTROL)]).await.expect("connect");
        let init = next_text(&mut c).await;
        assert!(init.contains("system/init"), "{init}");
        c
    }

    pub async fn http(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
    ) -> (StatusCode, HeaderMap, String) {
        http_request(self.addr, method, path, headers, None).await
    }
}

pub fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

pub fn cookie(token: &str) -> (&'static str, String) {
    ("cookie", format!("deskd_token={token}"))
}

/// A plain HTTP/1.1 request; returns status, headers and body text.
pub async fn http_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<String>,
) -> (StatusCode, HeaderMap, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Next text message (skipping pings), with a generous deadline.
pub async fn next_text(c: &mut Client) -> String {
    loop {
        match next(c).await {
            Some(Message::Text(t)) => return t.as_str().to_string(),
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Next message within 20 s (None: stream ended or errored).
pub async fn next(c: &mut Client) -> Option<Message> {
    use futures_util::StreamExt;
    match tokio::time::timeout(Duration::from_secs(20), c.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(_))) | Ok(None) => None,
        Err(_) => panic!("no message within 20 s"),
    }
}

/// Reads until a close frame arrives; returns its (code, reason). Panics on EOF without one.
pub async fn expect_close(c: &mut Client) -> (u16, String) {
    loop {
        match next(c).await {
            Some(Message::Close(Some(f))) => {
                return (u16::from(f.code), f.reason.as_str().to_string())
            }
            Some(Message::Close(None)) => return (1005, String::new()),
            Some(_) => continue,
            None => panic!("connection ended without a close frame"),
        }
    }
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub async fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// The HTTP status of a refused WebSocket handshake, and its body.
pub fn refused(e: tungstenite::Error) -> (StatusCode, String) {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            (status, body)
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}
