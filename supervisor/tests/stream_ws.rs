//! The native stream `/stream/ws` on real processes: `deskd run` with a real Xvfb, a test X
//! client drawing known pictures and recording input, and WebSocket clients that decode the
//! H.264 frames with openh264's decoder and compare pixels.

#[path = "common/agent_x.rs"]
mod agent_x;
#[path = "common/deskd_proc.rs"]
mod deskd_proc;

use std::time::{Duration, Instant};

use agent_x::TestWindow;
use deskd_proc::*;
use futures_util::{SinkExt, StreamExt};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use x11rb::protocol::Event;

const TOKEN: &str = "test-token-not-secret";
const VIEW: &str = "stream-view-token";
const W: u16 = 640;
const H: u16 = 480;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Desk {
    deskd: Deskd,
    port: u16,
    display: String,
    _dir: TempDir,
}

/// deskd on a display of its own: test `slot` (0..4) looks in :200+5·slot..+5, so the tests
/// of this file can run in parallel.
fn start(slot: u32, extra_http: &str) -> Desk {
    let n = first_free_display(200 + 5 * slot, 5).expect("a free display in :200-:219");
    let port = free_port();
    let dir = TempDir::new("stream-ws");
    let config = format!(
        "[display]\nnumber = {n}\nsize = \"{W}x{H}\"\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\nview_token = \"{VIEW}\"\n{extra_http}\n\
         [stream]\nmax_fps = 30\n"
    );
    let deskd = Deskd::run(&dir, &config, &[]);
    let desk = Desk {
        deskd,
        port,
        display: format!(":{n}"),
        _dir: dir,
    };
    assert!(
        wait_until(PATIENCE, || http_get(port, "/readyz", Some(TOKEN))
            .is_ok_and(|(s, _)| s == 200)),
        "deskd not ready; log:\n{}",
        desk.deskd.log_text()
    );
    desk
}

