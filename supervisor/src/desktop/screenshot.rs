//! Screenshots: the request (`format`, `quality`, `region`, `scale`/`max_width`, `cursor`)
//! and the capture on a connection of its own. Pixels come through MIT-SHM (a memfd shared
//! with the X server, no copy through the socket) when the server accepts it, else GetImage.

use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{self, ConnectionExt as _, Window};
use x11rb::rust_connection::RustConnection;

use super::image::{self, PixelFormat, Rgb};
use super::DesktopError;

/// Default JPEG quality.
pub const DEFAULT_QUALITY: u8 = 80;

/// Image encoding of a screenshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

/// A rectangle of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

/// What `GET /api/screenshot` asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenshotRequest {
    pub format: ImageFormat,
    /// JPEG quality 1..=100 (ignored for PNG).
    pub quality: u8,
    /// Part of the screen; `None` is all of it.
    pub region: Option<Region>,
    /// Downscale factor in (0, 1].
    pub scale: Option<f64>,
    /// Downscale (keeping the aspect ratio) so the image is at most this wide.
    pub max_width: Option<u32>,
    /// Draw the pointer into the image (default false: what agents usually want, and what
    /// `import` and `scrot` do by default).
    pub cursor: bool,
}

impl Default for ScreenshotRequest {
    fn default() -> Self {
        ScreenshotRequest {
            format: ImageFormat::Png,
            quality: DEFAULT_QUALITY,
            region: None,
            scale: None,
            max_width: None,
            cursor: false,
        }
    }
}

impl ScreenshotRequest {
    /// Parses query parameters; unknown names and bad values are rejected with the reason.
    pub fn from_query<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, DesktopError> {
        let bad = |m: String| DesktopError::BadRequest(m);
        let mut req = ScreenshotRequest::default();
        for (key, value) in pairs {
            match key {
                "format" => {
                    req.format = match value.to_ascii_lowercase().as_str() {
                        "png" => ImageFormat::Png,
                        "jpeg" | "jpg" => ImageFormat::Jpeg,
                        _ => return Err(bad(format!("`format` must be png or jpeg, not `{value}`"))),
                    }
                }
                "quality" => {
                    req.quality = value
                        .parse::<u8>()
                        .ok()
                        .filter(|q| (1..=100).contains(q))
                        .ok_or_else(|| bad(format!("`quality` must be 1..100, not `{value}`")))?
                }
                "region" => {
                    let parts: Vec<Option<u16>> =
                        value.split(',').map(|p| p.trim().parse().ok()).collect();
                    match parts.as_slice() {
                        [Some(x), Some(y), Some(w), Some(h)] if *w > 0 && *h > 0 => {
                            req.region = Some(Region {
                                x: *x,
                                y: *y,
                                width: *w,
                                height: *h,
                            })
                        }
                        _ => {
                            return Err(bad(format!(
                                "`region` must be x,y,width,height (non-negative, size > 0), not `{value}`"
                            )))
                        }
                    }
                }
                "scale" => {
                    req.scale = Some(
                        value
                            .parse::<f64>()
                            .ok()
                            .filter(|s| *s > 0.0 && *s <= 1.0)
                            .ok_or_else(|| bad(format!("`scale` must be in (0, 1], not `{value}`")))?,
                    )
                }
                "max_width" => {
                    req.max_width = Some(
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|w| *w > 0)
                            .ok_or_else(|| bad(format!("`max_width` must be a positive integer, not `{value}`")))?,
                    )
                }
                "cursor" => {
                    req.cursor = match value {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => return Err(bad(format!("`cursor` must be true or false, not `{value}`"))),
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown parameter `{other}` (known: format, quality, region, scale, max_width, cursor)"
                    )))
                }
            }
        }
        if req.scale.is_some() && req.max_width.is_some() {
            return Err(bad("give `scale` or `max_width`, not both".into()));
        }
        Ok(req)
    }

    /// Output size for a captured `w`×`h` image.
    fn output_size(&self, w: usize, h: usize) -> (usize, usize) {
        let factor = match (self.scale, self.max_width) {
            (Some(s), _) => s,
            (None, Some(m)) if (m as usize) < w => f64::from(m) / w as f64,
            _ => 1.0,
        };
        let sized = |v: usize| ((v as f64 * factor).round() as usize).clamp(1, v);
        (sized(w), sized(h))
    }
}

