//! The viewer page in a real headless Chromium, driven over the DevTools protocol.
//!
//! `page_streams_and_sends_input_over_a_real_peer_connection` serves the embedded viewer
//! (`viewer::router()`) next to a neko stand-in: a second Chromium page (`/fakeneko.html`)
//! that plays neko's side of the v3 protocol with a real `RTCPeerConnection` (a canvas video
//! track, the server-created `data` channel, a candidate sent before the offer, cursor
//! messages), bridged by this test to the viewer's `/stream/signaling`. Everything the viewer
//! sends over the data channel arrives at that page, so the test checks the bytes of real
//! input after real clicks and key presses, the decoded video, the cursor, reconnecting after
//! a close with a retry code and after a stale connection, and the unauthorized state.
//! Chromium gathers no loopback candidates, so this test re-runs itself in a network namespace
//! of its own (`unshare --map-root-user --net`) with a veth pair: all ICE traffic stays there.
//!
//! `deskd_serves_the_page_only_with_the_token` runs the real deskd binary: without the token
//! the page is refused; with it there is a cookie, a redirect and the page with its policy (no
//! browser needed). `deskd_page_reaches_neko_through_the_relay_in_chromium` does the same in
//! Chromium and follows the page to neko through the relay.
//!
//! Every test here but `deskd_serves_the_page_only_with_the_token` needs Chromium
//! (`/usr/bin/chromium`, or `DESKD_TEST_CHROMIUM`).
//!
//! `real_neko_*` needs a real neko (`DESKD_TEST_NEKO`) and skips with a reason otherwise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{self, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Chromium's Debian path; `DESKD_TEST_CHROMIUM` overrides it (e.g. a Nix store path).
const CHROMIUM: &str = "/usr/bin/chromium";
/// What a failed wait prints about the page (the viewer's debug object or the stand-in's).
const DIAGNOSTICS: &str = "JSON.stringify({ url: location.href, ready: document.readyState, viewer: window.__deskdViewer, \
     resources: performance.getEntriesByType('resource').map(e => `${e.name} ${Math.round(e.duration)} ms ${e.responseStatus || ''}`), \
     fake: window.fake && { received: fake.received.map(m => m.event), peers: fake.peers, dcOpen: fake.dcOpen, binary: fake.binary } })";
const WAIT: Duration = Duration::from_secs(60);
/// Twice the stand-in's 1280x720 wide, and not 16:10 after the status bar: the picture is
/// scaled by 2 and letterboxed top and bottom, and a desktop pixel is 2x2 CSS pixels, so
/// aiming at a pixel's centre survives any rounding of event coordinates.
const VIEWPORT: (u32, u32) = (2560, 1600);

// ---------------------------------------------------------------------------------------
// A minimal DevTools-protocol client (flattened sessions over the browser WebSocket).

struct Browser {
    child: Child,
    profile: PathBuf,
    tx: mpsc::UnboundedSender<(Value, tokio::sync::oneshot::Sender<Value>)>,
    /// DevTools events (console messages, log entries), newest last, at most EVENT_LIMIT.
    events: Arc<Mutex<Vec<Value>>>,
}

const EVENT_LIMIT: usize = 5000;

