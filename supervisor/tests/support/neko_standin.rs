//! A neko stand-in for tests, following `shared/neko-protocol.md`: `POST /api/login`
//! (noauth: any username, a new `name-XXXXX` session each time, token only in the body since
//! cookies are off), `POST /api/logout`, `GET /api/sessions`, `DELETE /api/sessions/{id}`
//! (admin token, not your own), `GET /health` → `true`, and `GET /api/ws` with the session
//! token from `Authorization: Bearer` (or `?token=`): 101, then `system/init`, heartbeats
//! (`system/heartbeat` text + a ping) every `heartbeat` interval; a bad token gets 101, then
//! `system/disconnect` and a TCP drop without a close frame, as neko does.
//!
//! Replies: `signal/request` → `signal/provide`; other `signal/*` and binary messages are
//! echoed back unchanged. Test hooks (not neko): `test/close {code, reason}` sends a close
//! frame, `test/drop` drops TCP without one, `test/flood {count, size}` sends that many text
//! messages as fast as the socket takes them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Options of the stand-in.
#[derive(Clone)]
pub struct Options {
    pub heartbeat: Duration,
    /// `POST /api/logout` answers 500 without deleting (to exercise the DELETE fallback).
    pub fail_logout: bool,
    /// The admin API token (neko's `session.api_token`).
    pub api_token: String,
    /// `POST /api/login` waits this long before answering (a slow neko).
    pub login_delay: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat: Duration::from_secs(10),
            fail_logout: false,
            api_token: "stand-in-api-token-0123456789".to_string(),
            login_delay: Duration::ZERO,
        }
    }
}

struct SessionRec {
    name: String,
    token: String,
    connected: bool,
    /// Cancelled when the session is deleted: its websocket is dropped.
    kill: CancellationToken,
}

/// What the stand-in saw, for assertions.
#[derive(Default)]
pub struct Log {
    /// Every text event received, as (session id, event name).
    pub events: Vec<(String, String)>,
    /// Close frames received from the relay: (session id, code, reason).
    pub closes: Vec<(String, Option<(u16, String)>)>,
    pub pongs: u64,
    pub flood_sent: u64,
    pub ws_ended: u64,
}

pub struct Inner {
    opts: Options,
    pub api_token: String,
    sessions: Mutex<HashMap<String, SessionRec>>,
    pub log: Mutex<Log>,
    counter: AtomicU64,
    /// Cancelled to drop every websocket at once (a crash as seen from the relay).
    drop_all: Mutex<CancellationToken>,
    pub logins: AtomicU64,
    pub refuse_ws: AtomicBool,
}

/// A running stand-in.
pub struct StandIn {
    pub addr: SocketAddr,
    pub api_token: String,
    pub inner: Arc<Inner>,
    shutdown: CancellationToken,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.drop_connections();
    }
}

impl StandIn {
    pub async fn start(opts: Options) -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stand-in");
        Self::start_on(listener, opts).await
    }

    pub async fn start_on(listener: tokio::net::TcpListener, opts: Options) -> StandIn {
        let addr = listener.local_addr().expect("stand-in addr");
        let api_token = opts.api_token.clone();
        let inner = Arc::new(Inner {
            opts,
            api_token: api_token.clone(),
            sessions: Mutex::new(HashMap::new()),
            log: Mutex::new(Log::default()),
            counter: AtomicU64::new(0),
            drop_all: Mutex::new(CancellationToken::new()),
            logins: AtomicU64::new(0),
            refuse_ws: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/health", get(|| async { "true" }))
            .route("/api/login", post(login))
            .route("/api/logout", post(logout))
            .route("/api/sessions", get(sessions))
            .route("/api/sessions/{id}", delete(delete_session))
            .route("/api/ws", get(ws))
            .with_state(inner.clone());
        let shutdown = CancellationToken::new();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { sd.cancelled().await })
                .await;
        });
        StandIn {
            addr,
            api_token,
            inner,
            shutdown,
        }
    }

    /// Number of sessions (as `GET /api/sessions` would list them).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Drops every websocket without a close frame.
    pub fn drop_connections(&self) {
        if let Ok(mut t) = self.inner.drop_all.lock() {
            t.cancel();
            *t = CancellationToken::new();
        }
    }

    pub fn events(&self) -> Vec<(String, String)> {
        self.inner
            .log
            .lock()
            .map(|l| l.events.clone())
            .unwrap_or_default()
    }

    pub fn closes(&self) -> Vec<(String, Option<(u16, String)>)> {
        self.inner
            .log
            .lock()
            .map(|l| l.closes.clone())
            .unwrap_or_default()
    }

    pub fn pongs(&self) -> u64 {
        self.inner.log.lock().map(|l| l.pongs).unwrap_or(0)
    }

    pub fn flood_sent(&self) -> u64 {
        self.inner.log.lock().map(|l| l.flood_sent).unwrap_or(0)
    }

    pub fn ws_ended(&self) -> u64 {
        self.inner.log.lock().map(|l| l.ws_ended).unwrap_or(0)
    }
}

