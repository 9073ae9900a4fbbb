//! Access control and the health surfaces on a real socket: tokens (none, wrong, view on
//! control routes), the browser cookie flow, the Origin allow-list on WebSocket upgrades,
//! `/healthz`, `/readyz`, `/metrics`, `/api/services`.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/neko_standin.rs"]
mod neko_standin;

use std::time::Duration;

use deskd::metrics::Refusal;
use deskd::supervisor::{ServiceState, Snapshot};
use harness::*;
use hyper::http::{header, Method, StatusCode};

#[tokio::test]
async fn healthz_and_readyz_need_no_token() {
    let h = Harness::start(Setup {
        neko_state: ServiceState::Starting,
        ..Setup::default()
    })
    .await;
    let (s, _, body) = h.http(Method::GET, "/healthz", &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _, body) = h.http(Method::GET, "/readyz", &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["not_ready"][0]["service"], "neko");
    assert_eq!(v["not_ready"][0]["state"], "starting");
    assert_eq!(v["not_ready"][0]["reason"], "readiness probe running");

    h.status.send_replace(snapshot(ServiceState::Ready, 1));
    let (s, _, body) = h.http(Method::GET, "/readyz", &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    h.status.send_replace(Snapshot::default());
    let (s, _, body) = h.http(Method::GET, "/readyz", &[]).await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing published yet: {body}"
    );

    h.status.send_replace(Snapshot {
        stopping: true,
        ..snapshot(ServiceState::Ready, 1)
    });
    let (s, _, _) = h.http(Method::GET, "/readyz", &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn api_routes_need_a_token() {
    let h = Harness::start(Setup::default()).await;
    for path in ["/api/services", "/metrics"] {
        let (s, hdrs, body) = h.http(Method::GET, path, &[]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("no access token"),
            "{body}"
        );
        assert_eq!(hdrs.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");

        let (s, _, body) = h.http(Method::GET, path, &[bearer("wrong")]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body.contains("wrong access token"), "{body}");

        let (s, _, _) = h.http(Method::GET, path, &[bearer(CONTROL)]).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        let (s, _, _) = h.http(Method::GET, path, &[bearer(VIEW)]).await;
        assert_eq!(s, StatusCode::OK, "view tokens may read {path}");
        let (s, _, _) = h.http(Method::GET, path, &[cookie(CONTROL)]).await;
        assert_eq!(s, StatusCode::OK, "{path} with the cookie");
    }
    // Tokens in API URLs are refused (they end up in logs and histories).
    let (s, _, _) = h
        .http(Method::GET, &format!("/api/services?token={CONTROL}"), &[])
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.metrics.refusals(Refusal::Unauthorized) >= 5);
}

#[tokio::test]
async fn view_token_cannot_mutate() {
    let h = Harness::start(Setup::default()).await;
    let (s, _, body) = h.http(Method::POST, "/api/services", &[bearer(VIEW)]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("view token"), "{body}");
    // The control token passes the gate (and then meets the route's own method check).
    let (s, _, _) = h
        .http(Method::POST, "/api/services", &[bearer(CONTROL)])
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h.metrics.refusals(Refusal::Forbidden), 1);
}

#[tokio::test]
async fn cookie_changes_need_an_allowed_origin() {
    // A page on another port of the same host is same-site: the browser sends the SameSite
    // cookie with its cross-origin POST. Such a POST must be refused before any handler runs.
    let h = Harness::start(Setup::default()).await;
    let same = format!("http://{}", h.addr);
    let foreign = format!("http://{}:1", h.addr.ip());
    let (s, _, body) = h
        .http(
            Method::POST,
            "/api/services",
            &[cookie(CONTROL), ("origin", foreign.clone())],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains(&foreign), "{body}");
    let (s, _, _) = h
        .http(Method::POST, "/api/services", &[cookie(CONTROL)])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(h.metrics.refusals(Refusal::Origin), 2);
    // Same origin with the cookie, or a Bearer token without Origin, pass the gate (and meet
    // the route's own method check); so does a cookie GET from anywhere (nothing changes).
    let (s, _, _) = h
        .http(
            Method::POST,
            "/api/services",
            &[cookie(CONTROL), ("origin", same)],
        )
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _, _) = h
        .http(Method::POST, "/api/services", &[bearer(CONTROL)])
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _, _) = h
        .http(
            Method::GET,
            "/api/services",
            &[cookie(CONTROL), ("origin", foreign)],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.metrics.refusals(Refusal::Origin), 2);
}

