//! Counters fed by the relay and the HTTP layer, rendered with the supervisor's snapshot in
//! Prometheus text format. Never drives behaviour.

/// Relay and HTTP counters.
#[derive(Default)]
pub struct Metrics {}
