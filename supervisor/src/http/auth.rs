//! Access control: the control and view tokens, cookie/Bearer/query extraction, constant-time
//! comparison, and the Origin allow-list for WebSocket upgrades. Tokens never reach logs.
//!
//! The rules, applied by [`require`] to every route except `/healthz` and `/readyz`:
//! - A token comes from `Authorization: Bearer <token>` (programs) or the `deskd_token` cookie
//!   (browsers). A browser passes it once as `/?token=...` on a page URL: deskd answers `303`
//!   with an `HttpOnly; SameSite=Strict` cookie and the same URL without the token.
//! - No or a wrong token: `401`, as a small HTML page on page routes and as
//!   `{"error": "..."}` on `/api/*`, `/stream/*` and `/metrics`.
//! - Two levels: [`Access::Control`] and [`Access::View`]. A view token may only read: every
//!   method other than GET/HEAD is `403` for it, and the relay drops its `control/*` messages.
//!   Handlers that need control on a GET route take the [`RequireControl`] extractor.
//! - WebSocket upgrades must come from an allowed `Origin`: the request's own `Host`, or one of
//!   `[http] allowed_origins` (`"*"` allows any). A request without `Origin` (not a browser) is
//!   allowed only with a Bearer token, never on the strength of a cookie alone. The same rule
//!   applies to every cookie-authenticated request other than GET/HEAD/OPTIONS (CSRF: another
//!   port of the same host is "same-site", so `SameSite=Strict` alone does not stop it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::config::HttpSettings;
use crate::metrics::Refusal;

/// Cookie that carries the token for browsers.
pub const COOKIE_NAME: &str = "deskd_token";
/// Env variables read by [`Auth::from_settings`].
pub const ENV_TOKEN: &str = "DESKD_TOKEN";
pub const ENV_VIEW_TOKEN: &str = "DESKD_VIEW_TOKEN";

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Watch only: no input, no clipboard writes, never neko's host.
    View,
    /// Everything.
    Control,
}

/// How the request presented its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// The resolved tokens.
pub struct Auth {
    control: String,
    view: Option<String>,
    allowed_origins: Vec<String>,
    generated: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("control", &"<redacted>")
            .field("view", &self.view.as_ref().map(|_| "<redacted>"))
            .field("allowed_origins", &self.allowed_origins)
            .field("generated", &self.generated)
            .finish()
    }
}

/// A token source that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the {what} from {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} from {origin} is empty")]
    Empty { what: &'static str, origin: String },
    #[error("the view token is the same as the control token; a view token must differ")]
    SameTokens,
}

impl Auth {
    /// Tokens given directly (tests, embedders).
    pub fn new(
        control: impl Into<String>,
        view: Option<String>,
        allowed_origins: Vec<String>,
    ) -> Auth {
        Auth {
            control: control.into(),
            view,
            allowed_origins,
            generated: false,
        }
    }

    /// Tokens from env `DESKD_TOKEN` / `DESKD_VIEW_TOKEN`, then `[http] token_file` /
    /// `view_token_file`, then `[http] token` / `view_token`; a control token is generated
    /// when none is given.
    pub fn from_settings(http: &HttpSettings) -> Result<Auth, AuthError> {
        let env = |k: &str| std::env::var(k).ok();
        Self::from_sources(http, env(ENV_TOKEN), env(ENV_VIEW_TOKEN))
    }

    /// As [`Auth::from_settings`] with the env values passed in.
    pub fn from_sources(
        http: &HttpSettings,
        env_token: Option<String>,
        env_view_token: Option<String>,
    ) -> Result<Auth, AuthError> {
        let control = pick(
            "control token",
            ENV_TOKEN,
            env_token,
            http.token_file.as_deref(),
            http.token.clone(),
        )?;
        let view = pick(
            "view token",
            ENV_VIEW_TOKEN,
            env_view_token,
            http.view_token_file.as_deref(),
            http.view_token.clone(),
        )?;
        let (control, generated) = match control {
            Some(t) => (t, false),
            None => (generate_token(), true),
        };
        if view.as_deref() == Some(control.as_str()) {
            return Err(AuthError::SameTokens);
        }
        Ok(Auth {
            control,
            view,
            allowed_origins: http.allowed_origins.clone(),
            generated,
        })
    }

