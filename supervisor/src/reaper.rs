//! The only `waitpid(-1)` caller in deskd. It reaps every child (services and orphans
//! re-parented to deskd as PID 1 or child subreaper) and hands each registered child's exit
//! status to whoever spawned it. Knows nothing of service names.
//!
//! A fast-exiting child cannot be reaped before it is registered: [`Reaper::spawn`] holds the
//! table lock across `Command::spawn` and the registration, and the reaper thread holds the
//! same lock while it calls `waitpid`. (std's spawn itself `waitpid`s a child whose exec
//! failed; that happens under the lock too, so the two never race.)
//!
//! Nothing else in deskd may wait for children: a `std::process::Child::wait`,
//! `Command::output`/`status` or `tokio::process` would race with this reaper (its exit
//! status may be taken here first). Spawn everything through [`Reaper::spawn`].

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::libc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// A missed SIGCHLD costs at most this long (as tini's 1 s `sigtimedwait`).
const SAFETY_TICK: Duration = Duration::from_secs(1);

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(u8),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// Decodes a raw `waitpid` status.
    pub fn from_raw(status: libc::c_int) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            // WEXITSTATUS is already 0..=255.
            ExitStatus::Exited(libc::WEXITSTATUS(status) as u8)
        }
    }

    /// The shell convention: the exit status, or 128 + the signal number.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(sig) => (128 + sig).clamp(0, 255) as u8,
        }
    }

    /// Exited with status 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled(sig) => match Signal::try_from(sig) {
                Ok(signal) => write!(f, "killed by {}", signal.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
        }
    }
}

/// Reaps every child that has exited, without blocking, until none is left (one SIGCHLD can
/// stand for many exits). Calls `on_exit` for each. Returns how many were reaped.
///
/// Single-command mode calls this directly from its one thread; service mode only through
/// the [`Reaper`] thread.
pub fn reap_pending(mut on_exit: impl FnMut(Pid, ExitStatus)) -> usize {
    let mut reaped = 0;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: plain syscall with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            reaped += 1;
            on_exit(Pid::from_raw(pid), ExitStatus::from_raw(status));
            continue;
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // 0: children left but none exited; ECHILD: no children at all.
        return reaped;
    }
}

/// Whether deskd will see the exits of orphans: true as PID 1, else tries to become a child
/// subreaper. Returns what happened, for a log line.
pub fn ensure_reaping_orphans() -> OrphanReaping {
    if std::process::id() == 1 {
        return OrphanReaping::Pid1;
    }
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) has no memory effects.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        OrphanReaping::Subreaper
    } else {
        OrphanReaping::No(io::Error::last_os_error())
    }
}

/// See [`ensure_reaping_orphans`].
#[derive(Debug)]
pub enum OrphanReaping {
    Pid1,
    Subreaper,
    /// Neither: orphans go to the real init and zombies may pile up there.
    No(io::Error),
}

/// A child started through [`Reaper::spawn`].
#[derive(Debug)]
pub struct Spawned {
    pub pid: Pid,
    /// Resolves once, with the exit status, when the child has been reaped.
    pub exit: oneshot::Receiver<ExitStatus>,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("cannot install the SIGCHLD handler: {0}")]
    Signal(#[source] io::Error),
    #[error("cannot start the reaper thread: {0}")]
    Thread(#[source] io::Error),
}

/// Handle to the reaper thread; cheap to clone.
#[derive(Clone)]
pub struct Reaper {
    inner: Arc<Inner>,
}

struct Inner {
    /// Registered children waiting for their exit status.
    table: Mutex<HashMap<Pid, oneshot::Sender<ExitStatus>>>,
    /// Exits of unregistered processes (orphans) reaped so far.
    orphans: AtomicU64,
}

impl Reaper {
    /// Makes deskd reap orphans (PID 1 or subreaper; warns when neither) and starts the
    /// reaper thread, woken by SIGCHLD and by a periodic safety tick.
    pub fn start() -> Result<Reaper, ReaperError> {
        match ensure_reaping_orphans() {
            OrphanReaping::Pid1 => tracing::debug!("running as PID 1; orphans are reaped here"),
            OrphanReaping::Subreaper => {
                tracing::debug!("not PID 1; registered as child subreaper so orphans are reaped here")
            }
            OrphanReaping::No(err) => tracing::warn!(
                "not PID 1 and cannot become a child subreaper ({err}); orphaned grandchildren will not be reaped by deskd"
            ),
        }
        let (mut wake_rx, wake_tx) = UnixStream::pair().map_err(ReaperError::Signal)?;
        signal_hook::low_level::pipe::register(libc::SIGCHLD, wake_tx)
            .map_err(ReaperError::Signal)?;
        wake_rx
            .set_read_timeout(Some(SAFETY_TICK))
            .map_err(ReaperError::Signal)?;
        let inner = Arc::new(Inner {
            table: Mutex::new(HashMap::new()),
            orphans: AtomicU64::new(0),
        });
        let thread_inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("deskd-reaper".into())
            .spawn(move || {
                let mut buf = [0u8; 64];
                loop {
                    // Any outcome (wake byte, timeout, error) means: reap now.
                    let _ = wake_rx.read(&mut buf);
                    thread_inner.reap();
                }
            })
            .map_err(ReaperError::Thread)?;
        Ok(Reaper { inner })
    }

    /// Spawns `cmd` and registers the child before the reaper can see its exit.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<Spawned> {
        let (tx, rx) = oneshot::channel();
        let mut table = self.inner.lock();
        let mut child = cmd.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        table.insert(pid, tx);
        drop(table);
        // Dropping a std Child neither waits nor kills; the reaper owns its exit.
        Ok(Spawned {
            pid,
            exit: rx,
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        })
    }

    /// Orphans (unregistered processes) reaped so far.
    pub fn orphans_reaped(&self) -> u64 {
        self.inner.orphans.load(Ordering::Relaxed)
    }

    /// Reaps now, from the calling thread (the reaper thread does this on every SIGCHLD).
    pub fn reap_now(&self) {
        self.inner.reap();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<Pid, oneshot::Sender<ExitStatus>>> {
        // A panic while holding the lock cannot leave the map inconsistent; keep going.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reap(&self) {
        let mut table = self.lock();
        reap_pending(|pid, status| match table.remove(&pid) {
            Some(tx) => {
                // The receiver may be gone (nobody cares any more); that is fine.
                let _ = tx.send(status);
            }
            None => {
                self.orphans.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pid = pid.as_raw(), "reaped orphan ({status})");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_codes_and_display() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Exited(1).to_string(), "exited with status 1");
        assert_eq!(ExitStatus::Signaled(9).to_string(), "killed by SIGKILL");
        assert_eq!(ExitStatus::Signaled(40).to_string(), "killed by signal 40");
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(15).success());
    }
}
