//! Changes sent ahead of the video. A changed box of at most [`MAX_TILE_PIXELS`] goes to the
//! viewers as raw RGBA the moment it is read, before the H.264 frame that carries the same
//! change is encoded (openh264 takes about 10 ms on a 1280x720 screen however little changed)
//! and decoded (4-6 ms in Chromium). A typed character, a caret, a highlighted menu entry: most
//! input changes a few pixels, and these are on screen one encode and one decode sooner. A box
//! of one colour, of any size (a cleared terminal, a blank window, a page's background), goes
//! as a fill of 16 bytes, as VNC's encodings send solid rectangles.
//!
//! The video stays the truth: the page paints a tile at once and paints it again over every
//! decoded frame older than the tile's `seq` (the first frame encoded after the tile was read),
//! then forgets it, so the picture never steps back. A byte budget ([`TILE_BYTES_PER_SEC`],
//! burst [`TILE_BURST`]) bounds what tiles add to the stream; beyond it a change waits for the
//! video like any other.

use std::time::Instant;

use bytes::Bytes;

use super::capture::Rect;
use super::protocol;

/// The largest box sent as a tile (128x128 pixels: 64 KiB of RGBA).
pub const MAX_TILE_PIXELS: usize = 128 * 128;
/// Tile bytes per second, per viewer, sustained.
pub const TILE_BYTES_PER_SEC: f64 = 512.0 * 1024.0;
/// Tile bytes that may go at once after a quiet spell.
pub const TILE_BURST: f64 = 128.0 * 1024.0;

/// A token bucket of tile bytes.
#[derive(Debug)]
pub struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    pub fn new(now: Instant) -> Budget {
        Budget {
            tokens: TILE_BURST,
            at: now,
        }
    }

    /// Takes `bytes` if the budget has them at `now`.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * TILE_BYTES_PER_SEC;
        self.tokens = (self.tokens + earned).min(TILE_BURST);
        self.at = now;
        let want = bytes as f64;
        if want <= self.tokens {
            self.tokens -= want;
            true
        } else {
            false
        }
    }
}

/// The part of `rect` inside a `frame` of (width, height); `None` if nothing is.
pub fn clip(rect: Rect, frame: (u16, u16)) -> Option<Rect> {
    let width = rect.width.min(frame.0.saturating_sub(rect.x));
    let height = rect.height.min(frame.1.saturating_sub(rect.y));
    (width > 0 && height > 0).then_some(Rect {
        width,
        height,
        ..rect
    })
}

/// What goes ahead of the video for a changed box (already [`clip`]ped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One colour (R, G, B) throughout: a fill.
    Fill([u8; 3]),
    /// Small enough for raw pixels.
    Pixels,
}

impl Kind {
    /// The message's size in bytes.
    pub fn bytes(self, rect: Rect) -> usize {
        match self {
            Kind::Fill(_) => protocol::FILL_LEN,
            Kind::Pixels => protocol::TILE_HEADER + rect.area() * 4,
        }
    }
}

/// How `rect` of `pixels` (BGRX rows of `stride` bytes) goes ahead of the video, if at all: a
/// fill when it is one colour, raw pixels when it is small.
pub fn kind(pixels: &[u8], stride: usize, rect: Rect) -> Option<Kind> {
    if let Some(rgb) = uniform(pixels, stride, rect) {
        return Some(Kind::Fill(rgb));
    }
    (rect.area() <= MAX_TILE_PIXELS).then_some(Kind::Pixels)
}

/// The colour of `rect` if every pixel has it (the X padding byte is ignored). Stops at the
/// first pixel that differs, so a box that is not uniform costs next to nothing.
pub fn uniform(pixels: &[u8], stride: usize, rect: Rect) -> Option<[u8; 3]> {
    let (x, w) = (usize::from(rect.x) * 4, usize::from(rect.width) * 4);
    let y = usize::from(rect.y);
    let first = pixels.get(y * stride + x..y * stride + x + 4)?;
    let colour = [first[2], first[1], first[0]];
    let one = u32::from_le_bytes([first[0], first[1], first[2], 0]);
    let two = u64::from(one) | u64::from(one) << 32;
    const MASK: u64 = 0x00ff_ffff_00ff_ffff;
    for row in y..y + usize::from(rect.height) {
        let line = pixels.get(row * stride + x..row * stride + x + w)?;
        let mut pairs = line.chunks_exact(8);
        for p in &mut pairs {
            let v = u64::from_le_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]]);
            if v & MASK != two {
                return None;
            }
        }
        if let [b, g, r, _] = pairs.remainder() {
            if [*r, *g, *b] != colour {
                return None;
            }
        }
    }
    Some(colour)
}

