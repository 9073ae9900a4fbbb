//! The native stream's HTTP side: `GET /stream/ws` (the WebSocket of docs/native-stream.md)
//! and `GET /api/session` (what this client may do and which transports are there).
//!
//! Access is [`super::auth::require`]'s, as for `/stream/signaling` (token, Origin); the
//! client slots are the relay's (`[http] max_clients` and the view-only share count both
//! transports together). Refusals before the upgrade are JSON: `503` with `Retry-After` when
//! the stream is off, the display is not ready, deskd is stopping or there are too many
//! clients; `400` for a request that is not an upgrade.
//!
//! After the upgrade: the writer sends what the hub queues for this viewer, one message at
//! a time (a send waits until the socket took it, so nothing piles up in deskd beyond the
//! hub's bounded queue); a send that has not completed within [`STALL`] ends the connection
//! with 4408. The reader parses input; view-only clients may only ping and ask for key
//! frames (anything else is dropped and counted); a message that is not in the protocol
//! closes with 1008, one over 64 KiB with 1009. deskd stopping closes with 1001, the display
//! going away with 4503.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{self, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{json_error, Access};
use super::relay::{ClientSlots, Slot, CLOSE_GOING_AWAY, CLOSE_RETRY, CLOSE_SLOW, CLOSE_TOO_BIG};
use super::AppState;
use crate::metrics::{Metrics, Refusal};
use crate::stream::hub::{Out, Viewer};
use crate::stream::input::InputCommand;
use crate::stream::protocol::{self, ClientMessage, Codec};
use crate::stream::Stream;
use crate::supervisor::{ServiceState, Snapshot};

/// Close code: a message outside the protocol.
pub const CLOSE_PROTOCOL: u16 = 1008;
/// A send to the client that takes longer than this ends the connection (4408).
pub const STALL: Duration = Duration::from_secs(10);
/// Seconds a refused client is told to wait.
const RETRY_AFTER: &str = "2";
/// Replies (pongs, errors) waiting for the writer.
const REPLY_QUEUE: usize = 8;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/stream/ws", get(stream_ws))
        .route("/api/session", get(session))
}

/// The native stream as the HTTP layer holds it: the stream and the client slots it
/// shares with the relay.
pub struct NativeStream {
    pub stream: Stream,
    pub slots: Arc<ClientSlots>,
}

/// `GET /api/session`.
async fn session(State(state): State<AppState>, access: Access) -> Json<serde_json::Value> {
    let ready = state
        .status
        .borrow()
        .get(crate::neko::SERVICE_NAME)
        .is_some_and(|n| n.state == ServiceState::Ready);
    Json(serde_json::json!({
        "access": access_name(access),
        "transports": {
            "webrtc": { "configured": state.relay.is_some(), "ready": ready },
            "ws": { "enabled": state.stream.is_some() },
        }
    }))
}

fn access_name(access: Access) -> &'static str {
    match access {
        Access::Control => "control",
        Access::View => "view",
    }
}

fn unavailable(metrics: &Metrics, why: Refusal, message: impl Into<String>) -> Response {
    metrics.refused(why);
    let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
    r
}

/// Whether the display can be streamed now, else the 503 reason.
fn display_ready(snap: &Snapshot) -> Result<(), String> {
    if snap.stopping {
        return Err("desktop stream not available: deskd is shutting down".into());
    }
    match snap.get(crate::display::SERVICE_NAME) {
        Some(d) if d.state == ServiceState::Ready => Ok(()),
        Some(d) => Err(format!("display not ready: it is {}", d.state.as_str())),
        None => Err("display not ready: it is not running".into()),
    }
}

/// `/stream/ws`'s query: what the viewer decodes (`h264`, the default, or `jpeg`).
#[derive(Debug, Default, serde::Deserialize)]
struct StreamQuery {
    codec: Option<String>,
}

