//! deskd as PID 1 against tini and dumb-init (from apt), measured in the same run and printed
//! side by side with ratios (issue 2 §4). Not a test: nothing is asserted.
//!
//! 1. Idle resident memory of `INIT -- sleep 60` (VmRSS of the init process).
//! 2. Wall time of an orphan storm (N double-forked children exiting) until no zombie is
//!    left, with each init as PID 1 of a fresh PID namespace (`unshare`).
//! 3. Time from exec to "display ready": `deskd run` with `[display]` (until it logs the
//!    display ready) against Xvfb started alone with `-displayfd` (until it writes its
//!    display number).
//!
//! Run: `cargo bench -p deskd --bench pid1` (release build of deskd). Set `PID1_BENCH_ROUNDS`
//! and `PID1_BENCH_ORPHANS` to change the work.

#[path = "../tests/common/deskd_proc.rs"]
mod deskd_proc;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deskd_proc::{can_unshare, deskd_bin, first_free_display, TempDir, STORM_PY};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The command line that runs `cmd` under each init.
fn under(init: &str, cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = match init {
        "deskd" => vec![deskd_bin().to_string(), "--".into()],
        "tini" => vec!["tini".into(), "-s".into(), "--".into()],
        "dumb-init" => vec!["dumb-init".into()],
        other => vec![other.to_string()],
    };
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

fn vm_rss_kb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Whether `pid` has a child (the init has started its program).
fn has_child(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|c| !c.trim().is_empty())
        .unwrap_or(false)
}

fn idle_rss(init: &str) -> Option<f64> {
    let argv = under(init, &["sleep", "60"]);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_child(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let it settle into its idle loop.
    std::thread::sleep(Duration::from_millis(300));
    let rss = vm_rss_kb(pid);
    // SAFETY: plain syscall on our own child.
    unsafe { nix::libc::kill(pid as i32, nix::libc::SIGTERM) };
    let _ = child.wait();
    rss
}

fn storm(init: &str, script: &Path, orphans: usize) -> Option<f64> {
    let script = script.to_string_lossy();
    let n = orphans.to_string();
    let argv = under(init, &["python3", &script, &n, "60"]);
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .args(&argv)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("zombies=0 ") {
        eprintln!("  {init}: zombies left: {}", text.trim());
    }
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("elapsed="))
        .and_then(|e| e.parse::<f64>().ok())
        .map(|s| s * 1000.0)
}

fn free_display() -> u32 {
    let start = 600 + std::process::id() % 300;
    first_free_display(start, 300).unwrap_or(start)
}

/// Xvfb alone, with the same arguments deskd's display service uses, until `-displayfd`
/// reports the display.
fn xvfb_alone() -> Option<f64> {
    let n = free_display();
    let start = Instant::now();
    let mut child = Command::new("Xvfb")
        .args([
            &format!(":{n}"),
            "-screen",
            "0",
            "1280x720x24",
            "-nolisten",
            "tcp",
            "-nolisten",
            "local",
            "-noreset",
            "-displayfd",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut out = child.stdout.take()?;
    let mut buf = [0u8; 16];
    let ready = match out.read(&mut buf) {
        Ok(n) if n > 0 => Some(start.elapsed().as_secs_f64() * 1000.0),
        _ => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    ready
}

/// `deskd run` with only `[display]`, until deskd logs the display ready.
fn deskd_display(dir: &TempDir) -> Option<f64> {
    let n = free_display();
    let cfg = dir.write(
        "bench.toml",
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[display]\nnumber = {n}\nsize = \"1280x720\"\ndepth = 24\n"
        ),
    );
    let conf_d = dir.join("conf.d");
    let _ = std::fs::create_dir_all(&conf_d);
    let start = Instant::now();
    let mut child = Command::new(deskd_bin())
        .args(["run", "--log-format", "json", "-c"])
        .arg(&cfg)
        .arg("--conf-d")
        .arg(&conf_d)
        .env("DESKD_TOKEN", "bench-token-not-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let stderr = child.stderr.take()?;
    let mut ready = None;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.contains("\"message\":\"ready\"") && line.contains("\"service\":\"display\"") {
            ready = Some(start.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    // SAFETY: plain syscall on our own child.
    unsafe { nix::libc::kill(child.id() as i32, nix::libc::SIGTERM) };
    let _ = child.wait();
    ready
}

fn row(name: &str, unit: &str, values: &[(&str, Option<f64>)]) {
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    let deskd = values[0].1;
    let mut line = format!("{:<28}", format!("{name} ({unit})"));
    for (_, v) in values {
        line.push_str(&format!("{:>12}", fmt(*v)));
    }
    for (_, v) in &values[1..] {
        let ratio = match (deskd, v) {
            (Some(d), Some(o)) if *o > 0.0 => format!("{:.2}x", d / o),
            _ => "n/a".into(),
        };
        line.push_str(&format!("{ratio:>16}"));
    }
    println!("{line}");
}

fn main() {
    let rounds = env_usize("PID1_BENCH_ROUNDS", 5);
    let orphans = env_usize("PID1_BENCH_ORPHANS", 2000);
    let inits: Vec<&str> = ["deskd", "tini", "dumb-init"]
        .into_iter()
        .filter(|i| *i == "deskd" || have(i))
        .collect();
    println!("deskd: {}", deskd_bin());
    println!("medians of {rounds} rounds; inits: {}", inits.join(", "));
    let mut header = format!("{:<28}", "metric");
    for i in &inits {
        header.push_str(&format!("{i:>12}"));
    }
    for i in &inits[1..] {
        header.push_str(&format!("{:>16}", format!("deskd/{i}")));
    }
    println!("{header}");

    let rss: Vec<(&str, Option<f64>)> = inits
        .iter()
        .map(|i| {
            let v: Vec<f64> = (0..rounds).filter_map(|_| idle_rss(i)).collect();
            (*i, (!v.is_empty()).then(|| median(v) / 1024.0))
        })
        .collect();
    row("idle RSS of `X -- sleep`", "MB", &rss);

    match can_unshare() {
        Ok(()) => {
            let dir = TempDir::new("bench-storm");
            let script = dir.write("storm.py", STORM_PY);
            let mut samples: Vec<Vec<f64>> = vec![Vec::new(); inits.len()];
            // Interleaved, so a load change on the shared machine hits every init alike.
            for _ in 0..rounds {
                for (k, i) in inits.iter().enumerate() {
                    if let Some(ms) = storm(i, &script, orphans) {
                        samples[k].push(ms);
                    }
                }
            }
            let values: Vec<(&str, Option<f64>)> = inits
                .iter()
                .zip(samples)
                .map(|(i, s)| (*i, (!s.is_empty()).then(|| median(s))))
                .collect();
            row(&format!("orphan storm of {orphans}"), "ms", &values);
        }
        Err(reason) => println!("orphan storm: skipped ({reason})"),
    }

    if have("Xvfb") {
        let dir = TempDir::new("bench-display");
        let mut alone = Vec::new();
        let mut deskd = Vec::new();
        // Xvfb start-up varies by tens of ms on a shared machine: more rounds, interleaved.
        for _ in 0..rounds * 3 {
            alone.extend(xvfb_alone());
            deskd.extend(deskd_display(&dir));
        }
        let (a, d) = (median(alone), median(deskd));
        println!(
            "exec to display ready (ms): deskd run {d:.1}, Xvfb -displayfd alone {a:.1}, added {:.1} ms ({:.2}x)",
            d - a,
            d / a
        );
    } else {
        println!("display ready: skipped (no Xvfb)");
    }
}
