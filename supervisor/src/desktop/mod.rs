//! Direct X11 access for the agent API: screenshots (GetImage/MIT-SHM), input (XTEST),
//! clipboard (selections) and top-level windows. No HTTP here.
//!
//! Every method blocks (x11rb's pure-Rust connection); callers on tokio use `spawn_blocking`.
//! Connections are opened lazily on first use and dropped when the X server goes away, so a
//! [`Desktop`] can be built before Xvfb runs and keeps working after the supervisor restarts
//! it: the failing call returns [`DesktopError::Unavailable`] and the next one reconnects.
//!
//! Submodules: [`actions`] (input JSON → validated actions, pure), [`keys`] (key names and
//! characters → keysyms, pure), [`keymap`] (keysym → keycode, spare keycode binding),
//! [`input`] (XTEST), [`screenshot`] (capture), [`image`] (pixels: convert, cursor, scale,
//! encode), [`clipboard`], [`windows`].

pub mod actions;
pub mod clipboard;
pub mod image;
pub mod input;
pub mod keymap;
pub mod keys;
pub mod screenshot;
pub mod windows;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use x11rb::connection::Connection;
use x11rb::errors::{ConnectError, ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xproto::{ConnectionExt as _, Screen, Window};
use x11rb::rust_connection::RustConnection;

use crate::config::ApiSettings;

pub use screenshot::{ImageFormat, Screenshot, ScreenshotRequest};
pub use windows::WindowInfo;

/// How long after the last API input the agent counts as "acting".
pub const AGENT_ACTIVE_WINDOW: Duration = Duration::from_secs(5);

/// Why a desktop operation failed. The HTTP layer maps each variant to a status.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The X server is not reachable (not started yet, restarting, gone): 503.
    #[error("display unavailable: {0}")]
    Unavailable(String),
    /// The request body or query is malformed: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but not doable (outside the screen, unknown key): 422.
    #[error("{0}")]
    Invalid(String),
    /// No such window: 404.
    #[error("{0}")]
    NotFound(String),
    /// Too large to handle (clipboard text, screenshot region): 413.
    #[error("{0}")]
    TooLarge(String),
    /// The X server did not answer in time (e.g. a clipboard owner that never replies): 504.
    #[error("{0}")]
    Timeout(String),
    /// Encoding the image failed: 500.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The X server refused a request: 500 (a bug or an unexpected server).
    #[error("X request failed: {0}")]
    X11(String),
}

impl DesktopError {
    fn is_connection(&self) -> bool {
        matches!(self, DesktopError::Unavailable(_))
    }
}

impl From<ConnectError> for DesktopError {
    fn from(e: ConnectError) -> Self {
        DesktopError::Unavailable(e.to_string())
    }
}

impl From<ConnectionError> for DesktopError {
    fn from(e: ConnectionError) -> Self {
        DesktopError::Unavailable(e.to_string())
    }
}

impl From<ReplyError> for DesktopError {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::ConnectionError(e) => e.into(),
            ReplyError::X11Error(e) => DesktopError::X11(format!("{:?}", e.error_kind)),
        }
    }
}

impl From<ReplyOrIdError> for DesktopError {
    fn from(e: ReplyOrIdError) -> Self {
        match e {
            ReplyOrIdError::ConnectionError(e) => e.into(),
            ReplyOrIdError::X11Error(e) => DesktopError::X11(format!("{:?}", e.error_kind)),
            ReplyOrIdError::IdsExhausted => DesktopError::X11("X resource ids exhausted".into()),
        }
    }
}

impl From<actions::ActionError> for DesktopError {
    fn from(e: actions::ActionError) -> Self {
        match e {
            actions::ActionError::Malformed(m) => DesktopError::BadRequest(m),
            actions::ActionError::Invalid(m) => DesktopError::Invalid(m),
        }
    }
}

/// `GET /api/display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DisplayInfo {
    pub width: u16,
    pub height: u16,
    pub depth: u8,
    pub pointer: Pointer,
}

/// Pointer position in root coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pointer {
    pub x: i16,
    pub y: i16,
}

/// Result of `POST /api/input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputSummary {
    pub ok: bool,
    /// Number of actions run.
    pub actions: usize,
}

