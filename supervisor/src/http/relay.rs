//! The signaling relay `/stream/signaling`: one fresh neko session per browser connection,
//! frames relayed both ways with bounded buffers, the session logged out on close.
//!
//! Per connection: check neko is ready (else `503`), take a client slot (else `503`), log in
//! to neko with a fresh username (`viewer-N`, or `watcher-N` for view tokens), open neko's
//! `/api/ws` with that session's token in an `Authorization: Bearer` header, then upgrade the
//! browser and relay text and binary messages both ways, in order. When either side goes
//! away the session is logged out (`POST /api/logout`), falling back to
//! `DELETE /api/sessions/{id}` with deskd's API token; a guard does this even if the relay
//! task is cancelled, so no session leaks.
//!
//! Refusals before the upgrade are JSON `{"error": ...}`: `503` neko not ready or not
//! configured, `503` too many clients (`[http] max_clients`), `502` neko login or WebSocket
//! failed, `400` not a WebSocket request (and `401`/`403` from [`super::auth`]).
//!
//! Client slots: `max_clients` relays in all, of which view-only clients may hold at most
//! `max_clients - reserve` (reserve = `max(1, max_clients / 4)`, so with `max_clients = 1`
//! the one slot is for control clients). A holder of the view token can therefore never lock
//! controllers out: while view clients are at their limit, `reserve` slots stay free for
//! control clients.
//!
//! Close codes the browser can see after the upgrade (the viewer acts on these):
//!
//! | code | reason (example) | viewer action |
//! |---|---|---|
//! | neko's own | whatever neko sent in its close frame | as the code says |
//! | 4503 | `neko restarted, retry` / `neko connection lost, retry` / `neko stalled, retry` | reconnect with backoff |
//! | 4408 | `too slow: ...` (queue full for `stall` seconds) | reconnect |
//! | 1009 | `message too big: limit N bytes` | do not resend that message |
//! | 1001 | `deskd is shutting down` | reconnect with backoff (deskd may come back) |
//!
//! Close frames from the browser are passed to neko with their code and reason and answered
//! with a Close frame of the same code (RFC 6455 §5.5.1: the browser then sees a clean close),
//! and neko's are passed to the browser. Pings are answered by the WebSocket layer on each side and not relayed;
//! neko's `system/heartbeat` text messages are relayed like any other.
//!
//! View-only clients may send only what watching needs, an allow list ([`VIEW_EVENTS`]:
//! `signal/request`, `signal/answer`, `signal/candidate`, `signal/restart`, `signal/video`,
//! `signal/audio`, `client/heartbeat`); everything else is dropped, so neko never makes them
//! host (implicit hosting applies only through WS `control/*`), never writes their text to
//! its log (`system/logs`), and an event neko adds later is refused until it is listed. Also
//! dropped: any binary message and any message that is not JSON with an `event` field.
//!
//! The relay core ([`relay`]) is generic over `Sink`/`Stream` of [`Frame`] and knows nothing
//! of axum, tungstenite or the supervisor; the handler adapts both sides to it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

use super::auth::{json_error, Access};
use super::neko_api::{NekoApi, NekoApiError, Session};
use super::AppState;
use crate::config::HttpSettings;
use crate::metrics::{Direction, Metrics, Refusal};
use crate::neko_feed::NekoFeed;
use crate::supervisor::{ServiceState, Snapshot};

/// Close code: neko is unavailable or restarted; reconnect with backoff.
pub const CLOSE_RETRY: u16 = 4503;
/// Close code: the browser did not read for too long.
pub const CLOSE_SLOW: u16 = 4408;
/// Close code: a message over `max_frame_bytes` (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: deskd is going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Where neko is and the relay's limits, plus the relay's shared runtime state (client slots,
/// username counter, the close-all switch).
pub struct RelaySettings {
    /// neko's internal HTTP address.
    pub neko: SocketAddr,
    /// deskd's per-start neko API token (admin). Secret: never logged.
    api_token: String,
    pub max_clients: usize,
    pub max_frame_bytes: usize,
    /// Messages buffered per direction per relay.
    pub queue: usize,
    /// How long the browser-bound queue may stay full before the browser is cut off.
    pub stall_timeout: Duration,
    /// Deadline for each neko API call and for opening neko's WebSocket.
    pub neko_timeout: Duration,
    /// Client slots, shared with the native stream (`/stream/ws`).
    clients: Arc<ClientSlots>,
    next_id: AtomicU64,
    closing: CancellationToken,
    /// neko's video from deskd's encoder, when `[neko] video = "deskd"`.
    pub neko_feed: Option<Arc<NekoFeed>>,
}

impl std::fmt::Debug for RelaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySettings")
            .field("neko", &self.neko)
            .field("api_token", &"<redacted>")
            .field("max_clients", &self.max_clients)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("queue", &self.queue)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

impl RelaySettings {
    /// Limits from `[http]`; `neko` is `[neko] bind`, `api_token` the token given to neko.
    pub fn new(neko: SocketAddr, api_token: impl Into<String>, http: &HttpSettings) -> Self {
        RelaySettings {
            neko,
            api_token: api_token.into(),
            max_clients: http.max_clients,
            max_frame_bytes: http.max_frame_bytes.max(1024),
            queue: http.relay_queue.max(1),
            stall_timeout: Duration::from_secs(10),
            neko_timeout: Duration::from_secs(10),
            clients: Arc::new(ClientSlots::new(http.max_clients)),
            next_id: AtomicU64::new(1),
            closing: CancellationToken::new(),
            neko_feed: None,
        }
    }

