//! Helpers for the agent API tests and benchmark: a private Xvfb (display number chosen by
//! Xvfb itself with `-displayfd`), deskd's real router served on a loopback port, and a test
//! X client window that draws a known pattern and records the events it receives.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use deskd::config::ApiSettings;
use deskd::ctl::Client;
use deskd::desktop::Desktop;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, Gcontext,
    ImageFormat, PropMode, Rectangle, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

pub const CONTROL_TOKEN: &str = "agent-test-control-token";
pub const VIEW_TOKEN: &str = "agent-test-view-token";
/// Generous: the machine is shared and loaded.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A private Xvfb, killed on drop.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start(width: u32, height: u32) -> Xvfb {
        Self::start_with_args(width, height, &[])
    }

    /// As [`Xvfb::start`] with extra Xvfb arguments (e.g. `-extension MIT-SHM`).
    pub fn start_with_args(width: u32, height: u32, extra: &[&str]) -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .args(["-nolisten", "tcp", "-noreset"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb from apt (xvfb) must be installed to run the agent API tests");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(PATIENCE)
            .expect("Xvfb did not report its display number");
        let number: u32 = line.trim().parse().expect("Xvfb printed a display number");
        Xvfb {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Xvfb {
    /// An Xvfb on a given display (e.g. to restart one), ready once a client can connect.
    pub fn start_on(display: &str, width: u32, height: u32) -> Xvfb {
        let child = Command::new("Xvfb")
            .arg(display)
            .args(["-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .args(["-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb");
        let deadline = Instant::now() + PATIENCE;
        while RustConnection::connect(Some(display)).is_err() {
            assert!(Instant::now() < deadline, "Xvfb {display} did not come up");
            thread::sleep(Duration::from_millis(20));
        }
        Xvfb {
            child,
            display: display.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit (after a signal sent by the test).
    pub fn wait_exit(&mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// deskd's router on 127.0.0.1:<free port>, on a runtime thread of its own.
pub struct Server {
    pub base: String,
    pub desktop: Arc<Desktop>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(display: &str) -> Server {
        let desktop = Arc::new(Desktop::new(display, &ApiSettings::default()));
        Self::start_with(Some(desktop.clone()), desktop)
    }

    pub fn start_with(state_desktop: Option<Arc<Desktop>>, desktop: Arc<Desktop>) -> Server {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let (status_tx, status) =
                    tokio::sync::watch::channel(deskd::supervisor::Snapshot::default());
                let state = deskd::http::AppState {
                    auth: Arc::new(deskd::http::auth::Auth::new(
                        CONTROL_TOKEN,
                        Some(VIEW_TOKEN.to_string()),
                        Vec::new(),
                    )),
                    status,
                    metrics: Arc::new(deskd::metrics::Metrics::default()),
                    relay: None,
                    desktop: state_desktop,
                    stream: None,
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let _ = addr_tx.send(listener.local_addr().expect("local addr"));
                let app = deskd::http::router(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
                drop(status_tx);
            });
        });
        let addr = addr_rx.recv_timeout(PATIENCE).expect("server address");
        Server {
            base: format!("http://{addr}"),
            desktop,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, Some(CONTROL_TOKEN.to_string()))
    }

    pub fn view_client(&self) -> Client {
        Client::new(&self.base, Some(VIEW_TOKEN.to_string()))
    }

    /// POST /api/input; returns (status, body as JSON).
    pub fn input(&self, body: &str) -> (u16, serde_json::Value) {
        let r = self
            .client()
            .request("POST", "/api/input", Some(body.as_bytes().to_vec()))
            .expect("request");
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.client().request("GET", path, None).expect("request");
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A test X client with one window that records what it receives.
pub struct TestWindow {
    pub conn: RustConnection,
    pub window: Window,
    pub root: Window,
    gc: Gcontext,
    /// Events received so far (drained from the connection by [`TestWindow::pump`]).
    pub events: Vec<Event>,
}

impl TestWindow {
    /// A mapped window at (x, y) of w×h with a black background and `title`.
    pub fn open(display: &str, x: i16, y: i16, w: u16, h: u16, title: &str) -> TestWindow {
        let (conn, screen_num) =
            RustConnection::connect(Some(display)).expect("test client connects");
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let window = conn.generate_id().expect("id");
        let mask = EventMask::KEY_PRESS
            | EventMask::KEY_RELEASE
            | EventMask::BUTTON_PRESS
            | EventMask::BUTTON_RELEASE
            | EventMask::POINTER_MOTION
            | EventMask::EXPOSURE
            | EventMask::STRUCTURE_NOTIFY
            | EventMask::FOCUS_CHANGE;
        conn.create_window(
            screen.root_depth,
            window,
            root,
            x,
            y,
            w,
            h,
            0,
            WindowClass::INPUT_OUTPUT,
            screen.root_visual,
            &CreateWindowAux::new().background_pixel(0).event_mask(mask),
        )
        .expect("create window");
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            title.as_bytes(),
        )
        .expect("title");
        let gc = conn.generate_id().expect("id");
        conn.create_gc(gc, window, &CreateGCAux::new().foreground(0xffffff))
            .expect("gc");
        conn.map_window(window).expect("map");
        conn.flush().expect("flush");
        let mut me = TestWindow {
            conn,
            window,
            root,
            gc,
            events: Vec::new(),
        };
        me.wait_for("MapNotify", |e| matches!(e, Event::MapNotify(_)));
        me
    }

    /// Fills a rectangle with 0xRRGGBB and waits until the server has drawn it.
    pub fn fill(&self, rgb: u32, x: i16, y: i16, w: u16, h: u16) {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(rgb))
            .expect("gc");
        self.conn
            .poly_fill_rectangle(
                self.window,
                self.gc,
                &[Rectangle {
                    x,
                    y,
                    width: w,
                    height: h,
                }],
            )
            .expect("fill");
        self.conn
            .get_input_focus()
            .expect("sync")
            .reply()
            .expect("sync");
    }

    /// Draws vertical stripes, 8 pixels each of 0xRRGGBB `a` and `b`, over a w×h box at (x, y)
    /// in one PutImage request (one damage event), and waits until the server has drawn them.
    /// The box must fit in one request (w·h·4 up to 256 KiB).
    pub fn put_stripes(&self, a: u32, b: u32, x: i16, y: i16, w: u16, h: u16) {
        self.put_image(x, y, w, h, |col, _| if col / 8 % 2 == 0 { a } else { b });
    }

    /// Draws `px(col, row)` (0xRRGGBB) over a w×h box at (x, y) in one PutImage request, and
    /// waits until the server has drawn it. The box must fit in one request (256 KiB).
    pub fn put_image(&self, x: i16, y: i16, w: u16, h: u16, px: impl Fn(u16, u16) -> u32) {
        let mut data = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
        for row in 0..h {
            for col in 0..w {
                data.extend_from_slice(&px(col, row).to_le_bytes());
            }
        }
        let depth = self.conn.setup().roots[0].root_depth;
        self.conn
            .put_image(
                ImageFormat::Z_PIXMAP,
                self.window,
                self.gc,
                w,
                h,
                x,
                y,
                0,
                depth,
                &data,
            )
            .expect("put image");
        self.sync();
    }

    /// Moves the w×h box at (x, y + by) up by `by` rows (XCopyArea, as a terminal scrolls),
    /// and waits until the server has done it.
    pub fn scroll_up(&self, x: i16, y: i16, w: u16, h: u16, by: u16) {
        self.conn
            .copy_area(
                self.window,
                self.window,
                self.gc,
                x,
                y + by as i16,
                x,
                y,
                w,
                h - by,
            )
            .expect("copy area");
        self.sync();
    }

    fn sync(&self) {
        self.conn
            .get_input_focus()
            .expect("sync")
            .reply()
            .expect("sync");
    }

    /// Reads every event already queued.
    pub fn pump(&mut self) {
        while let Some(e) = self.conn.poll_for_event().expect("test client connection") {
            self.events.push(e);
        }
    }

    /// Waits (polling) until an event matching `pred` has arrived; panics after PATIENCE.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.pump();
            if self.events.iter().any(&pred) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} event within {PATIENCE:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `done(events)` holds; panics after PATIENCE with `what`.
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&[Event]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.pump();
            if done(&self.events) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: condition not met within {PATIENCE:?}; events: {:?}",
                self.events.len()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Collects events for `quiet` after the last one (to assert that nothing came).
    pub fn settle(&mut self, quiet: Duration) {
        self.conn
            .get_input_focus()
            .expect("sync")
            .reply()
            .expect("sync");
        let mut last = Instant::now();
        let mut seen = self.events.len();
        while last.elapsed() < quiet {
            self.pump();
            if self.events.len() != seen {
                seen = self.events.len();
                last = Instant::now();
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The current keymap: (first keycode, keysyms per keycode, the mapping).
    fn keymap(&self) -> (u8, usize, x11rb::protocol::xproto::GetKeyboardMappingReply) {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let map = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)
            .expect("keymap")
            .reply()
            .expect("keymap");
        let per = usize::from(map.keysyms_per_keycode);
        (min, per, map)
    }

    /// The text the KeyPress events so far type, looked up in the current keymap (level 1
    /// when Shift is held).
    pub fn typed_text(&self) -> String {
        let (min, per, map) = self.keymap();
        let mut out = String::new();
        for e in &self.events {
            if let Event::KeyPress(k) = e {
                let base = usize::from(k.detail - min) * per;
                let shift = u16::from(k.state) & 1 != 0;
                let level0 = map.keysyms[base];
                let level1 = map.keysyms[base + 1];
                let sym = if shift && level1 != 0 { level1 } else { level0 };
                if let Some(c) = deskd::desktop::keys::char_from_keysym(sym) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Waits until the KeyPress events so far type exactly `want`; panics after PATIENCE
    /// with what was typed.
    pub fn wait_typed(&mut self, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.pump();
            let typed = self.typed_text();
            if typed == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "typed {typed:?}, want {want:?} (within {PATIENCE:?})"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Keysyms (level 0) of the KeyPress events so far.
    pub fn pressed_keysyms(&self) -> Vec<u32> {
        let (min, per, map) = self.keymap();
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::KeyPress(k) => Some(map.keysyms[usize::from(k.detail - min) * per]),
                _ => None,
            })
            .collect()
    }

    pub fn clear(&mut self) {
        self.pump();
        self.events.clear();
    }
}
