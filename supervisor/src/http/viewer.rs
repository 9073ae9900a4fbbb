//! The viewer page and its JavaScript modules, embedded in the binary. No state.

use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