struct Tab<'a> {
    browser: &'a Browser,
    session: String,
}

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let p = std::env::temp_dir().join(format!(
        "deskd-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).expect("create temp dir");
    p
}

impl Browser {
    async fn launch() -> Browser {
        let chromium =
            std::env::var("DESKD_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_string());
        assert!(
            Path::new(&chromium).exists(),
            "{chromium} is missing (apt install chromium, or set DESKD_TEST_CHROMIUM)"
        );
        let profile = temp_dir("chromium");
        let mut cmd = Command::new(&chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=2560,1600",
            "--remote-debugging-port=0",
            // A name that is not loopback: plain HTTP to it is an untrustworthy origin, as a
            // LAN address would be (no WebCodecs there, COOP ignored).
            "--host-resolver-rules=MAP deskd.test 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn chromium");

        // Chromium writes "<port>\n<browser ws path>" once DevTools listens.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + WAIT;
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.to_string(), path.to_string());
                }
            }
            assert!(Instant::now() < deadline, "chromium did not start DevTools");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to DevTools");
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) =
            mpsc::unbounded_channel::<(Value, tokio::sync::oneshot::Sender<Value>)>();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink_events = events.clone();
        tokio::spawn(async move {
            let mut next_id = 1u64;
            let mut pending: HashMap<u64, tokio::sync::oneshot::Sender<Value>> = HashMap::new();
            loop {
                tokio::select! {
                    cmd = rx.recv() => {
                        let Some((mut msg, reply)) = cmd else { break };
                        msg["id"] = json!(next_id);
                        pending.insert(next_id, reply);
                        next_id += 1;
                        if sink.send(Message::text(msg.to_string())).await.is_err() {
                            break;
                        }
                    }
                    frame = stream.next() => {
                        let Some(Ok(Message::Text(t))) = frame else {
                            if frame.is_none() { break } else { continue }
                        };
                        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                        if let Some(id) = v.get("id").and_then(Value::as_u64) {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(v);
                            }
                        } else if v.get("method").is_some() {
                            let mut ev = sink_events.lock().expect("lock");
                            if ev.len() < EVENT_LIMIT {
                                ev.push(v);
                            }
                        }
                    }
                }
            }
        });
        Browser {
            child,
            profile,
            tx,
            events,
        }
    }

    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let mut msg = json!({ "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        self.tx.send((msg, reply_tx)).expect("DevTools connection");
        let v = tokio::time::timeout(WAIT, reply_rx)
            .await
            .unwrap_or_else(|_| panic!("DevTools {method} timed out"))
            .expect("DevTools reply");
        if let Some(err) = v.get("error") {
            panic!("DevTools {method} failed: {err}");
        }
        v["result"].clone()
    }

    /// A new window (so it is visible: no timer throttling) showing `url`.
    async fn open(&self, url: &str) -> Tab<'_> {
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "newWindow": true }),
            )
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        let tab = Tab {
            browser: self,
            session: attached["sessionId"]
                .as_str()
                .expect("session id")
                .to_string(),
        };
        tab.call("Page.enable", json!({})).await;
        // Console messages and the browser's own log (e.g. ignored headers) from the start.
        tab.call("Runtime.enable", json!({})).await;
        tab.call("Log.enable", json!({})).await;
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        tab.call("Page.navigate", json!({ "url": url })).await;
        tab
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Tab<'_> {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Evaluates `expr` (awaiting promises) and returns its JSON value.
    async fn eval(&self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("`{expr}` threw: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is truthy; panics with `what` and the last value otherwise.
    async fn wait_for(&self, expr: &str, what: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self
                .call(
                    "Runtime.evaluate",
                    json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
                )
                .await;
            let value = v["result"]["value"].clone();
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let state = self.eval(DIAGNOSTICS).await;
                panic!(
                    "timed out waiting for {what} (`{expr}` = {value}, {})\npage state: {state}",
                    v.get("exceptionDetails").cloned().unwrap_or(Value::Null)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Errors and warnings this tab logged so far: console calls, uncaught exceptions and
    /// the browser's log entries (network failures, ignored headers ...), as text.
    fn console_problems(&self) -> Vec<String> {
        let events = self.browser.events.lock().expect("lock");
        events
            .iter()
            .filter(|e| e["sessionId"].as_str() == Some(self.session.as_str()))
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Log.entryAdded" => {
                        let level = p["entry"]["level"].as_str()?;
                        (level == "error" || level == "warning").then(|| {
                            format!("log {level}: {} {}", p["entry"]["text"], p["entry"]["url"])
                        })
                    }
                    "Runtime.consoleAPICalled" => {
                        let kind = p["type"].as_str()?;
                        (kind == "error" || kind == "warning" || kind == "assert")
                            .then(|| format!("console.{kind}: {}", p["args"]))
                    }
                    "Runtime.exceptionThrown" => {
                        Some(format!("exception: {}", p["exceptionDetails"]))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// Asserts that the status line starts with `prefix`.
    async fn assert_status(&self, prefix: &str) {
        let status = self.eval("__deskdViewer.statusText").await;
        assert!(
            status.as_str().is_some_and(|s| s.starts_with(prefix)),
            "status {status}, expected it to start with {prefix:?}"
        );
    }

    /// A left click at client (x, y), after moving there.
    async fn click(&self, x: f64, y: f64) {
        self.mouse("mouseMoved", x, y, "none").await;
        self.mouse("mousePressed", x, y, "left").await;
        self.mouse("mouseReleased", x, y, "left").await;
    }

    /// A paste of `text` into the page's keyboard field, as the browser fires it.
    async fn paste(&self, text: &str) {
        let expr = format!(
            "(() => {{ const e = new Event('paste', {{bubbles: true, cancelable: true}}); \
             e.clipboardData = {{ getData: () => {} }}; document.getElementById('keys').dispatchEvent(e); }})()",
            json!(text)
        );
        self.eval(&expr).await;
    }

    async fn mouse(&self, kind: &str, x: f64, y: f64, button: &str) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": button, "clickCount": 1 }),
        )
        .await;
    }

    async fn key(&self, kind: &str, key: &str, code: &str, vk: u32, text: Option<&str>) {
        let mut p = json!({ "type": kind, "key": key, "code": code, "windowsVirtualKeyCode": vk });
        if let Some(t) = text {
            p["text"] = json!(t);
        }
        self.call("Input.dispatchKeyEvent", p).await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let r = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
        path
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, &c| {
            (acc << 6) | if c == b'=' { 0 } else { val(c) }
        }) << (6 * (4 - chunk.len()));
        let b = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&b[..3 - pad.min(2)]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// The neko stand-in: a page with a real RTCPeerConnection, bridged to /stream/signaling.

const FAKE_NEKO_PAGE: &str = r##"<!doctype html><meta charset="utf-8"><title>fake neko</title>
<canvas id="c" width="1280" height="720"></canvas>
<script>
// neko's side of the v3 protocol (neko-protocol.md §2, §3), enough for the viewer.
const fake = window.fake = { received: [], binary: [], pings: 0, peers: 0, dcOpen: false };
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const ws = new WebSocket(`ws://${location.host}/fakeneko/ws`);
const send = (event, payload) => ws.send(JSON.stringify(payload === undefined ? { event } : { event, payload }));
let pc = null, early = [], remote = [], sessionId = null, n = 0;
const canvas = document.getElementById("c");
const g = canvas.getContext("2d");
let frame = 0;
setInterval(() => {
  frame++;
  g.fillStyle = "#1d3557"; g.fillRect(0, 0, 1280, 720);
  g.fillStyle = "#e63946"; g.fillRect(0, 0, 160, 90); // top-left marker
  g.fillStyle = "#a8dadc"; g.fillRect(1120, 630, 160, 90); // bottom-right marker
  g.fillStyle = "#f1faee"; g.font = "64px sans-serif"; g.fillText("fake neko desktop " + frame, 300, 380);
}, 40);
const stream = canvas.captureStream(25);
// neko sends a heartbeat every 10 s; the viewer drops a connection silent for 12.5 s.
setInterval(() => { if (ws.readyState === 1) send("system/heartbeat"); }, 5000);
async function cursorImage() {
  const c = document.createElement("canvas"); c.width = 16; c.height = 16;
  const x = c.getContext("2d"); x.fillStyle = "#ffcc00"; x.beginPath(); x.moveTo(0, 0); x.lineTo(0, 15); x.lineTo(11, 11); x.fill();
  const png = new Uint8Array(await (await new Promise((r) => c.toBlob(r, "image/png"))).arrayBuffer());
  const m = new Uint8Array(11 + png.length); const v = new DataView(m.buffer);
  v.setUint8(0, 2); v.setUint16(1, 11 + png.length); v.setUint16(3, 16); v.setUint16(5, 16); v.setUint16(7, 0); v.setUint16(9, 0);
  m.set(png, 11); return m.buffer;
}
function cursorPosition(x, y) {
  const m = new ArrayBuffer(7); const v = new DataView(m); v.setUint8(0, 1); v.setUint16(1, 7); v.setUint16(3, x); v.setUint16(5, y); return m;
}
async function provide() {
  if (pc) pc.close();
  pc = new RTCPeerConnection({ iceServers: [] });
  fake.peers++;
  early = []; remote = [];
  pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly", streams: [stream] });
  const dc = pc.createDataChannel("data", { ordered: true });
  dc.binaryType = "arraybuffer";
  dc.onopen = async () => { fake.dcOpen = true; dc.send(await cursorImage()); dc.send(cursorPosition(100, 50)); };
  dc.onclose = () => { fake.dcOpen = false; };
  dc.onmessage = (e) => {
    const v = new DataView(e.data);
    if (v.getUint8(0) !== 7) { fake.binary.push(hex(e.data)); return; }
    // PING: answer with PONG (client ts echoed, then server ts), as neko does.
    fake.pings++;
    const m = new DataView(new ArrayBuffer(19)); m.setUint8(0, 3); m.setUint16(1, 19);
    m.setUint32(3, v.getUint32(3)); m.setUint32(7, v.getUint32(7)); m.setUint32(11, v.getUint32(3)); m.setUint32(15, v.getUint32(7));
    dc.send(m.buffer);
  };
  let first = null;
  const gotFirst = new Promise((r) => (first = r));
  pc.onicecandidate = (e) => {
    if (!e.candidate) return;
    send("signal/candidate", e.candidate.toJSON());
    first();
  };
  await pc.setLocalDescription(await pc.createOffer());
  // Like neko, let a candidate overtake the offer: the viewer must buffer it.
  await Promise.race([gotFirst, new Promise((r) => setTimeout(r, 3000))]);
  send("signal/provide", { sdp: pc.localDescription.sdp, iceservers: [{ urls: ["stun:127.0.0.1:9"] }],
    video: { disabled: false, id: "main", video: "main", auto: false }, audio: { disabled: true } });
}
ws.onmessage = async (ev) => {
  const msg = JSON.parse(ev.data);
  fake.received.push(msg);
  const p = msg.payload || {};
  switch (msg.event) {
    case "__connect":
      sessionId = "viewer-" + (++n);
      send("system/init", { session_id: sessionId, control_host: { id: "", has_host: false },
        screen_size: { width: 1280, height: 720, rate: 25 }, sessions: {}, settings: {}, touch_events: false,
        screencast_enabled: false, webrtc: { videos: ["main"] } });
      break;
    case "__disconnect":
      if (pc) pc.close(); pc = null; fake.dcOpen = false;
      break;
    case "signal/request":
      await provide();
      break;
    case "signal/answer":
      await pc.setRemoteDescription({ type: "answer", sdp: p.sdp });
      for (const c of remote) await pc.addIceCandidate(c);
      remote = [];
      break;
    case "signal/candidate":
      if (pc && pc.remoteDescription) await pc.addIceCandidate(p); else remote.push(p);
      break;
    case "control/request":
      send("control/host", { id: sessionId, has_host: true, host_id: sessionId });
      break;
  }
};
</script>"##;

#[derive(Default)]
struct Bridge {
    to_neko: Mutex<Option<mpsc::UnboundedSender<ws::Message>>>,
    to_viewer: Mutex<Option<mpsc::UnboundedSender<ws::Message>>>,
    /// Text the viewer sent, in order.
    from_viewer: Mutex<Vec<Value>>,
    /// Refuse `/stream/signaling` with this HTTP status (0: accept).
    refuse: AtomicU16,
    /// Stop passing the stand-in's messages to the viewer (a silent, stale connection).
    mute: AtomicBool,
    viewer_connections: AtomicU64,
    /// What `GET /api/agent` says.
    agent_active: AtomicBool,
    /// Hold the first connection's `signal/request` this long (ms), so the still shows first.
    hold_first_request_ms: AtomicU64,
    screenshots: AtomicU64,
}

impl Bridge {
    fn viewer_sent(&self, event: &str) -> Vec<Value> {
        self.from_viewer
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| m["event"] == event)
            .cloned()
            .collect()
    }

    /// A message to the viewer as if neko sent it.
    fn send_viewer(&self, event: &str, payload: Value) {
        if let Some(tx) = self.to_viewer.lock().expect("lock").as_ref() {
            let m = json!({ "event": event, "payload": payload });
            let _ = tx.send(ws::Message::Text(m.to_string().into()));
        }
    }

    fn close_viewer(&self, code: u16, reason: &str) {
        if let Some(tx) = self.to_viewer.lock().expect("lock").as_ref() {
            let _ = tx.send(ws::Message::Close(Some(ws::CloseFrame {
                code,
                reason: reason.into(),
            })));
        }
    }
}

async fn fake_neko_ws(State(b): State<Arc<Bridge>>, up: WebSocketUpgrade) -> Response {
    up.on_upgrade(move |socket| async move {
        let (tx, mut stream) = native_standin::pump(socket);
        *b.to_neko.lock().expect("lock") = Some(tx);
        while let Some(Ok(m)) = stream.next().await {
            if let ws::Message::Text(_) = m {
                if b.mute.load(Ordering::SeqCst) {
                    continue;
                }
                if let Some(v) = b.to_viewer.lock().expect("lock").as_ref() {
                    let _ = v.send(m);
                }
            }
        }
    })
}

async fn signaling(
    State(b): State<Arc<Bridge>>,
    up: Result<WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let refuse = b.refuse.load(Ordering::SeqCst);
    if refuse != 0 {
        let status = StatusCode::from_u16(refuse).unwrap_or(StatusCode::UNAUTHORIZED);
        return (status, "refused by the test\n").into_response();
    }
    let Ok(up) = up else {
        return (StatusCode::BAD_REQUEST, "not a WebSocket request\n").into_response();
    };
    up.on_upgrade(move |socket| async move {
        let n = b.viewer_connections.fetch_add(1, Ordering::SeqCst);
        b.mute.store(false, Ordering::SeqCst);
        let (tx, mut stream) = native_standin::pump(socket);
        *b.to_viewer.lock().expect("lock") = Some(tx.clone());
        let to_neko = |text: &str| {
            if let Some(n) = b.to_neko.lock().expect("lock").as_ref() {
                let _ = n.send(ws::Message::Text(text.into()));
            }
        };
        to_neko(r#"{"event":"__connect"}"#);
        while let Some(Ok(m)) = stream.next().await {
            if let ws::Message::Text(t) = m {
                if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                    let hold = b.hold_first_request_ms.load(Ordering::SeqCst);
                    if n == 0 && hold > 0 && v["event"] == "signal/request" {
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                    }
                    b.from_viewer.lock().expect("lock").push(v);
                }
                to_neko(t.as_str());
            }
        }
        let mut cur = b.to_viewer.lock().expect("lock");
        if cur.as_ref().is_some_and(|c| c.same_channel(&tx)) {
            *cur = None;
            drop(cur);
            to_neko(r#"{"event":"__disconnect"}"#);
        }
    })
}

async fn serve_stand_in() -> (SocketAddr, Arc<Bridge>) {
    let bridge = Arc::new(Bridge::default());
    let q = [("max_width".to_string(), "2560".to_string())];
    tokio::task::spawn_blocking(move || native_standin::cached_jpeg(&q, "neko", neko_desktop))
        .await
        .expect("still JPEG");
    let app: Router = deskd::http::viewer::router::<Arc<Bridge>>()
        .route("/fakeneko.html", get(|| async { Html(FAKE_NEKO_PAGE) }))
        .route("/fakeneko/ws", get(fake_neko_ws))
        .route("/stream/signaling", get(signaling))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/api/agent",
            get(|State(b): State<Arc<Bridge>>| async move {
                axum::Json(json!({ "active": b.agent_active.load(Ordering::SeqCst) }))
            }),
        )
        .route(
            "/api/session",
            get(|| async {
                axum::Json(json!({ "access": "control", "transports": {
                    "webrtc": { "configured": true, "ready": true }, "ws": { "enabled": false } } }))
            }),
        )
        .route("/api/screenshot", get(neko_still))
        .with_state(bridge.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, bridge)
}

/// The stand-in's desktop as a JPEG still (its canvas without the moving text).
async fn neko_still(
    State(b): State<Arc<Bridge>>,
    axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    b.screenshots.fetch_add(1, Ordering::SeqCst);
    let body = native_standin::cached_jpeg(&q, "neko", neko_desktop);
    ([(axum::http::header::CONTENT_TYPE, "image/jpeg")], body).into_response()
}

/// What the stand-in's canvas shows, without the text: background and two corner markers.
fn neko_desktop(x: u32, y: u32) -> [u8; 3] {
    if x < 160 && y < 90 {
        [0xe6, 0x39, 0x46]
    } else if x >= 1120 && y >= 630 {
        [0xa8, 0xda, 0xdc]
    } else {
        [0x1d, 0x35, 0x57]
    }
}

/// The page's pixels at desktop points, from a DevTools screenshot; `r` is the stage rect.
async fn sample(tab: &Tab<'_>, name: &str, r: &[f64], points: &[(f64, f64)]) -> Vec<[u8; 3]> {
    let png = std::fs::read(tab.screenshot(name).await).expect("read screenshot");
    let shot = native_standin::Shot::decode(&png);
    points
        .iter()
        .map(|&(x, y)| {
            let (cx, cy) = pixel_centre(r, x, y);
            shot.pixel(cx, cy)
        })
        .collect()
}

async fn stage_rect(tab: &Tab<'_>) -> Vec<f64> {
    let rect = tab
        .eval("(() => { const r = document.getElementById('stage').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
        .await;
    serde_json::from_value(rect).expect("stage rect")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The client coordinates of the centre of desktop pixel (x, y) for a 1280x720 desktop shown
/// with object-fit: contain in the stage rectangle `r` = [left, top, width, height].
fn pixel_centre(r: &[f64], x: f64, y: f64) -> (f64, f64) {
    let scale = (r[2] / 1280.0).min(r[3] / 720.0);
    let left = r[0] + (r[2] - 1280.0 * scale) / 2.0;
    let top = r[1] + (r[3] - 720.0 * scale) / 2.0;
    (left + (x + 0.5) * scale, top + (y + 0.5) * scale)
}

/// What the stand-in received over the data channel so far (PINGs aside), as hex strings.
async fn binary(neko: &Tab<'_>) -> Vec<String> {
    serde_json::from_value(neko.eval("fake.binary").await).unwrap_or_default()
}

async fn wait_binary(neko: &Tab<'_>, expected: &[&str], what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = binary(neko).await;
        if got.iter().map(String::as_str).collect::<Vec<_>>() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: data channel got {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the stand-in has received `message` over the data channel.
async fn wait_until_binary(neko: &Tab<'_>, message: &str, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = binary(neko).await;
        if got.iter().any(|m| m == message) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: data channel got {got:?}, without {message}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn clear_binary(neko: &Tab<'_>) {
    neko.eval("fake.binary.length = 0").await;
}

const NETNS_ENV: &str = "DESKD_VIEWER_TEST_NETNS";

/// Runs the test `name` of this binary again inside a fresh network namespace (with `lo` and a
/// veth pair, 10.213.0.1/30 on `v0` as the default route, so Chromium has a host candidate)
/// and fails if it fails. Returns false in the parent, true inside. Only one end has an
/// address: neko maps every local address to its one `nat1to1` address, keeps one of the
/// identical candidates and, as an ICE lite agent, answers checks only on that one's socket.
/// With a second address the browser's checks could land on the other socket and go unanswered.
fn in_private_network(name: &str) -> bool {
    if std::env::var_os(NETNS_ENV).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let setup =
        "command -v ip >/dev/null || { echo 'ip (apt iproute2) is missing' >&2; exit 98; }; \
         ip link set lo up && ip link add v0 type veth peer name v1 \
         && ip addr add 10.213.0.1/30 dev v0 \
         && ip link set v0 up && ip link set v1 up && ip route add default dev v0 \
         || { echo 'network namespace setup failed' >&2; exit 97; }; exec \"$0\" \"$@\"";
    let out = Command::new("unshare")
        .args(["--map-root-user", "--net", "sh", "-c", setup])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(NETNS_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run unshare (util-linux) to make a private network namespace");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{name} failed inside its network namespace ({})",
        out.status
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{name} did not run inside its network namespace"
    );
    false
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn page_streams_and_sends_input_over_a_real_peer_connection() {
    if in_private_network("page_streams_and_sends_input_over_a_real_peer_connection") {
        runtime().block_on(streams_and_sends_input());
    }
}

async fn streams_and_sends_input() {
    let (addr, bridge) = serve_stand_in().await;
    let browser = Browser::launch().await;

    let neko = browser.open(&format!("http://{addr}/fakeneko.html")).await;
    {
        let b = bridge.clone();
        wait_until("the stand-in page to connect", move || {
            b.to_neko.lock().expect("lock").is_some()
        })
        .await;
    }

    bridge.hold_first_request_ms.store(2000, Ordering::SeqCst);
    let viewer = browser.open(&format!("http://{addr}/")).await;

    // A picture at once: the still of the desktop, letterboxed like the video, while the
    // status says it is not live yet.
    viewer
        .wait_for(
            "window.__deskdViewer && __deskdViewer.firstStill && !document.getElementById('still').hidden",
            "the still",
        )
        .await;
    // (The still may show before /api/session has answered, when no transport is named yet.)
    viewer
        .wait_for(
            "__deskdViewer.statusText === 'Connecting… · still picture, not live yet · WebRTC'",
            "the status of the still on WebRTC",
        )
        .await;
    assert_eq!(viewer.eval("__deskdViewer.firstVideo").await, Value::Null);
    assert_eq!(bridge.screenshots.load(Ordering::SeqCst), 1);
    let r = stage_rect(&viewer).await;
    // Desktop points: the two corner markers and the background between them.
    let points = [(80.0, 45.0), (1200.0, 675.0), (640.0, 200.0)];
    let expected = [
        neko_desktop(80, 45),
        neko_desktop(1200, 675),
        neko_desktop(640, 200),
    ];
    let still = sample(&viewer, "viewer-still.png", &r, &points).await;
    for (got, want) in still.iter().zip(expected) {
        assert!(
            native_standin::near(*got, want, 24),
            "still: {still:?}, expected {expected:?}"
        );
    }

    // The exchange: init → request (video off until connected, no audio) → provide → answer →
    // candidates → connected → video on → live.
    viewer
        .wait_for(
            "window.__deskdViewer && __deskdViewer.status === 'live'",
            "the viewer to be live",
        )
        .await;
    let requests = bridge.viewer_sent("signal/request");
    assert_eq!(
        requests,
        vec![
            json!({"event": "signal/request", "payload": {"video": {"disabled": true}, "audio": {"disabled": true}}})
        ]
    );
    assert_eq!(
        bridge.viewer_sent("signal/video"),
        vec![json!({"event": "signal/video", "payload": {"disabled": false}})],
        "the video is turned on once, when the peer connection is up"
    );
    let answers = bridge.viewer_sent("signal/answer");
    assert_eq!(answers.len(), 1);
    let sdp = answers[0]["payload"]["sdp"].as_str().unwrap_or_default();
    assert!(
        sdp.starts_with("v=0") && sdp.contains("a=setup:active"),
        "answer SDP: {sdp}"
    );
    let sent_events: Vec<String> = bridge
        .from_viewer
        .lock()
        .expect("lock")
        .iter()
        .map(|m| m["event"].as_str().unwrap_or_default().to_string())
        .collect();
    let answer_at = sent_events.iter().position(|e| e == "signal/answer");
    let first_candidate_at = sent_events.iter().position(|e| e == "signal/candidate");
    assert!(
        first_candidate_at.is_some() && answer_at < first_candidate_at,
        "local candidates go after the answer: {sent_events:?}"
    );

    // The stand-in's canvas is decoded as 1280x720 video.
    viewer
        .wait_for(
            "__deskdViewer.framesDecoded().then(n => n > 3)",
            "decoded video frames",
        )
        .await;
    // The video replaced the still, and shows the same things in the same places (no jump).
    let shown = viewer
        .eval("[document.getElementById('still').hidden, __deskdViewer.firstStill.perf < __deskdViewer.firstVideo.perf, document.getElementById('screen').tagName]")
        .await;
    assert_eq!(shown, json!([true, true, "CANVAS"]));
    // The page decoded the frames itself (rtc-decoder.js), the VP8 of the stand-in's canvas
    // included; the browser's own decoder got none of them.
    assert_eq!(viewer.eval("__deskdViewer.render").await, json!("decoder"));
    assert_eq!(
        viewer
            .eval("__deskdViewer.rtcDecoder() && __deskdViewer.rtcDecoder().painted > 3")
            .await,
        json!(true),
        "the page's decoder: {}",
        viewer
            .eval("JSON.stringify(__deskdViewer.rtcDecoder())")
            .await
    );
    let browser_decoded = viewer
        .eval("(async () => { let n = 0; for (const pc of __deskdViewer.peerConnections()) (await pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') n += r.framesDecoded || 0; }); return n; })()")
        .await;
    assert_eq!(
        browser_decoded,
        json!(0),
        "frames the browser decoded itself"
    );
    let live = sample(&viewer, "viewer-live-after-still.png", &r, &points).await;
    for (got, want) in live.iter().zip(expected) {
        assert!(
            native_standin::near(*got, want, 40),
            "video: {live:?}, expected {expected:?}"
        );
    }
    let size = viewer
        .wait_for(
            "(() => { const v = document.getElementById('screen'); return v.width && [v.width, v.height]; })()",
            "the video size",
        )
        .await;
    // WebRTC may start below the canvas's 1280x720 (bandwidth estimation); the aspect ratio
    // holds, and pointer mapping uses screen_size for coordinates, not the video size.
    let (w, h) = (size[0].as_u64().unwrap_or(0), size[1].as_u64().unwrap_or(0));
    assert!(w > 0 && w * 720 == h * 1280, "video size {size}");
    // The data channel is neko's, and its cursor messages are drawn.
    viewer
        .wait_for(
            "__deskdViewer.dataChannel === 'open' && __deskdViewer.cursorImages > 0 && __deskdViewer.cursorPositions > 0 && !document.getElementById('cursor').hidden",
            "the remote cursor",
        )
        .await;
    assert_eq!(viewer.eval("__deskdViewer.isHost").await, json!(false));
    // No input yet: nothing sent, no control requested.
    assert!(binary(&neko).await.is_empty());
    assert!(bridge.viewer_sent("control/request").is_empty());
    viewer.screenshot("viewer-live.png").await;
    assert_eq!(
        viewer.eval("__deskdViewer.cspViolations").await,
        json!([]),
        "the page works within its Content-Security-Policy"
    );

    // A click in the middle of the picture: control is requested, then the move and the
    // button arrive byte for byte (MOVE 640,360; BTN_DOWN 1; BTN_UP 1).
    let rect = viewer
        .eval("(() => { const r = document.getElementById('stage').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
        .await;
    let r: Vec<f64> = serde_json::from_value(rect).expect("stage rect");
    let at = |x: f64, y: f64| pixel_centre(&r, x, y);
    let (cx, cy) = at(640.0, 360.0);
    viewer.click(cx, cy).await;
    wait_binary(
        &neko,
        &["01000402800168", "05000400000001", "06000400000001"],
        "click",
    )
    .await;
    assert_eq!(bridge.viewer_sent("control/request").len(), 1);
    viewer
        .wait_for("__deskdViewer.isHost", "host after control/host")
        .await;

    // Someone else takes control within the 2.5 s wait: this viewer got control, so it is
    // not "view only" (its next input takes control back).
    bridge.send_viewer(
        "control/host",
        json!({ "id": "someone-else", "has_host": true, "host_id": "someone-else" }),
    );
    viewer
        .wait_for("!__deskdViewer.isHost", "control taken by someone else")
        .await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    viewer
        .assert_status("Live · 1280×720 · click to control · WebRTC")
        .await;
    clear_binary(&neko).await;
    viewer.mouse("mousePressed", cx, cy, "left").await;
    viewer.mouse("mouseReleased", cx, cy, "left").await;
    wait_binary(
        &neko,
        &["01000402800168", "05000400000001", "06000400000001"],
        "click taking control back",
    )
    .await;
    viewer.wait_for("__deskdViewer.isHost", "host again").await;
    // In control with a remote cursor: the local one is hidden over the desktop.
    assert_eq!(
        viewer
            .eval("getComputedStyle(document.getElementById('stage')).cursor")
            .await,
        json!("none")
    );

    // Through the letterbox: the picture's corners are desktop 0,0 and 1279,719; a right
    // click there is MOVE + BTN 3; a press in the black bar above the picture is ignored.
    clear_binary(&neko).await;
    let (x0, y0) = at(0.0, 0.0);
    viewer.mouse("mousePressed", x0, y0, "right").await;
    viewer.mouse("mouseReleased", x0, y0, "right").await;
    let (x1, y1) = at(1279.0, 719.0);
    viewer.mouse("mouseMoved", x1, y1, "none").await;
    let (_, above) = at(640.0, -10.0);
    viewer.mouse("mousePressed", cx, above, "left").await;
    viewer.mouse("mouseReleased", cx, above, "left").await;
    wait_binary(
        &neko,
        &[
            "01000400000000",
            "05000400000003",
            "06000400000003",
            "01000404ff02cf",
        ],
        "right click at the picture's corner, move to the other",
    )
    .await;
    assert!(r[3] > 1440.0 + 20.0, "the stage is letterboxed: {r:?}");

    // Keys: Shift+1 arrives as Shift and "!" (the character typed), released in order.
    clear_binary(&neko).await;
    viewer
        .key("rawKeyDown", "Shift", "ShiftLeft", 16, None)
        .await;
    viewer.key("keyDown", "!", "Digit1", 49, Some("!")).await;
    viewer.key("keyUp", "!", "Digit1", 49, None).await;
    viewer.key("keyUp", "Shift", "ShiftLeft", 16, None).await;
    wait_binary(
        &neko,
        &[
            "0300040000ffe1",
            "03000400000021",
            "04000400000021",
            "0400040000ffe1",
        ],
        "Shift+1",
    )
    .await;

    // A dead key sends nothing; the composed character it makes with the next key does
    // (é = 0xe9, released by its physical key even though keyup says "e").
    clear_binary(&neko).await;
    viewer
        .key("rawKeyDown", "Dead", "BracketLeft", 219, None)
        .await;
    viewer.key("keyUp", "Dead", "BracketLeft", 219, None).await;
    viewer.key("keyDown", "é", "KeyE", 69, Some("é")).await;
    viewer.key("keyUp", "e", "KeyE", 69, None).await;
    // Text from an input method or on-screen keyboard: each character pressed and released
    // (€ is Unicode keysym 0x010020ac).
    viewer
        .call("Input.insertText", json!({ "text": "ł€" }))
        .await;
    wait_binary(
        &neko,
        &[
            "030004000000e9",
            "040004000000e9",
            "03000401000142",
            "04000401000142",
            "030004010020ac",
            "040004010020ac",
        ],
        "dead key and inserted text",
    )
    .await;

    // Wheel down one notch: one SCROLL with delta_y = -1 (button 5), after a MOVE there.
    clear_binary(&neko).await;
    viewer
        .call(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseWheel", "x": cx, "y": cy, "deltaX": 0, "deltaY": 120 }),
        )
        .await;
    wait_binary(&neko, &["01000402800168", "0200050000ffff00"], "wheel").await;

    // A key held while the focus leaves the desktop is released (nothing stuck).
    clear_binary(&neko).await;
    viewer.key("keyDown", "a", "KeyA", 65, Some("a")).await;
    wait_binary(&neko, &["03000400000061"], "key a down").await;
    viewer
        .eval("document.getElementById('fullscreen').focus()")
        .await;
    wait_binary(
        &neko,
        &["03000400000061", "04000400000061"],
        "release on blur",
    )
    .await;

    // Paste: Ctrl+V with local text sets neko's clipboard and presses V over the WebSocket.
    clear_binary(&neko).await;
    viewer.mouse("mousePressed", cx, cy, "left").await;
    viewer.mouse("mouseReleased", cx, cy, "left").await;
    // The click's release must be in before the next step clears the record, or it lands there.
    wait_until_binary(&neko, "06000400000001", "release of the click before paste").await;
    viewer.paste("héllo wörld").await;
    {
        let b = bridge.clone();
        wait_until("control/paste", move || {
            !b.viewer_sent("control/paste").is_empty()
        })
        .await;
    }
    assert_eq!(
        bridge.viewer_sent("control/paste")[0]["payload"],
        json!({"text": "héllo wörld"})
    );

    // Touch: a tap is a left click where the finger was.
    clear_binary(&neko).await;
    let (tx, ty) = at(10.0, 20.0);
    let point = json!([{ "x": tx, "y": ty, "id": 1 }]);
    viewer
        .call(
            "Input.dispatchTouchEvent",
            json!({ "type": "touchStart", "touchPoints": point }),
        )
        .await;
    viewer
        .call(
            "Input.dispatchTouchEvent",
            json!({ "type": "touchEnd", "touchPoints": [] }),
        )
        .await;
    wait_binary(
        &neko,
        &["010004000a0014", "05000400000001", "06000400000001"],
        "tap",
    )
    .await;

    // Sound: the button asks neko for audio on the live connection and unmutes the <video>
    // (which plays the stream's sound while the canvas shows its picture).
    viewer
        .eval("document.getElementById('audio').click()")
        .await;
    {
        let b = bridge.clone();
        wait_until("signal/audio", move || {
            !b.viewer_sent("signal/audio").is_empty()
        })
        .await;
    }
    assert_eq!(
        bridge.viewer_sent("signal/audio")[0]["payload"],
        json!({ "disabled": false })
    );
    assert_eq!(
        viewer
            .eval("[document.querySelector('video').muted, document.getElementById('audio').getAttribute('aria-pressed')]")
            .await,
        json!([false, "true"])
    );

    // An agent acting through the API shows in the status bar, and goes away again.
    assert_eq!(
        viewer.eval("document.getElementById('agent').hidden").await,
        json!(true)
    );
    bridge.agent_active.store(true, Ordering::SeqCst);
    viewer
        .wait_for(
            "!document.getElementById('agent').hidden",
            "the agent indicator",
        )
        .await;
    bridge.agent_active.store(false, Ordering::SeqCst);
    viewer
        .wait_for(
            "document.getElementById('agent').hidden",
            "the agent indicator to go",
        )
        .await;

    // A phone-sized window at device pixel ratio 3: the picture is letterboxed the other way
    // round and a desktop pixel is a third of a CSS pixel; clicks still land on the pixel.
    viewer
        .call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 420, "height": 860, "deviceScaleFactor": 3, "mobile": false }),
        )
        .await;
    let small = viewer
        .wait_for(
            "(() => { const r = document.getElementById('stage').getBoundingClientRect(); return r.width < 500 && [r.left, r.top, r.width, r.height]; })()",
            "the small layout",
        )
        .await;
    let rs: Vec<f64> = serde_json::from_value(small).expect("stage rect");
    assert_eq!(viewer.eval("devicePixelRatio").await, json!(3));
    clear_binary(&neko).await;
    for (x, y) in [(1000.0, 500.0), (3.0, 717.0)] {
        let (px, py) = pixel_centre(&rs, x, y);
        viewer.mouse("mousePressed", px, py, "left").await;
        viewer.mouse("mouseReleased", px, py, "left").await;
    }
    wait_binary(
        &neko,
        &[
            "01000403e801f4",
            "05000400000001",
            "06000400000001",
            "010004000302cd",
            "05000400000001",
            "06000400000001",
        ],
        "clicks at DPR 3 in a narrow window",
    )
    .await;
    // The drawn cursor follows: its hotspot (0,0) is at the last click, desktop (3, 717).
    let (px, py) = pixel_centre(&rs, 3.0, 717.0);
    let drawn = viewer
        .eval("(() => { const r = document.getElementById('cursor').getBoundingClientRect(); return [r.left, r.top]; })()")
        .await;
    let d: Vec<f64> = serde_json::from_value(drawn).expect("cursor rect");
    let scale = rs[2] / 1280.0;
    assert!(
        (d[0] - px).abs() <= scale && (d[1] - py).abs() <= scale,
        "cursor drawn at {d:?}, pointer at {px},{py}"
    );
    viewer.screenshot("viewer-narrow-dpr3.png").await;
    viewer
        .call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;

    // The status line says live, with the desktop size, control and the transport.
    viewer
        .assert_status("Live · 1280×720 · in control · WebRTC")
        .await;

    // neko restarted: the relay closes with 4503; the viewer says so and comes back by itself.
    let before = bridge.viewer_connections.load(Ordering::SeqCst);
    bridge.close_viewer(4503, "neko restarted, retry");
    viewer
        .wait_for(
            "__deskdViewer.closes.some(c => c.code === 4503 && c.kind === 'unavailable')",
            "the 4503 close",
        )
        .await;
    viewer
        .wait_for(
            "__deskdViewer.status === 'live' && __deskdViewer.connects === 2",
            "live again after 4503",
        )
        .await;
    assert_eq!(bridge.viewer_connections.load(Ordering::SeqCst), before + 1);
    let requests = bridge.viewer_sent("signal/request");
    assert_eq!(requests.len(), 2);
    // Sound stays on across the reconnect.
    assert_eq!(
        requests[1]["payload"]["audio"],
        json!({ "disabled": false })
    );

    // A connection that goes silent (no heartbeat for 12.5 s) is dropped and redone.
    bridge.mute.store(true, Ordering::SeqCst);
    viewer
        .wait_for(
            "__deskdViewer.closes.some(c => c.reason === 'stale connection')",
            "the stale connection to be noticed",
        )
        .await;
    viewer
        .wait_for(
            "__deskdViewer.status === 'live' && __deskdViewer.connects === 3",
            "live again after a stale connection",
        )
        .await;

    // The token is no longer accepted: the next connection is refused with 401 and the
    // viewer stops and says so instead of retrying forever.
    bridge.refuse.store(401, Ordering::SeqCst);
    bridge.close_viewer(1001, "deskd is shutting down");
    viewer
        .wait_for(
            "__deskdViewer.status === 'unauthorized'",
            "the unauthorized state",
        )
        .await;
    let connects = viewer.eval("__deskdViewer.connects").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(viewer.eval("__deskdViewer.connects").await, connects);
    let overlay = viewer
        .eval("document.getElementById('overlay').hidden ? '' : document.getElementById('overlay-text').textContent")
        .await;
    assert!(
        overlay
            .as_str()
            .unwrap_or_default()
            .starts_with("Not authorized"),
        "overlay: {overlay}"
    );
    assert_eq!(
        viewer
            .eval("document.getElementById('cursor').hidden")
            .await,
        json!(true),
        "no stale remote cursor over a dead stream"
    );
    viewer.screenshot("viewer-unauthorized.png").await;
}

// ---------------------------------------------------------------------------------------
// Through the real deskd binary: Xvfb as `display`, the relay, and as `neko` this test binary
// re-run as the shared neko stand-in (tests/support/neko_standin.rs) through a wrapper script.

#[path = "common/deskd_proc.rs"]
mod deskd_proc;
#[path = "support/deskd_run.rs"]
mod deskd_run;
#[path = "support/native_standin.rs"]
mod native_standin;
#[path = "support/neko_standin.rs"]
mod neko_standin;

use deskd_run::{free_display, free_port, wait_ready, DeskdRun};

const TOKEN: &str = "viewer-browser-test-token";

/// Entry point of the fake neko program; run by the wrapper script, not by `cargo test`.
#[test]
#[ignore = "entry point of the fake neko program used by the deskd tests of this file"]
fn fake_neko() {
    deskd_run::fake_neko_main();
}

/// A plain HTTP/1.1 GET: (status, lower-cased headers, body).
async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn deskd_serves_the_page_only_with_the_token() {
    runtime().block_on(page_needs_the_token());
}

#[test]
fn deskd_page_reaches_neko_through_the_relay_in_chromium() {
    runtime().block_on(page_reaches_the_relay());
}

/// deskd run with Xvfb and the neko stand-in, ready; stopped when the guard drops.
async fn deskd_with_standin() -> (DeskdRun, SocketAddr) {
    let dir = temp_dir("viewer-e2e");
    let wrapper = deskd_run::write_fake_neko(&dir, Duration::from_secs(2));
    let http_port = free_port();
    let config = deskd_run::write_config(
        &dir,
        free_display(1200),
        "1280x720",
        http_port,
        &wrapper,
        "nat1to1 = [\"127.0.0.1\"]\n",
    );
    let mut cmd = deskd_run::run_command(&config, &dir);
    cmd.env("DESKD_TOKEN", TOKEN).stderr(Stdio::inherit());
    let deskd = DeskdRun::spawn(&mut cmd, &dir);
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    assert!(wait_ready(addr, WAIT).await, "deskd never became ready");
    (deskd, addr)
}

async fn page_needs_the_token() {
    let (_deskd, addr) = deskd_with_standin().await;
    // Without the token: the page and its modules are refused.
    assert_eq!(http_get(addr, "/", &[]).await.0, 401);
    assert_eq!(http_get(addr, "/viewer/main.js", &[]).await.0, 401);
    assert_eq!(
        http_get(addr, "/", &[("Cookie", "deskd_token=wrong")])
            .await
            .0,
        401
    );
    // With it: a cookie and a redirect to the clean URL, then the page with its policy.
    let (status, headers, _) = http_get(addr, &format!("/?token={TOKEN}"), &[]).await;
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), "/");
    let cookie = header(&headers, "set-cookie").to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap_or_default().to_string();
    let (status, headers, body) = http_get(addr, "/", &[("Cookie", &pair)]).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"src="/viewer/main.js""#));
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(
        header(&headers, "content-security-policy"),
        deskd::http::viewer::CONTENT_SECURITY_POLICY
    );
    let (status, headers, _) = http_get(addr, "/viewer/signaling.js", &[("Cookie", &pair)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "text/javascript; charset=utf-8"
    );
}

async fn page_reaches_the_relay() {
    let (_deskd, addr) = deskd_with_standin().await;
    // In a browser: refused without the token, then the link with the token opens the page
    // at a clean URL, and it reaches neko through the relay: system/init arrives and it asks
    // for the stream.
    let browser = Browser::launch().await;
    let tab = browser.open(&format!("http://{addr}/")).await;
    tab.wait_for(
        "document.readyState === 'complete' && document.body.textContent.includes('Unauthorized')",
        "the refusal page",
    )
    .await;
    assert_eq!(
        tab.eval("typeof window.__deskdViewer").await,
        json!("undefined")
    );

    // WebRTC forced: deskd's own stream would come first.
    let tab = browser
        .open(&format!("http://{addr}/?token={TOKEN}&transport=webrtc"))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.received.includes('system/init')",
        "system/init from neko through the relay",
    )
    .await;
    let url = tab.eval("location.href").await;
    assert_eq!(
        url,
        json!(format!("http://{addr}/?transport=webrtc")),
        "the token is gone from the URL, the rest stays"
    );
    let request = tab
        .wait_for(
            "__deskdViewer.sent.find(m => m.event === 'signal/request')",
            "signal/request",
        )
        .await;
    assert_eq!(
        request,
        json!({"event": "signal/request", "payload": {"video": {"disabled": true}, "audio": {"disabled": true}}})
    );
    let session = tab.eval("__deskdViewer.sessionId").await;
    assert!(
        session.as_str().is_some_and(|s| s.starts_with("viewer-")),
        "neko session through the relay: {session}"
    );
    // A picture soon: deskd's still of its X screen (1280x720), or live video when that came
    // first (the native stream, once WebRTC showed none), in which case the still is dropped.
    let first = tab
        .wait_for(
            "(__deskdViewer.firstStill || __deskdViewer.firstVideo) && [__deskdViewer.firstStill, __deskdViewer.firstVideo]",
            "a first picture",
        )
        .await;
    let (still, video) = (&first[0], &first[1]);
    if !still.is_null() {
        assert_eq!(
            (&still["width"], &still["height"]),
            (&json!(1280), &json!(720))
        );
        if let (Some(s), Some(v)) = (still["perf"].as_f64(), video["perf"].as_f64()) {
            assert!(s < v, "a still shown after live video: {first}");
        }
    }
    println!(
        "first picture after navigation started: still {} ms, video {} ms (unoptimised build)",
        still["perf"], video["perf"]
    );
}

// ---------------------------------------------------------------------------------------
// With a real neko (DESKD_TEST_NEKO=/path/to/neko): video decoded in Chromium, and a click and
// key presses in the page arriving in the X server, seen by a test X client window.

#[path = "common/agent_x.rs"]
mod agent_x;

/// The neko binary of DESKD_TEST_NEKO; `None` (and the reason printed) when it is not set.
fn real_neko_binary() -> Option<PathBuf> {
    let Some(neko) = std::env::var_os("DESKD_TEST_NEKO") else {
        println!("skipping: DESKD_TEST_NEKO is not set (path to a neko v3 binary)");
        return None;
    };
    assert!(
        Path::new(&neko).exists(),
        "DESKD_TEST_NEKO={} does not exist",
        Path::new(&neko).display()
    );
    Some(PathBuf::from(neko))
}

/// deskd with a 1280x720 display and the real `neko` (`neko_extra`: more of its section and
/// after it), in the private network (pion does not use loopback: neko advertises the
/// namespace's veth address, neko-protocol §7); ready.
async fn deskd_with_real_neko(
    neko: &Path,
    neko_extra: &str,
    env: &[(&str, &str)],
) -> (DeskdRun, SocketAddr, u32) {
    let dir = temp_dir("viewer-neko");
    let http_port = free_port();
    let display = free_display(1200);
    let config = deskd_run::write_config(
        &dir,
        display,
        "1280x720",
        http_port,
        neko,
        &format!("nat1to1 = [\"10.213.0.1\"]\n{neko_extra}"),
    );
    let mut cmd = deskd_run::run_command(&config, &dir);
    cmd.env("DESKD_TOKEN", TOKEN).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let deskd = DeskdRun::spawn(&mut cmd, &dir);
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    assert!(
        wait_ready(addr, Duration::from_secs(120)).await,
        "deskd with neko never became ready"
    );
    (deskd, addr, display)
}

#[test]
fn real_neko_sound_next_to_the_native_stream() {
    let Some(neko) = real_neko_binary() else {
        return;
    };
    if Command::new("pulseaudio")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipping: pulseaudio is not installed");
        return;
    }
    if in_private_network("real_neko_sound_next_to_the_native_stream") {
        runtime().block_on(real_neko_sound(neko));
    }
}

/// neko with sound (PulseAudio as the image runs it): the page shows deskd's own stream and
/// plays neko's audio from a second, audio-only session.
async fn real_neko_sound(neko: PathBuf) {
    let pa = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/default.pa");
    let (_deskd, addr, _) = deskd_with_real_neko(
        &neko,
        &format!(
            "audio = true\n\n\
             [[service]]\nname = \"pulseaudio\"\ncommand = [\"pulseaudio\", \"--daemonize=no\", \
             \"--use-pid-file=no\", \"--exit-idle-time=-1\", \"--disallow-exit\", \
             \"--log-target=stderr\", \"-n\", \"-F\", \"{}\"]\n\
             ready = {{ unix = \"/tmp/pulseaudio.socket\" }}\n",
            pa.display()
        ),
        &[("PULSE_SERVER", "unix:/tmp/pulseaudio.socket")],
    )
    .await;
    let browser = Browser::launch().await;
    let tab = browser
        .open(&format!("http://{addr}/?token={TOKEN}&audio=1"))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live' && __deskdViewer.sound === 'playing'",
        "live on the native stream with sound playing",
    )
    .await;
    tab.wait_for(
        "__deskdViewer.soundPackets().then(n => n > 20)",
        "neko's audio packets",
    )
    .await;
    assert_eq!(
        tab.eval("[__deskdViewer.transport, __deskdViewer.closes.length, document.getElementById('audio').textContent]")
            .await,
        json!(["ws", 0, "Sound on"])
    );

    // On WebRTC, with the page decoding the video itself, the <video> plays the sound alone.
    let tab = browser
        .open(&format!(
            "http://{addr}/?token={TOKEN}&transport=webrtc&audio=1"
        ))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live' && __deskdViewer.render === 'decoder'",
        "live on WebRTC, decoded by the page",
    )
    .await;
    tab.wait_for(
        "(async () => { const v = document.getElementById('screen-video'); const s = v && v.srcObject;          if (!s || v.paused || s.getVideoTracks().length !== 0 || s.getAudioTracks().length !== 1) return false;          let n = 0; for (const pc of __deskdViewer.peerConnections()) (await pc.getStats()).forEach((r) => {          if (r.type === 'inbound-rtp' && r.kind === 'audio') n += r.totalSamplesReceived || 0; }); return n > 48000; })()",
        "neko's sound played by the <video> (a second of samples)",
    )
    .await;
}

#[test]
fn real_neko_video_and_input_reach_the_x_server() {
    let Some(neko) = real_neko_binary() else {
        return;
    };
    if in_private_network("real_neko_video_and_input_reach_the_x_server") {
        runtime().block_on(real_neko(neko));
    }
}

async fn real_neko(neko: PathBuf) {
    let (_deskd, addr, display) = deskd_with_real_neko(&neko, "audio = false\n", &[]).await;

    // A window over the whole screen records what reaches the X server.
    let x_display = format!(":{display}");
    let mut window = tokio::task::spawn_blocking(move || {
        let w = agent_x::TestWindow::open(&x_display, 0, 0, 1280, 720, "viewer target");
        w.fill(0x3060a0, 0, 0, 1280, 720);
        w.fill(0xe04040, 0, 0, 200, 100);
        w
    })
    .await
    .expect("test window");

    let browser = Browser::launch().await;
    // WebRTC forced: this test is about neko's video; the page would pick deskd's own stream.
    let tab = browser
        .open(&format!("http://{addr}/?token={TOKEN}&transport=webrtc"))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live'",
        "live with real neko",
    )
    .await;
    // A still screen: the key frame, then repeats the page does not decode.
    tab.wait_for(
        "__deskdViewer.framesDecoded().then(n => n > 0)",
        "video frames from neko decoded",
    )
    .await;
    tab.wait_for(
        "(() => { const c = document.getElementById('screen'); return c.tagName === 'CANVAS' && c.width === 1280 && c.height === 720; })()",
        "1280x720 video, decoded and painted by the page",
    )
    .await;
    tab.wait_for(
        "__deskdViewer.dataChannel === 'open'",
        "neko's data channel",
    )
    .await;
    tab.screenshot("viewer-real-neko.png").await;
    // The picture is the screen's, and a change reaches it: with `[neko] video = "deskd"`
    // neko sends deskd's encoder's frames, repeats of the last one in between.
    wait_video_pixel(
        &tab,
        100,
        50,
        [0xe0, 0x40, 0x40],
        "the red box in neko's video",
    )
    .await;
    wait_video_pixel(
        &tab,
        640,
        400,
        [0x30, 0x60, 0xa0],
        "the blue ground in neko's video",
    )
    .await;
    window = tokio::task::spawn_blocking(move || {
        window.fill(0x40c040, 560, 340, 200, 120);
        window
    })
    .await
    .expect("fill");
    wait_video_pixel(
        &tab,
        640,
        400,
        [0x40, 0xc0, 0x40],
        "a change in neko's video",
    )
    .await;
    // The page decoded neko's frames itself, and skipped the feed's repeats of a still screen.
    tab.wait_for(
        "(() => { const d = __deskdViewer.rtcDecoder(); return d && d.repeats > 10 && d.decoded > 0 && d.passed === 0; })()",
        "repeats skipped by the page's decoder",
    )
    .await;

    // A click at desktop (300, 200): neko makes the page host, then the press lands there.
    let rect = tab
        .eval("(() => { const r = document.getElementById('stage').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
        .await;
    let r: Vec<f64> = serde_json::from_value(rect).expect("stage rect");
    let (x, y) = pixel_centre(&r, 300.0, 200.0);
    tab.click(x, y).await;
    window = tokio::task::spawn_blocking(move || {
        window.wait_for("ButtonPress at 300,200", |e| {
            matches!(e, x11rb::protocol::Event::ButtonPress(b)
                if b.detail == 1 && b.root_x == 300 && b.root_y == 200)
        });
        window.wait_for(
            "ButtonRelease",
            |e| matches!(e, x11rb::protocol::Event::ButtonRelease(b) if b.detail == 1),
        );
        window.clear();
        window
    })
    .await
    .expect("click in X");
    tab.wait_for("__deskdViewer.isHost", "host").await;

    // Keys: "a", then Shift+1 typed as "!".
    tab.key("keyDown", "a", "KeyA", 65, Some("a")).await;
    tab.key("keyUp", "a", "KeyA", 65, None).await;
    tab.key("rawKeyDown", "Shift", "ShiftLeft", 16, None).await;
    tab.key("keyDown", "!", "Digit1", 49, Some("!")).await;
    tab.key("keyUp", "!", "Digit1", 49, None).await;
    tab.key("keyUp", "Shift", "ShiftLeft", 16, None).await;
    tokio::task::spawn_blocking(move || {
        window.wait_until("the keys typed", |events| {
            events
                .iter()
                .filter(|e| matches!(e, x11rb::protocol::Event::KeyRelease(_)))
                .count()
                >= 3
        });
        assert_eq!(window.typed_text(), "a!", "text typed in the X server");
    })
    .await
    .expect("keys in X");
}

// ---------------------------------------------------------------------------------------
// The native stream (docs/native-stream.md) against its stand-in (support/native_standin.rs):
// real H.264 decoded by WebCodecs onto the canvas, input on the WebSocket, view-only, the
// transport choice, reconnecting; and a clean console over plain HTTP.

use native_standin::{NativeStandIn, Options as NativeOptions};

/// The quadrant pattern's sample points (desktop pixels) and colours, centre `centre`.
fn quadrant_points(centre: [u8; 3]) -> ([(f64, f64); 5], [[u8; 3]; 5]) {
    use native_standin::*;
    (
        [
            (320.0, 180.0),
            (960.0, 180.0),
            (320.0, 540.0),
            (960.0, 540.0),
            (640.0, 360.0),
        ],
        [RED, GREEN, BLUE, WHITE, centre],
    )
}

/// Waits until `#screen`'s pixel (x, y) is near `rgb` (a video's colours are a codec's).
async fn wait_video_pixel(tab: &Tab<'_>, x: u32, y: u32, rgb: [u8; 3], what: &str) {
    let [r, g, b] = rgb;
    tab.wait_for(
        &format!(
            "(() => {{ const p = {}; return Math.abs(p[0] - {r}) < 24 && Math.abs(p[1] - {g}) < 24 && Math.abs(p[2] - {b}) < 24; }})()",
            canvas_pixel(x, y)
        ),
        what,
    )
    .await;
}

/// JavaScript for the RGB of `#screen`'s pixel (x, y), read through a scratch canvas: the
/// stream worker paints `#screen` as an OffscreenCanvas, so its own context is not the page's.
fn canvas_pixel(x: u32, y: u32) -> String {
    format!(
        "(() => {{ const c = document.createElement('canvas'); c.width = 1; c.height = 1; \
         const g = c.getContext('2d'); g.drawImage(document.getElementById('screen'), {x}, {y}, 1, 1, 0, 0, 1, 1); \
         return g.getImageData(0, 0, 1, 1).data.slice(0, 3); }})()"
    )
}

async fn assert_quadrants(tab: &Tab<'_>, name: &str, centre: [u8; 3], tol: u8) {
    let r = stage_rect(tab).await;
    let (points, want) = quadrant_points(centre);
    let got = sample(tab, name, &r, &points).await;
    for (g, w) in got.iter().zip(want) {
        assert!(
            native_standin::near(*g, w, tol),
            "{name}: page shows {got:?}, expected {want:?}"
        );
    }
}

async fn wait_input(stand_in: &NativeStandIn, expected: &[&str], what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = stand_in.sent_input();
        if got.iter().map(String::as_str).collect::<Vec<_>>() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the socket got {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn native_stream_decodes_onto_the_canvas_and_sends_input() {
    runtime().block_on(native_stream_control());
}

async fn native_stream_control() {
    let stand_in = NativeStandIn::start(NativeOptions {
        first_video_delay: Duration::from_millis(1500),
        still_failures: 1,
        ..NativeOptions::default()
    })
    .await;
    let browser = Browser::launch().await;
    let tab = browser.open(&format!("http://{}/", stand_in.addr)).await;

    // No neko configured: the native stream, chosen by the page. The still comes first,
    // though its first request failed (503, as while deskd starts): it is asked for again.
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.firstStill && !document.getElementById('still').hidden",
        "the still",
    )
    .await;
    assert_eq!(
        stand_in.screenshots(),
        2,
        "the failed still, then its retry"
    );
    // (The still may show before /api/session has answered, when no transport is named yet.)
    tab.wait_for(
        "__deskdViewer.transport === 'ws' && __deskdViewer.statusText === 'Connecting… · still picture, not live yet · WebSocket'",
        "the status of the still on the native stream",
    )
    .await;
    assert_quadrants(&tab, "native-still.png", native_standin::CYAN, 24).await;

    // The key frame, then the delta frame, decoded onto the canvas (id="screen"), in the
    // same place as the still.
    tab.wait_for(
        "__deskdViewer.status === 'live' && __deskdViewer.frames.length >= 2",
        "two decoded frames",
    )
    .await;
    assert_eq!(
        tab.eval("[document.getElementById('screen').tagName, document.getElementById('screen').width, document.getElementById('screen').height, document.getElementById('still').hidden, __deskdViewer.firstStill.perf < __deskdViewer.firstVideo.perf]")
            .await,
        json!(["CANVAS", 1280, 720, true, true])
    );
    assert_quadrants(&tab, "native-live.png", native_standin::MAGENTA, 30).await;
    // The canvas itself holds the decoded picture (not just what the compositor shows).
    let centre = tab
        .eval(&format!("Array.from({})", canvas_pixel(640, 360)))
        .await;
    let c: Vec<u8> = serde_json::from_value(centre).expect("canvas pixel");
    assert!(
        native_standin::near([c[0], c[1], c[2]], native_standin::MAGENTA, 30),
        "canvas centre {c:?}"
    );
    // For benchmarks: each decoded frame's seq and the server's capture time.
    let frames = tab
        .eval("__deskdViewer.frames.map(f => [f.seq, f.key, Math.abs(f.captureUs / 1000 - f.decodedEpochMs) < 10000])")
        .await;
    assert_eq!(frames, json!([[1, true, true], [2, false, true]]));
    tab.assert_status("Live · 1280×720 · in control · WebSocket")
        .await;

    // A tile (a small change ahead of its frame) is painted on the canvas at once.
    stand_in.send_tile(100, 50, 8, 16, native_standin::CYAN);
    tab.wait_for(
        "__deskdViewer.tiles.length === 1 && __deskdViewer.tiles[0].drawn",
        "the tile painted",
    )
    .await;
    // The worker painted it; the page's picture of its canvas follows at the next frame.
    let [r, g, b] = native_standin::CYAN;
    let px = tab
        .wait_for(
            &format!(
                "(() => {{ const c = document.createElement('canvas'); c.width = 14; c.height = 1; \
                 const g = c.getContext('2d'); g.drawImage(document.getElementById('screen'), 90, 57, 14, 1, 0, 0, 14, 1); \
                 const d = g.getImageData(0, 0, 14, 1).data; const at = (i) => Array.from(d.slice(i * 4, i * 4 + 3)); \
                 return at(13).join() === '{r},{g},{b}' ? [at(13), at(0)] : null; }})()"
            ),
            "the tile's pixels on the canvas",
        )
        .await;
    let px: Vec<Vec<u8>> = serde_json::from_value(px).expect("canvas pixels");
    assert_ne!(
        px[1],
        native_standin::CYAN.to_vec(),
        "and nothing beside it"
    );
    // A box of one colour, of any size, comes as a fill and is painted at once too.
    stand_in.send_fill(600, 300, 400, 200, native_standin::MAGENTA);
    tab.wait_for(
        "__deskdViewer.tiles.length === 2 && __deskdViewer.tiles[1].drawn",
        "the fill painted",
    )
    .await;
    let [r, g, b] = native_standin::MAGENTA;
    tab.wait_for(
        &format!(
            "(() => {{ const p = {}; return p.join() === '{r},{g},{b}' ? p : null; }})()",
            canvas_pixel(999, 499)
        ),
        "the fill's colour on the canvas, to its last pixel",
    )
    .await;

    // A frame the decoder cannot decode: the page resets its decoder, asks for a key frame
    // and shows the stream again.
    stand_in.send_broken_key_frame();
    wait_until("the page to ask for a key frame", || {
        stand_in
            .sent_text()
            .contains(&json!({ "type": "keyframe" }))
    })
    .await;
    tab.wait_for(
        "__deskdViewer.frames.some(f => f.seq === 4 && f.key)",
        "the key frame after the broken one decoded",
    )
    .await;
    stand_in.clear_input();

    // A click at the centre: MOVE 640,360 and the button, on the socket at once (no host
    // arbitration on this transport, so no control request).
    let r = stage_rect(&tab).await;
    let (cx, cy) = pixel_centre(&r, 640.0, 360.0);
    tab.click(cx, cy).await;
    wait_input(
        &stand_in,
        &["01000402800168", "05000400000001", "06000400000001"],
        "click",
    )
    .await;
    stand_in.clear_input();
    tab.key("keyDown", "a", "KeyA", 65, Some("a")).await;
    tab.key("keyUp", "a", "KeyA", 65, None).await;
    wait_input(&stand_in, &["03000400000061", "04000400000061"], "key a").await;

    // Paste without a held Ctrl: the server types it.
    tab.paste("héllo").await;
    wait_until("the paste message", || {
        stand_in
            .sent_text()
            .contains(&json!({ "type": "paste", "text": "héllo" }))
    })
    .await;

    // Pings keep the stale watchdog fed and give the round trip in the status line.
    tab.wait_for(
        "/ · WebSocket · \\d+ ms$/.test(__deskdViewer.statusText)",
        "the round trip in the status",
    )
    .await;
    assert!(stand_in.pings() >= 1);

    // The display went away (4503): the page says so and comes back by itself.
    stand_in.close_page(4503, "display went away");
    tab.wait_for(
        "__deskdViewer.closes.some(c => c.code === 4503 && c.kind === 'unavailable' && c.transport === 'ws')",
        "the 4503 close",
    )
    .await;
    tab.wait_for(
        "__deskdViewer.status === 'live' && __deskdViewer.connects === 2 && __deskdViewer.transport === 'ws'",
        "live again",
    )
    .await;
    assert_eq!(stand_in.connections(), 2);
    assert_eq!(
        stand_in.screenshots(),
        2,
        "one still (the failed request and its retry), at page start only"
    );
    assert_eq!(tab.eval("__deskdViewer.cspViolations").await, json!([]));
    // Only the browser's own note of the still that failed on purpose.
    let problems = tab.console_problems();
    assert!(
        problems.len() <= 1
            && problems
                .iter()
                .all(|p| p.contains("503") && p.contains("/api/screenshot")),
        "{problems:?}"
    );
}

#[test]
fn native_stream_view_only_says_so_at_once_and_sends_no_input() {
    runtime().block_on(native_stream_view_only());
}

async fn native_stream_view_only() {
    let stand_in = NativeStandIn::start(NativeOptions {
        access: "view",
        first_video_delay: Duration::from_millis(1500),
        ..NativeOptions::default()
    })
    .await;
    let browser = Browser::launch().await;
    let tab = browser.open(&format!("http://{}/", stand_in.addr)).await;
    // From /api/session, before any video: view only, never "click to control".
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.access === 'view' && __deskdViewer.firstStill",
        "the access and the still",
    )
    .await;
    tab.wait_for(
        "__deskdViewer.statusText === 'Connecting… · still picture, not live yet · view only · WebSocket'",
        "the view-only status of the still",
    )
    .await;
    tab.wait_for("__deskdViewer.status === 'live'", "live")
        .await;
    tab.assert_status("Live · 1280×720 · view only · WebSocket")
        .await;
    // Clicks, keys and paste send nothing (pings aside).
    let r = stage_rect(&tab).await;
    let (cx, cy) = pixel_centre(&r, 640.0, 360.0);
    tab.mouse("mousePressed", cx, cy, "left").await;
    tab.mouse("mouseReleased", cx, cy, "left").await;
    tab.key("keyDown", "a", "KeyA", 65, Some("a")).await;
    tab.key("keyUp", "a", "KeyA", 65, None).await;
    tab.paste("x").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(stand_in.sent_input(), Vec::<String>::new());
    assert_eq!(stand_in.sent_text(), Vec::<Value>::new());
    assert!(tab
        .eval("__deskdViewer.statusText")
        .await
        .as_str()
        .is_some_and(|s| s.contains("view only")));
    assert_eq!(tab.console_problems(), Vec::<String>::new());
}

#[test]
fn native_stream_is_chosen_first_or_forced_with_sound_beside_it() {
    runtime().block_on(native_stream_choice());
}

async fn native_stream_choice() {
    // neko configured and ready, but its relay is not there (404).
    let stand_in = NativeStandIn::start(NativeOptions {
        webrtc: (true, true),
        ..NativeOptions::default()
    })
    .await;
    let browser = Browser::launch().await;
    // In images too (no WebCodecs; ?codec=jpeg here) the native stream comes first, though
    // neko is ready.
    let tab = browser
        .open(&format!("http://{}/?codec=jpeg", stand_in.addr))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live' && __deskdViewer.transport === 'ws'",
        "live on the native stream",
    )
    .await;
    assert_eq!(
        tab.eval("[__deskdViewer.codec, __deskdViewer.closes.length]")
            .await,
        json!(["jpeg", 0])
    );

    // With WebCodecs: deskd's own stream at once, though neko is ready. Sound wanted: it comes
    // from an audio-only neko session next to it (here the relay is missing: it retries),
    // never by giving up the native stream.
    let tab = browser
        .open(&format!("http://{}/?audio=1", stand_in.addr))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live' && __deskdViewer.sound === 'retrying'",
        "live on the native stream, the sound session retrying",
    )
    .await;
    assert_eq!(
        tab.eval("[__deskdViewer.transport, __deskdViewer.connects, __deskdViewer.closes.length, document.getElementById('audio').textContent]")
            .await,
        json!(["ws", 1, 0, "Sound on"])
    );
    tab.eval("document.getElementById('audio').click()").await;
    tab.wait_for(
        "__deskdViewer.sound === 'off' && document.getElementById('audio').textContent === 'Sound off'",
        "sound off",
    )
    .await;
    assert_eq!(
        tab.eval("[__deskdViewer.transport, __deskdViewer.connects, __deskdViewer.status]")
            .await,
        json!(["ws", 1, "live"]),
        "the picture never stopped"
    );

    // ?transport=ws: the native stream from the start, though neko is ready.
    let tab = browser
        .open(&format!("http://{}/?transport=ws", stand_in.addr))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live'",
        "live with ?transport=ws",
    )
    .await;
    assert_eq!(
        tab.eval("[__deskdViewer.transport, __deskdViewer.connects, __deskdViewer.closes.length]")
            .await,
        json!(["ws", 1, 0])
    );

    // ?transport=webrtc: WebRTC only, retrying, never the native stream.
    let tab = browser
        .open(&format!("http://{}/?transport=webrtc", stand_in.addr))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.closes.length >= 2",
        "two WebRTC attempts",
    )
    .await;
    assert_eq!(
        tab.eval("[__deskdViewer.transport, __deskdViewer.closes.every(c => c.transport === 'webrtc'), __deskdViewer.status !== 'live']")
            .await,
        json!(["webrtc", true, true])
    );
}

