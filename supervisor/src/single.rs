//! tini-compatible single-command mode: `deskd -- CMD [ARGS...]`.
//!
//! Plain blocking code on one thread, shaped like tini's main loop (it is benchmarked for
//! idle memory against tini): block every signal, become a subreaper unless PID 1, spawn the
//! child in its own process group (which takes the terminal's foreground when there is one),
//! then collect signals with `sigtimedwait`, forwarding each to the child's whole group and
//! reaping on SIGCHLD. When the child exits, what is left in its group gets SIGTERM, then
//! SIGKILL after [`GRACE`]. Exit code: the child's status, or 128+N if killed by signal N;
//! 127 when the program is missing, 126 when it cannot be executed.

use std::io;
use std::mem;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::process::group_alive;
use crate::reaper::{self, ExitStatus, OrphanReaping};

/// How long what is left of the child's group has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// A missed SIGCHLD costs at most this long (as tini).
const TICK: Duration = Duration::from_secs(1);

/// Signals that mean a fault in deskd itself: never blocked (as tini).
const SYNCHRONOUS: [libc::c_int; 6] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
];

/// The command of `deskd -- CMD [ARGS...]` when that is exactly how deskd was invoked.
///
/// `main` checks this before building the full command-line parser and logging: single mode
/// is benchmarked for idle memory against tini, and clap plus the log subscriber would keep
/// about 1.5 MB of deskd's pages resident for nothing. Anything else (options before `--`,
/// non-UTF-8 arguments) goes through the normal parser, which also handles single mode.
pub fn command_from_args() -> Option<Vec<String>> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != "--" {
        return None;
    }
    let cmd: Vec<String> = args.map(|a| a.into_string().ok()).collect::<Option<_>>()?;
    (!cmd.is_empty()).then_some(cmd)
}

/// Runs `cmd` as the only child; returns deskd's exit code.
pub fn run(cmd: &[String]) -> u8 {
    let Some(program) = cmd.first() else {
        eprintln!("deskd: no command given");
        return 2;
    };
    let saved = match SavedSignals::block_all() {
        Ok(saved) => saved,
        Err(err) => {
            eprintln!("deskd: cannot set up signal handling: {err}");
            return 1;
        }
    };
    if let OrphanReaping::No(err) = reaper::ensure_reaping_orphans() {
        // eprintln, not tracing: on the fast path no log subscriber is installed.
        eprintln!(
            "deskd: warning: not PID 1 and cannot become a child subreaper ({err}); orphaned processes will not be reaped by deskd"
        );
    }

    let child = match spawn(cmd, &saved) {
        Ok(pid) => pid,
        Err(err) => {
            let (code, what) = match (err.kind(), err.raw_os_error()) {
                (io::ErrorKind::NotFound, _) => (127, "not found".to_string()),
                _ => (126, format!("cannot be executed: {err}")),
            };
            eprintln!("deskd: {program}: {what}");
            return code;
        }
    };

    let status = wait_for_child(child, &saved.wait_set);
    tracing::debug!(pid = child.as_raw(), "child {status}");
    clean_group(child, &saved.wait_set);
    status.code()
}

/// The signal mask and SIGTTIN/SIGTTOU handlers before deskd changed them, restored in the
/// child before exec.
struct SavedSignals {
    mask: libc::sigset_t,
    ttin: libc::sigaction,
    ttou: libc::sigaction,
    /// The signals deskd waits for.
    wait_set: libc::sigset_t,
}

impl SavedSignals {
    fn block_all() -> io::Result<SavedSignals> {
        // SAFETY: sigset/sigaction structs are plain data, initialised by the libc calls
        // below before use.
        unsafe {
            let mut wait_set: libc::sigset_t = mem::zeroed();
            libc::sigfillset(&mut wait_set);
            for sig in SYNCHRONOUS {
                libc::sigdelset(&mut wait_set, sig);
            }
            let mut mask: libc::sigset_t = mem::zeroed();
            if libc::sigprocmask(libc::SIG_SETMASK, &wait_set, &mut mask) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Ignored (as tini) so deskd, in the background group once the child owns the
            // terminal, is not stopped by terminal I/O or by the child taking the terminal.
            let mut ignore: libc::sigaction = mem::zeroed();
            ignore.sa_sigaction = libc::SIG_IGN;
            let mut ttin: libc::sigaction = mem::zeroed();
            let mut ttou: libc::sigaction = mem::zeroed();
            if libc::sigaction(libc::SIGTTIN, &ignore, &mut ttin) != 0
                || libc::sigaction(libc::SIGTTOU, &ignore, &mut ttou) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(SavedSignals {
                mask,
                ttin,
                ttou,
                wait_set,
            })
        }
    }
}

fn spawn(cmd: &[String], saved: &SavedSignals) -> io::Result<Pid> {
    let mut command = Command::new(&cmd[0]);
    command.args(&cmd[1..]).process_group(0);
    let (mask, ttin, ttou) = (saved.mask, saved.ttin, saved.ttou);
    // SAFETY: runs between fork and exec; only async-signal-safe syscalls on copied data.
    unsafe {
        command.pre_exec(move || {
            // Take the terminal for the child's new group while SIGTTOU is still blocked and
            // ignored. No terminal (ENOTTY, ENXIO, EBADF) is fine.
            let _ = libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
            libc::sigaction(libc::SIGTTIN, &ttin, std::ptr::null_mut());
            libc::sigaction(libc::SIGTTOU, &ttou, std::ptr::null_mut());
            libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
            Ok(())
        });
    }
    // No other thread waits for children here, so the std Child may simply be dropped: its
    // exit is collected by `reaper::reap_pending` below.
    let child = command.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Waits up to `timeout` for a blocked signal; `None` on timeout.
fn next_signal(set: &libc::sigset_t, timeout: Duration) -> Option<libc::c_int> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: valid pointers; a null siginfo is allowed.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Forwards signals to the child's group and reaps everything until the child has exited.
fn wait_for_child(child: Pid, set: &libc::sigset_t) -> ExitStatus {
    loop {
        match next_signal(set, TICK) {
            None | Some(libc::SIGCHLD) => {}
            Some(sig) => forward(child, sig),
        }
        let mut status = None;
        reaper::reap_pending(|pid, st| {
            if pid == child {
                status = Some(st);
            }
        });
        if let Some(status) = status {
            return status;
        }
    }
}

/// Forwards any signal, real-time ones included (which `nix::Signal` cannot name).
fn forward(group: Pid, sig: libc::c_int) {
    // SAFETY: plain syscall.
    if unsafe { libc::killpg(group.as_raw(), sig) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            eprintln!("deskd: cannot forward signal {sig} to process group {group}: {err}");
        }
    }
}

/// SIGTERM, then SIGKILL after [`GRACE`], to whatever is left in the child's group; reaps
/// meanwhile. Bounded: a process stuck in the kernel is not waited for forever.
fn clean_group(group: Pid, set: &libc::sigset_t) {
    if !group_alive(group) {
        return;
    }
    let _ = killpg(group, Signal::SIGTERM);
    for (deadline, next) in [
        (GRACE, Some(Signal::SIGKILL)),
        (Duration::from_secs(5), None),
    ] {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            let _ = next_signal(set, Duration::from_millis(10));
            reaper::reap_pending(|_, _| {});
            if !group_alive(group) {
                return;
            }
        }
        if let Some(signal) = next {
            eprintln!("deskd: processes left in group {group} after SIGTERM; sending SIGKILL");
            let _ = killpg(group, signal);
        }
    }
}
