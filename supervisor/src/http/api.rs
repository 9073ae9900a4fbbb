//! The agent API under `/api/`: display info, screenshots, input, clipboard, windows, and
//! the "agent is acting" indicator. Thin: parses the request, runs the blocking
//! [`Desktop`] call on the desktop's worker lane for that kind of work ([`Work`]: screenshots,
//! input, queries each have their own bounded threads and queue; never tokio's blocking pool),
//! maps [`DesktopError`] to a status with `{"error": "..."}`. A full lane answers `503` with
//! `Retry-After`; a request whose client has gone is not started (and an input batch stops at
//! its next action): the handler's future is dropped when the connection closes, and the lane
//! sees it.
//!
//! Access: the router's auth layer already requires a token on every route here and refuses
//! the view token on every method but GET/HEAD, so `POST /api/input`, `POST /api/clipboard`
//! and `POST /api/windows/{id}/focus` need the control token. `GET /api/clipboard` also
//! needs it ([`RequireControl`]): the clipboard may hold secrets a watcher should not read.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::RequireControl;
use super::AppState;
use crate::desktop::{Desktop, DesktopError, ScreenshotRequest, Work};
use crate::workers::{Gone, LaneError};

/// Largest `POST /api/input` body (axum's default): 1000 actions or a 100000-character
/// `type` fit easily.
pub const MAX_INPUT_BODY: usize = 2 << 20;
/// Largest `POST /api/clipboard` body: the largest clipboard text deskd handles, as JSON.
pub const MAX_CLIPBOARD_BODY: usize = crate::desktop::clipboard::MAX_TEXT + (64 << 10);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/display", get(display))
        .route("/api/screenshot", get(screenshot))
        .route(
            "/api/input",
            post(input).layer(DefaultBodyLimit::max(MAX_INPUT_BODY)),
        )
        .route(
            "/api/clipboard",
            get(clipboard_get)
                .post(clipboard_set)
                .layer(DefaultBodyLimit::max(MAX_CLIPBOARD_BODY)),
        )
        .route("/api/windows", get(windows))
        .route("/api/windows/{id}/focus", post(focus))
        .route("/api/agent", get(agent))
}

/// An API failure as `{"error": "..."}` with its status; never cached.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<DesktopError> for ApiError {
    fn from(e: DesktopError) -> Self {
        let status = match &e {
            DesktopError::Unavailable(_) | DesktopError::Abandoned => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            DesktopError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DesktopError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DesktopError::NotFound(_) => StatusCode::NOT_FOUND,
            DesktopError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DesktopError::Timeout(_) | DesktopError::NoAnswer(_) => StatusCode::GATEWAY_TIMEOUT,
            DesktopError::Encode(_) | DesktopError::X11(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() && !matches!(e, DesktopError::Abandoned) {
            tracing::warn!(error = %e, "agent API request failed");
        }
        ApiError(status, e.to_string())
    }
}

/// JSON with `Cache-Control: no-store`.
fn json<T: Serialize>(value: T) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response()
}

/// Runs a blocking desktop call on the desktop's lane for `work`; `f` may ask [`Gone`]
/// whether the client is still there.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: Work,
    f: impl FnOnce(&Desktop, &Gone<'_>) -> Result<T, DesktopError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(desktop) = state.desktop.clone() else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "display unavailable: deskd runs no display ([display] is not configured)".into(),
        ));
    };
    let desktop: Arc<Desktop> = desktop;
    let lane_desktop = desktop.clone();
    match desktop
        .lane(work)
        .run(move |gone| f(&lane_desktop, gone))
        .await
    {
        Ok(result) => result.map_err(ApiError::from),
        Err(LaneError::Busy(busy)) => {
            Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, busy.to_string()))
        }
        Err(LaneError::Failed(e)) => {
            tracing::error!(error = %e, "agent API task failed");
            Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".into(),
            ))
        }
    }
}

async fn display(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(
        blocking(&state, Work::Query, |d, _| d.display_info()).await?,
    ))
}

async fn screenshot(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let req = ScreenshotRequest::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let shot = blocking(&state, Work::Screenshot, move |d, _| d.screenshot(&req)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, shot.format.content_type()),
            (header::CACHE_CONTROL, "no-store"),
        ],
        shot.bytes,
    )
        .into_response())
}

/// A request body that could not be read: `413` naming the limit when it is too large,
/// `408` when it did not arrive in time ([`super::body_deadline`]), else `400`, always as
/// `{"error": ...}`.
fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    let (status, text) = (rejection.status(), rejection.body_text());
    if let Some(timeout) = super::body_deadline::timeout_in(&rejection) {
        ApiError(StatusCode::REQUEST_TIMEOUT, timeout.to_string())
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError(
            status,
            format!("request body larger than {} KiB", limit >> 10),
        )
    } else {
        ApiError(StatusCode::BAD_REQUEST, text)
    }
}

async fn input(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_error(e, MAX_INPUT_BODY))?;
    Ok(json(
        blocking(&state, Work::Input, move |d, gone| {
            d.input_unless(&body, &|| gone.now())
        })
        .await?,
    ))
}

#[derive(Serialize)]
struct ClipboardText {
    /// `null` when nobody owns the clipboard or it holds no text.
    text: Option<String>,
}

async fn clipboard_get(
    _control: RequireControl,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let text = blocking(&state, Work::Query, |d, _| d.clipboard_get()).await?;
    Ok(json(ClipboardText { text }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClipboard {
    text: String,
}

/// The body is JSON whatever its `Content-Type` says, as for `/api/input`: `curl -d` (the
/// documented example) sends `application/x-www-form-urlencoded`.
async fn clipboard_set(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_error(e, MAX_CLIPBOARD_BODY))?;
    let SetClipboard { text } = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("body must be {{\"text\": \"...\"}}: {e}"),
        )
    })?;
    blocking(&state, Work::Query, move |d, _| d.clipboard_set(text)).await?;
    Ok(json(serde_json::json!({ "ok": true })))
}

async fn windows(State(state): State<AppState>) -> Result<Response, ApiError> {
    let windows = blocking(&state, Work::Query, |d, _| d.windows()).await?;
    Ok(json(serde_json::json!({ "windows": windows })))
}

/// A window id in decimal or `0x` hex (as xwininfo prints them).
fn parse_window_id(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

async fn focus(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = parse_window_id(&id) else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("window id `{id}` is not a number (decimal or 0x hex)"),
        ));
    };
    blocking(&state, Work::Input, move |d, _| d.focus_window(id)).await?;
    Ok(json(serde_json::json!({ "ok": true, "id": id })))
}

async fn agent(State(state): State<AppState>) -> Result<Response, ApiError> {
    match &state.desktop {
        Some(d) => Ok(json(d.activity())),
        None => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "display unavailable: deskd runs no display".into(),
        )),
    }
}
