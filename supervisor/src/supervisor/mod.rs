//! The per-service state machine: start in dependency order gated on readiness, restart with
//! backoff (dependents with their dependency), stop in reverse order.

pub mod status;

pub use status::{ServiceState, ServiceStatus, Snapshot};
