//! `deskd run` (issue 2 §2) on real processes through the real binary: start order gated on
//! log and TCP readiness, restart with backoff and the cascade to dependents, reverse-order
//! stop with escalation to SIGKILL, a stop during start-up, main exit code, critical give-up,
//! and per-line output logging. Services record what happens to them in an events file.

#[path = "common/deskd_proc.rs"]
mod deskd_proc;

use std::os::unix::fs::PermissionsExt;

use deskd_proc::*;

/// Every test config binds HTTP to a free loopback port so tests can run in parallel.
const HTTP: &str = "[http]\nlisten = \"127.0.0.1:0\"\n";

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

fn position(lines: &[String], prefix: &str, nth: usize) -> Option<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(prefix))
        .nth(nth)
        .map(|(i, _)| i)
}

fn pid_of(line: &str) -> i32 {
    line.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

#[test]
fn start_waits_for_log_and_tcp_readiness_of_dependencies() {
    let dir = TempDir::new("order");
    let ev = dir.join("events");
    let ev = ev.display();
    let port = free_port();
    let config = format!(
        r#"{HTTP}
[[service]]
name = "slow_log"
command = ["sh", "-c", "sleep 0.5; echo slow_log-ready >> {ev}; echo READY-NOW; exec sleep 1000"]
ready = {{ log = "READY-NOW" }}

[[service]]
name = "slow_tcp"
command = ["python3", "-c", "import socket, time; time.sleep(0.5); s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); open('{ev}', 'a').write('slow_tcp-ready\\n'); time.sleep(0.3); s.listen(); time.sleep(1000)"]
ready = {{ tcp = "127.0.0.1:{port}" }}

[[service]]
name = "dependent"
after = ["slow_log", "slow_tcp"]
command = ["sh", "-c", "echo dependent-start >> {ev}; exec sleep 1000"]
"#
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    let ev = dir.join("events");
    assert!(
        wait_until(PATIENCE, || count(&lines(&ev), "dependent-start") == 1),
        "dependent never started: {}",
        deskd.log_text()
    );
    let events = lines(&ev);
    let dep = position(&events, "dependent-start", 0).unwrap();
    assert!(
        position(&events, "slow_log-ready", 0).unwrap() < dep,
        "{events:?}"
    );
    assert!(
        position(&events, "slow_tcp-ready", 0).unwrap() < dep,
        "{events:?}"
    );
    deskd.signal(nix::libc::SIGTERM);
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", deskd.log_text());
}

#[test]
fn crash_restarts_with_backoff_and_cascades_to_dependents() {
    let dir = TempDir::new("cascade");
    let ev = dir.join("events");
    let ev = ev.display();
    let config = format!(
        r#"{HTTP}
[[service]]
name = "base"
command = ["sh", "-c", "echo base-start $$ >> {ev}; echo up; exec sleep 1000"]
ready = {{ log = "up" }}
backoff = {{ initial = "300ms", max = "1s" }}

[[service]]
name = "mid"
after = ["base"]
command = ["sh", "-c", "echo mid-start $$ >> {ev}; echo up; exec sleep 1000"]
ready = {{ log = "up" }}

[[service]]
name = "leaf"
after = ["mid"]
command = ["sh", "-c", "echo leaf-start $$ >> {ev}; exec sleep 1000"]

[[service]]
name = "other"
command = ["sh", "-c", "echo other-start $$ >> {ev}; exec sleep 1000"]
"#
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    let ev = dir.join("events");
    assert!(
        wait_until(PATIENCE, || count(&lines(&ev), "leaf-start") == 1
            && count(&lines(&ev), "other-start") == 1),
        "not all started: {}",
        deskd.log_text()
    );
    let first = lines(&ev);
    let base1 = pid_of(&first[position(&first, "base-start", 0).unwrap()]);
    let mid1 = pid_of(&first[position(&first, "mid-start", 0).unwrap()]);
    let leaf1 = pid_of(&first[position(&first, "leaf-start", 0).unwrap()]);

    // SAFETY: plain syscall.
    unsafe { nix::libc::kill(base1, nix::libc::SIGKILL) };

    assert!(
        wait_until(PATIENCE, || count(&lines(&ev), "leaf-start") == 2),
        "leaf not restarted: {}",
        deskd.log_text()
    );
    let events = lines(&ev);
    let base2 = position(&events, "base-start", 1).expect("base restarted");
    let mid2 = position(&events, "mid-start", 1).expect("mid restarted");
    let leaf2 = position(&events, "leaf-start", 1).unwrap();
    assert!(base2 < mid2 && mid2 < leaf2, "restart order: {events:?}");
    assert_eq!(
        count(&events, "other-start"),
        1,
        "unrelated service restarted: {events:?}"
    );
    assert!(
        !alive(mid1) && !alive(leaf1),
        "old dependents still running"
    );
    let log = deskd.log_text();
    assert!(log.contains("killed by SIGKILL"), "{log}");
    assert!(log.contains("restarting in 300ms"), "{log}");

    deskd.signal(nix::libc::SIGTERM);
    assert_eq!(deskd.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn backoff_grows_between_failed_runs() {
    let dir = TempDir::new("backoff");
    let starts = dir.join("starts");
    let config = format!(
        r#"{HTTP}
[[service]]
name = "crashy"
command = ["python3", "-c", "import time; open('{}', 'a').write('%f\\n' % time.monotonic()); raise SystemExit(1)"]
restart = "on-failure"
backoff = {{ initial = "100ms", max = "400ms" }}
"#,
        starts.display()
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    assert!(
        wait_until(PATIENCE, || lines(&starts).len() >= 5),
        "{}",
        deskd.log_text()
    );
    let times: Vec<f64> = lines(&starts).iter().map(|l| l.parse().unwrap()).collect();
    // Lower bounds only (a loaded machine may be slower, never faster): each gap is at least
    // the backoff delay, which doubles from 100ms up to 400ms.
    for (i, expected) in [0.1, 0.2, 0.4, 0.4].iter().enumerate() {
        let gap = times[i + 1] - times[i];
        assert!(
            gap >= expected * 0.95,
            "gap {i} = {gap:.3}s < {expected}s: {times:?}"
        );
    }
    deskd.signal(nix::libc::SIGTERM);
    assert_eq!(deskd.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn stop_goes_in_reverse_order_and_escalates_to_sigkill() {
    let dir = TempDir::new("stop");
    let ev = dir.join("events");
    let ev = ev.display();
    let svc = |name: &str, after: &str, trap: &str| {
        format!(
            r#"
[[service]]
name = "{name}"
after = [{after}]
command = ["sh", "-c", "trap '{trap}' TERM; echo {name}-up >> {ev}; while :; do sleep 0.05; done"]
stop_timeout = "1s"
"#
        )
    };
    let config = format!(
        "{HTTP}{}{}{}",
        svc("a", "", &format!("echo a-term >> {ev}; exit 0")),
        svc("b", "\"a\"", &format!("echo b-term >> {ev}; exit 0")),
        // c ignores its stop signal: only SIGKILL ends it.
        svc("c", "\"b\"", &format!("echo c-term >> {ev}")),
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    let ev = dir.join("events");
    assert!(
        wait_until(PATIENCE, || count(&lines(&ev), "c-up") == 1),
        "{}",
        deskd.log_text()
    );
    deskd.signal(nix::libc::SIGTERM);
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "a requested stop is a success");
    let events = lines(&ev);
    let c = position(&events, "c-term", 0).expect("c got SIGTERM");
    let b = position(&events, "b-term", 0).expect("b got SIGTERM");
    let a = position(&events, "a-term", 0).expect("a got SIGTERM");
    assert!(c < b && b < a, "stop order: {events:?}");
    let log = deskd.log_text();
    assert!(log.contains("sending SIGKILL"), "{log}");
    assert!(log.contains("stopped (killed by SIGKILL)"), "{log}");
}

#[test]
fn stop_during_startup_is_clean() {
    let dir = TempDir::new("early-stop");
    let ev = dir.join("events");
    let ev = ev.display();
    let config = format!(
        r#"{HTTP}
[[service]]
name = "slow"
command = ["sh", "-c", "echo slow-start $$ >> {ev}; exec sleep 1000"]
ready = {{ log = "never printed" }}
ready_timeout = "60s"

[[service]]
name = "dependent"
after = ["slow"]
command = ["sh", "-c", "echo dependent-start >> {ev}; exec sleep 1000"]
"#
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    let ev = dir.join("events");
    assert!(wait_until(PATIENCE, || count(&lines(&ev), "slow-start") == 1));
    let slow = pid_of(&lines(&ev)[0]);
    deskd.signal(nix::libc::SIGTERM);
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", deskd.log_text());
    assert_eq!(count(&lines(&ev), "dependent-start"), 0);
    assert!(!alive(slow), "slow service outlived deskd");
}

#[test]
fn main_exit_code_stops_everything_and_becomes_deskds() {
    let dir = TempDir::new("main");
    let ev = dir.join("events");
    let ev = ev.display();
    let config = format!(
        r#"{HTTP}
[[service]]
name = "helper"
command = ["sh", "-c", "echo helper-start $$ >> {ev}; sleep 0.3; echo up; exec sleep 1000"]
ready = {{ log = "up" }}
"#
    );
    let main = format!("echo main-start >> {ev}; exit 7");
    let mut deskd = Deskd::run(&dir, &config, &["sh", "-c", &main]);
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(7), "{}", deskd.log_text());
    let events = lines(&dir.join("events"));
    assert_eq!(
        position(&events, "main-start", 0),
        Some(1),
        "main after helper: {events:?}"
    );
    assert!(!alive(pid_of(&events[0])), "helper outlived deskd");
}

#[test]
fn critical_service_given_up_exits_non_zero() {
    let dir = TempDir::new("critical");
    let ev = dir.join("events");
    let ev = ev.display();
    let config = format!(
        r#"{HTTP}
[[service]]
name = "healthy"
command = ["sh", "-c", "echo healthy-start $$ >> {ev}; exec sleep 1000"]

[[service]]
name = "broken"
command = ["sh", "-c", "echo broken-start >> {ev}; exit 1"]
critical = true
backoff = {{ initial = "50ms", max = "100ms", max_restarts = 2 }}
"#
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(1), "{}", deskd.log_text());
    let events = lines(&dir.join("events"));
    assert_eq!(
        count(&events, "broken-start"),
        3,
        "first run + 2 restarts: {events:?}"
    );
    assert!(deskd.log_text().contains("gave up after 2 restarts"));
    let healthy = pid_of(&events[position(&events, "healthy-start", 0).unwrap()]);
    assert!(!alive(healthy), "healthy service outlived deskd");
}

#[test]
fn readiness_timeout_names_the_probe() {
    let dir = TempDir::new("ready-timeout");
    let port = free_port();
    let config = format!(
        r#"{HTTP}
[[service]]
name = "deaf"
command = ["sleep", "1000"]
ready = {{ tcp = "127.0.0.1:{port}" }}
ready_timeout = "300ms"
backoff = {{ initial = "5s" }}
"#
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    let needle = format!("not ready after 300ms: waited for TCP connect to 127.0.0.1:{port}");
    assert!(deskd.wait_log(&needle, PATIENCE), "{}", deskd.log_text());
    deskd.signal(nix::libc::SIGTERM);
    assert_eq!(deskd.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn every_output_line_is_logged_once_with_the_service_name() {
    let dir = TempDir::new("output");
    let script = dir.write(
        "talk.py",
        r#"
import sys
out = sys.stdout.buffer
out.write(b'first line\n')
out.write(b'x' * (2 * 1024 * 1024) + b'\n')
out.write(b'bad \xff utf8\n')
out.flush()
sys.stderr.write('on stderr\n'); sys.stderr.flush()
out.write(b'partial ')
out.flush()
out.write(b'then rest\nno newline at end')
out.flush()
"#,
    );
    let config = format!(
        r#"{HTTP}
[[service]]
name = "talker"
command = ["python3", "{}"]
restart = "never"
"#,
        script.display()
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    assert!(
        deskd.wait_log("no newline at end", PATIENCE),
        "{}",
        deskd.log_text()
    );
    deskd.signal(nix::libc::SIGTERM);
    assert_eq!(deskd.wait_exit(PATIENCE).code(), Some(0));
    let mut got = Vec::new();
    for line in deskd.log_text().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["service"] == "talker" && fields["stream"].is_string() {
            let msg = fields["message"].as_str().unwrap_or("").to_string();
            got.push((fields["stream"].as_str().unwrap().to_string(), msg));
        }
    }
    let stdout: Vec<&str> = got
        .iter()
        .filter(|(s, _)| s == "stdout")
        .map(|(_, m)| m.as_str())
        .collect();
    let stderr: Vec<&str> = got
        .iter()
        .filter(|(s, _)| s == "stderr")
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(stderr, ["on stderr"]);
    assert_eq!(
        stdout.len(),
        5,
        "{:?}",
        stdout
            .iter()
            .map(|m| &m[..m.len().min(60)])
            .collect::<Vec<_>>()
    );
    assert_eq!(stdout[0], "first line");
    assert_eq!(
        stdout[1].len(),
        1024 * 1024 + " [truncated 1048576 bytes]".len()
    );
    assert!(stdout[1].starts_with("xxxx"));
    assert!(stdout[1].ends_with("x [truncated 1048576 bytes]"));
    assert_eq!(stdout[2], "bad \u{fffd} utf8");
    assert_eq!(stdout[3], "partial then rest");
    assert_eq!(stdout[4], "no newline at end");
}

#[test]
fn service_runs_as_its_user_with_its_env() {
    let dir = TempDir::new("user");
    // The service, as nobody, writes its answer here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = dir.join("who");
    let config = format!(
        r#"{HTTP}
[[service]]
name = "as_nobody"
user = "nobody"
env = {{ GREETING = "hello" }}
command = ["sh", "-c", "echo $(id -u) $(id -g) $(id -G) $HOME $USER $GREETING > {out}; exec sleep 1000"]
"#,
        out = out.display()
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    assert!(
        wait_until(PATIENCE, || !lines(&out).is_empty()),
        "{}",
        deskd.log_text()
    );
    assert_eq!(
        lines(&out),
        ["65534 65534 65534 /nonexistent nobody hello"],
        "uid, gid, groups (root's groups dropped), HOME, USER, env"
    );
    deskd.signal(nix::libc::SIGTERM);
    assert_eq!(deskd.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn service_mode_as_pid1_reaps_an_orphan_storm() {
    if let Err(reason) = can_unshare() {
        eprintln!("SKIPPED: cannot create a PID namespace: {reason}");
        return;
    }
    let dir = TempDir::new("run-pid1");
    let script = dir.write("storm.py", STORM_PY);
    let cfg = dir.write("deskd.toml", HTTP);
    let conf_d = dir.join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", deskd_bin()])
        .args(["run", "--log-format", "json", "-c"])
        .arg(&cfg)
        .arg("--conf-d")
        .arg(&conf_d)
        .args(["--", "python3"])
        .arg(&script)
        .args(["2000", "20"])
        .env("DESKD_TOKEN", "test-token-not-secret")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run unshare");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "main exited 0: {log}");
    // The script's report is a line of the main service's output, logged by deskd.
    let report = log
        .lines()
        .find(|l| l.contains("orphans=2000"))
        .unwrap_or_else(|| panic!("no report: {log}"));
    assert!(report.contains("ppid=1 "), "deskd must be PID 1: {report}");
    assert_eq!(
        zombies_in(report.replace('"', " ").as_str()),
        Some(0),
        "{report}"
    );
}

/// `GET path` over plain HTTP/1.1 on loopback; the status code and body (None: no answer).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(PATIENCE)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

#[test]
fn one_shot_setup_completes_then_dependents_and_main_start() {
    let dir = TempDir::new("oneshot");
    let ev = dir.join("events");
    let ev = ev.display();
    let home = dir.join("home");
    let home = home.display();
    let port = free_port();
    // `setup` takes a while, so a dependent started early would not find its file; `quick`
    // is a one-shot by policy only (no probe: ready at once, then done).
    let config = format!(
        r#"[http]
listen = "127.0.0.1:{port}"

[[service]]
name = "setup"
command = ["sh", "-c", "sleep 0.5; mkdir -p {home}; echo configured > {home}/cfg; echo setup-done >> {ev}"]
ready = {{ exit = true }}
restart = "never"
critical = true

[[service]]
name = "quick"
command = ["sh", "-c", "echo quick-done >> {ev}"]
restart = "on-failure"

[[service]]
name = "app"
after = ["setup"]
command = ["sh", "-c", "if test -f {home}/cfg; then echo app-saw-cfg $$ >> {ev}; else echo app-no-cfg >> {ev}; fi; exec sleep 1000"]
"#
    );
    let release = dir.join("release");
    let main = format!(
        "echo main-start $(cat {home}/cfg) >> {ev}; while [ ! -e {} ]; do sleep 0.05; done; exit 7",
        release.display()
    );
    let mut deskd = Deskd::run(&dir, &config, &["sh", "-c", &main]);
    let evp = dir.join("events");
    assert!(
        wait_until(PATIENCE, || count(&lines(&evp), "main-start") == 1),
        "main never started: {}",
        deskd.log_text()
    );
    let events = lines(&evp);
    assert_eq!(
        count(&events, "app-no-cfg"),
        0,
        "app started early: {events:?}"
    );
    assert_eq!(count(&events, "app-saw-cfg"), 1, "{events:?}");
    assert!(
        position(&events, "setup-done", 0) < position(&events, "app-saw-cfg", 0),
        "{events:?}"
    );
    assert!(
        events.contains(&"main-start configured".to_string()),
        "{events:?}"
    );
    assert_eq!(
        count(&events, "quick-done"),
        1,
        "quick ran once: {events:?}"
    );

    // The completed critical one-shot counts as ready.
    let mut last = None;
    let ready = wait_until(PATIENCE, || {
        last = http_get(port, "/readyz");
        matches!(&last, Some((200, _)))
    });
    assert!(ready, "/readyz: {last:?}\n{}", deskd.log_text());
    assert!(deskd
        .log_text()
        .contains("completed (exited with status 0)"));

    // Nothing was stopped or restarted because the one-shots finished.
    let app = pid_of(&events[position(&events, "app-saw-cfg", 0).unwrap_or(0)]);
    assert!(alive(app), "app was stopped:\n{}", deskd.log_text());

    std::fs::write(&release, "").expect("release main");
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(7), "{}", deskd.log_text());
    assert_eq!(count(&lines(&evp), "app-saw-cfg"), 1);
    assert!(!alive(app), "app outlived deskd");
}

#[test]
fn failed_critical_one_shot_blocks_dependents_and_stops_deskd() {
    let dir = TempDir::new("oneshot-fail");
    let ev = dir.join("events");
    let ev = ev.display();
    let config = format!(
        r#"{HTTP}
[[service]]
name = "setup"
command = ["sh", "-c", "echo setup-ran >> {ev}; exit 3"]
ready = {{ exit = true }}
restart = "never"
critical = true

[[service]]
name = "app"
after = ["setup"]
command = ["sh", "-c", "echo app-start >> {ev}; exec sleep 1000"]
"#
    );
    let main = format!("echo main-start >> {ev}");
    let mut deskd = Deskd::run(&dir, &config, &["sh", "-c", &main]);
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(1), "{}", deskd.log_text());
    let events = lines(&dir.join("events"));
    assert_eq!(events, ["setup-ran"], "nothing after the failed one-shot");
}