fn err(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

fn random_suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    (0..5)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[(x >> 58) as usize % ALPHABET.len()] as char
        })
        .collect()
}

fn profile(name: &str) -> Value {
    json!({
        "name": name, "is_admin": true, "can_login": true, "can_connect": true, "can_watch": true,
        "can_host": true, "can_share_media": true, "can_access_clipboard": true,
        "sends_inactive_cursor": true, "can_see_inactive_cursors": true, "plugins": null
    })
}

async fn login(State(s): State<Arc<Inner>>, body: String) -> Response {
    if body.is_empty() {
        return err(StatusCode::BAD_REQUEST, "no data provided");
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "unable to parse provided data");
    };
    let name = v
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    s.logins.fetch_add(1, Ordering::Relaxed);
    let id = format!("{name}-{}{n}", random_suffix(n));
    let token: String = format!("{:0>64}", format!("tok{n}x{}", random_suffix(n + 7)));
    let rec = SessionRec {
        name: name.clone(),
        token: token.clone(),
        connected: false,
        kill: CancellationToken::new(),
    };
    if let Ok(mut m) = s.sessions.lock() {
        m.insert(id.clone(), rec);
    }
    Json(json!({
        "id": id, "token": token, "profile": profile(&name),
        "state": {"is_connected": false, "is_watching": false}
    }))
    .into_response()
}

/// Who a token is: `Some("API")` for the API token, a session id, or `None`.
fn who(s: &Inner, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once("Bearer ").map(|(_, t)| t.to_string()));
    let token = bearer.or_else(|| query.map(str::to_string))?;
    if token == s.api_token {
        return Some("API".to_string());
    }
    let m = s.sessions.lock().ok()?;
    m.iter()
        .find(|(_, r)| r.token == token)
        .map(|(id, _)| id.clone())
}

async fn logout(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let Some(id) = who(&s, &headers, None) else {
        return err(StatusCode::UNAUTHORIZED, "session not found");
    };
    if s.opts.fail_logout {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "logout failed (stand-in option)",
        );
    }
    if id == "API" {
        return err(StatusCode::BAD_REQUEST, "session is not logged in");
    }
    if let Some(rec) = s.sessions.lock().ok().and_then(|mut m| m.remove(&id)) {
        rec.kill.cancel();
    }
    Json(true).into_response()
}

async fn sessions(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if who(&s, &headers, None).is_none() {
        return err(StatusCode::UNAUTHORIZED, "session not found");
    }
    let list: Vec<Value> = s
        .sessions
        .lock()
        .map(|m| {
            m.iter()
                .map(|(id, r)| {
                    json!({"id": id, "profile": profile(&r.name),
                           "state": {"is_connected": r.connected, "is_watching": false}})
                })
                .collect()
        })
        .unwrap_or_default();
    Json(list).into_response()
}

async fn delete_session(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(me) = who(&s, &headers, None) else {
        return err(StatusCode::UNAUTHORIZED, "session not found");
    };
    if me == id {
        return err(StatusCode::BAD_REQUEST, "cannot delete self");
    }
    match s.sessions.lock().ok().and_then(|mut m| m.remove(&id)) {
        Some(rec) => {
            rec.kill.cancel();
            StatusCode::NO_CONTENT.into_response()
        }
        None => err(StatusCode::NOT_FOUND, "session not found"),
    }
}

#[derive(serde::Deserialize)]
struct WsQuery {
    token: Option<String>,
}

async fn ws(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = who(&s, &headers, q.token.as_deref()).filter(|id| id != "API");
    upgrade.on_upgrade(move |socket| session_ws(s, id, socket))
}

