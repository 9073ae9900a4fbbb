//! Restart delays: exponential from `initial`, capped at `max`. Pure.

use std::time::Duration;

use crate::service::Backoff;

/// The delay before restart number `failures` (1 = the first restart after a failure).
pub fn delay(backoff: &Backoff, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let factor = 1u64 << doublings;
    let nanos = backoff
        .initial
        .as_nanos()
        .saturating_mul(u128::from(factor));
    let max = backoff.max.max(backoff.initial);
    if nanos >= max.as_nanos() {
        max
    } else {
        // nanos < max, which fits in a Duration.
        Duration::from_nanos(nanos as u64)
    }
}

/// Whether `failures` consecutive failures exceed the allowed restarts.
pub fn gives_up(backoff: &Backoff, failures: u32) -> bool {
    backoff.max_restarts != 0 && failures > backoff.max_restarts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(initial_ms: u64, max_ms: u64, max_restarts: u32) -> Backoff {
        Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            reset_after: Duration::from_secs(30),
            max_restarts,
        }
    }

    #[test]
    fn doubles_up_to_max() {
        let backoff = b(200, 1000, 0);
        let delays: Vec<u128> = (1..=6).map(|f| delay(&backoff, f).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1000, 1000, 1000]);
        // Huge failure counts do not overflow.
        assert_eq!(delay(&backoff, u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn max_below_initial_uses_initial() {
        assert_eq!(delay(&b(500, 100, 0), 3), Duration::from_millis(500));
    }

    #[test]
    fn zero_max_restarts_never_gives_up() {
        assert!(!gives_up(&b(1, 1, 0), 1_000_000));
        assert!(!gives_up(&b(1, 1, 3), 3));
        assert!(gives_up(&b(1, 1, 3), 4));
    }
}
