//! Screen capture for the native stream, on an X connection of its own: XDamage on the root
//! window says when and where the screen changed, and the changed rows are read with
//! ShmGetImage straight into a persistent MIT-SHM segment that holds the whole screen (the
//! frame buffer: nothing is copied). The cursor is not in the picture: XFixes cursor-change
//! events give its image, QueryPointer its position. A size change of the root window (RandR)
//! is seen as its ConfigureNotify.
//!
//! Pixels must be 32 bits per pixel, little-endian BGRX (Xvfb's default depth 24); other
//! formats are refused at connect with a message saying so.

use std::ops::Range;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::desktop::xconn::XConn;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::ReplyError;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    self, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Window,
};
use x11rb::protocol::ErrorKind;
use x11rb::protocol::Event;

use crate::desktop::screenshot::ShmSegment;
use crate::desktop::DesktopError;

/// The cursor's shape, ready for the wire (`0x02`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    pub width: u16,
    pub height: u16,
    pub xhot: u16,
    pub yhot: u16,
    pub png: Vec<u8>,
}

/// A rectangle of the screen, in root coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

impl Rect {
    /// The box around `rects`, clipped to `within`; `None` when nothing of them is inside.
    pub fn bounding(rects: &[xproto::Rectangle], within: Rect) -> Option<Rect> {
        let (x1, y1) = (i32::from(within.x), i32::from(within.y));
        let (x2, y2) = (x1 + i32::from(within.width), y1 + i32::from(within.height));
        let (mut left, mut top, mut right, mut bottom) = (x2, y2, x1, y1);
        for r in rects {
            left = left.min(i32::from(r.x).max(x1));
            top = top.min(i32::from(r.y).max(y1));
            right = right.max((i32::from(r.x) + i32::from(r.width)).min(x2));
            bottom = bottom.max((i32::from(r.y) + i32::from(r.height)).min(y2));
        }
        (left < right && top < bottom).then(|| Rect {
            x: left as u16,
            y: top as u16,
            width: (right - left) as u16,
            height: (bottom - top) as u16,
        })
    }

    /// Pixels covered.
    pub fn area(&self) -> usize {
        usize::from(self.width) * usize::from(self.height)
    }
}

/// What one grab read: the changed box and the whole rows it spans (read into the frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub rows: Range<usize>,
    pub rect: Rect,
}

/// The capture connection of one display.
pub struct Capture {
    conn: XConn,
    root: Window,
    damage: damage::Damage,
    /// Scratch XFixes region that receives the damage on each grab.
    parts: xfixes::Region,
    shm: ShmSegment,
    width: u16,
    height: u16,
    /// DamageNotify seen since the last grab (or the whole screen is to be read).
    damaged: bool,
    /// DamageNotify seen since the last [`Capture::grab_small`].
    fresh: bool,
    /// Damage taken from the server but not read yet (too large for `grab_small`).
    held: Option<Rect>,
    full: bool,
    cursor_changed: bool,
    resized: bool,
}

fn x11(e: impl std::fmt::Display) -> DesktopError {
    DesktopError::X11(e.to_string())
}

