//! The viewer page and its JavaScript modules, embedded in the binary. No state.
//!
//! `GET /` is the page, `GET /viewer/<file>` its stylesheet and ES modules (plain files from
//! `supervisor/assets/viewer/`, no build step). Every response carries a strict
//! Content-Security-Policy (same-origin scripts, styles, WebSocket; blob: images for the
//! remote cursor; nothing from elsewhere), `Referrer-Policy: no-referrer` (the first URL may
//! hold the token) and `Cache-Control: no-cache` with a content-hash ETag, so browsers
//! revalidate cheaply and never run a stale module after an upgrade. Only headers that take
//! effect are sent: `Cross-Origin-Opener-Policy` only where the browser honours it (a
//! potentially trustworthy origin: HTTPS through a proxy that says so, or loopback); over
//! plain HTTP elsewhere Chromium ignores it and logs a console error on every load. Access
//! control is the auth layer around these routes, not this module.

use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The policy for the page: same origin only, no inline script or style, no plugins, no
/// framing. `blob:` images are the remote cursor (PNG from the data channel); `data:` is the
/// empty favicon. The video arrives as a MediaStream, which needs no media-src.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    /// The name under `/viewer/` (the page itself is `index.html`, served at `/`).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// FNV-1a of the body, computed at compile time.
    pub hash: u64,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($name:literal, $ct:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!("../../assets/viewer/", $name));
        Asset {
            name: $name,
            content_type: $ct,
            body: BODY,
            hash: fnv1a(BODY),
        }
    }};
}

/// Everything the page loads. Tests under `assets/viewer/test/` are not served.
pub static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("viewer.css", CSS),
    asset!("main.js", JS),
    asset!("backoff.js", JS),
    asset!("coords.js", JS),
    asset!("encoded-frames.js", JS),
    asset!("frame-painter.js", JS),
    asset!("framing.js", JS),
    asset!("input.js", JS),
    asset!("keysym.js", JS),
    asset!("native.js", JS),
    asset!("native-remote.js", JS),
    asset!("paint.js", JS),
    asset!("protocol.js", JS),
    asset!("rtc-decode-worker.js", JS),
    asset!("rtc-decoder.js", JS),
    asset!("screen.js", JS),
    asset!("signaling.js", JS),
    asset!("sound.js", JS),
    asset!("status.js", JS),
    asset!("still.js", JS),
    asset!("stream-worker.js", JS),
    asset!("touch.js", JS),
    asset!("transport.js", JS),
    asset!("webrtc.js", JS),
];

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The embedded file called `name`, if any.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The viewer routes for the application router.
pub fn routes() -> Router<super::AppState> {
    router()
}

/// The same routes for any state (tests serve them alone).
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(page))
        .route("/viewer/{name}", get(file))
}

/// Whether the page's origin, as the browser sees it, is potentially trustworthy (W3C Secure
/// Contexts): `https` (deskd speaks plain HTTP, so only a TLS-terminating proxy saying
/// `X-Forwarded-Proto: https` or `Forwarded: proto=https`), or a loopback host.
fn trustworthy_origin(request: &HeaderMap) -> bool {
    let text = |name: &str| {
        request
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase()
    };
    // The first proxy hop is the one the browser talked to.
    let first = |s: &str| s.split(',').next().unwrap_or("").trim().to_string();
    if first(&text("x-forwarded-proto")) == "https" {
        return true;
    }
    let forwarded = first(&text("forwarded"));
    if forwarded
        .split(';')
        .any(|kv| kv.trim().replace('"', "") == "proto=https")
    {
        return true;
    }
    let host = text("host");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or("").to_string(),
        None => host
            .rsplit_once(':')
            .map_or(host.clone(), |(h, _)| h.to_string()),
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn page(headers: HeaderMap) -> Response {
    respond("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if name == "index.html" {
        return not_found();
    }
    respond(&name, &headers)
}

/// The response for an asset name and the request headers (If-None-Match).
pub fn respond(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = asset(name) else {
        return not_found();
    };
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut headers = security_headers();
    if trustworthy_origin(request) {
        headers.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (StatusCode::OK, headers, asset.body).into_response()
}

fn security_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h
}

fn not_found() -> Response {
    let mut headers = security_headers();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::NOT_FOUND, headers, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(r: &Response, name: header::HeaderName) -> String {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let re = regex::Regex::new(r#"from "\./([a-z]+\.js)""#).unwrap();
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for cap in re.captures_iter(text) {
                assert!(asset(&cap[1]).is_some(), "{} imports {}", a.name, &cap[1]);
            }
        }
        let page = std::str::from_utf8(asset("index.html").unwrap().body).unwrap();
        assert!(page.contains(r#"src="/viewer/main.js""#));
        assert!(page.contains(r#"href="/viewer/viewer.css""#));
    }

    #[test]
    fn assets_have_their_type_policy_and_validator() {
        let r = respond("main.js", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header_of(&r, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            header_of(&r, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header_of(&r, header::CACHE_CONTROL), "no-cache");
        assert_eq!(header_of(&r, header::REFERRER_POLICY), "no-referrer");
        let etag = header_of(&r, header::ETAG);
        assert_eq!(etag.len(), 18, "{etag}");

        let mut req = HeaderMap::new();
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        assert_eq!(respond("main.js", &req).status(), StatusCode::NOT_MODIFIED);
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0\""));
        assert_eq!(respond("main.js", &req).status(), StatusCode::OK);

        let css = respond("viewer.css", &HeaderMap::new());
        assert_eq!(
            header_of(&css, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
    }

    fn coop_for(headers: &[(&str, &str)]) -> bool {
        let mut req = HeaderMap::new();
        for (k, v) in headers {
            req.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        respond("index.html", &req)
            .headers()
            .contains_key("cross-origin-opener-policy")
    }

    #[test]
    fn coop_is_sent_only_where_the_browser_honours_it() {
        // Plain HTTP to a LAN address or name: Chromium ignores COOP there and logs an error.
        assert!(!coop_for(&[("host", "192.168.1.20:8080")]));
        assert!(!coop_for(&[("host", "desktop.lan")]));
        assert!(!coop_for(&[]));
        assert!(!coop_for(&[
            ("host", "desktop.lan"),
            ("x-forwarded-proto", "http")
        ]));
        assert!(!coop_for(&[
            ("host", "desktop.lan"),
            ("x-forwarded-proto", "http, https")
        ]));
        // HTTPS through a TLS-terminating proxy, or loopback: it takes effect.
        assert!(coop_for(&[
            ("host", "desktop.example"),
            ("x-forwarded-proto", "https")
        ]));
        assert!(coop_for(&[
            ("host", "desktop.example"),
            ("forwarded", "for=10.0.0.1;proto=https;host=desktop.example")
        ]));
        assert!(coop_for(&[("host", "localhost:8080")]));
        assert!(coop_for(&[("host", "127.0.0.1:8080")]));
        assert!(coop_for(&[("host", "[::1]:8080")]));
        assert!(!coop_for(&[("host", "[fe80::1]:8080")]));
    }

    #[test]
    fn unknown_names_are_not_found() {
        for name in ["nope.js", "../Cargo.toml", "test/protocol.test.mjs", ""] {
            assert_eq!(
                respond(name, &HeaderMap::new()).status(),
                StatusCode::NOT_FOUND
            );
        }
    }

    #[test]
    fn different_bodies_have_different_etags() {
        let mut hashes: Vec<u64> = ASSETS.iter().map(|a| a.hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), ASSETS.len());
    }
}
