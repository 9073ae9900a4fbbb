//! The native stream (`/stream/ws`): deskd captures the X display itself, encodes H.264 once
//! per display and sends the frames to every viewer over a WebSocket; input comes back the
//! same way. The wire contract is `docs/native-stream.md`; the HTTP side is
//! `http::stream_ws`.
//!
//! Submodules: [`capture`] (XDamage + MIT-SHM + XFixes cursor), [`clipboard`] (the
//! desktop's clipboard told to control viewers), [`convert`] (BGRX → I420,
//! pure), [`encoder`] (openh264), [`hub`] (the per-display capture/encode thread and the
//! viewers' bounded queues), [`tile`] (small changes sent as pixels ahead of the video),
//! [`macroblocks`] (the same for neko's feed: changed macroblocks' samples),
//! [`image`] (changed boxes as JPEG, for browsers without WebCodecs), [`scroll`] (moved rows
//! found for those viewers, sent as a copy), [`protocol`] (the framing, pure), [`input`] (control clients' input through XTEST on a
//! thread of its own).

pub mod capture;
pub mod clipboard;
pub mod convert;
pub mod encoder;
pub mod hub;
pub mod image;
pub mod input;
pub mod macroblocks;
pub mod protocol;
pub mod scroll;
pub mod tile;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::StreamSettings;
use crate::metrics::Metrics;

/// The native stream of one display: its hub, its input thread and the close-all switch.
pub struct Stream {
    pub hub: hub::Hub,
    pub input: input::InputSender,
    /// The X display name (`:99`).
    pub display: String,
    closing: CancellationToken,
}

impl Stream {
    /// The stream of X display `display`. Starts the (idle) input thread; capture starts
    /// with the first viewer. `shutdown` is deskd's own stop: viewers are closed with 1001 the
    /// moment it is cancelled, before the supervisor stops the display (whose loss would
    /// otherwise reach them first, as 4503 "retry").
    pub fn new(
        display: &str,
        settings: &StreamSettings,
        type_delay: Duration,
        metrics: Arc<Metrics>,
        shutdown: &CancellationToken,
    ) -> std::io::Result<Stream> {
        let encoder = encoder::EncoderSettings {
            bitrate_bps: settings.bitrate_kbps.saturating_mul(1000),
            max_fps: settings.max_fps,
            ..encoder::EncoderSettings::default()
        };
        Ok(Stream {
            hub: hub::Hub::new(display, encoder, metrics)?,
            input: input::start(display, type_delay)?,
            display: display.to_string(),
            closing: shutdown.child_token(),
        })
    }

    /// Closes every viewer with 1001 (deskd stopping) and refuses new ones.
    pub fn close_all(&self) {
        self.closing.cancel();
    }

    /// Cancelled when deskd stops.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }
}

/// Test pictures for the pixel modules' unit tests.
#[cfg(test)]
mod test_screen {
    /// A `w`x`h` screen of BGRX pixels (the X server's), pixel (x, y) = `px(x, y)` as
    /// (r, g, b); the padding byte is 0xab, which no code may read as colour.
    pub fn bgrx(w: usize, h: usize, px: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
        let mut out = Vec::with_capacity(w * h * 4);
        for y in 0..h {
            for x in 0..w {
                let [r, g, b] = px(x, y);
                out.extend_from_slice(&[b, g, r, 0xab]);
            }
        }
        out
    }

    /// A box.
    pub fn rect(x: u16, y: u16, width: u16, height: u16) -> super::capture::Rect {
        super::capture::Rect {
            x,
            y,
            width,
            height,
        }
    }
}
