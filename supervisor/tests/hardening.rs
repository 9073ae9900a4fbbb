//! Issue 12, on deskd's real router and accept loop in the test process (real sockets, the
//! neko stand-in behind the relay): the Authorization scheme in any case (RFC 7235), the
//! WebSocket close handshake on `/stream/signaling` (RFC 6455 §5.5.1), a deadline on slow
//! request bodies, and the view client's allow list over the relay.

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
