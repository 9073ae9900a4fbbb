//! Runs validated [`Action`]s through XTEST FakeInput on the session's connection, then
//! syncs (a GetInputFocus round trip) so that once this returns the X server has processed
//! every event, and a screenshot taken next sees their effect as far as X is concerned.

use std::cell::RefCell;
use std::thread;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, Keycode, BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT,
    KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::CURRENT_TIME;

use super::actions::{Action, Button, KeyMode, Point};
use super::keymap::{KeyPos, Keymap, Resolved};
use super::keys::{self, Keysym, XK_SHIFT_L};
use super::{DesktopError, Session};

/// Pause between the clicks of a double or triple click: well inside every toolkit's
/// double-click time (GTK 400 ms, Qt 400 ms, Chromium 500 ms).
const MULTI_CLICK_INTERVAL: Duration = Duration::from_millis(40);
/// Intermediate pointer positions of a drag, so toolkits see motion beyond their drag
/// threshold while the button is down.
const DRAG_STEPS: i32 = 8;
const DRAG_STEP_PAUSE: Duration = Duration::from_millis(4);
/// Pause before rebinding spare keycodes, so clients have looked up the previous keys.
const REBIND_PAUSE: Duration = Duration::from_millis(50);
/// How long keyboard input waits after a button release. A click is how an agent focuses a
/// window, but the window manager moves the focus only after it has seen the click (openbox:
/// a passive grab, then SetInputFocus), so keys sent at once went to the previously focused
/// window and were lost — the race xdotool hides by being a new process per command.
const FOCUS_SETTLE: Duration = Duration::from_millis(50);
/// How long the first key event of a connection is given to settle (see `warm_up_keyboard`).
const KEYBOARD_WARM_UP: Duration = Duration::from_millis(50);

/// Slices a long pause is cut into, to notice a requester that has gone.
const GONE_CHECK: Duration = Duration::from_millis(50);

/// Runs `actions` in order.
pub(crate) fn run(s: &mut Session, actions: &[Action]) -> Result<(), DesktopError> {
    run_unless(s, actions, &|| false)
}

/// [`run`] that stops before the next action (or within a pause) once `gone()` says the
/// requester has gone ([`DesktopError::Abandoned`]). A batch that stops early, abandoned or
/// failed, releases the keys and buttons it pressed and did not release: a `down` left held
/// on purpose is one of a batch that ran to its end.
pub(crate) fn run_unless(
    s: &mut Session,
    actions: &[Action],
    gone: &dyn Fn() -> bool,
) -> Result<(), DesktopError> {
    let mut x = Xtest {
        s,
        batch: Vec::new(),
        gone,
        held: RefCell::new(Vec::new()),
    };
    let result = run_all(&mut x, actions);
    if result.is_err() {
        let held = std::mem::take(&mut *x.held.borrow_mut());
        for (kind, detail) in held.into_iter().rev() {
            let release = if kind == KEY_PRESS_EVENT {
                KEY_RELEASE_EVENT
            } else {
                BUTTON_RELEASE_EVENT
            };
            // Best effort: the connection may be what failed.
            let _ = x.fake(release, detail, None);
        }
        let _ = x.s.conn.flush();
    }
    result
}

fn run_all(x: &mut Xtest<'_>, actions: &[Action]) -> Result<(), DesktopError> {
    let mut keymap: Option<Keymap> = None;
    for action in actions {
        if (x.gone)() {
            x.s.conn.flush()?;
            return Err(DesktopError::Abandoned);
        }
        match action {
            Action::Move(p) => x.motion(*p)?,
            Action::Click { at, button, count } => {
                if let Some(p) = at {
                    x.motion(*p)?;
                }
                for i in 0..*count {
                    if i > 0 {
                        x.pause(MULTI_CLICK_INTERVAL)?;
                    }
                    x.button(*button, true)?;
                    x.button(*button, false)?;
                }
            }
            Action::Button { at, button, down } => {
                if let Some(p) = at {
                    x.motion(*p)?;
                }
                x.button(*button, *down)?;
            }
            Action::Drag { from, to, button } => x.drag(*from, *to, *button)?,
            Action::Scroll { at, dx, dy } => {
                if let Some(p) = at {
                    x.motion(*p)?;
                }
                let (vertical, horizontal) =
                    (if *dy < 0 { 4 } else { 5 }, if *dx < 0 { 6 } else { 7 });
                for (button, n) in [
                    (vertical, dy.unsigned_abs()),
                    (horizontal, dx.unsigned_abs()),
                ] {
                    for _ in 0..n {
                        x.button(button, true)?;
                        x.button(button, false)?;
                    }
                }
            }
            Action::Key { combos, mode } => {
                x.settle_focus()?;
                let km = keymap_of(&mut keymap, x.s)?;
                for combo in combos {
                    x.combo(km, combo, *mode)?;
                }
            }
            Action::Type { text, delay } => {
                x.settle_focus()?;
                let km = keymap_of(&mut keymap, x.s)?;
                x.type_text(km, text, *delay)?;
            }
            Action::Wait(d) => x.pause(*d)?,
        }
    }
    x.s.conn.get_input_focus()?.reply()?;
    Ok(())
}

