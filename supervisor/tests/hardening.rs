//! Issue 12, on deskd's real router and accept loop in the test process (real sockets, the
//! neko stand-in behind the relay): the Authorization scheme in any case (RFC 7235), the
//! WebSocket close handshake on `/stream/signaling` (RFC 6455 §5.5.1), a deadline on slow
//! request bodies. (The view client's allow list over the relay: relay.rs
//! `view_only_clients_cannot_control`.)

#[path = "support/harness.rs"]
mod harness;
#[path = "support/neko_standin.rs"]
mod neko_standin;

use harness::*;
use hyper::http::{Method, StatusCode};

/// RFC 7235 §2.1: the auth scheme is case-insensitive; spaces or tabs separate it from the
/// token.
#[tokio::test]
async fn authorization_scheme_in_any_case() {
    let h = Harness::start(Setup::default()).await;
    for value in [
        format!("Bearer {CONTROL}"),
        format!("bearer {CONTROL}"),
        format!("BEARER {CONTROL}"),
        format!("bEaReR {CONTROL}"),
        format!("Bearer\t{CONTROL}"),
        format!("BEARER \t {CONTROL}"),
    ] {
        let (s, _, body) = h
            .http(
                Method::GET,
                "/api/services",
                &[("authorization", value.clone())],
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{value:?}: {body}");
    }
    for value in [format!("Basic {CONTROL}"), format!("Bearer{CONTROL}")] {
        let (s, _, _) = h
            .http(
                Method::GET,
                "/api/services",
                &[("authorization", value.clone())],
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{value:?}");
    }
}

/// Reads server frames (unmasked) from `bytes`: (opcode, payload) each; an incomplete
/// trailing frame is left out.
fn parse_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, head) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => break,
            n => (usize::from(n), 2),
        };
        if bytes.len() < head + len {
            break;
        }
        frames.push((opcode, bytes[head..head + len].to_vec()));
        bytes = &bytes[head + len..];
    }
    frames
}

/// RFC 6455 §5.5.1: a browser's Close frame is answered with a Close frame before the TCP
/// connection ends. Checked on the bytes of the wire, not through a WebSocket library that
/// might hide a missing frame.
#[tokio::test]
async fn browser_close_frame_is_answered_with_a_close_frame() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let h = Harness::start(Setup::default()).await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let request = format!(
        "GET /stream/signaling HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {CONTROL}\r\n\r\n",
        h.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "EOF in the 101 head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Let the relay deliver neko's greeting first, so the close is a mid-session one.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // A masked Close frame, code 1000 "bye".
    let payload = [0x03u8, 0xe8, b'b', b'y', b'e'];
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x88, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).await.unwrap();

    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut rest),
    )
    .await;
    assert!(
        read.is_ok(),
        "deskd did not end the connection after the close handshake"
    );
    let frames = parse_frames(&rest);
    let close = frames.iter().find(|(op, _)| *op == 0x8);
    let Some((_, body)) = close else {
        panic!(
            "no Close frame before EOF; frames (opcode, len): {:?}",
            frames
                .iter()
                .map(|(o, p)| (*o, p.len()))
                .collect::<Vec<_>>()
        );
    };
    assert!(body.len() >= 2, "close frame without a code");
    assert_eq!(
        u16::from_be_bytes([body[0], body[1]]),
        1000,
        "echoes the code"
    );
}

/// A body sent slowly gets a deadline as the head has: `408` (JSON naming the deadline) and
/// the connection closed, long before the client would have finished.
#[tokio::test]
async fn slow_request_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let h = Harness::start(Setup {
        limits: deskd::http::ServeLimits {
            body_read_timeout: std::time::Duration::from_secs(1),
            ..deskd::http::ServeLimits::default()
        },
        ..Setup::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let head = format!(
        "POST /api/input HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {CONTROL}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[",
        h.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 300 ms: the body would take 5 minutes.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            tokio::select! {
                n = tcp.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {
                    if tcp.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        outcome.is_ok(),
        "the connection was still open after 15 s of a slow body; answer so far: {answer:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("request body not received within 1s"),
        "{answer}"
    );
    println!("slow body: 408 after {:?}", started.elapsed());
}
