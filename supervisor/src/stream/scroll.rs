//! Finds a vertical scroll in a changed box, for the JPEG viewers ([`super::image`]): the
//! rows of the new picture that are rows of the picture they were last sent, moved up or
//! down. A terminal printing a line, a page scrolled by the wheel: the client copies what it
//! already has (`0x14`) and only the rows that are new go as an image, as VNC's CopyRect.
//!
//! Rows are compared by a hash of their pixels inside the box: rows of the old picture whose
//! hash is unique vote for the shift that would bring each new row there; the shift with the
//! most votes wins if the longest run of rows it explains, checked pixel for pixel, covers
//! enough of the box. Costs one pass over the box in each picture.

use std::collections::HashMap;

use super::capture::Rect;

/// Boxes lower than this are not searched: an image of them costs little anyway.
pub const MIN_HEIGHT: u16 = 48;
/// A shift must explain a run of at least this many rows.
pub const MIN_RUN: usize = 24;

/// `rows` (dst_y..dst_y+height within the box's columns) of the new picture are the old
/// picture's rows `src_y..src_y+height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scroll {
    pub x: u16,
    pub width: u16,
    pub src_y: u16,
    pub dst_y: u16,
    pub height: u16,
}

impl Scroll {
    /// The rows it fills, as a box of the new picture.
    pub fn dst(&self) -> Rect {
        Rect {
            x: self.x,
            y: self.dst_y,
            width: self.width,
            height: self.height,
        }
    }
}

/// FNV-1a over 8-byte words: fast, and every pixel counts.
fn row_hash(row: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = row.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h ^ (v & 0x00ff_ffff_00ff_ffff)).wrapping_mul(0x0100_0000_01b3);
    }
    // A last odd pixel: its colour, not its padding byte.
    for &b in words.remainder().iter().take(3) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The row `y` of `pixels` inside `rect`'s columns; `None` outside the buffer.
fn row(pixels: &[u8], stride: usize, rect: Rect, y: usize) -> Option<&[u8]> {
    let start = y * stride + usize::from(rect.x) * 4;
    pixels.get(start..start + usize::from(rect.width) * 4)
}

/// Pixels equal, ignoring X's padding byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.chunks_exact(4)
            .zip(b.chunks_exact(4))
            .all(|(p, q)| p[..3] == q[..3])
}

/// The scroll inside `rect` from `old` to `new` (both BGRX screens of `stride` bytes per
/// row), if a shift explains at least [`MIN_RUN`] rows and half of the rows that changed.
pub fn find(old: &[u8], new: &[u8], stride: usize, rect: Rect) -> Option<Scroll> {
    if rect.height < MIN_HEIGHT || rect.width < 8 {
        return None;
    }
    let (top, h) = (usize::from(rect.y), usize::from(rect.height));
    let mut old_rows = Vec::with_capacity(h);
    let mut new_rows = Vec::with_capacity(h);
    for y in top..top + h {
        old_rows.push(row_hash(row(old, stride, rect, y)?));
        new_rows.push(row_hash(row(new, stride, rect, y)?));
    }
    // Rows that did not change say nothing about a shift.
    let changed = (0..h).filter(|&i| old_rows[i] != new_rows[i]).count();
    if changed < MIN_RUN {
        return None;
    }
    // Unique old rows: a blank line matches everywhere and would vote for every shift.
    let mut seen: HashMap<u64, Option<usize>> = HashMap::with_capacity(h);
    for (i, &hash) in old_rows.iter().enumerate() {
        seen.entry(hash)
            .and_modify(|e| *e = None)
            .or_insert(Some(i));
    }
    let mut votes: HashMap<isize, usize> = HashMap::new();
    for (i, hash) in new_rows.iter().enumerate() {
        if old_rows[i] == *hash {
            continue;
        }
        if let Some(Some(j)) = seen.get(hash) {
            *votes.entry(*j as isize - i as isize).or_default() += 1;
        }
    }
    let (&dy, _) = votes.iter().max_by_key(|(&dy, &n)| (n, -dy.abs()))?;
    // The longest run of new rows i with new[i] == old[i + dy], inside the box.
    let (mut best, mut run_start, mut run) = ((0, 0), 0, 0);
    for (i, hash) in new_rows.iter().enumerate() {
        let j = i as isize + dy;
        let hit = (0..h as isize).contains(&j) && *hash == old_rows[j as usize];
        if hit {
            if run == 0 {
                run_start = i;
            }
            run += 1;
            if run > best.1 {
                best = (run_start, run);
            }
        } else {
            run = 0;
        }
    }
    let (start, len) = best;
    if len < MIN_RUN || len * 2 < changed {
        return None;
    }
    // Hashes can collide: check every row of the run.
    for i in start..start + len {
        let j = (i as isize + dy) as usize;
        if !same(
            row(new, stride, rect, top + i)?,
            row(old, stride, rect, top + j)?,
        ) {
            return None;
        }
    }
    Some(Scroll {
        x: rect.x,
        width: rect.width,
        src_y: (top as isize + start as isize + dy) as u16,
        dst_y: (top + start) as u16,
        height: len as u16,
    })
}