/// The keymap, fetched once per request on first keyboard use.
fn keymap_of<'k>(
    slot: &'k mut Option<Keymap>,
    s: &mut Session,
) -> Result<&'k mut Keymap, DesktopError> {
    if slot.is_none() {
        let keymap = Keymap::fetch(&s.conn)?;
        warm_up_keyboard(s, &keymap)?;
        *slot = Some(keymap);
    }
    slot.as_mut()
        .ok_or_else(|| DesktopError::X11("keyboard mapping unavailable".into()))
}

/// The first XTEST key event the server sees switches the core keyboard to the "XTEST
/// keyboard" device, and the X server tells every client the keyboard changed. Under a window
/// manager (seen with openbox and xterm) the keys that follow at once were lost: the whole
/// first `type` of a fresh desktop vanished, while later ones arrived. So once per connection,
/// before any real key, press and release Shift (it types nothing), let the server and
/// clients process the switch, then go on. (Not a keycode without keysym: a spare keycode
/// bound right after would make clients, which translate keycodes late, see that keysym.)
fn warm_up_keyboard(s: &mut Session, keymap: &Keymap) -> Result<(), DesktopError> {
    if s.keyboard_warm {
        return Ok(());
    }
    s.keyboard_warm = true;
    let Some(KeyPos { keycode, .. }) = keymap.find(XK_SHIFT_L) else {
        return Ok(());
    };
    for kind in [KEY_PRESS_EVENT, KEY_RELEASE_EVENT] {
        s.conn
            .xtest_fake_input(kind, keycode, CURRENT_TIME, s.root, 0, 0, 0)?;
    }
    s.conn.get_input_focus()?.reply()?;
    thread::sleep(KEYBOARD_WARM_UP);
    Ok(())
}

struct Xtest<'s> {
    s: &'s mut Session,
    /// Spare keycodes bound since the last sync.
    batch: Vec<Keycode>,
    gone: &'s dyn Fn() -> bool,
    /// Keys and buttons this batch pressed and has not released: (press event, detail).
    held: RefCell<Vec<(u8, u8)>>,
}

