//! End to end through the real `deskd run` binary: Xvfb as `display`, and as `neko` a fake
//! program (this test binary re-run as the neko stand-in through a small wrapper script).
//! Checks that deskd starts neko with the explicit flags and a scrubbed environment, serves
//! `/readyz` and the relay with its token, and closes relays with 4503 when neko is killed
//! and restarted.

#[path = "common/deskd_proc.rs"]
mod deskd_proc;
#[path = "support/deskd_run.rs"]
mod deskd_run;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/neko_standin.rs"]
mod neko_standin;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use deskd_run::{free_display, free_port, wait_ready, DeskdRun};
use harness::{bearer, expect_close, http_request, next_text};
use hyper::http::{Method, StatusCode};

const TOKEN: &str = "e2e-control-token";

/// Entry point of the fake neko: run by the wrapper script, never by a plain `cargo test`.
#[test]
#[ignore = "entry point of the fake neko program used by the e2e test"]
fn fake_neko() {
    deskd_run::fake_neko_main();
}

async fn connect(addr: SocketAddr) -> harness::Client {
    deskd_run::connect_relay(addr, TOKEN).await
}

/// neko's (pid, generation) once it is ready with a generation above `above`.
async fn neko_ready_after(addr: SocketAddr, above: u64) -> (i32, u64) {
    neko_ready_after_with(addr, above, TOKEN).await
}

async fn neko_ready_after_with(addr: SocketAddr, above: u64, token: &str) -> (i32, u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, _, body) =
            http_request(addr, Method::GET, "/api/services", &[bearer(token)], None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let neko = v["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "neko"))
            .cloned()
            .expect("neko in /api/services");
        let generation = neko["generation"].as_u64().unwrap_or(0);
        if neko["state"] == "ready" && generation > above {
            if let Some(pid) = neko["pid"].as_i64() {
                return (pid as i32, generation);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "neko not ready above generation {above}: {neko}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether Xvfb can be run; says why the test skips when it cannot.
fn xvfb_available() -> bool {
    let found = Command::new("Xvfb")
        .arg("-help")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        println!("skipping: Xvfb not installed");
    }
    found
}

/// SIGKILL to the neko process deskd supervises.
fn kill_neko(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill neko");
}

/// `deskd run` with Xvfb and the fake neko, from a fresh config in `dir`. Inherited
/// `NEKO_LEGACY` and `NEKO_MEMBER_PROVIDER` must not reach neko.
fn start_deskd(dir: &Path, token: Option<&str>, stderr: Stdio) -> (DeskdRun, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let wrapper = deskd_run::write_fake_neko(dir, Duration::from_secs(1));
    let http_port = free_port();
    let config = deskd_run::write_config(
        dir,
        free_display(400),
        "640x480",
        http_port,
        &wrapper,
        "nat1to1 = [\"127.0.0.1\"]\n",
    );
    let mut cmd = deskd_run::run_command(&config, dir);
    cmd.env_remove("DESKD_TOKEN")
        .env_remove("DESKD_VIEW_TOKEN")
        .env("NEKO_LEGACY", "true")
        .env("NEKO_MEMBER_PROVIDER", "multiuser")
        .stderr(stderr);
    if let Some(t) = token {
        cmd.env("DESKD_TOKEN", t);
    } else {
        cmd.env("DESKD_LOG", "debug");
    }
    let deskd = DeskdRun::spawn(&mut cmd, dir);
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    (deskd, addr)
}

#[tokio::test]
async fn generated_token_is_printed_once_and_secrets_stay_out_of_logs() {
    if !xvfb_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("deskd-relay-e2e-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Outside `dir`, which is removed when deskd is stopped.
    let log_path = dir.with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (deskd, addr) = start_deskd(&dir, None, Stdio::from(log));
    assert!(
        wait_ready(addr, Duration::from_secs(60)).await,
        "deskd never became ready"
    );

    let text = std::fs::read_to_string(&log_path).unwrap();
    let url_prefix = format!("http://127.0.0.1:{}/?token=", addr.port());
    let token: String = text
        .split(&url_prefix)
        .nth(1)
        .expect("the login URL on stderr")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    assert_eq!(token.len(), 64, "{text}");
    // The printed token works: as Bearer, and through the browser flow.
    let (s, _, _) = http_request(addr, Method::GET, "/api/services", &[bearer(&token)], None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = http_request(addr, Method::GET, &format!("/?token={token}"), &[], None).await;
    assert_eq!(s, StatusCode::SEE_OTHER);

    // Debug logs of a relay's whole life, including a neko kill (logout fallback path).
    let mut c = deskd_run::connect_relay(addr, &token).await;
    assert!(next_text(&mut c).await.contains("system/init"));
    let (pid, generation) = neko_ready_after_with(addr, 0, &token).await;
    kill_neko(pid);
    assert_eq!(expect_close(&mut c).await.0, 4503);
    neko_ready_after_with(addr, generation, &token).await;
    let api_token = std::fs::read_to_string(dir.join("apitoken")).unwrap();
    assert_eq!(api_token.len(), 64);
    drop(deskd); // SIGTERM and wait: the whole log is written

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("relay opened"), "relay log expected:\n{text}");
    assert!(text.contains("DEBUG"), "debug level expected:\n{text}");
    assert_eq!(
        text.matches(&token).count(),
        1,
        "the access token may be printed only once:\n{text}"
    );
    assert!(
        !text.contains(&api_token),
        "neko's API token leaked into the log"
    );
}

#[tokio::test]
async fn deskd_run_starts_neko_and_relays_through_it() {
    if !xvfb_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("deskd-relay-e2e-{}", std::process::id()));
    let (deskd, addr) = start_deskd(&dir, Some(TOKEN), Stdio::inherit());
    assert!(
        wait_ready(addr, Duration::from_secs(60)).await,
        "deskd never became ready"
    );

    // neko got explicit flags and a scrubbed environment, the token only via env.
    let argv = std::fs::read_to_string(dir.join("argv")).unwrap();
    for flag in [
        "serve",
        "--legacy=false",
        "--member.provider=noauth",
        "--session.cookie.enabled=false",
        "--session.implicit_hosting=true",
        "--desktop.input.enabled=false",
        "--desktop.screen=640x480@30",
        "--webrtc.nat1to1=127.0.0.1",
    ] {
        assert!(argv.lines().any(|l| l == flag), "missing {flag} in\n{argv}");
    }
    assert!(!argv.contains(TOKEN));
    let env_names = std::fs::read_to_string(dir.join("envnames")).unwrap();
    let mut names: Vec<&str> = env_names.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "NEKO_SESSION_API_TOKEN",
            "NEKO_WEBRTC_ICESERVERS_BACKEND",
            "NEKO_WEBRTC_ICESERVERS_FRONTEND"
        ],
        "inherited NEKO_ vars must be scrubbed; only deskd's own may reach neko"
    );

    // The relay works through deskd, with its token.
    let (s, _, _) = http_request(addr, Method::GET, "/api/services", &[], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut c = connect(addr).await;
    assert!(next_text(&mut c).await.contains("system/init"));

    // Kill neko: the relay closes with 4503, deskd restarts neko, a new relay works.
    let (pid, generation) = neko_ready_after(addr, 0).await;
    kill_neko(pid);
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!(code, 4503, "{reason}");
    // Either path gives 4503: the TCP drop seen first, or the supervisor's new state.
    neko_ready_after(addr, generation).await;
    let mut c = connect(addr).await;
    assert!(next_text(&mut c).await.contains("system/init"));
    drop(c);
    drop(deskd);
}