/// `GET /api/agent`: whether an agent is driving the desktop through the API, for the
/// viewer's "agent is acting" indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentActivity {
    /// An input request is running now or finished less than [`AGENT_ACTIVE_WINDOW`] ago.
    pub active: bool,
    /// Input requests currently being applied.
    pub in_progress: u64,
    /// Input requests applied since deskd started.
    pub requests_total: u64,
    /// Actions applied since deskd started.
    pub actions_total: u64,
    /// Unix time (milliseconds) of the end of the last input request; `None` if never.
    pub last_input_unix_ms: Option<u64>,
}

/// One open X connection with what every operation needs.
pub(crate) struct Session {
    pub(crate) conn: RustConnection,
    pub(crate) root: Window,
    pub(crate) root_depth: u8,
    /// Spare keycodes deskd has bound to keysyms, least recently used first.
    pub(crate) remap: keymap::Remapper,
    /// When deskd last released a pointer button: keyboard input right after a click waits
    /// for the window manager to move the focus (see `input::FOCUS_SETTLE`).
    pub(crate) last_button_release: Option<std::time::Instant>,
    /// Whether this connection has sent its first key event (see `input::warm_up_keyboard`).
    pub(crate) keyboard_warm: bool,
}

/// Connects to X display `display`: the connection and its default screen. Each of deskd's
/// connections (input/queries, capture, clipboard) starts here.
pub(crate) fn connect(display: &str) -> Result<(RustConnection, Screen), DesktopError> {
    let (conn, screen_num) = RustConnection::connect(Some(display))?;
    let screen = conn.setup().roots.get(screen_num).cloned().ok_or_else(|| {
        DesktopError::Unavailable(format!("{display} has no screen {screen_num}"))
    })?;
    Ok((conn, screen))
}

impl Session {
    pub(crate) fn connect(display: &str) -> Result<Session, DesktopError> {
        let (conn, screen) = connect(display)?;
        let (root, root_depth) = (screen.root, screen.root_depth);
        Ok(Session {
            conn,
            root,
            root_depth,
            remap: keymap::Remapper::default(),
            last_button_release: None,
            keyboard_warm: false,
        })
    }

    /// One round trip: proves the connection still works.
    fn ping(&self) -> Result<(), DesktopError> {
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// The current screen size (RandR may have changed it since connecting).
    pub(crate) fn screen_size(&self) -> Result<(u16, u16), DesktopError> {
        let g = self.conn.get_geometry(self.root)?.reply()?;
        Ok((g.width, g.height))
    }
}

/// Runs `f` on the session in `slot`, connecting first if needed. A session that existed
/// before is pinged first and replaced if the server went away (Xvfb restarted); a
/// connection failure during `f` drops the session so the next call reconnects.
fn with_session<T>(
    slot: &Mutex<Option<Session>>,
    display: &str,
    f: impl FnOnce(&mut Session) -> Result<T, DesktopError>,
) -> Result<T, DesktopError> {
    let mut guard = lock(slot);
    if let Some(session) = guard.as_ref() {
        if session.ping().is_err() {
            *guard = None;
        }
    }
    if guard.is_none() {
        *guard = Some(Session::connect(display)?);
    }
    let Some(session) = guard.as_mut() else {
        return Err(DesktopError::Unavailable("no connection".into()));
    };
    let result = f(session);
    if matches!(&result, Err(e) if e.is_connection()) {
        *guard = None;
    }
    result
}

/// Locks a mutex, recovering it if a previous holder panicked (the session inside is
/// replaced on the next connection error anyway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The desktop's X server as the agent API sees it. Cheap to build; connects on first use.
pub struct Desktop {
    display: String,
    type_delay: Duration,
    /// Input and window focus share one connection, so they are applied in request order.
    session: Mutex<Option<Session>>,
    /// Read-only queries (display info, window list) have their own, so they never wait
    /// behind a long input request.
    query: Mutex<Option<Session>>,
    /// Screenshots use their own connection (and SHM segment) so they never wait on input.
    capture: Mutex<Option<screenshot::Capturer>>,
    /// The clipboard owner thread of the last `POST /api/clipboard`, if it still owns it.
    clipboard: Mutex<Option<clipboard::Owner>>,
    in_progress: AtomicU64,
    requests_total: AtomicU64,
    actions_total: AtomicU64,
    /// 0 = never.
    last_input_unix_ms: AtomicU64,
}

impl Desktop {
    /// A desktop on X display `display_name` (e.g. `:99`). Does not connect: the X server
    /// need not be up yet.
    pub fn new(display_name: &str, settings: &ApiSettings) -> Desktop {
        Desktop {
            display: display_name.to_string(),
            type_delay: settings.type_delay,
            session: Mutex::new(None),
            query: Mutex::new(None),
            capture: Mutex::new(None),
            clipboard: Mutex::new(None),
            in_progress: AtomicU64::new(0),
            requests_total: AtomicU64::new(0),
            actions_total: AtomicU64::new(0),
            last_input_unix_ms: AtomicU64::new(0),
        }
    }

