//! Small changes sent ahead of the video. A changed box of at most [`MAX_TILE_PIXELS`] goes
//! to the viewers as raw RGBA the moment it is read, before the H.264 frame that carries the
//! same change is encoded (openh264 takes about 10 ms on a 1280x720 screen however little
//! changed) and decoded (4-6 ms in Chromium). A typed character, a caret, a highlighted menu
//! entry: most input changes a few pixels, and these are on screen one encode and one decode
//! sooner.
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

/// The part of `rect` inside a `frame` of (width, height), if it is small enough for a tile.
pub fn fit(rect: Rect, frame: (u16, u16)) -> Option<Rect> {
    let width = rect.width.min(frame.0.saturating_sub(rect.x));
    let height = rect.height.min(frame.1.saturating_sub(rect.y));
    let r = Rect {
        width,
        height,
        ..rect
    };
    (width > 0 && height > 0 && r.area() <= MAX_TILE_PIXELS).then_some(r)
}

/// The `0x11` tile message of `rect` (already [`fit`]) from `pixels`: BGRX rows of `stride`
/// bytes covering the whole screen. `None` if `pixels` does not hold the box.
pub fn message(seq: u32, pixels: &[u8], stride: usize, rect: Rect) -> Option<Bytes> {
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
    use std::time::Duration;

    fn rect(x: u16, y: u16, width: u16, height: u16) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn only_small_boxes_inside_the_frame_are_tiles() {
        assert_eq!(
            fit(rect(10, 10, 8, 16), (100, 100)),
            Some(rect(10, 10, 8, 16))
        );
        // clipped to an even-sized frame one pixel smaller than the screen
        assert_eq!(fit(rect(96, 0, 5, 5), (99, 100)), Some(rect(96, 0, 3, 5)));
        assert_eq!(fit(rect(100, 0, 5, 5), (100, 100)), None);
        assert_eq!(fit(rect(0, 0, 129, 128), (1280, 720)), None);
        assert!(fit(rect(0, 0, 1280, 12), (1280, 720)).is_some());
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
        let m = message(9, &px, 12, rect(1, 1, 2, 1)).expect("tile");
        assert_eq!(&m[13..], &[7, 1, 1, 255, 7, 1, 2, 255]);
        assert_eq!(message(9, &px, 12, rect(2, 1, 2, 1)), None);
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
