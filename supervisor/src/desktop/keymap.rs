//! Keysym → keycode for XTEST: looks keysyms up in the server's core keyboard mapping (level
//! 0, or level 1 with Shift), and binds keysyms that are not on the keymap to spare keycodes
//! with ChangeKeyboardMapping, as xdotool does.
//!
//! Bindings are left in place after use (a client may look the keycode up only when it gets
//! round to processing the event) and are reused least-recently-used first; within one batch
//! of keystrokes a spare keycode is never rebound, the caller syncs and pauses first.

use super::xconn::XConn;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, Keycode};

use super::keys::Keysym;
use super::DesktopError;

const NO_SYMBOL: Keysym = 0;

/// A snapshot of the core keyboard mapping.
pub struct Keymap {
    min_keycode: Keycode,
    per_keycode: usize,
    syms: Vec<Keysym>,
}

/// Where a keysym is on the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPos {
    pub keycode: Keycode,
    /// The keysym is on level 1: hold Shift.
    pub shift: bool,
}

impl Keymap {
    pub fn fetch(conn: &XConn) -> Result<Keymap, DesktopError> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let count = max.saturating_sub(min).saturating_add(1);
        let reply = conn.get_keyboard_mapping(min, count)?.reply()?;
        Ok(Keymap {
            min_keycode: min,
            per_keycode: usize::from(reply.keysyms_per_keycode).max(1),
            syms: reply.keysyms,
        })
    }

    fn keycodes(&self) -> impl Iterator<Item = (Keycode, &[Keysym])> + '_ {
        self.syms
            .chunks(self.per_keycode)
            .enumerate()
            .map(|(i, syms)| (self.min_keycode.saturating_add(i as u8), syms))
    }

    /// The first keycode with `keysym` on level 0, else the first with it on level 1.
    pub fn find(&self, keysym: Keysym) -> Option<KeyPos> {
        let on_level = |level: usize| {
            self.keycodes()
                .find(|(_, syms)| syms.get(level) == Some(&keysym))
                .map(|(keycode, _)| keycode)
        };
        if let Some(keycode) = on_level(0) {
            return Some(KeyPos {
                keycode,
                shift: false,
            });
        }
        on_level(1).map(|keycode| KeyPos {
            keycode,
            shift: true,
        })
    }

    /// Keycodes with no keysym at all.
    fn empty_keycodes(&self) -> impl Iterator<Item = Keycode> + '_ {
        self.keycodes()
            .filter(|(_, syms)| syms.iter().all(|s| *s == NO_SYMBOL))
            .map(|(keycode, _)| keycode)
    }

    fn set(&mut self, keycode: Keycode, keysym: Keysym) {
        let start = usize::from(keycode.saturating_sub(self.min_keycode)) * self.per_keycode;
        if let Some(syms) = self.syms.get_mut(start..start + self.per_keycode) {
            syms.fill(NO_SYMBOL);
            for s in syms.iter_mut().take(2) {
                *s = keysym;
            }
        }
    }
}

/// The spare keycodes deskd has bound, for reuse across requests.
#[derive(Default)]
pub struct Remapper {
    /// (keycode, keysym), least recently used first.
    bound: Vec<(Keycode, Keysym)>,
}

/// Outcome of [`Remapper::resolve`].
pub enum Resolved {
    At(KeyPos),
    /// Every spare keycode was bound in this batch: sync, pause, call
    /// [`Remapper::new_batch`] and retry.
    NeedNewBatch,
}

impl Remapper {
    /// Finds `keysym` on the keyboard, binding a spare keycode to it if needed.
    /// `batch` holds the keycodes bound during the current batch; they are not rebound.
    pub fn resolve(
        &mut self,
        conn: &XConn,
        keymap: &mut Keymap,
        batch: &mut Vec<Keycode>,
        keysym: Keysym,
    ) -> Result<Resolved, DesktopError> {
        if let Some(pos) = keymap.find(keysym) {
            if let Some(i) = self.bound.iter().position(|(k, _)| *k == pos.keycode) {
                let entry = self.bound.remove(i);
                self.bound.push(entry);
            }
            return Ok(Resolved::At(pos));
        }
        // A never-used empty keycode first, else our least recently used binding.
        let fresh = keymap
            .empty_keycodes()
            .find(|k| !self.bound.iter().any(|(b, _)| b == k) && !batch.contains(k));
        let keycode = match fresh {
            Some(k) => k,
            None => match self.bound.iter().find(|(k, _)| !batch.contains(k)) {
                Some((k, _)) => *k,
                None if batch.is_empty() => {
                    return Err(DesktopError::Invalid(format!(
                        "keysym 0x{keysym:x} is not on the keymap and no keycode is free to bind it"
                    )))
                }
                None => return Ok(Resolved::NeedNewBatch),
            },
        };
        conn.change_keyboard_mapping(1, keycode, 2, &[keysym, keysym])?;
        keymap.set(keycode, keysym);
        self.bound.retain(|(k, _)| *k != keycode);
        self.bound.push((keycode, keysym));
        batch.push(keycode);
        Ok(Resolved::At(KeyPos {
            keycode,
            shift: false,
        }))
    }
}