// ---------------------------------------------------------------------------------------
// The native stream through the real deskd binary, without neko: deskd captures and encodes
// the Xvfb it runs, the page decodes it. An X client window draws a known pattern and
// records the input that arrives.

const VIEW_TOKEN: &str = "viewer-browser-view-token";

/// deskd with a display and the HTTP port only (the native stream is on by default with a
/// display; no `[neko]`), ready; `(guard, addr, display)`.
async fn deskd_native_only(http_port: u16, display: u32, dir: &Path) -> DeskdRun {
    let config = dir.join("deskd.toml");
    std::fs::write(
        &config,
        format!(
            "[display]\nnumber = {display}\nsize = \"1280x720\"\n\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n"
        ),
    )
    .expect("write deskd.toml");
    let mut cmd = deskd_run::run_command(&config, dir);
    cmd.env("DESKD_TOKEN", TOKEN)
        .env("DESKD_VIEW_TOKEN", VIEW_TOKEN)
        .stderr(Stdio::inherit());
    let deskd = DeskdRun::spawn(&mut cmd, dir);
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    assert!(wait_ready(addr, WAIT).await, "deskd never became ready");
    deskd
}

/// deskd without neko ([`deskd_native_only`]) in a fresh directory, with the quadrant pattern
/// on its display: (guard, HTTP port, display, the pattern's window).
async fn native_desk(tag: &str) -> (DeskdRun, u16, u32, agent_x::TestWindow) {
    let dir = temp_dir(tag);
    let http_port = free_port();
    let display = free_display(1200);
    let deskd = deskd_native_only(http_port, display, &dir).await;
    let window = tokio::task::spawn_blocking(move || pattern_window(display))
        .await
        .expect("pattern window");
    (deskd, http_port, display, window)
}

