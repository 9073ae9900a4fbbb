//! Top-level windows: the mapped children of the root (stacking order, topmost last), each
//! reported by its client window (the one with WM_STATE below a window manager's frame, or
//! the child itself without a window manager); focusing with SetInputFocus + raise, plus a
//! `_NET_ACTIVE_WINDOW` request when an EWMH window manager runs.

use serde::Serialize;
use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _, EventMask,
    InputFocus, MapState, StackMode, Window,
};
use x11rb::{CURRENT_TIME, NONE};

use super::{DesktopError, Session};

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        WM_STATE,
        _NET_WM_NAME,
        _NET_ACTIVE_WINDOW,
        _NET_SUPPORTING_WM_CHECK,
        _NET_WM_PID,
        UTF8_STRING,
    }
}

/// Largest depth searched for a client window below a frame.
const MAX_FRAME_DEPTH: usize = 3;

/// One top-level window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowInfo {
    /// The client window id (use it with `POST /api/windows/{id}/focus`).
    pub id: u32,
    /// `_NET_WM_NAME`, else `WM_NAME`; empty if neither is set.
    pub title: String,
    /// `WM_CLASS` class part, if set.
    pub class: Option<String>,
    /// `_NET_WM_PID`, if set.
    pub pid: Option<u32>,
    /// Position on the screen (of the frame, when there is one) and size.
    pub x: i16,
    pub y: i16,
    pub width: u16,
    pub height: u16,
    pub focused: bool,
}

/// The top-level windows, topmost last.
pub(crate) fn list(s: &mut Session) -> Result<Vec<WindowInfo>, DesktopError> {
    let atoms = Atoms::new(&s.conn)?.reply()?;
    let focus = focused_window(s, &atoms)?;
    let tree = s.conn.query_tree(s.root)?.reply()?;
    let mut out = Vec::new();
    for top in tree.children {
        // Windows may vanish between calls: skip them rather than fail the list.
        if let Some(Some(info)) = ignore_gone(describe(s, &atoms, top, focus))? {
            out.push(info);
        }
    }
    Ok(out)
}

