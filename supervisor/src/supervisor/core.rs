//! The pure heart of the supervisor: per-service states, driven by [`Event`]s and answering
//! with [`Action`]s for the driver to carry out. No processes, no clocks (the caller passes
//! `now`), no tokio: every rule of issue 2 §2 is unit-tested here on plain values.
//!
//! Rules:
//! - a service starts once every service in its `after` is up: Ready, or Completed for a
//!   one-shot (independent ones together);
//! - a one-shot is done (Completed) when it exits with status 0 and will not be restarted: a
//!   `ready = { exit = true }` service, or any service whose policy does not restart after a
//!   success (`never`, `on-failure`). Completion is not an exit of something dependents rely
//!   on: they are not stopped, and the one-shot is not run again when a dependency restarts;
//! - a run that fails (spawn error, readiness failure, exit) is restarted per its policy after
//!   an exponential backoff; the count resets once it stayed Ready for `reset_after`; after
//!   `max_restarts` (if non-zero) it is given up (Failed);
//! - when a service otherwise exits, every transitive dependent is stopped (dependents first) and
//!   waits until the dependency is Ready again;
//! - a critical service given up, or a main service exiting, stops everything;
//! - stopping (for shutdown or a cascade) goes dependents-first: a service is sent its stop
//!   only once none of its dependents still runs.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff;
use super::status::{ServiceState, ServiceStatus, Snapshot};
use crate::plan::Plan;
use crate::reaper::ExitStatus;
use crate::service::{Readiness, RestartPolicy, ServiceSpec};

/// Something that happened to a service (or to deskd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The process of the last [`Action::Spawn`] for `svc` runs with this pid.
    Spawned { svc: usize, pid: u32 },
    /// The last [`Action::Spawn`] for `svc` failed; `code` is 127 (not found) or 126.
    SpawnFailed { svc: usize, error: String, code: u8 },
    /// The readiness probe of run `gen` passed.
    Ready { svc: usize, gen: u64 },
    /// The readiness probe of run `gen` failed (timeout or impossible).
    NotReady { svc: usize, gen: u64, error: String },
    /// Run `gen` was ready, but its probe, run again, failed (a display not answering).
    Unresponsive { svc: usize, gen: u64, error: String },
    /// Run `gen`'s probe passes again after [`Event::Unresponsive`].
    Responsive { svc: usize, gen: u64 },
    /// The process of run `gen` exited (and its group has been cleaned up).
    Exited {
        svc: usize,
        gen: u64,
        status: ExitStatus,
    },
    /// A restart timer set by [`Action::StartTimer`] fired.
    BackoffElapsed { svc: usize, epoch: u64 },
    /// Stop everything and finish (SIGTERM/SIGINT to deskd).
    Shutdown,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new run of `svc` (its generation is [`Core::generation`]), then report
    /// `Spawned`/`SpawnFailed`, `Ready`/`NotReady` and `Exited`.
    Spawn { svc: usize },
    /// Stop the current run of `svc` (stop signal, stop timeout, SIGKILL); report `Exited`.
    Stop { svc: usize },
    /// Report `BackoffElapsed { svc, epoch }` after `delay`.
    StartTimer {
        svc: usize,
        epoch: u64,
        delay: Duration,
    },
    /// Everything is stopped: deskd ends with this outcome.
    Finish(Outcome),
}

/// How supervision ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A requested stop (SIGTERM/SIGINT): success.
    Stopped,
    /// The main service ended; deskd exits with its code.
    MainExited { service: String, code: u8 },
    /// A critical service was given up.
    CriticalFailed { service: String, reason: String },
    /// The services could not be planned (config validation should have caught this).
    Invalid { message: String },
}

impl Outcome {
    /// deskd's exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Stopped => 0,
            Outcome::MainExited { code, .. } => *code,
            Outcome::CriticalFailed { .. } => 1,
            Outcome::Invalid { .. } => 2,
        }
    }
}

/// What happens when a run that was asked to stop has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterStop {
    /// Stay stopped (shutdown).
    Stay,
    /// Wait for the dependencies to be ready again, then start (cascade).
    Wait,
    /// Count as a failed run (readiness failure), with this reason.
    Retry(String),
}

#[derive(Debug, Clone)]
struct Svc {
    state: ServiceState,
    /// A process of the current generation exists (spawned, `Exited` not yet seen).
    running: bool,
    pid: Option<u32>,
    gen: u64,
    restarts: u64,
    /// Failed runs since the last reset.
    failures: u32,
    ready_since: Option<Instant>,
    last_exit: Option<String>,
    reason: Option<String>,
    /// Must be stopped, once none of its dependents runs any more.
    pending_stop: bool,
    after_stop: AfterStop,
    timer_epoch: u64,
}

/// The state machine. See the module documentation for the rules.
pub struct Core {
    specs: Vec<ServiceSpec>,
    plan: Plan,
    svcs: Vec<Svc>,
    shutting_down: bool,
    outcome: Option<Outcome>,
    finished: bool,
}

