//! The signaling relay against the neko stand-in: ordering, close propagation both ways,
//! neko dropping TCP, neko restart, slow clients, size and client limits, readiness,
//! view-only filtering, heartbeats and pings, and session cleanup after a churn.

#[path = "common/deskd_proc.rs"]
mod deskd_proc;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/neko_standin.rs"]
mod neko_standin;

use std::time::Duration;

use deskd::http::neko_api::NekoApi;
use deskd::metrics::{Direction, Refusal};
use deskd::supervisor::ServiceState;
use futures_util::{SinkExt, StreamExt};
use harness::*;
use hyper::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

fn event(name: &str, payload: serde_json::Value) -> Message {
    Message::Text(
        serde_json::json!({"event": name, "payload": payload})
            .to_string()
            .into(),
    )
}

/// Sessions neko lists, asked through its API with the API token (as the issue requires).
async fn neko_sessions(h: &Harness) -> usize {
    NekoApi::new(h.standin.addr, Duration::from_secs(10))
        .sessions(&h.standin.api_token)
        .await
        .expect("session list")
        .len()
}

async fn wait_sessions(h: &Harness, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = neko_sessions(h).await;
        if now == n || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn relays_text_and_binary_in_order_both_ways() {
    let h = Harness::start(Setup::default()).await;
    let mut c = h.control_client().await;
    const N: usize = 300;
    for i in 0..N {
        c.send(event("signal/candidate", serde_json::json!({"n": i})))
            .await
            .unwrap();
        c.send(Message::Binary(vec![(i % 251) as u8; 1 + i % 7].into()))
            .await
            .unwrap();
    }
    // The stand-in echoes signal/* and binary in the order received; the relay must keep it.
    for i in 0..N {
        let t = next_text(&mut c).await;
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["event"], "signal/candidate");
        assert_eq!(v["payload"]["n"], i);
        match next(&mut c).await {
            Some(Message::Binary(b)) => assert_eq!(b.to_vec(), vec![(i % 251) as u8; 1 + i % 7]),
            other => panic!("expected binary {i}, got {other:?}"),
        }
    }
    // signal/request gets a provide.
    c.send(event(
        "signal/request",
        serde_json::json!({"video": {}, "audio": {"disabled": true}}),
    ))
    .await
    .unwrap();
    assert!(next_text(&mut c).await.contains("signal/provide"));
    assert!(h.metrics.frames(Direction::ToNeko) >= 2 * N as u64);
    assert!(h.metrics.frames(Direction::ToBrowser) > 2 * N as u64);
}

#[tokio::test]
async fn browser_close_code_reaches_neko_and_session_is_logged_out() {
    let h = Harness::start(Setup::default()).await;
    let start = neko_sessions(&h).await;
    let mut c = h.control_client().await;
    assert_eq!(neko_sessions(&h).await, start + 1);
    c.close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "tab closed".into(),
    }))
    .await
    .unwrap();
    assert!(wait_for(20, || !h.standin.closes().is_empty()).await);
    let closes = h.standin.closes();
    assert_eq!(closes[0].1, Some((4001, "tab closed".to_string())));
    assert_eq!(wait_sessions(&h, start).await, start);
}

#[tokio::test]
async fn neko_close_code_reaches_browser() {
    let h = Harness::start(Setup::default()).await;
    let mut c = h.control_client().await;
    c.send(event(
        "test/close",
        serde_json::json!({"code": 4100, "reason": "neko says bye"}),
    ))
    .await
    .unwrap();
    assert_eq!(
        expect_close(&mut c).await,
        (4100, "neko says bye".to_string())
    );
    assert_eq!(wait_sessions(&h, 0).await, 0);
}

#[tokio::test]
async fn neko_dropping_tcp_closes_browser_with_retry_code() {
    let h = Harness::start(Setup::default()).await;
    let mut c = h.control_client().await;
    c.send(event("test/drop", serde_json::json!({})))
        .await
        .unwrap();
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!(code, 4503);
    assert!(reason.contains("retry"), "{reason}");

    // All connections at once (neko crashed, as the relay sees it).
    let mut a = h.control_client().await;
    let mut b = h.control_client().await;
    h.standin.drop_connections();
    assert_eq!(expect_close(&mut a).await.0, 4503);
    assert_eq!(expect_close(&mut b).await.0, 4503);
}