impl Xtest<'_> {
    fn fake(&self, kind: u8, detail: u8, p: Option<Point>) -> Result<(), DesktopError> {
        let (x, y) = p.map_or((0, 0), |p| (p.x, p.y));
        self.s
            .conn
            .xtest_fake_input(kind, detail, CURRENT_TIME, self.s.root, x, y, 0)?;
        let mut held = self.held.borrow_mut();
        match kind {
            KEY_PRESS_EVENT | BUTTON_PRESS_EVENT => held.push((kind, detail)),
            KEY_RELEASE_EVENT => held.retain(|&h| h != (KEY_PRESS_EVENT, detail)),
            BUTTON_RELEASE_EVENT => held.retain(|&h| h != (BUTTON_PRESS_EVENT, detail)),
            _ => {}
        }
        Ok(())
    }

    fn motion(&self, p: Point) -> Result<(), DesktopError> {
        self.fake(MOTION_NOTIFY_EVENT, 0, Some(p))
    }

    fn button(&mut self, button: Button, down: bool) -> Result<(), DesktopError> {
        let kind = if down {
            BUTTON_PRESS_EVENT
        } else {
            self.s.last_button_release = Some(Instant::now());
            BUTTON_RELEASE_EVENT
        };
        self.fake(kind, button, None)
    }

    /// Before keyboard input: if a button was released less than [`FOCUS_SETTLE`] ago (in
    /// this request or the previous one), let the X server deliver the click and the window
    /// manager react before the first key.
    fn settle_focus(&mut self) -> Result<(), DesktopError> {
        let Some(released) = self.s.last_button_release.take() else {
            return Ok(());
        };
        if let Some(left) = FOCUS_SETTLE.checked_sub(released.elapsed()) {
            self.s.conn.get_input_focus()?.reply()?;
            self.pause(left)?;
        }
        Ok(())
    }

    fn key(&self, keycode: Keycode, down: bool) -> Result<(), DesktopError> {
        let kind = if down {
            KEY_PRESS_EVENT
        } else {
            KEY_RELEASE_EVENT
        };
        self.fake(kind, keycode, None)
    }

    /// Flushes what was queued, then sleeps: the events before the pause really happen
    /// before it.
    fn pause(&mut self, d: Duration) -> Result<(), DesktopError> {
        self.s.conn.flush()?;
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            if (self.gone)() {
                return Err(DesktopError::Abandoned);
            }
            thread::sleep(left.min(GONE_CHECK));
        }
    }

    fn drag(&mut self, from: Point, to: Point, button: Button) -> Result<(), DesktopError> {
        self.motion(from)?;
        self.pause(DRAG_STEP_PAUSE)?;
        self.button(button, true)?;
        for i in 1..=DRAG_STEPS {
            let lerp = |a: i16, b: i16| {
                (i32::from(a) + (i32::from(b) - i32::from(a)) * i / DRAG_STEPS) as i16
            };
            self.pause(DRAG_STEP_PAUSE)?;
            self.motion(Point {
                x: lerp(from.x, to.x),
                y: lerp(from.y, to.y),
            })?;
        }
        self.pause(DRAG_STEP_PAUSE)?;
        self.button(button, false)
    }

    /// Where `keysym` is, binding a spare keycode if needed (syncing and pausing first when
    /// every spare keycode is in use by this batch).
    fn resolve(&mut self, keymap: &mut Keymap, keysym: Keysym) -> Result<KeyPos, DesktopError> {
        for _ in 0..2 {
            match self
                .s
                .remap
                .resolve(&self.s.conn, keymap, &mut self.batch, keysym)?
            {
                Resolved::At(pos) => return Ok(pos),
                Resolved::NeedNewBatch => {
                    self.s.conn.get_input_focus()?.reply()?;
                    thread::sleep(REBIND_PAUSE);
                    self.batch.clear();
                }
            }
        }
        Err(DesktopError::X11(format!(
            "could not bind keysym 0x{keysym:x}"
        )))
    }

    fn shift_keycode(&mut self, keymap: &mut Keymap) -> Result<Keycode, DesktopError> {
        Ok(self.resolve(keymap, XK_SHIFT_L)?.keycode)
    }

    /// Presses the keys of `combo` in order (adding Shift where a key is on level 1) and/or
    /// releases them in reverse.
    fn combo(
        &mut self,
        keymap: &mut Keymap,
        combo: &[Keysym],
        mode: KeyMode,
    ) -> Result<(), DesktopError> {
        let mut codes: Vec<Keycode> = Vec::with_capacity(combo.len() + 1);
        for &keysym in combo {
            let pos = self.resolve(keymap, keysym)?;
            if pos.shift {
                let shift = self.shift_keycode(keymap)?;
                if !codes.contains(&shift) {
                    codes.push(shift);
                }
            }
            codes.push(pos.keycode);
        }
        if mode != KeyMode::Up {
            for &k in &codes {
                self.key(k, true)?;
            }
        }
        if mode != KeyMode::Down {
            for &k in codes.iter().rev() {
                self.key(k, false)?;
            }
        }
        Ok(())
    }

    fn type_text(
        &mut self,
        keymap: &mut Keymap,
        text: &str,
        delay: Duration,
    ) -> Result<(), DesktopError> {
        for (i, c) in text.chars().filter(|c| *c != '\r').enumerate() {
            let Some(keysym) = keys::keysym_from_char(c) else {
                continue;
            };
            if i > 0 && !delay.is_zero() {
                self.pause(delay)?;
            }
            let pos = self.resolve(keymap, keysym)?;
            let shift = if pos.shift {
                Some(self.shift_keycode(keymap)?)
            } else {
                None
            };
            if let Some(shift) = shift {
                self.key(shift, true)?;
            }
            self.key(pos.keycode, true)?;
            self.key(pos.keycode, false)?;
            if let Some(shift) = shift {
                self.key(shift, false)?;
            }
        }
        Ok(())
    }
}