/// A GET with an optional Bearer token: (status, body).
fn http_get(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

fn metric(port: u16, name: &str) -> u64 {
    let (_, body) = http_get(port, "/metrics", Some(TOKEN)).expect("metrics");
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn connect(port: u16, token: Option<&str>, origin: Option<&str>) -> Result<Ws, u16> {
    connect_to(port, "/stream/ws", token, origin).await
}

/// As [`connect`], to `path` (with its query).
async fn connect_to(
    port: u16,
    path: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, u16> {
    let mut req = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", o.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

async fn next(ws: &mut Ws, within: Duration) -> Option<Message> {
    match tokio::time::timeout(within, ws.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        _ => None,
    }
}

/// A decoded video frame message.
struct Video {
    key: bool,
    seq: u32,
    width: u16,
    height: u16,
    data: Vec<u8>,
}

fn video(m: &Message) -> Option<Video> {
    let Message::Binary(b) = m else { return None };
    if b.first() != Some(&0x10) || b.len() < 18 {
        return None;
    }
    Some(Video {
        key: b[1] & 1 == 1,
        seq: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
        width: u16::from_be_bytes([b[14], b[15]]),
        height: u16::from_be_bytes([b[16], b[17]]),
        data: b[18..].to_vec(),
    })
}

/// The next video frame within `within`, skipping other messages.
async fn next_video(ws: &mut Ws, within: Duration) -> Option<Video> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = next(ws, left).await?;
        if let Some(v) = video(&m) {
            return Some(v);
        }
    }
}

/// The hello, then the first key frame.
async fn hello(ws: &mut Ws) -> (serde_json::Value, Video) {
    let first = next(ws, Duration::from_secs(5))
        .await
        .expect("a first message");
    let Message::Text(t) = first else {
        panic!("first message must be the hello text, got {first:?}")
    };
    let hello: serde_json::Value = serde_json::from_str(t.as_str()).expect("hello JSON");
    let key = next_video(ws, Duration::from_secs(5))
        .await
        .expect("a key frame after hello");
    assert!(key.key, "the first frame is a key frame");
    (hello, key)
}

struct Picture {
    rgb: Vec<u8>,
    width: usize,
}

impl Picture {
    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

fn decode(decoder: &mut Decoder, v: &Video) -> Picture {
    let yuv = decoder
        .decode(&v.data)
        .expect("decodable H.264")
        .expect("a picture");
    let (w, h) = yuv.dimensions();
    let mut rgb = vec![0; w * h * 3];
    yuv.write_rgb8(&mut rgb);
    Picture { rgb, width: w }
}

fn near(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (i32::from(*g) - i32::from(w)).abs() <= 40)
}

fn binary(op: u8, payload: &[u8]) -> Message {
    let mut b = vec![op];
    b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    b.extend_from_slice(payload);
    Message::Binary(b.into())
}

fn u32_msg(op: u8, v: u32) -> Message {
    binary(op, &v.to_be_bytes())
}

fn move_msg(x: u16, y: u16) -> Message {
    let mut p = x.to_be_bytes().to_vec();
    p.extend_from_slice(&y.to_be_bytes());
    binary(0x01, &p)
}

/// utime + stime of process `pid` in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of stat, counted from the state (field 3) here.
    get(11) + get(12)
}

/// A screen that changes all the time, with detail that compresses badly, until the flag is
/// set.
fn busy_screen(
    display: &str,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_painter = stop.clone();
    let display = display.to_string();
    let painter = std::thread::spawn(move || {
        let win = TestWindow::open(&display, 0, 0, W, H, "busy");
        let mut s: u32 = 0x9e37_79b9;
        while !stop_painter.load(std::sync::atomic::Ordering::Relaxed) {
            for _ in 0..200 {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                win.fill(
                    s & 0xffffff,
                    (s % 600) as i16,
                    ((s >> 8) % 440) as i16,
                    40,
                    40,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (stop, painter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_show_the_screen_only_when_it_changes() {
    let desk = start(0, "");
    let win = TestWindow::open(&desk.display, 0, 0, W, H, "pattern");
    win.fill(0xff0000, 0, 0, W / 2, H);
    win.fill(0x0000ff, (W / 2) as i16, 0, W / 2, H);
    win.fill(0x00ff00, 100, 100, 80, 60);

    let t = Instant::now();
    let mut ws = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("upgrade");
    let (hello, key) = hello(&mut ws).await;
    let first_frame = t.elapsed();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["access"], "control");
    assert_eq!(
        (hello["width"].as_u64(), hello["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert!(
        hello["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.")),
        "{hello}"
    );
    assert_eq!((key.width, key.height), (W, H));
    let mut decoder = Decoder::new().expect("decoder");
    let pic = decode(&mut decoder, &key);
    assert!(
        near(pic.at(20, 300), [255, 0, 0]),
        "left red, got {:?}",
        pic.at(20, 300)
    );
    assert!(
        near(pic.at(600, 300), [0, 0, 255]),
        "right blue, got {:?}",
        pic.at(600, 300)
    );
    assert!(
        near(pic.at(140, 130), [0, 255, 0]),
        "green box, got {:?}",
        pic.at(140, 130)
    );
    eprintln!("first key frame {first_frame:?} after connecting");

    // Whatever follows the change (a refinement frame), then silence.
    let mut last_seq = key.seq;
    while let Some(v) = next_video(&mut ws, Duration::from_millis(500)).await {
        decode(&mut decoder, &v);
        last_seq = v.seq;
    }
    let encoded = metric(desk.port, "deskd_stream_encode_seconds_count");
    let (cpu0, t0) = (cpu_ticks(desk.deskd.pid()), Instant::now());
    assert!(
        next_video(&mut ws, Duration::from_secs(1)).await.is_none(),
        "a static screen sends no frames"
    );
    let ticks = cpu_ticks(desk.deskd.pid()) - cpu0;
    eprintln!(
        "deskd CPU with a static screen and one viewer: {ticks} ticks (1/100 s) in {:?}",
        t0.elapsed()
    );
    assert_eq!(
        metric(desk.port, "deskd_stream_encode_seconds_count"),
        encoded,
        "a static screen encodes nothing"
    );

    // A change: a delta frame showing it.
    win.fill(0xffffff, 400, 200, 40, 40);
    let delta = next_video(&mut ws, Duration::from_secs(2))
        .await
        .expect("a frame after a change");
    assert!(!delta.key, "a change is sent as a delta frame");
    assert_eq!(delta.seq, last_seq + 1, "seq counts frames");
    let pic = decode(&mut decoder, &delta);
    assert!(
        near(pic.at(420, 220), [255, 255, 255]),
        "white box, got {:?}",
        pic.at(420, 220)
    );
    assert!(
        near(pic.at(600, 300), [0, 0, 255]),
        "rest unchanged, got {:?}",
        pic.at(600, 300)
    );

    // Asking for a key frame gets one.
    ws.send(Message::Text(r#"{"type":"keyframe"}"#.into()))
        .await
        .expect("send");
    let mut got_key = false;
    while let Some(v) = next_video(&mut ws, Duration::from_secs(2)).await {
        if v.key {
            got_key = true;
            break;
        }
    }
    assert!(got_key, "a keyframe request is answered with a key frame");

    // Ping: pong echoes the client time.
    ws.send(binary(0x07, &[0, 0, 0, 1, 0, 0, 0, 2]))
        .await
        .expect("ping");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut pong = None;
    while Instant::now() < deadline {
        if let Some(Message::Binary(b)) = next(&mut ws, Duration::from_millis(200)).await {
            if b.first() == Some(&0x03) {
                pong = Some(b);
                break;
            }
        }
    }
    let pong = pong.expect("a pong");
    assert_eq!(&pong[3..11], &[0, 0, 0, 1, 0, 0, 0, 2]);

    // deskd stopping closes the stream with 1001.
    desk.deskd.signal(nix::libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut code = None;
    while Instant::now() < deadline {
        match next(&mut ws, Duration::from_secs(1)).await {
            Some(Message::Close(c)) => {
                code = c.map(|c| u16::from(c.code));
                break;
            }
            Some(_) => {}
            None => {}
        }
    }
    assert_eq!(code, Some(1001), "deskd stopping closes with 1001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_input_arrives_view_input_is_dropped() {
    let desk = start(1, "");
    let mut win = TestWindow::open(&desk.display, 0, 0, 300, 200, "input");
    win.fill(0x808080, 0, 0, 300, 200);

    let mut view = connect(desk.port, Some(VIEW), None)
        .await
        .expect("view upgrade");
    let (hello_v, _) = hello(&mut view).await;
    assert_eq!(hello_v["access"], "view");
    win.clear();
    view.send(move_msg(50, 60)).await.expect("send");
    view.send(u32_msg(0x05, 1)).await.expect("send");
    view.send(u32_msg(0x06, 1)).await.expect("send");
    view.send(u32_msg(0x03, 0x61)).await.expect("send");
    view.send(u32_msg(0x04, 0x61)).await.expect("send");
    view.send(Message::Text(r#"{"type":"paste","text":"x"}"#.into()))
        .await
        .expect("send");
    assert!(
        wait_until(Duration::from_secs(5), || metric(
            desk.port,
            "deskd_stream_refused_total"
        ) >= 6),
        "view-only input is counted as refused"
    );
    std::thread::sleep(Duration::from_millis(300));
    win.pump();
    assert!(
        !win.events.iter().any(|e| matches!(
            e,
            Event::ButtonPress(_) | Event::KeyPress(_) | Event::MotionNotify(_)
        )),
        "view-only input reached X: {:?}",
        win.events
    );
    // Still connected: a ping is answered.
    view.send(binary(0x07, &[0, 0, 0, 0, 0, 0, 0, 9]))
        .await
        .expect("ping");
    let mut ponged = false;
    for _ in 0..20 {
        if let Some(Message::Binary(b)) = next(&mut view, Duration::from_millis(200)).await {
            if b.first() == Some(&0x03) {
                ponged = true;
                break;
            }
        }
    }
    assert!(ponged, "the view client stays connected and gets pongs");

    let mut ctl = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("upgrade");
    hello(&mut ctl).await;
    ctl.send(move_msg(50, 60)).await.expect("send");
    ctl.send(u32_msg(0x05, 1)).await.expect("send");
    ctl.send(u32_msg(0x06, 1)).await.expect("send");
    win.wait_for("a click from the control client", |e| {
        matches!(e, Event::ButtonPress(b) if b.detail == 1 && (b.event_x, b.event_y) == (50, 60))
    });
    for keysym in [0x68u32, 0x69] {
        ctl.send(u32_msg(0x03, keysym)).await.expect("send");
        ctl.send(u32_msg(0x04, keysym)).await.expect("send");
    }
    win.wait_typed("hi");
    ctl.send(Message::Text(r#"{"type":"paste","text":"ok!"}"#.into()))
        .await
        .expect("send");
    win.wait_typed("hiok!");
    // A key held when the client goes away is released.
    win.clear();
    ctl.send(u32_msg(0x03, 0x62)).await.expect("send");
    win.wait_for("b pressed", |e| matches!(e, Event::KeyPress(_)));
    win.clear();
    drop(ctl);
    win.wait_for("b released on leave", |e| matches!(e, Event::KeyRelease(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_session_and_several_viewers_on_one_encoder() {
    let desk = start(2, "max_clients = 4");
    let win = TestWindow::open(&desk.display, 0, 0, W, H, "viewers");
    win.fill(0x336699, 0, 0, W, H);

    assert_eq!(connect(desk.port, None, None).await.err(), Some(401));
    assert_eq!(
        connect(desk.port, Some(TOKEN), Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    let (status, body) = http_get(desk.port, "/api/session", Some(VIEW)).expect("session");
    assert_eq!(status, 200, "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(session["access"], "view");
    assert_eq!(session["transports"]["ws"]["enabled"], true);
    assert_eq!(session["transports"]["webrtc"]["configured"], false);

    // Three viewers (the view share of 4 is 3), all reading.
    let mut viewers = Vec::new();
    for token in [VIEW, VIEW, VIEW] {
        let mut ws = connect(desk.port, Some(token), None)
            .await
            .expect("upgrade");
        hello(&mut ws).await;
        viewers.push(ws);
    }
    assert_eq!(
        connect(desk.port, Some(VIEW), None).await.err(),
        Some(503),
        "view-only clients at their share"
    );
    let mut fourth = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("a control client takes the reserve");
    hello(&mut fourth).await;
    assert_eq!(
        connect(desk.port, Some(TOKEN), None).await.err(),
        Some(503),
        "max_clients"
    );
    drop(fourth);

    // Drain until quiet, then count: every encoded frame reaches each viewer once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for ws in viewers.iter_mut() {
        while next(ws, Duration::from_millis(300)).await.is_some() {}
    }
    let enc0 = metric(desk.port, "deskd_stream_encode_seconds_count");
    let sent0 = metric(
        desk.port,
        "deskd_stream_frames_sent_total{transport=\"ws\"}",
    );
    for i in 0..5u32 {
        win.fill(0x202020 * (i + 1), 20 * i as i16, 20, 16, 16);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for ws in viewers.iter_mut() {
            while next(ws, Duration::from_millis(50)).await.is_some() {}
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for ws in viewers.iter_mut() {
        while next(ws, Duration::from_millis(300)).await.is_some() {}
    }
    let encoded = metric(desk.port, "deskd_stream_encode_seconds_count") - enc0;
    let sent = metric(
        desk.port,
        "deskd_stream_frames_sent_total{transport=\"ws\"}",
    ) - sent0;
    assert!(encoded >= 5, "each change was encoded ({encoded})");
    assert_eq!(
        sent,
        3 * encoded,
        "one encode per frame, sent to each of the 3 viewers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_costs_bounded_memory() {
    let desk = start(3, "");
    let (stop, painter) = busy_screen(&desk.display);
    let mut reader = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("upgrade");
    hello(&mut reader).await;
    let mut stalled = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("upgrade");
    hello(&mut stalled).await;
    // Warm up with both reading, then the second one stops.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(2) {
        let _ = next(&mut reader, Duration::from_millis(50)).await;
        let _ = next(&mut stalled, Duration::from_millis(10)).await;
    }
    let before = rss_kib(desk.deskd.pid());
    let t = Instant::now();
    let mut frames = 0;
    while t.elapsed() < Duration::from_secs(14) {
        if next_video(&mut reader, Duration::from_millis(500))
            .await
            .is_some()
        {
            frames += 1;
        }
    }
    let after = rss_kib(desk.deskd.pid());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = painter.join();
    eprintln!("deskd RSS {before} KiB -> {after} KiB; the reading viewer got {frames} frames");
    assert!(
        frames > 50,
        "the reading viewer kept getting frames ({frames})"
    );
    assert!(
        after < before + 32 * 1024,
        "deskd grew from {before} KiB to {after} KiB with a viewer not reading"
    );
    // The stalled viewer is cut off once a send has waited 10 s (after the kernel's socket
    // buffers filled up): counted as slow_client, and its stream ends.
    let (stop, painter) = busy_screen(&desk.display);
    drop(reader);
    let cut = wait_until(Duration::from_secs(60), || {
        metric(desk.port, "deskd_refusals_total{reason=\"slow_client\"}") >= 1
    });
    let at_cut = rss_kib(desk.deskd.pid());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = painter.join();
    assert!(cut, "the stalled viewer was cut off within 60 s");
    eprintln!("deskd RSS when the stalled viewer was cut off: {at_cut} KiB");
    assert!(
        metric(desk.port, "deskd_stream_frames_dropped_total") > 0,
        "frames were dropped for the stalled viewer before it was cut off"
    );
    assert!(
        at_cut < before + 32 * 1024,
        "deskd grew from {before} KiB to {at_cut} KiB with a viewer not reading"
    );
    let mut ended = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match next(&mut stalled, Duration::from_secs(2)).await {
            Some(Message::Close(Some(c))) => {
                assert_eq!(u16::from(c.code), 4408, "close code");
                ended = true;
                break;
            }
            Some(_) => {}
            None => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the stalled viewer's stream ends");
}

/// The header of a `0x11` tile or `0x12` fill of `kind`: (seq, x, y, width, height).
fn ahead_header(m: &Message, kind: u8, min_len: usize) -> Option<(&[u8], [u32; 5])> {
    let Message::Binary(b) = m else { return None };
    if b.first() != Some(&kind) || b.len() < min_len {
        return None;
    }
    let u16_at = |i: usize| u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
    Some((
        &b[13..],
        [
            u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            u16_at(5),
            u16_at(7),
            u16_at(9),
            u16_at(11),
        ],
    ))
}

/// A `0x11` tile: (seq, x, y, width, height, RGBA).
fn tile(m: &Message) -> Option<(u32, u16, u16, u16, u16, Vec<u8>)> {
    let (rest, [seq, x, y, w, h]) = ahead_header(m, 0x11, 13)?;
    Some((seq, x as u16, y as u16, w as u16, h as u16, rest.to_vec()))
}

/// A `0x12` fill: (seq, x, y, width, height, [r, g, b]).
fn fill(m: &Message) -> Option<(u32, u16, u16, u16, u16, [u8; 3])> {
    let (rest, [seq, x, y, w, h]) = ahead_header(m, 0x12, 16)?;
    let rgb = rest.try_into().ok()?;
    Some((seq, x as u16, y as u16, w as u16, h as u16, rgb))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_changes_go_out_as_tiles_ahead_of_their_frame() {
    let desk = start(4, "");
    let win = TestWindow::open(&desk.display, 0, 0, W, H, "tiles");
    win.fill(0x000000, 0, 0, W, H);
    let mut ws = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("upgrade");
    let (_, key) = hello(&mut ws).await;
    let mut decoder = Decoder::new().expect("decoder");
    decode(&mut decoder, &key);
    while let Some(v) = next_video(&mut ws, Duration::from_millis(500)).await {
        decode(&mut decoder, &v);
    }

    // A character-sized change of two colours: its pixels first, then the frame that
    // carries it.
    win.put_stripes(0x20c0ff, 0x102030, 100, 60, 16, 16);
    let mut got_tile = None;
    let frame = loop {
        let m = next(&mut ws, Duration::from_secs(2))
            .await
            .expect("messages after a small change");
        if let Some(t) = tile(&m) {
            got_tile.get_or_insert(t);
        } else if let Some(v) = video(&m) {
            break v;
        }
    };
    let (seq, x, y, w, h, rgba) = got_tile.expect("a tile before the frame");
    assert_eq!(seq, frame.seq, "the tile names the frame that carries it");
    assert!(
        x <= 100
            && y <= 60
            && x + w >= 116
            && y + h >= 76
            && usize::from(w) * usize::from(h) <= 128 * 128,
        "the tile covers the change: {w}x{h} at {x},{y}"
    );
    assert_eq!(rgba.len(), usize::from(w) * usize::from(h) * 4);
    let i = ((usize::from(70 - y) * usize::from(w)) + usize::from(104 - x)) * 4;
    assert_eq!(
        &rgba[i..i + 4],
        &[0x20, 0xc0, 0xff, 255],
        "exact pixels, RGBA"
    );
    let i = ((usize::from(70 - y) * usize::from(w)) + usize::from(112 - x)) * 4;
    assert_eq!(&rgba[i..i + 4], &[0x10, 0x20, 0x30, 255], "both stripes");
    let pic = decode(&mut decoder, &frame);
    assert!(
        near(pic.at(104, 70), [0x20, 0xc0, 0xff]),
        "the frame has it too"
    );
    assert!(metric(desk.port, "deskd_stream_tiles_sent_total") >= 1);
    while let Some(v) = next_video(&mut ws, Duration::from_millis(500)).await {
        decode(&mut decoder, &v);
    }

    // A large change of one colour goes as a fill first, however large.
    win.fill(0xffffff, 0, 0, W, H);
    let mut got_fill = None;
    let frame = loop {
        let m = next(&mut ws, Duration::from_secs(2))
            .await
            .expect("messages after a full-screen fill");
        assert!(tile(&m).is_none(), "no pixels for a box of one colour");
        if let Some(f) = fill(&m) {
            got_fill.get_or_insert(f);
        } else if let Some(v) = video(&m) {
            break v;
        }
    };
    let (seq, x, y, w, h, rgb) = got_fill.expect("a fill before the frame");
    assert_eq!(seq, frame.seq, "the fill names the frame that carries it");
    assert_eq!((x, y, w, h), (0, 0, W, H), "the whole window");
    assert_eq!(rgb, [255, 255, 255]);
    let pic = decode(&mut decoder, &frame);
    assert!(near(pic.at(320, 240), [255, 255, 255]));
    while let Some(v) = next_video(&mut ws, Duration::from_millis(500)).await {
        decode(&mut decoder, &v);
    }

    // A large change of many colours goes by video only.
    win.put_stripes(0xff0000, 0x0000ff, 0, 0, 300, 200);
    let frame = loop {
        let m = next(&mut ws, Duration::from_secs(2))
            .await
            .expect("messages after a large change");
        assert!(
            tile(&m).is_none() && fill(&m).is_none(),
            "nothing ahead of the video for a large change of many colours"
        );
        if let Some(v) = video(&m) {
            break v;
        }
    };
    let pic = decode(&mut decoder, &frame);
    assert!(near(pic.at(3, 100), [255, 0, 0]), "{:?}", pic.at(3, 100));
    assert!(near(pic.at(12, 100), [0, 0, 255]), "{:?}", pic.at(12, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_resize_and_clipboard() {
    let desk = start(5, "");
    let win = TestWindow::open(&desk.display, 0, 0, W, H, "resize");
    win.fill(0x00ff00, 0, 0, W, H);
    let mut ws = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("upgrade");
    hello(&mut ws).await;

    // RandR shrinks the screen (Xvfb applies --fb and then reports an error about the output:
    // the exit status says nothing).
    let _ = std::process::Command::new("xrandr")
        .args(["--display", &desk.display, "--fb", "512x384"])
        .stderr(std::process::Stdio::null())
        .status();
    let resize = loop {
        match next(&mut ws, Duration::from_secs(5)).await {
            Some(Message::Text(t)) => {
                break serde_json::from_str::<serde_json::Value>(t.as_str()).expect("json")
            }
            Some(_) => {}
            None => panic!(
                "no resize message after the screen changed size; deskd:\n{}",
                desk.deskd.log_text()
            ),
        }
    };
    assert_eq!(resize["type"], "resize", "{resize}");
    assert_eq!(
        (resize["width"].as_u64(), resize["height"].as_u64()),
        (Some(512), Some(384))
    );
    let key = next_video(&mut ws, Duration::from_secs(5))
        .await
        .expect("a frame at the new size");
    assert!(key.key, "the first frame at a new size is a key frame");
    assert_eq!((key.width, key.height), (512, 384));
    let mut decoder = Decoder::new().expect("decoder");
    assert_eq!(decode(&mut decoder, &key).width, 512);
    // The window lost its pixels with the resize (no backing store): drawn again, they come.
    win.fill(0x0000ff, 0, 0, W, H);
    let mut seen = None;
    while let Some(v) = next_video(&mut ws, Duration::from_secs(2)).await {
        let pic = decode(&mut decoder, &v);
        seen = Some(pic.at(100, 100));
        if near(pic.at(100, 100), [0, 0, 255]) {
            break;
        }
    }
    assert!(
        seen.is_some_and(|c| near(c, [0, 0, 255])),
        "the redrawn window at the new size, got {seen:?}"
    );

    // The clipboard message sets the desktop's CLIPBOARD.
    let text = "deskd clipboard ✓ 42";
    ws.send(Message::Text(
        serde_json::json!({"type": "clipboard", "text": text})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    let read = || {
        std::process::Command::new("xclip")
            .args(["-selection", "clipboard", "-o", "-display", &desk.display])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let mut got = None;
    for _ in 0..50 {
        got = read();
        if got.as_deref() == Some(text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.as_deref(), Some(text), "xclip reads the CLIPBOARD");
}

/// Nothing that paints the picture (video, image, copy, tile, fill) comes within `quiet`.
async fn assert_no_picture(ws: &mut Ws, quiet: Duration, what: &str) {
    let deadline = Instant::now() + quiet;
    while let Some(m) = next(ws, deadline.saturating_duration_since(Instant::now())).await {
        if let Message::Binary(b) = &m {
            assert!(
                !matches!(b.first(), Some(0x10..=0x14)),
                "{what}: got message 0x{:02x}",
                b[0]
            );
        }
    }
}

/// A `0x13` image: (flags, seq, x, y, width, height, decoded RGB).
struct Image {
    flags: u8,
    x: u16,
    y: u16,
    width: u16,
    height: u16,
    pic: Picture,
}

fn image(m: &Message) -> Option<Image> {
    let Message::Binary(b) = m else { return None };
    if b.first() != Some(&0x13) || b.len() <= 22 {
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let (width, height) = (u16_at(18), u16_at(20));
    let rgb = if b[1] & 4 != 0 {
        let mut reader = png::Decoder::new(std::io::Cursor::new(&b[22..]))
            .read_info()
            .expect("the image is a PNG");
        let mut idx = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut idx).expect("PNG decodes");
        assert_eq!((info.width, info.height), (width.into(), height.into()));
        let palette = reader.info().palette.as_ref().expect("indexed").to_vec();
        let mut rgb = Vec::with_capacity(idx.len() * 3);
        for row in idx.chunks(info.line_size).take(usize::from(height)) {
            for &i in &row[..usize::from(width)] {
                rgb.extend_from_slice(&palette[usize::from(i) * 3..usize::from(i) * 3 + 3]);
            }
        }
        rgb
    } else {
        let mut dec = jpeg_decoder::Decoder::new(&b[22..]);
        let rgb = dec.decode().expect("the image is a JPEG");
        let info = dec.info().expect("JPEG info");
        assert_eq!(
            (info.width, info.height),
            (width, height),
            "the JPEG is the box's size"
        );
        rgb
    };
    Some(Image {
        flags: b[1],
        x: u16_at(14),
        y: u16_at(16),
        width,
        height,
        pic: Picture {
            rgb,
            width: usize::from(width),
        },
    })
}

async fn next_image(ws: &mut Ws, within: Duration) -> Option<Image> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = next(ws, left).await?;
        assert!(video(&m).is_none(), "no H.264 for a JPEG viewer");
        if let Some(i) = image(&m) {
            return Some(i);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_without_webcodecs_gets_jpeg_images_of_what_changed() {
    let desk = start(6, "");
    let win = TestWindow::open(&desk.display, 0, 0, W, H, "jpeg");
    win.fill(0x00ff00, 0, 0, W, H);
    assert_eq!(
        connect_to(desk.port, "/stream/ws?codec=vp9", Some(TOKEN), None)
            .await
            .err(),
        Some(400),
        "an unknown codec is refused"
    );
    let (status, body) =
        http_get(desk.port, "/stream/ws?codec=vp9", Some(TOKEN)).expect("plain GET");
    assert_eq!(status, 400);
    assert!(
        body.contains("unknown codec") && body.contains("vp9"),
        "{body}"
    );

    let mut ws = connect_to(desk.port, "/stream/ws?codec=jpeg", Some(TOKEN), None)
        .await
        .expect("upgrade");
    let Some(Message::Text(t)) = next(&mut ws, Duration::from_secs(5)).await else {
        panic!("first message must be the hello text")
    };
    let hello: serde_json::Value = serde_json::from_str(t.as_str()).expect("hello JSON");
    assert_eq!(hello["codec"], "jpeg", "{hello}");
    // The whole screen first.
    let first = next_image(&mut ws, Duration::from_secs(5))
        .await
        .expect("a first image");
    assert_eq!(
        first.flags & 3,
        3,
        "a whole picture, the update's last image"
    );
    assert_eq!((first.x, first.y, first.width, first.height), (0, 0, W, H));
    assert!(
        near(first.pic.at(320, 240), [0, 255, 0]),
        "{:?}",
        first.pic.at(320, 240)
    );
    assert_eq!(first.flags & 4, 4, "two colours: PNG, exact");
    assert_eq!(first.pic.at(320, 240), [0, 255, 0]);
    // Exact: no refinement follows; nothing for a static screen.
    assert_no_picture(&mut ws, Duration::from_millis(600), "static: nothing").await;

    // A large change of two colours: a PNG of that box only, exact.
    win.put_stripes(0xff0000, 0x0000ff, 40, 30, 300, 200);
    let part = next_image(&mut ws, Duration::from_secs(2))
        .await
        .expect("an image of the change");
    assert_eq!(part.flags & 1, 0, "part of the screen");
    assert_eq!(part.flags & 4, 4, "few colours: PNG");
    assert!(
        part.x <= 40 && part.y <= 30 && part.x + part.width >= 340 && part.y + part.height >= 230,
        "covers the change: {}x{} at {},{}",
        part.width,
        part.height,
        part.x,
        part.y
    );
    assert!(u32::from(part.width) * u32::from(part.height) < u32::from(W) * u32::from(H) / 2);
    let at = |x: u16, y: u16| {
        part.pic
            .at(usize::from(x - part.x), usize::from(y - part.y))
    };
    assert_eq!(at(43, 100), [255, 0, 0], "exact");
    assert_eq!(at(52, 100), [0, 0, 255], "exact");
    // Many colours (a photo, a gradient): JPEG.
    while next(&mut ws, Duration::from_millis(400)).await.is_some() {}
    win.put_image(360, 20, 256, 128, |col, row| {
        (u32::from(col) << 16) | (u32::from(row * 2) << 8) | 0x40
    });
    let photo = next_image(&mut ws, Duration::from_secs(2))
        .await
        .expect("an image of the gradient");
    assert_eq!(photo.flags & 4, 0, "many colours: JPEG");
    let at = |x: u16, y: u16| {
        photo
            .pic
            .at(usize::from(x - photo.x), usize::from(y - photo.y))
    };
    assert!(
        near(at(360 + 200, 20 + 50), [200, 100, 0x40]),
        "{:?}",
        at(560, 70)
    );
    // Settled: the JPEG once more, finer (4:4:4), over the same box.
    let fine = next_image(&mut ws, Duration::from_secs(2))
        .await
        .expect("the refinement");
    assert_eq!(fine.flags & 4, 0);
    assert!(fine.x <= photo.x && fine.width >= photo.width && fine.height >= photo.height);
    // A box of one colour comes as a fill, and needs no image.
    while next(&mut ws, Duration::from_millis(400)).await.is_some() {}
    win.fill(0xffffff, 400, 300, 200, 150);
    let m = next(&mut ws, Duration::from_secs(2)).await.expect("a fill");
    assert_eq!(
        fill(&m).map(|f| (f.1, f.2, f.3, f.4, f.5)),
        Some((400, 300, 200, 150, [255, 255, 255]))
    );
    assert_no_picture(
        &mut ws,
        Duration::from_millis(400),
        "nothing after the fill: the image viewer has it",
    )
    .await;
    assert!(metric(desk.port, "deskd_stream_images_encoded_total") >= 3);
    assert_eq!(
        metric(desk.port, "deskd_stream_frames_encoded_total{kind=\"key\"}"),
        0,
        "no H.264 while only image viewers watch"
    );

    // Text that scrolls: the rows the viewer has are copied, only the new ones go as an
    // image. Rows of distinct colours over the box, then moved up by 16 and a new band.
    let row_colour = |row: u16| 0x010101 * u32::from(row % 200) + 0x300000;
    win.put_image(0, 0, 320, 200, |_, row| row_colour(row));
    while next(&mut ws, Duration::from_millis(400)).await.is_some() {}
    win.scroll_up(0, 0, 320, 200, 16);
    win.fill(0x00ffff, 0, 184, 320, 16);
    let mut copy = None;
    let mut images = Vec::new();
    while let Some(m) = next(&mut ws, Duration::from_millis(400)).await {
        if let Message::Binary(b) = &m {
            if b.first() == Some(&0x14) {
                let u = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
                copy.get_or_insert((u(6), u(8), u(10), u(12), u(14), u(16)));
            }
        }
        if let Some(i) = image(&m) {
            images.push((i.x, i.y, i.width, i.height));
        }
    }
    let (sx, sy, cw, ch, dx, dy) = copy.expect("a copy for the rows that scrolled");
    assert_eq!((sx, dx), (0, 0));
    assert_eq!(sy, dy + 16, "moved up by 16 rows");
    assert!(
        dy == 0 && ch >= 150 && cw >= 300,
        "most of the box: {cw}x{ch} from {sy} to {dy}"
    );
    assert!(
        images
            .iter()
            .all(|&(_, y, _, h)| y >= dy + ch || y + h <= dy || h < 40),
        "images only for rows the copy does not fill: {images:?}"
    );

    // A key frame request gets the whole screen again.
    ws.send(Message::Text(r#"{"type":"keyframe"}"#.into()))
        .await
        .expect("send");
    let again = next_image(&mut ws, Duration::from_secs(2))
        .await
        .expect("the whole screen on request");
    assert_eq!(again.flags & 1, 1);
    assert!(near(again.pic.at(500, 350), [255, 255, 255]));
    assert!(
        near(again.pic.at(100, 190), [0, 255, 255]),
        "{:?}",
        again.pic.at(100, 190)
    );
}

/// The next `clipboard` text message within `within`, skipping everything else.
async fn next_clipboard(ws: &mut Ws, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while let Some(m) = next(ws, deadline.saturating_duration_since(Instant::now())).await {
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] == "clipboard" {
                return v["text"].as_str().map(str::to_string);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktops_clipboard_is_told_to_control_viewers_only() {
    use std::io::Write as _;
    let desk = start(7, "");
    let mut control = connect(desk.port, Some(TOKEN), None)
        .await
        .expect("upgrade");
    hello(&mut control).await;
    let mut view = connect(desk.port, Some(VIEW), None).await.expect("upgrade");
    hello(&mut view).await;

    // A desktop program copies text (xclip owns CLIPBOARD until it has served it once).
    let text = "copied on the desktop ✓ 7";
    let mut xclip = std::process::Command::new("xclip")
        .args(["-selection", "clipboard", "-i", "-loops", "2"])
        .args(["-display", &desk.display])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("xclip");
    xclip
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    assert_eq!(
        next_clipboard(&mut control, Duration::from_secs(5))
            .await
            .as_deref(),
        Some(text),
        "the control viewer is told the desktop's clipboard"
    );
    assert_eq!(
        next_clipboard(&mut view, Duration::from_secs(1)).await,
        None,
        "a view-only viewer is not"
    );
    let _ = xclip.kill();
    let _ = xclip.wait();
}