    /// True when deskd made the control token up (nobody configured one).
    pub fn generated(&self) -> bool {
        self.generated
    }

    /// The ready-to-open URL with the control token. Only for [`Auth::announce`] and tests.
    pub fn login_url(&self, listen: SocketAddr) -> String {
        let host = if listen.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listen.port())
        } else {
            listen
        };
        format!("http://{host}/?token={}", self.control)
    }

    /// Prints the URL to stderr when the token was generated (as Jupyter does). The only
    /// place a token is ever printed.
    pub fn announce(&self, listen: SocketAddr) {
        if self.generated {
            eprintln!(
                "deskd: no access token configured (DESKD_TOKEN, [http] token_file); generated one.\n\
                 deskd: open the desktop at:\n\n    {}\n",
                self.login_url(listen)
            );
        }
    }

    /// Writes the control token to `path` (mode 0600, directory created 0700 if missing), so
    /// that `deskd ctl` in a shell of the same user (e.g. `docker exec`) finds it. A file
    /// left from an earlier start is replaced, never reused with its old mode.
    pub fn write_token_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};

        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        writeln!(file, "{}", self.control)
    }

    /// What `presented` allows, compared in constant time against both tokens.
    pub fn check(&self, presented: &str) -> Option<Access> {
        let p = presented.as_bytes();
        let is_control: bool = p.ct_eq(self.control.as_bytes()).into();
        let is_view: bool = match &self.view {
            Some(v) => p.ct_eq(v.as_bytes()).into(),
            None => false,
        };
        if presented.is_empty() {
            None
        } else if is_control {
            Some(Access::Control)
        } else if is_view {
            Some(Access::View)
        } else {
            None
        }
    }

    /// Whether a WebSocket upgrade with this `Origin` and `Host` may proceed.
    pub fn origin_allowed(&self, origin: Option<&str>, host: Option<&str>, via: Via) -> bool {
        let Some(origin) = origin else {
            return via == Via::Bearer;
        };
        if self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return true;
        }
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .unwrap_or("");
        match host {
            Some(h) => !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(h),
            None => false,
        }
    }
}

/// The first configured source, in precedence order env > file > inline.
fn pick(
    what: &'static str,
    env_name: &str,
    env: Option<String>,
    file: Option<&Path>,
    inline: Option<String>,
) -> Result<Option<String>, AuthError> {
    if let Some(v) = env {
        return non_empty(what, format!("env {env_name}"), v).map(Some);
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadFile {
            what,
            path: path.to_path_buf(),
            source,
        })?;
        return non_empty(what, format!("file {}", path.display()), text).map(Some);
    }
    match inline {
        Some(v) => non_empty(what, "[http] config".to_string(), v).map(Some),
        None => Ok(None),
    }
}

fn non_empty(what: &'static str, origin: String, v: String) -> Result<String, AuthError> {
    let v = v.trim().to_string();
    if v.is_empty() {
        Err(AuthError::Empty { what, origin })
    } else {
        Ok(v)
    }
}

/// 32 random bytes as 64 hex digits. Falls back to time and pid only if the OS has no
/// randomness, which on Linux does not happen.
pub fn generate_token() -> String {
    let mut buf = [0u8; 32];
    if getrandom::fill(&mut buf).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token a request presents, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<(String, Via)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = bearer_credentials(v) {
            return Some((t.to_string(), Via::Bearer));
        }
    }
    for value in headers.get_all(header::COOKIE) {
        let Ok(s) = value.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == COOKIE_NAME {
                    return Some((v.to_string(), Via::Cookie));
                }
            }
        }
    }
    None
}

/// The credentials of an `Authorization` value with the Bearer scheme. RFC 7235 §2.1: the
/// scheme is case-insensitive and separated from the credentials by one or more spaces (tabs
/// accepted too, as `OWS` elsewhere in HTTP).
fn bearer_credentials(value: &str) -> Option<&str> {
    let value = value.trim_start_matches([' ', '\t']);
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with([' ', '\t']) {
        return None;
    }
    let token = rest.trim_matches([' ', '\t']);
    (!token.is_empty()).then_some(token)
}

/// Page routes answer with HTML; the rest with JSON.
fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/")
        || path == "/api"
        || path.starts_with("/stream/")
        || path == "/metrics")
}