#[tokio::test]
async fn page_without_token_is_a_401_page_and_query_token_sets_cookie() {
    let h = Harness::start(Setup::default()).await;
    let (s, hdrs, body) = h.http(Method::GET, "/", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(hdrs
        .get(header::CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("?token="), "{body}");

    let (s, _, _) = h.http(Method::GET, "/?token=nope", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, hdrs, _) = h
        .http(Method::GET, &format!("/?token={CONTROL}&x=1"), &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(hdrs.get(header::LOCATION).unwrap(), "/?x=1");
    let set_cookie = hdrs.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        set_cookie.starts_with(&format!("deskd_token={CONTROL};")),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");

    // The cookie opens the API (and the page, which the viewer serves).
    let cookie_value = set_cookie.split(';').next().unwrap().to_string();
    let (s, _, _) = h
        .http(Method::GET, "/api/services", &[("cookie", cookie_value)])
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn websocket_origin_allow_list() {
    let h = Harness::start(Setup {
        allowed_origins: vec!["https://viewer.example".to_string()],
        ..Setup::default()
    })
    .await;
    let same = format!("http://{}", h.addr);
    // Cookie + same origin: allowed.
    let mut c = h
        .ws(&[cookie(CONTROL), ("origin", same.clone())])
        .await
        .expect("same origin");
    assert!(next_text(&mut c).await.contains("system/init"));
    // Cookie + listed origin: allowed.
    let mut c = h
        .ws(&[cookie(CONTROL), ("origin", "https://viewer.example".into())])
        .await
        .expect("listed origin");
    assert!(next_text(&mut c).await.contains("system/init"));
    // Cookie + foreign origin: 403.
    let (s, body) = refused(
        h.ws(&[cookie(CONTROL), ("origin", "http://evil.example".into())])
            .await
            .unwrap_err(),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("evil.example"), "{body}");
    // Cookie without Origin: 403 (a browser always sends one; only programs omit it).
    let (s, _) = refused(h.ws(&[cookie(CONTROL)]).await.unwrap_err());
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Bearer without Origin: allowed (programs).
    let mut c = h
        .ws(&[bearer(CONTROL)])
        .await
        .expect("bearer without origin");
    assert!(next_text(&mut c).await.contains("system/init"));
    // Bearer with a foreign Origin is still refused.
    let (s, _) = refused(
        h.ws(&[bearer(CONTROL), ("origin", "http://evil.example".into())])
            .await
            .unwrap_err(),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
    // No token at all: 401 before any Origin question.
    let (s, _) = refused(h.ws(&[("origin", same)]).await.unwrap_err());
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h.metrics.refusals(Refusal::Origin), 3);
    assert_eq!(
        h.standin
            .inner
            .logins
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test]
async fn metrics_and_services_render_the_snapshot() {
    let h = Harness::start(Setup::default()).await;
    let _c = h.control_client().await;
    let (s, hdrs, text) = h.http(Method::GET, "/metrics", &[bearer(CONTROL)]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(hdrs
        .get(header::CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for needle in [
        "deskd_service_state{service=\"neko\",state=\"ready\"} 1",
        "deskd_service_up{service=\"neko\"} 1",
        "deskd_service_restarts_total{service=\"neko\"} 0",
        "deskd_relay_connections 1",
        "deskd_relay_connections_total 1",
        "deskd_relay_frames_total{direction=\"to_browser\"} 1",
        "deskd_refusals_total{reason=\"too_many_clients\"} 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let (s, _, body) = h.http(Method::GET, "/api/services", &[bearer(VIEW)]).await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["services"][0]["name"], "neko");
    assert_eq!(v["services"][0]["state"], "ready");
    assert_eq!(v["services"][0]["generation"], 1);
}

#[tokio::test]
async fn signaling_without_upgrade_is_400_json() {
    let h = Harness::start(Setup::default()).await;
    let (s, _, body) = h
        .http(Method::GET, "/stream/signaling", &[bearer(CONTROL)])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("WebSocket"), "{body}");
}

#[tokio::test]
async fn oversized_api_bodies_are_413_json() {
    // No display in this harness: a body that is read reaches the handler and gets 503, one
    // over the route's limit is refused first with 413 as JSON naming the limit.
    let h = Harness::start(Setup::default()).await;
    let big = "x".repeat(deskd::http::api::MAX_INPUT_BODY + 1);
    let (s, hdrs, body) = http_request(
        h.addr,
        Method::POST,
        "/api/input",
        &[bearer(CONTROL)],
        Some(big),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(hdrs.get(header::CONTENT_TYPE).unwrap(), "application/json");
    assert!(body.contains("larger than 2048 KiB"), "{body}");
    // The clipboard takes more than the input route: 3 MiB of text is read and parsed.
    let text = format!(r#"{{"text":"{}"}}"#, "y".repeat(3 << 20));
    let (s, _, body) = http_request(
        h.addr,
        Method::POST,
        "/api/clipboard",
        &[bearer(CONTROL), ("content-type", "application/json".into())],
        Some(text),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("display unavailable"), "{body}");
}

#[tokio::test]
async fn clipboard_body_is_json_whatever_the_content_type() {
    // `curl -d '{"text":"x"}'` (the documented example) sends a form content type. The body
    // is read as JSON anyway: here it reaches the handler (503, no display in this harness).
    let h = Harness::start(Setup::default()).await;
    let form = (
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    );
    let (s, _, body) = http_request(
        h.addr,
        Method::POST,
        "/api/clipboard",
        &[bearer(CONTROL), form.clone()],
        Some(r#"{"text":"paste me"}"#.into()),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // A body that is not {"text": ...} is a 400 saying what was expected.
    let (s, _, body) = http_request(
        h.addr,
        Method::POST,
        "/api/clipboard",
        &[bearer(CONTROL), form],
        Some(r#"{"txt":"paste me"}"#.into()),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains(r#"{\"text\": \"...\"}"#) && body.contains("txt"),
        "{body}"
    );
}

/// A client that never finishes its request head is disconnected after the header-read
/// timeout, and connections never exceed `max_connections`: PID 1 does not hand its file
/// descriptors to whoever connects. At the cap, a new connection closes the oldest idle one.
#[tokio::test]
async fn slow_and_excess_connections_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let h = Harness::start(Setup {
        limits: deskd::http::ServeLimits {
            header_read_timeout: Duration::from_millis(500),
            max_connections: 2,
            ..deskd::http::ServeLimits::default()
        },
        ..Setup::default()
    })
    .await;

    // Half a request head, then silence: closed within the timeout (not after 10 s).
    let mut slow = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "a half-sent request head kept its connection open for 10 s"
    );

    // Two idle keep-alive connections take both slots; a third is served by closing the
    // older of them (it had no request in progress).
    let mut a = tokio::net::TcpStream::connect(h.addr).await.expect("a");
    let mut b = tokio::net::TcpStream::connect(h.addr).await.expect("b");
    a.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a");
    b.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("b");
    let mut one = [0u8; 12];
    a.read_exact(&mut one).await.expect("a answered");
    b.read_exact(&mut one).await.expect("b answered");
    let (status, _, _) = http_request(h.addr, Method::GET, "/healthz", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), a.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the oldest idle connection was not closed to make room"
    );
}