    /// The client for neko's HTTP API.
    pub fn api(&self) -> NekoApi {
        NekoApi::new(self.neko, self.neko_timeout)
    }

    /// Closes every open relay with 1001 (deskd shutting down) and refuses new ones.
    pub fn close_all(&self) {
        self.closing.cancel();
    }

    /// Relays that may still be opened.
    pub fn free_slots(&self) -> usize {
        self.clients.slots.available_permits()
    }

    /// How many view-only relays may be open at once (see the module doc).
    pub fn max_view_clients(&self) -> usize {
        view_limit(self.max_clients)
    }

    /// The client slots, for the native stream to share.
    pub fn client_slots(&self) -> Arc<ClientSlots> {
        self.clients.clone()
    }
}

/// `max_clients` slots, of which view-only clients may hold their share (see the module
/// doc); one set for the relay and the native stream together.
pub struct ClientSlots {
    max_clients: usize,
    slots: Arc<Semaphore>,
    /// View-only clients' share of `slots` (`max_clients` minus the control reserve).
    view_slots: Arc<Semaphore>,
}

impl ClientSlots {
    pub fn new(max_clients: usize) -> ClientSlots {
        ClientSlots {
            max_clients,
            slots: Arc::new(Semaphore::new(max_clients)),
            view_slots: Arc::new(Semaphore::new(view_limit(max_clients))),
        }
    }
}

/// View-only clients' limit: `max_clients` minus a reserve of `max(1, max_clients / 4)` slots
/// that only control clients can take.
fn view_limit(max_clients: usize) -> usize {
    max_clients.saturating_sub((max_clients / 4).max(1))
}

/// A client's hold on its slot (and, for view clients, on a view slot); released on drop.
pub struct Slot {
    _any: OwnedSemaphorePermit,
    _view: Option<OwnedSemaphorePermit>,
}

/// Takes a slot for a client with this access, or says why not.
fn take_slot(relay: &RelaySettings, access: Access) -> Result<Slot, String> {
    relay.clients.take(access)
}

impl ClientSlots {
    /// Takes a slot for a client with this access, or says why not.
    pub fn take(&self, access: Access) -> Result<Slot, String> {
        let max_view = view_limit(self.max_clients);
        let view = match access {
            Access::Control => None,
            Access::View => Some(self.view_slots.clone().try_acquire_owned().map_err(|_| {
                format!(
                    "too many viewers: {} view-only connected, the limit is [http] max_clients \
                 minus {} slots kept for control clients",
                    max_view,
                    self.max_clients - max_view
                )
            })?),
        };
        let any = self.slots.clone().try_acquire_owned().map_err(|_| {
            format!(
                "too many viewers: {} connected, the limit is [http] max_clients",
                self.max_clients
            )
        })?;
        Ok(Slot {
            _any: any,
            _view: view,
        })
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/stream/signaling", get(signaling))
}

// ---------------------------------------------------------------------------------------
// The relay core: generic over Sink/Stream.

/// A WebSocket message as the relay sees it, independent of the library on either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// UTF-8 text (already validated by the side it came from).
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<Close>),
}

impl Frame {
    /// Payload length (what `max_frame_bytes` limits).
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(b) | Frame::Binary(b) | Frame::Ping(b) | Frame::Pong(b) => b.len(),
            Frame::Close(c) => c.as_ref().map_or(0, |c| c.reason.len() + 2),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn close(code: u16, reason: impl Into<String>) -> Frame {
        Frame::Close(Some(Close::new(code, reason)))
    }
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

impl Close {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        // A close reason must fit a control frame (123 bytes).
        while reason.len() > 123 {
            reason.pop();
        }
        Close { code, reason }
    }
}

/// Why reading one side failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A message over the size limit.
    TooBig,
    /// The connection broke (reset, protocol error, EOF without a close frame).
    Broken(String),
}

/// Which end of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Browser,
    Neko,
}

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `by` sent a close frame (`None`: without a code).
    Closed { by: Side, close: Option<Close> },
    /// `side`'s connection broke without a close frame.
    Gone { side: Side, error: String },
    /// `from` sent a message over the limit.
    TooBig { from: Side },
    /// `side` stopped reading and its queue stayed full for the stall timeout.
    Stalled { side: Side },
    /// Stopped from outside (neko restart, shutdown); the browser got this close.
    Stopped(Close),
}

/// What the relay core needs to know about one connection.
#[derive(Debug, Clone)]
pub struct Policy {
    pub access: Access,
    pub max_frame_bytes: usize,
    pub queue: usize,
    pub stall_timeout: Duration,
    /// neko's video from deskd's encoder: asked for key frames when neko turns a browser's
    /// video on (neko itself never passes a key frame request on).
    pub neko_feed: Option<Arc<NekoFeed>>,
}

/// Read buffer of each WebSocket (browser and neko side). tungstenite's default is 128 KiB
/// per socket, which made an idle relay cost about 265 KiB; signaling messages are small, and
/// a larger message is simply read in several chunks.
pub const READ_BUFFER: usize = 8 * 1024;

