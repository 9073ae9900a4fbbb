//! Pixels after capture: X ZPixmap data to packed RGB, the pointer image drawn in, area-
//! averaging downscale, and PNG/JPEG encoding. Pure: no X here.

use super::DesktopError;

/// How the X server lays out a ZPixmap pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    /// Rows are padded to this many bits.
    pub scanline_pad: u8,
    pub red_mask: u32,
    pub green_mask: u32,
    pub blue_mask: u32,
    /// Pixels are stored least significant byte first (always so on x86 servers).
    pub lsb_first: bool,
}

impl PixelFormat {
    /// Bytes per row of a `width`-pixel image.
    pub fn stride(&self, width: usize) -> usize {
        let bits = width * usize::from(self.bits_per_pixel);
        let pad = usize::from(self.scanline_pad.max(8));
        bits.div_ceil(pad) * pad / 8
    }
}

/// A packed 8-bit RGB image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// One channel extracted with `mask`, widened to 8 bits.
fn channel(pixel: u32, mask: u32) -> u8 {
    if mask == 0 {
        return 0;
    }
    let shift = mask.trailing_zeros();
    let bits = (mask >> shift).count_ones();
    let v = (pixel & mask) >> shift;
    if bits >= 8 {
        (v >> (bits - 8)) as u8
    } else {
        // Replicate the high bits into the low ones: 5-bit 31 becomes 255.
        let max = (1u32 << bits) - 1;
        (v * 255 / max) as u8
    }
}

/// Converts ZPixmap `data` of a `width`×`height` image to RGB.
pub fn to_rgb(
    data: &[u8],
    width: usize,
    height: usize,
    fmt: &PixelFormat,
) -> Result<Rgb, DesktopError> {
    let stride = fmt.stride(width);
    if data.len() < stride * height {
        return Err(DesktopError::X11(format!(
            "image data too short: {} bytes for {width}x{height}",
            data.len()
        )));
    }
    let mut out = vec![0u8; width * height * 3];
    match (fmt.bits_per_pixel, fmt.lsb_first) {
        (32, true) if (fmt.red_mask, fmt.green_mask, fmt.blue_mask) == (0xff0000, 0xff00, 0xff) => {
            // The common case (Xvfb, Xorg on x86): bytes B, G, R, X.
            for (row, out_row) in data.chunks(stride).zip(out.chunks_exact_mut(width * 3)) {
                for (px, o) in row.chunks_exact(4).zip(out_row.chunks_exact_mut(3)) {
                    o[0] = px[2];
                    o[1] = px[1];
                    o[2] = px[0];
                }
            }
        }
        (32 | 16, _) => {
            let bytes = usize::from(fmt.bits_per_pixel / 8);
            for (row, out_row) in data.chunks(stride).zip(out.chunks_exact_mut(width * 3)) {
                for (px, o) in row.chunks_exact(bytes).zip(out_row.chunks_exact_mut(3)) {
                    let pixel = if fmt.lsb_first {
                        px.iter()
                            .rev()
                            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                    } else {
                        px.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                    };
                    o[0] = channel(pixel, fmt.red_mask);
                    o[1] = channel(pixel, fmt.green_mask);
                    o[2] = channel(pixel, fmt.blue_mask);
                }
            }
        }
        (bpp, _) => {
            return Err(DesktopError::X11(format!(
                "unsupported pixel format: {bpp} bits per pixel"
            )))
        }
    }
    Ok(Rgb {
        width,
        height,
        data: out,
    })
}

/// Draws a premultiplied ARGB image (XFixes cursor image) with its top-left at (`x`, `y`)
/// (may be partly or wholly off the image).
pub fn draw_argb(img: &mut Rgb, argb: &[u32], w: usize, h: usize, x: i64, y: i64) {
    for cy in 0..h {
        let ty = y + cy as i64;
        if ty < 0 || ty >= img.height as i64 {
            continue;
        }
        for cx in 0..w {
            let tx = x + cx as i64;
            if tx < 0 || tx >= img.width as i64 {
                continue;
            }
            let Some(&p) = argb.get(cy * w + cx) else {
                return;
            };
            let a = p >> 24;
            if a == 0 {
                continue;
            }
            let i = (ty as usize * img.width + tx as usize) * 3;
            let Some(dst) = img.data.get_mut(i..i + 3) else {
                continue;
            };
            let src = [(p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff];
            for (d, s) in dst.iter_mut().zip(src) {
                let v = s + u32::from(*d) * (255 - a) / 255;
                *d = v.min(255) as u8;
            }
        }
    }
}

/// For each output index along an axis of `src` → `dst` samples: the source indices it
/// covers and their weights (fractions of coverage, summing to 1).
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f32)>> {
    let ratio = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let start = o as f64 * ratio;
            let end = ((o + 1) as f64 * ratio).min(src as f64);
            let mut taps = Vec::new();
            let mut i = start.floor() as usize;
            while (i as f64) < end && i < src {
                let cover = (end.min(i as f64 + 1.0) - start.max(i as f64)) / (end - start);
                if cover > 0.0 {
                    taps.push((i, cover as f32));
                }
                i += 1;
            }
            taps
        })
        .collect()
}

