//! The agent API on a real Xvfb through deskd's real router on a loopback port: screenshots
//! of a pattern drawn by a test X client, every input action observed by a real window,
//! the clipboard against xclip, windows and focus, bad requests that change nothing,
//! reconnection after the X server restarts, and `deskd ctl` as a real process.
//!
//! Each test starts its own Xvfb (`-displayfd` picks a free display), so tests run in
//! parallel without sharing a pointer or keyboard.

#[path = "common/agent_x.rs"]
mod agent_x;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_x::{Server, TestWindow, Xvfb, CONTROL_TOKEN, PATIENCE};
use deskd::config::ApiSettings;
use deskd::desktop::Desktop;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, InputFocus, PropMode};
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

/// A decoded RGB image.
struct Img {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Img {
    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn assert_px(&self, x: usize, y: usize, want: [u8; 3], tolerance: u8, what: &str) {
        let got = self.px(x, y);
        let close = got
            .iter()
            .zip(want)
            .all(|(g, w)| g.abs_diff(w) <= tolerance);
        assert!(
            close,
            "{what}: pixel ({x},{y}) is {got:?}, want {want:?} ±{tolerance}"
        );
    }
}

fn decode_png(bytes: &[u8]) -> Img {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    Img {
        w: info.width as usize,
        h: info.height as usize,
        rgb: buf,
    }
}

fn decode_jpeg(bytes: &[u8]) -> Img {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let rgb = decoder.decode().expect("a JPEG");
    let info = decoder.info().expect("JPEG info");
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    Img {
        w: usize::from(info.width),
        h: usize::from(info.height),
        rgb,
    }
}

/// GET a screenshot; panics unless 200 with the right content type and no-store.
fn shot(server: &Server, query: &str) -> (String, Vec<u8>) {
    let r = server
        .client()
        .request("GET", &format!("/api/screenshot{query}"), None)
        .expect("request");
    assert_eq!(
        r.status,
        200,
        "{query}: {}",
        String::from_utf8_lossy(&r.body)
    );
    (r.content_type.unwrap_or_default(), r.body.to_vec())
}

/// The test pattern on a 640x480 screen: four coloured 160x120 blocks on black.
fn pattern(display: &str) -> TestWindow {
    let w = TestWindow::open(display, 0, 0, 640, 480, "pattern");
    w.fill(0xff0000, 40, 40, 160, 120);
    w.fill(0x00ff00, 320, 40, 160, 120);
    w.fill(0x0000ff, 40, 280, 160, 120);
    w.fill(0xffffff, 320, 280, 160, 120);
    w
}

#[test]
fn screenshot_has_the_pattern_in_png_and_jpeg_with_region_and_scale() {
    let x = Xvfb::start(640, 480);
    let _w = pattern(&x.display);
    let server = Server::start(&x.display);

    let r = server
        .client()
        .request("GET", "/api/screenshot", None)
        .expect("request");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("image/png"));
    let png = decode_png(&r.body);
    assert_eq!((png.w, png.h), (640, 480));
    for (x, y, c, what) in [
        (100, 100, RED, "red"),
        (400, 100, GREEN, "green"),
        (100, 340, BLUE, "blue"),
        (400, 340, WHITE, "white"),
        (10, 10, BLACK, "background"),
        (40, 40, RED, "red's top-left corner"),
        (199, 159, RED, "red's bottom-right corner"),
        (200, 160, BLACK, "just outside red"),
    ] {
        png.assert_px(x, y, c, 0, what);
    }

    let (ct, jpeg) = shot(&server, "?format=jpeg&quality=90");
    assert_eq!(ct, "image/jpeg");
    let jpeg = decode_jpeg(&jpeg);
    assert_eq!((jpeg.w, jpeg.h), (640, 480));
    for (x, y, c) in [
        (100, 100, RED),
        (400, 100, GREEN),
        (100, 340, BLUE),
        (400, 340, WHITE),
        (10, 10, BLACK),
    ] {
        jpeg.assert_px(x, y, c, 40, "jpeg");
    }

    let (_, region) = shot(&server, "?region=300,20,200,150");
    let region = decode_png(&region);
    assert_eq!((region.w, region.h), (200, 150));
    region.assert_px(100, 80, GREEN, 0, "region: green at (400,100)");
    region.assert_px(10, 10, BLACK, 0, "region: black at (310,30)");
    region.assert_px(20, 20, GREEN, 0, "region: green's corner at (320,40)");
    region.assert_px(19, 20, BLACK, 0, "region: left of green");

