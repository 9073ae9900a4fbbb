//! One run of one service: spawn it, log its output, run its readiness probe (for displays,
//! again and again while it runs), stop it on request, clean up its process group, and
//! report each step to the driver as core [`Event`]s tagged with the run's generation.

use std::sync::Arc;

use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::core::Event;
use crate::output::{self, LogBudget, LogWatch, Stream};
use crate::process::{self, SpawnError};
use crate::readiness;
use crate::reaper::{ExitStatus, Reaper};
use crate::service::{Readiness, ServiceSpec};

/// Handle to a running instance, kept by the driver.
pub struct Instance {
    pub pid: Pid,
    stop: CancellationToken,
}

impl Instance {
    /// Asks the instance to stop (stop signal, stop timeout, SIGKILL). Idempotent.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Spawns run `gen` of service `svc`, its output logged within the service's `budget` (kept
/// across its runs). Errors are spawn failures (nothing was started).
pub fn start(
    reaper: &Reaper,
    spec: Arc<ServiceSpec>,
    svc: usize,
    gen: u64,
    events: mpsc::UnboundedSender<Event>,
    budget: Arc<LogBudget>,
) -> Result<Instance, SpawnError> {
    let spawned = process::spawn(reaper, &spec)?;
    let pid = spawned.pid;
    let (watch, log_rx) = match &spec.ready {
        Readiness::Log { pattern } => {
            let (w, rx) = LogWatch::new(pattern.clone());
            (Some(w), Some(rx))
        }
        _ => (None, None),
    };
    if let Some(out) = spawned.stdout {
        tokio::spawn(output::pump(
            spec.name.clone(),
            Stream::Stdout,
            out,
            watch.clone(),
            budget.clone(),
        ));
    }
    if let Some(err) = spawned.stderr {
        tokio::spawn(output::pump(
            spec.name.clone(),
            Stream::Stderr,
            err,
            watch,
            budget,
        ));
    }
    let stop = CancellationToken::new();
    tokio::spawn(run(
        spec,
        svc,
        gen,
        pid,
        spawned.exit,
        stop.clone(),
        log_rx,
        events,
    ));
    Ok(Instance { pid, stop })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    spec: Arc<ServiceSpec>,
    svc: usize,
    gen: u64,
    pid: Pid,
    mut exit: tokio::sync::oneshot::Receiver<ExitStatus>,
    stop: CancellationToken,
    log_rx: Option<tokio::sync::watch::Receiver<bool>>,
    events: mpsc::UnboundedSender<Event>,
) {
    // The reaper never drops a registered sender; if it did, deskd is ending anyway.
    let lost = ExitStatus::Signaled(nix::libc::SIGKILL);
    let mut status = None;
    let mut keep_probing = false;
    tokio::select! {
        _ = stop.cancelled() => {}
        st = &mut exit => status = Some(st.unwrap_or(lost)),
        ready = readiness::wait_ready(&spec.ready, spec.ready_timeout, log_rx) => {
            let event = match ready {
                Ok(()) => {
                    keep_probing = readiness::keeps_probing(&spec.ready);
                    Event::Ready { svc, gen }
                }
                Err(err) => Event::NotReady { svc, gen, error: err.to_string() },
            };
            let _ = events.send(event);
        }
    }
    let status = match status {
        Some(status) => status,
        None => tokio::select! {
            _ = stop.cancelled() => {
                process::stop(pid, &mut exit, spec.stop_signal, spec.stop_timeout)
                    .await
                    .unwrap_or(lost)
            }
            st = &mut exit => st.unwrap_or(lost),
            never = keep_checking(&spec, svc, gen, &events), if keep_probing => match never {},
        },
    };
    process::clean_group(pid, spec.stop_timeout).await;
    let _ = events.send(Event::Exited { svc, gen, status });
}

/// While a ready display service runs: its probe again every [`readiness::LIVENESS_PERIOD`],
/// reporting when it stops and starts answering. Never returns.
async fn keep_checking(
    spec: &ServiceSpec,
    svc: usize,
    gen: u64,
    events: &mpsc::UnboundedSender<Event>,
) -> std::convert::Infallible {
    let mut answering = true;
    loop {
        tokio::time::sleep(readiness::LIVENESS_PERIOD).await;
        let check = readiness::check_once(&spec.ready, readiness::LIVENESS_TIMEOUT).await;
        match (answering, check) {
            (true, Err(error)) => {
                answering = false;
                let _ = events.send(Event::Unresponsive { svc, gen, error });
            }
            (false, Ok(())) => {
                answering = true;
                let _ = events.send(Event::Responsive { svc, gen });
            }
            _ => {}
        }
    }
}
