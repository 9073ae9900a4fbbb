//! When the neko feed sends an access unit, pure.
//!
//! neko stamps each access unit with the duration `h264parse` gives it, one frame period,
//! and pion turns the sum of those durations into RTP timestamps. So the browser's jitter
//! buffer reads the stream as one frame per period, whatever the screen does. The feed
//! therefore sends exactly one access unit per period on average, on the period's tick: the
//! encoder's frame when there is one, else a repeat of the last picture. Arrivals then match
//! their timestamps (no jitter for the receiver to wait out), and a frame waits at most one
//! period for its tick.

use std::time::{Duration, Instant};

/// The most access units sent at once to catch up after the feed was held up.
pub const MAX_CATCH_UP: u64 = 64;

/// One feed connection's clock.
#[derive(Debug, Clone)]
pub struct Pace {
    start: Instant,
    period: Duration,
    /// Access units sent since `start`.
    sent: u64,
}

/// What to send at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Repeats of the last picture, sent first (the screen was unchanged at those ticks).
    pub repeats: u64,
    /// The encoder's frames waiting, sent after the repeats.
    pub frames: usize,
}

impl Pace {
    pub fn new(start: Instant, period: Duration) -> Pace {
        Pace {
            start,
            period: period.max(Duration::from_millis(1)),
            sent: 0,
        }
    }

    /// When the next access unit is due.
    pub fn next(&self) -> Instant {
        self.start + self.period * u32::try_from(self.sent).unwrap_or(u32::MAX)
    }

    /// Access units due by `now` since the start (the one of the current tick included).
    fn due(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        (elapsed.as_nanos() / self.period.as_nanos()) as u64 + 1
    }

    /// What to send at `now` with `waiting` encoder frames: every waiting frame, and repeats
    /// for the ticks they do not fill (at most [`MAX_CATCH_UP`]). Nothing before the next
    /// tick. A feed held up for longer than a second (the machine was suspended) starts its
    /// clock again: the browser's jitter buffer absorbs one jump, not a second of repeats.
    pub fn plan(&mut self, now: Instant, waiting: usize) -> Plan {
        let behind = self.due(now).saturating_sub(self.sent);
        if behind == 0 {
            return Plan {
                repeats: 0,
                frames: 0,
            };
        }
        if self.period * u32::try_from(behind).unwrap_or(u32::MAX) > Duration::from_secs(1) {
            self.start = now;
            self.sent = 0;
            return Plan {
                repeats: u64::from(waiting == 0),
                frames: waiting,
            };
        }
        Plan {
            repeats: behind.saturating_sub(waiting as u64).min(MAX_CATCH_UP),
            frames: waiting,
        }
    }

    /// `n` access units were sent.
    pub fn sent(&mut self, n: u64) {
        self.sent += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(10);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn one_access_unit_per_tick_repeats_while_nothing_changes() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        assert_eq!(pace.next(), t0);
        let plan = pace.plan(t0, 0);
        assert_eq!(
            plan,
            Plan {
                repeats: 1,
                frames: 0
            }
        );
        pace.sent(1);
        assert_eq!(pace.next(), at(t0, 10));
        // before the tick: nothing
        assert_eq!(
            pace.plan(at(t0, 5), 1),
            Plan {
                repeats: 0,
                frames: 0
            }
        );
        // at the tick a waiting frame takes the slot
        assert_eq!(
            pace.plan(at(t0, 10), 1),
            Plan {
                repeats: 0,
                frames: 1
            }
        );
        pace.sent(1);
        assert_eq!(pace.next(), at(t0, 20));
    }

    #[test]
    fn a_burst_is_paid_back_by_skipped_repeats() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        // two frames in one tick: one tick ahead
        assert_eq!(
            pace.plan(t0, 2),
            Plan {
                repeats: 0,
                frames: 2
            }
        );
        pace.sent(2);
        assert_eq!(
            pace.plan(at(t0, 12), 0),
            Plan {
                repeats: 0,
                frames: 0
            }
        );
        assert_eq!(pace.next(), at(t0, 20));
        assert_eq!(
            pace.plan(at(t0, 20), 0),
            Plan {
                repeats: 1,
                frames: 0
            }
        );
    }

    #[test]
    fn a_late_tick_catches_up_with_repeats_before_the_frame() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        pace.plan(t0, 0);
        pace.sent(1);
        // held up until 45 ms: ticks 10, 20, 30, 40 are due
        assert_eq!(
            pace.plan(at(t0, 45), 1),
            Plan {
                repeats: 3,
                frames: 1
            }
        );
        pace.sent(4);
        assert_eq!(pace.next(), at(t0, 50));
    }

    #[test]
    fn a_long_hold_up_starts_the_clock_again() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        pace.plan(t0, 0);
        pace.sent(1);
        let late = at(t0, 5000);
        assert_eq!(
            pace.plan(late, 0),
            Plan {
                repeats: 1,
                frames: 0
            }
        );
        pace.sent(1);
        assert_eq!(pace.next(), at(t0, 5010));
    }
}
