//! The X clients of the stream benchmark's workloads: a full-screen window that flips between
//! black and white on every key press (its own thread and X connection), and xterms (one
//! that echoes what is typed, one that scrolls text), found and focused through x11rb.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ClientMessageEvent, ConfigureWindowAux, ConnectionExt, CreateGCAux,
    CreateWindowAux, EventMask, InputFocus, Rectangle, StackMode, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::procs::{self, Proc};

pub const WHITE: u32 = 0xffffff;
pub const BLACK: u32 = 0x000000;

/// The flip window: override-redirect, covering the screen, white or black.
pub struct Flip {
    conn: Arc<RustConnection>,
    window: Window,
    gc: u32,
    size: (u16, u16),
    white: Arc<AtomicBool>,
    presses: Arc<AtomicU64>,
    /// Wall-clock µs of the last key press the window received.
    pressed_us: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn paint(conn: &RustConnection, window: Window, gc: u32, size: (u16, u16), white: bool) {
    let _ = conn.change_gc(
        gc,
        &ChangeGCAux::new().foreground(if white { WHITE } else { BLACK }),
    );
    let _ = conn.poly_fill_rectangle(
        window,
        gc,
        &[Rectangle {
            x: 0,
            y: 0,
            width: size.0,
            height: size.1,
        }],
    );
    let _ = conn.flush();
}

impl Flip {
    pub fn open(display: &str, size: (u16, u16)) -> Result<Flip> {
        let (conn, screen_num) =
            RustConnection::connect(Some(display)).context("connect the flip client to X")?;
        let screen = &conn.setup().roots[screen_num];
        let (root, depth, visual) = (screen.root, screen.root_depth, screen.root_visual);
        let window = conn.generate_id()?;
        conn.create_window(
            depth,
            window,
            root,
            0,
            0,
            size.0,
            size.1,
            0,
            WindowClass::INPUT_OUTPUT,
            visual,
            &CreateWindowAux::new()
                .background_pixel(WHITE)
                .override_redirect(1)
                .event_mask(EventMask::KEY_PRESS | EventMask::EXPOSURE),
        )?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new().foreground(WHITE))?;
        conn.flush()?;
        let conn = Arc::new(conn);
        let white = Arc::new(AtomicBool::new(true));
        let presses = Arc::new(AtomicU64::new(0));
        let pressed_us = Arc::new(AtomicU64::new(0));
        let thread = {
            let (conn, white, presses, pressed_us) = (
                conn.clone(),
                white.clone(),
                presses.clone(),
                pressed_us.clone(),
            );
            std::thread::spawn(move || {
                while let Ok(ev) = conn.wait_for_event() {
                    match ev {
                        Event::KeyPress(_) => {
                            let us = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_micros() as u64);
                            pressed_us.store(us, Ordering::SeqCst);
                            let now = !white.load(Ordering::SeqCst);
                            white.store(now, Ordering::SeqCst);
                            paint(&conn, window, gc, size, now);
                            presses.fetch_add(1, Ordering::SeqCst);
                        }
                        Event::Expose(_) => {
                            paint(&conn, window, gc, size, white.load(Ordering::SeqCst))
                        }
                        Event::ClientMessage(_) => break,
                        _ => {}
                    }
                }
            })
        };
        Ok(Flip {
            conn,
            window,
            gc,
            size,
            white,
            presses,
            pressed_us,
            thread: Some(thread),
        })
    }

    /// Maps and raises the window, gives it the keyboard and paints it `white` or black.
    pub fn show(&self, white: bool) -> Result<()> {
        self.conn.map_window(self.window)?;
        self.conn.configure_window(
            self.window,
            &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE),
        )?;
        self.conn
            .set_input_focus(InputFocus::POINTER_ROOT, self.window, x11rb::CURRENT_TIME)?;
        self.set(white)
    }

    pub fn hide(&self) -> Result<()> {
        self.conn.unmap_window(self.window)?;
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Paints the window and waits until the server has done it.
    pub fn set(&self, white: bool) -> Result<()> {
        self.white.store(white, Ordering::SeqCst);
        paint(&self.conn, self.window, self.gc, self.size, white);
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    pub fn is_white(&self) -> bool {
        self.white.load(Ordering::SeqCst)
    }

    /// When the last key press reached the window (wall-clock ms, as the page's clock).
    pub fn pressed_ms(&self) -> f64 {
        self.pressed_us.load(Ordering::SeqCst) as f64 / 1000.0
    }

    /// Key presses received so far.
    pub fn presses(&self) -> u64 {
        self.presses.load(Ordering::SeqCst)
    }

    /// Gives the keyboard focus to `window` (an xterm's).
    pub fn focus(&self, window: Window) -> Result<()> {
        self.conn
            .set_input_focus(InputFocus::POINTER_ROOT, window, x11rb::CURRENT_TIME)?;
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}

impl Drop for Flip {
    fn drop(&mut self) {
        let stop = ClientMessageEvent::new(32, self.window, 0u32, [0u32; 5]);
        let _ = self
            .conn
            .send_event(false, self.window, EventMask::NO_EVENT, stop);
        let _ = self.conn.flush();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.flush();
    }
}

/// An xterm at +0+0 filling a 1280x720 screen (128x36 cells of the 10x20 font), running
/// `script` with `sh -c`; the script's first line writes `$WINDOWID` to `id_file`. Returns
/// the process and the xterm's window once the script runs.
pub fn xterm(display: &str, script: &str, id_file: &Path) -> Result<(Proc, Window)> {
    let _ = std::fs::remove_file(id_file);
    let mut cmd = Command::new("xterm");
    cmd.args([
        "-fn",
        "10x20",
        "-geometry",
        "128x36+0+0",
        "-bg",
        "white",
        "-fg",
        "black",
        "+sb",
        "-bw",
        "0",
        "-e",
        "sh",
        "-c",
    ])
    .arg(format!(
        "echo \"$WINDOWID\" > '{}'; {script}",
        id_file.display()
    ))
    .env("DISPLAY", display)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut proc = procs::spawn(
        "xterm",
        &mut cmd,
        nix::sys::signal::Signal::SIGKILL,
        Duration::from_millis(500),
    )?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(id) = std::fs::read_to_string(id_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            return Ok((proc, id));
        }
        if let Some(status) = proc.exited() {
            bail!("xterm exited at start ({status}); is the 10x20 font (xfonts-base) installed?");
        }
        if Instant::now() > deadline {
            bail!("xterm did not start within 15 s");
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}
