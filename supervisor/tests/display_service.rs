//! The display as a first-class service (issue 2 §3) on a real Xvfb: `[display]` runs Xvfb as
//! the service `display`, services listing `after = ["display"]` start only once an X client
//! can connect (with `DISPLAY` set for them), and a display killed with -9 comes back
//! together with its dependents.

#[path = "common/deskd_proc.rs"]
mod deskd_proc;

use deskd_proc::*;

/// A display number nobody uses (no socket, no lock file), spread by our pid so parallel
/// test processes do not pick the same one.
fn free_display() -> u32 {
    first_free_display(300 + std::process::id() % 500, 500).expect("a free display number")
}

/// Pids of processes named Xvfb whose parent is `parent`.
fn xvfb_children(parent: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid: i32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && head.ends_with("(Xvfb") && fields.first() != Some(&"Z") {
            found.push(pid);
        }
    }
    found
}

#[test]
fn display_is_ready_gated_and_comes_back_with_its_dependents_after_kill_9() {
    if std::process::Command::new("Xvfb")
        .arg("-help")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: Xvfb is not installed");
        return;
    }
    let dir = TempDir::new("display");
    let ev = dir.join("events");
    let n = free_display();
    let config = format!(
        r#"[http]
listen = "127.0.0.1:0"

[display]
number = {n}
size = "640x480"
depth = 24

[[service]]
name = "client"
after = ["display"]
command = ["sh", "-c", "if xdpyinfo >/dev/null 2>&1; then echo client-ok $$ $DISPLAY >> {ev}; else echo client-fail $$ $DISPLAY >> {ev}; fi; exec sleep 1000"]
"#,
        ev = ev.display()
    );
    let mut deskd = Deskd::run(&dir, &config, &[]);
    assert!(
        wait_until(PATIENCE, || !lines(&ev).is_empty()),
        "client never started: {}",
        deskd.log_text()
    );
    let first = lines(&ev);
    assert!(
        first[0].starts_with("client-ok") && first[0].ends_with(&format!(":{n}")),
        "client started before the display was usable, or without DISPLAY: {first:?}"
    );
    let client1: i32 = first[0].split(' ').nth(1).unwrap().parse().unwrap();

    let xvfb = xvfb_children(deskd.pid());
    assert_eq!(xvfb.len(), 1, "one Xvfb under deskd: {xvfb:?}");
    // SAFETY: plain syscall.
    unsafe { nix::libc::kill(xvfb[0], nix::libc::SIGKILL) };

    assert!(
        wait_until(PATIENCE, || lines(&ev).len() >= 2),
        "client not restarted after the display died: {}",
        deskd.log_text()
    );
    let events = lines(&ev);
    assert!(events[1].starts_with("client-ok"), "{events:?}");
    assert!(!alive(client1), "the old client still runs");
    let xvfb2 = xvfb_children(deskd.pid());
    assert_eq!(xvfb2.len(), 1, "{xvfb2:?}");
    assert_ne!(xvfb2[0], xvfb[0]);

    deskd.signal(nix::libc::SIGTERM);
    let status = deskd.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", deskd.log_text());
    assert!(!alive(xvfb2[0]), "Xvfb outlived deskd");
}
