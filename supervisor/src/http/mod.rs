//! The one HTTP port: the router and its shared state. The only module tree that imports axum.
//!
//! Routes: `/` and assets ([`viewer`]), `/stream/signaling` ([`relay`]), `/healthz`,
//! `/readyz`, `/metrics`, `/api/services` (here), `/api/*` for agents ([`api`]). Access
//! control is [`auth`].

pub mod api;
pub mod auth;
pub mod relay;
pub mod viewer;

use std::sync::Arc;

use axum::Router;
use tokio::sync::watch;

use crate::metrics::Metrics;
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
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(viewer::routes())
        .merge(relay::routes())
        .merge(api::routes())
        .with_state(state)
}
