//! The supervisor's externally visible state: what `/readyz`, `/api/services`, `/metrics`
//! and the relay read. Published through a `tokio::sync::watch` channel; never drives
//! behaviour.

use serde::Serialize;

/// Where one service is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Not started yet: waiting for its `after` dependencies to be ready.
    Waiting,
    /// Process started, readiness probe running.
    Starting,
    /// Readiness probe passed.
    Ready,
    /// Was ready, but its probe (kept running for displays) stopped passing: the X server
    /// does not answer. Not restarted for that; back to `ready` when the probe passes again.
    Unresponsive,
    /// Exited; waiting out the restart backoff.
    Backoff,
    /// Being stopped (stop signal sent, waiting for exit or the stop timeout).
    Stopping,
    /// Stopped, and will not be started again (policy, or deskd is shutting down).
    Stopped,
    /// Restarting was given up.
    Failed,
    /// A one-shot that finished successfully (exit status 0, not to be restarted): it counts
    /// as up for its dependents and for readiness, and stays done.
    Completed,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Waiting => "waiting",
            ServiceState::Starting => "starting",
            ServiceState::Ready => "ready",
            ServiceState::Unresponsive => "unresponsive",
            ServiceState::Backoff => "backoff",
            ServiceState::Stopping => "stopping",
            ServiceState::Stopped => "stopped",
            ServiceState::Failed => "failed",
            ServiceState::Completed => "completed",
        }
    }

    /// Ready, or a one-shot that completed: dependents may start, readiness is satisfied.
    pub fn is_up(self) -> bool {
        matches!(self, ServiceState::Ready | ServiceState::Completed)
    }

    /// Every state, for metrics that export one series per state.
    pub const ALL: [ServiceState; 9] = [
        ServiceState::Waiting,
        ServiceState::Starting,
        ServiceState::Ready,
        ServiceState::Unresponsive,
        ServiceState::Backoff,
        ServiceState::Stopping,
        ServiceState::Stopped,
        ServiceState::Failed,
        ServiceState::Completed,
    ];
}

/// One service as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: ServiceState,
    /// PID of the current process, when one runs.
    pub pid: Option<u32>,
    /// Incremented on every start; a change means "this is a new process" (the relay closes
    /// its connections when neko's generation changes).
    pub generation: u64,
    /// Restarts since deskd started (not counting the first start).
    pub restarts: u64,
    pub critical: bool,
    /// The last exit, e.g. "exited with status 1" or "killed by SIGKILL".
    pub last_exit: Option<String>,
    /// Why the service is not ready, when it is not (e.g. a readiness timeout).
    pub reason: Option<String>,
}

/// All services, in start-plan order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub services: Vec<ServiceStatus>,
    /// True once deskd is shutting down.
    pub stopping: bool,
}

impl Snapshot {
    pub fn get(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Critical services that are not ready (empty: deskd is ready). A completed one-shot
    /// counts as ready.
    pub fn not_ready_critical(&self) -> Vec<&ServiceStatus> {
        self.services
            .iter()
            .filter(|s| s.critical && !s.state.is_up())
            .collect()
    }
}