/// `{"error": ...}` with a status.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn unauthorized(path: &str, message: &str) -> Response {
    if is_page(path) {
        let page = format!(
            "<!doctype html><meta charset=utf-8><title>deskd: unauthorized</title>\
             <body style=\"font-family:sans-serif;margin:3em\"><h1>Unauthorized</h1>\
             <p>{message}. Open the URL with <code>?token=&lt;your token&gt;</code>, as printed \
             by deskd at start.</p></body>"
        );
        (StatusCode::UNAUTHORIZED, Html(page)).into_response()
    } else {
        let mut r = json_error(StatusCode::UNAUTHORIZED, format!("unauthorized: {message}"));
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    }
}

/// Splits `token=` out of a query string: (the token, the rest of the query).
fn take_query_token(query: &str) -> (Option<String>, String) {
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("token", v)) => token = Some(percent_decode(v)),
            _ => rest.push(pair),
        }
    }
    (token, rest.join("&"))
}

/// Minimal `%XX` and `+` decoding for a query value.
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the login redirect goes: the same path without the token. A path starting with `//`
/// would be a protocol-relative URL (another host) in `Location`, so it becomes `/`.
fn login_redirect(path: &str, rest: &str) -> String {
    let path = if path.starts_with("//") || path.starts_with("/\\") {
        "/"
    } else {
        path
    };
    if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{rest}")
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The access middleware (see the module docs). Puts the [`Access`] level into the request
/// extensions for handlers and extractors.
pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    state.metrics.http_request();
    let path = req.uri().path().to_string();

    // Browser login: `?token=` on a page URL sets the cookie and redirects to the clean URL.
    if let Some(query) = req.uri().query() {
        let (token, rest) = take_query_token(query);
        if let Some(token) = token {
            if !is_page(&path) || req.method() != Method::GET {
                state.metrics.refused(Refusal::Unauthorized);
                return json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized: pass the token as `Authorization: Bearer`, not in the URL",
                );
            }
            if state.auth.check(&token).is_none() {
                state.metrics.refused(Refusal::Unauthorized);
                return unauthorized(&path, "the token in the URL is not valid");
            }
            let location = login_redirect(&path, &rest);
            let cookie = format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict");
            let mut resp = StatusCode::SEE_OTHER.into_response();
            if let (Ok(loc), Ok(c)) = (
                HeaderValue::from_str(&location),
                HeaderValue::from_str(&cookie),
            ) {
                resp.headers_mut().insert(header::LOCATION, loc);
                resp.headers_mut().insert(header::SET_COOKIE, c);
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return resp;
            }
            return unauthorized(&path, "the token contains characters a cookie cannot hold");
        }
    }

    let Some((token, via)) = presented_token(req.headers()) else {
        state.metrics.refused(Refusal::Unauthorized);
        return unauthorized(&path, "no access token");
    };
    let Some(access) = state.auth.check(&token) else {
        state.metrics.refused(Refusal::Unauthorized);
        return unauthorized(&path, "wrong access token");
    };

    // A WebSocket, or a request that changes something on the strength of the cookie alone
    // (a page on another port of the same host is same-site, so SameSite does not stop its
    // cross-origin POST): the Origin must be allowed.
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if is_websocket_upgrade(req.headers()) || (unsafe_method && via == Via::Cookie) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok());
        if !state.auth.origin_allowed(origin, host, via) {
            state.metrics.refused(Refusal::Origin);
            let msg = match origin {
                Some(o) => format!("origin {o} is not allowed (add it to [http] allowed_origins)"),
                None => "a request without Origin (WebSocket, or a cookie-authenticated change) \
                         needs an Authorization: Bearer token"
                    .to_string(),
            };
            return json_error(StatusCode::FORBIDDEN, msg);
        }
    }

    if access == Access::View && !matches!(*req.method(), Method::GET | Method::HEAD) {
        state.metrics.refused(Refusal::Forbidden);
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden: a view token can only watch; this needs the control token",
        );
    }

    req.extensions_mut().insert(access);
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Absent only if a route was mounted outside the auth layer: fail closed.
        parts
            .extensions
            .get::<Access>()
            .copied()
            .ok_or_else(|| json_error(StatusCode::UNAUTHORIZED, "unauthorized: no access token"))
    }
}