/// `rect` without its rows at the top and bottom that are the same in `old` and `new`; `None`
/// when no row of it changed (X reports what was drawn, and a redraw may draw the same).
pub fn trim(old: &[u8], new: &[u8], stride: usize, rect: Rect) -> Option<Rect> {
    let same_row = |y: usize| match (row(old, stride, rect, y), row(new, stride, rect, y)) {
        (Some(a), Some(b)) => same(a, b),
        _ => false,
    };
    let (top, bottom) = (
        usize::from(rect.y),
        usize::from(rect.y) + usize::from(rect.height),
    );
    let first = (top..bottom).find(|&y| !same_row(y))?;
    let last = (first..bottom).rev().find(|&y| !same_row(y))?;
    Some(Rect {
        y: first as u16,
        height: (last + 1 - first) as u16,
        ..rect
    })
}

/// What of `rect` the scroll `s` leaves to send: the rows above and below its run.
pub fn rest(rect: Rect, s: &Scroll) -> Vec<Rect> {
    let mut out = Vec::with_capacity(2);
    if s.dst_y > rect.y {
        out.push(Rect {
            height: s.dst_y - rect.y,
            ..rect
        });
    }
    let end = s.dst_y + s.height;
    let rect_end = rect.y + rect.height;
    if end < rect_end {
        out.push(Rect {
            y: end,
            height: rect_end - end,
            ..rect
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::test_screen::rect;

    const W: usize = 64;
    const H: usize = 120;

    /// A screen whose row y shows "line" `text(y)` (a distinct colour per line of text) on the
    /// columns 0..W, with blank rows between lines as a terminal has.
    fn screen(text: impl Fn(usize) -> Option<u8>) -> Vec<u8> {
        let mut px = vec![0u8; W * H * 4];
        for y in 0..H {
            if let Some(c) = text(y) {
                for x in 0..W {
                    let i = (y * W + x) * 4;
                    px[i..i + 3].copy_from_slice(&[c, (x * 3) as u8, c ^ 0x55]);
                }
            }
        }
        px
    }

    /// Terminal text scrolled by `by` rows: row y shows line y + by (lines 2 of every 3 rows).
    fn text(by: usize) -> impl Fn(usize) -> Option<u8> {
        move |y| {
            let line = y + by;
            (line % 3 != 0).then_some((line * 7 % 251) as u8)
        }
    }

    #[test]
    fn text_moved_up_is_found_and_the_new_rows_are_the_rest() {
        let old = screen(text(0));
        // scrolled up by 6 rows, and the last 6 rows are new
        let mut new = screen(text(6));
        for b in &mut new[(H - 6) * W * 4..] {
            *b = 200;
        }
        let whole = rect(0, 0, W as u16, H as u16);
        let s = find(&old, &new, W * 4, whole).expect("a scroll");
        assert_eq!(
            s,
            Scroll {
                x: 0,
                width: W as u16,
                src_y: 6,
                dst_y: 0,
                height: (H - 6) as u16
            }
        );
        assert_eq!(rest(whole, &s), vec![rect(0, 114, W as u16, 6)]);
    }

    #[test]
    fn text_moved_down_inside_a_box() {
        let old = screen(text(30));
        let new = screen(text(20)); // down by 10
        let b = rect(8, 10, 40, 100);
        let s = find(&old, &new, W * 4, b).expect("a scroll");
        assert_eq!((s.src_y, s.dst_y, s.height), (10, 20, 90));
        assert_eq!((s.x, s.width), (8, 40));
        assert_eq!(rest(b, &s), vec![rect(8, 10, 40, 10)]);
    }

    #[test]
    fn no_scroll_where_nothing_moved_or_too_little_would_be_copied() {
        let old = screen(text(0));
        let whole = rect(0, 0, W as u16, H as u16);
        assert_eq!(find(&old, &old, W * 4, whole), None, "nothing changed");
        let other = screen(|y| Some((y * 13 % 256) as u8));
        assert_eq!(find(&old, &other, W * 4, whole), None, "a new picture");
        assert_eq!(
            find(&old, &screen(text(6)), W * 4, rect(0, 0, W as u16, 40)),
            None,
            "too low a box"
        );
        assert_eq!(
            find(&old, &screen(text(6)), W * 4, rect(0, 100, W as u16, 60)),
            None,
            "outside the screen"
        );
    }

    #[test]
    fn unchanged_rows_are_trimmed_from_a_box() {
        let old = screen(text(0));
        let mut new = old.clone();
        new[(50 * W + 3) * 4] ^= 0xff; // row 50
        new[(70 * W + 9) * 4 + 1] ^= 0xff; // row 70
        let whole = rect(0, 0, W as u16, H as u16);
        assert_eq!(
            trim(&old, &new, W * 4, whole),
            Some(rect(0, 50, W as u16, 21))
        );
        assert_eq!(trim(&old, &old, W * 4, whole), None);
        // the padding byte is not a change
        let mut pad = old.clone();
        pad[3] = 0x77;
        assert_eq!(trim(&old, &pad, W * 4, whole), None);
    }

    #[test]
    fn a_hash_match_that_is_not_a_pixel_match_is_no_scroll() {
        // Rows equal in hash but not in pixels cannot be built by hand; the check itself is
        // what this covers: same() compares colours and ignores the padding byte.
        assert!(same(&[1, 2, 3, 0], &[1, 2, 3, 9]));
        assert!(!same(&[1, 2, 3, 0], &[1, 2, 4, 0]));
        assert_eq!(
            row_hash(&[1, 2, 3, 0, 5, 6, 7, 0]),
            row_hash(&[1, 2, 3, 9, 5, 6, 7, 1])
        );
    }
}
