//! Bounded worker threads for request work (the agent API's blocking X calls). Each [`Lane`]
//! has threads of its own and a queue of fixed length, so one kind of work (screenshots)
//! never waits behind another (input), none of it runs on tokio's blocking pool (or anywhere
//! near supervision and its probes), and what does not fit is refused at once ([`Busy`]; the
//! API answers `503` with `Retry-After`).

use std::panic::{catch_unwind, AssertUnwindSafe};
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

type Task = Box<dyn FnOnce() + Send>;

/// A fixed number of threads and a fixed-length queue for one kind of work.
pub struct Lane {
    name: &'static str,
    threads: usize,
    queue: usize,
    tx: SyncSender<Task>,
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
        }
    }

    /// Runs `job` on this lane and waits for its result; refused at once when the queue is
    /// full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LaneError> {
        let (tx, rx) = oneshot::channel::<T>();
        let task: Task = Box::new(move || {
            let _ = tx.send(job());
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
    async fn bounded() {
        let lane = Arc::new(Lane::new("test", 1, 2));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        // One running (blocked), two queued: the fourth is refused.
        let mut waiting = Vec::new();
        for i in 0..3 {
            let (r, l) = (release_rx.clone(), lane.clone());
            waiting.push(tokio::spawn(async move {
                l.run(move || {
                    if i == 0 {
                        let _ = r.lock().unwrap().recv();
                    }
                    i
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(matches!(lane.run(|| 9).await, Err(LaneError::Busy(_))));
        release_tx.send(()).unwrap();
        for (i, w) in waiting.into_iter().enumerate() {
            assert_eq!(w.await.unwrap().unwrap(), i);
        }
    }
}
