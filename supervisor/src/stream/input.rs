//! Input from control clients of the native stream, applied through XTEST on an X connection
//! of its own, on a thread of its own fed by a bounded channel (so a flood of input waits in
//! the client's socket, not in deskd). The messages become the agent API's validated
//! [`Action`]s and run through `desktop::input`, which owns keysym → keycode lookup and spare
//! keycode binding. `paste` types text as the API's `type` does; `clipboard` takes the
//! CLIPBOARD selection as `POST /api/clipboard` does.
//!
//! As neko does, a second press of a key or button already down is ignored, and what a
//! client still holds when it goes away is released.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;

use super::protocol::ClientMessage;
use crate::desktop::actions::{Action, KeyMode, Point};
use crate::desktop::{clipboard, input, DesktopError, Session};

/// Input messages waiting for the X thread, over all clients.
pub const QUEUE: usize = 256;
/// Most scroll steps per message and axis.
const MAX_SCROLL_STEPS: i16 = 10;
const XK_CONTROL_L: u32 = 0xffe3;
/// Buttons a client may press: left, middle, right, the wheel, back and forward.
const BUTTONS: std::ops::RangeInclusive<u32> = 1..=9;

/// What the X thread is asked to do.
#[derive(Debug)]
pub enum InputCommand {
    /// A message from control client `client`.
    Message { client: u64, message: ClientMessage },
    /// Client `client` went away: release what it holds.
    Leave { client: u64 },
}

/// The sending side; the thread ends when every sender is gone.
#[derive(Clone)]
pub struct InputSender(mpsc::Sender<InputCommand>);

impl InputSender {
    /// Queues `command`, waiting while the queue is full.
    pub async fn send(&self, command: InputCommand) -> bool {
        self.0.send(command).await.is_ok()
    }

    /// Queues `command` if there is room (for `Leave` from a drop).
    pub fn try_send(&self, command: InputCommand) -> bool {
        self.0.try_send(command).is_ok()
    }
}

/// Starts the input thread for X display `display`. It connects on the first message.
pub fn start(display: &str, type_delay: Duration) -> std::io::Result<InputSender> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let worker = Worker {
        display: display.to_string(),
        type_delay,
        session: None,
        held: HashMap::new(),
        clipboard: None,
    };
    std::thread::Builder::new()
        .name("deskd-stream-input".into())
        .spawn(move || worker.run(rx))?;
    Ok(InputSender(tx))
}

#[derive(Default)]
struct Held {
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u8>,
}

struct Worker {
    display: String,
    type_delay: Duration,
    session: Option<Session>,
    held: HashMap<u64, Held>,
    clipboard: Option<clipboard::Owner>,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<InputCommand>) {
        while let Some(first) = rx.blocking_recv() {
            // Whatever else is queued goes in the same XTEST batch (one sync at the end).
            let mut batch = vec![first];
            while batch.len() < 64 {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.apply(batch) {
                tracing::debug!(error = %e, "stream input not applied");
                if matches!(e, DesktopError::Unavailable(_)) {
                    self.session = None;
                }
            }
        }
    }

    fn session(&mut self) -> Result<&mut Session, DesktopError> {
        if self.session.is_none() {
            self.session = Some(Session::connect(&self.display)?);
        }
        self.session
            .as_mut()
            .ok_or_else(|| DesktopError::Unavailable("no connection".into()))
    }

    fn apply(&mut self, batch: Vec<InputCommand>) -> Result<(), DesktopError> {
        let (width, height) = self.session()?.screen_size()?;
        let mut actions = Vec::new();
        for command in batch {
            match command {
                InputCommand::Leave { client } => {
                    if let Some(held) = self.held.remove(&client) {
                        release_all(&held, &mut actions);
                    }
                }
                InputCommand::Message { client, message } => {
                    if let ClientMessage::Clipboard(text) = message {
                        self.flush(&mut actions)?;
                        self.clipboard = Some(clipboard::Owner::start(&self.display, text)?);
                        continue;
                    }
                    let held = self.held.entry(client).or_default();
                    to_actions(
                        message,
                        held,
                        (width, height),
                        self.type_delay,
                        &mut actions,
                    );
                }
            }
        }
        self.flush(&mut actions)
    }

    fn flush(&mut self, actions: &mut Vec<Action>) -> Result<(), DesktopError> {
        if actions.is_empty() {
            return Ok(());
        }
        let result = input::run(self.session()?, actions);
        actions.clear();
        result
    }
}