fn text(event: &str, payload: Value) -> Message {
    Message::Text(
        json!({"event": event, "payload": payload})
            .to_string()
            .into(),
    )
}

async fn session_ws(s: Arc<Inner>, id: Option<String>, mut socket: WebSocket) {
    // Auth happens after the upgrade, as in neko.
    let Some(id) = id else {
        let _ = socket
            .send(text(
                "system/disconnect",
                json!({"message": "session not found"}),
            ))
            .await;
        return; // dropped without a close frame
    };
    let kill = {
        let Ok(mut m) = s.sessions.lock() else { return };
        let Some(rec) = m.get_mut(&id) else { return };
        rec.connected = true;
        rec.kill.clone()
    };
    let drop_all = s.drop_all.lock().map(|t| t.clone()).unwrap_or_default();
    let init = json!({
        "session_id": id,
        "control_host": {"id": "", "has_host": false},
        "screen_size": {"width": 1280, "height": 720, "rate": 30},
        "sessions": {}, "settings": {"implicit_hosting": true}, "touch_events": false,
        "screencast_enabled": false, "webrtc": {"videos": ["main"]}
    });
    if socket.send(text("system/init", init)).await.is_err() {
        return;
    }
    let mut heartbeat = tokio::time::interval(s.opts.heartbeat);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            _ = kill.cancelled() => {
                let _ = socket.send(text("system/disconnect", json!({"message": "session deleted"}))).await;
                break;
            }
            _ = drop_all.cancelled() => break,
            _ = heartbeat.tick() => {
                if socket.send(Message::Text(r#"{"event":"system/heartbeat"}"#.into())).await.is_err()
                    || socket.send(Message::Ping(bytes::Bytes::from_static(b"hb"))).await.is_err()
                {
                    break;
                }
            }
            msg = socket.next() => {
                let Some(Ok(msg)) = msg else { break };
                if !handle(&s, &id, &mut socket, msg).await {
                    break;
                }
            }
        }
    }
    if let Ok(mut m) = s.sessions.lock() {
        if let Some(rec) = m.get_mut(&id) {
            rec.connected = false;
        }
    }
    if let Ok(mut l) = s.log.lock() {
        l.ws_ended += 1;
    }
}

/// One message from the relay; false ends the connection (without a close frame).
async fn handle(s: &Inner, id: &str, socket: &mut WebSocket, msg: Message) -> bool {
    match msg {
        Message::Text(t) => {
            let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
            let event = v
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let payload = v.get("payload").cloned().unwrap_or(Value::Null);
            if let Ok(mut l) = s.log.lock() {
                l.events.push((id.to_string(), event.clone()));
            }
            match event.as_str() {
                "signal/request" => socket
                    .send(text(
                        "signal/provide",
                        json!({"sdp": "v=0 stand-in", "iceservers": []}),
                    ))
                    .await
                    .is_ok(),
                e if e.starts_with("signal/") => socket.send(Message::Text(t)).await.is_ok(),
                "test/close" => {
                    let code = payload.get("code").and_then(Value::as_u64).unwrap_or(1000) as u16;
                    let reason = payload
                        .get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    // Wait for the close reply, then end.
                    while let Some(Ok(m)) = socket.next().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                    false
                }
                "test/drop" => false,
                "test/flood" => {
                    let count = payload.get("count").and_then(Value::as_u64).unwrap_or(0);
                    let size = payload.get("size").and_then(Value::as_u64).unwrap_or(16) as usize;
                    let body = format!(
                        "{{\"event\":\"test/flood\",\"payload\":\"{}\"}}",
                        "x".repeat(size)
                    );
                    for _ in 0..count {
                        if socket
                            .send(Message::Text(body.clone().into()))
                            .await
                            .is_err()
                        {
                            return false;
                        }
                        if let Ok(mut l) = s.log.lock() {
                            l.flood_sent += 1;
                        }
                    }
                    true
                }
                _ => true,
            }
        }
        Message::Binary(b) => socket.send(Message::Binary(b)).await.is_ok(),
        Message::Pong(_) => {
            if let Ok(mut l) = s.log.lock() {
                l.pongs += 1;
            }
            true
        }
        Message::Ping(_) => true,
        Message::Close(c) => {
            if let Ok(mut l) = s.log.lock() {
                l.closes.push((
                    id.to_string(),
                    c.map(|c| (c.code, c.reason.as_str().to_string())),
                ));
            }
            false
        }
    }
}
