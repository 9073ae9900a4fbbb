//! The one HTTP port: the router and its shared state. The only module tree that imports axum.
//!
//! Routes: `/` and assets ([`viewer`]), `/stream/signaling` ([`relay`]), `/stream/ws` and
//! `/api/session` ([`stream_ws`]), `/healthz`,
//! `/readyz`, `/metrics`, `/api/services` (here), `/api/*` for agents ([`api`]). Access
//! control is [`auth`]: every route except `/healthz` and `/readyz` sits behind
//! [`auth::require`], so handlers merged from [`viewer`] and [`api`] are protected without
//! doing anything; they can take [`auth::Access`] or [`auth::RequireControl`] as extractors.

pub mod api;
pub mod auth;
pub mod body_deadline;
pub mod conns;
pub mod neko_api;
pub mod relay;
pub mod stream_ws;
pub mod viewer;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::NekoVideo;
use crate::metrics::Metrics;
use crate::neko_feed::NekoFeed;
use crate::supervisor::Snapshot;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<auth::Auth>,
    /// The supervisor's published status.
    pub status: watch::Receiver<Snapshot>,
    pub metrics: Arc<Metrics>,
    /// Where neko is and how the relay behaves; `None` when neko is not configured.
    pub relay: Option<Arc<relay::RelaySettings>>,
    /// Direct X11 access for the agent API; `None` when there is no display.
    pub desktop: Option<Arc<crate::desktop::Desktop>>,
    /// The native stream (`/stream/ws`); `None` when off or there is no display.
    pub stream: Option<Arc<stream_ws::NativeStream>>,
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .merge(viewer::routes())
        .merge(relay::routes())
        .merge(stream_ws::routes())
        .merge(api::routes())
        .route("/metrics", get(metrics))
        .route("/api/services", get(services))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state)
}

