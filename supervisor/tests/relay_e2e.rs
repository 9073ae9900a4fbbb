//! End to end through the real `deskd run` binary: Xvfb as `display`, and as `neko` a fake
//! program (this test binary re-run as the neko stand-in through a small wrapper script).
//! Checks that deskd starts neko with the explicit flags and a scrubbed environment, serves
//! `/readyz` and the relay with its token, and closes relays with 4503 when neko is killed
//! and restarted.

#[path = "common/deskd_proc.rs"]
mod deskd_proc;
#[path = "support/deskd_run.rs"]
mod deskd_run;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/neko_standin.rs"]
mod neko_standin;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use deskd_run::{free_display, free_port, wait_ready, DeskdRun};
use harness::{bearer, expect_close, http_request, next_text};
use hyper::http::{Method, StatusCode};

const TOKEN: &str = "e2e-control-token";

/// Entry point of the fake neko: run by the wrapper script, never by a plain `cargo test`.
#[test]
#[ignore = "entry point of the fake neko program used by the e2e test"]
fn fake_neko() {
    deskd_run::fake_neko_main();
}

async fn connect(addr: SocketAddr) -> harness::Client {
    deskd_run::connect_relay(addr, TOKEN).await
}

/// neko's (pid, generation) once it is ready with a generation above `above`.
async fn neko_ready_after(addr: SocketAddr, above: u64) -> (i32, u64) {
    neko_ready_after_with(addr, above, TOKEN).await
}