#[tokio::test]
async fn neko_restart_closes_every_relay_with_retry() {
    let h = Harness::start(Setup::default()).await;
    let mut a = h.control_client().await;
    let mut b = h.control_client().await;
    h.status.send_replace(snapshot(ServiceState::Ready, 2));
    for c in [&mut a, &mut b] {
        assert_eq!(
            expect_close(c).await,
            (4503, "neko restarted, retry".to_string())
        );
    }
    // New connections to the new generation work; then neko going to backoff closes them.
    let mut c = h.control_client().await;
    h.status.send_replace(snapshot(ServiceState::Backoff, 2));
    assert_eq!(expect_close(&mut c).await.0, 4503);
}

#[tokio::test]
async fn not_ready_is_503_json_without_hanging() {
    let h = Harness::start(Setup {
        neko_state: ServiceState::Starting,
        ..Setup::default()
    })
    .await;
    let started = std::time::Instant::now();
    let (status, body) = refused(h.ws(&[bearer(CONTROL)]).await.unwrap_err());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "desktop stream not ready: neko is starting");
    // "Not a hang": far below any client timeout even on a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        h.standin
            .inner
            .logins
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(h.metrics.refusals(Refusal::NotReady), 1);
}

#[tokio::test]
async fn max_clients_refused_before_upgrade() {
    let mut setup = Setup::default();
    setup.http.max_clients = 2;
    let h = Harness::start(setup).await;
    let a = h.control_client().await;
    let _b = h.control_client().await;
    let (status, body) = refused(h.ws(&[bearer(CONTROL)]).await.unwrap_err());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("too many viewers"), "{body}");
    assert_eq!(h.metrics.refusals(Refusal::TooManyClients), 1);
    // A slot frees when a client leaves.
    drop(a);
    assert!(wait_for(20, || h.relay.free_slots() == 1).await);
    let _c = h.control_client().await;
}

#[tokio::test]
async fn view_clients_at_their_limit_leave_room_for_control() {
    let mut setup = Setup::default();
    setup.http.max_clients = 4; // reserve max(1, 4 / 4) = 1: at most 3 view clients
    let h = Harness::start(setup).await;
    assert_eq!(h.relay.max_view_clients(), 3);
    let mut views = Vec::new();
    for _ in 0..3 {
        let mut v = h.ws(&[bearer(VIEW)]).await.expect("view client connects");
        let init = next_text(&mut v).await;
        assert!(init.contains("system/init"), "{init}");
        views.push(v);
    }
    // A fourth view client is refused although a slot is free...
    let (status, body) = refused(h.ws(&[bearer(VIEW)]).await.unwrap_err());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("too many viewers"), "{body}");
    assert!(body.contains("control clients"), "{body}");
    assert_eq!(h.metrics.refusals(Refusal::TooManyClients), 1);
    assert_eq!(h.relay.free_slots(), 1);
    // ...because it is kept for a control client.
    let _c = h.control_client().await;
    // Now every slot is taken: another view client is still refused.
    let (status, body) = refused(h.ws(&[bearer(VIEW)]).await.unwrap_err());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("too many viewers"), "{body}");
    // A view slot frees when a view client leaves.
    drop(views.pop());
    assert!(wait_for(20, || h.relay.free_slots() == 1).await);
    let mut v = h
        .ws(&[bearer(VIEW)])
        .await
        .expect("view client connects again");
    let init = next_text(&mut v).await;
    assert!(init.contains("system/init"), "{init}");
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let mut setup = Setup::default();
    setup.http.max_frame_bytes = 64 * 1024;
    let h = Harness::start(setup).await;
    let mut c = h.control_client().await;
    c.send(Message::Binary(vec![7u8; 200 * 1024].into()))
        .await
        .unwrap();
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("65536"), "{reason}");
    assert_eq!(h.metrics.refusals(Refusal::TooBig), 1);
    assert_eq!(wait_sessions(&h, 0).await, 0);
}