async fn stream_ws(
    State(state): State<AppState>,
    access: Access,
    query: Result<Query<StreamQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let metrics = state.metrics.clone();
    let codec = match query {
        Ok(Query(q)) => q
            .codec
            .as_deref()
            .map_or(Ok(Codec::default()), Codec::parse),
        Err(e) => Err(protocol::BadMessage(format!("bad query: {e}"))),
    };
    let codec = match codec {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("/stream/ws: {e}")),
    };
    let Some(native) = state.stream.clone() else {
        return unavailable(
            &metrics,
            Refusal::NotReady,
            "native stream not enabled: it needs [display] and [stream] enabled = true",
        );
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("/stream/ws is a WebSocket endpoint: {e}"),
            )
        }
    };
    let stream = &native.stream;
    if stream.closing().is_cancelled() {
        return unavailable(&metrics, Refusal::NotReady, "deskd is shutting down");
    }
    if let Err(reason) = display_ready(&state.status.borrow()) {
        return unavailable(&metrics, Refusal::NotReady, reason);
    }
    let slot = match native.slots.take(access) {
        Ok(slot) => slot,
        Err(reason) => return unavailable(&metrics, Refusal::TooManyClients, reason),
    };
    upgrade
        .read_buffer_size(super::relay::READ_BUFFER)
        .max_message_size(protocol::MAX_CLIENT_MESSAGE)
        .max_frame_size(protocol::MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| run(socket, native, access, codec, metrics, slot))
        .into_response()
}

fn close(code: u16, reason: impl Into<String>) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into().into(),
    }))
}

async fn run(
    socket: WebSocket,
    native: Arc<NativeStream>,
    access: Access,
    codec: Codec,
    metrics: Arc<Metrics>,
    _slot: Slot,
) {
    let stream = &native.stream;
    let _open = metrics.stream_viewer_opened();
    let mut viewer = match stream.hub.join(codec, access == Access::Control) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "native stream: cannot start the capture thread");
            let (mut sink, _) = socket.split();
            let _ = sink
                .send(close(CLOSE_RETRY, "stream unavailable, retry"))
                .await;
            return;
        }
    };
    let id = viewer.id;
    tracing::info!(viewer = id, access = ?access, codec = ?codec, "native stream viewer connected");
    let (sink, source) = socket.split();
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
    let closing = stream.closing();
    let why = {
        let (rx, hub_viewer) = split_viewer(&mut viewer);
        tokio::select! {
            why = write(sink, rx, reply_rx, access, &metrics, closing) => why,
            why = read(source, hub_viewer, stream, access, &metrics, reply_tx) => why,
        }
    };
    if access == Access::Control {
        stream.input.try_send(InputCommand::Leave { client: id });
    }
    tracing::info!(viewer = id, "native stream viewer gone: {why}");
}

/// The viewer's queue and a handle for key-frame requests, borrowed at once.
fn split_viewer(v: &mut Viewer) -> (&mut mpsc::Receiver<Out>, ViewerHandle<'_>) {
    let id = v.id;
    let (rx, hub) = v.parts();
    (rx, ViewerHandle { id, hub })
}

struct ViewerHandle<'a> {
    id: u64,
    hub: &'a crate::stream::hub::Hub,
}