async fn neko_ready_after_with(addr: SocketAddr, above: u64, token: &str) -> (i32, u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, _, body) =
            http_request(addr, Method::GET, "/api/services", &[bearer(token)], None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let neko = v["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "neko"))
            .cloned()
            .expect("neko in /api/services");
        let generation = neko["generation"].as_u64().unwrap_or(0);
        if neko["state"] == "ready" && generation > above {
            if let Some(pid) = neko["pid"].as_i64() {
                return (pid as i32, generation);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "neko not ready above generation {above}: {neko}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether Xvfb can be run; says why the test skips when it cannot.
fn xvfb_available() -> bool {
    let found = Command::new("Xvfb")
        .arg("-help")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        println!("skipping: Xvfb not installed");
    }
    found
}

/// SIGKILL to the neko process deskd supervises.
fn kill_neko(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill neko");
}

/// `deskd run` with Xvfb and the fake neko, from a fresh config in `dir`. Inherited
/// `NEKO_LEGACY` and `NEKO_MEMBER_PROVIDER` must not reach neko.
fn start_deskd(dir: &Path, token: Option<&str>, stderr: Stdio) -> (DeskdRun, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let wrapper = deskd_run::write_fake_neko(dir, Duration::from_secs(1));
    let http_port = free_port();
    let config = deskd_run::write_config(
        dir,
        free_display(400),
        "640x480",
        http_port,
        &wrapper,
        "nat1to1 = [\"127.0.0.1\"]\n",
    );
    let mut cmd = deskd_run::run_command(&config, dir);
    cmd.env_remove("DESKD_TOKEN")
        .env_remove("DESKD_VIEW_TOKEN")
        .env("NEKO_LEGACY", "true")
        .env("NEKO_MEMBER_PROVIDER", "multiuser")
        .stderr(stderr);
    if let Some(t) = token {
        cmd.env("DESKD_TOKEN", t);
    } else {
        cmd.env("DESKD_LOG", "debug");
    }
    let deskd = DeskdRun::spawn(&mut cmd, dir);
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    (deskd, addr)
}

#[tokio::test]
async fn generated_token_is_printed_once_and_secrets_stay_out_of_logs() {
    if !xvfb_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("deskd-relay-e2e-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Outside `dir`, which is removed when deskd is stopped.
    let log_path = dir.with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (deskd, addr) = start_deskd(&dir, None, Stdio::from(log));
    assert!(
        wait_ready(addr, Duration::from_secs(60)).await,
        "deskd never became ready"
    );

    let text = std::fs::read_to_string(&log_path).unwrap();
    let url_prefix = format!("http://127.0.0.1:{}/?token=", addr.port());
    let token: String = text
        .split(&url_prefix)
        .nth(1)
        .expect("the login URL on stderr")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    assert_eq!(token.len(), 64, "{text}");
    // The printed token works: as Bearer, and through the browser flow.
    let (s, _, _) = http_request(addr, Method::GET, "/api/services", &[bearer(&token)], None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = http_request(addr, Method::GET, &format!("/?token={token}"), &[], None).await;
    assert_eq!(s, StatusCode::SEE_OTHER);

    // Debug logs of a relay's whole life, including a neko kill (logout fallback path).
    let mut c = deskd_run::connect_relay(addr, &token).await;
    assert!(next_text(&mut c).await.contains("system/init"));
    let (pid, generation) = neko_ready_after_with(addr, 0, &token).await;
    kill_neko(pid);
    assert_eq!(expect_close(&mut c).await.0, 4503);
    neko_ready_after_with(addr, generation, &token).await;
    let api_token = std::fs::read_to_string(dir.join("apitoken")).unwrap();
    assert_eq!(api_token.len(), 64);
    drop(deskd); // SIGTERM and wait: the whole log is written

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("relay opened"), "relay log expected:\n{text}");
    assert!(text.contains("DEBUG"), "debug level expected:\n{text}");
    assert_eq!(
        text.matches(&token).count(),
        1,
        "the access token may be printed only once:\n{text}"
    );
    assert!(
        !text.contains(&api_token),
        "neko's API token leaked into the log"
    );
}

#[tokio::test]
async fn deskd_run_starts_neko_and_relays_through_it() {
    if !xvfb_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("deskd-relay-e2e-{}", std::process::id()));
    let (deskd, addr) = start_deskd(&dir, Some(TOKEN), Stdio::inherit());
    assert!(
        wait_ready(addr, Duration::from_secs(60)).await,
        "deskd never became ready"
    );

    // neko got explicit flags and a scrubbed environment, the token only via env.
    let argv = std::fs::read_to_string(dir.join("argv")).unwrap();
    for flag in [
        "serve",
        "--legacy=false",
        "--member.provider=noauth",
        "--session.cookie.enabled=false",
        "--session.implicit_hosting=true",
        "--desktop.input.enabled=false",
        "--desktop.screen=640x480@30",
        "--webrtc.nat1to1=127.0.0.1",
    ] {
        assert!(argv.lines().any(|l| l == flag), "missing {flag} in\n{argv}");
    }
    assert!(!argv.contains(TOKEN));
    let env_names = std::fs::read_to_string(dir.join("envnames")).unwrap();
    let mut names: Vec<&str> = env_names.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "NEKO_SESSION_API_TOKEN",
            "NEKO_WEBRTC_ICESERVERS_BACKEND",
            "NEKO_WEBRTC_ICESERVERS_FRONTEND"
        ],
        "inherited NEKO_ vars must be scrubbed; only deskd's own may reach neko"
    );

    // The relay works through deskd, with its token.
    let (s, _, _) = http_request(addr, Method::GET, "/api/services", &[], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut c = connect(addr).await;
    assert!(next_text(&mut c).await.contains("system/init"));

    // Kill neko: the relay closes with 4503, deskd restarts neko, a new relay works.
    let (pid, generation) = neko_ready_after(addr, 0).await;
    kill_neko(pid);
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!(code, 4503, "{reason}");
    // Either path gives 4503: the TCP drop seen first, or the supervisor's new state.
    neko_ready_after(addr, generation).await;
    let mut c = connect(addr).await;
    assert!(next_text(&mut c).await.contains("system/init"));
    drop(c);
    drop(deskd);
}

// ---------------------------------------------------------------------------------------
// neko's video from deskd's encoder (`[neko] video = "deskd"`, the default): the feed port
// given in neko's pipeline, read here as neko's `tcpclientsrc` would, and by real GStreamer.

/// The feed's address from the whole pipeline deskd gave neko.
fn feed_addr(argv: &str) -> (SocketAddr, String) {
    let json = argv
        .lines()
        .find_map(|l| l.strip_prefix("--capture.video.pipelines="))
        .expect("--capture.video.pipelines in neko's argv");
    let v: serde_json::Value = serde_json::from_str(json).expect("pipelines JSON");
    let pipeline = v["main"]["gst_pipeline"]
        .as_str()
        .expect("a whole pipeline")
        .to_string();
    let re = regex::Regex::new(r"^tcpclientsrc host=(127\.0\.0\.1) port=(\d+) ").expect("re");
    let c = re
        .captures(&pipeline)
        .unwrap_or_else(|| panic!("not the feed's pipeline: {pipeline}"));
    let addr = format!("{}:{}", &c[1], &c[2]).parse().expect("address");
    (addr, pipeline)
}

/// One access unit as it came, classified by its NAL units.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    Key(Vec<u8>),
    Delta(Vec<u8>),
    /// A non-reference P slice of the whole picture, skipped: "nothing changed".
    Repeat(Vec<u8>),
    /// A repeat with some macroblocks as raw samples: a small change ahead of its frame.
    Patch(Vec<u8>),
}

impl Unit {
    fn data(&self) -> &[u8] {
        match self {
            Unit::Key(d) | Unit::Delta(d) | Unit::Repeat(d) | Unit::Patch(d) => d,
        }
    }
}

const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];
const FILLER: [u8; 8] = [0, 0, 0, 1, 0x0c, 0xff, 0xff, 0x80];