    let (_, half) = shot(&server, "?scale=0.5");
    let half = decode_png(&half);
    assert_eq!((half.w, half.h), (320, 240));
    half.assert_px(50, 50, RED, 0, "scaled red");
    half.assert_px(200, 50, GREEN, 0, "scaled green");
    half.assert_px(50, 170, BLUE, 0, "scaled blue");
    half.assert_px(5, 5, BLACK, 0, "scaled black");

    let (_, small) = shot(&server, "?max_width=160&format=jpeg");
    let small = decode_jpeg(&small);
    assert_eq!((small.w, small.h), (160, 120));
    small.assert_px(25, 25, RED, 48, "max_width red");

    // Region and scale together, JPEG.
    let (_, both) = shot(&server, "?region=320,280,160,120&scale=0.25&format=jpeg");
    let both = decode_jpeg(&both);
    assert_eq!((both.w, both.h), (40, 30));
    both.assert_px(20, 15, WHITE, 40, "region+scale white");
}

#[test]
fn screenshot_falls_back_to_getimage_without_mit_shm() {
    let with_shm = Xvfb::start(640, 480);
    let _w1 = pattern(&with_shm.display);
    let server = Server::start(&with_shm.display);
    decode_png(&shot(&server, "").1).assert_px(100, 100, RED, 0, "SHM capture");
    assert_eq!(server.desktop.screenshot_uses_shm(), Some(true));

    let without = Xvfb::start_with_args(640, 480, &["-extension", "MIT-SHM"]);
    let _w2 = pattern(&without.display);
    let server = Server::start(&without.display);
    let png = decode_png(&shot(&server, "?region=300,20,200,150").1);
    png.assert_px(100, 80, GREEN, 0, "GetImage capture");
    png.assert_px(10, 10, BLACK, 0, "GetImage capture");
    assert_eq!(server.desktop.screenshot_uses_shm(), Some(false));
    let jpeg = decode_jpeg(&shot(&server, "?format=jpeg").1);
    jpeg.assert_px(100, 340, BLUE, 40, "GetImage capture, JPEG");
}

#[test]
fn screenshot_cursor_and_bad_parameters() {
    let x = Xvfb::start(640, 480);
    let _w = pattern(&x.display);
    let server = Server::start(&x.display);
    let (status, _) = server.input(r#"{"action":"move","x":400,"y":340}"#);
    assert_eq!(status, 200);

    let plain = decode_png(&shot(&server, "?cursor=false").1);
    let with = decode_png(&shot(&server, "?cursor=true").1);
    let mut differing = Vec::new();
    for y in 0..480 {
        for x in 0..640 {
            if plain.px(x, y) != with.px(x, y) {
                differing.push((x, y));
            }
        }
    }
    assert!(!differing.is_empty(), "cursor=true drew no pointer");
    assert!(
        differing
            .iter()
            .all(|(x, y)| x.abs_diff(400) < 64 && y.abs_diff(340) < 64),
        "pixels changed away from the pointer: {:?}",
        &differing[..differing.len().min(5)]
    );

    for (query, status) in [
        ("?format=gif", 400),
        ("?quality=0&format=jpeg", 400),
        ("?region=1,2,3", 400),
        ("?region=600,0,100,100", 422),
        ("?scale=2", 400),
        ("?scale=0.5&max_width=10", 400),
        ("?cursor=maybe", 400),
        ("?colour=red", 400),
    ] {
        let r = server
            .client()
            .request("GET", &format!("/api/screenshot{query}"), None)
            .expect("request");
        assert_eq!(r.status, status, "{query}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON error");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{query}: {v}"
        );
    }
}

/// (detail, x, y, time) of the ButtonPress events.
fn presses(events: &[Event]) -> Vec<(u8, i16, i16, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ButtonPress(b) => Some((b.detail, b.event_x, b.event_y, b.time)),
            _ => None,
        })
        .collect()
}

fn releases(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ButtonRelease(b) => Some(b.detail),
            _ => None,
        })
        .collect()
}