impl Capture {
    /// Connects to `display` and sets up damage tracking, cursor events and the SHM frame.
    pub fn connect(display: &str) -> Result<Capture, DesktopError> {
        let (conn, screen) = crate::desktop::connect(display)?;
        let root = screen.root;
        let setup = conn.setup();
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == screen.root_depth)
            .map(|f| f.bits_per_pixel);
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|d| d.visuals.iter())
            .find(|v| v.visual_id == screen.root_visual);
        let bgrx = bpp == Some(32)
            && setup.image_byte_order == xproto::ImageOrder::LSB_FIRST
            && visual.is_some_and(|v| {
                (v.red_mask, v.green_mask, v.blue_mask) == (0xff0000, 0xff00, 0xff)
            });
        if !bgrx {
            return Err(DesktopError::Invalid(format!(
                "the native stream needs a depth-24 display with 32-bit BGRX pixels; {display} has depth {}",
                screen.root_depth
            )));
        }
        for (name, ok) in [
            (
                damage::X11_EXTENSION_NAME,
                conn.extension_information(damage::X11_EXTENSION_NAME)?
                    .is_some(),
            ),
            (
                xfixes::X11_EXTENSION_NAME,
                conn.extension_information(xfixes::X11_EXTENSION_NAME)?
                    .is_some(),
            ),
            (
                x11rb::protocol::shm::X11_EXTENSION_NAME,
                conn.extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME)?
                    .is_some(),
            ),
        ] {
            if !ok {
                return Err(DesktopError::Invalid(format!(
                    "the native stream needs the X extension {name}, which {display} lacks"
                )));
            }
        }
        conn.xfixes_query_version(5, 0)?.reply()?;
        conn.damage_query_version(1, 1)?.reply()?;
        let shm_version = conn.shm_query_version()?.reply()?;
        if (shm_version.major_version, shm_version.minor_version) < (1, 2) {
            return Err(DesktopError::Invalid(
                "the native stream needs MIT-SHM 1.2 (fd passing)".into(),
            ));
        }
        let geometry = conn.get_geometry(root)?.reply()?;
        let (width, height) = (geometry.width, geometry.height);
        let shm = ShmSegment::create(&conn, frame_len(width, height)).map_err(x11)?;
        let damage = conn.generate_id()?;
        conn.damage_create(damage, root, damage::ReportLevel::NON_EMPTY)?
            .check()?;
        let parts = conn.generate_id()?;
        conn.xfixes_create_region(parts, &[])?.check()?;
        conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)?
            .check()?;
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )?
        .check()?;
        Ok(Capture {
            conn,
            root,
            damage,
            parts,
            shm,
            width,
            height,
            damaged: true,
            fresh: true,
            held: None,
            full: true,
            cursor_changed: true,
            resized: false,
        })
    }

    /// The screen size.
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// Bytes per row of [`Capture::pixels`].
    pub fn stride(&self) -> usize {
        usize::from(self.width) * 4
    }

    /// The whole screen as of the last grabs (BGRX rows of [`Capture::stride`] bytes).
    pub fn pixels(&self) -> &[u8] {
        self.shm.bytes(self.stride() * usize::from(self.height))
    }

    /// Whether the screen changed since the last [`Capture::grab`].
    pub fn damaged(&self) -> bool {
        self.damaged
    }

    /// The next grab reads the whole screen.
    pub fn invalidate(&mut self) {
        self.damaged = true;
        self.full = true;
    }

    /// Whether the cursor's shape changed since the last [`Capture::cursor_image`].
    pub fn cursor_changed(&self) -> bool {
        self.cursor_changed
    }

    /// The screen size changed since the last call (the frame is already re-made).
    pub fn take_resized(&mut self) -> bool {
        std::mem::take(&mut self.resized)
    }

    /// Waits up to `timeout` for X events (returning at once if some are queued) and
    /// applies them. `wake` is another descriptor that ends the wait when readable.
    pub fn wait_with(
        &mut self,
        timeout: Duration,
        wake: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<bool, DesktopError> {
        self.conn.flush()?;
        if self.drain()? {
            return Ok(false);
        }
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = vec![PollFd::new(self.conn.stream().as_fd(), PollFlags::POLLIN)];
        if let Some(w) = wake {
            fds.push(PollFd::new(w, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(DesktopError::Unavailable(format!("poll: {e}"))),
        }
        let woken = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        self.drain()?;
        Ok(woken)
    }

    /// [`Capture::wait_with`] without a wake descriptor.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), DesktopError> {
        self.wait_with(timeout, None).map(drop)
    }

    /// Applies every queued event; whether there were any.
    fn drain(&mut self) -> Result<bool, DesktopError> {
        let mut any = false;
        while let Some(event) = self.conn.poll_for_event()? {
            any = true;
            match event {
                Event::DamageNotify(_) => {
                    self.damaged = true;
                    self.fresh = true;
                }
                Event::XfixesCursorNotify(_) => self.cursor_changed = true,
                Event::ConfigureNotify(e)
                    if e.window == self.root
                        && (e.width, e.height) != (self.width, self.height) =>
                {
                    self.resize(e.width, e.height)?;
                }
                _ => {}
            }
        }
        Ok(any)
    }

    /// Takes the damage from the server: its bounding box (with what is held), or `None`.
    fn take_damage(&mut self) -> Result<Option<Rect>, DesktopError> {
        self.conn
            .damage_subtract(self.damage, x11rb::NONE, self.parts)?;
        let rects = self
            .conn
            .xfixes_fetch_region(self.parts)?
            .reply()?
            .rectangles;
        let whole = self.whole();
        if std::mem::take(&mut self.full) {
            self.held = None;
            return Ok(Some(whole));
        }
        let held = self.held.take().map(|r| xproto::Rectangle {
            x: r.x as i16,
            y: r.y as i16,
            width: r.width,
            height: r.height,
        });
        Ok(Rect::bounding(
            &rects.into_iter().chain(held).collect::<Vec<_>>(),
            whole,
        ))
    }

    fn whole(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }

    /// Reads the rows of `rect` into the frame; `None` when the screen turned out to have
    /// changed size (the frame is re-made, [`Capture::take_resized`] says so).
    fn read(&mut self, rect: Rect) -> Result<Option<Damage>, DesktopError> {
        let rows = usize::from(rect.y)..usize::from(rect.y) + usize::from(rect.height);
        let reply = self
            .conn
            .shm_get_image(
                self.root,
                0,
                rect.y as i16,
                self.width,
                rect.height,
                !0,
                xproto::ImageFormat::Z_PIXMAP.into(),
                self.shm.seg,
                (rows.start * self.stride()) as u32,
            )?
            .reply();
        match reply {
            Ok(_) => Ok(Some(Damage { rows, rect })),
            // Rows outside the root: the screen shrank (RandR) and its ConfigureNotify is
            // still on the way. Its size now, not a failed stream.
            Err(ReplyError::X11Error(e)) if e.error_kind == ErrorKind::Match => {
                let g = self.conn.get_geometry(self.root)?.reply()?;
                if (g.width, g.height) == (self.width, self.height) {
                    return Err(ReplyError::X11Error(e).into());
                }
                self.resize(g.width, g.height)?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn resize(&mut self, width: u16, height: u16) -> Result<(), DesktopError> {
        let shm = ShmSegment::create(&self.conn, frame_len(width, height)).map_err(x11)?;
        self.conn.shm_detach(self.shm.seg)?;
        self.shm = shm;
        self.width = width;
        self.height = height;
        self.resized = true;
        self.invalidate();
        Ok(())
    }

    /// Reads what changed into the frame: where it changed, or `None` when nothing did.
    pub fn grab(&mut self) -> Result<Option<Damage>, DesktopError> {
        if !self.damaged {
            return Ok(None);
        }
        self.damaged = false;
        self.fresh = false;
        match self.take_damage()? {
            Some(rect) => self.read(rect),
            None => Ok(None),
        }
    }

    /// Like [`Capture::grab`], but only for new damage of at most `max_pixels`: a larger
    /// change is held for the next `grab` (it is read at the frame rate, a small one at once).
    pub fn grab_small(&mut self, max_pixels: usize) -> Result<Option<Damage>, DesktopError> {
        if !self.fresh || self.full {
            return Ok(None);
        }
        self.fresh = false;
        match self.take_damage()? {
            Some(rect) if rect.area() <= max_pixels => {
                self.damaged = false;
                self.read(rect)
            }
            Some(rect) => {
                self.held = Some(rect);
                Ok(None)
            }
            None => {
                self.damaged = false;
                Ok(None)
            }
        }
    }

    /// The pointer's position in root coordinates.
    pub fn pointer(&self) -> Result<(i16, i16), DesktopError> {
        let p = self.conn.query_pointer(self.root)?.reply()?;
        Ok((p.root_x, p.root_y))
    }

    /// The cursor's current image as PNG (clears [`Capture::cursor_changed`]).
    pub fn cursor_image(&mut self) -> Result<CursorImage, DesktopError> {
        self.cursor_changed = false;
        let c = self.conn.xfixes_get_cursor_image()?.reply()?;
        let png = cursor_png(&c.cursor_image, c.width, c.height)?;
        Ok(CursorImage {
            width: c.width,
            height: c.height,
            xhot: c.xhot,
            yhot: c.yhot,
            png,
        })
    }
}

fn frame_len(width: u16, height: u16) -> usize {
    (usize::from(width) * 4 * usize::from(height)).max(4096)
}

/// XFixes' premultiplied ARGB → straight-alpha RGBA PNG.
pub fn cursor_png(argb: &[u32], width: u16, height: u16) -> Result<Vec<u8>, DesktopError> {
    let n = usize::from(width) * usize::from(height);
    let mut rgba = Vec::with_capacity(n * 4);
    for &p in argb.iter().take(n) {
        let a = (p >> 24) as u8;
        let un = |c: u32| -> u8 {
            let c = (c & 0xff) as u16;
            if a == 0 {
                0
            } else {
                ((c * 255 + u16::from(a) / 2) / u16::from(a)).min(255) as u8
            }
        };
        rgba.extend_from_slice(&[un(p >> 16), un(p >> 8), un(p), a]);
    }
    rgba.resize(n * 4, 0);
    let mut out = Vec::new();
    let err = |e: png::EncodingError| DesktopError::Encode(format!("cursor png: {e}"));
    let mut encoder = png::Encoder::new(&mut out, u32::from(width), u32::from(height));
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(&rgba).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Rect;
    use x11rb::protocol::xproto::Rectangle;

    #[test]
    fn bounding_box_is_clipped_to_the_screen() {
        let screen = Rect {
            x: 0,
            y: 0,
            width: 100,
            height: 50,
        };
        let r = |x, y, width, height| Rectangle {
            x,
            y,
            width,
            height,
        };
        assert_eq!(
            Rect::bounding(&[r(10, 5, 4, 4), r(20, 30, 10, 2)], screen),
            Some(Rect {
                x: 10,
                y: 5,
                width: 20,
                height: 27
            })
        );
        assert_eq!(
            Rect::bounding(&[r(-5, -5, 10, 10), r(95, 45, 20, 20)], screen),
            Some(screen)
        );
        assert_eq!(Rect::bounding(&[], screen), None);
        assert_eq!(Rect::bounding(&[r(200, 0, 5, 5)], screen), None);
    }

    #[test]
    fn cursor_png_unpremultiplies() {
        // Half-transparent white (premultiplied 0x80808080) and opaque red.
        let png = super::cursor_png(&[0x8080_8080, 0xffff_0000], 2, 1).expect("png");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("info");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        reader.next_frame(&mut buf).expect("frame");
        assert_eq!(&buf[..8], &[255, 255, 255, 128, 255, 0, 0, 255]);
    }
}
