//! Bounded worker threads for request work (the agent API's blocking X calls). Each [`Lane`]
//! has threads of its own and a queue of fixed length, so one kind of work (screenshots)
//! never waits behind another (input), none of it runs on tokio's blocking pool (or anywhere
//! near supervision and its probes), and what does not fit is refused at once ([`Busy`]; the
//! API answers `503` with `Retry-After`).
//!
//! Work whose requester has gone (the future awaiting it was dropped, e.g. the HTTP client
//! closed its connection) is not started when its turn comes; a job that has started can ask
//! [`Gone`] between its steps and stop.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The lane's queue was full: refused without waiting.
#[derive(Debug, Clone, thiserror::Error)]
#[error("too many {lane} requests at once ({running} running, {queued} queued): retry shortly")]
pub struct Busy {
    pub lane: &'static str,
    pub running: usize,
    pub queued: usize,
}

/// A job ended without an answer (it panicked).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {0} worker failed")]
pub struct Failed(pub &'static str);

/// Why [`Lane::run`] gave no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LaneError {
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Failed(#[from] Failed),
}

/// Tells a running job whether its requester is still waiting.
pub struct Gone<'a>(&'a dyn Fn() -> bool);

impl Gone<'_> {
    /// The requester has gone: stop at the next step.
    pub fn now(&self) -> bool {
        (self.0)()
    }
}

type Task = Box<dyn FnOnce() + Send>;

/// A fixed number of threads and a fixed-length queue for one kind of work.
pub struct Lane {
    name: &'static str,
    threads: usize,
    queue: usize,
    tx: SyncSender<Task>,
    /// Jobs skipped because their requester had gone.
    skipped: Arc<AtomicU64>,
}

impl Lane {
    /// `threads` workers (named `deskd-<name>-N`) and room for `queue` waiting jobs.
    pub fn new(name: &'static str, threads: usize, queue: usize) -> Lane {
        Lane::with_nice(name, threads, queue, 0)
    }

    /// [`Lane::new`] whose threads run `nice` steps below deskd's priority (Linux applies
    /// nice values per thread): CPU-heavy request work (encoding screenshots) then yields to
    /// supervision and the HTTP server when the CPU is short.
    pub fn with_nice(name: &'static str, threads: usize, queue: usize, nice: i32) -> Lane {
        let (tx, rx) = mpsc::sync_channel::<Task>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("deskd-{name}-{i}"))
                .spawn(move || {
                    if nice != 0 {
                        lower_priority(nice);
                    }
                    work(&rx)
                });
            if let Err(e) = spawned {
                tracing::error!(lane = name, "cannot start a worker thread: {e}");
            }
        }
        Lane {
            name,
            threads: threads.max(1),
            queue,
            tx,
            skipped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Jobs not started because their requester had gone.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Runs `job` on this lane and waits for its result; refused at once when the queue is
    /// full. If the returned future is dropped before the job starts, the job never runs.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Gone<'_>) -> T + Send + 'static,
    ) -> Result<T, LaneError> {
        let (tx, rx) = oneshot::channel::<T>();
        let skipped = self.skipped.clone();
        let task: Task = Box::new(move || {
            if tx.is_closed() {
                skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let gone = || tx.is_closed();
            let out = job(&Gone(&gone));
            let _ = tx.send(out);
        });
        match self.tx.try_send(task) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                return Err(Busy {
                    lane: self.name,
                    running: self.threads,
                    queued: self.queue,
                }
                .into())
            }
        }
        rx.await.map_err(|_| Failed(self.name).into())
    }
}

/// Lowers the calling thread's priority by `nice` (best effort).
fn lower_priority(nice: i32) {
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = nix::libc::syscall(nix::libc::SYS_gettid) as nix::libc::id_t;
        let current = nix::libc::getpriority(nix::libc::PRIO_PROCESS, tid);
        nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid, current.saturating_add(nice));
    }
}

fn work(rx: &Mutex<Receiver<Task>>) {
    loop {
        let task = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        let Ok(task) = task else { return };
        if catch_unwind(AssertUnwindSafe(task)).is_err() {
            tracing::error!("an agent API job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bounded_and_abandoned_work_is_skipped() {
        let lane = Arc::new(Lane::new("test", 1, 2));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        // One running (blocked), two queued: the fourth is refused.
        let r = release_rx.clone();
        let l = lane.clone();
        let first = tokio::spawn(async move {
            l.run(move |_| {
                let _ = r.lock().unwrap().recv();
                1
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ran = Arc::new(AtomicU64::new(0));
        let r2 = ran.clone();
        let l = lane.clone();
        let abandoned = tokio::spawn(async move {
            l.run(move |_| {
                r2.fetch_add(1, Ordering::Relaxed);
            })
            .await
        });
        let l = lane.clone();
        let kept = tokio::spawn(async move { l.run(|gone| gone.now()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(lane.run(|_| ()).await, Err(LaneError::Busy(_))));
        abandoned.abort();
        let _ = abandoned.await;
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert!(!kept.await.unwrap().unwrap(), "its requester still waits");
        assert_eq!(
            ran.load(Ordering::Relaxed),
            0,
            "the abandoned job never ran"
        );
        assert_eq!(lane.skipped(), 1);
    }
}