/// How long closing handshakes may take once a relay has ended.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Relays frames between a browser and neko until one side ends or `stop` resolves (with the
/// close frame to send the browser). Returns how it ended.
pub async fn relay<BTx, BRx, NTx, NRx, Stop>(
    browser: (BTx, BRx),
    neko: (NTx, NRx),
    policy: &Policy,
    metrics: &Metrics,
    stop: Stop,
) -> End
where
    BTx: Sink<Frame> + Unpin,
    BTx::Error: std::fmt::Display,
    BRx: Stream<Item = Result<Frame, FrameError>> + Unpin,
    NTx: Sink<Frame> + Unpin,
    NTx::Error: std::fmt::Display,
    NRx: Stream<Item = Result<Frame, FrameError>> + Unpin,
    Stop: Future<Output = Close>,
{
    let (b_tx, b_rx) = browser;
    let (n_tx, n_rx) = neko;
    let (to_browser, to_browser_rx) = mpsc::channel::<Frame>(policy.queue);
    let (to_neko, to_neko_rx) = mpsc::channel::<Frame>(policy.queue);

    let up = pump(b_rx, to_neko.clone(), Side::Browser, policy, metrics);
    let down = pump(n_rx, to_browser.clone(), Side::Neko, policy, metrics);
    let b_writer = write_all(to_browser_rx, b_tx);
    let n_writer = write_all(to_neko_rx, n_tx);
    tokio::pin!(up, down, b_writer, n_writer, stop);

    let end = tokio::select! {
        biased;
        e = &mut up => e,
        e = &mut down => e,
        r = &mut b_writer => End::Gone { side: Side::Browser, error: r.err().unwrap_or_else(|| "writer ended".into()) },
        r = &mut n_writer => End::Gone { side: Side::Neko, error: r.err().unwrap_or_else(|| "writer ended".into()) },
        c = &mut stop => End::Stopped(c),
    };

    let limit = policy.max_frame_bytes;
    let (for_browser, for_neko) = match &end {
        // RFC 6455 §5.5.1: a Close frame is answered with a Close frame (echoing the code),
        // so the browser sees a clean close (`wasClean`), not 1006.
        End::Closed {
            by: Side::Browser,
            close,
        } => (
            Some(Frame::Close(close.clone())),
            Some(Frame::Close(close.clone())),
        ),
        End::Closed {
            by: Side::Neko,
            close,
        } => (Some(Frame::Close(close.clone())), None),
        End::Gone {
            side: Side::Neko, ..
        } => (
            Some(Frame::close(CLOSE_RETRY, "neko connection lost, retry")),
            None,
        ),
        End::Gone {
            side: Side::Browser,
            ..
        } => (
            None,
            Some(Frame::close(CLOSE_GOING_AWAY, "viewer went away")),
        ),
        End::TooBig {
            from: Side::Browser,
        } => (
            Some(Frame::close(
                CLOSE_TOO_BIG,
                format!("message too big: limit {limit} bytes"),
            )),
            Some(Frame::close(CLOSE_GOING_AWAY, "viewer closed")),
        ),
        End::TooBig { from: Side::Neko } => (
            Some(Frame::close(
                CLOSE_TOO_BIG,
                format!("neko sent a message over the {limit} byte limit"),
            )),
            Some(Frame::close(CLOSE_TOO_BIG, "message too big")),
        ),
        End::Stalled {
            side: Side::Browser,
        } => (
            Some(Frame::close(
                CLOSE_SLOW,
                format!(
                    "too slow: not reading for {}s",
                    policy.stall_timeout.as_secs()
                ),
            )),
            Some(Frame::close(CLOSE_GOING_AWAY, "viewer too slow")),
        ),
        End::Stalled { side: Side::Neko } => {
            (Some(Frame::close(CLOSE_RETRY, "neko stalled, retry")), None)
        }
        End::Stopped(c) => (
            Some(Frame::Close(Some(c.clone()))),
            Some(Frame::close(CLOSE_GOING_AWAY, "relay stopped")),
        ),
    };
    // Queue the close frames behind what is already queued (order is kept), then give the
    // writers a moment to deliver them. A side whose queue is full is not waited for.
    let b_wait = for_browser.is_some_and(|f| to_browser.try_send(f).is_ok());
    let n_wait = for_neko.is_some_and(|f| to_neko.try_send(f).is_ok());
    let finish = async {
        tokio::join!(
            async {
                if b_wait {
                    let _ = (&mut b_writer).await;
                }
            },
            async {
                if n_wait {
                    let _ = (&mut n_writer).await;
                }
            }
        )
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, finish).await;
    end
}

/// Reads one side and queues its messages for the other, until the side ends.
async fn pump<R>(
    mut rx: R,
    tx: mpsc::Sender<Frame>,
    from: Side,
    policy: &Policy,
    metrics: &Metrics,
) -> End
where
    R: Stream<Item = Result<Frame, FrameError>> + Unpin,
{
    let dir = match from {
        Side::Browser => Direction::ToNeko,
        Side::Neko => Direction::ToBrowser,
    };
    let to = match from {
        Side::Browser => Side::Neko,
        Side::Neko => Side::Browser,
    };
    let filter = from == Side::Browser && policy.access == Access::View;
    let feed = policy.neko_feed.as_ref().filter(|_| from == Side::Neko);
    loop {
        let frame = match rx.next().await {
            None => {
                return End::Gone {
                    side: from,
                    error: "connection closed without a close frame".into(),
                }
            }
            Some(Err(FrameError::TooBig)) => return End::TooBig { from },
            Some(Err(FrameError::Broken(error))) => return End::Gone { side: from, error },
            Some(Ok(Frame::Close(close))) => return End::Closed { by: from, close },
            // Answered by the WebSocket layer of that side; nothing to relay.
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
            Some(Ok(f)) => f,
        };
        let len = frame.len();
        if len > policy.max_frame_bytes {
            return End::TooBig { from };
        }
        if filter && !view_allows(&frame) {
            metrics.dropped_view_only();
            continue;
        }
        metrics.relayed(dir, len);
        if let Some(feed) = feed {
            if video_turned_on(&frame) {
                feed.request_key_frames();
            }
        }
        match tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(frame)) => {
                match tokio::time::timeout(policy.stall_timeout, tx.send(frame)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        return End::Gone {
                            side: to,
                            error: "writer ended".into(),
                        }
                    }
                    Err(_) => return End::Stalled { side: to },
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return End::Gone {
                    side: to,
                    error: "writer ended".into(),
                }
            }
        }
    }
}