/// An encoded screenshot.
#[derive(Debug, Clone)]
pub struct Screenshot {
    pub format: ImageFormat,
    pub width: usize,
    pub height: usize,
    pub bytes: Vec<u8>,
}

/// A MIT-SHM segment: a memfd mapped here and attached by the X server. Also the native
/// stream's frame buffer (`stream::capture`).
pub(crate) struct ShmSegment {
    pub(crate) seg: u32,
    ptr: NonNull<std::ffi::c_void>,
    len: usize,
}

// SAFETY: the mapping is owned by this struct alone; it is only read after the X server has
// replied to the ShmGetImage that filled it, under the Capturer's mutex.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    pub(crate) fn create(conn: &RustConnection, len: usize) -> Result<ShmSegment, String> {
        let fd: OwnedFd = memfd_create(c"deskd-screenshot", MFdFlags::MFD_CLOEXEC)
            .map_err(|e| format!("memfd_create: {e}"))?;
        nix::unistd::ftruncate(&fd, len as i64).map_err(|e| format!("ftruncate: {e}"))?;
        let size = NonZeroUsize::new(len).ok_or("empty segment")?;
        // SAFETY: a fresh shared mapping of a file we own; no other Rust reference aliases it.
        let ptr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| format!("mmap: {e}"))?;
        let mut segment = ShmSegment { seg: 0, ptr, len };
        segment.seg = conn.generate_id().map_err(|e| e.to_string())?;
        conn.shm_attach_fd(segment.seg, fd, false)
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| format!("ShmAttachFd: {e}"))?;
        Ok(segment)
    }

    pub(crate) fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: ptr maps self.len bytes for as long as self lives; len is clamped.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), len.min(self.len)) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // SAFETY: ptr/len are the mapping created in `create`, unmapped only here.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// The screenshot connection: its own X connection, pixel format and SHM segment.
pub(crate) struct Capturer {
    conn: RustConnection,
    root: Window,
    format: PixelFormat,
    /// SHM is usable (the extension is there with fd passing and attaching worked).
    shm_ok: bool,
    shm: Option<ShmSegment>,
    xfixes: bool,
}

