//! The processes the stream benchmark starts and what they cost: every child in a process
//! group of its own, killed with its group on drop, on a signal, on the watchdog and (through
//! the parent-death signal) when the benchmark itself dies; CPU time per process from
//! `/proc/PID/stat`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Process groups started and not yet reaped: what [`kill_all`] kills.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// A child process leading its own process group.
pub struct Proc {
    child: Child,
    /// How long SIGTERM gets before SIGKILL.
    grace: Duration,
}

/// Starts `cmd` as `name` in a new process group with stdin from /dev/null. The child gets
/// `death` when the thread that spawned it dies, so call this from the main thread only.
pub fn spawn(name: &str, cmd: &mut Command, death: Signal, grace: Duration) -> Result<Proc> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null()).process_group(0);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe; nothing else runs between fork
    // and exec here.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(death).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("start {name}"))?;
    if let Ok(mut g) = GROUPS.lock() {
        g.push(child.id() as i32);
    }
    Ok(Proc { child, grace })
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    /// SIGTERM to the leader (deskd then stops its services itself), then SIGKILL to the
    /// whole group.
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut g) = GROUPS.lock() {
            g.retain(|&p| p != pid);
        }
    }
}

/// SIGKILL to every process group still registered and to every descendant of their
/// processes (deskd's services lead groups of their own), for the signal handler and the
/// watchdog.
pub fn kill_all() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    let mut pids = Vec::new();
    for g in &groups {
        for p in group(*g as u32) {
            pids.extend(tree(p));
        }
    }
    for g in groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
    for p in pids {
        let _ = nix::sys::signal::kill(Pid::from_raw(p as i32), Signal::SIGKILL);
    }
}

/// Whether `program` is on PATH (or is an existing path).
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Fields of `/proc/PID/stat` after the command name: (state, ppid, pgid, utime+stime ticks).
fn stat(pid: u32) -> Option<(u32, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] = state (field 3), so field N is f[N - 3].
    let ppid = f.get(1)?.parse().ok()?;
    let pgid = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, pgid, utime + stime))
}

/// The command name of a process (`/proc/PID/comm`).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `pid` and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|p| stat(p).map(|(pp, _, _)| (p, pp)))
        .collect();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// Every process in process group `pgid`.
pub fn group(pgid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| stat(p).is_some_and(|(_, g, _)| g == pgid))
        .collect()
}

/// A named set of processes whose CPU time is summed, found again at each sample (children
/// come and go).
pub struct Role {
    pub name: &'static str,
    pub find: Box<dyn Fn() -> Vec<u32>>,
}

impl Role {
    pub fn new(name: &'static str, find: impl Fn() -> Vec<u32> + 'static) -> Role {
        Role {
            name,
            find: Box::new(find),
        }
    }
}

/// CPU ticks per process of each role at one moment.
pub struct CpuMark {
    at: Instant,
    ticks: Vec<BTreeMap<u32, u64>>,
}

pub fn cpu_mark(roles: &[Role]) -> CpuMark {
    CpuMark {
        at: Instant::now(),
        ticks: roles
            .iter()
            .map(|r| {
                (r.find)()
                    .into_iter()
                    .filter_map(|p| stat(p).map(|(_, _, t)| (p, t)))
                    .collect()
            })
            .collect(),
    }
}

/// % of one core per role between `start` and now. A process born in between counts with
/// all its time; one that exited in between is lost (rare: the measured processes are
/// long-lived).
pub fn cpu_since(roles: &[Role], start: &CpuMark) -> BTreeMap<&'static str, f64> {
    let end = cpu_mark(roles);
    let secs = end.at.duration_since(start.at).as_secs_f64().max(1e-3);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ticks: u64 = end.ticks[i]
                .iter()
                .map(|(p, t)| t.saturating_sub(start.ticks[i].get(p).copied().unwrap_or(0)))
                .sum();
            (r.name, ticks as f64 / hz / secs * 100.0)
        })
        .collect()
}