/// A feed connection, read as neko's pipeline would.
struct FeedConn {
    conn: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl FeedConn {
    async fn open(addr: SocketAddr) -> FeedConn {
        let conn = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the neko feed");
        FeedConn {
            conn,
            buf: Vec::new(),
        }
    }

    /// The next whole access unit, within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Unit> {
        use tokio::io::AsyncReadExt as _;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let auds: Vec<usize> = self
                .buf
                .windows(AUD.len())
                .enumerate()
                .filter(|(_, w)| *w == AUD)
                .map(|(i, _)| i)
                .take(2)
                .collect();
            if let [a, b] = auds[..] {
                let body = &self.buf[a + AUD.len()..b];
                assert!(
                    body.starts_with(&FILLER),
                    "a delimiter is followed by the filler: {:02x?}",
                    &body[..body.len().min(12)]
                );
                let au = body[FILLER.len()..].to_vec();
                self.buf.drain(..b);
                return Some(classify(au));
            }
            let mut chunk = [0u8; 65536];
            let n = tokio::time::timeout_at(deadline, self.conn.read(&mut chunk))
                .await
                .ok()?
                .expect("read the feed");
            assert!(n > 0, "deskd closed the feed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The `pic_struct` of a unit's picture timing SEI (0: lasts half a period, 7: a whole one,
/// see neko_feed::timing), if it has one.
fn pic_struct(au: &[u8]) -> Option<u8> {
    au.windows(7)
        .find(|w| w[..6] == [0, 0, 1, 0x06, 0x01, 0x01])
        .map(|w| w[6] >> 4)
}

fn classify(au: Vec<u8>) -> Unit {
    // Every start code ends in 00 00 01 (a four-byte one has one more zero before). The
    // picture timing SEI before the first slice is not part of the picture.
    let headers: Vec<u8> = au
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .filter_map(|(i, _)| au.get(i + 3).copied())
        .filter(|h| h & 0x1f != 6)
        .collect();
    if headers.iter().any(|h| h & 0x1f == 5) {
        Unit::Key(au)
    } else if headers == [0x01] && au.len() < 64 {
        Unit::Repeat(au)
    } else if headers == [0x01] {
        Unit::Patch(au)
    } else {
        assert!(
            headers.iter().all(|h| h & 0x1f == 1 && h & 0x60 != 0),
            "an encoder frame is reference P slices: {headers:02x?}"
        );
        Unit::Delta(au)
    }
}

/// Decodes each unit in order; the last picture as RGBA and its width.
fn decode(dec: &mut openh264::decoder::Decoder, units: &[Unit]) -> (Vec<u8>, usize) {
    use openh264::formats::YUVSource as _;
    let mut last = (Vec::new(), 0);
    for (i, u) in units.iter().enumerate() {
        let yuv = dec
            .decode(u.data())
            .unwrap_or_else(|e| panic!("unit {i} ({:?}) does not decode: {e}", kind(u)))
            .unwrap_or_else(|| panic!("unit {i} gave no picture"));
        let (w, h) = yuv.dimensions();
        let mut rgba = vec![0; w * h * 4];
        yuv.write_rgba8(&mut rgba);
        last = (rgba, w);
    }
    last
}

/// Paints the root window `rgb` (what `xsetroot -solid` does, without needing it on PATH).
fn paint_root(display: &str, rgb: u32) {
    paint_root_box(display, rgb, 0, 0, 0, 0);
}

/// Paints box (x, y, w, h) of the root window `rgb` (0 for w or h: to the edge).
fn paint_root_box(display: &str, rgb: u32, x: i16, y: i16, w: u16, h: u16) {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _};
    let (c, screen) = x11rb::connect(Some(display)).expect("connect to the X display");
    let root = c.setup().roots[screen].root;
    c.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().background_pixel(rgb),
    )
    .expect("set the root background");
    c.clear_area(false, root, x, y, w, h)
        .expect("clear the root");
    c.get_input_focus()
        .expect("round trip")
        .reply()
        .expect("X answered");
}

fn kind(u: &Unit) -> &'static str {
    match u {
        Unit::Key(_) => "key",
        Unit::Delta(_) => "delta",
        Unit::Repeat(_) => "repeat",
        Unit::Patch(_) => "patch",
    }
}