    /// The X display name this desktop talks to.
    pub fn display_name(&self) -> &str {
        &self.display
    }

    /// Screen size, depth and pointer position.
    pub fn display_info(&self) -> Result<DisplayInfo, DesktopError> {
        with_session(&self.query, &self.display, |s| {
            let (width, height) = s.screen_size()?;
            let p = s.conn.query_pointer(s.root)?.reply()?;
            Ok(DisplayInfo {
                width,
                height,
                depth: s.root_depth,
                pointer: Pointer {
                    x: p.root_x,
                    y: p.root_y,
                },
            })
        })
    }

    /// Validates the whole `POST /api/input` body against the current screen, then runs
    /// every action in order through XTEST and waits until the X server has processed them.
    /// Nothing is sent when validation fails.
    pub fn input(&self, body: &[u8]) -> Result<InputSummary, DesktopError> {
        let started = InProgress::new(&self.in_progress);
        let result = with_session(&self.session, &self.display, |s| {
            let (width, height) = s.screen_size()?;
            let actions = actions::parse(body, width, height, self.type_delay)?;
            input::run(s, &actions)?;
            Ok(actions.len())
        });
        drop(started);
        let n = result?;
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        self.actions_total.fetch_add(n as u64, Ordering::Relaxed);
        self.last_input_unix_ms.store(unix_ms(), Ordering::Relaxed);
        Ok(InputSummary {
            ok: true,
            actions: n,
        })
    }

    /// Whether an agent is acting, for the viewer.
    pub fn activity(&self) -> AgentActivity {
        let last = self.last_input_unix_ms.load(Ordering::Relaxed);
        let in_progress = self.in_progress.load(Ordering::Relaxed);
        let recent =
            last != 0 && unix_ms().saturating_sub(last) < AGENT_ACTIVE_WINDOW.as_millis() as u64;
        AgentActivity {
            active: in_progress > 0 || recent,
            in_progress,
            requests_total: self.requests_total.load(Ordering::Relaxed),
            actions_total: self.actions_total.load(Ordering::Relaxed),
            last_input_unix_ms: (last != 0).then_some(last),
        }
    }

    /// A screenshot as PNG or JPEG bytes.
    pub fn screenshot(&self, req: &ScreenshotRequest) -> Result<Screenshot, DesktopError> {
        let mut guard = lock(&self.capture);
        // Two attempts: a stale connection (X server restarted) is replaced once.
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(screenshot::Capturer::connect(&self.display)?);
            }
            let Some(capturer) = guard.as_mut() else {
                continue;
            };
            match capturer.screenshot(req) {
                Err(e) if e.is_connection() => {
                    *guard = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
        Err(DesktopError::Unavailable("could not reconnect".into()))
    }

    /// Whether screenshots go through MIT-SHM (`None` before the first screenshot).
    pub fn screenshot_uses_shm(&self) -> Option<bool> {
        lock(&self.capture).as_ref().map(|c| c.uses_shm())
    }

    /// Top-level windows, topmost last.
    pub fn windows(&self) -> Result<Vec<WindowInfo>, DesktopError> {
        with_session(&self.query, &self.display, windows::list)
    }

    /// Focuses and raises window `id` (an id from [`Desktop::windows`]).
    pub fn focus_window(&self, id: u32) -> Result<(), DesktopError> {
        with_session(&self.session, &self.display, |s| windows::focus(s, id))
    }

    /// The CLIPBOARD selection as text; `None` when nobody owns it or it has no text.
    pub fn clipboard_get(&self) -> Result<Option<String>, DesktopError> {
        clipboard::get(&self.display)
    }

    /// Makes deskd the CLIPBOARD owner serving `text` until someone else takes it.
    pub fn clipboard_set(&self, text: String) -> Result<(), DesktopError> {
        let owner = clipboard::Owner::start(&self.display, text)?;
        // The previous owner thread sees SelectionClear and ends on its own.
        *lock(&self.clipboard) = Some(owner);
        Ok(())
    }
}

/// Counts a running input request for as long as it lives.
struct InProgress<'a>(&'a AtomicU64);

impl<'a> InProgress<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InProgress(counter)
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
