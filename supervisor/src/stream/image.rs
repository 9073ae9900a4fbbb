//! Changed boxes as images, for viewers that cannot decode H.264: a browser offers WebCodecs
//! only in a secure context, so a page opened over plain HTTP on a LAN address has no
//! `VideoDecoder`, but it decodes PNG and JPEG anywhere (`createImageBitmap`, off the main
//! thread).
//!
//! The hub collects the boxes that changed since the last update ([`Dirty`], at most
//! [`MAX_BOXES`], merged beyond that) and, at the frame rate, sends each as an image: a box of
//! at most [`MAX_PALETTE`] colours (text, menus, most of a desktop) as an indexed PNG, exact
//! and smaller than JPEG for such pictures; any other as JPEG at [`QUALITY`]. Once the screen
//! settled, the JPEG boxes sent since are sent once more at [`FINE_QUALITY`] without chroma
//! subsampling. A viewer that joins or fell
//! behind gets the whole screen. Tiles and fills ([`super::tile`]) go ahead as for H.264
//! viewers; a box they delivered to every image viewer needs no image.

use std::collections::HashMap;

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::capture::Rect;

/// Boxes kept between updates; one more merges them all into their bounding box.
pub const MAX_BOXES: usize = 8;
/// JPEG quality while the screen changes.
pub const QUALITY: u8 = 70;
/// JPEG quality (4:4:4) of the refinement once it settled.
pub const FINE_QUALITY: u8 = 90;
/// Most colours a box may have to go as PNG.
pub const MAX_PALETTE: usize = 256;

/// How an image is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Indexed PNG: exact.
    Png,
    /// Baseline JPEG: lossy.
    Jpeg,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("JPEG: the box {0:?} is not inside the screen")]
    Outside(Rect),
    #[error("JPEG: {0}")]
    Encode(String),
}

/// The smallest box holding `a` and `b`.
pub fn union(a: Rect, b: Rect) -> Rect {
    let x = a.x.min(b.x);
    let y = a.y.min(b.y);
    let right = (u32::from(a.x) + u32::from(a.width)).max(u32::from(b.x) + u32::from(b.width));
    let bottom = (u32::from(a.y) + u32::from(a.height)).max(u32::from(b.y) + u32::from(b.height));
    Rect {
        x,
        y,
        width: (right - u32::from(x)).min(u32::from(u16::MAX)) as u16,
        height: (bottom - u32::from(y)).min(u32::from(u16::MAX)) as u16,
    }
}

/// Whether `a` and `b` overlap or share an edge.
fn touch(a: Rect, b: Rect) -> bool {
    let (ax, ay) = (u32::from(a.x), u32::from(a.y));
    let (bx, by) = (u32::from(b.x), u32::from(b.y));
    ax <= bx + u32::from(b.width)
        && bx <= ax + u32::from(a.width)
        && ay <= by + u32::from(b.height)
        && by <= ay + u32::from(a.height)
}

/// The boxes changed since the last update, bounded.
#[derive(Debug, Default)]
pub struct Dirty {
    boxes: Vec<Rect>,
}