impl Core {
    pub fn new(specs: Vec<ServiceSpec>, plan: Plan) -> Core {
        let svcs = specs
            .iter()
            .map(|_| Svc {
                state: ServiceState::Waiting,
                running: false,
                pid: None,
                gen: 0,
                restarts: 0,
                failures: 0,
                ready_since: None,
                last_exit: None,
                reason: None,
                pending_stop: false,
                after_stop: AfterStop::Stay,
                timer_epoch: 0,
            })
            .collect();
        Core {
            specs,
            plan,
            svcs,
            shutting_down: false,
            outcome: None,
            finished: false,
        }
    }

    /// The first actions: start everything that depends on nothing.
    pub fn start(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        self.pump(&mut actions);
        actions
    }

    /// The generation of the current (or last) run of `svc`.
    pub fn generation(&self, svc: usize) -> u64 {
        self.svcs[svc].gen
    }

    pub fn spec(&self, svc: usize) -> &ServiceSpec {
        &self.specs[svc]
    }

    pub fn state(&self, svc: usize) -> ServiceState {
        self.svcs[svc].state
    }

    /// Applies one event.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Spawned { svc, pid } => {
                if self.svcs[svc].running {
                    self.svcs[svc].pid = Some(pid);
                }
            }
            Event::SpawnFailed { svc, error, code } => {
                let s = &mut self.svcs[svc];
                s.running = false;
                s.pid = None;
                s.pending_stop = false;
                tracing::error!(service = %self.specs[svc].name, "cannot start: {error}");
                if self.specs[svc].main && !self.shutting_down {
                    self.svcs[svc].state = ServiceState::Failed;
                    self.svcs[svc].reason = Some(error);
                    self.begin_shutdown(Outcome::MainExited {
                        service: self.specs[svc].name.clone(),
                        code,
                    });
                } else if self.shutting_down {
                    self.svcs[svc].state = ServiceState::Stopped;
                } else {
                    self.failed_run(svc, error, &mut actions);
                }
            }
            Event::Ready { svc, gen } => {
                let s = &mut self.svcs[svc];
                if s.gen == gen && s.running && s.state == ServiceState::Starting && !s.pending_stop
                {
                    s.state = ServiceState::Ready;
                    s.ready_since = Some(now);
                    s.reason = None;
                    tracing::info!(service = %self.specs[svc].name, generation = gen, "ready");
                }
            }
            Event::NotReady { svc, gen, error } => {
                let s = &mut self.svcs[svc];
                if s.gen == gen && s.running && s.state == ServiceState::Starting && !s.pending_stop
                {
                    tracing::warn!(service = %self.specs[svc].name, "{error}");
                    s.reason = Some(error.clone());
                    s.pending_stop = true;
                    s.after_stop = AfterStop::Retry(error);
                }
            }
            Event::Unresponsive { svc, gen, error } => {
                let s = &mut self.svcs[svc];
                if s.gen == gen && s.running && s.state == ServiceState::Ready && !s.pending_stop {
                    tracing::warn!(service = %self.specs[svc].name, "not answering: {error}");
                    s.state = ServiceState::Unresponsive;
                    s.reason = Some(format!("not answering: {error}"));
                }
            }
            Event::Responsive { svc, gen } => {
                let s = &mut self.svcs[svc];
                if s.gen == gen && s.running && s.state == ServiceState::Unresponsive {
                    tracing::info!(service = %self.specs[svc].name, "answering again");
                    s.state = ServiceState::Ready;
                    s.reason = None;
                }
            }
            Event::Exited { svc, gen, status } => {
                if self.svcs[svc].gen == gen && self.svcs[svc].running {
                    self.exited(svc, status, now, &mut actions);
                }
            }
            Event::BackoffElapsed { svc, epoch } => {
                let s = &mut self.svcs[svc];
                if s.state == ServiceState::Backoff && s.timer_epoch == epoch {
                    s.state = ServiceState::Waiting;
                }
            }
            Event::Shutdown => {
                if !self.shutting_down {
                    tracing::info!("stopping all services");
                }
                self.begin_shutdown(Outcome::Stopped);
            }
        }
        self.pump(&mut actions);
        actions
    }

    fn exited(&mut self, svc: usize, status: ExitStatus, now: Instant, actions: &mut Vec<Action>) {
        let name = self.specs[svc].name.clone();
        let s = &mut self.svcs[svc];
        s.running = false;
        s.pid = None;
        s.last_exit = Some(status.to_string());
        let requested = s.state == ServiceState::Stopping || s.pending_stop;
        s.pending_stop = false;
        let was_ready_for = s
            .ready_since
            .take()
            .map(|t| now.saturating_duration_since(t));

        if requested {
            tracing::info!(service = %name, "stopped ({status})");
            match std::mem::replace(&mut s.after_stop, AfterStop::Stay) {
                AfterStop::Stay => s.state = ServiceState::Stopped,
                AfterStop::Wait if !self.shutting_down => s.state = ServiceState::Waiting,
                AfterStop::Retry(reason) if !self.shutting_down => {
                    self.failed_run(svc, reason, actions)
                }
                _ => s.state = ServiceState::Stopped,
            }
            return;
        }

        if self.shutting_down {
            tracing::info!(service = %name, "{status} while stopping");
            s.state = ServiceState::Stopped;
            return;
        }

        // An exit nobody asked for.
        let spec = &self.specs[svc];
        if was_ready_for.is_some_and(|d| d >= spec.backoff.reset_after) {
            s.failures = 0;
        }
        let (main, policy, critical) = (spec.main, spec.restart, spec.critical);
        if !main && status.success() && completes(spec) {
            tracing::info!(service = %name, "completed ({status})");
            s.state = ServiceState::Completed;
            s.reason = None;
            s.failures = 0;
            return;
        }
        for d in self.plan.dependents(svc) {
            self.mark_for_restart(d);
        }
        if main {
            tracing::info!(service = %name, "main service {status}; stopping everything");
            self.svcs[svc].state = ServiceState::Stopped;
            self.begin_shutdown(Outcome::MainExited {
                service: name,
                code: status.code(),
            });
            return;
        }
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !status.success(),
            RestartPolicy::Never => false,
        };
        if restart {
            tracing::warn!(service = %name, "{status}");
            self.failed_run(svc, status.to_string(), actions);
        } else {
            tracing::info!(service = %name, "{status}; not restarted (restart = {policy:?})");
            if critical && !status.success() {
                self.svcs[svc].state = ServiceState::Failed;
                self.begin_shutdown(Outcome::CriticalFailed {
                    service: name,
                    reason: status.to_string(),
                });
            } else {
                self.svcs[svc].state = ServiceState::Stopped;
                self.warn_stranded(svc);
            }
        }
    }

    /// A run failed: back off and retry, or give up.
    fn failed_run(&mut self, svc: usize, reason: String, actions: &mut Vec<Action>) {
        let spec = &self.specs[svc];
        let s = &mut self.svcs[svc];
        s.failures = s.failures.saturating_add(1);
        if backoff::gives_up(&spec.backoff, s.failures) {
            let why = format!(
                "gave up after {} restarts: {reason}",
                spec.backoff.max_restarts
            );
            tracing::error!(service = %spec.name, "{why}");
            s.state = ServiceState::Failed;
            s.reason = Some(why.clone());
            if spec.critical {
                let service = spec.name.clone();
                self.begin_shutdown(Outcome::CriticalFailed {
                    service,
                    reason: why,
                });
            } else {
                self.warn_stranded(svc);
            }
            return;
        }
        let delay = backoff::delay(&spec.backoff, s.failures);
        tracing::info!(
            service = %spec.name,
            "restarting in {}",
            humantime::format_duration(delay)
        );
        s.state = ServiceState::Backoff;
        s.reason = Some(reason);
        s.timer_epoch += 1;
        actions.push(Action::StartTimer {
            svc,
            epoch: s.timer_epoch,
            delay,
        });
    }

    /// `svc` is down for good: say which services now wait for it forever.
    fn warn_stranded(&self, svc: usize) {
        let waiting: Vec<&str> = self
            .plan
            .dependents(svc)
            .into_iter()
            .map(|d| self.plan.name(d))
            .collect();
        if !waiting.is_empty() && !self.shutting_down {
            tracing::warn!(
                service = %self.specs[svc].name,
                "will not be started again; {} cannot start without it",
                waiting.join(", ")
            );
        }
    }

    /// A dependency of `svc` went down: stop it (if running) and start it again once the
    /// dependency is ready.
    fn mark_for_restart(&mut self, svc: usize) {
        let s = &mut self.svcs[svc];
        match s.state {
            ServiceState::Starting | ServiceState::Ready | ServiceState::Unresponsive => {
                s.pending_stop = true;
                s.after_stop = AfterStop::Wait;
            }
            // Already stopping (e.g. a failed readiness probe): the dependency being down
            // matters more, so wait for it instead of backing off.
            ServiceState::Stopping => s.after_stop = AfterStop::Wait,
            ServiceState::Backoff => {
                s.state = ServiceState::Waiting;
                s.timer_epoch += 1;
            }
            // A completed one-shot stays done.
            ServiceState::Waiting
            | ServiceState::Stopped
            | ServiceState::Failed
            | ServiceState::Completed => {}
        }
    }

    fn begin_shutdown(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        for s in &mut self.svcs {
            match s.state {
                ServiceState::Waiting | ServiceState::Backoff => {
                    s.state = ServiceState::Stopped;
                    s.timer_epoch += 1;
                }
                ServiceState::Starting | ServiceState::Ready | ServiceState::Unresponsive => {
                    s.pending_stop = true;
                    s.after_stop = AfterStop::Stay;
                }
                ServiceState::Stopping => s.after_stop = AfterStop::Stay,
                ServiceState::Stopped | ServiceState::Failed | ServiceState::Completed => {}
            }
        }
    }

    /// Issues the stops and starts that have become possible, and finishes when all is down.
    fn pump(&mut self, actions: &mut Vec<Action>) {
        let stop_order: Vec<usize> = self.plan.stop_order().collect();
        for i in stop_order {
            let s = &self.svcs[i];
            if s.pending_stop && s.running && s.state != ServiceState::Stopping {
                let blocked = self
                    .plan
                    .dependents(i)
                    .iter()
                    .any(|&d| self.svcs[d].running);
                if !blocked {
                    let s = &mut self.svcs[i];
                    s.pending_stop = false;
                    s.state = ServiceState::Stopping;
                    tracing::info!(service = %self.specs[i].name, "stopping");
                    actions.push(Action::Stop { svc: i });
                }
            }
        }
        if !self.shutting_down {
            let start_order: Vec<usize> = self.plan.start_order().to_vec();
            for i in start_order {
                let deps_ready = self
                    .plan
                    .deps(i)
                    .iter()
                    .all(|&d| self.svcs[d].state.is_up());
                let s = &mut self.svcs[i];
                if s.state == ServiceState::Waiting && !s.running && deps_ready {
                    if s.gen > 0 {
                        s.restarts += 1;
                    }
                    s.gen += 1;
                    s.state = ServiceState::Starting;
                    s.running = true;
                    s.reason = None;
                    tracing::info!(service = %self.specs[i].name, generation = s.gen, "starting");
                    actions.push(Action::Spawn { svc: i });
                }
            }
        }
        if self.shutting_down && !self.finished && self.svcs.iter().all(|s| !s.running) {
            self.finished = true;
            actions.push(Action::Finish(
                self.outcome.clone().unwrap_or(Outcome::Stopped),
            ));
        }
    }

    /// The externally visible state, in start order.
    pub fn snapshot(&self) -> Snapshot {
        let services = self
            .plan
            .start_order()
            .iter()
            .map(|&i| {
                let s = &self.svcs[i];
                let reason = match (&s.reason, s.state) {
                    (Some(r), _) => Some(r.clone()),
                    (None, ServiceState::Waiting) => {
                        let missing: Vec<&str> = self
                            .plan
                            .deps(i)
                            .iter()
                            .filter(|&&d| !self.svcs[d].state.is_up())
                            .map(|&d| self.plan.name(d))
                            .collect();
                        (!missing.is_empty()).then(|| format!("waiting for {}", missing.join(", ")))
                    }
                    (None, ServiceState::Starting) => {
                        Some(format!("waiting for {}", self.specs[i].ready.describe()))
                    }
                    (None, ServiceState::Stopping) => Some("stopping".to_string()),
                    (None, ServiceState::Stopped) => Some(match &s.last_exit {
                        Some(exit) => format!("stopped ({exit})"),
                        None => "stopped".to_string(),
                    }),
                    _ => None,
                };
                ServiceStatus {
                    name: self.specs[i].name.clone(),
                    state: s.state,
                    pid: s.pid,
                    generation: s.gen,
                    restarts: s.restarts,
                    critical: self.specs[i].critical,
                    last_exit: s.last_exit.clone(),
                    reason,
                }
            })
            .collect();
        Snapshot {
            services,
            stopping: self.shutting_down,
        }
    }
}