#[tokio::test]
async fn stalled_browser_is_cut_off_and_memory_stays_bounded() {
    let mut setup = Setup::default();
    setup.http.relay_queue = 16;
    setup.stall = Duration::from_secs(2);
    let h = Harness::start(setup).await;
    let mut c = h.control_client().await;
    let rss_before = rss_kib();
    // neko floods 100k x 16 KiB = 1.6 GB at a browser that never reads.
    c.send(event(
        "test/flood",
        serde_json::json!({"count": 100_000, "size": 16 * 1024}),
    ))
    .await
    .unwrap();
    assert!(
        wait_for(60, || h.metrics.refusals(Refusal::SlowClient) == 1).await,
        "the stalled browser was not cut off"
    );
    let sent = h.standin.flood_sent();
    let rss_after = rss_kib();
    println!("flood: {sent} messages accepted by the relay before cut-off; RSS {rss_before} -> {rss_after} KiB");
    // Back-pressure reached neko: it could not push anywhere near the whole flood.
    assert!(
        sent < 20_000,
        "neko pushed {sent} messages: relay buffered without bound"
    );
    // Queue 16 x 16 KiB plus socket buffers; allow wide slack for the test process itself.
    assert!(
        rss_after < rss_before + 150 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(wait_for(30, || h.metrics.relay_current() == 0).await);
    assert_eq!(wait_sessions(&h, 0).await, 0);
}

/// This test process's resident memory in KiB.
fn rss_kib() -> u64 {
    deskd_proc::rss_kib(std::process::id() as i32)
}

#[tokio::test]
async fn view_only_clients_cannot_control() {
    let h = Harness::start(Setup::default()).await;
    let mut c = h.ws(&[bearer(VIEW)]).await.expect("view client connects");
    assert!(next_text(&mut c).await.contains("system/init"));
    for (name, payload) in [
        ("control/request", serde_json::json!({})),
        ("control/move", serde_json::json!({"x": 1, "y": 2})),
        ("control/keypress", serde_json::json!({"keysym": 65})),
        ("clipboard/set", serde_json::json!({"text": "pwned"})),
        (
            "screen/set",
            serde_json::json!({"width": 800, "height": 600, "rate": 30}),
        ),
        ("keyboard/map", serde_json::json!({"layout": "de"})),
        // Off the allow list too (issue 12 item 6): neko writes system/logs to its log,
        // forged text and all; chat, send/* and events neko may add later.
        (
            "system/logs",
            serde_json::json!([{"level": "error", "fields": {},
                "message": "x".repeat(64 << 10) + " deskd: all services stopped"}]),
        ),
        (
            "send/broadcast",
            serde_json::json!({"subject": "s", "body": "b"}),
        ),
        ("chat/message", serde_json::json!({"content": "hi"})),
        ("some/new-event", serde_json::json!({})),
    ] {
        c.send(event(name, payload)).await.unwrap();
    }
    c.send(Message::Binary(vec![1, 0, 4, 0, 1, 0, 2].into()))
        .await
        .unwrap();
    c.send(Message::Text(
        r#"{"event":"control\/move","payload":{"x":1,"y":1}}"#.into(),
    ))
    .await
    .unwrap();
    c.send(event("signal/request", serde_json::json!({"video": {}})))
        .await
        .unwrap();
    assert!(next_text(&mut c).await.contains("signal/provide"));
    let events: Vec<String> = h.standin.events().into_iter().map(|(_, e)| e).collect();
    assert_eq!(events, vec!["signal/request".to_string()]);

    // The same messages from a control client all arrive.
    let mut ctl = h.control_client().await;
    ctl.send(event("control/request", serde_json::json!({})))
        .await
        .unwrap();
    ctl.send(event("signal/request", serde_json::json!({})))
        .await
        .unwrap();
    assert!(next_text(&mut ctl).await.contains("signal/provide"));
    let events: Vec<String> = h.standin.events().into_iter().map(|(_, e)| e).collect();
    assert!(
        events.contains(&"control/request".to_string()),
        "{events:?}"
    );
}

#[tokio::test]
async fn heartbeats_relayed_and_pings_answered() {
    let h = Harness::start(Setup {
        standin: neko_standin::Options {
            heartbeat: Duration::from_millis(200),
            ..Default::default()
        },
        ..Setup::default()
    })
    .await;
    let mut c = h.control_client().await;
    assert_eq!(next_text(&mut c).await, r#"{"event":"system/heartbeat"}"#);
    assert_eq!(next_text(&mut c).await, r#"{"event":"system/heartbeat"}"#);
    assert!(
        wait_for(20, || h.standin.pongs() >= 1).await,
        "neko's pings were not answered"
    );
    // The browser's ping is answered by deskd.
    c.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
    loop {
        match next(&mut c).await {
            Some(Message::Pong(p)) => {
                assert_eq!(&p[..], b"p1");
                break;
            }
            Some(_) => continue,
            None => panic!("connection ended"),
        }
    }
}

#[tokio::test]
async fn logout_failure_falls_back_to_delete() {
    let h = Harness::start(Setup {
        standin: neko_standin::Options {
            fail_logout: true,
            ..Default::default()
        },
        ..Setup::default()
    })
    .await;
    for _ in 0..5 {
        let c = h.control_client().await;
        drop(c);
    }
    assert_eq!(wait_sessions(&h, 0).await, 0);
}

#[tokio::test]
async fn neko_unreachable_is_502_json() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let h = Harness::start(Setup {
        neko_override: Some(dead),
        ..Setup::default()
    })
    .await;
    let (status, body) = refused(h.ws(&[bearer(CONTROL)]).await.unwrap_err());
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("cannot open a neko session"), "{body}");
    assert_eq!(h.metrics.refusals(Refusal::NekoError), 1);
}

#[tokio::test]
async fn session_list_returns_to_start_after_churn() {
    let mut setup = Setup::default();
    setup.http.max_clients = 64;
    let h = Harness::start(setup).await;
    let start = neko_sessions(&h).await;
    const TOTAL: usize = 2000;
    const PARALLEL: usize = 16;
    let addr = h.addr;
    let mut tasks = Vec::new();
    for worker in 0..PARALLEL {
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for i in (worker..TOTAL).step_by(PARALLEL) {
                let mut req =
                    tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                        format!("ws://{addr}/stream/signaling"),
                    )
                    .unwrap();
                req.headers_mut().insert(
                    "authorization",
                    format!("Bearer {CONTROL}").parse().unwrap(),
                );
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut c, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
                let first = c.next().await;
                assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
                match i % 3 {
                    0 => c.close(None).await.unwrap(),
                    1 => c
                        .close(Some(CloseFrame {
                            code: CloseCode::Away,
                            reason: "bye".into(),
                        }))
                        .await
                        .unwrap(),
                    _ => drop(c), // TCP drop without a close frame
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, TOTAL);
    assert_eq!(
        wait_sessions(&h, start).await,
        start,
        "neko sessions leaked"
    );
    assert!(wait_for(30, || h.metrics.relay_current() == 0).await);
    assert_eq!(h.metrics.relay_total(), TOTAL as u64);
}

#[tokio::test]
async fn browser_leaving_during_login_leaks_no_session() {
    let h = Harness::start(Setup {
        standin: neko_standin::Options {
            login_delay: Duration::from_millis(500),
            ..Default::default()
        },
        ..Setup::default()
    })
    .await;
    use tokio::io::AsyncWriteExt;
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        let req = format!(
            "GET /stream/signaling HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Authorization: Bearer {CONTROL}\r\n\r\n",
            h.addr
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(tcp); // gone while neko is still answering the login
    }
    assert!(
        wait_for(20, || h
            .standin
            .inner
            .logins
            .load(std::sync::atomic::Ordering::Relaxed)
            == 5)
        .await
    );
    // Every login completed; every session must be logged out again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(wait_sessions(&h, 0).await, 0);
    assert!(wait_for(20, || h.relay.free_slots() == h.relay.max_clients).await);
}

#[tokio::test]
async fn shutdown_closes_relays_with_1001() {
    let h = Harness::start(Setup::default()).await;
    let mut c = h.control_client().await;
    h.shutdown();
    assert_eq!(
        expect_close(&mut c).await,
        (1001, "deskd is shutting down".to_string())
    );
}