/// Waits until the canvas shows the pattern's magenta centre.
async fn wait_pattern_centre(tab: &Tab<'_>, what: &str) {
    tab.wait_for(
        &format!(
            "(() => {{ const d = {}; return d[0] > 150 && d[1] < 100 && d[2] > 150; }})()",
            canvas_pixel(640, 360)
        ),
        what,
    )
    .await;
}

/// The quadrant pattern (support/native_standin.rs) drawn by a full-screen X window.
fn pattern_window(display: u32) -> agent_x::TestWindow {
    use native_standin::*;
    let rgb = |c: [u8; 3]| (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
    let w = agent_x::TestWindow::open(&format!(":{display}"), 0, 0, 1280, 720, "pattern");
    w.fill(rgb(RED), 0, 0, 640, 360);
    w.fill(rgb(GREEN), 640, 0, 640, 360);
    w.fill(rgb(BLUE), 0, 360, 640, 360);
    w.fill(rgb(WHITE), 640, 360, 640, 360);
    w.fill(rgb(MAGENTA), 480, 240, 320, 240);
    w
}

#[test]
fn deskd_native_stream_without_neko_in_chromium() {
    runtime().block_on(deskd_native_stream());
}

#[test]
fn page_over_plain_http_to_a_lan_name_shows_the_desktop_as_jpeg() {
    runtime().block_on(plain_http_jpeg());
}

/// http://deskd.test is not a trustworthy origin (as a LAN address): the browser has no
/// WebCodecs there, and COOP would be ignored with a console error.
async fn plain_http_jpeg() {
    let (_deskd, http_port, _, window) = native_desk("viewer-jpeg").await;
    let browser = Browser::launch().await;
    let tab = browser
        .open(&format!("http://deskd.test:{http_port}/?token={TOKEN}"))
        .await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live' && __deskdViewer.codec === 'jpeg'",
        "live on the native stream's images",
    )
    .await;
    assert_eq!(tab.eval("window.isSecureContext").await, json!(false));
    assert_eq!(tab.eval("typeof VideoDecoder").await, json!("undefined"));
    wait_pattern_centre(&tab, "the pattern's magenta centre on the canvas").await;
    assert_quadrants(&tab, "deskd-jpeg.png", native_standin::MAGENTA, 40).await;
    tab.assert_status("Live · 1280×720 · in control · WebSocket (JPEG)")
        .await;

    // A change of many colours shows; typed text arrives in X.
    let mut window = tokio::task::spawn_blocking(move || {
        window.put_stripes(0x00ff00, 0x000000, 100, 100, 300, 200);
        window
    })
    .await
    .expect("stripes");
    tab.wait_for(
        &format!(
            "(() => {{ const a = {}, b = {}; return a[1] > 200 && a[0] < 60 && b[1] < 60; }})()",
            canvas_pixel(103, 150),
            canvas_pixel(112, 150)
        ),
        "the green and black stripes on the canvas",
    )
    .await;
    tab.key("keyDown", "q", "KeyQ", 81, Some("q")).await;
    tab.key("keyUp", "q", "KeyQ", 81, None).await;
    tokio::task::spawn_blocking(move || window.wait_typed("q"))
        .await
        .expect("typed text in X");
    // Give late console messages a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tab.console_problems(), Vec::<String>::new());
}

