//! The CLIPBOARD selection as text. Reading converts the selection to a window of deskd's
//! own (UTF8_STRING, then STRING), with a timeout and INCR transfers up to [`MAX_TEXT`]
//! bytes and [`INCR_TOTAL`] seconds (so an owner that drips bytes cannot hold a thread).
//! Writing starts an owner thread on its own X connection that answers SelectionRequest
//! events (TARGETS, TIMESTAMP, UTF8_STRING, TEXT, STRING, text/plain) until another client
//! takes the selection (SelectionClear) or the X server goes away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, Property,
    SelectionNotifyEvent, SelectionRequestEvent, Timestamp, Window, WindowClass,
    SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{COPY_DEPTH_FROM_PARENT, CURRENT_TIME, NONE};

use super::xconn::XConn;
use super::DesktopError;

/// Largest clipboard text read or served, in bytes.
pub const MAX_TEXT: usize = 16 << 20;
/// How long the selection owner has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole INCR (incremental) transfer may take, however fast each chunk comes.
pub const INCR_TOTAL: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(2);

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        CLIPBOARD,
        UTF8_STRING,
        TARGETS,
        TEXT,
        TIMESTAMP,
        INCR,
        DESKD_SELECTION,
        TEXT_PLAIN_UTF8: b"text/plain;charset=utf-8",
        TEXT_PLAIN: b"text/plain",
    }
}

/// A connection with a small unmapped window of deskd's own.
struct Client {
    conn: XConn,
    window: Window,
    atoms: Atoms,
}

