//! What one neko feed connection sends, pure: the hub's frames and changed macroblocks in,
//! the access units for neko out, each at its tick ([`super::pace`]) with the duration it
//! is given ([`super::timing`]), repeats and patches ([`super::h264`]) in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::pace::{self, Slot};
use super::{h264, timing, ACTIVE_FOR};
use crate::stream::macroblocks::Macroblocks;

/// What one feed connection has heard from the hub and sent to neko, and what it sends next.
pub(super) struct Feed {
    bits: h264::Bitstream,
    /// The encoder's frames not sent yet.
    waiting: Vec<Bytes>,
    /// The macroblocks changed since the last of the encoder's frames that came.
    changed: Option<Arc<Macroblocks>>,
    pub(super) pace: pace::Pace,
    timing: Option<timing::Retimer>,
    /// The last change of the picture the feed heard of (a frame after the connection's
    /// first, or changed macroblocks).
    changed_at: Option<Instant>,
    said_unsupported: bool,
}

impl Feed {
    pub(super) fn new(fps: u32) -> Feed {
        Feed::starting(fps, Instant::now())
    }

    /// A connection whose clock starts at `start`.
    pub(super) fn starting(fps: u32, start: Instant) -> Feed {
        Feed {
            bits: h264::Bitstream::default(),
            waiting: Vec::new(),
            changed: None,
            pace: pace::Pace::new(start, Duration::from_secs(1) / fps),
            timing: Some(timing::Retimer::new(fps)),
            changed_at: None,
            said_unsupported: false,
        }
    }

    /// An encoder's frame came at `now`.
    pub(super) fn frame(&mut self, au: Bytes, now: Instant) {
        // The connection's first frame is the picture as it is, not a change. (A key frame
        // asked for later counts as one: the encoder makes key frames of large changes too.)
        if !self.bits.is_empty() || !self.waiting.is_empty() {
            self.changed_at = Some(now);
        }
        self.waiting.push(au);
        // It carries every change before it.
        self.changed = None;
    }

    /// Macroblocks changed at `now`, which the encoder has not coded yet.
    pub(super) fn macroblocks(&mut self, mbs: Arc<Macroblocks>, now: Instant) {
        self.changed = Some(mbs);
        self.changed_at = Some(now);
    }

    /// The tick at which waiting frames may go now, ahead of it: the next one, when it is at
    /// most a frame period ([`Slot::Long`]) away, so that a frame never waits for its tick,
    /// even the first after a still screen. The page's own decoder (the viewer's default)
    /// shows a frame when it arrives; a `<video>`'s jitter buffer holds it until its
    /// timestamp, as if it had waited.
    pub(super) fn early(&self, now: Instant) -> Option<Instant> {
        let next = self.pace.next();
        let within = self.pace.tick() * Slot::Long.ticks() as u32;
        (!self.waiting.is_empty() && next > now && next - now <= within).then_some(next)
    }

    /// The units due at `tick` (now, or the next tick for frames sent early), as the bytes
    /// for neko; `None` before the next tick.
    pub(super) fn units(&mut self, tick: Instant) -> Option<Vec<u8>> {
        let slot = match (&self.timing, self.changed_at) {
            (Some(_), Some(t)) if tick.saturating_duration_since(t) < ACTIVE_FOR => Slot::Short,
            _ => Slot::Long,
        };
        let plan = self.pace.plan(tick, self.waiting.len(), slot)?;
        let mut out = Vec::new();
        // A slot of its own shows the newest picture: the encoder's last frame with the
        // macroblocks changed since. Slots caught up before waiting frames repeat what was
        // shown.
        let repeat = match &self.changed {
            Some(mbs) if self.waiting.is_empty() => {
                self.bits.patch(mbs).or_else(|| self.bits.repeat())
            }
            _ => self.bits.repeat(),
        };
        let mut ticks = plan.catch_up;
        if self.waiting.is_empty() {
            ticks += slot.ticks();
        }
        // Before the first picture there is nothing to repeat, and nothing stamped yet:
        // those slots pass unsent.
        if let Some(r) = &repeat {
            for s in pace::catch_up(plan.catch_up) {
                out.extend(h264::frame(&timed(&mut self.timing, r, s)));
            }
            if self.waiting.is_empty() {
                out.extend(h264::frame(&timed(&mut self.timing, r, slot)));
            }
        }
        for au in std::mem::take(&mut self.waiting) {
            if let Err(e) = self.bits.saw(&au) {
                if !self.said_unsupported {
                    tracing::warn!("neko video feed: no repeat frames for this stream: {e}");
                    self.said_unsupported = true;
                }
            }
            out.extend(h264::frame(&timed(&mut self.timing, &au, slot)));
            ticks += slot.ticks();
        }
        self.pace.sent(ticks);
        (!out.is_empty()).then_some(out)
    }
}

/// `au` lasting `slot`, while the stream can be retimed; as it is (a whole period) once it
/// cannot, for the rest of the connection.
fn timed(timing: &mut Option<timing::Retimer>, au: &[u8], slot: Slot) -> Vec<u8> {
    if let Some(t) = timing {
        match t.access_unit(au, slot) {
            Ok(timed) => return timed,
            Err(e) => {
                tracing::warn!("neko video feed: frames last one period from now on: {e}");
                *timing = None;
            }
        }
    }
    au.to_vec()
}

#[cfg(test)]
mod tests;
