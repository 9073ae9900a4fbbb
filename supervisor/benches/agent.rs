//! The agent API against the tools agents spawn today, measured in the same run on the same
//! Xvfb and printed side by side with ratios (issue 5). Not a test: nothing is asserted.
//!
//! 1. Screenshot latency at 1280x720 and 1920x1080, PNG and JPEG: deskd as a library call and
//!    through HTTP on loopback, against `import -window root png:-` and `scrot`.
//! 2. A click, and typing 100 characters: deskd (library, HTTP, and `deskd ctl` as a process)
//!    against spawning `xdotool`.
//!
//! Goals from the issue: screenshot ≥ 5x faster than import, input ≥ 10x faster than spawning
//! xdotool, ≤ 20 ms for a 1080p JPEG.
//!
//! Run: `cargo bench -p deskd --bench agent`. `AGENT_BENCH_ROUNDS` sets the rounds (default 15).

#[path = "../tests/common/agent_x.rs"]
mod agent_x;

use std::process::{Command, Stdio};
use std::time::Instant;

use agent_x::{Server, TestWindow, Xvfb, CONTROL_TOKEN};
use deskd::desktop::{ImageFormat, ScreenshotRequest};

fn rounds() -> usize {
    std::env::var("AGENT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
}

/// Median wall time of `f` in milliseconds, after one warm-up call; `None` if it failed.
fn median_ms(mut f: impl FnMut() -> bool) -> Option<f64> {
    if !f() {
        return None;
    }
    let mut times = Vec::new();
    for _ in 0..rounds() {
        let t = Instant::now();
        if !f() {
            return None;
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    times.get(times.len() / 2).copied()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run(display: &str, argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.2}"))
}

/// `anchor / deskd`: how many times faster deskd is.
fn ratio(deskd: Option<f64>, anchor: Option<f64>) -> String {
    match (deskd, anchor) {
        (Some(d), Some(a)) if d > 0.0 => format!("{:.1}x", a / d),
        _ => "n/a".to_string(),
    }
}

/// A busy desktop-like picture: many overlapping rectangles in many colours (a flat screen
/// would flatter PNG).
fn busy_window(display: &str, w: u16, h: u16) -> TestWindow {
    let win = TestWindow::open(display, 0, 0, w, h, "bench");
    let mut seed: u32 = 0x1234_5678;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for _ in 0..3000 {
        let (x, y) = (
            (next() % u32::from(w)) as i16,
            (next() % u32::from(h)) as i16,
        );
        let (rw, rh) = ((next() % 120 + 2) as u16, (next() % 40 + 2) as u16);
        win.fill(next() & 0xffffff, x, y, rw, rh);
    }
    win
}

fn screenshots(width: u16, height: u16) {
    let x = Xvfb::start(u32::from(width), u32::from(height));
    let _win = busy_window(&x.display, width, height);
    let server = Server::start(&x.display);
    let desktop = server.desktop.clone();
    let client = server.client();
    let tmp = std::env::temp_dir().join(format!("deskd-bench-{}.png", std::process::id()));
    let tmp_s = tmp.to_string_lossy().to_string();

    println!(
        "\n== screenshot {width}x{height}, median ms over {} rounds ==",
        rounds()
    );
    println!(
        "{:<10} {:>11} {:>11} {:>11} {:>11} {:>12} {:>12}",
        "format", "deskd lib", "deskd http", "import", "scrot", "vs import", "vs scrot"
    );
    let import = have("import")
        .then(|| median_ms(|| run(&x.display, &["import", "-window", "root", "png:-"])))
        .flatten();
    let scrot = have("scrot")
        .then(|| median_ms(|| run(&x.display, &["scrot", "-o", &tmp_s])))
        .flatten();
    for (name, format, query) in [
        ("png", ImageFormat::Png, "/api/screenshot"),
        (
            "jpeg q80",
            ImageFormat::Jpeg,
            "/api/screenshot?format=jpeg&quality=80",
        ),
    ] {
        let req = ScreenshotRequest {
            format,
            ..ScreenshotRequest::default()
        };
        let lib = median_ms(|| desktop.screenshot(&req).is_ok());
        let http = median_ms(|| {
            client
                .request("GET", query, None)
                .map(|r| r.status == 200)
                .unwrap_or(false)
        });
        println!(
            "{:<10} {:>11} {:>11} {:>11} {:>11} {:>12} {:>12}",
            name,
            fmt(lib),
            fmt(http),
            fmt(import),
            fmt(scrot),
            ratio(http, import),
            ratio(http, scrot)
        );
    }
    if let Ok(shot) = desktop.screenshot(&ScreenshotRequest::default()) {
        println!(
            "(PNG size {} KiB; capture via {})",
            shot.bytes.len() / 1024,
            if desktop.screenshot_uses_shm() == Some(true) {
                "MIT-SHM"
            } else {
                "GetImage"
            }
        );
    }
    let _ = std::fs::remove_file(&tmp);
}

fn input() {
    let x = Xvfb::start(1280, 720);
    let _win = TestWindow::open(&x.display, 0, 0, 1280, 720, "bench input");
    let server = Server::start(&x.display);
    let desktop = server.desktop.clone();
    let client = server.client();
    let text: String = "The quick brown fox jumps over the lazy dog 0123456789 "
        .repeat(2)
        .chars()
        .take(100)
        .collect();
    let click = r#"{"action":"click","x":640,"y":360}"#;
    let typing = serde_json::json!({"action": "type", "text": text}).to_string();
    let deskd_bin = env!("CARGO_BIN_EXE_deskd");

    println!(
        "\n== input on 1280x720, median ms over {} rounds ==",
        rounds()
    );
    println!(
        "{:<14} {:>10} {:>11} {:>11} {:>11} {:>13} {:>13}",
        "action", "deskd lib", "deskd http", "deskd ctl", "xdotool", "http vs xdo", "ctl vs xdo"
    );
    let cases: [(&str, &str, Vec<String>, Vec<String>); 2] = [
        (
            "click",
            click,
            vec!["ctl".into(), "click".into(), "640".into(), "360".into()],
            ["xdotool", "mousemove", "640", "360", "click", "1"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "type 100 chars",
            &typing,
            vec!["ctl".into(), "type".into(), text.clone()],
            ["xdotool", "type", "--delay", "0", &text]
                .map(String::from)
                .to_vec(),
        ),
    ];
    for (name, body, ctl_args, xdo_args) in cases {
        let lib = median_ms(|| desktop.input(body.as_bytes()).is_ok());
        let http = median_ms(|| {
            client
                .request("POST", "/api/input", Some(body.as_bytes().to_vec()))
                .map(|r| r.status == 200)
                .unwrap_or(false)
        });
        let ctl = median_ms(|| {
            Command::new(deskd_bin)
                .args(&ctl_args[..1])
                .args(["--url", &server.base, "--token", CONTROL_TOKEN])
                .args(&ctl_args[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        let xdo_refs: Vec<&str> = xdo_args.iter().map(String::as_str).collect();
        let xdo = have("xdotool")
            .then(|| median_ms(|| run(&x.display, &xdo_refs)))
            .flatten();
        println!(
            "{:<14} {:>10} {:>11} {:>11} {:>11} {:>13} {:>13}",
            name,
            fmt(lib),
            fmt(http),
            fmt(ctl),
            fmt(xdo),
            ratio(http, xdo),
            ratio(ctl, xdo)
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; there are no options.
    println!("agent API benchmark (goals: screenshot >= 5x faster than import, input >= 10x faster than spawning xdotool, 1080p JPEG <= 20 ms)");
    screenshots(1280, 720);
    screenshots(1920, 1080);
    input();
}
