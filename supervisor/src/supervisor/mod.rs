//! The supervisor: starts services in dependency order gated on readiness, restarts them with
//! backoff (dependents with their dependency), stops them in reverse order, and publishes a
//! [`Snapshot`] on every change.
//!
//! - [`core`]: the pure state machine (events in, actions out).
//! - [`backoff`]: restart delays.
//! - [`instance`]: one run of one service (spawn, output, probe, stop, group cleanup).
//! - [`supervise`] (here): the async driver that connects them. It never calls `waitpid`;
//!   exits come from the [`crate::reaper`].

pub mod backoff;
pub mod core;
pub mod instance;
pub mod status;

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::core::Outcome;
use self::core::{Action, Core, Event};
use crate::output::LogBudget;
use crate::plan::Plan;
use crate::reaper::Reaper;
use crate::service::ServiceSpec;
pub use status::{ServiceState, ServiceStatus, Snapshot};

/// Runs `specs` until `shutdown` is cancelled (then stops everything: [`Outcome::Stopped`]),
/// the main service exits, or a critical service is given up. Every change is published
/// on `status`.
pub async fn supervise(
    specs: Vec<ServiceSpec>,
    reaper: Reaper,
    status: watch::Sender<Snapshot>,
    shutdown: CancellationToken,
) -> Outcome {
    let plan = match Plan::new(&specs) {
        Ok(plan) => plan,
        Err(errors) => {
            return Outcome::Invalid {
                message: errors.to_string(),
            }
        }
    };
    tracing::info!(order = %plan.start_order_names().join(" "), "starting services");
    let shared: Vec<Arc<ServiceSpec>> = specs.iter().cloned().map(Arc::new).collect();
    let mut core = Core::new(specs, plan);
    let mut instances: Vec<Option<instance::Instance>> = shared.iter().map(|_| None).collect();
    let budgets: Vec<_> = shared.iter().map(|_| LogBudget::new()).collect();
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut queue: VecDeque<Action> = core.start().into();
    let mut shutdown_seen = false;

    loop {
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn { svc } => {
                    let gen = core.generation(svc);
                    let spawned = instance::start(
                        &reaper,
                        Arc::clone(&shared[svc]),
                        svc,
                        gen,
                        events_tx.clone(),
                        Arc::clone(&budgets[svc]),
                    );
                    let event = match spawned {
                        Ok(inst) => {
                            let pid = inst.pid.as_raw() as u32;
                            instances[svc] = Some(inst);
                            Event::Spawned { svc, pid }
                        }
                        Err(err) => Event::SpawnFailed {
                            svc,
                            code: err.exit_code(),
                            error: err.to_string(),
                        },
                    };
                    queue.extend(core.handle(event, Instant::now()));
                }
                Action::Stop { svc } => {
                    if let Some(inst) = &instances[svc] {
                        inst.stop();
                    }
                }
                Action::StartTimer { svc, epoch, delay } => {
                    let tx = events_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(Event::BackoffElapsed { svc, epoch });
                    });
                }
                Action::Finish(outcome) => {
                    publish(&status, core.snapshot());
                    tracing::info!(
                        exit_code = outcome.exit_code(),
                        "all services stopped ({outcome:?})"
                    );
                    return outcome;
                }
            }
        }
        publish(&status, core.snapshot());

        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                // Unreachable: this function holds a sender.
                None => Event::Shutdown,
            },
            _ = shutdown.cancelled(), if !shutdown_seen => {
                shutdown_seen = true;
                Event::Shutdown
            }
        };
        if let Event::Exited { svc, gen, .. } = &event {
            if core.generation(*svc) == *gen {
                instances[*svc] = None;
            }
        }
        queue.extend(core.handle(event, Instant::now()));
    }
}

fn publish(status: &watch::Sender<Snapshot>, snapshot: Snapshot) {
    status.send_if_modified(|current| {
        if *current == snapshot {
            false
        } else {
            *current = snapshot;
            true
        }
    });
}