/// Shrinks `img` to `width`×`height` (each no larger than the source) by area averaging:
/// every output pixel is the mean of the source area it covers, so text and thin lines blur
/// instead of vanishing or aliasing.
pub fn downscale(img: &Rgb, width: usize, height: usize) -> Rgb {
    if width >= img.width && height >= img.height {
        return img.clone();
    }
    let (width, height) = (width.clamp(1, img.width), height.clamp(1, img.height));
    let xw = area_weights(img.width, width);
    let yw = area_weights(img.height, height);
    // Horizontal pass into floats, then vertical pass into bytes.
    let mut tmp = vec![0f32; width * img.height * 3];
    for (row, tmp_row) in img
        .data
        .chunks_exact(img.width * 3)
        .zip(tmp.chunks_exact_mut(width * 3))
    {
        for (taps, t) in xw.iter().zip(tmp_row.chunks_exact_mut(3)) {
            for &(i, w) in taps {
                let s = &row[i * 3..i * 3 + 3];
                t[0] += f32::from(s[0]) * w;
                t[1] += f32::from(s[1]) * w;
                t[2] += f32::from(s[2]) * w;
            }
        }
    }
    let mut out = vec![0u8; width * height * 3];
    let mut acc = vec![0f32; width * 3];
    for (taps, out_row) in yw.iter().zip(out.chunks_exact_mut(width * 3)) {
        acc.fill(0.0);
        for &(j, w) in taps {
            let src = &tmp[j * width * 3..(j + 1) * width * 3];
            for (a, s) in acc.iter_mut().zip(src) {
                *a += s * w;
            }
        }
        for (o, a) in out_row.iter_mut().zip(&acc) {
            *o = (a + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
    Rgb {
        width,
        height,
        data: out,
    }
}

/// PNG with a fast deflate level: screenshots are mostly flat areas, which compress well
/// even at the fastest settings.
pub fn encode_png(img: &Rgb) -> Result<Vec<u8>, DesktopError> {
    let mut out = Vec::with_capacity(img.data.len() / 8);
    let (w, h) = (dim32(img.width)?, dim32(img.height)?);
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .map_err(|e| DesktopError::Encode(format!("png: {e}")))?;
    writer
        .write_image_data(&img.data)
        .map_err(|e| DesktopError::Encode(format!("png: {e}")))?;
    writer
        .finish()
        .map_err(|e| DesktopError::Encode(format!("png: {e}")))?;
    Ok(out)
}

/// Baseline JPEG at `quality` (1..=100).
pub fn encode_jpeg(img: &Rgb, quality: u8) -> Result<Vec<u8>, DesktopError> {
    let mut out = Vec::with_capacity(img.data.len() / 10);
    let (w, h) = (dim16(img.width)?, dim16(img.height)?);
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    encoder
        .encode(&img.data, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| DesktopError::Encode(format!("jpeg: {e}")))?;
    Ok(out)
}

fn dim32(v: usize) -> Result<u32, DesktopError> {
    u32::try_from(v).map_err(|_| DesktopError::TooLarge(format!("image dimension {v} too large")))
}

fn dim16(v: usize) -> Result<u16, DesktopError> {
    u16::try_from(v)
        .map_err(|_| DesktopError::TooLarge(format!("image dimension {v} too large for JPEG")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BGRX: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        scanline_pad: 32,
        red_mask: 0xff0000,
        green_mask: 0xff00,
        blue_mask: 0xff,
        lsb_first: true,
    };

    #[test]
    fn converts_bgrx_and_565() {
        let rgb = to_rgb(&[3, 2, 1, 0, 30, 20, 10, 0], 2, 1, &BGRX).ok();
        assert_eq!(rgb.map(|r| r.data), Some(vec![1, 2, 3, 10, 20, 30]));
        let fmt565 = PixelFormat {
            bits_per_pixel: 16,
            scanline_pad: 32,
            red_mask: 0xf800,
            green_mask: 0x07e0,
            blue_mask: 0x001f,
            lsb_first: true,
        };
        // One red pixel, row padded to 4 bytes.
        let rgb = to_rgb(&[0x00, 0xf8, 0, 0], 1, 1, &fmt565).ok();
        assert_eq!(rgb.map(|r| r.data), Some(vec![255, 0, 0]));
        assert!(to_rgb(&[0; 3], 1, 1, &BGRX).is_err());
    }

    #[test]
    fn downscale_averages_areas() {
        // 4x2: left half black, right half white; to 2x1 and to 3x1.
        let mut data = Vec::new();
        for _ in 0..2 {
            for v in [0u8, 0, 255, 255] {
                data.extend([v, v, v]);
            }
        }
        let img = Rgb {
            width: 4,
            height: 2,
            data,
        };
        assert_eq!(downscale(&img, 2, 1).data, vec![0, 0, 0, 255, 255, 255]);
        let three = downscale(&img, 3, 1).data;
        assert_eq!(three[0], 0);
        assert_eq!(three[3], 128); // the middle pixel covers half black, half white
        assert_eq!(three[6], 255);
    }

    #[test]
    fn cursor_blends_premultiplied() {
        let mut img = Rgb {
            width: 2,
            height: 1,
            data: vec![100; 6],
        };
        // opaque red at (0,0); 50% white (premultiplied 0x80) at (1,0); partly off-screen
        draw_argb(&mut img, &[0xffff0000, 0x80808080, 0xff00ff00], 3, 1, 0, 0);
        assert_eq!(&img.data[0..3], &[255, 0, 0]);
        assert_eq!(img.data[3], (128u32 + 100 * 127 / 255) as u8);
    }
}