/// Writes queued messages to one side, flushing when the queue runs empty (so bursts are
/// written in one go). Ends after writing a close frame.
async fn write_all<S>(mut rx: mpsc::Receiver<Frame>, mut sink: S) -> Result<(), String>
where
    S: Sink<Frame> + Unpin,
    S::Error: std::fmt::Display,
{
    let mut batch = Vec::with_capacity(64);
    // Takes everything queued at once (up to 64), writes it, flushes once.
    while rx.recv_many(&mut batch, 64).await > 0 {
        for frame in batch.drain(..) {
            if matches!(frame, Frame::Close(_)) {
                // After the peer's Close the WebSocket layer has queued its answer itself and
                // refuses another Close frame; flushing sends that answer.
                let sent = sink.send(frame).await.map_err(|e| e.to_string());
                let flushed = sink.flush().await.map_err(|e| e.to_string());
                return sent.or(flushed);
            }
            sink.feed(frame).await.map_err(|e| e.to_string())?;
        }
        if rx.is_empty() {
            sink.flush().await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Whether a message from a view-only client may reach neko.
///
/// neko decodes messages with Go's `encoding/json`, which matches object keys to the `event`
/// field case-insensitively and lets the last match win. So every key that equals `event`
/// ignoring ASCII case counts (no other character folds to one of its letters): the message
/// passes only if there is at least one, all are strings, and all are on the allow list
/// ([`VIEW_EVENTS`]).
/// `{"event":"signal/request","EVENT":"control/request"}` is a `control/request` to neko.
pub fn view_allows(frame: &Frame) -> bool {
    match frame {
        Frame::Text(bytes) => match serde_json::from_slice::<EventKeys>(bytes) {
            Ok(EventKeys(events)) => {
                !events.is_empty()
                    && events
                        .iter()
                        .all(|e| e.as_deref().is_some_and(is_view_event))
            }
            Err(_) => false,
        },
        Frame::Binary(_) => false,
        Frame::Ping(_) | Frame::Pong(_) | Frame::Close(_) => true,
    }
}

/// Whether `frame` is neko telling the browser that its video is on (`signal/video` with
/// `disabled: false`): neko has then added it to the pipeline's listeners, which wait for a
/// key frame.
pub fn video_turned_on(frame: &Frame) -> bool {
    #[derive(serde::Deserialize)]
    struct Message {
        event: String,
        #[serde(default)]
        payload: Option<Video>,
    }
    #[derive(serde::Deserialize)]
    struct Video {
        #[serde(default)]
        disabled: Option<bool>,
    }
    let Frame::Text(bytes) = frame else {
        return false;
    };
    // Most of neko's messages are other events: skip them without parsing.
    if !bytes.windows(12).any(|w| w == b"signal/video") {
        return false;
    }
    serde_json::from_slice::<Message>(bytes).is_ok_and(|m| {
        m.event == "signal/video" && m.payload.is_some_and(|v| v.disabled == Some(false))
    })
}

/// The values of every top-level key of a JSON object that Go would take for `event`
/// (`None` for a value that is not a string).
struct EventKeys(Vec<Option<String>>);

impl<'de> serde::Deserialize<'de> for EventKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = EventKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<EventKeys, A::Error> {
                let mut events = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key.eq_ignore_ascii_case("event") {
                        let value = map.next_value::<serde_json::Value>()?;
                        events.push(value.as_str().map(str::to_owned));
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(EventKeys(events))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The neko events a view-only client may send: what watching needs (asking for the stream,
/// answering its offer, ICE, picking a video or audio track, heartbeats) and nothing else.
/// Everything not listed is dropped: `control/*`, `clipboard/set`, `keyboard/*`,
/// `screen/set`, `signal/offer`, `system/logs` (neko writes it to its log), `send/*`, plugin
/// events, and whatever neko adds later.
pub const VIEW_EVENTS: [&str; 7] = [
    "signal/request",
    "signal/answer",
    "signal/candidate",
    "signal/restart",
    "signal/video",
    "signal/audio",
    "client/heartbeat",
];

/// Whether a view-only client may send neko `event` ([`VIEW_EVENTS`]).
pub fn is_view_event(event: &str) -> bool {
    VIEW_EVENTS.contains(&event)
}

// ---------------------------------------------------------------------------------------
// Adapters: axum (browser side) and tungstenite (neko side) to Frame.

fn from_axum(m: ws::Message) -> Frame {
    match m {
        ws::Message::Text(t) => Frame::Text(Bytes::from(t)),
        ws::Message::Binary(b) => Frame::Binary(b),
        ws::Message::Ping(b) => Frame::Ping(b),
        ws::Message::Pong(b) => Frame::Pong(b),
        ws::Message::Close(c) => Frame::Close(c.map(|c| Close::new(c.code, c.reason.as_str()))),
    }
}

fn to_axum(f: Frame) -> Result<ws::Message, axum::Error> {
    Ok(match f {
        Frame::Text(b) => ws::Message::Text(ws::Utf8Bytes::try_from(b).map_err(axum::Error::new)?),
        Frame::Binary(b) => ws::Message::Binary(b),
        Frame::Ping(b) => ws::Message::Ping(b),
        Frame::Pong(b) => ws::Message::Pong(b),
        Frame::Close(c) => ws::Message::Close(c.map(|c| ws::CloseFrame {
            code: c.code,
            reason: c.reason.into(),
        })),
    })
}

fn axum_error(e: axum::Error) -> FrameError {
    match e.into_inner().downcast::<tungstenite::Error>() {
        Ok(e) => tungstenite_error(*e),
        Err(e) => FrameError::Broken(e.to_string()),
    }
}

fn tungstenite_error(e: tungstenite::Error) -> FrameError {
    match e {
        tungstenite::Error::Capacity(_) => FrameError::TooBig,
        other => FrameError::Broken(other.to_string()),
    }
}

fn from_tungstenite(m: tungstenite::Message) -> Option<Frame> {
    use tungstenite::Message as M;
    Some(match m {
        M::Text(t) => Frame::Text(Bytes::from(t)),
        M::Binary(b) => Frame::Binary(b),
        M::Ping(b) => Frame::Ping(b),
        M::Pong(b) => Frame::Pong(b),
        M::Close(c) => Frame::Close(c.map(|c| Close::new(u16::from(c.code), c.reason.as_str()))),
        M::Frame(_) => return None,
    })
}

fn to_tungstenite(f: Frame) -> Result<tungstenite::Message, tungstenite::Error> {
    use tungstenite::Message as M;
    Ok(match f {
        Frame::Text(b) => M::Text(
            tungstenite::Utf8Bytes::try_from(b)
                .map_err(|_| tungstenite::Error::Utf8(String::from("invalid UTF-8")))?,
        ),
        Frame::Binary(b) => M::Binary(b),
        Frame::Ping(b) => M::Ping(b),
        Frame::Pong(b) => M::Pong(b),
        Frame::Close(c) => M::Close(c.map(|c| tungstenite::protocol::CloseFrame {
            code: c.code.into(),
            reason: c.reason.into(),
        })),
    })
}

/// The browser's socket as a Sink/Stream of frames.
fn browser_io(
    socket: WebSocket,
) -> (
    impl Sink<Frame, Error = axum::Error> + Unpin,
    impl Stream<Item = Result<Frame, FrameError>> + Unpin,
) {
    let (tx, rx) = socket.split();
    let tx = tx.with(|f: Frame| std::future::ready(to_axum(f)));
    let rx = rx.map(|r| r.map(from_axum).map_err(axum_error));
    (Box::pin(tx), rx)
}

type NekoSocket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// neko's socket as a Sink/Stream of frames.
fn neko_io(
    socket: NekoSocket,
) -> (
    impl Sink<Frame, Error = tungstenite::Error> + Unpin,
    impl Stream<Item = Result<Frame, FrameError>> + Unpin,
) {
    let (tx, rx) = socket.split();
    let tx = tx.with(|f: Frame| std::future::ready(to_tungstenite(f)));
    let rx = rx.filter_map(|r| {
        std::future::ready(match r {
            Ok(m) => from_tungstenite(m).map(Ok),
            Err(e) => Some(Err(tungstenite_error(e))),
        })
    });
    (Box::pin(tx), Box::pin(rx))
}

/// A failure opening neko's WebSocket.
#[derive(Debug, thiserror::Error)]
pub enum NekoWsError {
    #[error("cannot connect to neko at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("neko's WebSocket handshake at {addr} failed: {message}")]
    Handshake { addr: SocketAddr, message: String },
    #[error("neko at {addr} did not open its WebSocket within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// Opens `ws://<neko>/api/ws` with the session token in the Authorization header.
pub async fn connect_neko(
    addr: SocketAddr,
    session_token: &str,
    max_frame_bytes: usize,
    timeout: Duration,
) -> Result<NekoSocket, NekoWsError> {
    use tungstenite::client::IntoClientRequest;
    let open = async {
        let mut req = format!("ws://{addr}/api/ws")
            .into_client_request()
            .map_err(|e| NekoWsError::Handshake {
                addr,
                message: e.to_string(),
            })?;
        let bearer = axum::http::HeaderValue::from_str(&format!("Bearer {session_token}"))
            .map_err(|_| NekoWsError::Handshake {
                addr,
                message: "session token is not a valid header value".into(),
            })?;
        req.headers_mut()
            .insert(axum::http::header::AUTHORIZATION, bearer);
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| NekoWsError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let config = tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(max_frame_bytes))
            .max_frame_size(Some(max_frame_bytes));
        let (socket, _resp) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
            .await
            .map_err(|e| NekoWsError::Handshake {
                addr,
                message: e.to_string(),
            })?;
        Ok(socket)
    };
    match tokio::time::timeout(timeout, open).await {
        Ok(r) => r,
        Err(_) => Err(NekoWsError::Timeout { addr, timeout }),
    }
}

// ---------------------------------------------------------------------------------------
// Session cleanup.

/// Owns a neko session until it is logged out; dropping it unreleased logs it out in the
/// background, so a cancelled or failed relay never leaks a session.
struct SessionGuard {
    api: NekoApi,
    api_token: String,
    session: Option<Session>,
}

impl SessionGuard {
    async fn release(mut self) {
        if let Some(s) = self.session.take() {
            logout(&self.api, &self.api_token, s).await;
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let api = self.api.clone();
                let token = std::mem::take(&mut self.api_token);
                rt.spawn(async move { logout(&api, &token, s).await });
            }
        }
    }
}

/// Logs a session out; falls back to deleting it with the API token.
async fn logout(api: &NekoApi, api_token: &str, session: Session) {
    match api.logout(&session.token).await {
        Ok(()) => tracing::debug!(session = %session.id, "neko session logged out"),
        Err(e) => {
            tracing::debug!(session = %session.id, error = %e, "neko logout failed; deleting the session");
            match api.delete_session(api_token, &session.id).await {
                Ok(()) => {}
                // neko is down (restarting, stopping): its sessions went with it.
                Err(NekoApiError::Connect { .. }) => {
                    tracing::debug!(session = %session.id, "neko is gone; so is its session")
                }
                Err(e) => {
                    tracing::warn!(session = %session.id, error = %e, "could not remove neko session")
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The handler.

/// Resolves when the relay must stop: neko's generation changed or neko is no longer ready
/// (4503 retry), or deskd is shutting down (1001).
async fn stop_signal(
    mut status: watch::Receiver<Snapshot>,
    generation: u64,
    closing: CancellationToken,
) -> Close {
    let shutting_down = || Close::new(CLOSE_GOING_AWAY, "deskd is shutting down");
    loop {
        {
            let snap = status.borrow_and_update();
            if snap.stopping {
                return shutting_down();
            }
            match snap.get(crate::neko::SERVICE_NAME) {
                Some(n) if n.state == ServiceState::Ready && n.generation == generation => {}
                _ => return Close::new(CLOSE_RETRY, "neko restarted, retry"),
            }
        }
        tokio::select! {
            r = status.changed() => if r.is_err() { return shutting_down() },
            _ = closing.cancelled() => return shutting_down(),
        }
    }
}

/// Whether neko can take a relay now: its generation, or the 503 reason.
fn neko_ready(snap: &Snapshot) -> Result<u64, String> {
    if snap.stopping {
        return Err("desktop stream not available: deskd is shutting down".into());
    }
    match snap.get(crate::neko::SERVICE_NAME) {
        Some(n) if n.state == ServiceState::Ready => Ok(n.generation),
        Some(n) => Err(format!(
            "desktop stream not ready: neko is {}",
            n.state.as_str()
        )),
        None => Err("desktop stream not ready: neko is not running".into()),
    }
}

async fn signaling(
    State(state): State<AppState>,
    access: Access,
    upgrade: Result<WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let metrics = state.metrics.clone();
    let Some(relay) = state.relay.clone() else {
        metrics.refused(Refusal::NotReady);
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "desktop stream not configured: no [neko] section",
        );
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("/stream/signaling is a WebSocket endpoint: {e}"),
            )
        }
    };
    if relay.closing.is_cancelled() {
        metrics.refused(Refusal::NotReady);
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "deskd is shutting down");
    }
    let generation = match neko_ready(&state.status.borrow()) {
        Ok(g) => g,
        Err(reason) => {
            metrics.refused(Refusal::NotReady);
            return json_error(StatusCode::SERVICE_UNAVAILABLE, reason);
        }
    };
    let permit = match take_slot(&relay, access) {
        Ok(slot) => slot,
        Err(reason) => {
            metrics.refused(Refusal::TooManyClients);
            return json_error(StatusCode::SERVICE_UNAVAILABLE, reason);
        }
    };

    let n = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let username = match access {
        Access::Control => format!("viewer-{n}"),
        Access::View => format!("watcher-{n}"),
    };
    // Opened in its own task: if the browser goes away mid-login, the handler is dropped but
    // the task runs on, and its unused result drops the guard, which logs the session out.
    let opening = tokio::spawn(open_neko(relay.clone(), username));
    let (guard, neko, session_id) = match opening.await {
        Ok(Ok(opened)) => opened,
        Ok(Err(message)) => {
            metrics.refused(Refusal::NekoError);
            tracing::warn!("relay: {message}");
            return json_error(StatusCode::BAD_GATEWAY, message);
        }
        Err(e) => {
            metrics.refused(Refusal::NekoError);
            return json_error(
                StatusCode::BAD_GATEWAY,
                format!("opening the neko session failed: {e}"),
            );
        }
    };

    let policy = Policy {
        access,
        max_frame_bytes: relay.max_frame_bytes,
        queue: relay.queue,
        stall_timeout: relay.stall_timeout,
        neko_feed: relay.neko_feed.clone(),
    };
    let status = state.status.clone();
    let closing = relay.closing.clone();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(relay.max_frame_bytes)
        .max_frame_size(relay.max_frame_bytes)
        .on_upgrade(move |socket| async move {
            run(
                socket, neko, guard, permit, policy, metrics, status, generation, closing,
                session_id,
            )
            .await
        })
        .into_response()
}

/// Logs in to neko and opens its WebSocket; on failure the session is logged out again.
async fn open_neko(
    relay: Arc<RelaySettings>,
    username: String,
) -> Result<(SessionGuard, NekoSocket, String), String> {
    let api = relay.api();
    let session = api
        .login(&username)
        .await
        .map_err(|e| format!("cannot open a neko session: {e}"))?;
    let token = session.token.clone();
    let session_id = session.id.clone();
    let guard = SessionGuard {
        api,
        api_token: relay.api_token.clone(),
        session: Some(session),
    };
    match connect_neko(
        relay.neko,
        &token,
        relay.max_frame_bytes,
        relay.neko_timeout,
    )
    .await
    {
        Ok(socket) => Ok((guard, socket, session_id)),
        Err(e) => {
            guard.release().await;
            Err(format!("cannot open neko's WebSocket: {e}"))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    socket: WebSocket,
    neko: NekoSocket,
    guard: SessionGuard,
    _permit: Slot,
    policy: Policy,
    metrics: Arc<Metrics>,
    status: watch::Receiver<Snapshot>,
    generation: u64,
    closing: CancellationToken,
    session_id: String,
) {
    let _open = metrics.relay_opened();
    tracing::info!(session = %session_id, access = ?policy.access, "relay opened");
    let stop = stop_signal(status, generation, closing);
    let end = relay(browser_io(socket), neko_io(neko), &policy, &metrics, stop).await;
    match &end {
        End::TooBig { .. } => metrics.refused(Refusal::TooBig),
        End::Stalled {
            side: Side::Browser,
        } => metrics.refused(Refusal::SlowClient),
        _ => {}
    }
    tracing::info!(session = %session_id, end = ?end, "relay closed");
    guard.release().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;

    type BoxSink = Pin<Box<dyn Sink<Frame, Error = String> + Send>>;
    type BoxStream = Pin<Box<dyn Stream<Item = Result<Frame, FrameError>> + Send>>;

    fn sink(tx: mpsc::Sender<Frame>) -> BoxSink {
        Box::pin(futures_util::sink::unfold(tx, |tx, f: Frame| async move {
            tx.send(f).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(tx)
        }))
    }

    fn stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> Pin<Box<dyn Stream<Item = T> + Send>> {
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|v| (v, rx))
        }))
    }

    /// One side of a relay made of channels: (the relay's end, the test's end).
    #[allow(clippy::type_complexity)]
    fn side() -> (
        (BoxSink, BoxStream),
        (
            mpsc::Sender<Result<Frame, FrameError>>,
            Pin<Box<dyn Stream<Item = Frame> + Send>>,
        ),
    ) {
        let (out_tx, out_rx) = mpsc::channel::<Frame>(1024);
        let (in_tx, in_rx) = mpsc::channel::<Result<Frame, FrameError>>(1024);
        ((sink(out_tx), stream(in_rx)), (in_tx, stream(out_rx)))
    }

    fn policy(access: Access) -> Policy {
        Policy {
            access,
            max_frame_bytes: 64,
            queue: 4,
            stall_timeout: Duration::from_millis(200),
            neko_feed: None,
        }
    }

    #[test]
    fn video_turned_on_is_neko_saying_so() {
        assert!(video_turned_on(&text(
            r#"{"event":"signal/video","payload":{"disabled":false,"id":"main","video":"main","auto":false}}"#
        )));
        for not in [
            r#"{"event":"signal/video","payload":{"disabled":true,"id":"main"}}"#,
            r#"{"event":"signal/video","payload":{"id":"main"}}"#,
            r#"{"event":"signal/audio","payload":{"disabled":false}}"#,
            r#"{"event":"chat/message","payload":{"text":"signal/video","disabled":false}}"#,
            r#"{"event":"signal/video""#,
        ] {
            assert!(!video_turned_on(&text(not)), "{not}");
        }
        assert!(!video_turned_on(&Frame::Binary(Bytes::from_static(
            br#"{"event":"signal/video","payload":{"disabled":false}}"#
        ))));
    }

    fn text(s: &str) -> Frame {
        Frame::Text(Bytes::from(s.to_string()))
    }

    #[tokio::test]
    async fn relays_in_order_and_propagates_close() {
        let ((b_tx, b_rx), (b_in, mut b_out)) = side();
        let ((n_tx, n_rx), (n_in, mut n_out)) = side();
        let metrics = Metrics::new();
        let p = policy(Access::Control);
        let task = async {
            relay(
                (b_tx, b_rx),
                (n_tx, n_rx),
                &p,
                &metrics,
                std::future::pending(),
            )
            .await
        };
        let drive = async {
            for i in 0..20 {
                b_in.send(Ok(text(&format!("up{i}")))).await.unwrap();
                n_in.send(Ok(Frame::Binary(Bytes::from(vec![i as u8]))))
                    .await
                    .unwrap();
            }
            for i in 0..20 {
                assert_eq!(n_out.next().await, Some(text(&format!("up{i}"))));
                assert_eq!(
                    b_out.next().await,
                    Some(Frame::Binary(Bytes::from(vec![i as u8])))
                );
            }
            b_in.send(Ok(Frame::close(4000, "bye"))).await.unwrap();
            assert_eq!(n_out.next().await, Some(Frame::close(4000, "bye")));
        };
        let (end, ()) = tokio::join!(task, drive);
        assert_eq!(
            end,
            End::Closed {
                by: Side::Browser,
                close: Some(Close::new(4000, "bye"))
            }
        );
        assert_eq!(metrics.frames(Direction::ToNeko), 20);
    }

    #[tokio::test]
    async fn neko_drop_becomes_retry_and_view_filter() {
        let ((b_tx, b_rx), (b_in, mut b_out)) = side();
        let ((n_tx, n_rx), (n_in, mut n_out)) = side();
        let metrics = Metrics::new();
        let p = policy(Access::View);
        let task = relay(
            (b_tx, b_rx),
            (n_tx, n_rx),
            &p,
            &metrics,
            std::future::pending(),
        );
        let drive = async {
            b_in.send(Ok(text(r#"{"event":"control/request"}"#)))
                .await
                .unwrap();
            b_in.send(Ok(text(
                r#"{"event":"clipboard/set","payload":{"text":"x"}}"#,
            )))
            .await
            .unwrap();
            b_in.send(Ok(Frame::Binary(Bytes::from_static(b"\x01"))))
                .await
                .unwrap();
            b_in.send(Ok(text("not json"))).await.unwrap();
            b_in.send(Ok(text(r#"{"event":"signal/request","payload":{}}"#)))
                .await
                .unwrap();
            assert_eq!(
                n_out.next().await,
                Some(text(r#"{"event":"signal/request","payload":{}}"#))
            );
            drop(n_in); // neko drops TCP: stream ends without a close frame
            assert_eq!(
                b_out.next().await,
                Some(Frame::close(CLOSE_RETRY, "neko connection lost, retry"))
            );
        };
        let (end, ()) = tokio::join!(task, drive);
        assert!(
            matches!(
                end,
                End::Gone {
                    side: Side::Neko,
                    ..
                }
            ),
            "{end:?}"
        );
        assert_eq!(metrics.frames(Direction::ToNeko), 1);
    }

    #[tokio::test]
    async fn too_big_and_stalled() {
        let ((b_tx, b_rx), (b_in, mut b_out)) = side();
        let ((n_tx, n_rx), (_n_in, _n_out)) = side();
        let metrics = Metrics::new();
        let p = policy(Access::Control);
        let task = relay(
            (b_tx, b_rx),
            (n_tx, n_rx),
            &p,
            &metrics,
            std::future::pending(),
        );
        let drive = async {
            b_in.send(Ok(Frame::Binary(Bytes::from(vec![0u8; 65]))))
                .await
                .unwrap();
            assert_eq!(
                b_out.next().await,
                Some(Frame::close(1009, "message too big: limit 64 bytes"))
            );
        };
        let (end, ()) = tokio::join!(task, drive);
        assert_eq!(
            end,
            End::TooBig {
                from: Side::Browser
            }
        );

        // A browser sink that never accepts anything: the relay gives up after the stall timeout.
        let stuck_tx: BoxSink =
            Box::pin(futures_util::sink::unfold((), |(), _f: Frame| async move {
                std::future::pending::<()>().await;
                Ok::<_, String>(())
            }));
        let (_b_in, b_rx) = mpsc::channel::<Result<Frame, FrameError>>(1);
        let b_rx = stream(b_rx);
        let ((n_tx, n_rx), (n_in, _n_out)) = side();
        let task = relay(
            (stuck_tx, b_rx),
            (n_tx, n_rx),
            &p,
            &metrics,
            std::future::pending(),
        );
        let flood = async {
            for _ in 0..100 {
                if n_in.send(Ok(text("x"))).await.is_err() {
                    break;
                }
            }
            std::future::pending::<()>().await
        };
        let end = tokio::select! { e = task => e, () = flood => unreachable!() };
        assert_eq!(
            end,
            End::Stalled {
                side: Side::Browser
            }
        );
    }

    #[tokio::test]
    async fn stop_closes_browser_with_its_code() {
        let ((b_tx, b_rx), (_b_in, mut b_out)) = side();
        let ((n_tx, n_rx), (_n_in, mut n_out)) = side();
        let metrics = Metrics::new();
        let p = policy(Access::Control);
        let end = relay((b_tx, b_rx), (n_tx, n_rx), &p, &metrics, async {
            Close::new(CLOSE_RETRY, "neko restarted, retry")
        })
        .await;
        assert_eq!(
            end,
            End::Stopped(Close::new(CLOSE_RETRY, "neko restarted, retry"))
        );
        assert_eq!(
            b_out.next().await,
            Some(Frame::close(CLOSE_RETRY, "neko restarted, retry"))
        );
        assert_eq!(
            n_out.next().await,
            Some(Frame::close(CLOSE_GOING_AWAY, "relay stopped"))
        );
    }

    #[test]
    fn view_events_are_an_allow_list() {
        for event in [
            "control/move",
            "clipboard/set",
            "system/logs",
            "send/broadcast",
            "chat/message",
            "signal/offer",
            "keyboard/map",
            "screen/set",
            "signal/requestx",
            "",
        ] {
            assert!(!is_view_event(event), "{event}");
            let frame = text(&format!(r#"{{"event":"{event}","payload":{{}}}}"#));
            assert!(!view_allows(&frame), "{event}");
        }
        assert!(is_view_event("signal/answer"));
        assert!(is_view_event("client/heartbeat"));
        assert!(!view_allows(&text(
            r#"{"event":"system/logs","payload":[{"level":"error","message":"deskd: all services stopped"}]}"#
        )));
        assert!(view_allows(&text(
            r#"{"payload":{"a":"control/x"},"event":"signal/candidate"}"#
        )));
        assert!(!view_allows(&text(r#"{"event":"control\/move"}"#)));
        // Go's encoding/json (neko) matches keys case-insensitively, the last one winning.
        assert!(!view_allows(&text(
            r#"{"event":"signal/request","EVENT":"control/request","payload":{}}"#
        )));
        assert!(!view_allows(&text(r#"{"Event":"control/request"}"#)));
        assert!(!view_allows(&text(r#"{"\u0065vent":"control/request"}"#)));
        assert!(!view_allows(&text(
            r#"{"event":"signal/request","event":"control/request"}"#
        )));
        assert!(!view_allows(&text(r#"{"event":1}"#)));
        assert!(!view_allows(&text(r#"{"payload":{}}"#)));
        assert!(!view_allows(&text(r#"["event","signal/request"]"#)));
        assert!(view_allows(&text(
            r#"{"Event":"signal/request","payload":{}}"#
        )));
    }
}
