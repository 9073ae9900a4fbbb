//! A stand-in for deskd's native stream (docs/native-stream.md) for the viewer's browser
//! tests, served next to the embedded viewer: `GET /api/session` as configured, `/stream/ws`
//! (hello, a cursor position, then real H.264 access units from `support/h264/`: a key frame
//! and a delta frame of a known pattern; pongs for pings; the key frame again for
//! `{"type":"keyframe"}`), `GET /api/screenshot` (a JPEG still of the same pattern with a
//! cyan centre, so the still and the video can be told apart), `/api/agent` and `/readyz`.
//! Everything the page sends on the socket is recorded. Plus the image helpers the tests
//! share: a JPEG from a pattern, and pixels of a DevTools screenshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{self, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// `make.sh` in `support/h264/` made these: 1280x720, constrained baseline, Annex B.
pub const KEY_FRAME: &[u8] = include_bytes!("h264/quadrants-key.h264");
pub const DELTA_FRAME: &[u8] = include_bytes!("h264/quadrants-delta.h264");
/// From the fixture's SPS: profile 0x42, constraints 0xc0, level 3.1.
pub const CODEC: &str = "avc1.42c01f";

/// The fixture's pattern: quadrants and a centre square (yellow in the key frame, magenta
/// after the delta frame; cyan in the still).
pub const RED: [u8; 3] = [230, 40, 40];
pub const GREEN: [u8; 3] = [40, 200, 60];
pub const BLUE: [u8; 3] = [40, 60, 220];
pub const WHITE: [u8; 3] = [240, 240, 240];
pub const MAGENTA: [u8; 3] = [200, 40, 200];
pub const CYAN: [u8; 3] = [30, 210, 230];

pub fn quadrants(x: u32, y: u32, centre: [u8; 3]) -> [u8; 3] {
    if (480..800).contains(&x) && (240..480).contains(&y) {
        return centre;
    }
    match (x < 640, y < 360) {
        (true, true) => RED,
        (false, true) => GREEN,
        (true, false) => BLUE,
        (false, false) => WHITE,
    }
}

/// A JPEG of `width`×`height` whose pixel (x, y) of a 1280x720 picture is `f(x, y)`.
pub fn jpeg_of(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            rgb.extend_from_slice(&f(x * 1280 / width, y * 720 / height));
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(
            &rgb,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encode JPEG");
    out
}

/// A JPEG of `f` at the size `/api/screenshot?{query}` asks for, made once per size (an
/// unoptimised test build takes a while to encode one, longer than the page waits).
pub fn cached_jpeg(
    query: &[(String, String)],
    tag: &'static str,
    f: fn(u32, u32) -> [u8; 3],
) -> Vec<u8> {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    type Cache = Mutex<HashMap<(&'static str, u32, u32), Vec<u8>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let (w, h) = still_size(query);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(j) = cache.lock().expect("lock").get(&(tag, w, h)) {
        return j.clone();
    }
    let j = jpeg_of(w, h, f);
    cache.lock().expect("lock").insert((tag, w, h), j.clone());
    j
}

fn still_pattern(x: u32, y: u32) -> [u8; 3] {
    quadrants(x, y, CYAN)
}

/// The output size of `/api/screenshot?max_width=` for a 1280x720 screen (never upscaled).
pub fn still_size(query: &[(String, String)]) -> (u32, u32) {
    let width = query
        .iter()
        .find(|(k, _)| k == "max_width")
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .unwrap_or(1280)
        .clamp(16, 1280);
    (width, width * 720 / 1280)
}

/// Decoded DevTools screenshot: RGB(A) rows.
pub struct Shot {
    pub width: u32,
    channels: usize,
    data: Vec<u8>,
}

impl Shot {
    pub fn decode(png_bytes: &[u8]) -> Shot {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("screenshot PNG header");
        let mut data = vec![0; reader.output_buffer_size().expect("PNG size")];
        let info = reader.next_frame(&mut data).expect("screenshot PNG data");
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected screenshot colour type {other:?}"),
        };
        data.truncate(info.buffer_size());
        Shot {
            width: info.width,
            channels,
            data,
        }
    }

    pub fn pixel(&self, x: f64, y: f64) -> [u8; 3] {
        let (x, y) = (x.floor() as usize, y.floor() as usize);
        let i = (y * self.width as usize + x) * self.channels;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// Colours within `tol` per channel (video and JPEG coding move them a little).
pub fn near(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b.iter()).all(|(x, y)| x.abs_diff(*y) <= tol)
}

#[derive(Clone)]
pub struct Options {
    /// `access` in /api/session and hello.
    pub access: &'static str,
    /// `transports.webrtc` in /api/session: (configured, ready).
    pub webrtc: (bool, bool),
    /// Wait this long after hello before the first key frame, on the first connection only
    /// (so a test sees the still before video).
    pub first_video_delay: Duration,
    /// Answer this many `/api/screenshot` requests with 503 first (a still that fails).
    pub still_failures: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access: "control",
            webrtc: (false, false),
            first_video_delay: Duration::ZERO,
            still_failures: 0,
        }
    }
}

