//! The agent API on a real desktop, as an agent meets it: `deskd run` with a display, a
//! window manager (openbox) and a terminal (xterm), and an agent whose very first request
//! clicks into the terminal and types a line. The terminal's shell writes what it read to a
//! file, so the test sees exactly what the application received.
//!
//! The terminal starts only once openbox has taken over the display (`ready = { wm = ... }`):
//! started earlier, it sometimes mapped its window while openbox was starting and stayed
//! unmapped for good (an empty window list).
//!
//! Regression: the first key events of a fresh desktop were lost under a window manager (the
//! XTEST keyboard device switch), and keys sent right after a click raced the window
//! manager's focus change. Both looked like "the agent typed and nothing happened".

#[path = "common/deskd_proc.rs"]
mod deskd_proc;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use deskd_proc::*;

const TOKEN: &str = "test-token-not-secret";

fn free_display() -> u32 {
    let start = 1000 + std::process::id() % 500;
    first_free_display(start, 500).unwrap_or(start)
}

fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One HTTP/1.1 request with the token; returns (status, body), or the I/O error (deskd not
/// listening yet).
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

#[test]
fn first_click_and_type_reach_a_terminal_under_a_window_manager() {
    for program in ["Xvfb", "openbox", "xterm"] {
        assert!(
            have(program),
            "{program} is not installed (scripts/setup-deps)"
        );
    }
    let dir = TempDir::new("agent-desktop");
    let out = dir.join("typed.txt");
    let port = free_port();
    let display = free_display();
    let config = format!(
        r#"
[display]
number = {display}
size = "800x600"

[http]
listen = "127.0.0.1:{port}"

[[service]]
name = "wm"
command = ["openbox"]
after = ["display"]
ready = {{ wm = ":{display}" }}

[[service]]
name = "terminal"
command = ["xterm", "-geometry", "80x20+20+20", "-e", "sh", "-c", "read line; printf '%s' \"$line\" > {out}; sleep 60"]
after = ["wm"]
"#,
        out = out.display()
    );
    let deskd = Deskd::run(&dir, &config, &[]);

    // The terminal's window is up (and the window manager had time to focus it or not).
    let mut last = None;
    let up = wait_until(Duration::from_secs(30), || {
        let answer = http(port, "GET", "/api/windows", "");
        let ok = answer
            .as_ref()
            .is_ok_and(|(status, body)| *status == 200 && body.contains("XTerm"));
        last = Some(answer);
        ok
    });
    assert!(
        up,
        "no xterm window; last answer {last:?}; log:\n{}",
        deskd.log_text()
    );

    // The agent's first request: click into the terminal, type a line, press Enter.
    let typed = "hello wörld 42";
    let (status, body) = http(
        port,
        "POST",
        "/api/input",
        &format!(
            r#"[{{"action":"click","x":200,"y":150}},{{"action":"type","text":"{typed}\n"}}]"#
        ),
    )
    .expect("POST /api/input");
    assert_eq!(status, 200, "{body}");

    let arrived = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out).is_ok_and(|s| !s.is_empty())
    });
    let got = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        arrived && got == typed,
        "the terminal read {got:?}, the agent typed {typed:?}"
    );
}