impl Client {
    fn open(display: &str) -> Result<Client, DesktopError> {
        let (conn, screen) = super::connect(display)?;
        let root = screen.root;
        let atoms = Atoms::new(&conn)?.reply()?;
        let window = conn.generate_id()?;
        conn.create_window(
            COPY_DEPTH_FROM_PARENT,
            window,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?;
        Ok(Client {
            conn,
            window,
            atoms,
        })
    }

    /// Waits for the first event `want` accepts, up to `deadline`.
    fn wait_for<T>(
        &self,
        deadline: Instant,
        what: &str,
        mut want: impl FnMut(&Event) -> Option<T>,
    ) -> Result<T, DesktopError> {
        self.conn.flush()?;
        loop {
            while let Some(event) = self.conn.poll_for_event()? {
                if let Some(v) = want(&event) {
                    return Ok(v);
                }
            }
            if Instant::now() >= deadline {
                return Err(DesktopError::Timeout(format!(
                    "the clipboard owner did not answer within {}s ({what})",
                    TIMEOUT.as_secs()
                )));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// A server timestamp, from a zero-length property append (ICCCM: never use CurrentTime
    /// to take a selection).
    fn server_time(&self) -> Result<Timestamp, DesktopError> {
        self.conn.change_property8(
            PropMode::APPEND,
            self.window,
            self.atoms.DESKD_SELECTION,
            AtomEnum::STRING,
            &[],
        )?;
        let window = self.window;
        self.wait_for(Instant::now() + TIMEOUT, "timestamp", |e| match e {
            Event::PropertyNotify(p) if p.window == window => Some(p.time),
            _ => None,
        })
    }
}

/// Reads CLIPBOARD as text; `None` when nobody owns it or the owner has no text.
pub fn get(display: &str) -> Result<Option<String>, DesktopError> {
    get_within(display, INCR_TOTAL)
}

/// As [`get`], with `incr_total` instead of [`INCR_TOTAL`] as the limit for a whole INCR
/// transfer (tests use a short one).
pub fn get_within(display: &str, incr_total: Duration) -> Result<Option<String>, DesktopError> {
    let c = Client::open(display)?;
    let owner = c
        .conn
        .get_selection_owner(c.atoms.CLIPBOARD)?
        .reply()?
        .owner;
    if owner == NONE {
        return Ok(None);
    }
    for target in [c.atoms.UTF8_STRING, AtomEnum::STRING.into()] {
        if let Some(bytes) = convert(&c, target, incr_total)? {
            let text = if target == c.atoms.UTF8_STRING {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                bytes.iter().map(|b| char::from(*b)).collect()
            };
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// Asks the owner for `target`; `None` if it refuses. An INCR transfer must end within
/// `incr_total` of its start, each chunk within [`TIMEOUT`].
fn convert(
    c: &Client,
    target: Atom,
    incr_total: Duration,
) -> Result<Option<Vec<u8>>, DesktopError> {
    let (window, prop) = (c.window, c.atoms.DESKD_SELECTION);
    c.conn.delete_property(window, prop)?;
    c.conn
        .convert_selection(window, c.atoms.CLIPBOARD, target, prop, CURRENT_TIME)?;
    let deadline = Instant::now() + TIMEOUT;
    let property = c.wait_for(deadline, "SelectionNotify", |e| match e {
        Event::SelectionNotify(n) if n.requestor == window => Some(n.property),
        _ => None,
    })?;
    if property == NONE {
        return Ok(None);
    }
    let reply = c
        .conn
        .get_property(true, window, prop, AtomEnum::ANY, 0, (MAX_TEXT / 4) as u32)?
        .reply()?;
    if reply.bytes_after > 0 {
        return Err(too_large());
    }
    if reply.type_ != c.atoms.INCR {
        return Ok(Some(reply.value));
    }
    // INCR: deleting the property (done above) asks for the next chunk; a zero-length chunk
    // ends the transfer.
    let total_deadline = Instant::now() + incr_total;
    let mut data = Vec::new();
    let over_time = |received: usize| {
        DesktopError::Timeout(format!(
            "the clipboard owner did not finish its incremental (INCR) transfer within {:.1}s, \
             the limit for a whole transfer ({received} bytes received)",
            incr_total.as_secs_f64()
        ))
    };
    loop {
        let now = Instant::now();
        if now >= total_deadline {
            return Err(over_time(data.len()));
        }
        let chunk = c.wait_for(
            (now + TIMEOUT).min(total_deadline),
            "INCR chunk",
            |e| match e {
                Event::PropertyNotify(p)
                    if p.window == window && p.atom == prop && p.state == Property::NEW_VALUE =>
                {
                    Some(())
                }
                _ => None,
            },
        );
        match chunk {
            Err(DesktopError::Timeout(_)) if Instant::now() >= total_deadline => {
                return Err(over_time(data.len()));
            }
            other => other?,
        }
        let chunk = c
            .conn
            .get_property(true, window, prop, AtomEnum::ANY, 0, (MAX_TEXT / 4) as u32)?
            .reply()?;
        if chunk.value.is_empty() {
            return Ok(Some(data));
        }
        data.extend_from_slice(&chunk.value);
        if data.len() > MAX_TEXT {
            return Err(too_large());
        }
    }
}

fn too_large() -> DesktopError {
    DesktopError::TooLarge(format!("clipboard text larger than {} MiB", MAX_TEXT >> 20))
}

/// A running selection owner thread.
pub struct Owner {
    alive: Arc<AtomicBool>,
}

impl Owner {
    /// Takes CLIPBOARD with `text`; returns once the X server confirms the ownership.
    pub fn start(display: &str, text: String) -> Result<Owner, DesktopError> {
        let c = Client::open(display)?;
        // Leave room for the request header; larger texts would need INCR serving.
        if text.len() + 64 > c.conn.maximum_request_bytes() || text.len() > MAX_TEXT {
            return Err(DesktopError::TooLarge(format!(
                "clipboard text of {} bytes is larger than this X server accepts in one request ({} bytes)",
                text.len(),
                c.conn.maximum_request_bytes().saturating_sub(64)
            )));
        }
        let time = c.server_time()?;
        c.conn
            .set_selection_owner(c.window, c.atoms.CLIPBOARD, time)?;
        let owner = c
            .conn
            .get_selection_owner(c.atoms.CLIPBOARD)?
            .reply()?
            .owner;
        if owner != c.window {
            return Err(DesktopError::X11(
                "the X server did not give deskd the clipboard".into(),
            ));
        }
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        thread::Builder::new()
            .name("deskd-clipboard".into())
            .spawn(move || {
                if let Err(e) = serve(&c, &text, time) {
                    tracing::debug!(error = %e, "clipboard owner ended");
                }
                flag.store(false, Ordering::Relaxed);
            })
            .map_err(|e| DesktopError::X11(format!("cannot start the clipboard thread: {e}")))?;
        Ok(Owner { alive })
    }

    /// Whether deskd still owns the selection.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }
}

/// Answers selection requests until SelectionClear or a connection error. (Waiting for the
/// next request has no deadline: a quiet clipboard is no failure.)
fn serve(c: &Client, text: &str, time: Timestamp) -> Result<(), DesktopError> {
    loop {
        let event = match c.conn.wait_for_event() {
            Ok(event) => event,
            Err(e) if super::xconn::is_timeout(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        match event {
            Event::SelectionClear(e) if e.owner == c.window => return Ok(()),
            Event::SelectionRequest(req) => answer(c, &req, text, time)?,
            _ => {}
        }
    }
}

fn answer(
    c: &Client,
    req: &SelectionRequestEvent,
    text: &str,
    time: Timestamp,
) -> Result<(), DesktopError> {
    let a = &c.atoms;
    // Obsolete clients pass no property: use the target (ICCCM 2.2).
    let property = if req.property == NONE {
        req.target
    } else {
        req.property
    };
    let mut reply_property = property;
    if req.selection != a.CLIPBOARD {
        reply_property = NONE;
    } else if req.target == a.TARGETS {
        let targets = [
            a.TARGETS,
            a.TIMESTAMP,
            a.UTF8_STRING,
            a.TEXT,
            a.TEXT_PLAIN_UTF8,
            AtomEnum::STRING.into(),
        ];
        c.conn.change_property32(
            PropMode::REPLACE,
            req.requestor,
            property,
            AtomEnum::ATOM,
            &targets,
        )?;
    } else if req.target == a.TIMESTAMP {
        c.conn.change_property32(
            PropMode::REPLACE,
            req.requestor,
            property,
            AtomEnum::INTEGER,
            &[time],
        )?;
    } else if [a.UTF8_STRING, a.TEXT, a.TEXT_PLAIN_UTF8].contains(&req.target) {
        let type_ = if req.target == a.TEXT_PLAIN_UTF8 {
            a.TEXT_PLAIN_UTF8
        } else {
            a.UTF8_STRING
        };
        c.conn.change_property8(
            PropMode::REPLACE,
            req.requestor,
            property,
            type_,
            text.as_bytes(),
        )?;
    } else if req.target == Atom::from(AtomEnum::STRING) || req.target == a.TEXT_PLAIN {
        let latin1: Vec<u8> = text
            .chars()
            .map(|ch| u8::try_from(u32::from(ch)).unwrap_or(b'?'))
            .collect();
        c.conn.change_property8(
            PropMode::REPLACE,
            req.requestor,
            property,
            req.target,
            &latin1,
        )?;
    } else {
        reply_property = NONE;
    }
    let notify = SelectionNotifyEvent {
        response_type: SELECTION_NOTIFY_EVENT,
        sequence: 0,
        time: req.time,
        requestor: req.requestor,
        selection: req.selection,
        target: req.target,
        property: reply_property,
    };
    c.conn
        .send_event(false, req.requestor, EventMask::NO_EVENT, notify)?;
    c.conn.flush()?;
    Ok(())
}
