//! The native stream (`/stream/ws`): deskd captures the X display itself, encodes H.264 once
//! per display and sends the frames to every viewer over a WebSocket; input comes back the
//! same way. The wire contract is `docs/native-stream.md`.
//!
//! Submodules: [`capture`] (XDamage + MIT-SHM + XFixes cursor), [`convert`] (BGRX → I420,
//! pure), [`encoder`] (openh264).

pub mod capture;
pub mod convert;
pub mod encoder;