/// Extractor for handlers that need the control token even on GET.
#[derive(Debug, Clone, Copy)]
pub struct RequireControl;

impl<S: Send + Sync> FromRequestParts<S> for RequireControl {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Access::from_request_parts(parts, state).await? {
            Access::Control => Ok(RequireControl),
            Access::View => Err(json_error(
                StatusCode::FORBIDDEN,
                "forbidden: a view token can only watch; this needs the control token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> HttpSettings {
        HttpSettings::default()
    }

    #[test]
    fn precedence_env_file_inline() {
        let dir = std::env::temp_dir().join(format!("deskd-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut h = http();
        h.token = Some("inline".into());
        assert!(Auth::from_sources(&h, None, None)
            .unwrap()
            .check("inline")
            .is_some());
        h.token_file = Some(file.clone());
        let a = Auth::from_sources(&h, None, None).unwrap();
        assert_eq!(a.check("from-file"), Some(Access::Control));
        assert_eq!(a.check("inline"), None);
        let a = Auth::from_sources(&h, Some("env".into()), Some("viewer".into())).unwrap();
        assert_eq!(a.check("env"), Some(Access::Control));
        assert_eq!(a.check("viewer"), Some(Access::View));
        assert!(!a.generated());
        h.token_file = Some(dir.join("missing"));
        let err = Auth::from_sources(&h, None, None).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        assert!(Auth::from_sources(&http(), Some("  ".into()), None).is_err());
        assert!(matches!(
            Auth::from_sources(&http(), Some("x".into()), Some("x".into())),
            Err(AuthError::SameTokens)
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn generated_token_and_url() {
        let a = Auth::from_sources(&http(), None, None).unwrap();
        assert!(a.generated());
        let url = a.login_url("0.0.0.0:8080".parse().unwrap());
        let token = url.strip_prefix("http://127.0.0.1:8080/?token=").unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(a.check(token), Some(Access::Control));
        assert!(!format!("{a:?}").contains(token));
        assert_ne!(generate_token(), generate_token());
    }

    #[test]
    fn check_rejects_wrong_and_empty() {
        let a = Auth::new("abc", Some("v".into()), vec![]);
        assert_eq!(a.check("abc"), Some(Access::Control));
        assert_eq!(a.check("v"), Some(Access::View));
        assert_eq!(a.check("ab"), None);
        assert_eq!(a.check(""), None);
    }

    #[test]
    fn origins() {
        let a = Auth::new("t", None, vec!["https://viewer.example".into()]);
        assert!(a.origin_allowed(Some("http://host:8080"), Some("host:8080"), Via::Cookie));
        assert!(!a.origin_allowed(Some("http://evil:8080"), Some("host:8080"), Via::Cookie));
        assert!(a.origin_allowed(
            Some("https://viewer.example"),
            Some("host:8080"),
            Via::Cookie
        ));
        assert!(!a.origin_allowed(None, Some("host:8080"), Via::Cookie));
        assert!(a.origin_allowed(None, Some("host:8080"), Via::Bearer));
        assert!(!a.origin_allowed(Some("null"), Some("host:8080"), Via::Bearer));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer tok",
            "bearer tok",
            "BEARER tok",
            "bEaReR tok",
            "Bearer\ttok",
            "Bearer  \t tok ",
        ] {
            assert_eq!(bearer_credentials(value), Some("tok"), "{value:?}");
        }
        for value in [
            "Bearertok",
            "Basic tok",
            "Bearer",
            "Bearer   ",
            "Bear tok",
            "Bé tok",
        ] {
            assert_eq!(bearer_credentials(value), None, "{value:?}");
        }
    }

    #[test]
    fn query_token() {
        assert_eq!(
            take_query_token("token=a%2Bb&x=1"),
            (Some("a+b".into()), "x=1".into())
        );
        assert_eq!(take_query_token("x=1"), (None, "x=1".into()));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn login_redirect_stays_on_this_host() {
        assert_eq!(login_redirect("/", ""), "/");
        assert_eq!(login_redirect("/x/y", "a=1"), "/x/y?a=1");
        assert_eq!(login_redirect("//evil.example/", ""), "/");
        assert_eq!(login_redirect("/\\evil.example", "a=1"), "/?a=1");
    }
}
