//! The signaling relay `/stream/signaling`: one fresh neko session per browser connection,
//! frames relayed both ways with bounded buffers, the session logged out on close.

use axum::Router;

use super::AppState;

/// Where neko is and the relay's limits.
pub struct RelaySettings {}

pub fn routes() -> Router<AppState> {
    Router::new()
}