fn release_all(held: &Held, actions: &mut Vec<Action>) {
    for &button in &held.buttons {
        actions.push(Action::Button {
            at: None,
            button,
            down: false,
        });
    }
    for &keysym in &held.keys {
        actions.push(Action::Key {
            combos: vec![vec![keysym]],
            mode: KeyMode::Up,
        });
    }
}

/// The actions for one message (none for a repeated press, or one outside the limits).
fn to_actions(
    message: ClientMessage,
    held: &mut Held,
    (width, height): (u16, u16),
    type_delay: Duration,
    out: &mut Vec<Action>,
) {
    let clamp = |v: u16, size: u16| v.min(size.saturating_sub(1)).min(i16::MAX as u16) as i16;
    match message {
        ClientMessage::Move { x, y } => out.push(Action::Move(Point {
            x: clamp(x, width),
            y: clamp(y, height),
        })),
        ClientMessage::Scroll { dx, dy, control } => {
            let steps = |d: i16| -i32::from(d.clamp(-MAX_SCROLL_STEPS, MAX_SCROLL_STEPS));
            let ctrl = |mode| Action::Key {
                combos: vec![vec![XK_CONTROL_L]],
                mode,
            };
            if control {
                out.push(ctrl(KeyMode::Down));
            }
            // neko: dy > 0 is up (button 4); the API: dy < 0 is button 4.
            out.push(Action::Scroll {
                at: None,
                dx: steps(dx),
                dy: steps(dy),
            });
            if control {
                out.push(ctrl(KeyMode::Up));
            }
        }
        ClientMessage::Key { keysym, down } => {
            let changed = if down {
                keysym != 0 && held.keys.insert(keysym)
            } else {
                held.keys.remove(&keysym)
            };
            if changed {
                out.push(Action::Key {
                    combos: vec![vec![keysym]],
                    mode: if down { KeyMode::Down } else { KeyMode::Up },
                });
            }
        }
        ClientMessage::Button { button, down } => {
            if !BUTTONS.contains(&button) {
                return;
            }
            let b = button as u8;
            let changed = if down {
                held.buttons.insert(b)
            } else {
                held.buttons.remove(&b)
            };
            if changed {
                out.push(Action::Button {
                    at: None,
                    button: b,
                    down,
                });
            }
        }
        ClientMessage::Paste(text) => out.push(Action::Type {
            text,
            delay: type_delay,
        }),
        ClientMessage::Ping { .. } | ClientMessage::KeyFrame | ClientMessage::Clipboard(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(messages: Vec<ClientMessage>) -> Vec<Action> {
        let mut held = Held::default();
        let mut out = Vec::new();
        for m in messages {
            to_actions(m, &mut held, (100, 50), Duration::ZERO, &mut out);
        }
        release_all(&held, &mut out);
        out
    }

    #[test]
    fn messages_become_actions() {
        let a = actions(vec![
            ClientMessage::Move { x: 500, y: 10 },
            ClientMessage::Scroll {
                dx: 0,
                dy: 3,
                control: false,
            },
            ClientMessage::Button {
                button: 1,
                down: true,
            },
            ClientMessage::Button {
                button: 1,
                down: true,
            },
            ClientMessage::Button {
                button: 1000,
                down: true,
            },
            ClientMessage::Key {
                keysym: 0x61,
                down: true,
            },
        ]);
        assert_eq!(
            a,
            vec![
                Action::Move(Point { x: 99, y: 10 }),
                Action::Scroll {
                    at: None,
                    dx: 0,
                    dy: -3
                },
                Action::Button {
                    at: None,
                    button: 1,
                    down: true
                },
                Action::Key {
                    combos: vec![vec![0x61]],
                    mode: KeyMode::Down
                },
                // released when the client leaves
                Action::Button {
                    at: None,
                    button: 1,
                    down: false
                },
                Action::Key {
                    combos: vec![vec![0x61]],
                    mode: KeyMode::Up
                },
            ]
        );
        assert!(actions(vec![ClientMessage::Key {
            keysym: 0x61,
            down: false
        }])
        .is_empty());
    }
}
