//! When the neko feed sends an access unit, and for how long each one lasts, pure.
//!
//! neko stamps each access unit with the duration `h264parse` gives it, and pion turns the
//! sum of those durations into RTP timestamps: a unit's timestamp is the sum of the durations
//! of the units before it. So the feed sends each unit when its timestamp says, on a tick of
//! its own clock, and picks each unit's duration as it sends it ([`Slot`], through the SEI of
//! [`super::timing`]): half a frame period while the screen is changing, so a new frame
//! waits at most half a period for its tick, and a whole period while it is not, so a static
//! screen costs no more units than before. Arrivals then match their timestamps (no jitter
//! for the receiver to wait out), but for an encoder's frame, which goes at once with the
//! timestamp of a tick at most a period ahead ([`super::units`] says why). Without retiming (a stream [`super::timing`] cannot
//! rewrite) every unit lasts a whole period, from the caps' frame rate.

use std::time::{Duration, Instant};

pub use super::timing::Slot;

/// The most access units sent at once to catch up after the feed was held up.
pub const MAX_CATCH_UP: u64 = 64;

/// One feed connection's clock, in ticks of half a frame period.
#[derive(Debug, Clone)]
pub struct Pace {
    start: Instant,
    tick: Duration,
    /// Ticks covered by the units sent since `start`: the next unit's timestamp.
    stamped: u64,
}

/// What to send at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Ticks to cover first with repeats of the last picture (the screen was unchanged
    /// then): see [`catch_up`].
    pub catch_up: u64,
}

impl Pace {
    /// A clock whose [`Slot::Long`] lasts `period`.
    pub fn new(start: Instant, period: Duration) -> Pace {
        Pace {
            start,
            tick: (period / 2).max(Duration::from_micros(500)),
            stamped: 0,
        }
    }

    /// The clock's tick: half a frame period.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// When the next access unit is due.
    pub fn next(&self) -> Instant {
        self.start + self.tick * u32::try_from(self.stamped).unwrap_or(u32::MAX)
    }

    /// The tick `now` is in.
    fn tick_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        (elapsed.as_nanos() / self.tick.as_nanos()) as u64
    }

    /// What to send at `now` with `waiting` encoder frames, each unit of this tick lasting
    /// `slot`: every waiting frame (or one repeat), the newest stamped at the current tick or
    /// later, after repeats for the ticks not covered yet (at most [`MAX_CATCH_UP`] units).
    /// `None` before the next tick. A feed held up for longer than a second (the machine
    /// was suspended) starts its clock again: the browser's jitter buffer absorbs one jump,
    /// not a second of repeats.
    pub fn plan(&mut self, now: Instant, waiting: usize, slot: Slot) -> Option<Plan> {
        if now < self.next() {
            return None;
        }
        let current = self.tick_at(now);
        let units = waiting.max(1) as u64;
        let gap = current
            .saturating_sub(self.stamped)
            .saturating_sub((units - 1) * slot.ticks());
        if self.tick * u32::try_from(gap).unwrap_or(u32::MAX) > Duration::from_secs(1) {
            self.start = now;
            self.stamped = 0;
            return Some(Plan { catch_up: 0 });
        }
        Some(Plan {
            catch_up: gap.min(MAX_CATCH_UP * Slot::Long.ticks()),
        })
    }

    /// Units covering `ticks` were sent.
    pub fn sent(&mut self, ticks: u64) {
        self.stamped += ticks;
    }
}

/// The repeats that cover `ticks`: whole periods, and a half one for an odd tick.
pub fn catch_up(ticks: u64) -> impl Iterator<Item = Slot> {
    let long = std::iter::repeat_n(Slot::Long, (ticks / 2) as usize);
    long.chain((ticks % 2 == 1).then_some(Slot::Short))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A period of 20 ms: ticks of 10 ms.
    const P: Duration = Duration::from_millis(20);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn plan(catch_up: u64) -> Option<Plan> {
        Some(Plan { catch_up })
    }

    #[test]
    fn a_static_screen_gets_one_unit_per_period_a_changing_one_two() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        assert_eq!(pace.next(), t0);
        assert_eq!(pace.plan(t0, 0, Slot::Long), plan(0));
        pace.sent(Slot::Long.ticks());
        assert_eq!(pace.next(), at(t0, 20));
        // before the tick: nothing, whatever waits
        assert_eq!(pace.plan(at(t0, 15), 1, Slot::Short), None);
        // at the tick a waiting frame takes the slot, and lasts half a period
        assert_eq!(pace.plan(at(t0, 20), 1, Slot::Short), plan(0));
        pace.sent(Slot::Short.ticks());
        assert_eq!(pace.next(), at(t0, 30));
        assert_eq!(pace.plan(at(t0, 30), 0, Slot::Short), plan(0));
        pace.sent(Slot::Short.ticks());
        assert_eq!(pace.next(), at(t0, 40));
    }

    #[test]
    fn a_burst_is_paid_back_by_skipped_repeats() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        // two frames at once: the second is stamped a slot ahead
        assert_eq!(pace.plan(t0, 2, Slot::Short), plan(0));
        pace.sent(2 * Slot::Short.ticks());
        assert_eq!(pace.plan(at(t0, 12), 0, Slot::Short), None);
        assert_eq!(pace.next(), at(t0, 20));
        assert_eq!(pace.plan(at(t0, 20), 0, Slot::Short), plan(0));
    }

    #[test]
    fn a_late_tick_catches_up_with_repeats_before_the_frame() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        pace.plan(t0, 0, Slot::Long);
        pace.sent(Slot::Long.ticks());
        // held up until 55 ms: ticks 2, 3 and 4 were not covered; the frame goes at tick 5
        assert_eq!(pace.plan(at(t0, 55), 1, Slot::Short), plan(3));
        assert_eq!(
            catch_up(3).collect::<Vec<_>>(),
            [Slot::Long, Slot::Short],
            "as few repeats as cover the gap"
        );
        pace.sent(3 + Slot::Short.ticks());
        assert_eq!(pace.next(), at(t0, 60));
    }

    #[test]
    fn a_long_hold_up_starts_the_clock_again() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, P);
        pace.plan(t0, 0, Slot::Long);
        pace.sent(Slot::Long.ticks());
        let late = at(t0, 5000);
        assert_eq!(pace.plan(late, 0, Slot::Long), plan(0));
        pace.sent(Slot::Long.ticks());
        assert_eq!(pace.next(), at(t0, 5020));
    }
}
