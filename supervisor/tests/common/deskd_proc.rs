//! Helpers for the process-level tests (single mode, supervision, display service): the real
//! deskd binary with its stderr captured to a file, temporary directories, polling with
//! generous deadlines, free ports and display numbers, and the orphan-storm script shared
//! with the benchmark.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Generous: the machine is shared and loaded.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn deskd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_deskd")
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "deskd-test-{tag}-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a file and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.join(name);
        fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback TCP port free right now (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The first display number in `start..start + span` with no X socket and no lock file.
/// Callers spread `start` (by pid, by call) so parallel tests do not pick the same one.
pub fn first_free_display(start: u32, span: u32) -> Option<u32> {
    (start..start + span).find(|n| {
        !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
    })
}

/// Resident memory of process `pid` in KiB (0 if unreadable).
pub fn rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Lines of a file (empty if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A running deskd whose stderr goes to a file; killed on drop if still running.
pub struct Deskd {
    pub child: Child,
    pub log: PathBuf,
}

impl Deskd {
    /// `deskd ARGS` with stdout and stderr into `dir/deskd.log`.
    pub fn start(dir: &TempDir, args: &[&str]) -> Deskd {
        let log = dir.join("deskd.log");
        let out = fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = Command::new(deskd_bin())
            .args(args)
            .env("DESKD_TOKEN", "test-token-not-secret")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn deskd");
        Deskd { child, log }
    }

    /// `deskd run --log-format json -c CONFIG --conf-d <empty dir> [-- MAIN...]`.
    pub fn run(dir: &TempDir, config: &str, main: &[&str]) -> Deskd {
        let cfg = dir.write("deskd.toml", config);
        let conf_d = dir.join("conf.d");
        fs::create_dir_all(&conf_d).expect("conf.d");
        let cfg = cfg.to_string_lossy().into_owned();
        let conf_d = conf_d.to_string_lossy().into_owned();
        let mut args = vec![
            "run",
            "--log-format",
            "json",
            "-c",
            &cfg,
            "--conf-d",
            &conf_d,
        ];
        if !main.is_empty() {
            args.push("--");
            args.extend_from_slice(main);
        }
        Deskd::start(dir, &args)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall.
        unsafe {
            nix::libc::kill(self.pid(), sig);
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the log to contain `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log_text().contains(needle))
    }

    /// Waits for deskd to exit; kills it (and fails) if it does not within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "deskd did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Deskd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so deskd stops its services, then make sure.
            self.signal(nix::libc::SIGTERM);
            if !wait_until(Duration::from_secs(10), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            }) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// `unshare --pid --fork --mount-proc` works here (root or user namespaces allowed).
pub fn can_unshare() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unshare --pid --fork --mount-proc failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A Python script: forks `N` children (argv[1]) that each fork a grandchild and exit at
/// once, so `N` orphans exit under whoever reaps orphans (PID 1 or a subreaper). It never
/// waits for anything but its direct children, so as PID 1 itself it reaps no orphan (the
/// negative control). Then it waits up to argv[2] seconds for zombies to disappear and
/// prints `ppid=P orphans=N zombies=Z elapsed=SECONDS` (storm start to no zombie left), counting the zombies whose parent is the reaper of
/// the orphans (PID 1, or the script's parent when that is a subreaper).
pub const STORM_PY: &str = r#"
import os, sys, time
n = int(sys.argv[1]); patience = float(sys.argv[2])
t0 = time.monotonic()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
# Orphans go to PID 1 or to the nearest subreaper: our parent (deskd), unless we are PID 1.
reaper = 1 if os.getpid() == 1 else os.getppid()
def zombies():
    count = 0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(')', 1)[1].split()
        if fields[0] == 'Z' and int(fields[1]) == reaper:
            count += 1
    return count
deadline = time.time() + patience
z = zombies()
while z and time.time() < deadline:
    time.sleep(0.005)
    z = zombies()
elapsed = time.monotonic() - t0
print('ppid=%d orphans=%d zombies=%d elapsed=%.4f' % (os.getppid(), n, z, elapsed), flush=True)
"#;

/// Parses `zombies=Z` from the storm script's output.
pub fn zombies_in(output: &str) -> Option<u64> {
    output
        .split_whitespace()
        .find_map(|w| w.strip_prefix("zombies="))
        .and_then(|z| z.parse().ok())
}