/// Whether a successful exit of `spec` completes it (a one-shot) rather than asking for a
/// restart: a `ready = { exit = true }` service, or a policy that does not restart successes.
fn completes(spec: &ServiceSpec) -> bool {
    matches!(spec.ready, Readiness::Exit) || spec.restart != RestartPolicy::Always
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, after: &[&str]) -> ServiceSpec {
        let mut s = ServiceSpec::new(name, vec!["true".into()]);
        s.after = after.iter().map(|a| a.to_string()).collect();
        s
    }

    struct T {
        core: Core,
        now: Instant,
    }

    impl T {
        fn new(specs: Vec<ServiceSpec>) -> (T, Vec<Action>) {
            let plan = Plan::new(&specs).unwrap();
            let mut core = Core::new(specs, plan);
            let actions = core.start();
            (
                T {
                    core,
                    now: Instant::now(),
                },
                actions,
            )
        }
        fn ev(&mut self, e: Event) -> Vec<Action> {
            self.core.handle(e, self.now)
        }
        fn spawned(&mut self, svc: usize) -> Vec<Action> {
            self.ev(Event::Spawned {
                svc,
                pid: 1000 + svc as u32,
            })
        }
        fn ready(&mut self, svc: usize) -> Vec<Action> {
            let gen = self.core.generation(svc);
            self.ev(Event::Ready { svc, gen })
        }
        fn exit(&mut self, svc: usize, status: ExitStatus) -> Vec<Action> {
            let gen = self.core.generation(svc);
            self.ev(Event::Exited { svc, gen, status })
        }
        fn state(&self, svc: usize) -> ServiceState {
            self.core.state(svc)
        }
    }

    const KILLED: ExitStatus = ExitStatus::Signaled(9);

    #[test]
    fn unresponsive_display_is_not_up_and_not_restarted() {
        let mut display = spec("display", &[]);
        display.critical = true;
        let (mut t, _) = T::new(vec![display, spec("wm", &["display"])]);
        t.spawned(0);
        assert_eq!(t.ready(0), [Action::Spawn { svc: 1 }]);
        t.spawned(1);
        t.ready(1);
        let gen = t.core.generation(0);
        // A stale run's report changes nothing.
        assert_eq!(
            t.ev(Event::Unresponsive {
                svc: 0,
                gen: gen + 1,
                error: "x".into()
            }),
            []
        );
        assert_eq!(t.state(0), ServiceState::Ready);
        let a = t.ev(Event::Unresponsive {
            svc: 0,
            gen,
            error: "X11 handshake did not answer within 3s".into(),
        });
        assert_eq!(a, [], "neither it nor its dependents are stopped");
        assert_eq!(t.state(0), ServiceState::Unresponsive);
        assert_eq!(t.state(1), ServiceState::Ready);
        let snap = t.core.snapshot();
        let not_ready = snap.not_ready_critical();
        assert_eq!(not_ready.len(), 1);
        assert!(not_ready[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not answering"));
        assert_eq!(t.ev(Event::Responsive { svc: 0, gen }), []);
        assert_eq!(t.state(0), ServiceState::Ready);
        assert!(t.core.snapshot().not_ready_critical().is_empty());
        // An exit while unresponsive restarts as any exit does.
        t.ev(Event::Unresponsive {
            svc: 0,
            gen,
            error: "again".into(),
        });
        assert!(!t.exit(0, KILLED).is_empty());
    }

    #[test]
    fn starts_in_order_gated_on_readiness_and_in_parallel() {
        let (mut t, a) = T::new(vec![
            spec("display", &[]),
            spec("wm", &["display"]),
            spec("neko", &["display"]),
            spec("app", &["wm", "neko"]),
        ]);
        assert_eq!(a, [Action::Spawn { svc: 0 }]);
        assert_eq!(t.spawned(0), []);
        assert_eq!(t.state(1), ServiceState::Waiting);
        assert_eq!(
            t.ready(0),
            [Action::Spawn { svc: 1 }, Action::Spawn { svc: 2 }]
        );
        t.spawned(1);
        t.spawned(2);
        assert_eq!(t.ready(1), []);
        assert_eq!(t.ready(2), [Action::Spawn { svc: 3 }]);
        let snap = t.core.snapshot();
        assert_eq!(snap.get("app").unwrap().state, ServiceState::Starting);
        assert_eq!(snap.get("display").unwrap().pid, Some(1000));
    }

    #[test]
    fn crash_restarts_with_backoff_and_cascades_to_dependents() {
        let (mut t, _) = T::new(vec![
            spec("display", &[]),
            spec("neko", &["display"]),
            spec("relay", &["neko"]),
            spec("other", &[]),
        ]);
        for i in [0, 3] {
            t.spawned(i);
        }
        t.ready(0);
        t.spawned(1);
        t.ready(1);
        t.spawned(2);
        t.ready(2);
        t.ready(3);

        // display dies: relay is stopped first (it depends on neko), display backs off.
        let a = t.exit(0, KILLED);
        assert_eq!(
            a,
            [
                Action::StartTimer {
                    svc: 0,
                    epoch: 1,
                    delay: Duration::from_millis(200)
                },
                Action::Stop { svc: 2 }
            ]
        );
        assert_eq!(
            t.state(1),
            ServiceState::Ready,
            "neko waits for relay to stop"
        );
        assert_eq!(t.exit(2, ExitStatus::Exited(0)), [Action::Stop { svc: 1 }]);
        assert_eq!(t.state(2), ServiceState::Waiting);
        assert_eq!(t.exit(1, ExitStatus::Exited(0)), []);
        assert_eq!(t.state(1), ServiceState::Waiting);
        assert_eq!(
            t.state(3),
            ServiceState::Ready,
            "unrelated service untouched"
        );

        // Backoff elapses: display starts again, then neko, then relay.
        assert_eq!(
            t.ev(Event::BackoffElapsed { svc: 0, epoch: 1 }),
            [Action::Spawn { svc: 0 }]
        );
        t.spawned(0);
        assert_eq!(t.ready(0), [Action::Spawn { svc: 1 }]);
        t.spawned(1);
        assert_eq!(t.ready(1), [Action::Spawn { svc: 2 }]);
        let snap = t.core.snapshot();
        let display = snap.get("display").unwrap();
        assert_eq!((display.generation, display.restarts), (2, 1));
        assert_eq!(display.last_exit.as_deref(), Some("killed by SIGKILL"));
        assert_eq!(snap.get("neko").unwrap().generation, 2);
    }

    #[test]
    fn backoff_grows_and_resets_after_a_long_run() {
        let (mut t, _) = T::new(vec![spec("svc", &[])]);
        let mut delays = Vec::new();
        for _ in 0..3 {
            t.spawned(0);
            t.ready(0);
            let a = t.exit(0, ExitStatus::Exited(1));
            let Action::StartTimer { epoch, delay, .. } = a[0] else {
                panic!("{a:?}")
            };
            delays.push(delay.as_millis());
            assert_eq!(
                t.ev(Event::BackoffElapsed { svc: 0, epoch }),
                [Action::Spawn { svc: 0 }]
            );
        }
        assert_eq!(delays, [200, 400, 800]);
        // Up for longer than reset_after: back to the initial delay.
        t.spawned(0);
        t.ready(0);
        t.now += Duration::from_secs(31);
        let a = t.exit(0, ExitStatus::Exited(1));
        assert!(
            matches!(a[0], Action::StartTimer { delay, .. } if delay == Duration::from_millis(200))
        );
    }

    #[test]
    fn stale_timer_and_stale_exit_are_ignored() {
        let (mut t, _) = T::new(vec![spec("svc", &[])]);
        t.spawned(0);
        t.exit(0, KILLED);
        assert_eq!(t.ev(Event::BackoffElapsed { svc: 0, epoch: 7 }), []);
        assert_eq!(t.state(0), ServiceState::Backoff);
        t.ev(Event::BackoffElapsed { svc: 0, epoch: 1 });
        t.spawned(0);
        // An exit of generation 1 arriving late changes nothing.
        assert_eq!(
            t.ev(Event::Exited {
                svc: 0,
                gen: 1,
                status: KILLED
            }),
            []
        );
        assert_eq!(t.state(0), ServiceState::Starting);
    }

    #[test]
    fn policies_on_failure_and_never() {
        let mut on_failure = spec("a", &[]);
        on_failure.restart = RestartPolicy::OnFailure;
        let mut never = spec("b", &[]);
        never.restart = RestartPolicy::Never;
        let (mut t, _) = T::new(vec![on_failure, never]);
        t.spawned(0);
        t.spawned(1);
        assert_eq!(t.exit(0, ExitStatus::Exited(0)), []);
        assert_eq!(t.state(0), ServiceState::Completed);
        assert_eq!(t.exit(1, ExitStatus::Exited(3)), []);
        assert_eq!(t.state(1), ServiceState::Stopped);
        let snap = t.core.snapshot();
        assert_eq!(
            snap.get("b").unwrap().reason.as_deref(),
            Some("stopped (exited with status 3)")
        );
    }

    fn one_shot(name: &str, after: &[&str]) -> ServiceSpec {
        let mut s = spec(name, after);
        s.ready = Readiness::Exit;
        s.restart = RestartPolicy::Never;
        s
    }

    #[test]
    fn one_shot_success_starts_its_dependents_and_main() {
        let mut main = spec("main", &["setup", "app"]);
        main.main = true;
        main.restart = RestartPolicy::Never;
        let mut setup = one_shot("setup", &[]);
        setup.critical = true;
        let (mut t, a) = T::new(vec![setup, spec("app", &["setup"]), main]);
        assert_eq!(a, [Action::Spawn { svc: 0 }]);
        assert_eq!(t.spawned(0), []);
        let snap = t.core.snapshot();
        assert_eq!(snap.get("setup").unwrap().state, ServiceState::Starting);
        assert_eq!(
            snap.get("app").unwrap().reason.as_deref(),
            Some("waiting for setup")
        );
        assert_eq!(snap.not_ready_critical().len(), 1);

        assert_eq!(t.exit(0, ExitStatus::Exited(0)), [Action::Spawn { svc: 1 }]);
        assert_eq!(t.state(0), ServiceState::Completed);
        t.spawned(1);
        assert_eq!(t.ready(1), [Action::Spawn { svc: 2 }]);
        let snap = t.core.snapshot();
        let setup = snap.get("setup").unwrap();
        assert_eq!(setup.state.as_str(), "completed");
        assert_eq!(setup.last_exit.as_deref(), Some("exited with status 0"));
        assert_eq!((setup.reason.as_deref(), setup.pid), (None, None));
        assert!(
            snap.not_ready_critical().is_empty(),
            "a completed critical one-shot counts as ready"
        );

        // Shutdown leaves it completed and never stops it again.
        t.spawned(2);
        assert_eq!(
            t.ev(Event::Shutdown),
            [Action::Stop { svc: 2 }],
            "only main is running"
        );
        assert_eq!(
            t.exit(2, ExitStatus::Signaled(15)),
            [Action::Stop { svc: 1 }]
        );
        assert_eq!(
            t.exit(1, ExitStatus::Exited(0)),
            [Action::Finish(Outcome::Stopped)]
        );
        assert_eq!(t.state(0), ServiceState::Completed);
    }

    #[test]
    fn one_shot_completion_does_not_stop_running_dependents() {
        // Ready as soon as started, so its dependent runs while it does; a success of a
        // policy that will not restart it is a completion, not a crash to cascade.
        let mut setup = spec("setup", &[]);
        setup.restart = RestartPolicy::OnFailure;
        let (mut t, _) = T::new(vec![setup, spec("app", &["setup"])]);
        t.spawned(0);
        assert_eq!(t.ready(0), [Action::Spawn { svc: 1 }]);
        t.spawned(1);
        t.ready(1);
        assert_eq!(t.exit(0, ExitStatus::Exited(0)), []);
        assert_eq!(t.state(0), ServiceState::Completed);
        assert_eq!(t.state(1), ServiceState::Ready);
    }

    #[test]
    fn one_shot_exit_readiness_completes_even_with_restart_always() {
        let mut setup = one_shot("setup", &[]);
        setup.restart = RestartPolicy::Always;
        let (mut t, _) = T::new(vec![setup, spec("app", &["setup"])]);
        t.spawned(0);
        // A failure is retried per the policy...
        let a = t.exit(0, ExitStatus::Exited(1));
        let [Action::StartTimer { epoch, .. }] = a[..] else {
            panic!("{a:?}")
        };
        assert_eq!(t.state(1), ServiceState::Waiting);
        assert_eq!(
            t.ev(Event::BackoffElapsed { svc: 0, epoch }),
            [Action::Spawn { svc: 0 }]
        );
        t.spawned(0);
        // ...and the success is final.
        assert_eq!(t.exit(0, ExitStatus::Exited(0)), [Action::Spawn { svc: 1 }]);
        assert_eq!(t.state(0), ServiceState::Completed);
        assert_eq!(t.core.snapshot().get("setup").unwrap().restarts, 1);
    }

    #[test]
    fn one_shot_is_not_rerun_when_its_dependency_restarts() {
        let (mut t, _) = T::new(vec![
            spec("display", &[]),
            one_shot("setup", &["display"]),
            spec("app", &["display", "setup"]),
        ]);
        t.spawned(0);
        assert_eq!(t.ready(0), [Action::Spawn { svc: 1 }]);
        t.spawned(1);
        assert_eq!(t.exit(1, ExitStatus::Exited(0)), [Action::Spawn { svc: 2 }]);
        t.spawned(2);
        t.ready(2);
        let a = t.exit(0, KILLED);
        assert!(a.contains(&Action::Stop { svc: 2 }), "{a:?}");
        assert_eq!(t.state(1), ServiceState::Completed);
        let Some(&Action::StartTimer { epoch, .. }) = a.first() else {
            panic!("{a:?}")
        };
        t.exit(2, ExitStatus::Signaled(15));
        assert_eq!(
            t.ev(Event::BackoffElapsed { svc: 0, epoch }),
            [Action::Spawn { svc: 0 }]
        );
        t.spawned(0);
        assert_eq!(t.ready(0), [Action::Spawn { svc: 2 }], "app, not setup");
        assert_eq!(t.core.generation(1), 1);
    }

    #[test]
    fn failed_one_shot_blocks_dependents_and_critical_stops_deskd() {
        let (mut t, _) = T::new(vec![one_shot("setup", &[]), spec("app", &["setup"])]);
        t.spawned(0);
        assert_eq!(t.exit(0, ExitStatus::Exited(1)), []);
        assert_eq!(t.state(0), ServiceState::Stopped);
        let snap = t.core.snapshot();
        assert_eq!(snap.get("app").unwrap().state, ServiceState::Waiting);
        assert_eq!(
            snap.get("app").unwrap().reason.as_deref(),
            Some("waiting for setup")
        );

        let mut setup = one_shot("setup", &[]);
        setup.critical = true;
        let (mut t, _) = T::new(vec![setup, spec("other", &[]), spec("app", &["setup"])]);
        t.spawned(0);
        t.spawned(1);
        assert_eq!(t.exit(0, ExitStatus::Exited(2)), [Action::Stop { svc: 1 }]);
        assert_eq!(t.state(0), ServiceState::Failed);
        assert_eq!(t.state(2), ServiceState::Stopped);
        let a = t.exit(1, ExitStatus::Signaled(15));
        let [Action::Finish(outcome)] = &a[..] else {
            panic!("{a:?}")
        };
        assert!(matches!(outcome, Outcome::CriticalFailed { service, .. } if service == "setup"));
        assert_eq!(outcome.exit_code(), 1);
    }

    #[test]
    fn readiness_failure_stops_the_run_and_counts_as_failed_start() {
        let (mut t, _) = T::new(vec![spec("x", &[]), spec("y", &["x"])]);
        t.spawned(0);
        let gen = t.core.generation(0);
        let a = t.ev(Event::NotReady {
            svc: 0,
            gen,
            error: "not ready after 1s".into(),
        });
        assert_eq!(a, [Action::Stop { svc: 0 }]);
        let a = t.exit(0, ExitStatus::Signaled(15));
        assert!(
            matches!(a[..], [Action::StartTimer { svc: 0, .. }]),
            "{a:?}"
        );
        let snap = t.core.snapshot();
        assert_eq!(
            snap.get("x").unwrap().reason.as_deref(),
            Some("not ready after 1s")
        );
        assert_eq!(
            snap.get("y").unwrap().reason.as_deref(),
            Some("waiting for x")
        );
    }

    #[test]
    fn critical_give_up_stops_everything_non_zero() {
        let mut crit = spec("crit", &[]);
        crit.critical = true;
        crit.backoff.max_restarts = 1;
        let (mut t, _) = T::new(vec![crit, spec("other", &[])]);
        t.spawned(0);
        t.spawned(1);
        t.ready(1);
        let a = t.exit(0, ExitStatus::Exited(1));
        let Action::StartTimer { epoch, .. } = a[0] else {
            panic!("{a:?}")
        };
        t.ev(Event::BackoffElapsed { svc: 0, epoch });
        t.spawned(0);
        let a = t.exit(0, ExitStatus::Exited(1));
        assert_eq!(a, [Action::Stop { svc: 1 }]);
        assert_eq!(t.state(0), ServiceState::Failed);
        let a = t.exit(1, ExitStatus::Signaled(15));
        let [Action::Finish(outcome)] = &a[..] else {
            panic!("{a:?}")
        };
        assert!(matches!(outcome, Outcome::CriticalFailed { service, .. } if service == "crit"));
        assert_eq!(outcome.exit_code(), 1);
    }

    #[test]
    fn main_exit_stops_everything_with_its_code() {
        let mut main = spec("main", &["db"]);
        main.main = true;
        let (mut t, _) = T::new(vec![spec("db", &[]), main]);
        t.spawned(0);
        t.ready(0);
        t.spawned(1);
        assert_eq!(t.exit(1, ExitStatus::Exited(42)), [Action::Stop { svc: 0 }]);
        let a = t.exit(0, ExitStatus::Exited(0));
        assert_eq!(
            a,
            [Action::Finish(Outcome::MainExited {
                service: "main".into(),
                code: 42
            })]
        );
    }

    #[test]
    fn main_spawn_failure_exits_127() {
        let mut main = spec("main", &[]);
        main.main = true;
        let (mut t, _) = T::new(vec![main]);
        let a = t.ev(Event::SpawnFailed {
            svc: 0,
            error: "not found".into(),
            code: 127,
        });
        assert_eq!(
            a,
            [Action::Finish(Outcome::MainExited {
                service: "main".into(),
                code: 127
            })]
        );
    }

    #[test]
    fn shutdown_stops_in_reverse_dependency_order_and_succeeds() {
        let (mut t, _) = T::new(vec![
            spec("display", &[]),
            spec("wm", &["display"]),
            spec("neko", &["display"]),
        ]);
        t.spawned(0);
        t.ready(0);
        t.spawned(1);
        t.spawned(2);
        t.ready(1);
        t.ready(2);
        let a = t.ev(Event::Shutdown);
        assert_eq!(a, [Action::Stop { svc: 2 }, Action::Stop { svc: 1 }]);
        assert!(t.core.snapshot().stopping);
        assert_eq!(t.exit(2, ExitStatus::Signaled(15)), []);
        assert_eq!(t.exit(1, ExitStatus::Exited(0)), [Action::Stop { svc: 0 }]);
        assert_eq!(
            t.exit(0, ExitStatus::Exited(0)),
            [Action::Finish(Outcome::Stopped)]
        );
    }

    #[test]
    fn shutdown_during_startup_and_backoff() {
        let (mut t, _) = T::new(vec![spec("a", &[]), spec("b", &["a"]), spec("c", &[])]);
        t.spawned(0);
        t.spawned(2);
        t.exit(2, KILLED); // c in backoff
        let a = t.ev(Event::Shutdown);
        assert_eq!(a, [Action::Stop { svc: 0 }]);
        assert_eq!(t.state(1), ServiceState::Stopped);
        assert_eq!(t.state(2), ServiceState::Stopped);
        // A late readiness result changes nothing.
        let gen = t.core.generation(0);
        assert_eq!(t.ev(Event::Ready { svc: 0, gen }), []);
        assert_eq!(
            t.exit(0, ExitStatus::Signaled(15)),
            [Action::Finish(Outcome::Stopped)]
        );
        // A second shutdown request is harmless.
        assert_eq!(t.ev(Event::Shutdown), []);
    }

    #[test]
    fn shutdown_with_nothing_running_finishes_at_once() {
        let (mut t, _) = T::new(vec![]);
        assert_eq!(t.ev(Event::Shutdown), [Action::Finish(Outcome::Stopped)]);
    }
}