impl Capturer {
    pub(crate) fn connect(display: &str) -> Result<Capturer, DesktopError> {
        let (conn, screen) = super::connect(display)?;
        let setup = conn.setup();
        let root = screen.root;
        let pixmap = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == screen.root_depth)
            .ok_or_else(|| {
                DesktopError::X11(format!("no pixmap format for depth {}", screen.root_depth))
            })?;
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|d| d.visuals.iter())
            .find(|v| v.visual_id == screen.root_visual)
            .ok_or_else(|| DesktopError::X11("root visual not found".into()))?;
        let format = PixelFormat {
            bits_per_pixel: pixmap.bits_per_pixel,
            scanline_pad: pixmap.scanline_pad,
            red_mask: visual.red_mask,
            green_mask: visual.green_mask,
            blue_mask: visual.blue_mask,
            lsb_first: setup.image_byte_order == xproto::ImageOrder::LSB_FIRST,
        };
        let shm_ok = conn
            .extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME)?
            .is_some()
            && conn
                .shm_query_version()?
                .reply()
                .map(|v| (v.major_version, v.minor_version) >= (1, 2))
                .unwrap_or(false);
        let xfixes = conn
            .extension_information(x11rb::protocol::xfixes::X11_EXTENSION_NAME)?
            .is_some()
            && conn.xfixes_query_version(4, 0)?.reply().is_ok();
        Ok(Capturer {
            conn,
            root,
            format,
            shm_ok,
            shm: None,
            xfixes,
        })
    }

    /// Whether the last captures went through MIT-SHM.
    pub(crate) fn uses_shm(&self) -> bool {
        self.shm_ok
    }

    pub(crate) fn screenshot(
        &mut self,
        req: &ScreenshotRequest,
    ) -> Result<Screenshot, DesktopError> {
        let geometry = self.conn.get_geometry(self.root)?.reply()?;
        let region = match req.region {
            None => Region {
                x: 0,
                y: 0,
                width: geometry.width,
                height: geometry.height,
            },
            Some(r) => {
                if u32::from(r.x) + u32::from(r.width) > u32::from(geometry.width)
                    || u32::from(r.y) + u32::from(r.height) > u32::from(geometry.height)
                {
                    return Err(DesktopError::Invalid(format!(
                        "`region` {},{},{},{} is not inside the {}x{} screen",
                        r.x, r.y, r.width, r.height, geometry.width, geometry.height
                    )));
                }
                r
            }
        };
        let full = self.format.stride(usize::from(geometry.width)) * usize::from(geometry.height);
        let mut rgb = self.capture(region, full)?;
        if req.cursor && self.xfixes {
            if let Ok(c) = self.conn.xfixes_get_cursor_image()?.reply() {
                image::draw_argb(
                    &mut rgb,
                    &c.cursor_image,
                    usize::from(c.width),
                    usize::from(c.height),
                    i64::from(c.x) - i64::from(c.xhot) - i64::from(region.x),
                    i64::from(c.y) - i64::from(c.yhot) - i64::from(region.y),
                );
            }
        }
        let (w, h) = req.output_size(rgb.width, rgb.height);
        if (w, h) != (rgb.width, rgb.height) {
            rgb = image::downscale(&rgb, w, h);
        }
        let bytes = match req.format {
            ImageFormat::Png => image::encode_png(&rgb)?,
            ImageFormat::Jpeg => image::encode_jpeg(&rgb, req.quality)?,
        };
        Ok(Screenshot {
            format: req.format,
            width: rgb.width,
            height: rgb.height,
            bytes,
        })
    }

    /// The pixels of `region` as RGB, through SHM if possible. `full` is the size of a
    /// whole-screen image, which the SHM segment is made for.
    fn capture(&mut self, r: Region, full: usize) -> Result<Rgb, DesktopError> {
        let (w, h) = (usize::from(r.width), usize::from(r.height));
        let len = self.format.stride(w) * h;
        if self.shm_ok {
            match self.capture_shm(r, len, full) {
                Ok(rgb) => return Ok(rgb),
                Err(e @ DesktopError::Unavailable(_)) => return Err(e),
                Err(e) => {
                    tracing::info!(error = %e, "MIT-SHM capture failed; using GetImage from now on");
                    self.shm_ok = false;
                    self.shm = None;
                }
            }
        }
        let reply = self
            .conn
            .get_image(
                xproto::ImageFormat::Z_PIXMAP,
                self.root,
                r.x as i16,
                r.y as i16,
                r.width,
                r.height,
                !0,
            )?
            .reply()?;
        image::to_rgb(&reply.data, w, h, &self.format)
    }

    fn capture_shm(&mut self, r: Region, len: usize, full: usize) -> Result<Rgb, DesktopError> {
        if self.shm.as_ref().is_none_or(|s| s.len < len) {
            if let Some(old) = self.shm.take() {
                self.conn.shm_detach(old.seg)?;
            }
            // Room for the whole screen, so region changes do not reallocate.
            let segment = ShmSegment::create(&self.conn, len.max(full).max(4096))
                .map_err(DesktopError::X11)?;
            self.shm = Some(segment);
        }
        let Some(segment) = self.shm.as_ref() else {
            return Err(DesktopError::X11("no SHM segment".into()));
        };
        self.conn
            .shm_get_image(
                self.root,
                r.x as i16,
                r.y as i16,
                r.width,
                r.height,
                !0,
                xproto::ImageFormat::Z_PIXMAP.into(),
                segment.seg,
                0,
            )?
            .reply()?;
        image::to_rgb(
            segment.bytes(len),
            usize::from(r.width),
            usize::from(r.height),
            &self.format,
        )
    }
}