/// `Ok(None)` for BadWindow/BadDrawable-like errors of a window that went away.
fn ignore_gone<T>(r: Result<T, DesktopError>) -> Result<Option<T>, DesktopError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(DesktopError::X11(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn describe(
    s: &Session,
    atoms: &Atoms,
    top: Window,
    focus: Option<Window>,
) -> Result<Option<WindowInfo>, DesktopError> {
    let attrs = s.conn.get_window_attributes(top)?.reply()?;
    if attrs.map_state != MapState::VIEWABLE || attrs.override_redirect {
        return Ok(None);
    }
    let geometry = s.conn.get_geometry(top)?.reply()?;
    let client = find_client(s, atoms, top, 0)?.unwrap_or(top);
    let (width, height) = if client == top {
        (geometry.width, geometry.height)
    } else {
        let g = s.conn.get_geometry(client)?.reply()?;
        (g.width, g.height)
    };
    let focused = match focus {
        Some(f) => f == client || f == top || is_descendant(s, f, top)?,
        None => false,
    };
    Ok(Some(WindowInfo {
        id: client,
        title: title(s, atoms, client)?,
        class: wm_class(s, client)?,
        pid: cardinal(s, client, atoms._NET_WM_PID)?,
        x: geometry.x,
        y: geometry.y,
        width,
        height,
        focused,
    }))
}

/// The window with WM_STATE at or below `w` (a frame's client), if any.
fn find_client(
    s: &Session,
    atoms: &Atoms,
    w: Window,
    depth: usize,
) -> Result<Option<Window>, DesktopError> {
    let state = s
        .conn
        .get_property(false, w, atoms.WM_STATE, AtomEnum::ANY, 0, 0)?
        .reply()?;
    if state.type_ != NONE {
        return Ok(Some(w));
    }
    if depth >= MAX_FRAME_DEPTH {
        return Ok(None);
    }
    for child in s.conn.query_tree(w)?.reply()?.children.into_iter().rev() {
        if let Some(found) = find_client(s, atoms, child, depth + 1)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn text_property(
    s: &Session,
    w: Window,
    prop: Atom,
    type_: Atom,
) -> Result<Option<String>, DesktopError> {
    let reply = s
        .conn
        .get_property(false, w, prop, type_, 0, 1024)?
        .reply()?;
    if reply.type_ == NONE || reply.value.is_empty() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&reply.value).into_owned()))
}

fn title(s: &Session, atoms: &Atoms, w: Window) -> Result<String, DesktopError> {
    if let Some(t) = text_property(s, w, atoms._NET_WM_NAME, atoms.UTF8_STRING)? {
        return Ok(t);
    }
    // WM_NAME is usually Latin-1 (STRING); decoding it as such keeps ASCII exact.
    let reply = s
        .conn
        .get_property(false, w, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 1024)?
        .reply()?;
    Ok(match std::str::from_utf8(&reply.value) {
        Ok(t) => t.to_string(),
        Err(_) => reply.value.iter().map(|b| char::from(*b)).collect(),
    })
}

fn wm_class(s: &Session, w: Window) -> Result<Option<String>, DesktopError> {
    let reply = s
        .conn
        .get_property(false, w, AtomEnum::WM_CLASS, AtomEnum::STRING, 0, 256)?
        .reply()?;
    // "instance\0class\0"
    Ok(reply
        .value
        .split(|b| *b == 0)
        .nth(1)
        .filter(|c| !c.is_empty())
        .map(|c| String::from_utf8_lossy(c).into_owned()))
}

fn cardinal(s: &Session, w: Window, prop: Atom) -> Result<Option<u32>, DesktopError> {
    let reply = s
        .conn
        .get_property(false, w, prop, AtomEnum::CARDINAL, 0, 1)?
        .reply()?;
    Ok(reply.value32().and_then(|mut v| v.next()))
}

/// Whether an EWMH window manager runs (its check window is set on the root).
fn ewmh_wm(s: &Session, atoms: &Atoms) -> Result<bool, DesktopError> {
    let check = s
        .conn
        .get_property(
            false,
            s.root,
            atoms._NET_SUPPORTING_WM_CHECK,
            AtomEnum::WINDOW,
            0,
            1,
        )?
        .reply()?;
    Ok(check
        .value32()
        .and_then(|mut v| v.next())
        .is_some_and(|w| w != NONE))
}

/// The focused window: `_NET_ACTIVE_WINDOW` under an EWMH window manager, else the X input
/// focus. `None` when nothing is focused.
fn focused_window(s: &Session, atoms: &Atoms) -> Result<Option<Window>, DesktopError> {
    if ewmh_wm(s, atoms)? {
        if let Some(w) = cardinal_window(s, s.root, atoms._NET_ACTIVE_WINDOW)? {
            return Ok(Some(w));
        }
    }
    let focus = s.conn.get_input_focus()?.reply()?.focus;
    // 0 = None, 1 = PointerRoot.
    Ok((focus > 1 && focus != s.root).then_some(focus))
}

fn cardinal_window(s: &Session, w: Window, prop: Atom) -> Result<Option<Window>, DesktopError> {
    let reply = s
        .conn
        .get_property(false, w, prop, AtomEnum::WINDOW, 0, 1)?
        .reply()?;
    Ok(reply
        .value32()
        .and_then(|mut v| v.next())
        .filter(|w| *w != NONE))
}

/// Whether `w` is below `ancestor` in the window tree.
fn is_descendant(s: &Session, mut w: Window, ancestor: Window) -> Result<bool, DesktopError> {
    for _ in 0..32 {
        let tree = match s.conn.query_tree(w)?.reply() {
            Ok(t) => t,
            Err(ReplyError::X11Error(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if tree.parent == ancestor {
            return Ok(true);
        }
        if tree.parent == NONE || tree.parent == s.root {
            return Ok(false);
        }
        w = tree.parent;
    }
    Ok(false)
}

/// Focuses and raises `id`, which must be one of [`list`]'s ids.
pub(crate) fn focus(s: &mut Session, id: u32) -> Result<(), DesktopError> {
    let atoms = Atoms::new(&s.conn)?.reply()?;
    let tree = s.conn.query_tree(s.root)?.reply()?;
    // The top-level (frame) window holding client `id`.
    let mut top = None;
    for child in tree.children {
        if let Some(Some(info)) = ignore_gone(describe(s, &atoms, child, None))? {
            if info.id == id {
                top = Some(child);
            }
        }
    }
    let Some(top) = top else {
        return Err(DesktopError::NotFound(format!(
            "no top-level window with id {id} (see GET /api/windows)"
        )));
    };
    if ewmh_wm(s, &atoms)? {
        // Source indication 2: a pager or tool acting for the user, which WMs obey.
        let event =
            ClientMessageEvent::new(32, id, atoms._NET_ACTIVE_WINDOW, [2, CURRENT_TIME, 0, 0, 0]);
        s.conn.send_event(
            false,
            s.root,
            EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY,
            event,
        )?;
    }
    s.conn
        .configure_window(top, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE))?
        .check()?;
    s.conn
        .set_input_focus(InputFocus::PARENT, id, CURRENT_TIME)?
        .check()?;
    s.conn.flush()?;
    Ok(())
}