#[tokio::test]
async fn neko_is_fed_deskd_frames_one_per_period_with_key_frames_when_video_turns_on() {
    if !xvfb_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("deskd-feed-e2e-{}", std::process::id()));
    let (_deskd, addr) = start_deskd(&dir, Some(TOKEN), Stdio::inherit());
    assert!(
        wait_ready(addr, Duration::from_secs(60)).await,
        "deskd never became ready"
    );
    let argv = std::fs::read_to_string(dir.join("argv")).expect("argv");
    assert!(argv.lines().any(|l| l == "--capture.video.codec=h264"));
    let (feed, pipeline) = feed_addr(&argv);
    let display = argv
        .lines()
        .find_map(|l| l.strip_prefix("--desktop.display="))
        .expect("display")
        .to_string();

    // The first unit is a key frame; then, the screen being still, repeats at the frame
    // rate ([stream] max_fps = 60) and nothing else.
    let mut conn = FeedConn::open(feed).await;
    let first = conn
        .next(Duration::from_secs(10))
        .await
        .expect("a first unit");
    assert!(
        matches!(first, Unit::Key(_)),
        "first unit: {}",
        kind(&first)
    );
    let mut units = vec![first];
    let settle = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < settle {
        units.push(conn.next(Duration::from_secs(2)).await.expect("a unit"));
    }
    let started = std::time::Instant::now();
    let mut still = Vec::new();
    while started.elapsed() < Duration::from_secs(2) {
        still.push(conn.next(Duration::from_secs(2)).await.expect("a unit"));
    }
    let n = still.len();
    assert!(
        (60..=180).contains(&n),
        "{n} units in 2 s; one per 1/60 s is 120"
    );
    let repeats = still
        .iter()
        .filter(|u| matches!(u, Unit::Repeat(_)))
        .count();
    assert_eq!(repeats, n, "a still screen gives repeats only");
    assert!(still[0].data().len() < 48, "a repeat is tiny");
    // The first frames may still change the picture (units of half a period for a second
    // after them): the last second of the still screen is what counts.
    let last_second = &still[still.len().saturating_sub(60)..];
    assert!(
        last_second.iter().all(|u| pic_struct(u.data()) == Some(7)),
        "on a still screen each unit lasts a whole period: {:?}",
        still
            .iter()
            .map(|u| pic_struct(u.data()))
            .collect::<Vec<_>>()
    );
    units.extend(still);
    // neko draws no cursor: with the feed as the only viewer the pointer is never polled.
    assert_eq!(
        pointer_polls(addr).await,
        0,
        "pointer polls with the feed alone"
    );
    let mut dec = openh264::decoder::Decoder::new().expect("decoder");
    let (_, width) = decode(&mut dec, &units);
    assert_eq!(width, 640);

    // A change on the screen arrives as the encoder's frame, and decodes to it.
    paint_root(&display, 0xd02020);
    let mut after = Vec::new();
    let seen_change = loop {
        let u = conn.next(Duration::from_secs(5)).await.expect("a unit");
        let changed = matches!(u, Unit::Key(_) | Unit::Delta(_));
        after.push(u);
        if changed {
            break true;
        }
        assert!(
            after.len() < 600,
            "no frame for the change: {:?}",
            after
                .iter()
                .take(20)
                .map(|u| (kind(u), u.data().len(), pic_struct(u.data())))
                .collect::<Vec<_>>()
        );
    };
    assert!(seen_change);
    // From the change on, for a second, each unit lasts half a period: two per period.
    let changed_at = std::time::Instant::now();
    let mut busy = Vec::new();
    while changed_at.elapsed() < Duration::from_millis(500) {
        busy.push(conn.next(Duration::from_secs(2)).await.expect("a unit"));
    }
    assert_eq!(
        pic_struct(after.last().expect("the change").data()),
        Some(0),
        "the change's frame lasts half a period"
    );
    assert!(
        busy.iter().all(|u| pic_struct(u.data()) == Some(0)),
        "units after a change last half a period"
    );
    assert!(
        (40..=90).contains(&busy.len()),
        "{} units in 0.5 s after a change; one per 1/120 s is 60",
        busy.len()
    );
    after.extend(busy);
    let (rgba, w) = decode(&mut dec, &after);
    let i = (240 * w + 320) * 4;
    let px = &rgba[i..i + 3];
    assert!(
        px[0] > 170 && px[1] < 70 && px[2] < 70,
        "the decoded screen is red after the change: {px:?}"
    );

    // A small change comes at the next tick as a patch (its macroblocks' samples), ahead of
    // the encoder's frame, when that frame is not there yet. Two changes 2 ms apart: the
    // second waits for the frame-rate cap to be encoded, and its patch goes out meanwhile;
    // whether a tick falls in that gap depends on the clock, so up to 40 tries.
    let mut small = Vec::new();
    let mut patched = None;
    for round in 0..40u32 {
        let (first, second) = if round % 2 == 0 {
            (0x2020d0, 0x20d020)
        } else {
            (0xd0d020, 0x20d0d0)
        };
        paint_root_box(&display, first, 96, 96, 8, 8);
        tokio::time::sleep(Duration::from_millis(2)).await;
        paint_root_box(&display, second, 96, 96, 8, 8);
        let until = tokio::time::Instant::now() + Duration::from_millis(120);
        while tokio::time::Instant::now() < until {
            let u = conn.next(Duration::from_secs(2)).await.expect("a unit");
            let is_patch = matches!(u, Unit::Patch(_));
            small.push(u);
            if is_patch && patched.is_none() {
                patched = Some((small.len(), [first, second]));
            }
        }
        if patched.is_some() {
            break;
        }
    }
    let (n, colours) = patched.expect("a patch in 40 small changes");
    let patch_len = small[n - 1].data().len();
    assert!(patch_len < 48 * 400, "{patch_len} bytes");
    // Everything decodes in order; at the patch the box already shows a colour of its round
    // (the first, when the tick fell while the first change was being encoded).
    let (rgba, w) = decode(&mut dec, &small[..n]);
    let i = (100 * w + 100) * 4;
    let px = &rgba[i..i + 3];
    let rgb = |c: u32| [(c >> 16) as u8, (c >> 8) as u8, c as u8];
    assert!(
        colours
            .iter()
            .any(|&c| px.iter().zip(rgb(c)).all(|(&a, b)| a.abs_diff(b) < 24)),
        "the box at the patch is {px:?}, painted {:?} then {:?}",
        rgb(colours[0]),
        rgb(colours[1])
    );
    let _ = decode(&mut dec, &small[n..]);

    // neko telling a browser its video is on (the stand-in echoes signal/video as neko
    // does) brings a key frame at once and one more about a second later.
    let mut relay = connect(addr).await;
    use futures_util::SinkExt as _;
    relay
        .send(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"event":"signal/video","payload":{"disabled":false}}"#.into(),
        ))
        .await
        .expect("send signal/video");
    let asked = std::time::Instant::now();
    let mut keys = Vec::new();
    while keys.len() < 2 && asked.elapsed() < Duration::from_secs(4) {
        if let Some(Unit::Key(_)) = conn.next(Duration::from_secs(4)).await {
            keys.push(asked.elapsed());
        }
    }
    assert_eq!(keys.len(), 2, "two key frames after video on: {keys:?}");
    assert!(keys[0] < Duration::from_millis(700), "{keys:?}");
    assert!(keys[1] >= Duration::from_millis(800), "{keys:?}");

    // Real GStreamer, with neko's pipeline (its appsink swapped for a printing fakesink):
    // h264parse hands on units stamped with one frame period, or half of one for a second
    // after a frame that follows the key frame, the first a key frame.
    let launch = pipeline.replace(
        "appsink name=appsink sync=false",
        "fakesink silent=false sync=false",
    );
    let mut gst = Command::new("gst-launch-1.0")
        .arg("-v")
        .args(launch.split_whitespace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0 (gstreamer1.0-tools, from scripts/setup-deps)");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = gst.kill();
    let out = gst.wait_with_output().expect("gst-launch output");
    let text = String::from_utf8_lossy(&out.stdout);
    let chains: Vec<&str> = text.lines().filter(|l| l.contains("chain")).collect();
    assert!(
        chains.len() >= 20,
        "h264parse handed on {} units in 1.5 s:\n{text}\n{}",
        chains.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        chains
            .iter()
            .all(|l| l.contains("duration: 0:00:00.016666666")
                || l.contains("duration: 0:00:00.008333333")),
        "each unit lasts one period, or half of one after a change:\n{}",
        chains[..3].join("\n")
    );
    assert!(
        !chains[0].contains("delta-unit"),
        "the first is a key frame: {}",
        chains[0]
    );

    // Two connections are open (ours and the one GStreamer had may still be closing): a
    // third beyond MAX_CONNECTIONS is closed at once.
    let _second = FeedConn::open(feed).await;
    let mut third = FeedConn::open(feed).await;
    use tokio::io::AsyncReadExt as _;
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), third.conn.read(&mut b))
        .await
        .expect("the third connection is answered")
        .unwrap_or(0);
    assert_eq!(n, 0, "a connection over the limit is closed without frames");
    drop(relay);

    // A viewer that draws the cursor brings the polling back.
    let _viewer = deskd_run::connect_ws(addr, "/stream/ws", TOKEN).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pointer_polls(addr).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a /stream/ws viewer never had the pointer polled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `deskd_stream_pointer_polls_total` from `/metrics`.
async fn pointer_polls(addr: SocketAddr) -> u64 {
    let (status, _, text) =
        http_request(addr, Method::GET, "/metrics", &[bearer(TOKEN)], None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("deskd_stream_pointer_polls_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no deskd_stream_pointer_polls_total in:\n{text}"))
}