/// Sends what the hub and the reader queue, one message at a time; ends with the reason.
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    rx: &mut mpsc::Receiver<Out>,
    mut replies: mpsc::Receiver<Message>,
    access: Access,
    metrics: &Metrics,
    closing: CancellationToken,
) -> String {
    let mut hello_sent = false;
    loop {
        let (msg, video, last) = tokio::select! {
            biased;
            _ = closing.cancelled() => (close(CLOSE_GOING_AWAY, "deskd is shutting down"), false, Some("deskd stopping")),
            reply = replies.recv() => match reply {
                Some(m @ Message::Close(_)) => (m, false, Some("protocol violation")),
                Some(m) => (m, false, None),
                None => return "reader ended".into(),
            },
            out = rx.recv() => match out {
                Some(Out::Config { width, height, codec }) => {
                    let text = protocol::config_json(!hello_sent, access_name(access), width, height, &codec);
                    hello_sent = true;
                    (Message::Text(text.into()), false, None)
                }
                Some(Out::Clipboard(text)) => {
                    (Message::Text(protocol::clipboard_json(&text).into()), false, None)
                }
                Some(Out::Binary(b)) => {
                    let video = matches!(b.first(), Some(&protocol::VIDEO | &protocol::IMAGE));
                    (Message::Binary(b), video, None)
                }
                // neko's feed's alone; never given to a browser.
                Some(Out::Macroblocks(_)) => continue,
                // The display went away because deskd is stopping: that is 1001, not a retry.
                Some(Out::Closed(_)) | None if closing.is_cancelled() => {
                    (close(CLOSE_GOING_AWAY, "deskd is shutting down"), false, Some("deskd stopping"))
                }
                Some(Out::Closed(reason)) => {
                    // A close reason is at most 123 bytes.
                    let mut text = format!("display unavailable, retry: {reason}");
                    while text.len() > 123 {
                        text.pop();
                    }
                    (close(CLOSE_RETRY, text), false, Some("display gone"))
                }
                None => (close(CLOSE_RETRY, "display unavailable, retry"), false, Some("stream ended")),
            },
        };
        let len = message_len(&msg);
        match tokio::time::timeout(STALL, sink.send(msg)).await {
            Ok(Ok(())) => metrics.stream_sent(video, len),
            Ok(Err(e)) => return format!("write failed: {e}"),
            Err(_) => {
                metrics.refused(Refusal::SlowClient);
                let bye = close(
                    CLOSE_SLOW,
                    format!("too slow: not reading for {}s", STALL.as_secs()),
                );
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(bye)).await;
                return "not reading (4408)".into();
            }
        }
        if let Some(reason) = last {
            return reason.into();
        }
    }
}

fn message_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

/// Reads the client's messages until it goes away or breaks the protocol.
async fn read(
    mut source: futures_util::stream::SplitStream<WebSocket>,
    viewer: ViewerHandle<'_>,
    stream: &Stream,
    access: Access,
    metrics: &Metrics,
    replies: mpsc::Sender<Message>,
) -> String {
    let mut told_refused = false;
    while let Some(next) = source.next().await {
        let parsed = match next {
            Ok(Message::Binary(b)) => protocol::parse_binary(&b),
            Ok(Message::Text(t)) => protocol::parse_text(t.as_str()),
            Ok(Message::Close(_)) => return "closed by the client".into(),
            Ok(_) => continue,
            Err(e) => {
                let too_big = matches!(
                    e.into_inner()
                        .downcast::<tokio_tungstenite::tungstenite::Error>()
                        .map(|e| *e),
                    Ok(tokio_tungstenite::tungstenite::Error::Capacity(_))
                );
                if too_big {
                    metrics.refused(Refusal::TooBig);
                    let _ = replies
                        .send(close(
                            CLOSE_TOO_BIG,
                            format!(
                                "message too big: limit {} bytes",
                                protocol::MAX_CLIENT_MESSAGE
                            ),
                        ))
                        .await;
                    // Let the writer send the close before the select ends.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return "message too big".into();
                }
                return "read failed".into();
            }
        };
        let message = match parsed {
            Ok(m) => m,
            Err(e) => {
                let _ = replies.send(close(CLOSE_PROTOCOL, e.0)).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                return "protocol violation".into();
            }
        };
        if access == Access::View && !message.view_allowed() {
            metrics.stream_refused();
            if !std::mem::replace(&mut told_refused, true) {
                let text = protocol::error_json("view-only: input is not allowed and was dropped");
                let _ = replies.try_send(Message::Text(text.into()));
            }
            continue;
        }
        match message {
            ClientMessage::Ping { hi, lo } => {
                let _ = replies.try_send(Message::Binary(protocol::pong((hi, lo), unix_ms())));
            }
            ClientMessage::KeyFrame => viewer.hub.request_key_frame(viewer.id),
            message => {
                let command = InputCommand::Message {
                    client: viewer.id,
                    message,
                };
                if !stream.input.send(command).await {
                    return "input thread gone".into();
                }
            }
        }
    }
    "connection ended".into()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
