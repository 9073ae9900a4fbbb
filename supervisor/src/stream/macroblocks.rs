//! Which 16x16 macroblocks of the picture changed since the encoder last coded it, and their
//! raw I420 samples, pure. neko's feed sends a small change as these samples (I_PCM
//! macroblocks in a frame of its own, [`crate::neko_feed::h264`]) at its next tick, before the
//! encoder has coded the change: the WebRTC counterpart of a tile ([`super::tile`]).

use super::capture::Rect;
use super::convert::I420;

/// A macroblock's side, in luma samples.
pub const SIZE: usize = 16;

/// Samples of one macroblock: 256 luma, then 64 Cb and 64 Cr, each row by row.
pub const SAMPLES: usize = SIZE * SIZE + 2 * (SIZE / 2) * (SIZE / 2);

/// Changed macroblocks of a picture, in raster order, with their samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macroblocks {
    /// The picture's width in macroblocks (the encoder's, rounded up).
    pub width_mbs: u32,
    /// Raster addresses, ascending.
    pub addrs: Vec<u32>,
    /// [`SAMPLES`] bytes per address, in the same order.
    pub samples: Vec<u8>,
}

/// The macroblocks changed since the encoder last coded the picture.
#[derive(Debug, Clone)]
pub struct Dirty {
    width_mbs: usize,
    height_mbs: usize,
    changed: Vec<bool>,
    count: usize,
}

impl Dirty {
    /// Nothing changed yet, for a picture of `width` x `height` pixels.
    pub fn new(width: usize, height: usize) -> Dirty {
        let (width_mbs, height_mbs) = (width.div_ceil(SIZE), height.div_ceil(SIZE));
        Dirty {
            width_mbs,
            height_mbs,
            changed: vec![false; width_mbs * height_mbs],
            count: 0,
        }
    }

    /// The macroblocks `rect` touches changed.
    pub fn add(&mut self, rect: Rect) {
        if rect.width == 0 || rect.height == 0 {
            return;
        }
        let (x0, y0) = (usize::from(rect.x) / SIZE, usize::from(rect.y) / SIZE);
        let x1 = (usize::from(rect.x) + usize::from(rect.width) - 1) / SIZE;
        let y1 = (usize::from(rect.y) + usize::from(rect.height) - 1) / SIZE;
        for my in y0..=y1.min(self.height_mbs.saturating_sub(1)) {
            for mx in x0..=x1.min(self.width_mbs.saturating_sub(1)) {
                let seen = &mut self.changed[my * self.width_mbs + mx];
                if !*seen {
                    *seen = true;
                    self.count += 1;
                }
            }
        }
    }

    /// Macroblocks changed.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The encoder coded the picture: nothing is left to send ahead of it.
    pub fn clear(&mut self) {
        if self.count > 0 {
            self.changed.fill(false);
            self.count = 0;
        }
    }

    /// The changed macroblocks' samples in `pic`, if any changed and at most `max` did.
    /// Samples beyond the picture's edge repeat its last column or row.
    pub fn samples(&self, pic: &I420, max: usize) -> Option<Macroblocks> {
        if self.count == 0 || self.count > max {
            return None;
        }
        let mut addrs = Vec::with_capacity(self.count);
        let mut samples = Vec::with_capacity(self.count * SAMPLES);
        let (w, h) = (pic.width(), pic.height());
        if w == 0 || h == 0 {
            return None;
        }
        let (y_plane, u_plane, v_plane) = pic.planes();
        let (cw, ch) = (w / 2, h / 2);
        for (addr, _) in self.changed.iter().enumerate().filter(|(_, &c)| c) {
            let (mx, my) = (addr % self.width_mbs, addr / self.width_mbs);
            for y in 0..SIZE {
                let row = (my * SIZE + y).min(h - 1) * w;
                for x in 0..SIZE {
                    samples.push(y_plane[row + (mx * SIZE + x).min(w - 1)]);
                }
            }
            for plane in [u_plane, v_plane] {
                for y in 0..SIZE / 2 {
                    let row = (my * SIZE / 2 + y).min(ch - 1) * cw;
                    for x in 0..SIZE / 2 {
                        samples.push(plane[row + (mx * SIZE / 2 + x).min(cw - 1)]);
                    }
                }
            }
            addrs.push(addr as u32);
        }
        Some(Macroblocks {
            width_mbs: self.width_mbs as u32,
            addrs,
            samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u16, y: u16, width: u16, height: u16) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn a_box_marks_the_macroblocks_it_touches_once() {
        let mut d = Dirty::new(100, 40); // 7 x 3 macroblocks, the last ones partly outside
        d.add(rect(15, 0, 2, 1)); // columns 0 and 1 of row 0
        d.add(rect(16, 0, 16, 16)); // column 1 again
        assert_eq!(d.count(), 2);
        d.add(rect(96, 32, 4, 8)); // the corner macroblock
        assert_eq!(d.count(), 3);
        d.add(rect(0, 0, 0, 5)); // empty
        assert_eq!(d.count(), 3);
        let pic = I420::new(100, 40);
        let mbs = d.samples(&pic, 3).expect("three macroblocks");
        assert_eq!(mbs.width_mbs, 7);
        assert_eq!(mbs.addrs, vec![0, 1, 20]);
        assert_eq!(mbs.samples.len(), 3 * SAMPLES);
        assert!(d.samples(&pic, 2).is_none(), "over the limit");
        d.clear();
        assert_eq!(d.count(), 0);
        assert!(d.samples(&pic, 3).is_none(), "nothing changed");
    }

    #[test]
    fn samples_are_the_pictures_with_edges_repeated() {
        // 20x18: a second macroblock column and row that are mostly outside
        let (w, h) = (20, 18);
        let mut bgrx = vec![0u8; w * h * 4];
        for y in 0..h {
            for x in 0..w {
                let v = (x * 12) as u8;
                bgrx[(y * w + x) * 4..][..4].copy_from_slice(&[v, v, v, 255]);
            }
        }
        let mut pic = I420::new(w, h);
        pic.convert_rows(&bgrx, w * 4, 0..h);
        let mut d = Dirty::new(w, h);
        d.add(rect(19, 17, 1, 1));
        let mbs = d.samples(&pic, 1).expect("one");
        assert_eq!(mbs.addrs, vec![3]);
        let (y_plane, u_plane, _) = pic.planes();
        let luma = &mbs.samples[..256];
        // row 0 of the macroblock is picture row 16; columns 16..20 then the edge repeated
        assert_eq!(&luma[..4], &y_plane[16 * w + 16..16 * w + 20]);
        assert!(luma[4..16].iter().all(|&s| s == y_plane[16 * w + 19]));
        // rows past the bottom repeat row 17
        assert_eq!(
            &luma[15 * 16..15 * 16 + 4],
            &y_plane[17 * w + 16..17 * w + 20]
        );
        assert_eq!(mbs.samples[256], u_plane[8 * (w / 2) + 8]);
    }
}