async fn deskd_native_stream() {
    let (deskd, http_port, display, mut window) = native_desk("viewer-native").await;
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");

    // No neko: the page picks the native stream by itself and shows what X shows.
    let browser = Browser::launch().await;
    let tab = browser.open(&format!("http://{addr}/?token={TOKEN}")).await;
    tab.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live' && __deskdViewer.transport === 'ws'",
        "live on the native stream",
    )
    .await;
    assert_eq!(
        tab.eval("document.getElementById('screen').tagName").await,
        json!("CANVAS")
    );
    wait_pattern_centre(&tab, "the pattern's magenta centre on the canvas").await;
    assert_quadrants(&tab, "deskd-native.png", native_standin::MAGENTA, 40).await;
    tab.assert_status("Live · 1280×720 · in control · WebSocket")
        .await;
    assert_eq!(
        tab.eval("__deskdViewer.streamWorker").await,
        json!(true),
        "Chromium runs the stream in its worker"
    );

    // A click at desktop (300, 200) and typed text arrive in the X client.
    let r = stage_rect(&tab).await;
    let (x, y) = pixel_centre(&r, 300.0, 200.0);
    tab.click(x, y).await;
    window = tokio::task::spawn_blocking(move || {
        window.wait_for("ButtonPress at 300,200", |e| {
            matches!(e, x11rb::protocol::Event::ButtonPress(b)
                if b.detail == 1 && b.root_x == 300 && b.root_y == 200)
        });
        window.clear();
        window
    })
    .await
    .expect("click in X");
    tab.key("keyDown", "a", "KeyA", 65, Some("a")).await;
    tab.key("keyUp", "a", "KeyA", 65, None).await;
    tab.key("rawKeyDown", "Shift", "ShiftLeft", 16, None).await;
    tab.key("keyDown", "!", "Digit1", 49, Some("!")).await;
    tab.key("keyUp", "!", "Digit1", 49, None).await;
    tab.key("keyUp", "Shift", "ShiftLeft", 16, None).await;
    window = tokio::task::spawn_blocking(move || {
        window.wait_typed("a!");
        window.clear();
        window
    })
    .await
    .expect("keys in X");

    // A view-only viewer (another origin, so another cookie): says so, its input is dropped.
    // It runs the stream in the page (`worker=0`, as a browser without OffscreenCanvas does).
    let view = browser
        .open(&format!(
            "http://localhost:{http_port}/?token={VIEW_TOKEN}&worker=0"
        ))
        .await;
    view.wait_for(
        "window.__deskdViewer && __deskdViewer.status === 'live' && __deskdViewer.transport === 'ws'",
        "the view-only viewer live",
    )
    .await;
    assert_eq!(view.eval("__deskdViewer.streamWorker").await, json!(false));
    wait_pattern_centre(&view, "the pattern's magenta centre on the in-page canvas").await;
    assert!(view
        .eval("__deskdViewer.statusText")
        .await
        .as_str()
        .is_some_and(|s| s.contains("view only")));
    let rv = stage_rect(&view).await;
    let (vx, vy) = pixel_centre(&rv, 900.0, 600.0);
    view.mouse("mousePressed", vx, vy, "left").await;
    view.mouse("mouseReleased", vx, vy, "left").await;
    view.key("keyDown", "z", "KeyZ", 90, Some("z")).await;
    view.key("keyUp", "z", "KeyZ", 90, None).await;
    let window = tokio::task::spawn_blocking(move || {
        window.settle(Duration::from_millis(1500));
        let input: Vec<_> = window
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    x11rb::protocol::Event::ButtonPress(_) | x11rb::protocol::Event::KeyPress(_)
                )
            })
            .cloned()
            .collect();
        assert!(input.is_empty(), "view-only input reached X: {input:?}");
        window
    })
    .await
    .expect("no view-only input");
    drop(window);

    // deskd restarts (same port, same token): the page comes back by itself.
    drop(deskd);
    tab.wait_for(
        "__deskdViewer.closes.some(c => c.transport === 'ws')",
        "the close on deskd's restart",
    )
    .await;
    let dir2 = temp_dir("viewer-native");
    let _deskd = deskd_native_only(http_port, display, &dir2).await;
    tab.wait_for(
        "__deskdViewer.status === 'live' && __deskdViewer.connects >= 2 && __deskdViewer.transport === 'ws'",
        "live again after deskd's restart",
    )
    .await;
}
