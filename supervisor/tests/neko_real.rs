//! Against a real neko (path in `DESKD_TEST_NEKO`; skipped with a message otherwise):
//! `deskd run` starts Xvfb and neko with deskd's flags, the relay gets `system/init` and a
//! `signal/provide` for a `signal/request`, and after a churn of connections neko's session
//! list (as `system/init` reports it) is back where it started.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/neko_standin.rs"]
mod neko_standin;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::SinkExt;
use harness::{bearer, http_request, next_text};
use hyper::http::{Method, StatusCode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "real-neko-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn free_display() -> u32 {
    let start = 400 + std::process::id() % 400;
    (start..start + 400)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .unwrap_or(start)
}

struct Deskd(Child);

impl Drop for Deskd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(addr: SocketAddr) -> harness::Client {
    let mut req = format!("ws://{addr}/stream/signaling")
        .into_client_request()
        .unwrap();
    let (k, v) = bearer(TOKEN);
    req.headers_mut().insert(k, v.parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("relay handshake");
    ws
}

/// Opens a relay, returns how many sessions neko's `system/init` lists, closes it.
async fn session_count(addr: SocketAddr) -> usize {
    let mut c = connect(addr).await;
    let init: serde_json::Value = serde_json::from_str(&next_text(&mut c).await).unwrap();
    assert_eq!(init["event"], "system/init", "{init}");
    let n = init["payload"]["sessions"]
        .as_object()
        .map(|m| m.len())
        .unwrap_or(0);
    let _ = c.close(None).await;
    n
}

#[tokio::test]
async fn real_neko_through_deskd() {
    let Ok(neko) = std::env::var("DESKD_TEST_NEKO") else {
        println!("skipping: set DESKD_TEST_NEKO to a neko v3 binary to run this test");
        return;
    };
    let dir = std::env::temp_dir().join(format!("deskd-real-neko-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let http_port = free_port();
    let config = dir.join("deskd.toml");
    std::fs::write(
        &config,
        format!(
            "[display]\nnumber = {}\nsize = \"1280x720\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
             [neko]\nbinary = \"{neko}\"\nbind = \"127.0.0.1:{}\"\nudp_port = {}\nnat1to1 = [\"127.0.0.1\"]\naudio = false\n",
            free_display(),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_deskd"))
        .args(["run", "-c"])
        .arg(&config)
        .arg("--conf-d")
        .arg(dir.join("no-conf.d"))
        .env("DESKD_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn deskd");
    let _deskd = Deskd(child);
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let (s, _, _) = http_request(addr, Method::GET, "/readyz", &[], None).await;
            if s == StatusCode::OK {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deskd with real neko never became ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // system/init, then signal/request → signal/provide (other events may come first).
    let mut c = connect(addr).await;
    assert!(next_text(&mut c).await.contains("system/init"));
    c.send(Message::Text(
        r#"{"event":"signal/request","payload":{"video":{},"audio":{"disabled":true}}}"#.into(),
    ))
    .await
    .unwrap();
    let mut provided = false;
    for _ in 0..50 {
        if next_text(&mut c).await.contains("\"signal/provide\"") {
            provided = true;
            break;
        }
    }
    assert!(provided, "no signal/provide from neko");
    let _ = c.close(None).await;

    // Churn, then the session list is back to the baseline.
    let baseline = {
        tokio::time::sleep(Duration::from_secs(1)).await;
        session_count(addr).await
    };
    for _ in 0..30 {
        let c = connect(addr).await;
        drop(c);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = session_count(addr).await;
        if n == baseline {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "neko lists {n} sessions, baseline {baseline}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
