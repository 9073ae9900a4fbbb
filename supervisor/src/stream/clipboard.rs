//! The desktop's clipboard, told to the native stream's control viewers (as neko tells its
//! host): text copied on the desktop can be pasted in the person's own machine. A thread of
//! its own watches who owns CLIPBOARD (XFixes selection events) while the stream runs, and
//! reads the new text through `desktop::clipboard` (its own connection and timeouts), so a
//! slow or dead clipboard owner never holds up capture. View-only viewers are never told:
//! reading the desktop's clipboard is not viewing it.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xfixes::{self, ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::protocol::Event;

use crate::desktop::DesktopError;

/// Longest text sent to a viewer; a longer copy is not sent (and logged).
pub const MAX_TEXT: usize = 1 << 20;
/// How often the thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// Longest wait for an INCR transfer of the new text.
const INCR_TOTAL: Duration = Duration::from_secs(5);

/// Watches CLIPBOARD until dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // The thread sees it within STOP_CHECK and closes its connection.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Watcher {
    /// Starts watching `display`; `told(text)` is called with each new clipboard text.
    pub fn start(
        display: &str,
        told: impl Fn(String) + Send + 'static,
    ) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = display.to_string();
        std::thread::Builder::new()
            .name("deskd-clipboard".into())
            .spawn(move || {
                if let Err(e) = watch(&name, &flag, &told) {
                    tracing::warn!(display = %name, "clipboard watch stopped: {e}");
                }
            })?;
        Ok(Watcher { stop })
    }
}

fn watch(display: &str, stop: &AtomicBool, told: &dyn Fn(String)) -> Result<(), DesktopError> {
    let (conn, screen) = crate::desktop::connect(display)?;
    if conn
        .extension_information(xfixes::X11_EXTENSION_NAME)?
        .is_none()
    {
        return Err(DesktopError::Invalid(format!("{display} has no XFixes")));
    }
    conn.xfixes_query_version(5, 0)?.reply()?;
    let clipboard = conn.intern_atom(false, b"CLIPBOARD")?.reply()?.atom;
    conn.xfixes_select_selection_input(
        screen.root,
        clipboard,
        SelectionEventMask::SET_SELECTION_OWNER
            | SelectionEventMask::SELECTION_WINDOW_DESTROY
            | SelectionEventMask::SELECTION_CLIENT_CLOSE,
    )?
    .check()?;
    let mut last: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        conn.flush()?;
        let mut fds = [PollFd::new(conn.stream().as_fd(), PollFlags::POLLIN)];
        let ms = STOP_CHECK.as_millis() as u16;
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(DesktopError::Unavailable(format!("poll: {e}"))),
        }
        let mut changed = false;
        while let Some(event) = conn.poll_for_event()? {
            changed |= matches!(event, Event::XfixesSelectionNotify(e) if e.selection == clipboard);
        }
        if !changed || stop.load(Ordering::Relaxed) {
            continue;
        }
        let text = match crate::desktop::clipboard::get_within(display, INCR_TOTAL) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!("clipboard not read: {e}");
                continue;
            }
        };
        if last.as_deref() == Some(text.as_str()) {
            continue;
        }
        if text.len() > MAX_TEXT {
            tracing::info!(
                bytes = text.len(),
                "desktop clipboard not sent to viewers: over {MAX_TEXT} bytes"
            );
            continue;
        }
        last = Some(text.clone());
        told(text);
    }
    Ok(())
}
