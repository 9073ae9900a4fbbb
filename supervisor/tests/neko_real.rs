//! Against a real neko (path in `DESKD_TEST_NEKO`; skipped with a message otherwise):
//! `deskd run` starts Xvfb and neko with deskd's flags, neko's own start-up log shows that it
//! took them (ICE lite, the H.264 pipeline with its key frame interval), the relay gets
//! `system/init` and a `signal/provide` for a `signal/request`, and after a churn of
//! connections neko's session list (as `system/init` reports it) is back where it started.

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
use std::process::Stdio;
use std::time::Duration;

use deskd_run::{free_display, free_port, wait_ready, DeskdRun};
use futures_util::SinkExt;
use harness::next_text;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "real-neko-token";

async fn connect(addr: SocketAddr) -> harness::Client {
    deskd_run::connect_relay(addr, TOKEN).await
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
    let config = deskd_run::write_config(
        &dir,
        free_display(400),
        "1280x720",
        http_port,
        Path::new(&neko),
        &format!(
            "udp_port = {}\nnat1to1 = [\"127.0.0.1\"]\naudio = false\nfps = 30\n",
            free_port()
        ),
    );
    let log_path = dir.join("deskd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = deskd_run::run_command(&config, &dir);
    cmd.env("DESKD_TOKEN", TOKEN).stderr(Stdio::from(log));
    let _deskd = DeskdRun::spawn(&mut cmd, &dir);
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let ready = wait_ready(addr, Duration::from_secs(90)).await;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(ready, "deskd with real neko never became ready:\n{log}");

    // neko's own account of its settings (it logs them before `neko ready`).
    let webrtc = log
        .lines()
        .find(|l| l.contains("webrtc starting"))
        .unwrap_or_else(|| panic!("no 'webrtc starting' line from neko:\n{log}"));
    assert!(webrtc.contains("icelite=true"), "{webrtc}");
    let pipeline = log
        .lines()
        .find(|l| l.contains("syntax check for video stream pipeline passed"))
        .unwrap_or_else(|| panic!("no video pipeline line from neko:\n{log}"));
    // The default codec, at the `fps = 30` of this config.
    let key_int = format!("key-int-max={}", deskd::neko::keyframe_interval(30));
    assert!(pipeline.contains("x264enc"), "{pipeline}");
    assert!(pipeline.contains(&key_int), "{key_int} not in {pipeline}");
    // deskd's whole pipeline, not neko's template: no frame queue, no clock wait at the sink.
    assert!(pipeline.contains("leaky=downstream"), "{pipeline}");
    assert!(
        pipeline.contains("appsink name=appsink sync=false"),
        "{pipeline}"
    );

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