#[derive(Default)]
struct Shared {
    opts: Mutex<Option<Options>>,
    to_page: Mutex<Option<mpsc::UnboundedSender<ws::Message>>>,
    text: Mutex<Vec<Value>>,
    input: Mutex<Vec<String>>,
    pings: AtomicU64,
    connections: AtomicU64,
    screenshots: AtomicU64,
    /// The next video frame's seq on the current connection.
    seq: Arc<AtomicU64>,
}

pub struct NativeStandIn {
    pub addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A 0x10 video frame: flags, seq, capture_us (now), 1280x720, the access unit.
pub fn video_message(key: bool, seq: u32, au: &[u8]) -> Vec<u8> {
    let capture_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut m = Vec::with_capacity(18 + au.len());
    m.push(0x10);
    m.push(u8::from(key));
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&capture_us.to_be_bytes());
    m.extend_from_slice(&1280u16.to_be_bytes());
    m.extend_from_slice(&720u16.to_be_bytes());
    m.extend_from_slice(au);
    m
}

impl NativeStandIn {
    pub async fn start(opts: Options) -> NativeStandIn {
        let shared = Arc::new(Shared::default());
        *shared.opts.lock().expect("lock") = Some(opts);
        let app: Router = deskd::http::viewer::router::<Arc<Shared>>()
            .route("/api/session", get(session))
            .route("/stream/ws", get(stream_ws))
            .route("/api/screenshot", get(screenshot))
            .route(
                "/api/agent",
                get(|| async { axum::Json(json!({ "active": false })) }),
            )
            .route("/readyz", get(|| async { "ok" }))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // Encode the still of the test's window size before the page asks for it.
        let q = [("max_width".to_string(), "2560".to_string())];
        tokio::task::spawn_blocking(move || cached_jpeg(&q, "quadrants", still_pattern))
            .await
            .expect("still JPEG");
        NativeStandIn { addr, shared }
    }

    /// JSON messages the page sent on the socket, in order.
    pub fn sent_text(&self) -> Vec<Value> {
        self.shared.text.lock().expect("lock").clone()
    }

    /// Binary input the page sent (pings aside), as hex.
    pub fn sent_input(&self) -> Vec<String> {
        self.shared.input.lock().expect("lock").clone()
    }

    pub fn clear_input(&self) {
        self.shared.input.lock().expect("lock").clear();
        self.shared.text.lock().expect("lock").clear();
    }