#[test]
fn pointer_actions_reach_a_real_window() {
    let x = Xvfb::start(640, 480);
    let mut w = TestWindow::open(&x.display, 0, 0, 640, 480, "pointer");
    let server = Server::start(&x.display);

    w.clear();
    assert_eq!(server.input(r#"{"action":"move","x":123,"y":45}"#).0, 200);
    w.wait_for(
        "motion to (123,45)",
        |e| matches!(e, Event::MotionNotify(m) if (m.event_x, m.event_y) == (123, 45)),
    );
    let (_, display) = server.get_json("/api/display");
    assert_eq!(display["width"], 640);
    assert_eq!(display["height"], 480);
    assert_eq!(display["depth"], 24);
    assert_eq!(display["pointer"], serde_json::json!({"x": 123, "y": 45}));

    // Single clicks with every button spelling.
    w.clear();
    let (status, body) = server.input(
        r#"[{"action":"click","x":200,"y":150},
            {"action":"click","x":201,"y":151,"button":"right"},
            {"action":"click","x":202,"y":152,"button":"middle"},
            {"action":"click","x":203,"y":153,"button":"back"},
            {"action":"click","x":204,"y":154,"button":9}]"#,
    );
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"ok": true, "actions": 5}))
    );
    w.wait_until("five clicks", |e| releases(e).len() == 5);
    let p: Vec<_> = presses(&w.events)
        .iter()
        .map(|(d, x, y, _)| (*d, *x, *y))
        .collect();
    assert_eq!(
        p,
        vec![
            (1, 200, 150),
            (3, 201, 151),
            (2, 202, 152),
            (8, 203, 153),
            (9, 204, 154)
        ]
    );
    assert_eq!(releases(&w.events), vec![1, 3, 2, 8, 9]);

    // Double and triple clicks: presses close enough in time for a toolkit's double click.
    w.clear();
    assert_eq!(
        server
            .input(r#"{"action":"click","x":300,"y":300,"count":2}"#)
            .0,
        200
    );
    w.wait_until("double click", |e| releases(e).len() == 2);
    let p = presses(&w.events);
    assert_eq!(p.len(), 2);
    let gap = p[1].3.wrapping_sub(p[0].3);
    assert!(gap < 400, "double click presses {gap} ms apart");
    w.clear();
    assert_eq!(
        server
            .input(r#"{"action":"click","x":300,"y":300,"count":3}"#)
            .0,
        200
    );
    w.wait_until("triple click", |e| releases(e).len() == 3);

    // Scrolling: wheel buttons 4-7, one press per click.
    w.clear();
    let scroll = r#"[{"action":"scroll","x":320,"y":240,"dy":3},
                     {"action":"scroll","dy":-2},
                     {"action":"scroll","dx":1},
                     {"action":"scroll","dx":-1}]"#;
    assert_eq!(server.input(scroll).0, 200);
    w.wait_until("7 wheel clicks", |e| releases(e).len() == 7);
    let details: Vec<u8> = presses(&w.events).iter().map(|p| p.0).collect();
    assert_eq!(details, vec![5, 5, 5, 4, 4, 7, 6]);

    // Drag: press at from, motion with the button held, release at to.
    w.clear();
    assert_eq!(
        server
            .input(r#"{"action":"drag","from":[50,60],"to":{"x":300,"y":200}}"#)
            .0,
        200
    );
    w.wait_until("drag release", |e| releases(e).len() == 1);
    let p = presses(&w.events);
    assert_eq!((p[0].0, p[0].1, p[0].2), (1, 50, 60));
    let held_motion = w.events.iter().filter(|e| {
        matches!(e, Event::MotionNotify(m) if u16::from(m.state) & u16::from(x11rb::protocol::xproto::KeyButMask::BUTTON1) != 0)
    });
    assert!(held_motion.count() >= 3, "drag moved with the button held");
    let release = w.events.iter().find_map(|e| match e {
        Event::ButtonRelease(b) => Some((b.event_x, b.event_y)),
        _ => None,
    });
    assert_eq!(release, Some((300, 200)));

    // down/up, with and without a position.
    w.clear();
    assert_eq!(
        server
            .input(r#"[{"action":"down","x":10,"y":20,"button":"left"},{"action":"wait","ms":20},{"action":"up"}]"#)
            .0,
        200
    );
    w.wait_until("down/up", |e| releases(e).len() == 1);
    assert_eq!(presses(&w.events)[0].1, 10);

    // The agent indicator counts API input.
    let (_, agent) = server.get_json("/api/agent");
    assert_eq!(agent["active"], true);
    assert_eq!(
        (
            agent["requests_total"].as_u64(),
            agent["actions_total"].as_u64()
        ),
        (Some(7), Some(16)),
        "{agent}"
    );
}

#[test]
fn keyboard_actions_type_any_unicode() {
    let x = Xvfb::start(640, 480);
    let mut w = TestWindow::open(&x.display, 0, 0, 640, 480, "keyboard");
    w.conn
        .set_input_focus(InputFocus::PARENT, w.window, x11rb::CURRENT_TIME)
        .expect("focus");
    w.conn.flush().expect("flush");
    let server = Server::start(&x.display);

    for text in [
        "Hello, World! 123 ~!@#$%^&*()_+{}|:\"<>?",
        "héllo wörld ✓ 日本",
        "tab\tand\nnewline €ß",
    ] {
        w.clear();
        let body = serde_json::json!({"action": "type", "text": text}).to_string();
        assert_eq!(server.input(&body).0, 200, "{text}");
        w.wait_typed(text);
        // Nothing more arrives after the text (no stray or repeated keys).
        w.settle(Duration::from_millis(100));
        assert_eq!(w.typed_text(), text);
    }

    // More distinct characters off the keymap than there are spare keycodes.
    let many: String = (0x4e00u32..0x4e00 + 300)
        .filter_map(char::from_u32)
        .collect();
    w.clear();
    let body = serde_json::json!({"action": "type", "text": many}).to_string();
    assert_eq!(server.input(&body).0, 200);
    w.settle(Duration::from_millis(200));
    // Spare keycodes are rebound batch after batch (after a sync and a pause), and this test
    // reads the keymap only at the end: every character must have produced one press, and
    // the last ones (still bound) must be right.
    let presses = w
        .events
        .iter()
        .filter(|e| matches!(e, Event::KeyPress(_)))
        .count();
    assert_eq!(presses, 300);
    let typed: Vec<char> = w.typed_text().chars().collect();
    let tail: String = typed[typed.len().saturating_sub(8)..].iter().collect();
    assert_eq!(tail.chars().count(), 8);
    assert!(many.ends_with(&tail), "last characters typed: {tail}");

    // Combos: modifiers pressed first and held for the key.
    w.clear();
    assert_eq!(
        server.input(r#"{"action":"key","keys":"ctrl+shift+t"}"#).0,
        200
    );
    w.wait_until("3 releases", |e| {
        e.iter()
            .filter(|e| matches!(e, Event::KeyRelease(_)))
            .count()
            == 3
    });
    assert_eq!(w.pressed_keysyms(), vec![0xffe3, 0xffe1, 0x74]);
    let t_state = w.events.iter().rev().find_map(|e| match e {
        Event::KeyPress(k) => Some(u16::from(k.state)),
        _ => None,
    });
    assert_eq!(
        t_state.map(|s| s & 0b101),
        Some(0b101),
        "t pressed with Shift and Control held"
    );

    w.clear();
    assert_eq!(
        server
            .input(r#"{"action":"key","keys":"Return F5 Page_Up super alt+Tab Escape BackSpace space comma F24"}"#)
            .0,
        200
    );
    w.wait_until("key names", |e| {
        e.iter()
            .filter(|e| matches!(e, Event::KeyRelease(_)))
            .count()
            == 11
    });
    assert_eq!(
        w.pressed_keysyms(),
        vec![0xff0d, 0xffc2, 0xff55, 0xffeb, 0xffe9, 0xff09, 0xff1b, 0xff08, 0x20, 0x2c, 0xffd5]
    );

    // key_down / key_up.
    w.clear();
    assert_eq!(
        server
            .input(r#"[{"action":"key_down","keys":"shift"},{"action":"type","text":"a"},{"action":"key_up","keys":"shift"}]"#)
            .0,
        200
    );
    w.wait_until("shift held", |e| {
        e.iter()
            .filter(|e| matches!(e, Event::KeyRelease(_)))
            .count()
            == 2
    });
    assert_eq!(w.typed_text(), "A");
}

#[test]
fn bad_requests_are_rejected_and_change_nothing() {
    let x = Xvfb::start(640, 480);
    let mut w = TestWindow::open(&x.display, 0, 0, 640, 480, "bad");
    let server = Server::start(&x.display);
    assert_eq!(server.input(r#"{"action":"move","x":1,"y":1}"#).0, 200);
    w.settle(Duration::from_millis(100));
    w.clear();

    let cases = [
        (
            r#"[{"action":"click","x":10,"y":10},{"action":"type","text":"abc"},{"action":"move","x":640,"y":10}]"#,
            422,
            "action 2",
        ),
        (
            r#"[{"action":"click","x":10,"y":10},{"action":"key","keys":"ctrl+nosuchkey"}]"#,
            422,
            "nosuchkey",
        ),
        (
            r#"[{"action":"click","x":10,"y":10},{"action":"click","button":"fourth"}]"#,
            422,
            "button",
        ),
        (
            r#"[{"action":"click","x":10,"y":10},{"action":"move","x":1,"y":2,"speed":3}]"#,
            400,
            "speed",
        ),
        (
            r#"[{"action":"click","x":10,"y":10},{"action":"teleport"}]"#,
            400,
            "teleport",
        ),
        (
            r#"[{"action":"click","x":10,"y":10},{"action":"wait","ms":600000}]"#,
            422,
            "ms",
        ),
        (r#"[{"action":"click","x":10,"y":10}"#, 400, "JSON"),
        (r#""click""#, 400, "action"),
        ("[]", 422, "no actions"),
        (r#"{"action":"click","x":-1,"y":10}"#, 422, "outside"),
    ];
    for (body, status, needle) in cases {
        let (got, v) = server.input(body);
        assert_eq!(got, status, "{body}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(needle),
            "{body}: error {error:?} lacks {needle:?}"
        );
    }
    w.settle(Duration::from_millis(300));
    let acted: Vec<_> = w
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::ButtonPress(_) | Event::KeyPress(_) | Event::MotionNotify(_)
            )
        })
        .collect();
    assert!(acted.is_empty(), "rejected requests reached X: {acted:?}");
    let (_, display) = server.get_json("/api/display");
    assert_eq!(display["pointer"], serde_json::json!({"x": 1, "y": 1}));
    let (_, agent) = server.get_json("/api/agent");
    assert_eq!(agent["requests_total"], 1);
}

#[test]
fn access_needs_tokens_and_control_for_changes() {
    let x = Xvfb::start(320, 240);
    let server = Server::start(&x.display);
    let anonymous = deskd::ctl::Client::new(&server.base, None);
    assert_eq!(
        anonymous
            .request("GET", "/api/display", None)
            .expect("request")
            .status,
        401
    );
    let view = server.view_client();
    assert_eq!(
        view.request("GET", "/api/screenshot", None)
            .expect("request")
            .status,
        200
    );
    let body = br#"{"action":"move","x":1,"y":1}"#.to_vec();
    assert_eq!(
        view.request("POST", "/api/input", Some(body))
            .expect("request")
            .status,
        403
    );
    assert_eq!(
        view.request("GET", "/api/clipboard", None)
            .expect("request")
            .status,
        403
    );
    let body = br#"{"text":"x"}"#.to_vec();
    assert_eq!(
        view.request("POST", "/api/clipboard", Some(body))
            .expect("request")
            .status,
        403
    );
}

#[test]
fn windows_are_listed_and_focused() {
    let x = Xvfb::start(640, 480);
    let alpha = TestWindow::open(&x.display, 10, 20, 200, 100, "deskd test alpha");
    let beta = TestWindow::open(&x.display, 300, 200, 150, 120, "beta");
    let utf8 = beta
        .conn
        .intern_atom(false, b"UTF8_STRING")
        .expect("atom")
        .reply()
        .expect("atom")
        .atom;
    let net_wm_name = beta
        .conn
        .intern_atom(false, b"_NET_WM_NAME")
        .expect("atom")
        .reply()
        .expect("atom")
        .atom;
    beta.conn
        .change_property8(
            PropMode::REPLACE,
            beta.window,
            net_wm_name,
            utf8,
            "deskd test βeta ✓".as_bytes(),
        )
        .expect("title");
    beta.conn
        .get_input_focus()
        .expect("sync")
        .reply()
        .expect("sync");
    let server = Server::start(&x.display);

    let (status, v) = server.get_json("/api/windows");
    assert_eq!(status, 200);
    let windows = v["windows"].as_array().expect("a list");
    let find = |id: u32| {
        windows
            .iter()
            .find(|w| w["id"] == id)
            .unwrap_or_else(|| panic!("window {id} in {v}"))
    };
    let a = find(alpha.window);
    assert_eq!(a["title"], "deskd test alpha");
    assert_eq!((a["x"].as_i64(), a["y"].as_i64()), (Some(10), Some(20)));
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(200), Some(100))
    );
    assert_eq!(find(beta.window)["title"], "deskd test βeta ✓");

    let r = server
        .client()
        .request(
            "POST",
            &format!("/api/windows/{}/focus", alpha.window),
            None,
        )
        .expect("request");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let focus = alpha
        .conn
        .get_input_focus()
        .expect("focus")
        .reply()
        .expect("focus")
        .focus;
    assert_eq!(focus, alpha.window);
    let (_, v) = server.get_json("/api/windows");
    let focused: Vec<_> = v["windows"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|w| w["focused"] == true)
        .map(|w| w["id"].clone())
        .collect();
    assert_eq!(focused, vec![serde_json::json!(alpha.window)]);
    // Raised: alpha is now the topmost of the two.
    let ids: Vec<_> = v["windows"]
        .as_array()
        .expect("list")
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    let pos = |id: u32| ids.iter().position(|i| *i == id);
    assert!(
        pos(alpha.window) > pos(beta.window),
        "alpha raised above beta: {ids:?}"
    );

    // Hex ids as xwininfo prints them.
    let r = server
        .client()
        .request(
            "POST",
            &format!("/api/windows/0x{:x}/focus", beta.window),
            None,
        )
        .expect("request");
    assert_eq!(r.status, 200);
    assert_eq!(
        beta.conn
            .get_input_focus()
            .expect("f")
            .reply()
            .expect("f")
            .focus,
        beta.window
    );

    for (path, status) in [
        ("/api/windows/12345/focus", 404),
        ("/api/windows/xyz/focus", 400),
    ] {
        let r = server
            .client()
            .request("POST", path, None)
            .expect("request");
        assert_eq!(r.status, status, "{path}");
    }
}

fn xclip(display: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    // `xclip -i` forks a child that keeps serving the selection: it must not inherit our
    // pipes, or reading its output would wait for that child to end.
    let serving = stdin.is_some();
    let piped = || {
        if serving {
            std::process::Stdio::null()
        } else {
            std::process::Stdio::piped()
        }
    };
    let mut child = Command::new("xclip")
        .args(args)
        .env("DISPLAY", display)
        .stdin(std::process::Stdio::piped())
        .stdout(piped())
        .stderr(piped())
        .spawn()
        .expect("xclip from apt must be installed");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("xclip");
    assert!(
        out.status.success(),
        "xclip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from xclip")
}

#[test]
fn clipboard_round_trips_through_real_selection_owners() {
    let x = Xvfb::start(320, 240);
    let server = Server::start(&x.display);
    let (status, v) = server.get_json("/api/clipboard");
    assert_eq!((status, v), (200, serde_json::json!({"text": null})));

    // deskd → xclip
    let text = "from deskd: ✓ 日本 «ok»";
    let body = serde_json::json!({ "text": text }).to_string().into_bytes();
    let r = server
        .client()
        .request("POST", "/api/clipboard", Some(body))
        .expect("request");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        xclip(&x.display, &["-selection", "clipboard", "-o"], None),
        text
    );
    let targets = xclip(
        &x.display,
        &["-selection", "clipboard", "-o", "-t", "TARGETS"],
        None,
    );
    assert!(
        targets.contains("UTF8_STRING") && targets.contains("STRING"),
        "{targets}"
    );
    // and deskd reads its own selection back
    assert_eq!(server.get_json("/api/clipboard").1["text"], text);

    // xclip → deskd (xclip forks and serves in the background until it loses ownership)
    let theirs = "from xclip: ünïcödé ✓";
    xclip(&x.display, &["-selection", "clipboard", "-i"], Some(theirs));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, v) = server.get_json("/api/clipboard");
        if v["text"] == theirs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deskd never read xclip's text: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A large text (2 MB) that xclip serves incrementally: it uses INCR above a quarter of
    // the server's maximum request size (4 MiB with BIG-REQUESTS on Xvfb).
    let big: String = "0123456789abcdef✓\n".repeat(100_000);
    xclip(&x.display, &["-selection", "clipboard", "-i"], Some(&big));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, v) = server.get_json("/api/clipboard");
        assert_eq!(status, 200, "{v}");
        if v["text"].as_str().is_some_and(|t| t.len() == big.len()) {
            assert!(v["text"] == big.as_str(), "large clipboard text differs");
            break;
        }
        assert!(Instant::now() < deadline, "deskd never read the large text");
        std::thread::sleep(Duration::from_millis(20));
    }

    // deskd takes it back.
    let body = serde_json::json!({ "text": "again" })
        .to_string()
        .into_bytes();
    assert_eq!(
        server
            .client()
            .request("POST", "/api/clipboard", Some(body))
            .expect("r")
            .status,
        200
    );
    assert_eq!(
        xclip(&x.display, &["-selection", "clipboard", "-o"], None),
        "again"
    );

    let r = server
        .client()
        .request("POST", "/api/clipboard", Some(br#"{"txt":"x"}"#.to_vec()))
        .expect("request");
    assert_eq!(r.status, 400);
}

#[test]
fn reconnects_after_the_x_server_restarts() {
    let first = Xvfb::start(320, 240);
    let display = first.display.clone();
    let server = Server::start(&display);
    assert_eq!(server.get_json("/api/display").0, 200);
    assert_eq!(shot(&server, "").0, "image/png");

    // SIGTERM lets Xvfb remove its lock file and socket, so the number can be reused.
    let mut first = first;
    let pid = nix::unistd::Pid::from_raw(first.pid() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    first.wait_exit();
    let (status, v) = server.get_json("/api/display");
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("display unavailable")),
        "{v}"
    );
    let r = server
        .client()
        .request("GET", "/api/screenshot", None)
        .expect("request");
    assert_eq!(r.status, 503);

    let _second = Xvfb::start_on(&display, 400, 300);
    let (status, v) = server.get_json("/api/display");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["width"], 400);
    assert_eq!(decode_png(&shot(&server, "").1).w, 400);
    assert_eq!(server.input(r#"{"action":"click","x":399,"y":299}"#).0, 200);
}

#[test]
fn no_display_configured_is_503() {
    let desktop = Arc::new(Desktop::new(":0", &ApiSettings::default()));
    let server = Server::start_with(None, desktop);
    for path in [
        "/api/display",
        "/api/screenshot",
        "/api/windows",
        "/api/agent",
    ] {
        let (status, v) = server.get_json(path);
        assert_eq!(status, 503, "{path}: {v}");
    }
}

fn deskd_ctl(server_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_deskd"))
        .arg("ctl")
        .args(["--url", server_url, "--token", CONTROL_TOKEN])
        .args(args)
        .env_remove("DESKD_TOKEN")
        .env_remove("DESKD_URL")
        .output()
        .expect("run deskd ctl")
}

#[test]
fn ctl_drives_the_api_from_a_shell() {
    let x = Xvfb::start(640, 480);
    let mut w = pattern(&x.display);
    w.conn
        .set_input_focus(InputFocus::PARENT, w.window, x11rb::CURRENT_TIME)
        .expect("focus");
    w.conn.flush().expect("flush");
    let server = Server::start(&x.display);

    let out = deskd_ctl(&server.base, &["display"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["width"], 640);

    let dir = std::env::temp_dir().join(format!("deskd-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("shot.jpg");
    let path = file.to_str().expect("utf-8 path");
    let out = deskd_ctl(
        &server.base,
        &["screenshot", "-o", path, "--region", "0,0,320,240"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = decode_jpeg(&std::fs::read(&file).expect("screenshot file"));
    assert_eq!((img.w, img.h), (320, 240));
    img.assert_px(100, 100, RED, 40, "ctl screenshot");
    let _ = std::fs::remove_dir_all(&dir);

    w.clear();
    let out = deskd_ctl(&server.base, &["type", "ctl ✓"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.wait_typed("ctl ✓");

    w.clear();
    assert!(
        deskd_ctl(&server.base, &["click", "30", "40", "--button", "right"])
            .status
            .success()
    );
    w.wait_until("click", |e| releases(e).len() == 1);
    assert_eq!(presses(&w.events)[0].0, 3);

    assert!(deskd_ctl(&server.base, &["clipboard", "set", "via ctl"])
        .status
        .success());
    let out = deskd_ctl(&server.base, &["clipboard", "get"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via ctl");

    // Errors: a bad action, a wrong token, nobody listening.
    let out = deskd_ctl(
        &server.base,
        &["input", r#"{"action":"move","x":9999,"y":0}"#],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("422"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_deskd"))
        .args(["ctl", "--url", &server.base, "--token", "wrong", "display"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let out = deskd_ctl(&dead_url, &["display"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is deskd running?"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn agent_indicator_shows_a_running_request() {
    let x = Xvfb::start(320, 240);
    let server = Server::start(&x.display);
    let (_, idle) = server.get_json("/api/agent");
    assert_eq!(idle["active"], false, "{idle}");
    assert_eq!(idle["last_input_unix_ms"], serde_json::Value::Null);

    let base = server.base.clone();
    let long = std::thread::spawn(move || {
        deskd::ctl::Client::new(&base, Some(CONTROL_TOKEN.to_string()))
            .request(
                "POST",
                "/api/input",
                Some(br#"{"action":"wait","ms":5000}"#.to_vec()),
            )
            .map(|r| r.status)
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, v) = server.get_json("/api/agent");
        if v["in_progress"] == 1 {
            assert_eq!(v["active"], true, "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running request never showed: {v}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reads are not held up by the running input request: display answers while it runs.
    assert_eq!(server.get_json("/api/display").0, 200);
    assert_eq!(
        server.get_json("/api/agent").1["in_progress"],
        1,
        "display waited for input"
    );
    assert_eq!(long.join().ok().and_then(|r| r.ok()), Some(200));
    let (_, after) = server.get_json("/api/agent");
    assert_eq!(
        (after["in_progress"].as_u64(), after["active"].as_bool()),
        (Some(0), Some(true)),
        "{after}"
    );
    assert!(after["last_input_unix_ms"].as_u64().is_some());
}

/// A CLIPBOARD owner on its own connection that answers UTF8_STRING with an INCR transfer
/// of one-byte chunks `interval` apart: `chunks` of them then the end, or without end when
/// `None`. Runs until `stop` is set.
fn incr_owner(
    display: &str,
    chunks: Option<usize>,
    interval: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use x11rb::protocol::xproto::{
        ChangeWindowAttributesAux, CreateWindowAux, EventMask, Property, SelectionNotifyEvent,
        WindowClass, SELECTION_NOTIFY_EVENT,
    };
    let (conn, screen) = x11rb::rust_connection::RustConnection::connect(Some(display))
        .expect("test owner connects");
    let root = conn.setup().roots[screen].root;
    let atom = |name: &str| {
        conn.intern_atom(false, name.as_bytes())
            .expect("intern")
            .reply()
            .expect("atom")
            .atom
    };
    let (clipboard, utf8, incr) = (atom("CLIPBOARD"), atom("UTF8_STRING"), atom("INCR"));
    let window = conn.generate_id().expect("id");
    conn.create_window(
        0,
        window,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_ONLY,
        0,
        &CreateWindowAux::new(),
    )
    .expect("window");
    conn.set_selection_owner(window, clipboard, x11rb::CURRENT_TIME)
        .expect("own");
    let owner = conn
        .get_selection_owner(clipboard)
        .expect("owner")
        .reply()
        .expect("owner reply")
        .owner;
    assert_eq!(owner, window, "the test owner did not get CLIPBOARD");
    std::thread::spawn(move || {
        // (requestor, property, chunks sent) of the transfer under way.
        let mut transfer: Option<(u32, u32, usize)> = None;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(event) = conn.poll_for_event() else {
                return;
            };
            match event {
                Some(Event::SelectionRequest(req)) => {
                    let property = if req.target == utf8 {
                        conn.change_window_attributes(
                            req.requestor,
                            &ChangeWindowAttributesAux::new()
                                .event_mask(EventMask::PROPERTY_CHANGE),
                        )
                        .expect("select PropertyNotify");
                        conn.change_property32(
                            PropMode::REPLACE,
                            req.requestor,
                            req.property,
                            incr,
                            &[1_000_000],
                        )
                        .expect("INCR");
                        transfer = Some((req.requestor, req.property, 0));
                        req.property
                    } else {
                        x11rb::NONE
                    };
                    let notify = SelectionNotifyEvent {
                        response_type: SELECTION_NOTIFY_EVENT,
                        sequence: 0,
                        time: req.time,
                        requestor: req.requestor,
                        selection: req.selection,
                        target: req.target,
                        property,
                    };
                    conn.send_event(false, req.requestor, EventMask::NO_EVENT, notify)
                        .expect("notify");
                    conn.flush().expect("flush");
                }
                // The requestor took the last chunk (or the INCR header): send the next.
                Some(Event::PropertyNotify(p)) if p.state == Property::DELETE => {
                    let Some((requestor, property, sent)) = transfer else {
                        continue;
                    };
                    if p.window != requestor || p.atom != property {
                        continue;
                    }
                    std::thread::sleep(interval);
                    let chunk: &[u8] = if chunks.is_some_and(|n| sent >= n) {
                        b""
                    } else {
                        b"x"
                    };
                    // The requestor may be gone after giving up: ignore errors.
                    let _ =
                        conn.change_property8(PropMode::REPLACE, requestor, property, utf8, chunk);
                    let _ = conn.flush();
                    transfer = Some((requestor, property, sent + 1));
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

#[test]
fn slow_incr_clipboard_transfer_hits_the_total_deadline() {
    use deskd::desktop::{clipboard, DesktopError};
    let x = Xvfb::start(320, 240);
    // A well-behaved INCR owner: five chunks, then the end.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let owner = incr_owner(&x.display, Some(5), Duration::from_millis(20), stop.clone());
    let text = clipboard::get_within(&x.display, Duration::from_secs(60)).expect("INCR read");
    assert_eq!(text.as_deref(), Some("xxxxx"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    owner.join().expect("owner thread");

    // One that drips a byte every 400 ms, well within the 3 s per-chunk timeout, for ever:
    // the whole transfer's deadline (2 s here, 30 s in deskd) ends it with a Timeout (504).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let owner = incr_owner(&x.display, None, Duration::from_millis(400), stop.clone());
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let display = x.display.clone();
    std::thread::spawn(move || {
        let _ = tx.send(clipboard::get_within(&display, Duration::from_secs(2)));
    });
    // Without a total deadline the read would go on for ever; a minute is ample either way.
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the dripping INCR read did not end");
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    owner.join().expect("owner thread");
    match result {
        Err(DesktopError::Timeout(msg)) => {
            assert!(msg.contains("within 2.0s"), "{msg}");
            assert!(msg.contains("INCR"), "{msg}");
            // Chunks were arriving: the per-chunk timeout is not what ended it.
            assert!(!msg.contains("(0 bytes received)"), "{msg}");
        }
        other => panic!("expected a Timeout, got {other:?}"),
    }
    assert!(took >= Duration::from_secs(2), "{took:?}");
}