/// The message of `rect` (already [`clip`]ped) of `kind`: `0x12` fill or `0x11` tile.
pub fn message(seq: u32, kind: Kind, pixels: &[u8], stride: usize, rect: Rect) -> Option<Bytes> {
    match kind {
        Kind::Fill(rgb) => Some(protocol::fill(seq, rect, rgb)),
        Kind::Pixels => pixel_message(seq, pixels, stride, rect),
    }
}

/// The `0x11` tile message of `rect` from `pixels`: BGRX rows of `stride`
/// bytes covering the whole screen. `None` if `pixels` does not hold the box.
fn pixel_message(seq: u32, pixels: &[u8], stride: usize, rect: Rect) -> Option<Bytes> {
    let (x, w) = (usize::from(rect.x), usize::from(rect.width));
    let mut rgba = Vec::with_capacity(rect.area() * 4);
    for row in usize::from(rect.y)..usize::from(rect.y) + usize::from(rect.height) {
        let start = row * stride + x * 4;
        let line = pixels.get(start..start + w * 4)?;
        for p in line.chunks_exact(4) {
            rgba.extend_from_slice(&[p[2], p[1], p[0], 255]);
        }
    }
    Some(protocol::tile(seq, rect, &rgba))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::test_screen::{bgrx as screen, rect};
    use std::time::Duration;

    #[test]
    fn boxes_are_clipped_to_the_frame() {
        assert_eq!(
            clip(rect(10, 10, 8, 16), (100, 100)),
            Some(rect(10, 10, 8, 16))
        );
        // clipped to an even-sized frame one pixel smaller than the screen
        assert_eq!(clip(rect(96, 0, 5, 5), (99, 100)), Some(rect(96, 0, 3, 5)));
        assert_eq!(clip(rect(100, 0, 5, 5), (100, 100)), None);
    }

    #[test]
    fn one_colour_is_a_fill_at_any_size_else_only_small_boxes_go() {
        let (w, h) = (400, 300);
        // white, with one dark pixel at (399, 299) and a stripe at x = 150 from y = 100
        let px = screen(w, h, |x, y| match (x, y) {
            (399, 299) => [1, 2, 3],
            (150, 100..) => [255, 0, 0],
            _ => [255, 255, 255],
        });
        let stride = w * 4;
        assert_eq!(
            kind(&px, stride, rect(0, 0, 300, 100)),
            Some(Kind::Fill([255, 255, 255]))
        );
        // odd widths end in a single pixel, compared too
        assert_eq!(
            kind(&px, stride, rect(0, 0, 151, 199)),
            None,
            "the stripe's first pixel is the box's last"
        );
        assert_eq!(
            kind(&px, stride, rect(151, 100, 249, 200)),
            None,
            "the last pixel differs"
        );
        assert_eq!(
            kind(&px, stride, rect(151, 100, 248, 200)),
            Some(Kind::Fill([255, 255, 255]))
        );
        assert_eq!(
            kind(&px, stride, rect(140, 100, 20, 20)),
            Some(Kind::Pixels)
        );
        assert_eq!(uniform(&px, stride, rect(0, 290, 400, 20)), None, "outside");
        let m = message(7, Kind::Fill([1, 2, 3]), &px, stride, rect(4, 5, 600, 70)).expect("fill");
        assert_eq!(
            &m[..],
            &[0x12, 0, 0, 0, 7, 0, 4, 0, 5, 2, 88, 0, 70, 1, 2, 3]
        );
        assert_eq!(m.len(), Kind::Fill([0; 3]).bytes(rect(0, 0, 1, 1)));
    }

    #[test]
    fn pixels_are_cut_out_as_rgba() {
        // a 3x2 BGRX screen, pixel (x, y) = [x, y, 7, 0]
        let mut px = Vec::new();
        for y in 0..2u8 {
            for x in 0..3u8 {
                px.extend_from_slice(&[x, y, 7, 0]);
            }
        }
        let m = message(9, Kind::Pixels, &px, 12, rect(1, 1, 2, 1)).expect("tile");
        assert_eq!(&m[13..], &[7, 1, 1, 255, 7, 1, 2, 255]);
        assert_eq!(message(9, Kind::Pixels, &px, 12, rect(2, 1, 2, 1)), None);
    }

    #[test]
    fn the_budget_refills_at_its_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        assert!(b.take(TILE_BURST as usize, t0));
        assert!(!b.take(1024, t0));
        assert!(b.take(1024, t0 + Duration::from_millis(10)));
        let later = t0 + Duration::from_secs(60);
        assert!(!b.take(TILE_BURST as usize + 1, later));
        assert!(b.take(TILE_BURST as usize, later));
    }
}