/// Limits of the accept loop: PID 1 must not let unauthenticated clients hold its file
/// descriptors. (axum's `serve` sets no timer, so hyper's header-read timeout is off there.)
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A connection that has not sent a whole request head within this is closed.
    pub header_read_timeout: Duration,
    /// HTTP connections open at once, at most: the cap is lower when the open-files limit
    /// requires ([`conns`]). Upgraded WebSockets leave the count (the relay has its own
    /// `max_clients`). At the cap a new client closes the oldest idle connection, or gets
    /// `503` when all are busy.
    pub max_connections: usize,
    /// A request body must have arrived whole within this of the handler starting to read
    /// it ([`body_deadline`]): `408`, and the connection is closed.
    pub body_read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router(state)` on `listener` until `shutdown` is cancelled, then stops accepting,
/// closes every relay (1001) and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with_limits(listener, state, shutdown, ServeLimits::default()).await
}

/// [`serve`] with explicit [`ServeLimits`].
pub async fn serve_with_limits(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let relay = state.relay.clone();
    let stream = state.stream.clone();
    let body_timeout = limits.body_read_timeout;
    let app = router(state).layer(axum::middleware::map_request(move |req| async move {
        body_deadline::layer(req, body_timeout)
    }));
    let limit = crate::fdlimit::soft_limit();
    let slots = conns::Slots::new(crate::fdlimit::http_connection_cap(
        limits.max_connections,
        limit,
    ));
    tracing::debug!(
        cap = slots.cap(),
        open_files_limit = limit,
        "HTTP connection cap"
    );
    let mut accept_errors = AcceptErrors::default();
    let connections = TaskTracker::new();
    loop {
        let mut tcp = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, and say so rarely.
                    accept_errors.record(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let held = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            held = slots.take() => held,
        };
        let Some(held) = held else {
            // Every connection is busy: say so (non-blocking; the answer is tiny) and close.
            let _ = tcp.try_write(conns::BUSY_RESPONSE);
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut tcp).await;
            continue;
        };
        // Signaling is small messages in both directions: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let conn_state = held.conn.clone();
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = conn_state.busy();
            let mut app = app.clone();
            async move {
                let response = tower_service::Service::call(&mut app, req).await?;
                // Busy until the whole response body has been sent.
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    axum::body::Body::new(body.map_frame(move |frame| {
                        let _busy = &busy;
                        frame
                    }))
                }))
            }
        });
        let stop = shutdown.clone();
        connections.spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Closed (dropped) to make room for a new connection.
                _ = held.conn.evicted().cancelled() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(held);
        });
    }
    if let Some(r) = relay {
        r.close_all();
    }
    if let Some(s) = stream {
        s.stream.close_all();
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Failed accepts, logged at most every [`AcceptErrors::EVERY`] with how many there were.
#[derive(Default)]
struct AcceptErrors {
    last_warned: Option<std::time::Instant>,
    since: u64,
}

impl AcceptErrors {
    const EVERY: Duration = Duration::from_secs(10);

    fn record(&mut self, e: &std::io::Error) {
        self.since += 1;
        if self.last_warned.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        tracing::warn!(
            error = %e,
            failures = self.since,
            "HTTP accept failed ({} times since the last warning); retrying every 100 ms",
            self.since
        );
        self.last_warned = Some(std::time::Instant::now());
        self.since = 0;
    }
}

/// What [`start`] started.
pub struct Started {
    /// The server task.
    pub task: tokio::task::JoinHandle<()>,
    /// Where neko's video pipeline reads deskd's frames (`[neko] video = "deskd"`).
    pub neko_feed: Option<std::net::SocketAddr>,
}

/// Binds `settings.http.listen`, builds the state (tokens, relay settings from `[neko]` and
/// the per-start API token, the desktop for the agent API, the native stream and neko's
/// feed from it), prints the login URL when the token was generated, and spawns [`serve`].
/// Errors name what failed (e.g. the address).
pub async fn start(
    settings: &crate::config::Settings,
    status: watch::Receiver<Snapshot>,
    neko_api_token: &str,
    shutdown: CancellationToken,
) -> Result<Started, String> {
    let auth =
        auth::Auth::from_settings(&settings.http).map_err(|e| format!("access token: {e}"))?;
    let listen = settings.http.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} ([http] listen or --listen): {e}"))?;
    let local = listener.local_addr().unwrap_or(listen);
    let mut relay = settings
        .neko
        .as_ref()
        .map(|n| relay::RelaySettings::new(n.bind, neko_api_token, &settings.http));
    let desktop = match (&settings.display, settings.api.enabled) {
        (Some(d), true) => Some(Arc::new(crate::desktop::Desktop::new(
            &d.display_name(),
            &settings.api,
        ))),
        _ => None,
    };
    let metrics = Arc::new(Metrics::new());
    let stream = match &settings.display {
        Some(d) if settings.stream.enabled => {
            let slots = relay.as_ref().map_or_else(
                || Arc::new(relay::ClientSlots::new(settings.http.max_clients)),
                |r| r.client_slots(),
            );
            let stream = crate::stream::Stream::new(
                &d.display_name(),
                &settings.stream,
                settings.api.type_delay,
                metrics.clone(),
                &shutdown,
            )
            .map_err(|e| format!("native stream: {e}"))?;
            Some(Arc::new(stream_ws::NativeStream { stream, slots }))
        }
        _ => None,
    };
    // neko's video from the native stream's encoder ([neko] video = "deskd").
    let neko_feed = match (&stream, &settings.neko) {
        (Some(native), Some(neko)) if neko.video == NekoVideo::Deskd => {
            let feed = NekoFeed::start(
                native.stream.hub.clone(),
                settings.stream.max_fps,
                shutdown.child_token(),
            )
            .await
            .map_err(|e| format!("neko video feed: cannot listen on loopback: {e}"))?;
            Some(Arc::new(feed))
        }
        _ => None,
    };
    if let Some(r) = &mut relay {
        r.neko_feed = neko_feed.clone();
    }
    let relay = relay.map(Arc::new);
    let state = AppState {
        auth: Arc::new(auth),
        status,
        metrics,
        relay,
        desktop,
        stream,
    };
    state.auth.announce(local);
    let token_file = std::path::Path::new(crate::ctl::DEFAULT_TOKEN_FILE);
    match state.auth.write_token_file(token_file) {
        Ok(()) => {
            tracing::info!(path = %token_file.display(), "control token written for deskd ctl")
        }
        Err(e) => {
            tracing::warn!(path = %token_file.display(), error = %e, "control token file not written; deskd ctl needs DESKD_TOKEN")
        }
    }
    tracing::info!(listen = %local, "HTTP server listening");
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, state, shutdown).await {
            tracing::error!(listen = %local, error = %e, "HTTP server failed");
        }
    });
    Ok(Started {
        task,
        neko_feed: neko_feed.map(|f| f.addr()),
    })
}

/// `200` while deskd runs.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `200` when every critical service is ready, else `503` with what is not.
async fn readyz(State(state): State<AppState>) -> Response {
    let snap = state.status.borrow().clone();
    let not_ready: Vec<serde_json::Value> = snap
        .not_ready_critical()
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "service": s.name,
                "state": s.state.as_str(),
                "reason": s.reason,
            })
        })
        .collect();
    if snap.stopping {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "stopping": true, "not_ready": not_ready})),
        )
            .into_response();
    }
    if snap.services.is_empty() {
        // The HTTP server starts before the supervisor publishes its first snapshot.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "not_ready": [], "reason": "services not started yet"})),
        )
            .into_response();
    }
    if not_ready.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "not_ready": not_ready})),
        )
            .into_response()
    }
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    let snap = state.status.borrow().clone();
    let body = state.metrics.render(&snap);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The supervisor's snapshot as JSON.
async fn services(State(state): State<AppState>) -> Json<Snapshot> {
    Json(state.status.borrow().clone())
}