    pub fn pings(&self) -> u64 {
        self.shared.pings.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn screenshots(&self) -> u64 {
        self.shared.screenshots.load(Ordering::SeqCst)
    }

    /// A frame flagged as a key frame whose access unit is garbage, next in seq: the page's
    /// decoder fails on it.
    pub fn send_broken_key_frame(&self) {
        let seq = self.shared.seq.fetch_add(1, Ordering::SeqCst) as u32;
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend((0..2000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
        if let Some(tx) = self.shared.to_page.lock().expect("lock").as_ref() {
            let _ = tx.send(ws::Message::Binary(video_message(true, seq, &au).into()));
        }
    }

    /// A `0x11` tile of one colour at (x, y), for the frame after the last one sent: the page
    /// paints it at once.
    pub fn send_tile(&self, x: u16, y: u16, width: u16, height: u16, rgb: [u8; 3]) {
        let mut m = self.ahead_header(0x11, x, y, width, height);
        for _ in 0..usize::from(width) * usize::from(height) {
            m.extend_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
        }
        self.send_binary(m);
    }

    /// Sends a `0x12` fill of `rgb` ahead of the next video frame.
    pub fn send_fill(&self, x: u16, y: u16, width: u16, height: u16, rgb: [u8; 3]) {
        let mut m = self.ahead_header(0x12, x, y, width, height);
        m.extend_from_slice(&rgb);
        self.send_binary(m);
    }

    /// The header of a tile or fill (`kind`) ahead of the next video frame.
    fn ahead_header(&self, kind: u8, x: u16, y: u16, width: u16, height: u16) -> Vec<u8> {
        let seq = self.shared.seq.load(Ordering::SeqCst) as u32;
        let mut m = vec![kind];
        m.extend_from_slice(&seq.to_be_bytes());
        for v in [x, y, width, height] {
            m.extend_from_slice(&v.to_be_bytes());
        }
        m
    }

    fn send_binary(&self, m: Vec<u8>) {
        if let Some(tx) = self.shared.to_page.lock().expect("lock").as_ref() {
            let _ = tx.send(ws::Message::Binary(m.into()));
        }
    }

    /// Closes the page's socket with `code` (e.g. 4503: the display went away).
    pub fn close_page(&self, code: u16, reason: &str) {
        if let Some(tx) = self.shared.to_page.lock().expect("lock").as_ref() {
            let _ = tx.send(ws::Message::Close(Some(ws::CloseFrame {
                code,
                reason: reason.into(),
            })));
        }
    }
}

/// Splits a socket into a sender (a task writes what it gets, and stops after a close) and
/// the stream of what the other side sends.
pub fn pump(
    socket: ws::WebSocket,
) -> (
    mpsc::UnboundedSender<ws::Message>,
    futures_util::stream::SplitStream<ws::WebSocket>,
) {
    let (mut sink, stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<ws::Message>();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, ws::Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
    });
    (tx, stream)
}

fn options(s: &Shared) -> Options {
    s.opts.lock().expect("lock").clone().unwrap_or_default()
}

async fn session(State(s): State<Arc<Shared>>) -> Response {
    let o = options(&s);
    axum::Json(json!({
        "access": o.access,
        "transports": {
            "webrtc": { "configured": o.webrtc.0, "ready": o.webrtc.1 },
            "ws": { "enabled": true }
        }
    }))
    .into_response()
}

async fn screenshot(
    State(s): State<Arc<Shared>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let n = s.screenshots.fetch_add(1, Ordering::SeqCst);
    let failures = s
        .opts
        .lock()
        .expect("lock")
        .as_ref()
        .map_or(0, |o| o.still_failures);
    if n < failures {
        return (StatusCode::SERVICE_UNAVAILABLE, "display not ready").into_response();
    }
    let body = cached_jpeg(&q, "quadrants", still_pattern);
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn stream_ws(State(s): State<Arc<Shared>>, up: WebSocketUpgrade) -> Response {
    up.on_upgrade(move |socket| async move {
        let n = s.connections.fetch_add(1, Ordering::SeqCst);
        let o = options(&s);
        let (tx, mut stream) = pump(socket);
        *s.to_page.lock().expect("lock") = Some(tx.clone());
        let hello = json!({ "type": "hello", "protocol": 1, "access": o.access,
            "width": 1280, "height": 720, "codec": CODEC });
        let _ = tx.send(ws::Message::Text(hello.to_string().into()));
        // Cursor position 300,200.
        let _ = tx.send(ws::Message::Binary(
            vec![0x01, 0, 4, 0x01, 0x2c, 0x00, 0xc8].into(),
        ));
        let seq = s.seq.clone();
        seq.store(1, Ordering::SeqCst);
        {
            let (tx, seq) = (tx.clone(), seq.clone());
            let delay = if n == 0 {
                o.first_video_delay
            } else {
                Duration::ZERO
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let k = seq.fetch_add(1, Ordering::SeqCst) as u32;
                let _ = tx.send(ws::Message::Binary(
                    video_message(true, k, KEY_FRAME).into(),
                ));
                tokio::time::sleep(Duration::from_millis(400)).await;
                let d = seq.fetch_add(1, Ordering::SeqCst) as u32;
                let _ = tx.send(ws::Message::Binary(
                    video_message(false, d, DELTA_FRAME).into(),
                ));
            });
        }
        while let Some(Ok(m)) = stream.next().await {
            match m {
                ws::Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v["type"] == "keyframe" {
                        let k = seq.fetch_add(1, Ordering::SeqCst) as u32;
                        let _ = tx.send(ws::Message::Binary(
                            video_message(true, k, KEY_FRAME).into(),
                        ));
                    }
                    s.text.lock().expect("lock").push(v);
                }
                ws::Message::Binary(b) if b.first() == Some(&0x07) && b.len() >= 11 => {
                    s.pings.fetch_add(1, Ordering::SeqCst);
                    let mut pong = vec![0x03, 0, 16];
                    pong.extend_from_slice(&b[3..11]);
                    pong.extend_from_slice(&b[3..11]);
                    let _ = tx.send(ws::Message::Binary(pong.into()));
                }
                ws::Message::Binary(b) => s.input.lock().expect("lock").push(hex(&b)),
                _ => {}
            }
        }
        let mut cur = s.to_page.lock().expect("lock");
        if cur.as_ref().is_some_and(|c| c.same_channel(&tx)) {
            *cur = None;
        }
    })
}