impl Dirty {
    /// Adds `r`, merging it with every box it touches; past [`MAX_BOXES`] all become one.
    pub fn add(&mut self, r: Rect) {
        if r.area() == 0 {
            return;
        }
        let mut merged = r;
        // A merged box may now touch one it did not before: repeat until none does.
        loop {
            let before = self.boxes.len();
            self.boxes.retain(|b| {
                if touch(*b, merged) {
                    merged = union(*b, merged);
                    false
                } else {
                    true
                }
            });
            if self.boxes.len() == before {
                break;
            }
        }
        self.boxes.push(merged);
        if self.boxes.len() > MAX_BOXES {
            let all = self.boxes.iter().copied().reduce(union);
            self.boxes = all.into_iter().collect();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// The boxes, leaving none.
    pub fn take(&mut self) -> Vec<Rect> {
        std::mem::take(&mut self.boxes)
    }

    pub fn clear(&mut self) {
        self.boxes.clear();
    }
}

/// `rect` of `pixels` (BGRX rows of `stride` bytes covering the screen) as an image: PNG when
/// it has at most [`MAX_PALETTE`] colours, else JPEG (`fine`: 4:4:4 at [`FINE_QUALITY`], else
/// 4:2:0 at [`QUALITY`]).
pub fn encode(
    pixels: &[u8],
    stride: usize,
    rect: Rect,
    fine: bool,
) -> Result<(Format, Vec<u8>), ImageError> {
    check(pixels, stride, rect)?;
    if let Some(png) = encode_png(pixels, stride, rect)? {
        return Ok((Format::Png, png));
    }
    encode_jpeg(pixels, stride, rect, fine).map(|j| (Format::Jpeg, j))
}

fn check(pixels: &[u8], stride: usize, rect: Rect) -> Result<(), ImageError> {
    let (x, w) = (usize::from(rect.x), usize::from(rect.width));
    let (y, h) = (usize::from(rect.y), usize::from(rect.height));
    if w == 0 || h == 0 {
        return Err(ImageError::Outside(rect));
    }
    let last = (y + h - 1) * stride + (x + w) * 4;
    if last > pixels.len() || (x + w) * 4 > stride {
        return Err(ImageError::Outside(rect));
    }
    Ok(())
}

/// The box as an indexed PNG, or `None` when it has more than [`MAX_PALETTE`] colours (found
/// out within the first few hundred distinct pixels of a photo).
fn encode_png(pixels: &[u8], stride: usize, rect: Rect) -> Result<Option<Vec<u8>>, ImageError> {
    let (x, w) = (usize::from(rect.x), usize::from(rect.width));
    let (y, h) = (usize::from(rect.y), usize::from(rect.height));
    let mut index: HashMap<u32, u8> = HashMap::new();
    let mut palette = Vec::with_capacity(MAX_PALETTE * 3);
    let mut indices = Vec::with_capacity(w * h);
    let mut last: Option<(u32, u8)> = None;
    for row in y..y + h {
        let line = &pixels[row * stride + x * 4..row * stride + (x + w) * 4];
        for p in line.chunks_exact(4) {
            let c = u32::from_le_bytes([p[0], p[1], p[2], 0]);
            let i = match last {
                Some((lc, li)) if lc == c => li,
                _ => {
                    let i = match index.get(&c) {
                        Some(&i) => i,
                        None => {
                            if index.len() == MAX_PALETTE {
                                return Ok(None);
                            }
                            let i = index.len() as u8;
                            index.insert(c, i);
                            palette.extend_from_slice(&[p[2], p[1], p[0]]);
                            i
                        }
                    };
                    last = Some((c, i));
                    i
                }
            };
            indices.push(i);
        }
    }
    let png_err = |e: png::EncodingError| ImageError::Encode(format!("png: {e}"));
    let mut out = Vec::with_capacity(w * h / 8);
    let mut encoder = png::Encoder::new(&mut out, rect.width.into(), rect.height.into());
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(palette);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&indices).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(Some(out))
}

fn encode_jpeg(
    pixels: &[u8],
    stride: usize,
    rect: Rect,
    fine: bool,
) -> Result<Vec<u8>, ImageError> {
    let (x, w) = (usize::from(rect.x), usize::from(rect.width));
    let (y, h) = (usize::from(rect.y), usize::from(rect.height));
    // Whole rows are passed as they are; a narrower box is copied out first.
    let copied;
    let data: &[u8] = if x == 0 && w * 4 == stride {
        &pixels[y * stride..(y + h) * stride]
    } else {
        let mut rows = Vec::with_capacity(w * h * 4);
        for row in y..y + h {
            rows.extend_from_slice(&pixels[row * stride + x * 4..row * stride + (x + w) * 4]);
        }
        copied = rows;
        &copied
    };
    let mut out = Vec::with_capacity(w * h / 4);
    let mut encoder = Encoder::new(&mut out, if fine { FINE_QUALITY } else { QUALITY });
    encoder.set_sampling_factor(if fine {
        SamplingFactor::F_1_1
    } else {
        SamplingFactor::F_2_2
    });
    // BGRX is BGRA whose alpha the encoder ignores.
    encoder
        .encode(data, rect.width, rect.height, ColorType::Bgra)
        .map_err(|e| ImageError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::test_screen::{bgrx as screen, rect};

    #[test]
    fn touching_boxes_merge_and_the_count_is_bounded() {
        let mut d = Dirty::default();
        d.add(rect(0, 0, 10, 10));
        d.add(rect(10, 0, 5, 5)); // shares the edge x = 10
        d.add(rect(100, 100, 4, 4));
        assert_eq!(d.boxes, vec![rect(0, 0, 15, 10), rect(100, 100, 4, 4)]);
        // a box bridging both merges all three
        d.add(rect(12, 8, 90, 93));
        assert_eq!(d.boxes, vec![rect(0, 0, 104, 104)]);
        d.add(rect(0, 0, 0, 5));
        assert_eq!(d.boxes.len(), 1, "an empty box is nothing");
        let mut d = Dirty::default();
        for i in 0..=MAX_BOXES as u16 {
            d.add(rect(i * 20, i * 20, 2, 2));
        }
        assert_eq!(d.take(), vec![rect(0, 0, 162, 162)]);
        assert!(d.is_empty());
    }

    #[test]
    fn few_colours_go_as_an_exact_png() {
        // left half red, right half blue
        let (w, h) = (64usize, 32usize);
        let px = screen(w, h, |x, _| if x < 32 { [255, 0, 0] } else { [0, 0, 255] });
        let r = rect(28, 4, 16, 8);
        let (format, data) = encode(&px, w * 4, r, false).expect("png");
        assert_eq!(format, Format::Png);
        let mut reader = png::Decoder::new(std::io::Cursor::new(&data))
            .read_info()
            .expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("decodes");
        assert_eq!((info.width, info.height), (16, 8));
        assert_eq!(info.color_type, png::ColorType::Indexed);
        let palette = reader.info().palette.as_ref().expect("palette").to_vec();
        let colour = |x: usize, y: usize| {
            let i = usize::from(buf[y * info.line_size + x]) * 3;
            [palette[i], palette[i + 1], palette[i + 2]]
        };
        assert_eq!(colour(3, 0), [255, 0, 0], "x = 31");
        assert_eq!(colour(4, 7), [0, 0, 255], "x = 32");
        assert!(matches!(
            encode(&px, w * 4, rect(60, 0, 8, 8), false),
            Err(ImageError::Outside(_))
        ));
        assert!(matches!(
            encode(&px, w * 4, rect(0, 30, 8, 8), false),
            Err(ImageError::Outside(_))
        ));
    }

    #[test]
    fn many_colours_go_as_jpeg() {
        // a gradient of 64 x 32 distinct colours, left half reddish, right half bluish
        let (w, h) = (64usize, 32usize);
        let px = screen(w, h, |x, y| {
            let (x8, y8) = (x as u8, y as u8);
            if x < 32 {
                [200 + x8, y8, y8]
            } else {
                [y8, x8 - 32, 200 + (x8 - 32)]
            }
        });
        for (r, fine) in [(rect(0, 0, 64, 32), false), (rect(36, 8, 24, 16), true)] {
            let (format, jpeg) = encode(&px, w * 4, r, fine).expect("jpeg");
            assert_eq!(format, Format::Jpeg);
            let mut dec = jpeg_decoder::Decoder::new(&jpeg[..]);
            let rgb = dec.decode().expect("decodes");
            let info = dec.info().expect("info");
            assert_eq!((info.width, info.height), (r.width, r.height));
            let at = |x: usize, y: usize| {
                let i = (y * usize::from(r.width) + x) * 3;
                [rgb[i], rgb[i + 1], rgb[i + 2]]
            };
            let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(a, b)| a.abs_diff(b) <= 32);
            if r.x == 0 {
                assert!(near(at(4, 4), [204, 4, 4]), "{:?}", at(4, 4));
                assert!(near(at(60, 28), [28, 28, 228]), "{:?}", at(60, 28));
            } else {
                assert!(near(at(8, 8), [16, 12, 212]), "{:?}", at(8, 8));
            }
        }
    }
}
