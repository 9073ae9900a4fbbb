//! The agent API under `/api/`: display info, screenshots, input, clipboard, windows.

use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
