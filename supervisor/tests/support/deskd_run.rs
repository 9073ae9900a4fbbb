//! The real `deskd run` binary for the end-to-end tests (relay_e2e, viewer_browser,
//! neko_real): free ports and display numbers, the process guard stopped with SIGTERM on
//! drop, the `/readyz` wait, WebSocket clients (the relay, `/stream/ws`) with a Bearer token,
//! and the fake neko program (the test binary re-run as the neko stand-in through a wrapper
//! script). Needs the including test to have `common/deskd_proc.rs` as `deskd_proc` and
//! `support/neko_standin.rs` as `neko_standin`.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

/// The directory the fake neko's wrapper records into (argv, NEKO_ env names, API token).
const FAKE_NEKO_DIR: &str = "DESKD_FAKE_NEKO_DIR";
/// The stand-in's heartbeat interval in milliseconds, set by the wrapper.
const FAKE_NEKO_HEARTBEAT_MS: &str = "DESKD_FAKE_NEKO_HEARTBEAT_MS";

pub use super::deskd_proc::free_port;

/// A display number with no X lock or socket, searched from `base` plus a pid-derived
/// offset; tests of one binary run in parallel, so each call starts 400 further.
pub fn free_display(base: u32) -> u32 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let start = base + (std::process::id() % 100) * 4 + call * 400;
    super::deskd_proc::first_free_display(start, 400).unwrap_or(start)
}

/// `deskd run -c CONFIG --conf-d DIR/no-conf.d` with stdin and stdout to /dev/null; the
/// caller adds env and stderr, then [`DeskdRun::spawn`]s it.
pub fn run_command(config: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskd"));
    cmd.args(["run", "-c"])
        .arg(config)
        .arg("--conf-d")
        .arg(dir.join("no-conf.d"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Writes `dir/deskd.toml`: `[display]` `number` and `size`, `[http]` on
/// 127.0.0.1:`http_port`, `[neko]` with `binary` bound to a free loopback port, then the
/// `neko_extra` lines (e.g. `nat1to1 = [...]`). Returns its path.
pub fn write_config(
    dir: &Path,
    display: u32,
    size: &str,
    http_port: u16,
    neko_binary: &Path,
    neko_extra: &str,
) -> PathBuf {
    let config = dir.join("deskd.toml");
    std::fs::write(
        &config,
        format!(
            "[display]\nnumber = {display}\nsize = \"{size}\"\n\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
             [neko]\nbinary = \"{}\"\nbind = \"127.0.0.1:{}\"\n{neko_extra}",
            neko_binary.display(),
            free_port()
        ),
    )
    .expect("write deskd.toml");
    config
}

/// A running deskd, stopped with SIGTERM (then SIGKILL after 30 s) on drop; `dir` is
/// removed once deskd has exited.
pub struct DeskdRun {
    child: Child,
    dir: PathBuf,
}

impl DeskdRun {
    pub fn spawn(cmd: &mut Command, dir: &Path) -> DeskdRun {
        let child = cmd.spawn().expect("spawn deskd");
        DeskdRun {
            child,
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for DeskdRun {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of a plain `GET path` (0 when there is no parseable answer in 10 s).
async fn get_status(addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return 0;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut raw = Vec::new();
    if !matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await,
        Ok(Ok(_))
    ) {
        return 0;
    }
    String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Polls `/readyz` until it answers 200 or `timeout` passes.
pub async fn wait_ready(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if get_status(addr, "/readyz").await == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A WebSocket client on deskd's relay, authenticated with `token` as Bearer.
pub async fn connect_relay(addr: SocketAddr, token: &str) -> WebSocketStream<TcpStream> {
    connect_ws(addr, "/stream/signaling", token).await
}

/// A WebSocket client on deskd's `path`, authenticated with `token` as Bearer.
pub async fn connect_ws(addr: SocketAddr, path: &str, token: &str) -> WebSocketStream<TcpStream> {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("WebSocket request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    let tcp = TcpStream::connect(addr).await.expect("connect to deskd");
    let (ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .unwrap_or_else(|e| panic!("WebSocket handshake on {path}: {e}"));
    ws
}

/// Writes `dir/fake-neko`, a script that records its argv (`dir/argv`, one a line), the
/// names of its `NEKO_*` env vars (`dir/envnames`) and neko's API token (`dir/apitoken`),
/// then runs this test binary's `fake_neko` test (which calls [`fake_neko_main`]).
pub fn write_fake_neko(dir: &Path, heartbeat: Duration) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let script = dir.join("fake-neko");
    let mut f = std::fs::File::create(&script).expect("create wrapper");
    writeln!(
        f,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{dir}/argv'\nenv | grep '^NEKO_' | cut -d= -f1 > '{dir}/envnames'\nprintf '%s' \"$NEKO_SESSION_API_TOKEN\" > '{dir}/apitoken'\n\
         {FAKE_NEKO_DIR}='{dir}' {FAKE_NEKO_HEARTBEAT_MS}={ms} exec '{exe}' --exact fake_neko --ignored --nocapture --test-threads=1",
        dir = dir.display(),
        ms = heartbeat.as_millis(),
        exe = exe.display()
    )
    .expect("write wrapper");
    drop(f);
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// Body of the `fake_neko` entry test: the neko stand-in on the `--server.bind` address
/// deskd passed, with deskd's API token. Returns at once under a plain `cargo test`.
pub fn fake_neko_main() {
    let Ok(dir) = std::env::var(FAKE_NEKO_DIR) else {
        return;
    };
    let argv = std::fs::read_to_string(Path::new(&dir).join("argv")).expect("argv file");
    let bind = argv
        .lines()
        .find_map(|l| l.strip_prefix("--server.bind="))
        .expect("--server.bind")
        .to_string();
    let api_token = std::env::var("NEKO_SESSION_API_TOKEN").expect("api token env");
    let heartbeat = std::env::var(FAKE_NEKO_HEARTBEAT_MS)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .expect("heartbeat env");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .expect("bind neko addr");
        let _standin = super::neko_standin::StandIn::start_on(
            listener,
            super::neko_standin::Options {
                api_token,
                heartbeat,
                ..Default::default()
            },
        )
        .await;
        std::future::pending::<()>().await;
    });
}
