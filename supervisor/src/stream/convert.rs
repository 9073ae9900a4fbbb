//! BGRX (the X server's 32-bit little-endian pixels) → I420 (planar YUV 4:2:0, BT.601
//! limited range, what the H.264 encoder takes). The picture is kept between frames, so only
//! the rows that changed are converted again. Plain integer loops the compiler vectorises.

/// A persistent I420 picture of even width and height.
pub struct I420 {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420 {
    /// A black picture. `width` and `height` must be even (the caller crops odd sizes).
    pub fn new(width: usize, height: usize) -> I420 {
        let (cw, ch) = (width / 2, height / 2);
        I420 {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        (&self.y, &self.u, &self.v)
    }

    /// Converts rows `rows` (widened to even bounds, clamped to the picture) of `bgrx`, an
    /// image of at least this picture's size with `stride` bytes per row.
    pub fn convert_rows(&mut self, bgrx: &[u8], stride: usize, rows: std::ops::Range<usize>) {
        let start = rows.start & !1;
        let end = (rows.end + 1).min(self.height) & !1;
        let w = self.width;
        let cw = w / 2;
        for pair in (start..end).step_by(2) {
            let (Some(top), Some(bottom)) = (
                bgrx.get(pair * stride..pair * stride + w * 4),
                bgrx.get((pair + 1) * stride..(pair + 1) * stride + w * 4),
            ) else {
                return;
            };
            let (y_top, y_bottom) = self.y[pair * w..(pair + 2) * w].split_at_mut(w);
            luma_row(top, y_top);
            luma_row(bottom, y_bottom);
            let c = pair / 2 * cw;
            chroma_row(top, bottom, &mut self.u[c..c + cw], &mut self.v[c..c + cw]);
        }
    }
}

#[inline(always)]
fn luma(b: i32, g: i32, r: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

fn luma_row(bgrx: &[u8], y: &mut [u8]) {
    for (px, out) in bgrx.chunks_exact(4).zip(y.iter_mut()) {
        *out = luma(i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
    }
}

/// U and V of each 2×2 block from the average of its four pixels.
fn chroma_row(top: &[u8], bottom: &[u8], u: &mut [u8], v: &mut [u8]) {
    for (((t, b), u), v) in top
        .chunks_exact(8)
        .zip(bottom.chunks_exact(8))
        .zip(u.iter_mut())
        .zip(v.iter_mut())
    {
        let sum = |i: usize| {
            i32::from(t[i]) + i32::from(t[i + 4]) + i32::from(b[i]) + i32::from(b[i + 4])
        };
        // Sums of four: the coefficients' >> 8 becomes >> 10.
        let (bs, gs, rs) = (sum(0), sum(1), sum(2));
        *u = (((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128) as u8;
        *v = (((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::test_screen::bgrx as image;

    #[test]
    fn known_colours() {
        // BT.601 limited range: black 16/128/128, white 235/128/128, red 81/90/240,
        // green 145/54/34, blue 41/240/110.
        for (rgb, yuv) in [
            // (r, g, b), (y, u, v)
            ([0, 0, 0], (16, 128, 128)),
            ([255, 255, 255], (235, 128, 128)),
            ([255, 0, 0], (82, 90, 240)),
            ([0, 255, 0], (145, 54, 34)),
            ([0, 0, 255], (41, 240, 110)),
        ] {
            let img = image(4, 2, |_, _| rgb);
            let mut pic = I420::new(4, 2);
            pic.convert_rows(&img, 16, 0..2);
            let (y, u, v) = pic.planes();
            let near = |a: u8, b: i32| (i32::from(a) - b).abs() <= 1;
            assert!(
                near(y[0], yuv.0) && near(u[0], yuv.1) && near(v[0], yuv.2),
                "{rgb:?} -> {} {} {}, expected {yuv:?}",
                y[0],
                u[0],
                v[0]
            );
        }
    }

    #[test]
    fn only_the_given_rows_change_and_chroma_averages() {
        let w = 8;
        let img = image(w, 6, |x, _| if x < 4 { [255, 255, 255] } else { [0, 0, 0] });
        let mut pic = I420::new(w, 6);
        // Row 3 widens to rows 2..4.
        pic.convert_rows(&img, w * 4, 3..4);
        let (y, u, _) = pic.planes();
        assert_eq!(&y[..w], &[16; 8], "row 0 untouched");
        assert_eq!(&y[2 * w..3 * w], &[235, 235, 235, 235, 16, 16, 16, 16]);
        assert_eq!(&y[3 * w..4 * w], &[235, 235, 235, 235, 16, 16, 16, 16]);
        assert_eq!(&y[4 * w..5 * w], &[16; 8], "row 4 untouched");
        assert_eq!(u.len(), 4 * 3);
        assert_eq!(&u[4..8], &[128, 128, 128, 128]);
        // A 2x2 block half white, half black: its chroma stays neutral.
        let img = image(2, 2, |x, _| if x == 0 { [255, 0, 0] } else { [0, 0, 0] });
        let mut pic = I420::new(2, 2);
        pic.convert_rows(&img, 8, 0..2);
        let (_, u, v) = pic.planes();
        assert!(
            (i32::from(v[0]) - (128 + (240 - 128) / 2)).abs() <= 1,
            "{}",
            v[0]
        );
        assert!(
            (i32::from(u[0]) - (128 + (90 - 128) / 2)).abs() <= 1,
            "{}",
            u[0]
        );
    }

    #[test]
    fn short_input_stops_without_panic() {
        let mut pic = I420::new(4, 4);
        pic.convert_rows(&[0; 20], 16, 0..4);
        assert_eq!(pic.planes().0[0], 16);
    }
}
